"""KPIs that move together or lead one another: lagged cross-correlation with corrections.

A finding reads "Support tickets lead Churn by 14 periods (r = 0.62)".

Method
------
1. **Preparation** (:func:`prepare`). Two KPIs that both grow, or both follow the same
   weekly pattern, correlate strongly without any link between them. Each series is
   therefore differenced: ``d_t = y_t − y_{t−1}``, and with ``season_length = m > 1`` also
   seasonally differenced: ``e_t = d_t − d_{t−m}``
   ``= y_t − y_{t−1} − (y_{t−m} − y_{t−m−1})``. The output keeps the input's length (the first
   ``1`` or ``1 + m`` values are NaN) so prepared series stay aligned; NaN propagates (a
   missing value makes every difference that uses it missing).
2. **Lagged Pearson r** (:func:`cross_correlation`). For lag ``L`` in ``−max_lag…max_lag``,
   ``r(L)`` is Pearson's r between ``x[t]`` and ``y[t+L]`` over the ``n`` positions where both
   are finite; ``L > 0`` means ``x`` leads ``y`` by ``L`` periods. It is computed exactly on the
   overlap, from sums over the pairs: ``r = (nΣxy − ΣxΣy) / √((nΣx² − (Σx)²)(nΣy² − (Σy)²))``.
3. **p-value**. Autocorrelated series share fewer independent observations than ``n``; the
   effective sample size follows Bartlett:
   ``n_eff = n / (1 + 2 Σ_{k=1..K} ρx(k)ρy(k))`` with ``K = min(10, ⌊n/4⌋)``, ``ρ(k)`` the
   (biased, NaN-aware) autocorrelation of each whole series, and ``n_eff`` clipped to
   ``[4, n]``. With Fisher's ``z = atanh(r)·√(n_eff − 3)`` the two-sided ``p = 2(1 − Φ(|z|))``.
   A test with ``n < 3`` or a constant overlap has no r: ``r`` and ``p`` are NaN.
4. **Multiple testing** (:func:`relations`). Every unordered pair of series is tested at
   every lag (``pairs × (2·max_lag + 1)`` tests, undefined ones left out). Benjamini–Hochberg
   turns the p-values of ALL those tests into q-values:
   ``q_(i) = min_{j≥i} p_(j)·m/j`` (sorted ascending, capped at 1). Per pair the lag with the
   smallest q is kept (ties: larger ``|r|``, then smaller ``|lag|``, then ``a`` leading). It is
   significant when ``q ≤ alpha``, ``|r| ≥ min_abs_r`` and ``n ≥ min_n``.

Speed: each prepared series is standardised over its finite values and stored with NaN
filled by 0 plus a 0/1 validity mask; at each lag the six sums above for all pairs are six
matrix products (``X·Mᵀ``, ``X²·Mᵀ``, ``X·Yᵀ`` …), and lag ``−L`` is lag ``L`` transposed.
100 series × 200 points × lags ±14 (143 550 tests) take about 50 ms (run this module).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

Array = npt.NDArray[np.float64]

_ACF_LAGS = 10
_VAR_EPS = 1e-12  # per-pair variance (of standardised data) below this counts as constant


def _json_float(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass(frozen=True, slots=True)
class LagCorrelation:
    """Pearson ``r`` between ``x[t]`` and ``y[t+lag]`` over ``n`` finite pairs (lag > 0: x
    leads y) and its two-sided, autocorrelation-adjusted ``p_value`` (NaN when undefined)."""

    lag: int
    r: float
    n: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {"lag": self.lag, "r": _json_float(self.r), "n": self.n,
                "p_value": _json_float(self.p_value)}


@dataclass(frozen=True, slots=True)
class Relation:
    """A pair of series and its best lag.

    ``a``/``b`` are the pair in input order; ``leader`` leads ``follower`` by ``lag ≥ 0``
    periods (at lag 0 ``leader`` is ``a``). ``q_value`` is the Benjamini–Hochberg q over the
    ``tests`` tests the correction covered.
    """

    a: str
    b: str
    leader: str
    follower: str
    lag: int
    r: float
    n: int
    p_value: float
    q_value: float
    tests: int
    significant: bool

    def describe(self, unit: str = "periods") -> str:
        """Plain words, e.g. ``"tickets leads churn by 14 periods (r = 0.62)"``."""
        if self.lag == 0:
            return f"{self.a} and {self.b} move together (r = {self.r:.2f})"
        u = unit[:-1] if self.lag == 1 and unit.endswith("s") else unit
        return f"{self.leader} leads {self.follower} by {self.lag} {u} (r = {self.r:.2f})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("r", "p_value", "q_value"):
            d[k] = _json_float(d[k])
        return d


# ---------------------------------------------------------------- preparation

def prepare(values: npt.ArrayLike, season_length: int | None = None) -> Array:
    """First difference, then (``season_length > 1``) seasonal difference; same length as
    ``values`` with the leading ``1`` (or ``1 + season_length``) values NaN."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {v.shape}")
    if season_length is not None and season_length < 1:
        raise ValueError(f"season_length must be ≥ 1, got {season_length}")
    out = np.full(v.shape[0], np.nan)
    out[1:] = v[1:] - v[:-1]
    if season_length is not None and season_length > 1:
        m = season_length
        seasonal = np.full(v.shape[0], np.nan)
        seasonal[m:] = out[m:] - out[:-m]
        out = seasonal
    return out


