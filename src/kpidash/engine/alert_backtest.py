"""Backtest alert rules on stored history (the data side of :mod:`kpidash.core.alerts.backtest`).

Each rule's KPI is queried over all stored history up to the end of the replay (so the first
evaluations have their look-back), anomaly severities come from the same causal detector the
live path uses, and forecast conditions refit the KPI's forecast every season (7 days at a
daily grain, 24 hours at an hourly one …) on the data known at that point, reading the
forecast for later steps from that fit — refitting at every step would cost a full model
selection per period.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from kpidash.core import aggregate as agg
from kpidash.core.alerts import AlertRule
from kpidash.core.alerts.backtest import (
    Incident,
    RuleReplay,
    Score,
    SliceHistory,
    replay,
    score,
)
from kpidash.core.alerts.rules import AnomalyCondition, ForecastCondition, walk
from kpidash.errors import KpidashError, QueryError
from kpidash.model import KPI, Grain, Series

if TYPE_CHECKING:
    from kpidash.engine import Engine

Progress = Callable[[int, int | None], None]


def backtest(engine: Engine, rules: Sequence[AlertRule], start: datetime, end: datetime,
             incidents: Sequence[Incident] = (), progress: Progress | None = None,
             ) -> list[tuple[RuleReplay, Score | None]]:
    """Replay ``rules`` over ``[start, end]``; score each against ``incidents`` if given."""
    if start.tzinfo is None or end.tzinfo is None:
        raise QueryError("backtest --from and --to must be timezone-aware")
    if end <= start:
        raise QueryError(f"backtest end {end.isoformat()} must be after start "
                         f"{start.isoformat()}")
    agg.check_instants(start, end, "backtest")
    prepared = []
    for n, rule in enumerate(rules):
        kpi = engine.registry.get(rule.kpi)
        prepared.append((rule, kpi, _histories(engine, rule, kpi, end)))
        if progress:
            progress(n + 1, len(rules) + 1)
    runs = replay(prepared, start, end)
    if progress:
        progress(len(rules) + 1, len(rules) + 1)
    out: list[tuple[RuleReplay, Score | None]] = []
    for (rule, _, hist), run in zip(prepared, runs, strict=True):
        sc = None
        if incidents:
            inputs = (rule.kpi, *engine.registry.simple_inputs(rule.kpi))
            sc = score(run, rule, inputs, _period(hist), incidents)
        out.append((run, sc))
    return out


def _period(hist: Sequence[SliceHistory]) -> timedelta:
    for h in hist:
        if len(h.periods) > 1:
            d = np.median(np.diff(h.periods).astype("timedelta64[us]").astype(np.int64))
            return timedelta(microseconds=int(d))
    return timedelta(days=1)


def _histories(engine: Engine, rule: AlertRule, kpi: KPI, end: datetime,
               ) -> list[SliceHistory]:
    from kpidash.engine import anomalies as anomalies_

    tz, grain = engine.timezone, rule.grain
    beyond = agg.periods_back(agg.period_start(end, grain, tz), grain, -2, tz)
    per = rule.per[0] if rule.per else None
    series = engine.query(rule.kpi, grain, None, beyond, filters=dict(rule.filters),
                          group_by=per)
    needs_sev = any(isinstance(c, AnomalyCondition) for c in walk(rule.condition))
    horizon = max((c.horizon for c in walk(rule.condition) if isinstance(c, ForecastCondition)),
                  default=0)
    scores = anomalies_.score_series(kpi, series, beyond) if needs_sev else [None] * len(series)
    out = []
    for s, sc in zip(series, scores, strict=True):
        key = ((per, s.group),) if per and s.group is not None else ()
        sev = np.zeros(len(s), np.int8)
        if sc is not None:
            sev[:len(sc)] = sc.severity
        fc = _forecaster(kpi, s, horizon) if horizon else None
        out.append(SliceHistory(key, s.periods[:-1], s.periods[1:], s.values[:-1], sev[:-1], fc))
    return out


def _forecaster(kpi: KPI, s: Series, horizon: int) -> Callable[[int], Any]:
    from kpidash.core.forecast import forecast
    from kpidash.engine.anomalies import GRAIN_SEASON
    from kpidash.engine.forecasts import SEASON_CANDIDATES

    every = max(1, GRAIN_SEASON[s.grain])
    cache: dict[int, Any] = {}

    def at(k: int) -> Any:
        k0 = k - k % every
        if k0 not in cache:
            finite = np.flatnonzero(np.isfinite(s.values[:k0 + 1]))
            try:
                if finite.size < 4:
                    raise QueryError("too little history to forecast")
                (f,) = forecast([s.values[finite[0]:k0 + 1]], horizon + every, levels=(80,),
                                model=kpi.forecast_model, bounds=(kpi.min_value, kpi.max_value),
                                season_candidates=SEASON_CANDIDATES[Grain(s.grain)])
                cache[k0] = np.asarray(f.mean, dtype=np.float64)
            except (KpidashError, ValueError):
                cache[k0] = np.empty(0)
        mean = cache[k0]
        return mean[k - k0:k - k0 + horizon]

    return at


def backtest_doc(run: RuleReplay, sc: Score | None) -> dict[str, Any]:
    """One rule's replay (and score) as JSON: episodes, notifications per week, metrics."""
    doc: dict[str, Any] = {
        "rule": run.rule_id, "kpi": run.kpi_id, "from": run.start.isoformat(),
        "to": run.end.isoformat(), "evaluations": run.evaluations,
        "episodes": [{"slice": _slice_text(e.slice), "fingerprint": e.fingerprint,
                      "fired_at": e.fired_at.astimezone(UTC).isoformat(),
                      "resolved_at": e.resolved_at.astimezone(UTC).isoformat()
                      if e.resolved_at else None, "peak": e.peak.label}
                     for e in run.episodes],
        "notifications": len(run.sent),
        "notifications_per_week": run.per_week(),
    }
    if sc is not None:
        doc["score"] = {
            "relevant": sc.relevant, "detected": sc.detected, "episodes": sc.episodes,
            "true_episodes": sc.true_episodes, "precision": sc.precision, "recall": sc.recall,
            "mean_time_to_detect_hours": None if sc.mean_time_to_detect is None
            else sc.mean_time_to_detect.total_seconds() / 3600,
            "detections": [{"incident": i, "delay_hours": d.total_seconds() / 3600}
                           for i, d in sc.detections],
            "missed": list(sc.missed)}
    return doc


def _slice_text(pairs: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in pairs) or "(all)"


__all__ = ["backtest", "backtest_doc"]
