"""Trend reports of stored KPIs: change vs the previous period and a year ago, a significant
trend over a recent window, and trend-change points (the computations live in core.trend)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from kpidash.core.trend import (
    PeriodComparison,
    Trend,
    TrendBreaks,
    series_breaks,
    series_change,
    series_trend,
)
from kpidash.model import KPI, Grain, Series

# How many complete periods the "is it trending?" test looks back over, per grain.
TREND_WINDOW = {Grain.MINUTE: 240, Grain.HOUR: 168, Grain.DAY: 90, Grain.WEEK: 26,
                Grain.MONTH: 24, Grain.QUARTER: 12, Grain.YEAR: 10}


@dataclass(frozen=True)
class TrendReport:
    kpi_id: str
    grain: Grain
    group: str | None
    change: PeriodComparison
    trend: Trend
    window: int
    breaks: TrendBreaks
    labels: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        breaks = self.breaks.to_dict()
        for b in breaks["breaks"]:
            b["label"] = self.labels[b["index"]] if b["index"] < len(self.labels) else None
        return {"kpi_id": self.kpi_id, "grain": str(self.grain), "group": self.group,
                "change": self.change.to_dict(),
                "trend": {**self.trend.to_dict(), "window_periods": self.window},
                "trend_changes": breaks}


def report(kpi: KPI, series: Series, now: datetime, window: int | None = None) -> TrendReport:
    """Change, trend and breaks of one series, using only periods complete at ``now``."""
    change = series_change(series, kpi, now=now)
    last = change.current_index
    n = (last + 1) if last is not None else 0
    w = window or TREND_WINDOW[series.grain]
    lo = max(0, n - w)
    recent = Series(series.kpi_id, series.grain, series.tz, series.periods[lo:n],
                    series.values[lo:n], series.group, series.labels[lo:n])
    complete = Series(series.kpi_id, series.grain, series.tz, series.periods[:n],
                      series.values[:n], series.group, series.labels[:n])
    enough = int(np.isfinite(complete.values).sum()) >= 6
    breaks = series_breaks(complete, kpi) if enough else series_breaks(
        Series(series.kpi_id, series.grain, series.tz, series.periods[:0], series.values[:0]),
        kpi)
    return TrendReport(kpi.id, series.grain, series.group, change, series_trend(recent, kpi),
                       min(w, n), breaks, complete.labels)
