"""Result types of the forecast engine: frozen dataclasses over numpy arrays.

Shapes: ``h`` is the forecast horizon (steps after the last observation), ``n`` the length of
the series the result belongs to. Every array is float64 on the series' own scale (units of the
input), never on the modelling (transformed) scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Backtest:
    """Rolling-origin backtest of the *chosen procedure* on the series' own history.

    ``n_windows`` origins, each followed by ``horizon`` hold-out steps (fewer than the requested
    horizon only for short series). ``mase`` = mean |y − f| / mean |y_t − y_{t−m}| (in-sample
    scale on the training part before the first origin, m = season length, 1 if none);
    ``smape`` = mean 200·|y − f| / (|y| + |f|) in percent; ``coverage[level]`` = share of hold-out
    points inside the level-% interval, in [0, 1]. Figures are out-of-sample twice over: the
    model choice and the interval calibration evaluated on window w were made from the other
    windows only (leave-one-window-out). NaN with ``n_windows == 0`` when the series is too short
    to hold out anything.
    """

    mase: float
    smape: float
    coverage: dict[int, float]
    n_windows: int
    horizon: int


@dataclass(frozen=True, slots=True)
class Selection:
    """Why a model was chosen.

    ``criterion`` names the score used: ``"backtest_mase"`` (mean scaled absolute error of each
    candidate over the rolling-origin windows; lower is better) or ``"aicc"`` (short series
    without a backtest window). ``scores`` has that criterion per candidate, ``aicc`` the
    information criterion of each smoothing-family candidate (SSE-based Gaussian AICc on the
    modelling scale), NaN where undefined.
    """

    criterion: str
    scores: dict[str, float]
    aicc: dict[str, float]


@dataclass(frozen=True, slots=True)
class Forecast:
    """Forecast of one series.

    ``mean`` (h,) is the point forecast (on a transformed scale it is the back-transformed
    location, i.e. the median); ``lower[level]`` / ``upper[level]`` (h,) bound the central
    level-% prediction interval, with lower ≤ mean ≤ upper and wider for a higher level.
    ``fitted`` (n,) holds the one-step-ahead forecasts of the chosen model over the history
    (NaN where the model has no forecast yet, e.g. the first season of a seasonal naive).
    ``params`` are the fitted smoothing parameters of the chosen model (empty for baselines).
    ``season_length`` is the period used (1 = not seasonal).
    """

    mean: FloatArray
    lower: dict[int, FloatArray]
    upper: dict[int, FloatArray]
    model: str
    season_length: int
    selection: Selection
    backtest: Backtest
    params: dict[str, float] = field(default_factory=dict)
    fitted: FloatArray = field(default_factory=lambda: np.empty(0))


@dataclass(frozen=True, slots=True)
class ModelFit:
    """One named model fitted to one series (see :func:`fit_model`).

    ``params`` determine the recursion completely (smoothing parameters and initial states), so
    passing them back to :func:`fit_model` reproduces ``fitted`` and ``mean`` exactly.
    ``sigma`` is the standard deviation of the one-step residuals on the modelling scale.
    """

    model: str
    season_length: int
    mean: FloatArray
    fitted: FloatArray
    params: dict[str, float]
    sigma: float
