from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpidash.core.alerts import AlertRule, Outcome, Severity, SliceInput, evaluate, slice_key
from kpidash.model import KPI

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
DAY0 = datetime(2026, 2, 16, tzinfo=UTC)
KPI_UP = KPI(id="revenue", name="Revenue", target=100.0)
KPI_DOWN = KPI(id="latency", name="Latency", target=200.0, higher_is_better=False)
ABOVE = {"kind": "threshold", "direction": "above", "bands": {"high": 6, "critical": 8},
         "recovery": 4}
BELOW = {"kind": "threshold", "direction": "below", "bands": {"low": 50, "high": 20}}


def rule(condition: dict[str, Any], **extra: Any) -> AlertRule:
    return AlertRule.model_validate({"id": "r", "kpi": "revenue", "condition": condition, **extra})


def daily(values: list[float], **extra: Any) -> SliceInput:
    periods = [DAY0 + timedelta(days=i) for i in range(len(values))]
    return SliceInput(periods=np.array([p.replace(tzinfo=None) for p in periods],
                                       dtype="datetime64[us]"), values=np.array(values), **extra)


def run(condition: dict[str, Any], s: SliceInput, kpi: KPI = KPI_UP) -> Any:
    (ev,) = evaluate(rule(condition), kpi, [s], NOW)
    return ev


@pytest.mark.parametrize(("cond", "values", "outcome", "severity", "cleared"), [
    pytest.param(ABOVE, [1, 9], Outcome.MET, Severity.CRITICAL, False, id="above-critical"),
    pytest.param(ABOVE, [1, 8], Outcome.MET, Severity.CRITICAL, False, id="above-edge-inclusive"),
    pytest.param(ABOVE, [1, 7], Outcome.MET, Severity.HIGH, False, id="above-high"),
    pytest.param(ABOVE, [1, 5], Outcome.NOT_MET, Severity.NONE, False, id="above-hysteresis-zone"),
    pytest.param(ABOVE, [1, 3], Outcome.NOT_MET, Severity.NONE, True, id="above-recovered"),
    pytest.param(ABOVE, [9, math.nan], Outcome.MET, Severity.CRITICAL, False,
                 id="latest-valid-value-used"),
    pytest.param(ABOVE, [math.nan, math.nan], Outcome.NO_DATA, Severity.NONE, True,
                 id="no-values"),
    pytest.param(BELOW, [100, 10], Outcome.MET, Severity.HIGH, False, id="below-high"),
    pytest.param(BELOW, [100, 40], Outcome.MET, Severity.LOW, False, id="below-low"),
    pytest.param(BELOW, [100, 60], Outcome.NOT_MET, Severity.NONE, True,
                 id="below-no-recovery-clears-at-once"),
])
def test_threshold(cond: dict[str, Any], values: list[float], outcome: Outcome,
                   severity: Severity, cleared: bool) -> None:
    obs = run(cond, daily(values)).observation
    assert (obs.outcome, obs.severity, obs.cleared) == (outcome, severity, cleared)


def test_threshold_reports_value_threshold_and_expected_range() -> None:
    ev = run(ABOVE, daily([1, 7]))
    assert ev.observation.value == 7
    assert ev.observation.threshold == 6
    assert ev.expected == (-math.inf, 6)
    assert "7" in ev.detail


CHANGE_PREV = {"kind": "change", "direction": "down", "bands": {"medium": 10, "high": 30},
               "recovery": 5}
CHANGE_WEEK = {"kind": "change", "compare_to": "same_period_last_week", "bands": {"low": 20}}