# ---------------------------------------------------------------- vectorised core

def _standardise(s: Array) -> tuple[Array, Array, Array]:
    """(P, T) with NaN → standardised values with 0 for missing, 0/1 mask, finite counts."""
    mask = np.isfinite(s)
    cnt = mask.sum(axis=1).astype(np.float64)
    filled = np.where(mask, s, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1) / cnt
        dev = np.where(mask, s - mean[:, None], 0.0)
        sd = np.sqrt((dev * dev).sum(axis=1) / cnt)
        z = np.where(sd[:, None] > 0, dev / sd[:, None], 0.0)
    z = np.where(mask, z, 0.0)
    return np.nan_to_num(z), mask.astype(np.float64), cnt


def _acf(z: Array, cnt: Array, max_k: int) -> Array:
    """(P, max_k + 1) biased autocorrelations ρ(0..max_k) of standardised, zero-filled rows:
    ``ρ(k) = Σ_t z_t z_{t+k} / n_finite`` (ρ(0) = 1 for a non-constant row)."""
    p, t = z.shape
    out = np.zeros((p, max_k + 1))
    safe = np.where(cnt > 0, cnt, 1.0)
    for k in range(0, min(max_k, t - 1) + 1):
        out[:, k] = (z[:, : t - k] * z[:, k:]).sum(axis=1) / safe
    return out


def _lag_block(z: Array, m: Array, lag: int) -> tuple[Array, Array]:
    """r and n for all ordered pairs (i, j) between ``z_i[t]`` and ``z_j[t+lag]``, lag ≥ 0."""
    t = z.shape[1]
    p = z.shape[0]
    if lag >= t:
        return np.full((p, p), np.nan), np.zeros((p, p))
    x, mx = z[:, : t - lag], m[:, : t - lag]
    y, my = z[:, lag:], m[:, lag:]
    sums = np.vstack([mx, x, x * x]) @ np.vstack([my, y, y * y]).T  # one BLAS call
    n, sy, syy = sums[:p, :p], sums[:p, p:2 * p], sums[:p, 2 * p:]
    sx, sxy, sxx = sums[p:2 * p, :p], sums[p:2 * p, p:2 * p], sums[2 * p:, :p]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x, mean_y = sx / n, sy / n
        vx = sxx / n - mean_x * mean_x
        vy = syy / n - mean_y * mean_y
        cov = sxy / n - mean_x * mean_y
        r = cov / np.sqrt(vx * vy)
    bad = (n < 3) | (vx <= _VAR_EPS) | (vy <= _VAR_EPS)
    r = np.where(bad, np.nan, np.clip(r, -1.0, 1.0))
    return r, np.rint(n)


