"""Forecast engine: exponential smoothing, baselines, automatic model choice, calibrated intervals.

Public API::

    forecast(series, horizon, *, season_length=None, levels=(80, 95), bounds=(None, None),
             n_jobs=1, model="auto") -> list[Forecast]
    fit_model(y, horizon, model, *, season_length=None, params=None) -> ModelFit
    detect_season_length(y) -> int
    MODELS  # names accepted as ``model`` (and in a KPI's ``forecast_model``)

Modules: ``ets`` (Holt-Winters / ETS recursion vectorised across series), ``baselines``
(naive, seasonal naive, Theta), ``seasonality`` (ACF detection, decomposition), ``transform``
(log / logit for bounded KPIs), ``backtest`` (scores, conformal widths), ``select`` (choice,
calibration, metrics per panel), ``panel`` (the end-aligned batch layout), ``api``.
"""

from kpidash.core.forecast.api import DEFAULT_LEVELS, MIN_POINTS, fit_model, forecast
from kpidash.core.forecast.seasonality import detect_season_length
from kpidash.core.forecast.select import MODELS
from kpidash.core.forecast.types import Backtest, Forecast, ModelFit, Selection

__all__ = ["DEFAULT_LEVELS", "MIN_POINTS", "MODELS", "Backtest", "Forecast", "ModelFit", "Selection",
           "detect_season_length", "fit_model", "forecast"]