@pytest.mark.parametrize(("cond", "values", "outcome", "severity"), [
    pytest.param(CHANGE_PREV, [100, 60], Outcome.MET, Severity.HIGH, id="drop-40pct"),
    pytest.param(CHANGE_PREV, [100, 85], Outcome.MET, Severity.MEDIUM, id="drop-15pct"),
    pytest.param(CHANGE_PREV, [100, 150], Outcome.NOT_MET, Severity.NONE, id="rise-ignored"),
    pytest.param(CHANGE_PREV, [math.nan, 60], Outcome.NO_DATA, Severity.NONE, id="no-baseline"),
    pytest.param(CHANGE_PREV, [0, 60], Outcome.ERROR, Severity.NONE, id="zero-baseline"),
    pytest.param(CHANGE_WEEK, [100, 1, 1, 1, 1, 1, 1, 130], Outcome.MET, Severity.LOW,
                 id="week-over-week-up"),
    pytest.param(CHANGE_WEEK, [100, 1, 1, 1, 1, 1, 1, 110], Outcome.NOT_MET, Severity.NONE,
                 id="week-over-week-small"),
    pytest.param(CHANGE_WEEK, [1, 1, 130], Outcome.NO_DATA, Severity.NONE,
                 id="week-over-week-no-history"),
])
def test_percent_change(cond: dict[str, Any], values: list[float], outcome: Outcome,
                        severity: Severity) -> None:
    obs = run(cond, daily(values)).observation
    assert (obs.outcome, obs.severity) == (outcome, severity)


def test_change_expected_range_is_in_kpi_units() -> None:
    ev = run(CHANGE_PREV, daily([100, 60]))
    assert ev.expected == (pytest.approx(90.0), math.inf)


@pytest.mark.parametrize(("sev", "outcome"), [
    pytest.param(Severity.NONE, Outcome.NOT_MET, id="none"),
    pytest.param(Severity.MEDIUM, Outcome.NOT_MET, id="below-min"),
    pytest.param(Severity.HIGH, Outcome.MET, id="at-min"),
    pytest.param(Severity.CRITICAL, Outcome.MET, id="above-min"),
])
def test_anomaly(sev: Severity, outcome: Outcome) -> None:
    obs = run({"kind": "anomaly", "min_severity": "high"},
              daily([1, 2], anomaly_severity=sev)).observation
    assert obs.outcome is outcome
    assert obs.severity is (sev if outcome is Outcome.MET else Severity.NONE)


@pytest.mark.parametrize(("cond", "forecast", "kpi", "outcome", "value"), [
    pytest.param({"kind": "forecast", "horizon": 3, "direction": "above", "threshold": 10},
                 [5, 8, 11, 20], KPI_UP, Outcome.MET, 11, id="crosses-within-horizon"),
    pytest.param({"kind": "forecast", "horizon": 2, "direction": "above", "threshold": 10},
                 [5, 8, 11], KPI_UP, Outcome.NOT_MET, 8, id="crosses-after-horizon"),
    pytest.param({"kind": "forecast", "horizon": 5, "miss_target": True},
                 [120, 110, 95], KPI_UP, Outcome.MET, 95, id="misses-target-higher-better"),
    pytest.param({"kind": "forecast", "horizon": 5, "miss_target": True},
                 [120, 110, 105], KPI_UP, Outcome.NOT_MET, 105, id="meets-target"),
    pytest.param({"kind": "forecast", "horizon": 5, "miss_target": True},
                 [150, 190, 230], KPI_DOWN, Outcome.MET, 230, id="misses-target-lower-better"),
    pytest.param({"kind": "forecast", "horizon": 5, "miss_target": True},
                 [], KPI_UP, Outcome.NO_DATA, math.nan, id="no-forecast"),
    pytest.param({"kind": "forecast", "horizon": 5, "miss_target": True},
                 [1.0], KPI(id="x", name="X"), Outcome.ERROR, math.nan, id="no-target"),
])
def test_forecast(cond: dict[str, Any], forecast: list[float], kpi: KPI, outcome: Outcome,
                  value: float) -> None:
    obs = run(cond, daily([1, 2], forecast=np.array(forecast)), kpi).observation
    assert obs.outcome is outcome
    assert obs.value == value or (math.isnan(value) and math.isnan(obs.value))


