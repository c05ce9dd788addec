"""Pace to goal: the chance a KPI reaches its target by the end of the period, and the
run-rate it needs.

The period (the KPI's ``target_grain``, a month by default) is split into the part already
observed and the rest, forecast day by day. For an additive KPI (a sum or a count) the target
is the period's total: projected = to-date total + Σ forecast. For anything else (ratios,
means, stocks) the target is a level: projected = the day-weighted mean of the to-date value
and the forecast days (exact when every day weighs the same, e.g. a ratio with a steady
denominator). Each forecast day's spread comes from its 80 % interval (σ = width / 2.563);
days are taken as independent, so σ of the projection is √Σσ² (÷ days for a level). The
chance is Φ(±(projected − target) / σ), on the side the KPI wants to be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from kpidash.core.insights.model import Insight, InsightType, magnitude_of
from kpidash.core.insights.wording import number, percent

Z80 = 1.2815515655446004  # the 90th percentile of the standard normal


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def pace_insight(*, kpi_id: str, name: str, unit: str, target: float, higher_is_better: bool,
                 additive: bool, period_label: str, period_words: str, at: datetime,
                 to_date: float, elapsed: int, remaining_mean: Sequence[float],
                 remaining_low80: Sequence[float], remaining_high80: Sequence[float],
                 ) -> Insight | None:
    """``to_date``: the period's total so far (additive) or its value so far (level), over
    ``elapsed`` days; ``remaining_*``: forecast mean and 80 % bounds of each remaining day."""
    remaining = len(remaining_mean)
    total_days = elapsed + remaining
    if remaining == 0 or elapsed == 0 or not math.isfinite(to_date):
        return None
    mean = [float(v) for v in remaining_mean]
    sds = [max(0.0, (float(h) - float(lo)) / (2 * Z80))
           for lo, h in zip(remaining_low80, remaining_high80, strict=True)]
    if not all(math.isfinite(v) for v in mean + sds):
        return None
    spread = math.sqrt(sum(s * s for s in sds))
    if additive:
        projected = to_date + sum(mean)
        needed = (target - to_date) / remaining
        so_far = to_date / elapsed
    else:
        projected = (to_date * elapsed + sum(mean)) / total_days
        spread /= total_days
        needed = (target * total_days - to_date * elapsed) / remaining
        so_far = to_date
    gap = projected - target if higher_is_better else target - projected
    chance = (1.0 if gap >= 0 else 0.0) if spread == 0 else _phi(gap / spread)
    head = (f"{name} is on course for {number(projected, unit)} {period_words} against a "
            f"{number(target, unit)} target: {percent(chance)} chance of "
            f"{'reaching' if higher_is_better else 'staying within'} it")
    rate_words = "per day" if additive else "on average"
    if chance < 0.95:
        head += (f"; the rest of the period needs {number(needed, unit)} {rate_words} (so far "
                 f"{number(so_far, unit)})")
    head += " — good news" if chance >= 0.8 else " — worth a look" if chance < 0.5 else ""
    facts = {"target": target, "projected": projected, "projected_sd": spread,
             "chance": chance, "to_date": to_date, "days_elapsed": elapsed,
             "days_remaining": remaining, "needed": needed, "so_far_rate": so_far,
             "additive": additive, "period": period_label}
    certainty = abs(chance - 0.5) * 2
    rel = (projected - target) / abs(target) if target else math.inf
    return Insight(InsightType.PACE, kpi_id, head, at, certainty, magnitude_of(rel), facts,
                   (), period_label, "pace")
