"""Baselines over a panel: naive, seasonal naive and the Theta method.

* naive: f_j = y_n; sd_j = σ√j (random walk).
* seasonal naive: f_j = y_{n−m+((j−1) mod m)+1}; sd_j = σ√(⌊(j−1)/m⌋ + 1).
* theta (Assimakopoulos & Nikolopoulos 2000, in the SES-with-drift form of Hyndman & Billah
  2003): on the seasonally adjusted series x (classical decomposition, multiplicative for
  positive series, applied only when the M4 90 % seasonality test passes), f_j = ℓ_n +
  (b̂/2)·((j − 1) + (1 − (1 − α)^n)/α), where ℓ_n is the SES level, α its grid-chosen smoothing
  weight and b̂ the least-squares slope of x against time; then re-seasonalised. sd_j = σ√(1 +
  (j−1)α²) (the SES formula).
"""

from __future__ import annotations

import numpy as np

from kpidash.core.forecast.ets import SPECS, initial_states, run
from kpidash.core.forecast.panel import BoolArray, Candidate, IntArray, Panel
from kpidash.core.forecast.seasonality import seasonal_indices, seasonality_test
from kpidash.core.forecast.types import FloatArray


def _before_start(p: Panel) -> BoolArray:
    return np.arange(p.T)[None, :] < p.start[:, None]


def _rms_from(err: FloatArray, upto: IntArray) -> FloatArray:
    """Root mean square of ``err`` (k, T) over finite cells with column < upto[i]."""
    cols = np.arange(err.shape[1])[None, :]
    use = np.isfinite(err) & (cols < upto[:, None])
    cnt = use.sum(axis=1)
    return np.asarray(np.sqrt(np.where(use, err * err, 0.0).sum(axis=1) / np.maximum(cnt, 1)),
                      dtype=np.float64)