@pytest.mark.parametrize(("last", "outcome", "value"), [
    pytest.param(NOW - timedelta(hours=1), Outcome.NOT_MET, 3600, id="fresh"),
    pytest.param(NOW - timedelta(hours=2), Outcome.NOT_MET, 7200, id="exactly-max-age"),
    pytest.param(NOW - timedelta(hours=3), Outcome.MET, 10800, id="stale"),
    pytest.param(None, Outcome.MET, math.inf, id="never-seen"),
])
def test_stale(last: datetime | None, outcome: Outcome, value: float) -> None:
    obs = run({"kind": "stale", "max_age": "2h", "severity": "high"},
              SliceInput(last_point_at=last)).observation
    assert (obs.outcome, obs.value) == (outcome, value)
    assert obs.severity is (Severity.HIGH if outcome is Outcome.MET else Severity.NONE)


HIGH_ANOMALY = {"kind": "anomaly", "min_severity": "low"}


@pytest.mark.parametrize(("kind", "values", "anomaly", "outcome", "severity", "cleared"), [
    pytest.param("all", [1, 9], Severity.LOW, Outcome.MET, Severity.LOW, False,
                 id="all-met-lowest-severity"),
    pytest.param("all", [1, 9], Severity.NONE, Outcome.NOT_MET, Severity.NONE, True,
                 id="all-one-cleared"),
    pytest.param("all", [1, 5], Severity.HIGH, Outcome.NOT_MET, Severity.NONE, False,
                 id="all-hysteresis-holds"),
    pytest.param("all", [math.nan, math.nan], Severity.HIGH, Outcome.NO_DATA, Severity.NONE,
                 True, id="all-no-data"),
    pytest.param("any", [1, 9], Severity.LOW, Outcome.MET, Severity.CRITICAL, False,
                 id="any-highest-severity"),
    pytest.param("any", [1, 5], Severity.NONE, Outcome.NOT_MET, Severity.NONE, False,
                 id="any-hysteresis-holds"),
    pytest.param("any", [1, 3], Severity.NONE, Outcome.NOT_MET, Severity.NONE, True,
                 id="any-all-cleared"),
    pytest.param("any", [math.nan, math.nan], Severity.MEDIUM, Outcome.MET, Severity.MEDIUM,
                 False, id="any-met-despite-no-data"),
    pytest.param("any", [math.nan, math.nan], Severity.NONE, Outcome.NO_DATA, Severity.NONE,
                 True, id="any-no-data"),
])
def test_combinations(kind: str, values: list[float], anomaly: Severity, outcome: Outcome,
                      severity: Severity, cleared: bool) -> None:
    cond = {"kind": kind, "conditions": [ABOVE, HIGH_ANOMALY]}
    obs = run(cond, daily(values, anomaly_severity=anomaly)).observation
    assert (obs.outcome, obs.severity, obs.cleared) == (outcome, severity, cleared)


def test_one_evaluation_per_slice_in_order() -> None:
    slices = [daily([1, 9], slice=slice_key({"region": r})) for r in ("eu", "us", "apac")]
    evs = evaluate(rule(ABOVE, per="region"), KPI_UP, slices, NOW)
    assert [e.slice for e in evs] == [(("region", "eu"),), (("region", "us"),),
                                      (("region", "apac"),)]
    assert all(e.rule_id == "r" and e.kpi_id == "revenue" for e in evs)


def test_slice_input_accepts_aware_datetimes_and_checks_lengths() -> None:
    s = SliceInput(periods=[DAY0, DAY0 + timedelta(days=1)],  # type: ignore[arg-type]
                   values=[1.0, 2.0])  # type: ignore[arg-type]
    assert s.periods.dtype == np.dtype("datetime64[us]")
    with pytest.raises(ValueError, match="one value per period"):
        SliceInput(periods=[DAY0], values=[1.0, 2.0])  # type: ignore[arg-type]


@given(st.floats(-1e6, 1e6, allow_nan=False))
def test_threshold_severity_is_monotone_in_value(v: float) -> None:
    a = run(ABOVE, daily([0, v])).observation
    b = run(ABOVE, daily([0, v + 1])).observation
    assert b.severity >= a.severity
    assert not (a.met and a.cleared)
