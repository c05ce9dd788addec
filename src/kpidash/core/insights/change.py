"""Period-over-period change, and what drove it: change, drivers and concentration insights.

**How unusual is a change?** The last complete period is compared with the one before (at a
daily grain: the same weekday a week before — Monday after Sunday is not news) and, for
months, quarters and years, with the same period a year ago. The move is judged against the
series' own past moves of the same kind: robust z = (move − median) / (1.4826 · MAD), and the
significance is 2Φ(|z|) − 1 — a KPI that always swings ±20 % needs more than that to stand
out, and a business growing 2 % a week does not make news by growing 2 %. The magnitude is
the size of the move's *unusual part* (move − median), tanh-scaled. With fewer than
:data:`MIN_HISTORY` past moves the significance is a neutral 0.5 and the magnitude uses the
whole move.
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


def judge(history: npt.NDArray[np.float64], current: float) -> tuple[float, float, int]:
    """(significance, unusual part of the move, number of past moves) — see the module doc."""
    h = history[np.isfinite(history)]
    if h.size < MIN_HISTORY or not math.isfinite(current):
        return 0.5, current, int(h.size)
    med = float(np.median(h))
    mad = 1.4826 * float(np.median(np.abs(h - med)))
    spread = mad if mad > 0 else float(np.std(h))
    if spread == 0:
        return (1.0 if current != med else 0.0), current - med, int(h.size)
    z = (current - med) / spread
    return math.erf(abs(z) / math.sqrt(2.0)), current - med, int(h.size)


def _relative_moves(v: npt.NDArray[np.float64], lag: int) -> npt.NDArray[np.float64]:
    if v.size <= lag:
        return np.empty(0)
    base = v[:-lag]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (v[lag:] - base) / np.abs(base)
    out[~np.isfinite(out)] = np.nan
    return out


def _weekday_change(v: npt.NDArray[np.float64], cur: int) -> tuple[float, float] | None:
    """(reference value, change) of day ``cur`` vs the same weekday a week before."""
    if cur < 7 or not (math.isfinite(v[cur]) and math.isfinite(v[cur - 7])) or v[cur - 7] == 0:
        return None
    return float(v[cur - 7]), float(v[cur] - v[cur - 7])


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
    daily = series.grain is Grain.DAY
    candidates: list[tuple[str, float | None, float | None, bool | None, int]] = [
        ("previous", cmp.previous.reference_value, cmp.previous.absolute,
         cmp.previous.favourable, 1),
        ("year_ago", cmp.year_ago.reference_value, cmp.year_ago.absolute,
         cmp.year_ago.favourable, YEAR_STEPS.get(series.grain, 0))]
    if daily:
        week = _weekday_change(v, cur)
        candidates = [("week_ago", week[0] if week else None, week[1] if week else None,
                       None if week is None else (week[1] > 0) == kpi.higher_is_better, 7)]
    for name, ref_value, absolute, good, lag in candidates:
        if ref_value is None or absolute is None or not lag or ref_value == 0:
            continue
        if name == "year_ago" and series.grain not in YEAR_OVER_YEAR:
            continue  # a week vs a year ago repeats the monthly story weekly
        if name == "year_ago" and lag == 1:
            continue  # yearly data: the year before is the year ago, told once as "previous"
        rel = absolute / abs(ref_value)
        if abs(rel) < MIN_CHANGE:
            continue
        moves = _relative_moves(v, lag)[:-1]  # the past ones, not the current
        sig, unusual, n_hist = judge(moves, rel)
        scale = 0.10 if name != "year_ago" else 0.25  # yearly moves run larger
        ref = {"previous": REFERENCE[series.grain], "year_ago": "a year earlier",
               "week_ago": "the same day a week before"}[name]
        text = (f"{kpi.name} {verb(rel, kpi)} {percent(rel)} {when} vs {ref}, to "
                f"{number(cmp.current_value, kpi.unit)}")
        facts: dict[str, Any] = {
            "grain": str(series.grain), "period": label, "value": cmp.current_value,
            "reference": name, "reference_value": ref_value, "change": absolute,
            "change_pct": 100.0 * rel, "favourable": good, "past_moves": n_hist,
            "typical_move_pct": 100.0 * (rel - unusual), "unusual_part_pct": 100.0 * unusual}
        if drivers is not None and name == "previous":
            clause, dfacts = _driver_clause(drivers, rel)
            text += clause
            facts["drivers"] = dfacts
        text += news(rel, kpi)
        out.append(Insight(InsightType.CHANGE, kpi.id, text, period_end(series, cur), sig,
                           magnitude_of(unusual, scale), facts, slice_, label,
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
        if abs(d.rate_effect) >= abs(d.mix_effect):
            return f"; mostly from rates within each {d.dimension} ({top.label} most)", facts
        return f"; mostly from the mix across {d.dimension} values ({top.label} most)", facts
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
    size = signed(abs(d.total_change), kpi.unit).lstrip("+")  # '$100', '0.5 pts' for percent
    drivers = ", ".join(f"{c.label} {signed(c.change, kpi.unit)}"
                        + (f" ({percent(c.share_of_change)})" if c.share_of_change else "")
                        for c in d.drivers[:3])
    text = (f"{kpi.name} {'rose' if up else 'fell'} {size} {when}; "
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
    # significance: how far above an even split the top share is; a standing fact rather
    # than a change, so its magnitude is half the top share (novelty then decays it)
    even = 1.0 / max(1, len(c.shares))
    sig = min(1.0, max(0.0, (c.top_share - even) / (1.0 - even))) if even < 1 else 0.0
    return Insight(InsightType.CONCENTRATION, kpi.id, text, at, sig, 0.5 * c.top_share,
                   c.to_dict(), (), label, f"{grain}:{c.dimension}")
