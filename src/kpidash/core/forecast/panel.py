"""The unit of vectorised work: a panel of series with one season length and one horizon.

Series are *end-aligned* in a (k, T) matrix: series i occupies columns start[i]..T−1, so every
series' forecast starts at column T and the rolling-origin backtest origins are the same
columns for every row. Cells before ``start`` hold the series' first value (never read by a
model, but finite, so that recursions run on them without overflow before being reset).

A backtest window w starts at origin o_w (a column index: the first hold-out position) and
covers columns o_w .. o_w + h_bt − 1; origins are spaced by h_bt and the last window ends at
column T − 1. Window w is *valid* for series i when at least ``min_train`` observations precede
it; ``first[i]`` is the first valid window (−1: none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kpidash.core.forecast.types import FloatArray

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def min_train(m: int) -> int:
    """Observations needed before a backtest origin: two full seasons, or 4 if not seasonal."""
    return max(2 * m, 4) if m > 1 else 4


@dataclass(frozen=True, slots=True)
class Panel:
    y: FloatArray          # (k, T) modelling scale, end-aligned
    start: IntArray        # (k,) first observed column
    m: int                 # season length (1 = not seasonal)
    h: int                 # forecast horizon
    h_bt: int              # backtest window length (≤ h; 0 = no backtest)
    origins: IntArray      # (W,) first hold-out column of each window
    valid: BoolArray       # (k, W)
    first: IntArray        # (k,) first valid window, −1 if none

    @property
    def k(self) -> int:
        return int(self.y.shape[0])

    @property
    def T(self) -> int:
        return int(self.y.shape[1])

    @property
    def n(self) -> IntArray:
        return np.asarray(self.T - self.start, dtype=np.int64)

    def actuals(self) -> FloatArray:
        """Hold-out values, (k, W, h_bt); NaN for invalid windows."""
        if self.h_bt == 0:
            return np.empty((self.k, 0, 0))
        cols = self.origins[:, None] + np.arange(self.h_bt)[None, :]
        out = self.y[:, cols]
        return np.where(self.valid[:, :, None], out, np.nan)


def make_panel(series: list[FloatArray], m: int, h: int, h_bt: int, windows: int) -> Panel:
    """Stack ``series`` (each 1-D, finite, modelling scale) into an end-aligned panel."""
    k = len(series)
    lengths = np.array([s.shape[0] for s in series], dtype=np.int64)
    T = int(lengths.max())
    y = np.empty((k, T))
    start = T - lengths
    for i, s in enumerate(series):
        y[i, : start[i]] = s[0]
        y[i, start[i]:] = s
    W = windows if h_bt > 0 else 0
    need = min_train(m)
    origins = np.array([o for o in (T - h_bt * (W - w) for w in range(W)) if o >= need],
                       dtype=np.int64)
    W = origins.shape[0]
    valid = (origins[None, :] - start[:, None]) >= need if W else np.zeros((k, 0), dtype=bool)
    first = np.where(valid.any(axis=1), valid.argmax(axis=1), -1) if W else np.full(k, -1)
    return Panel(y, start.astype(np.int64), m, h, h_bt, origins, valid, first.astype(np.int64))


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model's results over a panel, on the modelling scale.

    ``fc`` (k, h) point forecasts from the end of each series; ``shape`` (k, h) the standard
    deviation of the j-step error in units of the one-step ``sigma`` (k,); ``bt`` (k, W, h_bt)
    forecasts made at the backtest origins with parameters chosen on the data before the first
    valid origin (``shape_bt``, ``sigma_bt`` likewise); ``fitted`` (k, T) one-step forecasts
    with the final parameters; ``aicc`` (k,) NaN where undefined; ``ok`` (k,) False where the
    model does not apply (e.g. multiplicative seasonality on a series with values ≤ 0).
    ``params`` maps a parameter name to (k,) values, or ``"s"`` to the (k, m) initial seasonal
    states in phase order (phase j = j-th observation of the series).
    """

    name: str
    ok: BoolArray
    fc: FloatArray
    shape: FloatArray
    sigma: FloatArray
    bt: FloatArray
    shape_bt: FloatArray
    sigma_bt: FloatArray
    fitted: FloatArray
    aicc: FloatArray
    params: dict[str, FloatArray]
