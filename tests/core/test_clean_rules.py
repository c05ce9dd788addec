from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from kpidash.core.clean import (
    Code,
    Findings,
    check_points,
    clean_kpi_series,
    clean_series,
    infer_interval,
    rules,
)
from kpidash.core.report import Level
from kpidash.model import KPI

DAY = np.timedelta64(1, "D")
T0 = np.datetime64("2024-01-01", "us")


def days(*offsets: int) -> np.ndarray:
    return T0 + np.array(offsets) * DAY


@pytest.mark.parametrize(("kw", "code", "indices"), [
    ({"values": [1.0, np.nan, np.inf, 2.0], "timestamps": days(0, 1, 2, 3)},
     Code.NON_FINITE, [1, 2]),
    ({"values": [-1.0, 50.0, 101.0, np.nan], "timestamps": days(0, 1, 2, 3),
      "min_value": 0.0, "max_value": 100.0}, Code.OUT_OF_BOUNDS, [0, 2]),
    ({"values": [1.0, 5.0], "timestamps": days(0, 1), "max_value": 5.0},
     Code.OUT_OF_BOUNDS, []),
    ({"values": np.ones(5), "timestamps": days(0, 1, 0, 2, 1)}, Code.DUPLICATE, [2, 4]),
    ({"values": np.ones(5), "timestamps": days(0, 2, 1, 3, 2)}, Code.OUT_OF_ORDER, [2, 4]),
    # day 0 and 1 arrive first, then day 5, then day 2 and day 4 (behind the watermark day 5)
    ({"values": np.ones(5), "timestamps": days(0, 1, 5, 2, 4),
      "arrived_at": days(1, 1, 6, 7, 7), "max_lateness": timedelta(days=1)},
     Code.LATE, [3]),
    ({"values": np.ones(3), "timestamps": days(0, 1, 2), "arrived_at": days(9, 9, 9),
      "max_lateness": timedelta(days=1)}, Code.LATE, []),  # a backfill in one batch
    ({"values": np.ones(3), "timestamps": days(0, 1, 2), "arrived_at": days(5, 5, 5)},
     Code.LATE, []),  # no lateness limit, no late rule
    ({"values": np.ones(6), "timestamps": days(0, 1, 2, 6, 7, 8)}, Code.GAP, [3]),
    ({"values": np.ones(4), "timestamps": days(0, 2, 4, 8)}, Code.GAP, [3]),  # 2-day cadence
    ({"values": np.ones(4), "timestamps": np.array(
        ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"], dtype="datetime64[us]")},
     Code.GAP, []),  # calendar months are not gaps
    ({"values": np.ones(3), "timestamps": np.array(
        ["2024-01-01", "2024-02-01", "2024-04-01"], dtype="datetime64[us]"),
      "interval": timedelta(days=31)}, Code.GAP, [2]),
], ids=["non-finite", "out-of-bounds", "bounds-inclusive", "duplicate", "out-of-order", "late",
        "backfill-not-late", "late-needs-limit", "gap-daily", "gap-inferred-cadence", "months-no-gap",
        "month-missing"])
def test_point_rules(kw: dict[str, object], code: Code, indices: list[int]) -> None:
    found = check_points(**kw)  # type: ignore[arg-type]
    assert found.indices(code).tolist() == indices
    assert {f.level for f in found.items if f.code == code} <= {rules.LEVELS[code]}


def test_gap_message_counts_missing_periods() -> None:
    found = check_points(np.ones(6), days(0, 1, 2, 6, 7, 8))
    (gap,) = found.items
    assert gap.message.startswith("3 missing period(s)") and "2024-01-03" in gap.message
    assert gap.ts == days(6)[0] and gap.field == "timestamp"


@pytest.mark.parametrize(("now", "stale"), [
    (datetime(2024, 1, 14, tzinfo=UTC), False),  # 3 intervals after the last point (11 Jan)
    (datetime(2024, 1, 14, 0, 1, tzinfo=UTC), True),
    (np.datetime64("2024-02-01"), True),
], ids=["at-limit", "just-past", "datetime64-now"])
def test_stale(now: object, stale: bool) -> None:
    found = check_points(np.ones(11), days(*range(11)), now=now, stale_after=3)  # type: ignore[arg-type]
    assert (len(found.items) == 1) is stale
    if stale:
        assert found.items[0].code is Code.STALE and found.items[0].index is None


def test_infer_interval_is_median_spacing() -> None:
    ts = days(0, 1, 2, 3, 10, 11)
    assert infer_interval(ts) == DAY
    assert infer_interval(days(0, 0)) is None


def test_report_locations_and_cap() -> None:
    found = check_points([np.nan] * 5 + [1.0], days(*range(6)))
    rep = found.report("mrr", source="points.csv")
    assert not rep.ok and rep.error_count == 5
    issue = rep.issues[0]
    assert (issue.code, issue.location.row, issue.location.item, issue.location.field) == (
        "quality.non_finite", 1, "mrr", "value")
    assert "2024-01-01T00:00:00Z" in issue.message
    capped = found.report("mrr", cap_per_code=2)
    assert len(capped.issues) == 2 and capped.error_count == 5
    assert found.counts() == {"quality.non_finite": 5}
    assert (found + Findings()).items == found.items


def test_timestamps_must_be_aware() -> None:
    aware = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 2)]
    assert check_points([1.0, 2.0, 3.0], aware).indices(Code.DUPLICATE).tolist() == [2]
    with pytest.raises(ValueError, match="timezone-aware"):
        check_points([1.0], [datetime(2024, 1, 1)])
    with pytest.raises(ValueError, match="shape"):
        check_points([1.0, 2.0], days(0))


def test_summary_completeness_freshness_and_json() -> None:
    ts = days(0, 1, 2, 4, 5, 6, 7, 8, 10, 11)  # 12 days, 10 present
    x = np.full(10, 5.0)
    x[1] = np.nan
    res = clean_series(x, ts, now=datetime(2024, 1, 14, 12, tzinfo=UTC), kpi_id="signups")
    s = res.summary
    assert (s.expected_periods, s.present_periods) == (12, 9)
    assert s.completeness_pct == pytest.approx(75.0)
    assert s.freshness_seconds == 2.5 * 86400 and not s.stale
    assert s.interval_seconds == 86400.0 and s.corrections == 0
    d = json.loads(json.dumps(s.to_dict()))
    assert d["issue_counts"] == {"quality.gap": 2, "quality.non_finite": 1}
    assert d["first_ts"] == "2024-01-01T00:00:00Z" and d["last_ts"] == "2024-01-12T00:00:00Z"
    late_start = clean_series(x, ts, start=datetime(2023, 12, 30, tzinfo=UTC)).summary
    assert late_start.expected_periods == 14


def test_clean_kpi_series_uses_kpi_bounds_and_id() -> None:
    kpi = KPI(id="conversion", name="Conversion", min_value=0, max_value=100)
    res = clean_kpi_series(kpi, [12.0, 140.0, -3.0], days(0, 1, 2))
    assert res.findings.indices(Code.OUT_OF_BOUNDS).tolist() == [1, 2]
    assert {i.location.item for i in res.report.issues} == {"conversion"}
    assert res.report.errors[0].level is Level.ERROR
