"""Trend, trend-change, record and anomaly insights from one series of complete periods."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from kpidash.core.drivers import Decomposition, MixRate
from kpidash.core.insights.change import _driver_clause, period_end
from kpidash.core.insights.model import (
    Insight,
    InsightType,
    SliceKey,
    magnitude_of,
    significance_of,
)
from kpidash.core.insights.wording import news, number, percent, period_phrase, rate
from kpidash.core.trend import Trend, TrendBreaks
from kpidash.model import KPI, Grain, Series

RECORD_WINDOW = {Grain.MINUTE: 1440, Grain.HOUR: 24 * 90, Grain.DAY: 365, Grain.WEEK: 104,
                 Grain.MONTH: 36, Grain.QUARTER: 12, Grain.YEAR: 10}
MIN_RECORD_HISTORY = 30
UNIT_OF = {Grain.MINUTE: "minute", Grain.HOUR: "hour", Grain.DAY: "day", Grain.WEEK: "week",
           Grain.MONTH: "month", Grain.QUARTER: "quarter", Grain.YEAR: "year"}


def trend_insights(kpi: KPI, series: Series, trend: Trend, window: int, breaks: TrendBreaks,
                   *, slice_: SliceKey = (), recent_breaks: int | None = None) -> list[Insight]:
    """A significant trend over the last ``window`` periods, and significant trend changes
    in the last ``recent_breaks`` periods (default: a quarter of the window)."""
    out: list[Insight] = []
    n = len(series)
    if n == 0:
        return out
    unit = UNIT_OF[series.grain]
    end = period_end(series, n - 1)
    if str(trend.label) in ("rising", "falling") and trend.slope_pct is not None:
        total = trend.slope_pct / 100.0 * window
        direction = "rising" if trend.slope_pct > 0 else "falling"
        text = (f"{kpi.name} has been {direction} over the last {window} {unit}s, about "
                f"{'+' if trend.slope_pct > 0 else '−'}{abs(trend.slope_pct):.2g}% per {unit} "
                f"({percent(total)} over the period)" + news(trend.slope_pct, kpi))
        out.append(Insight(InsightType.TREND, kpi.id, text, end, significance_of(trend.p_value),
                           magnitude_of(total), {**trend.to_dict(), "window_periods": window},
                           slice_, series.labels[n - 1], f"{series.grain}:trend"))
    horizon = recent_breaks if recent_breaks is not None else max(3, window // 4)
    for b in breaks.significant:
        if b.index < n - horizon or b.index >= n:
            continue
        label = series.labels[b.index]
        level = float(np.nanmedian(series.values)) if np.isfinite(series.values).any() else 0.0
        before = 100 * b.slope_before / abs(level) if level else math.nan
        after = 100 * b.slope_after / abs(level) if level else math.nan
        text = (f"{kpi.name} changed course {period_phrase(label, series.grain)}: from "
                f"{rate(before)} to {rate(after)} per {unit}")
        if b.jump:
            text += f", with a step of {number(b.jump, kpi.unit)}"
        change = (b.slope_after - b.slope_before) * horizon + b.jump
        rel = change / abs(level) if level else math.inf
        out.append(Insight(InsightType.TREND, kpi.id, text + news(change, kpi),
                           period_end(series, b.index), significance_of(b.p_value),
                           magnitude_of(rel), {**b.to_dict(), "label": label, "level": level},
                           slice_, label, f"{series.grain}:break"))
    return out


def record_insight(kpi: KPI, series: Series, *, slice_: SliceKey = ()) -> Insight | None:
    """The last complete period is the highest or lowest of the window (one grain's worth)."""
    v = np.asarray(series.values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(v))
    if finite.size == 0 or finite[-1] != v.size - 1:
        return None
    w = RECORD_WINDOW[series.grain]
    window = v[max(0, v.size - w):]
    past = window[:-1][np.isfinite(window[:-1])]
    if past.size < MIN_RECORD_HISTORY:
        return None
    last = float(v[-1])
    hi, lo = float(past.max()), float(past.min())
    if last <= hi and last >= lo:
        return None
    high = last > hi
    previous = hi if high else lo
    span = f"{past.size + 1} {UNIT_OF[series.grain]}s"
    label = series.labels[-1]
    text = (f"{kpi.name} reached its {'highest' if high else 'lowest'} level in {span} "
            f"{period_phrase(label, series.grain)}: {number(last, kpi.unit)} (previous "
            f"{'high' if high else 'low'} {number(previous, kpi.unit)})"
            + news(1.0 if high else -1.0, kpi))
    margin = (last - previous) / abs(previous) if previous else math.inf
    facts = {"value": last, "previous_record": previous, "kind": "high" if high else "low",
             "window_periods": int(past.size + 1), "period": label}
    return Insight(InsightType.RECORD, kpi.id, text, period_end(series, v.size - 1),
                   1.0 - 1.0 / (past.size + 1), magnitude_of(margin, 0.05), facts, slice_,
                   label, f"{series.grain}:{'high' if high else 'low'}")


def anomaly_insight(kpi: KPI, anomaly: Mapping[str, Any], grain: Grain, at: datetime, *,
                    label: str, slice_: SliceKey = (),
                    drivers: Decomposition | MixRate | None = None) -> Insight:
    """An unusual value: actual vs the detector's expected range, with its likely drivers.

    ``anomaly`` is a stored anomaly (actual, expected, lo, hi, score, severity, kind)."""
    actual, expected = float(anomaly["actual"]), float(anomaly["expected"])
    lo, hi = float(anomaly["lo"]), float(anomaly["hi"])
    up = actual > expected
    text = (f"{kpi.name} was unusually {'high' if up else 'low'} "
            f"{period_phrase(label, grain)}: {number(actual, kpi.unit)} vs "
            f"{number(lo, kpi.unit)}–{number(hi, kpi.unit)} expected "
            f"({anomaly.get('severity', '')} {anomaly.get('kind', '')})")
    rel = (actual - expected) / abs(expected) if expected else math.inf
    facts: dict[str, Any] = {k: anomaly.get(k) for k in (
        "actual", "expected", "lo", "hi", "score", "severity", "kind", "favourable")}
    facts["period"] = label
    if drivers is not None:
        clause, dfacts = _driver_clause(drivers, rel)
        text += clause
        facts["drivers"] = dfacts
    text += news(actual - expected, kpi)
    score = float(anomaly.get("score") or 0.5)
    return Insight(InsightType.ANOMALY, kpi.id, text, at, min(1.0, max(0.0, score)),
                   magnitude_of(rel), facts, slice_, label, f"{grain}:anomaly")