def _lagged(p: Panel, lag: int) -> Candidate:
    """Naive (lag 1) or seasonal naive (lag m) forecasts, backtests and fitted values."""
    k, T, h = p.k, p.T, p.h
    j = np.arange(h)
    fc = p.y[:, T - lag + (j % lag)]
    fitted = np.full((k, T), np.nan)
    fitted[:, lag:] = p.y[:, :-lag]
    fitted[np.arange(T)[None, :] < (p.start + lag)[:, None]] = np.nan
    W = p.origins.shape[0]
    bt = np.full((k, W, p.h_bt), np.nan)
    jb = np.arange(p.h_bt)
    for w, o in enumerate(p.origins):
        bt[:, w] = np.where(p.valid[:, w, None], p.y[:, o - lag + (jb % lag)], np.nan)
    err = p.y - fitted
    sigma = _rms_from(err, np.full(k, T))
    upto = p.origins[np.maximum(p.first, 0)] if W else np.full(k, T)
    shape_fn = (lambda hh: np.sqrt(np.arange(1, hh + 1, dtype=np.float64))) if lag == 1 else (
        lambda hh: np.sqrt(np.arange(hh) // lag + 1.0))
    return Candidate(
        name="naive" if lag == 1 else "seasonal_naive", ok=np.ones(k, dtype=bool), fc=fc,
        shape=np.broadcast_to(shape_fn(h), (k, h)).copy(), sigma=sigma, bt=bt,
        shape_bt=np.broadcast_to(shape_fn(p.h_bt), (k, p.h_bt)).copy(),
        sigma_bt=_rms_from(err, upto), fitted=fitted, aicc=np.full(k, np.nan), params={})


def naive(p: Panel) -> Candidate:
    return _lagged(p, 1)


def seasonal_naive(p: Panel) -> Candidate:
    return _lagged(p, p.m)


def _slope(x: FloatArray, start: IntArray, end: IntArray) -> FloatArray:
    """Least-squares slope of x (k, T) against the column index over [start, end) per row."""
    cols = np.arange(x.shape[1])[None, :]
    use = (cols >= start[:, None]) & (cols < end[:, None])
    cnt = use.sum(axis=1)
    tm = np.where(use, cols, 0).sum(axis=1) / cnt
    xm = np.where(use, x, 0.0).sum(axis=1) / cnt
    dt = np.where(use, cols - tm[:, None], 0.0)
    var = (dt * dt).sum(axis=1)
    cov = (dt * np.where(use, x - xm[:, None], 0.0)).sum(axis=1)
    return np.asarray(np.where(var > 0, cov / np.where(var > 0, var, 1.0), 0.0), dtype=np.float64)


def _drift(slope: FloatArray, alpha: FloatArray, n_used: FloatArray, steps: FloatArray) -> FloatArray:
    """(b̂/2)·((j − 1) + (1 − (1 − α)^n)/α) for j = 1..len(steps); shape (k, len(steps))."""
    return np.asarray(0.5 * slope[:, None] * (steps[None, :] - 1.0 + (
        (1.0 - (1.0 - alpha) ** n_used) / alpha)[:, None]), dtype=np.float64)


def theta(p: Panel) -> Candidate:
    """The Theta method on every series of the panel (see module docstring)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _theta(p)


def _theta(p: Panel) -> Candidate:
    k, T, m, h = p.k, p.T, p.m, p.h
    W = p.origins.shape[0]
    mult = np.all(p.y > 0, axis=1)
    seasonal = np.zeros(k, dtype=bool)
    if m > 1:
        seasonal = np.array([seasonality_test(p.y[i, p.start[i]:], m) for i in range(k)])
    end_bt = p.origins[np.maximum(p.first, 0)] if W else np.full(k, T)
    slot_of = np.arange(T) % m
    xs, idxs = [], []
    for end in (end_bt, np.full(k, T)):
        if m > 1:
            idx = seasonal_indices(np.where(_before_start(p), np.nan, p.y), end.astype(np.int64),
                                   m, mult)
            idx = np.where(seasonal[:, None], idx, np.where(mult, 1.0, 0.0)[:, None])
        else:
            idx = np.where(mult, 1.0, 0.0)[:, None] * np.ones((k, 1))
        s = idx[:, slot_of]
        xs.append(np.where(mult[:, None], p.y / s, p.y - s))
        idxs.append(idx)
    x = np.concatenate(xs)                                   # (2k, T): backtest rows, final rows
    start2 = np.concatenate([p.start, p.start])
    spec = SPECS["ses"]
    l0, b0, s0, _ = initial_states(x, start2, 1, False, "none")
    r1 = run(x, start2, False, "none", 1, spec.grid[None], l0, b0, s0, p.origins, False, False)
    sse1 = np.where(np.isfinite(r1.sse), r1.sse, np.inf)
    if W:
        at = r1.sse_snap[np.maximum(p.first, 0), np.arange(k)]
        g_bt = np.where(np.isfinite(at), at, np.inf).argmin(axis=1)
    else:
        g_bt = sse1[:k].argmin(axis=1)
    g_fin = sse1[k:].argmin(axis=1)
    alphas = np.concatenate([spec.grid[g_bt, 0], spec.grid[g_fin, 0]])
    chosen = spec.grid[np.concatenate([g_bt, g_fin])][:, None, :]
    r2 = run(x, start2, False, "none", 1, chosen, l0, b0, s0, p.origins, True, True)

    def reseason(f: FloatArray, idx: FloatArray, first_col: int) -> FloatArray:
        s = idx[:, (first_col + np.arange(f.shape[1])) % m]
        return np.asarray(np.where(mult[:, None], f * s, f + s), dtype=np.float64)

    a_fin = alphas[k:]
    n = p.n.astype(np.float64)
    slope_fin = _slope(xs[1], p.start, np.full(k, T))
    steps = np.arange(1, h + 1, dtype=np.float64)
    level = r2.final[0][k:, 0]
    fc = reseason(level[:, None] + _drift(slope_fin, a_fin, n, steps), idxs[1], T)
    bt = np.full((k, W, p.h_bt), np.nan)
    a_bt = alphas[:k]
    steps_bt = np.arange(1, p.h_bt + 1, dtype=np.float64)
    for w, o in enumerate(p.origins):
        lw = r2.snaps[w][0][:k, 0]
        used = (o - p.start).astype(np.float64)
        sl = _slope(xs[0], p.start, np.full(k, o))
        f = reseason(lw[:, None] + _drift(sl, a_bt, used, steps_bt), idxs[0], int(o))
        bt[:, w] = np.where(p.valid[:, w, None], f, np.nan)
    # fitted: one-step forecasts ℓ_{t−1} + (b̂/2)(1 − (1 − α)^{t−start})/α, re-seasonalised
    assert r2.fitted is not None
    ses_fit = r2.fitted[:, k:, 0].T
    t_used = np.maximum(np.arange(T)[None, :] - p.start[:, None], 0).astype(np.float64)
    drift1 = 0.5 * slope_fin[:, None] * (1.0 - (1.0 - a_fin[:, None]) ** t_used) / a_fin[:, None]
    s_all = idxs[1][:, slot_of]
    fitted = np.where(mult[:, None], (ses_fit + drift1) * s_all, ses_fit + drift1 + s_all)
    fitted[_before_start(p)] = np.nan
    err = p.y - fitted
    sh = np.sqrt(1.0 + (steps[None, :] - 1.0) * a_fin[:, None] ** 2)
    sh_bt = np.sqrt(1.0 + (steps_bt[None, :] - 1.0) * a_bt[:, None] ** 2)
    slots = (p.start[:, None] + np.arange(m)[None, :]) % m
    params: dict[str, FloatArray] = {
        "alpha": a_fin, "l0": l0[k:, 0], "slope": slope_fin,
        "multiplicative": mult.astype(np.float64)}
    if m > 1:
        params["s"] = idxs[1][np.arange(k)[:, None], slots]
    return Candidate(
        name="theta", ok=np.asarray(np.isfinite(fc).all(axis=1), dtype=bool), fc=fc, shape=sh,
        sigma=_rms_from(err, np.full(k, T)), bt=bt, shape_bt=sh_bt,
        sigma_bt=_rms_from(err, end_bt), fitted=fitted, aicc=np.full(k, np.nan), params=params)