def _all_lags(s: Array, max_lag: int) -> tuple[Array, Array, Array]:
    """r, n, p of shape (max_lag + 1, P, P): entry [L, i, j] pairs ``s_i[t]`` with
    ``s_j[t+L]`` (so [L, j, i] is lag −L between i and j)."""
    if max_lag < 0:
        raise ValueError(f"max_lag must be ≥ 0, got {max_lag}")
    z, m, cnt = _standardise(s)
    acf = _acf(z, cnt, _ACF_LAGS)
    p_count = s.shape[0]
    rs = np.empty((max_lag + 1, p_count, p_count))
    ns = np.empty_like(rs)
    for lag in range(max_lag + 1):
        rs[lag], ns[lag] = _lag_block(z, m, lag)
    kmax = acf.shape[1] - 1
    prods = acf[:, None, 1:] * acf[None, :, 1:]
    cum = np.concatenate([np.zeros((p_count, p_count, 1)), np.cumsum(prods, axis=2)], axis=2)
    k = np.clip(ns // 4, 0, kmax).astype(np.int64)  # (L, P, P)
    bart = np.take_along_axis(cum[None, ...], k[..., None], axis=3)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = ns / (1.0 + 2.0 * bart)
        n_eff = np.where(np.isfinite(n_eff) & (n_eff > 0), n_eff, ns)
        n_eff = np.clip(n_eff, np.minimum(4.0, ns), ns)
        zf = np.arctanh(rs) * np.sqrt(np.maximum(n_eff - 3.0, 0.0))
        zf = np.nan_to_num(zf, nan=0.0, posinf=np.inf, neginf=-np.inf)  # n = 3, |r| = 1
    ps = np.where(np.isfinite(rs), 2.0 * stats.norm.sf(np.abs(zf)), np.nan)
    return rs, ns, ps


# ---------------------------------------------------------------- public API

def cross_correlation(x: npt.ArrayLike, y: npt.ArrayLike, max_lag: int) -> list[LagCorrelation]:
    """Pearson r of ``x[t]`` with ``y[t+lag]`` for lag ``−max_lag…max_lag`` (positive: x leads
    y), over finite pairs, with Bartlett-adjusted Fisher-z p-values. The series are used as
    given: pass :func:`prepare`-d series to remove trend and season first."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or ya.ndim != 1 or xa.shape != ya.shape:
        raise ValueError(f"x and y must be one-dimensional and of the same length, got shapes "
                         f"{xa.shape} and {ya.shape}")
    rs, ns, ps = _all_lags(np.vstack([xa, ya]), max_lag)
    out = []
    for lag in range(-max_lag, max_lag + 1):
        i, j = (0, 1) if lag >= 0 else (1, 0)
        a = abs(lag)
        out.append(LagCorrelation(lag, float(rs[a, i, j]), int(ns[a, i, j]), float(ps[a, i, j])))
    return out


def benjamini_hochberg(p_values: npt.ArrayLike) -> Array:
    """Benjamini–Hochberg q-values (same order as the input; NaN stays NaN, not counted)."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    pv = p[ok]
    m = pv.size
    if m == 0:
        return q
    order = np.argsort(pv, kind="stable")
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    qv = np.empty(m)
    qv[order] = np.minimum(ranked, 1.0)
    q[ok] = qv
    return q


def relations(series: Mapping[str, npt.ArrayLike], *, max_lag: int = 14, alpha: float = 0.05,
              min_n: int = 30, season_length: int | None = None,
              min_abs_r: float = 0.3) -> list[Relation]:
    """Significant relations among aligned ``series`` (equal lengths; prepared inside).

    Returns only significant relations, sorted by q, then −|r|, then names (see module doc).
    """
    names = list(series)
    arrays = [np.asarray(series[k], dtype=np.float64) for k in names]
    for name, arr in zip(names, arrays, strict=True):
        if arr.ndim != 1:
            raise ValueError(f"series {name!r} must be one-dimensional, got shape {arr.shape}")
    if len({a.shape[0] for a in arrays}) > 1:
        sizes = ", ".join(f"{k!r}: {a.shape[0]}" for k, a in zip(names, arrays, strict=True))
        raise ValueError(f"series must be aligned and of the same length, got {sizes}")
    if len(names) < 2:
        return []
    prepared = np.vstack([prepare(a, season_length) for a in arrays])
    rs, ns, ps = _all_lags(prepared, max_lag)
    p_count = len(names)
    iu, ju = np.triu_indices(p_count, k=1)
    # Tests per pair (i < j) × signed lag −max_lag..max_lag; lag ≥ 0: i leads j by lag.
    lags = np.arange(-max_lag, max_lag + 1)

    def signed(block: Array) -> Array:
        full = np.concatenate([block[:0:-1].transpose(0, 2, 1), block], axis=0)
        return np.ascontiguousarray(full[:, iu, ju].T)  # (pairs, lags)

    r, n, p = signed(rs), signed(ns), signed(ps)
    q = benjamini_hochberg(p.ravel()).reshape(p.shape)
    tests = int(np.isfinite(p).sum())
    # Best lag per pair: smallest q, then larger |r|, then smaller |lag|, then positive lag.
    big = np.where(np.isfinite(q), q, np.inf)
    absr = np.where(np.isfinite(r), np.abs(r), -1.0)
    key_lag = np.broadcast_to(np.abs(lags) * 2 + (lags < 0), big.shape)
    best = np.lexsort((key_lag, -absr, big), axis=1)[:, 0]
    rows = np.arange(len(iu))
    b_r, b_n, b_p, b_q = r[rows, best], n[rows, best], p[rows, best], q[rows, best]
    sig = (np.isfinite(b_q) & (b_q <= alpha) & (np.abs(np.nan_to_num(b_r)) >= min_abs_r)
           & (b_n >= min_n))
    out: list[Relation] = []
    for k in np.flatnonzero(sig):
        a, b = names[iu[k]], names[ju[k]]
        lag = int(lags[best[k]])
        leader, follower = (a, b) if lag >= 0 else (b, a)
        out.append(Relation(a, b, leader, follower, abs(lag), float(b_r[k]), int(b_n[k]),
                            float(b_p[k]), float(b_q[k]), tests, True))
    out.sort(key=lambda rel: (rel.q_value, -abs(rel.r), rel.leader, rel.follower, rel.lag))
    return out


if __name__ == "__main__":  # pragma: no cover - timing figure, not a test
    import time

    rng = np.random.default_rng(0)
    data = {f"kpi{i:03d}": np.cumsum(rng.normal(size=200)) for i in range(100)}
    relations(data)
    t0 = time.perf_counter()
    found = relations(data, max_lag=14)
    dt = time.perf_counter() - t0
    print(f"100 series × 200 points × lags ±14: {dt * 1000:.1f} ms, {len(found)} relations")
