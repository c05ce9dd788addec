"""Forecasts of stored KPIs: the engine queries the KPI at a grain and calls core.forecast.

The KPI's bounds become the forecaster's bounds (a rate in [0, 100] is modelled on a logit
scale, a non-negative count on a log scale), its ``forecast_model`` picks the model, and the
season is detected among the natural cycles of the grain unless the KPI sets one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from kpidash.core import aggregate as agg
from kpidash.core.forecast import Forecast, forecast
from kpidash.errors import QueryError
from kpidash.model import KPI, Grain, Series

# Cycles worth testing for at each grain (the forecaster picks by autocorrelation).
SEASON_CANDIDATES: dict[Grain, tuple[int, ...] | None] = {
    Grain.MINUTE: (60, 1440), Grain.HOUR: (24, 168), Grain.DAY: (7,), Grain.WEEK: (52,),
    Grain.MONTH: (12,), Grain.QUARTER: (4,), Grain.YEAR: None}


@dataclass(frozen=True)
class KpiForecast:
    """A forecast of one KPI series; ``labels`` are the future periods (ISO, local zone)."""

    kpi_id: str
    grain: Grain
    group: str | None
    labels: tuple[str, ...]
    history_end: str
    result: Forecast

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "kpi_id": self.kpi_id, "grain": str(self.grain), "group": self.group,
            "history_end": self.history_end, "periods": list(self.labels),
            "forecast": _floats(r.mean),
            "intervals": {str(lv): {"lower": _floats(r.lower[lv]), "upper": _floats(r.upper[lv])}
                          for lv in sorted(r.lower)},
            "model": r.model, "season_length": r.season_length,
            "selection": {"criterion": r.selection.criterion,
                          "scores": {k: _float(v) for k, v in r.selection.scores.items()}},
            "backtest": {"mase": _float(r.backtest.mase), "smape": _float(r.backtest.smape),
                         "coverage": {str(k): _float(v) for k, v in r.backtest.coverage.items()},
                         "windows": r.backtest.n_windows},
        }


def forecast_series(kpi: KPI, series: list[Series], now: datetime, horizon: int,
                    levels: tuple[int, ...], n_jobs: int = 1) -> list[KpiForecast]:
    """Forecast each series from its periods complete at ``now``, ``horizon`` periods ahead."""
    histories, ends = [], []
    for s in series:
        last = agg.complete_periods(s, now) - 1  # the period containing `now` is not over
        finite = np.flatnonzero(np.isfinite(s.values[:last + 1]))
        if finite.size == 0:
            raise QueryError(f"no complete {s.grain} of {kpi.id!r} has data yet")
        histories.append(s.values[finite[0]:last + 1])
        ends.append(last)
    grain = series[0].grain
    results = forecast(histories, horizon, levels=levels, model=kpi.forecast_model,
                       bounds=(kpi.min_value, kpi.max_value),
                       season_length=None,
                       season_candidates=SEASON_CANDIDATES[grain], n_jobs=n_jobs)
    out = []
    for s, last, r in zip(series, ends, results, strict=True):
        out.append(KpiForecast(kpi.id, grain, s.group, _future(s, last, horizon),
                               s.labels[last], r))
    return out


def _future(s: Series, last: int, horizon: int) -> tuple[str, ...]:
    """Labels of the ``horizon`` periods after period ``last`` of ``s``."""
    start = pd.Timestamp(s.periods[last]).tz_localize("UTC").to_pydatetime()
    keys = agg.period_keys(start, start + _span(s.grain, horizon + 2), s.grain, s.tz)
    _, labels = agg.keys_to_utc(keys, s.grain, s.tz)
    return labels[1:horizon + 1]


def _span(grain: Grain, n: int) -> pd.Timedelta:
    days = {Grain.MINUTE: 1 / 1440, Grain.HOUR: 1 / 24, Grain.DAY: 1, Grain.WEEK: 7,
            Grain.MONTH: 31, Grain.QUARTER: 92, Grain.YEAR: 366}[grain]
    return pd.Timedelta(days=days * n)


def _float(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _floats(a: np.ndarray[Any, Any]) -> list[float | None]:
    return [_float(float(v)) for v in a]
