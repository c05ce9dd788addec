from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from kpidash.clock import FixedClock
from kpidash.core.registry import build_registry
from kpidash.engine import Engine
from kpidash.model import Point

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def weekly_seasonal(days: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    return 100 + 0.2 * t + 15 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 2, days)


def test_forecast_continues_after_the_last_complete_period(engine: Engine,
                                                           clock: FixedClock) -> None:
    vals = weekly_seasonal(120)
    engine.ingest([Point("signups", T0 + timedelta(days=d), float(v), {})
                   for d, v in enumerate(vals)])
    # mid-day on the day after the data: that day is not complete and has no data
    clock.set(T0 + timedelta(days=120, hours=12))
    [f] = engine.forecast("signups", "day", 14)
    d = f.to_dict()
    assert d["history_end"] == (T0 + timedelta(days=119)).isoformat()
    assert d["periods"][0] == (T0 + timedelta(days=120)).isoformat()
    assert len(d["periods"]) == len(d["forecast"]) == 14
    assert d["season_length"] == 7
    lo80, hi80 = np.array(d["intervals"]["80"]["lower"]), np.array(d["intervals"]["80"]["upper"])
    lo95, hi95 = np.array(d["intervals"]["95"]["lower"]), np.array(d["intervals"]["95"]["upper"])
    mean = np.array(d["forecast"])
    assert np.all(lo95 <= lo80) and np.all(lo80 <= mean) and np.all(mean <= hi80)
    assert np.all(hi80 <= hi95)
    assert d["backtest"]["windows"] > 0 and 0 <= d["backtest"]["coverage"]["95"] <= 1
    assert d["selection"]["criterion"] and d["model"] in d["selection"]["scores"]


def test_bounded_kpi_forecast_stays_in_bounds(clock: FixedClock, tmp_path: object) -> None:
    from kpidash.store import open_store

    reg = build_registry([
        {"id": "churned", "name": "Churned"}, {"id": "customers", "name": "Customers"},
        {"id": "churn_rate", "name": "Churn", "kind": "ratio", "numerator": "churned",
         "denominator": "customers", "scale": 100, "min_value": 0, "max_value": 100}])
    e = Engine(open_store(":memory:"), clock)
    e.register(reg)
    rng = np.random.default_rng(2)
    pts = []
    for d in range(200):  # a churn rate falling towards 0 %
        ts = T0 + timedelta(days=d)
        pts += [Point("customers", ts, 1000.0, {}),
                Point("churned", ts, float(max(0, round(30 * np.exp(-d / 40)
                                                        + rng.normal(0, 1)))), {})]
    e.ingest(pts)
    clock.set(T0 + timedelta(days=200))
    [f] = e.forecast("churn_rate", "day", 60)
    for level in (80, 95):
        assert np.all(f.result.lower[level] >= 0) and np.all(f.result.upper[level] <= 100)
    assert np.all(f.result.mean >= 0)
