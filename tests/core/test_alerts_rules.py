from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kpidash.core.alerts import AlertRule, RulesInvalid, load_rules, parse_duration, validate_rules
from kpidash.core.alerts.rules import AllOf, ThresholdCondition
from kpidash.model import KPI, Grain

KPIS = {
    "revenue": KPI(id="revenue", name="Revenue", dimensions=("region", "plan"), target=100.0),
    "signups": KPI(id="signups", name="Signups"),
}
THRESHOLD = {"kind": "threshold", "direction": "above", "bands": {"high": 6, "critical": 8}}
BASE: dict[str, Any] = {"id": "r1", "kpi": "revenue", "condition": THRESHOLD}

YAML = """
rules:
  - id: revenue_drop
    kpi: revenue
    grain: day
    per: region
    for: 2h
    keep_firing_for: 1h30m
    condition:
      kind: any
      conditions:
        - {kind: threshold, direction: below, bands: {high: 1000, critical: 500}, recovery: 1200}
        - {kind: change, direction: down, compare_to: same_period_last_week, bands: {medium: 20}}
        - {kind: anomaly, min_severity: high}
        - {kind: forecast, horizon: 7, miss_target: true}
        - {kind: stale, max_age: 1d, severity: high}
"""


def codes(raw: list[Any]) -> list[str]:
    return sorted(i.code for i in validate_rules(raw, KPIS)[1].errors)


def test_yaml_rule_loads_with_durations_and_per() -> None:
    (rule,) = load_rules(YAML, KPIS, source="alerts.yaml")
    assert rule.per == ("region",)
    assert rule.for_ == timedelta(hours=2)
    assert rule.keep_firing_for == timedelta(minutes=90)
    assert rule.grain is Grain.DAY
    assert len(rule.condition.conditions) == 5  # type: ignore[union-attr]


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param([BASE], [], id="valid"),
    pytest.param([{**BASE, "colour": "red"}], ["alert.unknown_field"], id="unknown-field"),
    pytest.param([{**BASE, "condition": {**THRESHOLD, "colour": 1}}], ["alert.unknown_field"],
                 id="unknown-condition-field"),
    pytest.param([{**BASE, "condition": {"kind": "magic"}}], ["alert.field"], id="unknown-kind"),
    pytest.param([{**BASE, "condition": {**THRESHOLD, "bands": {"urgent": 5}}}], ["alert.field"],
                 id="unknown-severity"),
    pytest.param([{**BASE, "condition": {**THRESHOLD, "bands": {}}}], ["alert.field"],
                 id="no-bands"),
    pytest.param([BASE, BASE], ["alert.duplicate_id"], id="duplicate-id"),
    pytest.param([{**BASE, "kpi": "churn"}], ["alert.unknown_kpi"], id="unknown-kpi"),
    pytest.param([{**BASE, "per": ["country"]}], ["alert.dimension"], id="unknown-dimension"),
    pytest.param([{**BASE, "per": ["region", "region"]}], ["alert.per"], id="per-twice"),
    pytest.param([{**BASE, "for": "-5m"}], ["alert.field"], id="bad-duration-text"),
    pytest.param([{**BASE, "for": -5}], ["alert.duration"], id="negative-duration"),
    pytest.param([{**BASE, "condition": {**THRESHOLD, "bands": {"high": 9, "critical": 8}}}],
                 ["alert.bands"], id="bands-out-of-order-above"),
    pytest.param([{**BASE, "condition": {**THRESHOLD, "direction": "below"}}],
                 ["alert.bands"], id="bands-out-of-order-below"),
    pytest.param([{**BASE, "condition": {**THRESHOLD, "recovery": 7}}], ["alert.recovery"],
                 id="recovery-inside-band"),
    pytest.param([{**BASE, "condition": {"kind": "change", "bands": {"low": 0}}}],
                 ["alert.bands"], id="change-band-not-positive"),
    pytest.param([{**BASE, "grain": "month", "condition": {
        "kind": "change", "compare_to": "same_period_last_week", "bands": {"low": 5}}}],
                 ["alert.compare_to"], id="last-week-at-month-grain"),
    pytest.param([{**BASE, "condition": {"kind": "forecast", "horizon": 3}}],
                 ["alert.forecast"], id="forecast-nothing-to-check"),
    pytest.param([{**BASE, "condition": {"kind": "forecast", "horizon": 3, "threshold": 5}}],
                 ["alert.forecast"], id="forecast-threshold-without-direction"),
    pytest.param([{**BASE, "kpi": "signups", "condition": {
        "kind": "forecast", "horizon": 3, "miss_target": True}}], ["alert.target"],
                 id="miss-target-without-target"),
    pytest.param([{**BASE, "condition": {"kind": "all", "conditions": [
        THRESHOLD, {**THRESHOLD, "recovery": 9}]}}], ["alert.recovery"], id="nested-problem"),
    pytest.param(["not a rule"], ["alert.shape"], id="not-a-mapping"),
])
def test_validation_codes(raw: list[Any], expected: list[str]) -> None:
    assert codes(raw) == sorted(expected)


