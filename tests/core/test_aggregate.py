from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpidash.core import aggregate as agg
from kpidash.core.registry import build_registry
from kpidash.errors import ConfigError, QueryError
from kpidash.model import Grain


def keys(*iso: str) -> list[str]:
    return [np.datetime64(t, "us").astype(str) for t in iso]


@pytest.mark.parametrize(("grain", "start", "end", "tz", "expected"), [
    (Grain.DAY, "2024-03-30T00:00", "2024-04-01T00:00", "UTC",
     ["2024-03-30", "2024-03-31"]),
    (Grain.WEEK, "2024-01-03T00:00", "2024-01-16T00:00", "UTC",
     ["2024-01-01", "2024-01-08", "2024-01-15"]),
    (Grain.MONTH, "2024-01-15T00:00", "2024-03-02T00:00", "UTC",
     ["2024-01-01", "2024-02-01", "2024-03-01"]),
    (Grain.QUARTER, "2024-02-01T00:00", "2024-12-01T00:00", "UTC",
     ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01"]),
    (Grain.YEAR, "2023-06-01T00:00", "2024-06-01T00:00", "UTC", ["2023-01-01", "2024-01-01"]),
    (Grain.HOUR, "2024-01-01T00:30", "2024-01-01T02:00", "UTC",
     ["2024-01-01T00:00", "2024-01-01T01:00"]),
    (Grain.MINUTE, "2024-01-01T00:00:30", "2024-01-01T00:02", "UTC",
     ["2024-01-01T00:00", "2024-01-01T00:01"]),
    # 23:30 UTC is already the next local day in Paris
    (Grain.DAY, "2024-01-01T23:30", "2024-01-02T12:00", "Europe/Paris", ["2024-01-02"]),
])
def test_period_keys(grain: Grain, start: str, end: str, tz: str, expected: list[str]) -> None:
    s = datetime.fromisoformat(start).replace(tzinfo=UTC)
    e = datetime.fromisoformat(end).replace(tzinfo=UTC)
    got = agg.period_keys(s, e, grain, tz)
    assert list(got) == [np.datetime64(x, "us") for x in expected]


def test_local_days_across_dst_map_to_true_midnights() -> None:
    k = agg.period_keys(datetime(2024, 3, 30, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC),
                        Grain.DAY, "Europe/Paris")
    utc, labels = agg.keys_to_utc(k, Grain.DAY, "Europe/Paris")
    assert labels == ("2024-03-30T00:00:00+01:00", "2024-03-31T00:00:00+01:00",
                      "2024-04-01T00:00:00+02:00")
    # the 31st lasts 23 hours
    assert (utc[2] - utc[1]) == np.timedelta64(23, "h")


def test_densify_marks_missing_periods() -> None:
    k = agg.period_keys(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 5, tzinfo=UTC),
                        Grain.DAY, "UTC")
    rows = agg.AggRows(np.array(["2024-01-01", "2024-01-03"], dtype="datetime64[us]"),
                       np.array([None, None], dtype=object), np.array([1.0, 3.0]))
    m = agg.densify(rows, k, [None])
    assert m.shape == (1, 4)
    assert m[0, 0] == 1.0 and np.isnan(m[0, 1]) and m[0, 2] == 3.0 and np.isnan(m[0, 3])


REG = build_registry([
    {"id": "conv", "name": "Conversions"}, {"id": "leads", "name": "Leads"},
    {"id": "rate", "name": "Rate", "kind": "ratio", "numerator": "conv",
     "denominator": "leads", "scale": 100},
    {"id": "per_lead", "name": "Per lead", "kind": "derived", "expression": "rate / 100"},
])


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 100)), min_size=1, max_size=20))
def test_ratio_is_scaled_ratio_of_summed_inputs(pairs: list[tuple[int, int]]) -> None:
    conv = np.array([float(c) for c, _ in pairs])
    leads = np.array([float(n) for _, n in pairs])
    inputs = {"conv": np.array([[conv.sum()]]), "leads": np.array([[leads.sum()]])}
    got = agg.compose(REG.get("rate"), REG, inputs)[0, 0]
    assert got == pytest.approx(100 * conv.sum() / leads.sum())


def test_ratio_hand_computation_and_zero_denominator() -> None:
    inputs = {"conv": np.array([[5.0, 1.0, 3.0]]), "leads": np.array([[50.0, 0.0, np.nan]])}
    out = agg.compose(REG.get("rate"), REG, inputs)
    assert out[0, 0] == pytest.approx(10.0) and np.isnan(out[0, 1]) and np.isnan(out[0, 2])
    derived = agg.compose(REG.get("per_lead"), REG, inputs)
    assert derived[0, 0] == pytest.approx(0.1)


def test_dimensions_must_exist_on_every_input() -> None:
    reg = build_registry([{"id": "a", "name": "A", "dimensions": ["region"]},
                          {"id": "b", "name": "B"},
                          {"id": "r", "name": "R", "kind": "ratio", "numerator": "a",
                           "denominator": "b"}])
    q = agg.Query("r", Grain.DAY, datetime(2024, 1, 1, tzinfo=UTC),
                  datetime(2024, 1, 2, tzinfo=UTC), group_by="region")
    with pytest.raises(QueryError, match=r"its input 'b'\) has no dimension 'region'"):
        agg.check_dimensions(q, reg)


def test_query_validation() -> None:
    with pytest.raises(QueryError):
        agg.Query("r", Grain.DAY, datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(ConfigError, match="unknown time zone"):
        agg.check_timezone("Mars/Olympus")


@pytest.mark.parametrize(("now", "grain", "tz", "expected"), [
    pytest.param("2024-03-31T21:59:59+00:00", Grain.DAY, "Europe/Paris", 1, id="23h-day-open"),
    pytest.param("2024-03-31T22:00:00+00:00", Grain.DAY, "Europe/Paris", 2, id="23h-day-over"),
    pytest.param("2024-04-01T00:00:00+00:00", Grain.MONTH, "UTC", 1, id="month-over"),
    pytest.param("2024-03-30T12:00:00+00:00", Grain.DAY, "UTC", 0, id="first-open"),
])
def test_complete_periods(now: str, grain: Grain, tz: str, expected: int) -> None:
    from kpidash.model import Series

    start = datetime(2024, 3, 30, tzinfo=UTC) if grain is Grain.DAY else datetime(
        2024, 3, 1, tzinfo=UTC)
    keys = agg.period_keys(start, start + (datetime(2024, 4, 2, tzinfo=UTC) - start), grain, tz)
    keys = keys[:2]
    periods, labels = agg.keys_to_utc(keys, grain, tz)
    s = Series("k", grain, tz, periods, np.ones(len(keys)), None, labels)
    assert agg.complete_periods(s, datetime.fromisoformat(now)) == expected


@pytest.mark.parametrize(("start", "end", "grain", "needle"), [
    (datetime(2024, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC), "day",
     "supported range"),
    (datetime(1, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC), "year", "supported range"),
    (datetime(2024, 1, 1, tzinfo=UTC), datetime(2261, 1, 1, tzinfo=UTC), "minute", "periods"),
])
def test_unanswerable_ranges_are_query_errors(start: datetime, end: datetime, grain: str,
                                              needle: str) -> None:
    """Issue 10: a range pandas cannot hold, or of too many periods, was a 500."""
    from kpidash.model import Grain

    with pytest.raises(QueryError, match=needle):
        agg.Query("revenue", Grain(grain), start, end)
