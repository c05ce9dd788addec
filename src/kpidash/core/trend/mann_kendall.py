"""Monotonic trend: Mann-Kendall test and Sen's slope, with corrections for
autocorrelation and seasonality.

For observations ``x`` at period positions ``t`` (NaN dropped, positions kept):

* ``S = Σ_{i<j} sign(x_j − x_i)``;
* ``Var(S) = [n(n−1)(2n+5) − Σ_g t_g(t_g−1)(2t_g+5)] / 18`` where ``t_g`` are the sizes of
  groups of tied values;
* ``Z = (S − sign(S)) / √Var(S)`` (continuity correction), two-sided ``p = 2(1 − Φ(|Z|))``.

Variants (:class:`MKMethod`):

* ``hamed_rao`` (Hamed & Rao 1998): ``Var*(S) = Var(S) · n/n*`` with
  ``n/n* = 1 + 2/(n(n−1)(n−2)) · Σ_k (n−k)(n−k−1)(n−k−2) ρ_k`` over the lags ``k`` whose rank
  autocorrelation ``ρ_k`` of the Sen-detrended series is significant (``|ρ_k| > 1.96/√n``),
  ``k ≤ max_lag`` (default 3: longer lags mostly add chance "significant" autocorrelations
  that shrink the variance and inflate false claims); a factor ≤ 0 falls back to 1;
* ``prewhiten`` (von Storch 1995): ``r1`` = lag-1 autocorrelation of the Sen-detrended
  series; the test runs on ``x'_t = x_t − r1·x_{t−1}`` (a trend keeps its sign; the
  trend-free variant of Yue et al. 2002 was not used because it inflates false claims);
* ``seasonal`` (Hirsch et al. 1982): ``S = Σ_s S_s`` and ``Var = Σ_s Var_s`` over the seasons
  ``s = t mod season_length``; Sen's slope is the median of within-season pairwise slopes.

Sen's slope is ``median((x_j − x_i)/(t_j − t_i))`` over pairs ``i<j`` (units per period); its
confidence interval (Gilbert 1987) takes, from the N' sorted slopes, the ``M1``-th and
``(M2+1)``-th values with ``M1,2 = (N' ∓ z_{1−α/2}·√Var(S))/2`` (rounded, 1-based). Pairwise
work is O(n²): fine for a few thousand points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

Array = npt.NDArray[np.float64]


class MKMethod(StrEnum):
    AUTO = "auto"
    ORIGINAL = "original"
    HAMED_RAO = "hamed_rao"
    PREWHITEN = "prewhiten"
    SEASONAL = "seasonal"


class TrendLabel(StrEnum):
    RISING = "rising"
    FALLING = "falling"
    NONE = "no significant trend"


@dataclass(frozen=True, slots=True)
class MannKendall:
    """S, its variance (after any correction), Z and the two-sided p-value."""

    n: int
    s: float
    var_s: float
    z: float
    p_value: float
    method: MKMethod
    variance_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class SenSlope:
    """Sen's slope (units per period), its CI at ``confidence``, and ``median(x − slope·t)``."""

    slope: float
    low: float
    high: float
    intercept: float
    confidence: float


@dataclass(frozen=True, slots=True)
class Trend:
    """A trend verdict. ``label`` is rising/falling only when ``p_value < alpha``.

    ``slope``/``slope_low``/``slope_high`` are KPI units per period; ``slope_pct`` is
    ``100 × slope / |level|`` (percent of the level per period) with ``level`` the median
    of the observations. Fields are ``None`` when fewer than 3 finite values exist.
    """

    label: TrendLabel
    method: MKMethod
    n: int
    alpha: float
    p_value: float | None
    z: float | None
    slope: float | None
    slope_low: float | None
    slope_high: float | None
    slope_pct: float | None
    level: float | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["label"], d["method"] = str(self.label), str(self.method)
        return d


