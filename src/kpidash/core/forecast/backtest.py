"""Rolling-origin backtest arithmetic: error scores, conformal interval widths, coverage.

Notation for one panel: C candidates, k series, W windows, H = h_bt steps per window.

* Scaled error of candidate c: |y − f| / scale on the series' own scale, where
  scale = mean |y_t − y_{t−m}| over the data before the first valid origin (m = season
  length or 1; falls back to lag 1, then to 1.0, when that mean is 0). Its mean over a window's
  steps is the window's MASE; sMAPE = 200·|y − f| / (|y| + |f|) (0 when both are 0).
* Interval width (split-conformal, per series): on the modelling scale, normalised errors
  r = |y − f| / shape_j (shape_j = the model's sd_j/σ for step j) from N backtest cells give the
  half-width q_L·shape_j with q_L the ⌈(N + 1)·L⌉-th smallest r (L = level/100). When N is too
  small for that rank (N < L/(1 − L)), q_L = z_L·σ instead (the Gaussian interval). Across
  levels (ascending), a q_L not above the previous level's q_{L'} (a tie among few errors, or a
  Gaussian fallback below an empirical value) becomes q_{L'}·z_L/z_{L'}, so a higher level gives
  a strictly wider interval whenever the width is not 0.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from kpidash.core.forecast.types import FloatArray

_Z = NormalDist()  # stdlib: scipy.stats alone costs ~0.7 s of import time


def mase_scale(y: FloatArray, start: FloatArray | np.ndarray, upto: np.ndarray, m: int) -> FloatArray:
    """Per-row MASE denominator from ``y`` (k, T) over columns [start, upto) (formula above)."""
    cols = np.arange(y.shape[1])[None, :]
    out = np.ones(y.shape[0])
    done = np.zeros(y.shape[0], dtype=bool)
    for lag in (m, 1) if m > 1 else (1,):
        d = np.abs(y[:, lag:] - y[:, :-lag])
        use = (cols[:, lag:] - lag >= start[:, None]) & (cols[:, lag:] < upto[:, None])
        cnt = use.sum(axis=1)
        mean = np.where(use, d, 0.0).sum(axis=1) / np.maximum(cnt, 1)
        good = ~done & (cnt > 0) & (mean > 0)
        out[good] = mean[good]
        done |= good
    return out


def smape(y: FloatArray, f: FloatArray) -> FloatArray:
    """Elementwise 200·|y − f| / (|y| + |f|), 0 where both are 0; NaN propagates."""
    den = np.abs(y) + np.abs(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(den > 0, 200.0 * np.abs(y - f) / den, 0.0), dtype=np.float64)


def conformal_q(r: FloatArray, levels: tuple[int, ...], sigma: FloatArray) -> FloatArray:
    """Half-width multipliers q (k, len(levels)) from normalised errors ``r`` (k, N) (NaN =
    missing) and the Gaussian fallback ``sigma`` (k,); levels ascending (formula above)."""
    k = r.shape[0]
    rs = np.sort(np.where(np.isfinite(r), r, np.inf), axis=1)
    n = np.isfinite(r).sum(axis=1)
    out = np.empty((k, len(levels)))
    prev = np.zeros(k)
    z_prev = 1.0
    for i, lev in enumerate(levels):
        L = lev / 100.0
        z = float(_Z.inv_cdf(0.5 + L / 2.0))
        rank = np.ceil((n + 1) * L).astype(np.int64)
        enough = (rank <= n) & (n > 0)
        emp = np.take_along_axis(rs, np.clip(rank - 1, 0, max(rs.shape[1] - 1, 0))[:, None], axis=1)[:, 0] \
            if rs.shape[1] else np.zeros(k)
        gauss = z * sigma
        q = np.where(enough, emp, gauss)
        q = np.where(np.isfinite(q), q, gauss)
        prev = np.where(q > prev, q, prev * (z / z_prev))
        z_prev = z
        out[:, i] = prev
    return out
