"""Period-over-period change, and what drove it: change, drivers and concentration insights.

**How unusual is a change?** The last complete period is compared with the one before and
with the same period a year ago (:func:`kpidash.core.trend.series_change`). Its significance
is the share of past changes of the same kind that were smaller in size — the empirical
distribution of the series' own moves, so a KPI that always swings ±20 % needs more than 20 %
to stand out. At a daily grain only moves between the same weekdays are compared (Monday
after Sunday is not news). With fewer than :data:`MIN_HISTORY` past changes the significance
is a neutral 0.5.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from kpidash.core.drivers import Concentration, Decomposition, MixRate, explained_by
from kpidash.core.insights.model import Insight, InsightType, SliceKey, magnitude_of
from kpidash.core.insights.wording import (
    REFERENCE,
    news,
    number,
    percent,
    period_phrase,
    signed,
    verb,
)
from kpidash.core.trend import series_change
from kpidash.model import KPI, Grain, Series

MIN_HISTORY = 8
MIN_CHANGE = 0.005  # smaller relative moves are not worth a sentence
YEAR_OVER_YEAR = frozenset({Grain.MONTH, Grain.QUARTER, Grain.YEAR})
YEAR_STEPS = {Grain.DAY: 364, Grain.WEEK: 52, Grain.MONTH: 12, Grain.QUARTER: 4, Grain.YEAR: 1}


def period_end(series: Series, index: int) -> datetime:
    """The instant period ``index`` ends (the next period's start; one grain on for the last)."""
    if index + 1 < len(series.periods):
        ts = series.periods[index + 1]
    else:
        step = np.diff(series.periods[-2:]) if len(series.periods) > 1 else None
        ts = series.periods[index] + (step[0] if step is not None else np.timedelta64(1, "D"))
    us = int(np.datetime64(ts, "us").astype(np.int64))
    return datetime.fromtimestamp(us / 1e6, UTC)


def empirical_significance(history: npt.NDArray[np.float64], current: float) -> float:
    """Share of |history| strictly below |current| (ties count half); 0.5 when too short."""
    h = np.abs(history[np.isfinite(history)])
    if h.size < MIN_HISTORY or not math.isfinite(current):
        return 0.5
    c = abs(current)
    return float((np.sum(h < c) + 0.5 * np.sum(h == c)) / h.size)


def _relative_moves(v: npt.NDArray[np.float64], lag: int) -> npt.NDArray[np.float64]:
    if v.size <= lag:
        return np.empty(0)
    base = v[:-lag]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (v[lag:] - base) / np.abs(base)
    out[~np.isfinite(out)] = np.nan
    return out


def change_insights(kpi: KPI, series: Series, now: datetime, *, slice_: SliceKey = (),
                    drivers: Decomposition | MixRate | None = None) -> list[Insight]:
    """Insights on the last complete period vs the previous one and vs a year ago."""
    cmp = series_change(series, kpi, now=now)
    cur = cmp.current_index
    if cur is None or cmp.current_value is None:
        return []
    v = np.asarray(series.values[:cur + 1], dtype=np.float64)
    label = series.labels[cur]
    when = period_phrase(label, series.grain)
    out: list[Insight] = []
    for name, ch, lag in (("previous", cmp.previous, 1),
                          ("year_ago", cmp.year_ago, YEAR_STEPS.get(series.grain, 0))):
        if ch.percent is None or ch.reference_value is None or ch.absolute is None or not lag:
            continue
        if name == "year_ago" and series.grain not in YEAR_OVER_YEAR:
            continue  # a day or week vs a year ago repeats the monthly story daily
        rel = ch.percent / 100.0
        if abs(rel) < MIN_CHANGE:
            continue
        moves = _relative_moves(v, lag)[:-1]  # the past ones, not the current
        if series.grain is Grain.DAY and name == "previous":
            phase = (cur - 1) % 7  # moves[i] ends at i + lag; keep the same weekday step
            moves = moves[(np.arange(moves.size)) % 7 == phase]
        sig = empirical_significance(moves, rel)
        scale = 0.10 if name == "previous" else 0.25  # yearly moves run larger
        ref = REFERENCE[series.grain] if name == "previous" else "a year earlier"
        text = (f"{kpi.name} {verb(rel, kpi)} {percent(rel)} {when} vs {ref}, to "
                f"{number(cmp.current_value, kpi.unit)}")
        facts: dict[str, Any] = {
            "grain": str(series.grain), "period": label, "value": cmp.current_value,
            "reference": name, "reference_value": ch.reference_value,
            "change": ch.absolute, "change_pct": ch.percent, "favourable": ch.favourable,
            "history_moves": int(np.isfinite(moves).sum()),
            "share_of_past_moves_smaller": sig}
        if drivers is not None and name == "previous":
            clause, dfacts = _driver_clause(drivers, rel)
            text += clause
            facts["drivers"] = dfacts
        text += news(rel, kpi)
        out.append(Insight(InsightType.CHANGE, kpi.id, text, period_end(series, cur), sig,
                           magnitude_of(rel, scale), facts, slice_, label,
                           f"{series.grain}:{name}"))
    return out


def _driver_clause(d: Decomposition | MixRate, rel: float) -> tuple[str, dict[str, Any]]:
    direction = "rise" if rel > 0 else "drop"
    if isinstance(d, MixRate):
        top = d.segments[0] if d.segments else None
        facts = {"dimension": d.dimension, "mix_effect": d.mix_effect,
                 "rate_effect": d.rate_effect}
        if top is None or d.change == 0:
            return "", facts
        main = "rates within" if abs(d.rate_effect) >= abs(d.mix_effect) else "the mix of"
        return (f"; mostly {main} {d.dimension} values, {top.label} most", facts)
    share = explained_by(d, 1)
    facts = {"dimension": d.dimension, "top": d.drivers[0].label if d.drivers else None,
             "top_share": share}
    if d.drivers and share >= 0.5:
        return f"; {d.drivers[0].label} accounts for most of the {direction}", facts
    return "", facts


def drivers_insight(kpi: KPI, grain: Grain, label: str, at: datetime,
                    d: Decomposition | MixRate, significance: float) -> Insight | None:
    """Top drivers and detractors of a change by one dimension (mix vs rate for ratios)."""
    when = period_phrase(label, grain)
    if isinstance(d, MixRate):
        if d.change == 0 or not d.segments:
            return None
        parts = ", ".join(f"{s.label} {signed(s.total, kpi.unit)}" for s in d.segments[:3])
        text = (f"{kpi.name} moved {signed(d.change, kpi.unit)} {when} by {d.dimension}: "
                f"{signed(d.rate_effect, kpi.unit)} from rates within each {d.dimension}, "
                f"{signed(d.mix_effect, kpi.unit)} from the mix between them ({parts})")
        rel = d.change / abs(d.rate_before) if d.rate_before else math.inf
        return Insight(InsightType.DRIVERS, kpi.id, text, at, significance, magnitude_of(rel),
                       d.to_dict(), (), label, f"{grain}:{d.dimension}:mix_rate")
    if d.total_change == 0 or not d.drivers:
        return None
    up = d.total_change > 0
    drivers = ", ".join(f"{c.label} {signed(c.change, kpi.unit)}"
                        + (f" ({percent(c.share_of_change)})" if c.share_of_change else "")
                        for c in d.drivers[:3])
    text = (f"{kpi.name} {'rose' if up else 'fell'} {signed(d.total_change, kpi.unit)} {when}; "
            f"by {d.dimension}: {drivers}")
    if d.detractors:
        c = d.detractors[0]
        text += f"; against the move: {c.label} {signed(c.change, kpi.unit)}"
    rel = d.total_change / abs(d.total_before) if d.total_before else math.inf
    return Insight(InsightType.DRIVERS, kpi.id, text, at, significance, magnitude_of(rel),
                   d.to_dict(), (), label, f"{grain}:{d.dimension}:contributions")


def concentration_insight(kpi: KPI, grain: Grain, label: str, at: datetime, c: Concentration,
                          threshold: float = 0.5) -> Insight | None:
    """One slice carries most of a KPI (share ≥ ``threshold``)."""
    if not c.concentrated(threshold):
        return None
    text = (f"{c.top_label} carries {percent(c.top_share)} of {kpi.name} {period_phrase(label, grain)}"
            f" (by {c.dimension}); the rest is spread over {len(c.shares) - 1} other value"
            f"{'s' if len(c.shares) != 2 else ''}")
    # significance: how far above an even split the top share is
    even = 1.0 / max(1, len(c.shares))
    sig = min(1.0, max(0.0, (c.top_share - even) / (1.0 - even))) if even < 1 else 0.0
    return Insight(InsightType.CONCENTRATION, kpi.id, text, at, sig, c.top_share, c.to_dict(),
                   (), label, f"{grain}:{c.dimension}")