def _clean(x: npt.ArrayLike, t: npt.ArrayLike | None) -> tuple[Array, Array]:
    v = np.asarray(x, dtype=np.float64)
    pos = np.arange(v.shape[0], dtype=np.float64) if t is None else np.asarray(t, np.float64)
    if pos.shape != v.shape:
        raise ValueError(f"positions have shape {pos.shape} but values have shape {v.shape}")
    ok = np.isfinite(v) & np.isfinite(pos)
    order = np.argsort(pos[ok], kind="stable")
    return v[ok][order], pos[ok][order]


def _s_and_var(x: Array) -> tuple[float, float]:
    n = x.shape[0]
    s = sum(float(np.sign(x[i + 1:] - x[i]).sum()) for i in range(n - 1))
    _, counts = np.unique(x, return_counts=True)
    ties = float(np.sum(counts * (counts - 1.0) * (2.0 * counts + 5.0)))
    return s, (n * (n - 1.0) * (2.0 * n + 5.0) - ties) / 18.0


def _z_p(s: float, var: float) -> tuple[float, float]:
    if var <= 0 or s == 0:
        return 0.0, 1.0
    z = (s - np.sign(s)) / np.sqrt(var)
    return float(z), float(2.0 * stats.norm.sf(abs(z)))


def _seasons(t: Array, season_length: int) -> list[npt.NDArray[np.bool_]]:
    pos = np.mod(np.round(t).astype(np.int64), season_length)
    return [pos == k for k in range(season_length)]


def _pair_slopes(x: Array, t: Array) -> Array:
    i, j = np.triu_indices(x.shape[0], k=1)
    dt = t[j] - t[i]
    return (x[j] - x[i])[dt > 0] / dt[dt > 0]


def _acf(r: Array, max_lag: int) -> Array:
    d = r - r.mean()
    den = float(d @ d)
    if den == 0:
        return np.zeros(max_lag)
    return np.array([float(d[:-k] @ d[k:]) / den for k in range(1, max_lag + 1)])


def mann_kendall(x: npt.ArrayLike, t: npt.ArrayLike | None = None, *,
                 method: MKMethod | str = MKMethod.ORIGINAL, season_length: int | None = None,
                 max_lag: int = 3) -> MannKendall:
    """Mann-Kendall test of ``x`` (shape (n,)) at positions ``t`` (default 0..n−1).

    ``method`` ``auto`` means ``seasonal`` when ``season_length ≥ 2`` and at least two full
    seasons are present, else ``original``. ``max_lag`` bounds the Hamed-Rao lags.
    """
    v, pos = _clean(x, t)
    m = _resolve(MKMethod(method), v.shape[0], season_length)
    n = v.shape[0]
    if m is MKMethod.SEASONAL:
        if not season_length or season_length < 2:
            raise ValueError(f"the seasonal Mann-Kendall test needs season_length ≥ 2, got "
                             f"{season_length!r}")
        s = var = 0.0
        for mask in _seasons(pos, season_length):
            if mask.sum() >= 2:
                s_k, var_k = _s_and_var(v[mask])
                s, var = s + s_k, var + var_k
        return MannKendall(n, s, var, *_z_p(s, var), m)
    if m is MKMethod.PREWHITEN and n >= 4:
        b = float(np.median(_pair_slopes(v, pos)))
        r1 = float(_acf(v - b * pos, 1)[0])
        v = v[1:] - r1 * v[:-1]
        n = v.shape[0]
    s, var = _s_and_var(v) if n >= 2 else (0.0, 0.0)
    factor = 1.0
    if m is MKMethod.HAMED_RAO and n >= 4:
        b = float(np.median(_pair_slopes(v, pos)))
        ranks = stats.rankdata(v - b * pos)
        lags = max(1, min(n - 3, max_lag))
        rho = _acf(ranks.astype(np.float64), lags)
        k = np.arange(1, lags + 1, dtype=np.float64)
        sig = np.abs(rho) > stats.norm.ppf(0.975) / np.sqrt(n)
        total = float(np.sum(((n - k) * (n - k - 1) * (n - k - 2) * rho)[sig]))
        factor = 1.0 + 2.0 * total / (n * (n - 1.0) * (n - 2.0))
        if factor <= 0:
            factor = 1.0
    return MannKendall(n, s, var * factor, *_z_p(s, var * factor), m, factor)


