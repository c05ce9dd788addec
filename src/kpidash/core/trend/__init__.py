"""Trends of a KPI series: period-over-period change, significant monotonic trends
(Mann-Kendall + Sen's slope) and trend-change points.

The kernels take numpy arrays (so they work on ``Series.values``); the ``series_*`` helpers
take a :class:`~kpidash.model.Series` and its :class:`~kpidash.model.KPI`.
"""

from __future__ import annotations

from kpidash.core.trend.breaks import TrendBreak, TrendBreaks, seasonal_adjust, trend_breaks
from kpidash.core.trend.change import Change, Direction, PeriodComparison, TimeLike, compare_periods
from kpidash.core.trend.mann_kendall import (
    MannKendall,
    MKMethod,
    SenSlope,
    Trend,
    TrendLabel,
    mann_kendall,
    sen_slope,
    trend,
)
from kpidash.model import KPI, Grain, Series

# Season length used for a grain when the caller gives none (KPI.season_length does not say
# at which grain it holds, so it is not used here).
DEFAULT_SEASON = {Grain.MINUTE: None, Grain.HOUR: 24, Grain.DAY: 7, Grain.WEEK: 52,
                  Grain.MONTH: 12, Grain.QUARTER: 4, Grain.YEAR: None}

__all__ = [
    "DEFAULT_SEASON", "Change", "Direction", "MKMethod", "MannKendall", "PeriodComparison",
    "SenSlope", "TimeLike", "Trend", "TrendBreak", "TrendBreaks", "TrendLabel",
    "compare_periods", "mann_kendall", "seasonal_adjust", "sen_slope", "series_breaks",
    "series_change", "series_trend", "trend", "trend_breaks",
]


def _season(series: Series, season_length: int | None) -> int | None:
    return season_length if season_length is not None else DEFAULT_SEASON[series.grain]


def series_change(series: Series, kpi: KPI, *, now: TimeLike | None = None,
                  flat_pct: float = 0.0) -> PeriodComparison:
    """:func:`compare_periods` on a Series, favourable per ``kpi.higher_is_better``."""
    return compare_periods(series.values, series.periods, grain=series.grain, now=now,
                           tz=series.tz, higher_is_better=kpi.higher_is_better,
                           flat_pct=flat_pct)


def series_trend(series: Series, kpi: KPI, *, alpha: float = 0.05,
                 method: MKMethod | str = MKMethod.AUTO,
                 season_length: int | None = None) -> Trend:
    """:func:`trend` on a Series; the season defaults to :data:`DEFAULT_SEASON` of its grain
    (the seasonal test is used only once two full seasons are present)."""
    del kpi  # the verdict does not depend on the KPI; kept for a uniform helper signature
    return trend(series.values, alpha=alpha, method=method,
                 season_length=_season(series, season_length))


def series_breaks(series: Series, kpi: KPI, *, season_length: int | None = None,
                  max_breaks: int = 3, alpha: float = 0.05) -> TrendBreaks:
    """:func:`trend_breaks` on a Series, labelled with its periods."""
    del kpi
    return trend_breaks(series.values, series.periods, max_breaks=max_breaks, alpha=alpha,
                        season_length=_season(series, season_length))