def test_every_problem_reported_at_once_with_locations() -> None:
    raw = [
        {**BASE, "colour": "red", "for": "soon"},
        {"id": "r2", "kpi": "churn", "per": "country", "condition": {
            **THRESHOLD, "bands": {"high": 9, "critical": 8}, "recovery": 10}},
        {"id": "r2", "kpi": "revenue", "condition": THRESHOLD},
    ]
    _, report = validate_rules(raw, KPIS, source="alerts.yaml")
    assert sorted(report.codes()) == sorted(
        ["alert.unknown_field", "alert.field", "alert.unknown_kpi", "alert.bands",
         "alert.recovery", "alert.duplicate_id"])
    fields = {(i.location.item, i.code): i.location.field for i in report.errors}
    assert fields[("r1", "alert.unknown_field")] == "colour"
    assert fields[("r1", "alert.field")] == "for"
    assert fields[("r2", "alert.bands")] == "condition.bands.critical"
    assert all(i.location.source == "alerts.yaml" for i in report.errors)
    with pytest.raises(RulesInvalid) as exc:
        load_rules(raw, KPIS, source="alerts.yaml")
    assert exc.value.report.error_count == 6


def test_without_a_registry_references_are_not_checked() -> None:
    assert validate_rules([{**BASE, "kpi": "anything"}])[1].ok


def test_bad_yaml_is_one_clear_error() -> None:
    with pytest.raises(RulesInvalid) as exc:
        load_rules("rules: [ {id: x", source="a.yaml")
    assert list(exc.value.report.codes()) == ["yaml.syntax"]


def test_rule_objects_pass_through() -> None:
    rule = AlertRule.model_validate(BASE)
    assert load_rules([rule], KPIS) == [rule]
    assert isinstance(rule.condition, ThresholdCondition)
    nested = AlertRule.model_validate({**BASE, "condition": {"kind": "all", "conditions": [
        THRESHOLD]}})
    assert isinstance(nested.condition, AllOf)


@pytest.mark.parametrize(("text", "seconds"), [
    pytest.param(90, 90, id="int-seconds"),
    pytest.param(1.5, 1.5, id="float-seconds"),
    pytest.param("90s", 90, id="seconds"),
    pytest.param("5m", 300, id="minutes"),
    pytest.param("2h", 7200, id="hours"),
    pytest.param("1d", 86400, id="days"),
    pytest.param("1w", 604800, id="weeks"),
    pytest.param("1h30m", 5400, id="compound"),
    pytest.param("1h 30m", 5400, id="compound-spaced"),
])
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5 minutes", "h", "1x", "5m3"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_bands_are_refused(bad: float) -> None:
    """Issue 10: a NaN band was stored and then broke every JSON answer listing the rule."""
    raw = {"id": "a", "kpi": "signups", "condition": {"kind": "threshold", "direction": "above",
                                                      "bands": {"high": bad}}}
    rules, report = validate_rules([raw])
    assert not rules and "finite" in str(report.errors[0])
