"""Seasonality: period detection (ACF), the classical seasonality test, seasonal indices.

Slots: a seasonal index is stored per *slot* ``t % m`` where ``t`` is the position in the
end-aligned padded matrix used by the vectorised engine, so that every model of the engine reads
the same slot for the same time step.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kpidash.core.forecast.types import FloatArray

_Z90 = 1.6448536269514722   # one-sided 95 % = two-sided 90 % normal quantile (M4's test level)
MIN_PEAK_ACF = 0.25          # a period must explain at least this much autocorrelation


def acf(x: FloatArray, max_lag: int) -> FloatArray:
    """Sample autocorrelation r_0..r_max_lag of ``x`` (n,), r_k = Σ(x_t−x̄)(x_{t+k}−x̄) / Σ(x_t−x̄)².

    Computed with an FFT (zero padded, so it is the usual biased estimator). A constant series
    gives zeros beyond lag 0.
    """
    n = x.shape[0]
    d = x - x.mean()
    size = 1 << int(2 * n - 1).bit_length()
    f = np.fft.rfft(d, size)
    r = np.fft.irfft(f * np.conj(f), size)[: max_lag + 1]
    if r[0] <= 0:
        out = np.zeros(max_lag + 1)
        out[0] = 1.0
        return out
    return np.asarray(r / r[0], dtype=np.float64)


def _peaks(r: FloatArray, n: int, lags: list[int], z: float, rise: float) -> list[int]:
    """Lags L with r_L ≥ r_{L±1}, r_L > max(MIN_PEAK_ACF, z·Bartlett s.e.) and r_L − min r_{1..L} ≥ rise."""
    se = np.sqrt((1.0 + 2.0 * np.concatenate([[0.0], np.cumsum(r[1:] ** 2)])) / n)
    return [L for L in lags if r[L] >= r[L - 1] and r[L] >= r[L + 1]
            and r[L] > max(MIN_PEAK_ACF, z * se[L - 1]) and r[L] - r[1:L].min() >= rise]


def detect_season_length(y: FloatArray, candidates: tuple[int, ...] | None = None,
                         max_period: int = 400) -> int:
    """Seasonal period of ``y`` (n,) from its autocorrelation function; 1 if none.

    Two looks, in order (L ranges over 2..min(n/2, max_period), or over ``candidates``):

    1. ACF of the linearly detrended series: L is a peak when r_L ≥ r_{L±1}, r_L > 0.25, r_L
       rises at least 0.3 above the lowest r between lags 1 and L (a real oscillation, not a
       slow wobble), and the ACF of the first differences near L (lags L−1..L+1) exceeds the 90 %
       white-noise bound 1.645/√n — so a random walk's slow waves do not count.
    2. Otherwise the ACF of the first differences (trends and level shifts removed): a peak
       needs r_L > max(0.25, 2.5 × Bartlett standard error √((1 + 2Σ_{i<L} r_i²)/n)).

    Among the peaks the smallest lag with r_L ≥ 0.8 × the highest peak wins, so a weekly cycle
    in daily data gives 7 rather than its harmonic 14. With ``candidates`` a peak one lag away
    from a candidate counts as that candidate. Only periods with two full seasons in
    ``y`` are considered.
    """
    x = y[np.isfinite(y)]
    n = x.shape[0]
    top = min(n // 2 - 1, max_period)
    if top < 2:
        return 1
    d = np.diff(x)
    if np.allclose(d, d[0]):
        return 1
    # a candidate period also matches a peak one lag off (noise moves peaks by a lag)
    lags = list(range(2, top + 1)) if candidates is None else sorted(
        {c + o for c in candidates for o in (-1, 0, 1) if 2 <= c + o <= top and 2 <= c <= top + 1})
    t = np.arange(n, dtype=np.float64)
    raw = x - np.polyval(np.polyfit(t, x, 1), t)
    r = acf(raw, top + 1)
    rd = acf(d, top + 1)
    peaks = [L for L in _peaks(r, n, lags, 0.0, 0.3) if rd[L - 1: L + 2].max() > _Z90 / np.sqrt(n - 1)]
    if not peaks:
        r = rd
        peaks = _peaks(r, n - 1, lags, 2.5, 0.0)
    if not peaks:
        return 1
    best = max(r[L] for L in peaks)
    found = int(min(L for L in peaks if r[L] >= 0.8 * best))
    return found if candidates is None else min(candidates, key=lambda c: abs(c - found))


def seasonality_test(y: FloatArray, m: int) -> bool:
    """The M4 benchmarks' 90 % test: |r_m| > 1.645·√((1 + 2Σ_{i=1}^{m−1} r_i²)/n) on raw ``y`` (n,)."""
    n = y.shape[0]
    if m < 2 or n < 3 * m:
        return False
    r = acf(y, m)
    limit = _Z90 * np.sqrt((1.0 + 2.0 * float(np.sum(r[1:m] ** 2))) / n)
    return bool(abs(r[m]) > limit)


def seasonal_indices(y: FloatArray, end: npt.NDArray[np.int64], m: int,
                     multiplicative: npt.NDArray[np.bool_]) -> FloatArray:
    """Classical-decomposition seasonal indices, shape (k, m) in slot order (slot = t % m).

    ``y`` (k, T) is end-aligned with NaN before each series' start; only positions t < end[i]
    are used. The trend is the centred moving average (2×m MA for even m); a series' index for
    slot s is the mean of y_t / trend_t (multiplicative rows) or y_t − trend_t (additive rows)
    over its positions with t % m = s, normalised to mean 1 (resp. 0). Slots without data get
    the neutral index.
    """
    k, T = y.shape
    cols = np.arange(T)
    valid = np.isfinite(y) & (cols[None, :] < end[:, None])
    v = np.where(valid, y, 0.0)
    cs = np.concatenate([np.zeros((k, 1)), np.cumsum(v, axis=1)], axis=1)
    cn = np.concatenate([np.zeros((k, 1)), np.cumsum(valid, axis=1)], axis=1)
    half = m // 2
    t = np.arange(half, T - half)
    lo, hi = t - half, t + half + 1            # m+1 points for even m, m for odd m (hi - lo)
    if m % 2 == 0:
        total = cs[:, hi] - cs[:, lo] - 0.5 * (v[:, lo] + v[:, hi - 1])
        ok = (cn[:, hi] - cn[:, lo]) == m + 1
    else:
        lo, hi = t - half, t + half + 1
        total = cs[:, hi] - cs[:, lo]
        ok = (cn[:, hi] - cn[:, lo]) == m
    trend = total / m
    yt = v[:, t]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(multiplicative[:, None], yt / trend, yt - trend)
    ok &= np.isfinite(ratio)
    slot = t % m
    sums = np.zeros((k, m))
    counts = np.zeros((k, m))
    rows = np.repeat(np.arange(k), t.shape[0]).reshape(k, -1)
    np.add.at(sums, (rows[ok], np.broadcast_to(slot, ok.shape)[ok]), ratio[ok])
    np.add.at(counts, (rows[ok], np.broadcast_to(slot, ok.shape)[ok]), 1.0)
    neutral = np.where(multiplicative, 1.0, 0.0)[:, None]
    idx = np.where(counts > 0, sums / np.maximum(counts, 1.0), neutral)
    mult_norm = idx / np.where(idx.mean(axis=1, keepdims=True) == 0, 1.0, idx.mean(axis=1, keepdims=True))
    add_norm = idx - idx.mean(axis=1, keepdims=True)
    out = np.where(multiplicative[:, None], mult_norm, add_norm)
    return np.asarray(out, dtype=np.float64)
