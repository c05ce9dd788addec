"""Season-length detection from a series' first points only (so it is causal).

Method, on the first :data:`DETECT_POINTS` valid observations (positions ``t`` keep gaps):

1. remove a Theil–Sen line (median of all pairwise slopes, median intercept);
2. winsorise the residuals at ±3 robust σ (1.4826 · MAD) so outliers cannot fake a cycle;
3. autocorrelation ``ρ(k) = Σ eₜeₜ₊ₖ / √(Σ eₜ² · Σ eₜ₊ₖ²)`` over the pairs where both
   points are present, for lags 1 … :data:`MAX_LAG`;
4. candidates are local peaks (``ρ(k) > ρ(k−1)`` and ``ρ(k) ≥ ρ(k+1)``) with
   ``ρ(k) ≥ max(0.3, 2.5/√pairs)``; the best one wins, except that its smallest divisor
   that is itself a candidate within 80 % of its ρ is preferred (7 rather than 14).

With few cycles of a smooth, weak cycle the peak can sit a lag off (23 for 24): pass the
season explicitly when the sampling interval is known.

A lag of 1 is never a season: the result is an int ≥ 2, or 1 for "no season".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

DETECT_POINTS = 72
"""Valid observations the automatic season detection looks at (and the minimum warm-up)."""
MAX_LAG = 24
"""Longest season the automatic detection considers (24: hourly data with a daily cycle);
:data:`DETECT_POINTS` is three such cycles."""
MIN_ACF = 0.3


def nanmedian_rows(a: F64) -> F64:
    """Median of each row ignoring NaN, NaN for an all-NaN row; shape ``a.shape[:-1]``.

    Exact (a sort, no averaging beyond the two middle values), and warning-free.
    """
    srt = np.sort(a, axis=-1)  # NaN sorts last
    n = np.sum(~np.isnan(a), axis=-1)
    lo = np.maximum((n - 1) // 2, 0)
    hi = np.maximum(n // 2, 0)
    lo_v = np.take_along_axis(srt, lo[..., None], axis=-1)[..., 0]
    hi_v = np.take_along_axis(srt, hi[..., None], axis=-1)[..., 0]
    med = 0.5 * (lo_v + hi_v)
    return np.asarray(np.where(n > 0, med, np.nan), dtype=np.float64)


def detect_season(values: F64, max_lag: int = MAX_LAG) -> int:
    """Season length of a series from the values given (call it on the prefix only).

    ``values``: 1-D, NaN for missing periods, positions are time steps. Returns 1 when no
    cycle is clear or there are too few points (a lag needs 2.5 cycles).
    """
    x = np.asarray(values, dtype=np.float64)
    t = np.flatnonzero(~np.isnan(x))
    if t.size < 8:
        return 1
    y = x[t]
    i, j = np.triu_indices(t.size, k=1)
    slope = float(np.median((y[j] - y[i]) / (t[j] - t[i])))
    e = y - slope * t
    e = e - float(np.median(e))
    mad = 1.4826 * float(np.median(np.abs(e)))
    if mad == 0.0:
        mad = 1.2533 * float(np.mean(np.abs(e)))
    if mad == 0.0:
        return 1
    e = np.clip(e, -3.0 * mad, 3.0 * mad)
    full = np.full(x.shape[0], np.nan)
    full[t] = e
    span = x.shape[0]
    top = min(max_lag, 2 * span // 5)
    if top < 2:
        return 1
    acf = np.full(top + 2, np.nan)
    need = np.zeros(top + 2)
    for k in range(1, top + 2):
        if k >= span:
            break
        a, b = full[:-k], full[k:]
        ok = ~np.isnan(a) & ~np.isnan(b)
        pairs = int(ok.sum())
        if pairs < 6:
            continue
        den = float(np.sqrt(np.sum(a[ok] ** 2) * np.sum(b[ok] ** 2)))
        acf[k] = float(np.sum(a[ok] * b[ok])) / den if den > 0 else 0.0
        need[k] = max(MIN_ACF, 2.5 / np.sqrt(pairs))
    cands = []
    for k in range(2, top + 1):
        left, here, right = acf[k - 1], acf[k], acf[k + 1]
        if np.isnan(here) or here < need[k]:
            continue
        if (np.isnan(left) or here > left) and (np.isnan(right) or here >= right):
            cands.append(k)
    if not cands:
        return 1
    best = max(cands, key=lambda k: (acf[k], -k))
    for k in sorted(cands):
        if best % k == 0 and acf[k] >= 0.8 * acf[best]:
            best = k
            break
    return best
