from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.model import Point

T0 = datetime(2023, 1, 2, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(("slope", "label"), [
    pytest.param(0.02, "rising", id="growing"),
    pytest.param(-0.02, "falling", id="shrinking"),
    pytest.param(0.0, "no significant trend", id="flat-noise"),
])
def test_trend_report(engine: Engine, clock: FixedClock, slope: float, label: str) -> None:
    rng = np.random.default_rng(3)
    days = 7 * 60
    pts = [Point("signups", T0 + timedelta(days=d),
                 float(round(100 * (1 + slope) ** (d / 7) * (1 + 0.03 * rng.standard_normal()))),
                 {"region": "EU"}) for d in range(days)]
    engine.ingest(pts)
    clock.set(T0 + timedelta(days=days))
    [r] = engine.trend("signups", "week")
    d = r.to_dict()
    assert d["trend"]["label"] == label
    assert d["change"]["current_period"] == (T0 + timedelta(days=days - 7)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    cur, prev = d["change"]["current_value"], d["change"]["previous"]["reference_value"]
    assert d["change"]["previous"]["percent"] == pytest.approx(100 * (cur - prev) / prev)
    assert d["change"]["year_ago"]["reference_period"] == (
        T0 + timedelta(days=days - 7 - 364)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if slope:
        assert (d["trend"]["slope_pct"] > 0) == (slope > 0)


def test_trend_change_point_is_found(engine: Engine, clock: FixedClock) -> None:
    rng = np.random.default_rng(5)
    pts = []
    for w in range(80):
        level = 1000 + (5 * w if w < 40 else 200 - 15 * (w - 40))
        pts.append(Point("leads", T0 + timedelta(weeks=w), level + 5 * rng.standard_normal(), {}))
    engine.ingest(pts)
    clock.set(T0 + timedelta(weeks=80))
    [r] = engine.trend("leads", "week")
    breaks = [b for b in r.to_dict()["trend_changes"]["breaks"] if b["significant"]]
    assert breaks and abs(breaks[0]["index"] - 40) <= 3
    assert breaks[0]["slope_before"] > 0 > breaks[0]["slope_after"]
