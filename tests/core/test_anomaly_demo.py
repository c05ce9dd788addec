"""Every incident the demo injects is found, at the right time, on the series the engine serves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kpidash import demo
from kpidash.clock import FixedClock
from kpidash.core.anomaly import AnomalyScores, Kind, score
from kpidash.engine import Engine
from kpidash.packs import load_pack
from kpidash.store import open_store

END = date(2024, 6, 30)
TOLERANCE = 2  # days after an incident's start within which it must be flagged


@pytest.fixture(scope="module")
def data() -> demo.DemoData:
    return demo.generate(END, days=730)


@pytest.fixture(scope="module")
def engine(data: demo.DemoData) -> Iterator[Engine]:
    e = Engine(open_store(":memory:"), FixedClock(datetime(2024, 7, 1, tzinfo=UTC)))
    e.register(load_pack("saas"))
    e.ingest_table(data.points)
    yield e
    e.close()


def incident(data: demo.DemoData, ident: str) -> dict[str, Any]:
    return next(i for i in data.manifest["incidents"] if i["id"] == ident)


def scored(engine: Engine, kpi_id: str, dims: dict[str, str]) -> tuple[np.ndarray, AnomalyScores]:
    kpi = engine.registry.get(kpi_id)
    [s] = engine.query(kpi_id, "day", filters=dims or None)
    res = score(s.values, season_length=kpi.season_length or 7,
                threshold=kpi.anomaly_threshold, higher_is_better=kpi.higher_is_better)
    return s.periods.astype("datetime64[D]"), res


INCIDENTS = ["churn-spike", "revenue-drop-eu", "signups-level-shift", "revenue-outlier-1",
             "revenue-outlier-2", "revenue-outlier-3"]


@pytest.mark.parametrize("ident", INCIDENTS)
def test_incident_is_flagged_within_two_days_of_its_start(engine: Engine, data: demo.DemoData,
                                                          ident: str) -> None:
    inc = incident(data, ident)
    days, res = scored(engine, inc["kpi"], inc["dims"])
    start = int(np.searchsorted(days, np.datetime64(inc["start"])))
    hits = np.flatnonzero(res.is_anomaly[start:start + TOLERANCE + 1])
    assert hits.size, f"{ident} not flagged on {inc['start']} … +{TOLERANCE} days"
    first = start + int(hits[0])
    up = inc["magnitude"] > 1
    assert (res.z[first] > 0) == up
    kpi = engine.registry.get(inc["kpi"])
    assert bool(res.favourable[first]) == (up == kpi.higher_is_better)


@pytest.mark.parametrize("ident", ["signups-level-shift", "revenue-drop-eu", "churn-spike"])
def test_persistent_incidents_are_flagged_a_few_days_then_adopted(
        engine: Engine, data: demo.DemoData, ident: str) -> None:
    inc = incident(data, ident)
    days, res = scored(engine, inc["kpi"], inc["dims"])
    start = int(np.searchsorted(days, np.datetime64(inc["start"])))
    end = int(np.searchsorted(days, np.datetime64(inc["end"])))
    inside = np.flatnonzero(res.is_anomaly[start:end + 1])
    assert 1 <= inside.size <= 4, f"{ident} flagged on {inside.size} of its days"
    after = np.flatnonzero(res.is_anomaly[end + 1:end + 15])
    assert after.size == 0, "the return to normal is not flagged again"
    if inc["kind"] == "level_shift":
        assert Kind.LEVEL_SHIFT in res.kind[start:start + 5]


def _daily_total(table: pa.Table, kpi: str) -> tuple[np.ndarray, np.ndarray]:
    t = table.filter(pc.equal(table["kpi"], kpi)).group_by("timestamp").aggregate(
        [("value", "sum")]).sort_by("timestamp")
    return t["timestamp"].to_numpy().astype("datetime64[D]"), t["value_sum"].to_numpy()


def test_the_gap_causes_no_anomalies_and_the_series_recovers(engine: Engine,
                                                             data: demo.DemoData) -> None:
    inc = incident(data, "active-users-gap")
    days, res = scored(engine, "active_users", {})
    gap0, gap1 = (int(np.searchsorted(days, np.datetime64(inc[k]))) for k in ("start", "end"))
    assert np.isnan(res.values[gap0:gap1 + 1]).all()
    assert not res.is_anomaly[gap0:gap1 + 1].any() and (res.score[gap0:gap1 + 1] == 0).all()
    # the same series without the gap (the demo is deterministic per day)
    filled = demo.generate_days(date.fromisoformat(inc["start"]), date.fromisoformat(inc["end"]))
    fill_days, fill_values = _daily_total(filled, "active_users")
    clean_values = res.values.copy()
    clean_values[np.searchsorted(days, fill_days)] = fill_values
    clean = score(clean_values, season_length=7,
                  threshold=engine.registry.get("active_users").anomaly_threshold)
    # Every day flagged after the gap has a flag within two days without the gap, and the
    # other way round: the holiday swings of late December and early January are real, the gap
    # adds no episode of its own (it can move one by a day while the states converge).
    for a, b in ((res, clean), (clean, res)):
        for i in np.flatnonzero(a.is_anomaly[gap1 + 1:]) + gap1 + 1:
            assert b.is_anomaly[i - 2:i + 3].any(), str(days[i])
    later = slice(gap1 + 45, None)
    np.testing.assert_array_equal(res.is_anomaly[later], clean.is_anomaly[later])
    assert data.manifest["end"] == END.isoformat() and days[-1] == np.datetime64(END)
    assert days[0] == np.datetime64(END - timedelta(days=729))
