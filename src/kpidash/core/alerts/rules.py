"""Alert rule definitions (YAML or dicts) and their validation, reporting every problem at once.

A rule watches one KPI at one grain, optionally once per dimension slice (``per: region``),
with a condition tree::

    rules:
      - id: revenue_drop
        kpi: revenue
        grain: day
        per: region
        filters: {plan: [pro, enterprise]}   # optional: only these slices
        for: 2h                 # the condition must hold this long before firing
        keep_firing_for: 1h     # stay firing this long after it clears
        notify: [ops, oncall]   # channel names (default: every configured channel)
        group_wait: 0s          # notification grouping timers (defaults shown)
        group_interval: 5m
        repeat_interval: 4h
        condition:
          kind: threshold       # threshold | change | anomaly | forecast | stale | all | any
          direction: below
          bands: {high: 1000, critical: 500}
          recovery: 1200        # hysteresis: clears only once back above 1200

Durations are seconds (a number) or text such as ``90s``, ``5m``, ``2h``, ``1d``, ``1w``,
``1h30m``; they are written back as seconds. ``per`` names at most one dimension (one alert
instance per value of it); narrow further with ``filters``. Parsing follows
:mod:`kpidash.core.registry`: pydantic models with unknown fields
forbidden, every pydantic error and every semantic problem collected into one
:class:`~kpidash.core.report.Report`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from kpidash.core import yamldoc
from kpidash.core.anomaly.result import Severity
from kpidash.core.report import Report, ReportBuilder
from kpidash.errors import RulesInvalid
from kpidash.model import DIM_NAME_PATTERN, KPI, KPI_ID_PATTERN, Grain, KpiKind

SeverityName = Literal["low", "medium", "high", "critical"]
SEVERITY_BY_NAME: dict[str, Severity] = {
    "low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH,
    "critical": Severity.CRITICAL}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
# Grains at which "the same period last week" is a whole number of periods back.
_WEEKLY_GRAINS = frozenset({Grain.MINUTE, Grain.HOUR, Grain.DAY, Grain.WEEK})
CHANNEL_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
DEFAULT_GROUP_WAIT = timedelta(0)  # a tick evaluates every slice at once: one message already
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)


def parse_duration(value: object) -> object:
    """``90`` / ``"90s"`` / ``"1h30m"`` → timedelta; anything else is left to pydantic."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_RE.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
        raise ValueError(f"duration {value!r} is not like 90s, 5m, 2h, 1d, 1w or 1h30m")
    return value


def _as_tuple(value: object) -> object:
    return (value,) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(parse_duration),
                     PlainSerializer(lambda d: d.total_seconds(), return_type=float)]


class Direction(StrEnum):
    ABOVE = "above"
    BELOW = "below"


class ChangeDirection(StrEnum):
    UP = "up"
    DOWN = "down"
    EITHER = "either"


class Baseline(StrEnum):
    PREVIOUS_PERIOD = "previous_period"
    SAME_PERIOD_LAST_WEEK = "same_period_last_week"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ThresholdCondition(_Model):
    """Met when the latest value is past a band edge (``>=`` above, ``<=`` below).

    ``bands`` maps severity → edge; the highest severity whose edge is passed wins.
    ``recovery`` (hysteresis): once active, the condition clears only past this value.
    """

    kind: Literal["threshold"]
    direction: Direction
    bands: dict[SeverityName, float] = Field(min_length=1)
    recovery: float | None = None


class ChangeCondition(_Model):
    """Percent change of the latest value vs a baseline period: 100·(v − b)/|b|.

    ``bands`` are percent magnitudes (> 0); ``recovery`` a smaller magnitude for hysteresis.
    """

    kind: Literal["change"]
    direction: ChangeDirection = ChangeDirection.EITHER
    compare_to: Baseline = Baseline.PREVIOUS_PERIOD
    bands: dict[SeverityName, float] = Field(min_length=1)
    recovery: float | None = None


class AnomalyCondition(_Model):
    """Met when the slice's latest anomaly severity is at least ``min_severity``."""

    kind: Literal["anomaly"]
    min_severity: SeverityName = "medium"