def _resolve(method: MKMethod, n: int, season_length: int | None) -> MKMethod:
    if method is not MKMethod.AUTO:
        return method
    if season_length and season_length >= 2 and n >= 2 * season_length:
        return MKMethod.SEASONAL
    return MKMethod.ORIGINAL


def sen_slope(x: npt.ArrayLike, t: npt.ArrayLike | None = None, *, confidence: float = 0.95,
              season_length: int | None = None, var_s: float | None = None) -> SenSlope:
    """Sen's slope of ``x`` over positions ``t`` with a ``confidence`` CI (see module doc).

    With ``season_length`` only pairs within the same season count (seasonal Sen slope).
    ``var_s`` overrides Var(S) for the interval (e.g. a Hamed-Rao corrected variance).
    """
    v, pos = _clean(x, t)
    if season_length and season_length >= 2:
        parts = [(_pair_slopes(v[mk], pos[mk]), _s_and_var(v[mk])[1])
                 for mk in _seasons(pos, season_length) if mk.sum() >= 2]
        slopes = np.sort(np.concatenate([p for p, _ in parts])) if parts else np.empty(0)
        var = sum(vv for _, vv in parts)
    else:
        slopes = np.sort(_pair_slopes(v, pos))
        var = _s_and_var(v)[1] if v.shape[0] >= 2 else 0.0
    if slopes.size == 0:
        raise ValueError("Sen's slope needs at least two finite values at distinct positions")
    var = var if var_s is None else var_s
    slope = float(np.median(slopes))
    c = stats.norm.ppf(0.5 + confidence / 2.0) * np.sqrt(max(var, 0.0))
    nn = slopes.size
    lo = max(int(np.round((nn - c) / 2.0)) - 1, 0)
    hi = min(int(np.round((nn + c) / 2.0)), nn - 1)
    return SenSlope(slope, float(slopes[lo]), float(slopes[hi]),
                    float(np.median(v - slope * pos)), confidence)


def trend(x: npt.ArrayLike, t: npt.ArrayLike | None = None, *, alpha: float = 0.05,
          method: MKMethod | str = MKMethod.AUTO, season_length: int | None = None,
          max_lag: int = 3) -> Trend:
    """Test ``x`` (shape (n,), NaN = missing) for a monotonic trend at level ``alpha``.

    The label is rising/falling only when the Mann-Kendall p-value is below ``alpha`` and
    Sen's slope has the same sign; the slope CI has confidence ``1 − alpha`` and uses the
    (corrected) variance of S.
    """
    v, pos = _clean(x, t)
    m = _resolve(MKMethod(method), v.shape[0], season_length)
    if v.shape[0] < 3 or np.unique(pos).size < 3:
        return Trend(TrendLabel.NONE, m, int(v.shape[0]), alpha, *([None] * 7))
    mk = mann_kendall(v, pos, method=m, season_length=season_length, max_lag=max_lag)
    seasonal = season_length if m is MKMethod.SEASONAL else None
    # Pre-whitening changes the tested series, not the slope's data: keep the raw Var(S).
    var = None if m in (MKMethod.PREWHITEN, MKMethod.SEASONAL) else mk.var_s
    sen = sen_slope(v, pos, confidence=1.0 - alpha, season_length=seasonal, var_s=var)
    level = float(np.median(v))
    label = TrendLabel.NONE
    if mk.p_value < alpha and sen.slope > 0 and mk.s > 0:
        label = TrendLabel.RISING
    elif mk.p_value < alpha and sen.slope < 0 and mk.s < 0:
        label = TrendLabel.FALLING
    pct = 100.0 * sen.slope / abs(level) if level != 0 else None
    return Trend(label, m, int(v.shape[0]), alpha, mk.p_value, mk.z, sen.slope, sen.low,
                 sen.high, pct, level)
