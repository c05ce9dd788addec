"""Data-quality notes and related-KPI insights: the findings about the data itself."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from kpidash.core.correlate import Relation
from kpidash.core.insights.model import Insight, InsightType
from kpidash.model import KPI


def quality_insights(kpi: KPI, now: datetime, *, corrections: int = 0,
                     correction_window: timedelta = timedelta(days=7), gaps: int = 0,
                     gap_window: int = 30, last_point: datetime | None = None,
                     expected_every: timedelta | None = None) -> list[Insight]:
    """Corrections applied lately, missing periods in the recent window, a stale series."""
    out = []
    if corrections:
        text = (f"{corrections} value{'s' if corrections != 1 else ''} of {kpi.name} "
                f"{'were' if corrections != 1 else 'was'} corrected in the last "
                f"{correction_window.days} days (raw values kept; see its corrections)")
        out.append(Insight(InsightType.DATA_QUALITY, kpi.id, text, now, 1.0,
                           min(1.0, corrections / 10), {"corrections": corrections,
                                                        "window_days": correction_window.days},
                           (), None, "corrections"))
    if gaps:
        text = (f"{kpi.name} has no data for {gaps} of the last {gap_window} periods; "
                "figures over those periods are incomplete")
        out.append(Insight(InsightType.DATA_QUALITY, kpi.id, text, now, 1.0,
                           min(1.0, gaps / gap_window * 3), {"missing_periods": gaps,
                                                             "window_periods": gap_window},
                           (), None, "gaps"))
    if last_point is not None and expected_every is not None:
        age = now - last_point
        if age > 2 * expected_every:
            hours = age.total_seconds() / 3600
            text = (f"{kpi.name} has had no new data for {hours / 24:.1f} days (last point "
                    f"{last_point.astimezone(UTC):%Y-%m-%d %H:%M} UTC); its latest figures may "
                    "be stale")
            late = age / expected_every
            out.append(Insight(InsightType.DATA_QUALITY, kpi.id, text, now, 1.0,
                               min(1.0, math.log2(late) / 4),
                               {"last_point": last_point, "age_hours": hours,
                                "expected_every_hours": expected_every.total_seconds() / 3600},
                               (), None, "stale"))
    return out


def correlation_insight(rel: Relation, kpis: Mapping[str, KPI], unit: str, at: datetime,
                        ) -> Insight:
    """"Support tickets lead Churn by 14 days (r = 0.62) — consider tracking them together".

    Magnitude is r² (the share of one KPI's daily changes the other accounts for)."""
    lead, follow = kpis.get(rel.leader), kpis.get(rel.follower)
    a = lead.name if lead else rel.leader
    b = follow.name if follow else rel.follower
    how = "move with" if rel.r > 0 else "move against"
    if rel.lag:
        text = (f"{a} {'leads' if rel.r > 0 else 'inversely leads'} {b} by {rel.lag} "
                f"{unit}{'s' if rel.lag != 1 else ''} (r = {rel.r:.2f}) — consider tracking "
                "them together")
    else:
        text = f"{a} and {b} {how} each other {unit} to {unit} (r = {rel.r:.2f})"
    return Insight(InsightType.CORRELATION, rel.follower, text, at,
                   max(0.0, min(1.0, 1.0 - rel.q_value)), min(1.0, rel.r * rel.r),
                   rel.to_dict(), (), None, f"{rel.leader}>{rel.follower}:{rel.lag}")