class ForecastCondition(_Model):
    """Met when, within the next ``horizon`` periods, the forecast passes ``threshold`` in
    ``direction`` or (``miss_target``) falls on the wrong side of the KPI's target."""

    kind: Literal["forecast"]
    horizon: int = Field(ge=1)
    direction: Direction | None = None
    threshold: float | None = None
    miss_target: bool = False
    severity: SeverityName = "medium"


class StaleCondition(_Model):
    """Met when the last point is older than ``max_age`` (or there is none at all)."""

    kind: Literal["stale"]
    max_age: Duration
    severity: SeverityName = "medium"


class AllOf(_Model):
    """Met when every sub-condition is met; severity is the lowest among them."""

    kind: Literal["all"]
    conditions: tuple[Condition, ...] = Field(min_length=1)


class AnyOf(_Model):
    """Met when any sub-condition is met; severity is the highest among the met ones."""

    kind: Literal["any"]
    conditions: tuple[Condition, ...] = Field(min_length=1)


Condition = Annotated[
    ThresholdCondition | ChangeCondition | AnomalyCondition | ForecastCondition
    | StaleCondition | AllOf | AnyOf,
    Field(discriminator="kind")]
AllOf.model_rebuild()
AnyOf.model_rebuild()


class AlertRule(_Model):
    """One alert rule. ``for`` and ``keep_firing_for`` are spelled so in YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)

    id: str = Field(pattern=KPI_ID_PATTERN, description="lower_snake_case identifier")
    kpi: str = Field(pattern=KPI_ID_PATTERN)
    condition: Condition
    grain: Grain = Grain.DAY
    per: Annotated[tuple[Annotated[str, Field(pattern=DIM_NAME_PATTERN)], ...],
                   BeforeValidator(_as_tuple)] = ()
    filters: dict[Annotated[str, Field(pattern=DIM_NAME_PATTERN)],
                  Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]] = Field(
        default_factory=dict)
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    notify: Annotated[tuple[Annotated[str, Field(pattern=CHANNEL_PATTERN)], ...],
                      BeforeValidator(_as_tuple)] = ()
    group_wait: Duration = DEFAULT_GROUP_WAIT
    group_interval: Duration = DEFAULT_GROUP_INTERVAL
    repeat_interval: Duration = DEFAULT_REPEAT_INTERVAL
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready definition that :meth:`model_validate` reads back (durations in s)."""
        return self.model_dump(mode="json", by_alias=True)


def parse_rules_yaml(text: str, source: str = "<yaml>") -> list[Any]:
    """YAML text (``rules:`` list or a bare list) → raw rule list; bad YAML raises RulesInvalid."""
    rb = ReportBuilder(item_kind="rule")
    try:
        doc = yamldoc.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        rb.error("yaml.syntax", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                 source=source, row=mark.line + 1 if mark is not None else None)
        raise RulesInvalid(f"cannot read alert rules from {source}", rb.build()) from None
    if doc is None:
        return []
    if isinstance(doc, dict) and set(doc) <= {"rules", "version"}:
        doc = doc.get("rules") or []
    if not isinstance(doc, list):
        rb.error("alert.shape", "expected a list of rules or a mapping with a 'rules' list, "
                 f"got {type(doc).__name__}", source=source)
        raise RulesInvalid(f"cannot read alert rules from {source}", rb.build())
    return doc


def validate_rules(raw: Iterable[Any], kpis: Mapping[str, KPI] | None = None,
                   source: str | None = None) -> tuple[list[AlertRule], Report]:
    """Check raw rules (dicts or AlertRule objects); return the valid ones and a full report.

    With ``kpis`` (id → KPI) given, references to KPIs, their dimensions and targets are
    checked too.
    """
    rb = ReportBuilder(item_kind="rule")
    rules: list[AlertRule] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        label = f"#{index + 1}"
        if isinstance(item, AlertRule):
            rule = item
        elif isinstance(item, Mapping):
            label = str(item.get("id", label))
            try:
                rule = AlertRule.model_validate(dict(item))
            except ValidationError as exc:
                rb.pydantic_errors(exc, "alert", "alert rule format", source=source,
                                   item=label)
                if isinstance(item.get("id"), str):
                    seen.setdefault(item["id"], index)
                continue
        else:
            rb.error("alert.shape", f"expected a mapping of rule fields, got "
                     f"{type(item).__name__}", source=source, item=label)
            continue
        if rule.id in seen:
            rb.error("alert.duplicate_id", f"id {rule.id!r} is already used by rule "
                     f"#{seen[rule.id] + 1}; ids must be unique", source=source, item=rule.id,
                     field="id")
            continue
        seen[rule.id] = index
        _check_rule(rule, kpis, rb, source)
        rules.append(rule)
    return rules, rb.build()


def load_rules(raw: Iterable[Any] | str, kpis: Mapping[str, KPI] | None = None,
               source: str | None = None) -> list[AlertRule]:
    """Validate (YAML text or raw items) and return the rules; raise RulesInvalid on any error."""
    items = parse_rules_yaml(raw, source or "<yaml>") if isinstance(raw, str) else raw
    rules, report = validate_rules(items, kpis, source)
    if not report.ok:
        raise RulesInvalid(f"invalid alert rules in {source or 'input'}", report)
    return rules


def _check_rule(rule: AlertRule, kpis: Mapping[str, KPI] | None, rb: ReportBuilder,
                source: str | None) -> None:
    where: dict[str, Any] = {"source": source, "item": rule.id}
    if rule.for_ < timedelta(0):
        rb.error("alert.duration", f"for must be ≥ 0, got {rule.for_}", field="for", **where)
    if rule.keep_firing_for < timedelta(0):
        rb.error("alert.duration", f"keep_firing_for must be ≥ 0, got {rule.keep_firing_for}",
                 field="keep_firing_for", **where)
    if len(set(rule.per)) != len(rule.per):
        rb.error("alert.per", "a dimension is listed twice in per", field="per", **where)
    elif len(rule.per) > 1:
        rb.error("alert.per", f"per names one dimension (one alert per value of it), got "
                 f"{list(rule.per)}; keep one and narrow with filters", field="per", **where)
    for name in ("group_wait", "group_interval", "repeat_interval"):
        if getattr(rule, name) < timedelta(0):
            rb.error("alert.duration", f"{name} must be ≥ 0, got {getattr(rule, name)}",
                     field=name, **where)
    for dim, values in rule.filters.items():
        if not values:
            rb.error("alert.filters", f"filter {dim!r} lists no values", field=f"filters.{dim}",
                     **where)
    kpi = kpis.get(rule.kpi) if kpis is not None else None
    if kpis is not None and kpi is None:
        known = ", ".join(sorted(kpis)[:20]) or "none registered"
        rb.error("alert.unknown_kpi", f"rule refers to unknown KPI {rule.kpi!r}; known KPIs: "
                 f"{known}", field="kpi", **where)
    if kpi is not None:
        dims = query_dimensions(kpi, kpis or {})
        for dim, fld in [*((d, "per") for d in rule.per),
                         *((d, f"filters.{d}") for d in rule.filters)]:
            if dim not in dims:
                rb.error("alert.dimension", f"KPI {kpi.id!r} has no dimension {dim!r}; its "
                         f"dimensions are {list(dims)}", field=fld, **where)
    _check_condition(rule.condition, "condition", rule, kpi, rb, where)


def query_dimensions(kpi: KPI, kpis: Mapping[str, KPI]) -> tuple[str, ...]:
    """Dimensions a KPI can be sliced by: its own for a simple KPI, else those every input
    has (inputs missing from ``kpis`` are skipped)."""
    seen: set[str] = set()

    def dims(k: KPI) -> set[str] | None:
        if k.kind is KpiKind.SIMPLE:
            return set(k.dimensions)
        if k.id in seen:
            return None
        seen.add(k.id)
        found = [d for d in (dims(kpis[i]) for i in k.inputs() if i in kpis) if d is not None]
        return set.intersection(*found) if found else set(k.dimensions)

    common = dims(kpi) or set()
    ordered = [d for d in kpi.dimensions if d in common]
    return (*ordered, *sorted(common - set(ordered)))


def _check_condition(cond: Condition, path: str, rule: AlertRule, kpi: KPI | None,
                     rb: ReportBuilder, where: dict[str, Any]) -> None:
    if isinstance(cond, AllOf | AnyOf):
        for i, sub in enumerate(cond.conditions):
            _check_condition(sub, f"{path}.conditions.{i}", rule, kpi, rb, where)
    elif isinstance(cond, ThresholdCondition):
        ascending = cond.direction is Direction.ABOVE
        _check_bands(cond.bands, ascending, cond.recovery, path, rb, where)
    elif isinstance(cond, ChangeCondition):
        for name, edge in cond.bands.items():
            if edge <= 0:
                rb.error("alert.bands", f"percent change bands are magnitudes > 0; {name} is "
                         f"{edge}", field=f"{path}.bands.{name}", **where)
        if cond.recovery is not None and cond.recovery < 0:
            rb.error("alert.recovery", f"recovery is a percent magnitude ≥ 0, got "
                     f"{cond.recovery}", field=f"{path}.recovery", **where)
        _check_bands(cond.bands, True, cond.recovery, path, rb, where)
        if cond.compare_to is Baseline.SAME_PERIOD_LAST_WEEK and rule.grain not in _WEEKLY_GRAINS:
            rb.error("alert.compare_to", f"same_period_last_week needs a grain of a week or "
                     f"less, the rule's grain is {rule.grain}; use previous_period",
                     field=f"{path}.compare_to", **where)
    elif isinstance(cond, ForecastCondition):
        has_threshold = cond.threshold is not None
        if has_threshold != (cond.direction is not None):
            rb.error("alert.forecast", "a forecast threshold needs both threshold and direction",
                     field=f"{path}.threshold", **where)
        if not has_threshold and not cond.miss_target:
            rb.error("alert.forecast", "a forecast condition needs a threshold (with direction) "
                     "or miss_target: true", field=path, **where)
        if cond.miss_target and kpi is not None and kpi.target is None:
            rb.error("alert.target", f"miss_target needs a target on KPI {kpi.id!r}; set one "
                     "or drop miss_target", field=f"{path}.miss_target", **where)


def _check_bands(bands: Mapping[SeverityName, float], ascending: bool, recovery: float | None,
                 path: str, rb: ReportBuilder, where: dict[str, Any]) -> None:
    """Higher severities need edges further out; recovery must lie on the normal side."""
    ordered = sorted(bands.items(), key=lambda kv: SEVERITY_BY_NAME[kv[0]])
    for (lo_name, lo), (hi_name, hi) in pairwise(ordered):
        if (hi <= lo) if ascending else (hi >= lo):
            rb.error("alert.bands", f"{hi_name} ({hi}) must be {'above' if ascending else 'below'}"
                     f" {lo_name} ({lo}): higher severities sit further from normal",
                     field=f"{path}.bands.{hi_name}", **where)
    if recovery is not None and ordered:
        first_name, first = ordered[0]
        if (recovery > first) if ascending else (recovery < first):
            rb.error("alert.recovery", f"recovery {recovery} must be on the normal side of the "
                     f"lowest band {first_name} ({first}), or the alert could never clear",
                     field=f"{path}.recovery", **where)


def describe_condition(cond: Condition) -> str:
    """A short human description, e.g. ``above 6 (high) / 8 (critical)``."""
    def bands(b: Mapping[SeverityName, float], unit: str = "") -> str:
        items = sorted(b.items(), key=lambda kv: SEVERITY_BY_NAME[kv[0]])
        return " / ".join(f"{edge:g}{unit} ({name})" for name, edge in items)

    if isinstance(cond, ThresholdCondition):
        return f"{cond.direction} {bands(cond.bands)}"
    if isinstance(cond, ChangeCondition):
        move = {"up": "rises", "down": "falls", "either": "changes"}[cond.direction]
        return f"{move} by {bands(cond.bands, '%')} vs {cond.compare_to.replace('_', ' ')}"
    if isinstance(cond, AnomalyCondition):
        return f"anomaly of severity {cond.min_severity} or more"
    if isinstance(cond, ForecastCondition):
        parts = []
        if cond.threshold is not None:
            parts.append(f"forecast {cond.direction} {cond.threshold:g}")
        if cond.miss_target:
            parts.append("forecast misses target")
        return f"{' or '.join(parts)} within {cond.horizon} periods"
    if isinstance(cond, StaleCondition):
        return f"no new data for {cond.max_age}"
    joiner = " and " if isinstance(cond, AllOf) else " or "
    return joiner.join(f"({describe_condition(c)})" for c in cond.conditions)


def walk(cond: Condition) -> Iterable[Condition]:
    """The condition and every sub-condition, depth first."""
    yield cond
    if isinstance(cond, AllOf | AnyOf):
        for c in cond.conditions:
            yield from walk(c)
