"""The detector's state machine, vectorised across series: one call advances S series by one
time step. The batch scorer loops it over time; the incremental detector calls it with S = 1.
Every operation is element-wise per series (or an exact sort/median per row), so a series
gets bit-for-bit the same numbers whether it is scored alone, in a batch or point by point.

Model (per series, additive, on y — or on log y when every warm-up value is > 0, which makes
weekly factors and level steps of positive KPIs additive and keeps everything scale-free;
a later value ≤ 0 of such a series has z = −∞, a critical dip, and the series continues on y
from then on, its state mapped back to the original units)::

    forecast      f  = ℓ + h·b + s[t mod m]            h = steps since the last observation
    residual      r  = y − f
    interval      σₕ = σ · √(1 + (h − 1)·α²)            wider after missing points
    robust z      z  = r / σₕ                           anomaly ⟺ |z| ≥ T

Update on a normal point (|z| < T, not in an episode), with Huber-clipped
``r* = clip(r, ±c·σₕ)`` and ``aₕ = 1 − (1 − α)ʰ``::

    ℓ ← ℓ + h·b + aₕ·r*      b ← b + aₕ·β·r*      s[t mod m] ← s[t mod m] + γ·(1 − aₕ)·r*
    σ ← σ · (1 − λ + λ·min(|z|, c) / κ(c))          κ(c) = E min(|N(0,1)|, c), so σ is
                                                     consistent for Gaussian noise

Anomalous points (and points continuing an episode) do not move ℓ, b, s or σ: the state is
only projected forward (ℓ ← ℓ + h·b). Episodes:

* **spike / dip** — the first point with |z| ≥ T.
* **level shift** — K = 3 consecutive observations with z of one sign, the first |z| ≥ T and
  the others |z| ≥ ⅔T: ℓ jumps by the median of their residuals and the new level is normal
  from then on. If the residuals grow monotonically by at least ⅔T·σ over the run, it is a
  **trend change** instead: b gains their slope and ℓ is set to the latest point.
  The pre-shift state is kept for R = max(2m, 14) steps: a point that is anomalous for the new
  state but normal (|z| < ⅔T) for the old one reverts to it — a burst that ends is not
  flagged a second time.
* **variance** — within the last V = 5 observations, z beyond ±⅔T on both sides and at least
  three such points (or points beyond ±T on both sides), at a point with |z| ≥ T or with the
  short-run dispersion v ≥ 2T (:mod:`~.drift`): σ is reset to
  max(σ, 1.4826·median |r| of those observations, σ·√v).
* **drift** — the two-sided CUSUM of :mod:`~.drift` reaches 1.5·T: a level shift or trend
  change (re-fitted from the recent deseasonalised values) that no point rule confirmed;
  the pre-change state is kept for reverting as for a level shift.

Warm-up: the first W = max(3m, 14) valid observations (more if the caller asks) are buffered
and scored 0; at the W-th the state is fitted robustly:

* b = median slope of the pairs of points in the same season phase (Theil–Sen when m = 1),
  kept only if b × (span of the warm-up) ≥ 3σ, else 0 (a short warm-up's slope is noisy and
  would be extrapolated; the trend is learnt later);
* s = per-phase medians of the detrended values, centred by their median; ℓ = median of the
  rest;
* σ = 1.0483 · median |yⱼ − yᵢ − b·Δt| over same-phase pairs (Shamos' estimator: robust, and
  not shrunk by the fit as fitted residuals would be), times √(1 + α/(2 − α) + π·m/(2W)) for
  the errors of the smoothed level and of the per-phase medians; σ then tracks the actual
  one-step errors.

A gap longer than G = max(2m, 14) steps re-anchors the level on the first point after it
(ℓ = y − s, scored 0). Missing points are never anomalies and change nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from kpidash.core.anomaly.drift import (
    DISP_BAR,
    DRIFT_H,
    Drift,
    accumulate,
    disperse,
    refit,
    remember,
)
from kpidash.core.anomaly.result import Kind
from kpidash.core.anomaly.season import nanmedian_rows

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
Mask = npt.NDArray[np.bool_]

ALPHA = 0.2  # level smoothing
BETA = 0.1  # trend smoothing (relative to α)
GAMMA = 0.1  # seasonal smoothing
LAMBDA = 0.02  # scale smoothing
CLIP = 2.0  # Huber clip of residuals in the update, in σ
RUN = 3  # K: consecutive one-sided points that confirm a level shift
RUN_FRACTION = 2.0 / 3.0  # continuation bar of an episode, as a fraction of T
WINDOW = 5  # V: observations the variance rule looks back over
MIN_WARMUP = 14
WARMUP_CYCLES = 3
MIN_GAP = 14  # G and R are max(2m, MIN_GAP)
TREND_SIGNIFICANCE = 3.0  # warm-up slope kept when it moves the level ≥ this many σ
_MAX_PAIRS = 4_000_000  # cells of the pairwise-slope array fitted at once


def _kappa(c: float) -> float:
    """E[min(|Z|, c)] for Z ~ N(0, 1) = 2(φ(0) − φ(c)) + 2c(1 − Φ(c))."""
    phi = math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi)
    tail = 0.5 * math.erfc(c / math.sqrt(2.0))
    return 2.0 * (1.0 / math.sqrt(2.0 * math.pi) - phi) + 2.0 * c * tail


KAPPA = _kappa(CLIP)
_SHAMOS = 1.0 / (math.sqrt(2.0) * 0.6744897501960817)  # σ per median |difference|
_MEAN_PAIR = math.sqrt(math.pi) / 2.0  # σ per mean |difference| (fallback when the median is 0)


def _inflation(m: int, w: int) -> float:
    """Noise σ → one-step forecast-error σ right after warm-up:
    √(1 + α/(2 − α) + v) with v = π/(2·W/m), the variance of per-phase medians over W/m
    cycles (none when m = 1). The scale then tracks the actual errors."""
    v = math.pi / (2.0 * w / m) if m > 1 else 0.0
    return math.sqrt(1.0 + ALPHA / (2.0 - ALPHA) + v)


def default_warmup(season_length: int) -> int:
    """W = max(3m, 14) valid observations."""
    return max(WARMUP_CYCLES * season_length, MIN_WARMUP)


@dataclass(frozen=True, slots=True)
class Params:
    """Resolved settings of one detector: season m ≥ 1, threshold T > 0, warm-up W."""

    season_length: int
    threshold: float
    warmup: int
    long_gap: int = field(init=False)
    gain: F64 = field(init=False, repr=False)  # aₕ for h = 0 … G
    widen: F64 = field(init=False, repr=False)  # σₕ / σ for h = 0 … G

    def __post_init__(self) -> None:
        g = max(2 * self.season_length, MIN_GAP)
        object.__setattr__(self, "long_gap", g)
        h = [float(i) for i in range(g + 1)]
        object.__setattr__(self, "gain", np.array([1.0 - (1.0 - ALPHA) ** i for i in h]))
        object.__setattr__(self, "widen", np.array(
            [math.sqrt(1.0 + max(i - 1.0, 0.0) * ALPHA * ALPHA) for i in h]))

    @property
    def run_bar(self) -> float:
        return RUN_FRACTION * self.threshold

    @property
    def disp_bar(self) -> float:
        """Short-run variance ratio v that confirms a noise burst: DISP_BAR · T."""
        return DISP_BAR * self.threshold

    @property
    def drift_bar(self) -> float:
        """H, the CUSUM alarm bar (:mod:`kpidash.core.anomaly.drift`)."""
        return DRIFT_H * self.threshold


@dataclass(slots=True)
class State:
    """Mutable state of S series (arrays of length S, or S × something)."""

    t: int
    n_valid: I64
    buf_y: F64  # S × W warm-up values
    buf_t: I64  # S × W their time steps
    ready: Mask
    level: F64
    trend: F64
    season: F64  # S × m
    sigma: F64
    last_t: I64
    run_len: I64
    run_sign: F64
    run_onset: I64
    n_live: I64
    ring_z: F64  # S × V, last V live observations
    ring_r: F64
    ring_t: I64
    bk_active: Mask
    bk_level: F64
    bk_trend: F64
    bk_sigma: F64
    bk_t: I64
    log: Mask  # the series is modelled as log y (decided at the end of its warm-up)
    drift: Drift

    @classmethod
    def new(cls, n_series: int, p: Params) -> State:
        s, w, m = n_series, p.warmup, p.season_length

        def f(*shape: int) -> F64:
            return np.full(shape, np.nan)

        def i(*shape: int) -> I64:
            return np.zeros(shape, dtype=np.int64)

        return cls(0, i(s), f(s, w), i(s, w), np.zeros(s, bool), f(s), f(s), f(s, m), f(s),
                   i(s), i(s), np.zeros(s), np.full(s, -1, np.int64), i(s), f(s, WINDOW),
                   f(s, WINDOW), np.full((s, WINDOW), -1, np.int64), np.zeros(s, bool), f(s),
                   f(s), f(s), i(s), np.zeros(s, bool), Drift.new(s))


@dataclass(slots=True)
class Out:
    """Output columns of a batch: S × n arrays written one column per step."""

    expected: F64  # in model units (log y for log-scale series)
    spread: F64  # σₕ
    z: F64
    kind: I8
    onset: I64
    log: Mask  # (S,) log-scale series
    drift: F64  # effective z ±T·S/H of a drift alarm, 0 elsewhere

    @classmethod
    def new(cls, n_series: int, n: int) -> Out:
        return cls(np.full((n_series, n), np.nan), np.full((n_series, n), np.nan),
                   np.zeros((n_series, n)), np.zeros((n_series, n), np.int8),
                   np.full((n_series, n), -1, np.int64), np.zeros(n_series, bool),
                   np.zeros((n_series, n)))


def _divide(r: F64, s: F64) -> F64:
    """r / s with 0/0 = 0 and x/0 = ±inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = r / s
    return np.asarray(np.where((r == 0.0) & (s == 0.0), 0.0, q), dtype=np.float64)


def step(st: State, y: F64, p: Params, out: Out, col: int) -> None:
    """Advance every series by one time step with observations ``y`` (S,), NaN = missing,
    writing the step's results into column ``col`` of ``out``."""
    t = st.t
    m = p.season_length
    ar = np.arange(y.shape[0])
    valid = ~np.isnan(y)
    ready = st.ready
    if ready.any():
        yt = y
        lg = st.log & valid
        if lg.any():  # log y; a value ≤ 0 of a log-scale series becomes −inf (a critical dip)
            yt = y.copy()
            pos = lg & (y > 0)
            yt[pos] = np.log(y[pos])
            yt[lg & ~pos] = -np.inf
        _scored_step(st, yt, p, out, col, ar, valid & ready, t, m)
    warm = valid & ~ready
    if warm.any():
        idx = ar[warm]
        st.buf_y[idx, st.n_valid[idx]] = y[idx]
        st.buf_t[idx, st.n_valid[idx]] = t
        st.n_valid[idx] += 1
        done = idx[st.n_valid[idx] == p.warmup]
        if done.size:
            _fit(st, done, p, t)
    out.log[:] = st.log
    st.t = t + 1


def _scored_step(st: State, y: F64, p: Params, out: Out, col: int, ar: I64, act: Mask,
                 t: int, m: int) -> None:
    ready = st.ready
    j = t % m
    h = np.where(ready, t - st.last_t, 1)
    hc = np.minimum(h, p.long_gap)
    seas = st.season[:, j]
    f = st.level + h * st.trend + seas
    spread = st.sigma * p.widen[hc]
    out.expected[:, col] = np.where(ready, f, np.nan)
    out.spread[:, col] = np.where(ready, spread, np.nan)
    if not act.any():
        return
    bad = act & np.isinf(y)  # ≤ 0 on a log-scale series: flagged, otherwise like missing
    gap = act & (h > p.long_gap) & ~bad
    live = act & ~gap & ~bad
    r = y - f
    z = np.where(live, _divide(r, spread), 0.0)
    T, bar = p.threshold, p.run_bar

    # A point anomalous for the new state but normal for the pre-shift one ends a burst.
    maybe = live & (np.abs(z) >= T) & st.bk_active & (t - st.bk_t <= p.long_gap)
    if maybe.any():
        f_old = st.bk_level + (t - st.bk_t) * st.bk_trend + seas
        z_old = _divide(y - f_old, st.bk_sigma)
        back = maybe & (np.abs(z_old) < bar)
        if back.any():
            st.level = np.where(back, st.bk_level + (st.last_t - st.bk_t) * st.bk_trend,
                                st.level)
            st.trend = np.where(back, st.bk_trend, st.trend)
            st.sigma = np.where(back, st.bk_sigma, st.sigma)
            st.bk_active = st.bk_active & ~back
            st.run_len = np.where(back, 0, st.run_len)
            st.drift.forget(back)
            f = np.where(back, st.level + h * st.trend + seas, f)
            spread = np.where(back, st.sigma * p.widen[hc], spread)
            r = y - f
            z = np.where(live, _divide(r, spread), 0.0)
            out.expected[:, col] = np.where(ready, f, np.nan)
            out.spread[:, col] = np.where(ready, spread, np.nan)
    st.bk_active = st.bk_active & (t - st.bk_t < p.long_gap)

    az = np.abs(z)
    sign = np.sign(z)
    exceed = live & (az >= T)
    cont = live & (st.run_len > 0) & (sign == st.run_sign) & (az >= bar)
    start = exceed & ~cont
    st.run_len = np.where(cont, st.run_len + 1, np.where(start, 1, np.where(live, 0,
                                                                            st.run_len)))
    st.run_sign = np.where(start, sign, st.run_sign)
    st.run_onset = np.where(start, t, st.run_onset)
    episode = live & (st.run_len > 0)
    kind = np.where(exceed, np.where(z > 0, Kind.SPIKE, Kind.DIP), Kind.NONE).astype(np.int8)
    onset = np.where(exceed, st.run_onset, -1)

    pos = st.n_live % WINDOW
    li = ar[live]
    st.ring_z[li, pos[li]] = z[li]
    st.ring_r[li, pos[li]] = r[li]
    st.ring_t[li, pos[li]] = t
    st.n_live = st.n_live + live
    remember(st.drift, y - seas, live, t, ar)
    disp = disperse(st.drift, z, live)
    alarm, dsign, donset, dratio = accumulate(st.drift, z, live, t, p.drift_bar)

    # Normal points update the state with clipped residuals; episode points only project it.
    normal = live & ~episode
    lim = CLIP * spread
    rc = np.where(normal, np.clip(r, -lim, lim), 0.0)
    a = p.gain[hc]
    level = np.where(live, st.level + h * st.trend + a * rc, st.level)
    trend = np.where(normal, st.trend + a * BETA * rc, st.trend)
    st.season[:, j] = np.where(normal, seas + GAMMA * (1.0 - a) * rc, seas)
    st.sigma = np.where(normal, st.sigma * (1.0 - LAMBDA + LAMBDA * np.minimum(az, CLIP) / KAPPA),
                        st.sigma)

    confirm = episode & (st.run_len >= RUN)
    if confirm.any():
        ci = ar[confirm]
        order = (st.n_live[ci, None] - RUN + np.arange(RUN)[None, :]) % WINDOW
        rr = np.take_along_axis(st.ring_r[ci], order, axis=1)
        tt = np.take_along_axis(st.ring_t[ci], order, axis=1)
        mag = rr * st.run_sign[ci, None]
        grow = np.all(np.diff(mag, axis=1) > 0, axis=1) & (
            mag[:, -1] - mag[:, 0] >= bar * spread[ci])
        st.bk_active[ci] = True
        st.bk_level[ci] = level[ci]
        st.bk_trend[ci] = trend[ci]
        st.bk_sigma[ci] = st.sigma[ci]
        st.bk_t[ci] = t
        shift = np.where(grow, rr[:, -1], nanmedian_rows(rr))
        level[ci] = level[ci] + shift
        trend[ci] = trend[ci] + np.where(grow, (rr[:, -1] - rr[:, 0]) / (tt[:, -1] - tt[:, 0]),
                                         0.0)
        kind[ci] = np.where(exceed[ci], np.where(grow, Kind.TREND_CHANGE, Kind.LEVEL_SHIFT),
                            Kind.NONE)
        st.run_len[ci] = 0
        st.ring_z[ci] = np.nan

    # A drift alarm is a level shift or trend change the point rule has not confirmed.
    drift_z = np.zeros_like(z)
    moved = alarm & ~confirm
    if moved.any():
        di = ar[moved]
        st.bk_active[di] = True
        st.bk_level[di] = level[di]
        st.bk_trend[di] = trend[di]
        st.bk_sigma[di] = st.sigma[di]
        st.bk_t[di] = t
        new_level, new_trend, is_trend = refit(st.drift, di, dsign[di], donset[di], t,
                                               trend[di], st.sigma[di])
        level[di] = new_level
        trend[di] = new_trend
        kind[di] = np.where(is_trend, Kind.TREND_CHANGE, Kind.LEVEL_SHIFT)
        onset[di] = donset[di]
        drift_z[di] = dsign[di] * T * dratio[di]
        st.run_len[di] = 0
        st.ring_z[di] = np.nan
    st.drift.reset(confirm | alarm)

    ring_hi = np.sum(st.ring_z >= bar, axis=1)
    ring_lo = np.sum(st.ring_z <= -bar, axis=1)
    both_t = np.any(st.ring_z >= T, axis=1) & np.any(st.ring_z <= -T, axis=1)
    # the short-run dispersion v (drift module) also confirms a noise burst that has no
    # single point beyond T yet
    noisy = live & (disp >= p.disp_bar)
    var = (exceed | noisy) & ~confirm & ~moved & (ring_hi >= 1) & (ring_lo >= 1) & (
        (ring_hi + ring_lo >= 3) | both_t)
    if var.any():
        vi = ar[var]
        big = np.abs(st.ring_z[vi]) >= bar
        first = np.min(np.where(big, st.ring_t[vi], np.iinfo(np.int64).max), axis=1)
        rabs = np.where(np.isnan(st.ring_z[vi]), np.nan, np.abs(st.ring_r[vi]))
        grown = st.sigma[vi] * np.sqrt(np.maximum(disp[vi], 1.0))
        st.sigma[vi] = np.maximum(np.maximum(st.sigma[vi], 1.4826 * nanmedian_rows(rabs)),
                                  grown)
        drift_z[vi] = np.where(z[vi] >= 0, T, -T) * disp[vi] / p.disp_bar
        kind[vi] = Kind.VARIANCE
        onset[vi] = first
        st.run_len[vi] = 0
        st.ring_z[vi] = np.nan
        st.drift.forget(var)

    if gap.any():  # re-anchor after a long gap
        level = np.where(gap, y - seas, level)
        st.run_len = np.where(gap, 0, st.run_len)
        st.bk_active = st.bk_active & ~gap
        st.ring_z[gap] = np.nan
        st.drift.forget(gap)
    st.level = level
    st.trend = trend
    st.last_t = np.where(act & ~bad, t, st.last_t)
    if bad.any():
        _to_additive(st, bad)
    out.z[:, col] = np.where(bad, -np.inf, z)
    out.kind[:, col] = np.where(bad, np.int8(Kind.DIP), kind)
    out.onset[:, col] = np.where(bad, t, onset)
    out.drift[:, col] = np.where(bad, 0.0, drift_z)


def _to_additive(st: State, rows: Mask) -> None:
    """A log-scale series met a value ≤ 0: continue it on y itself, with the state mapped by
    ℓ' = eˡ, s'ⱼ = eˡ⁺ˢʲ − eˡ, b' = eˡ·b, σ' = eˡ·σ (first-order) — no history to replay."""
    e = np.exp(np.where(rows, st.level, 0.0))
    r = rows[:, None]
    st.season = np.where(r, e[:, None] * np.exp(np.where(r, st.season, 0.0)) - e[:, None],
                         st.season)
    st.trend = np.where(rows, e * st.trend, st.trend)
    st.sigma = np.where(rows, e * st.sigma, st.sigma)
    st.level = np.where(rows, e, st.level)
    st.log = st.log & ~rows
    st.bk_active = st.bk_active & ~rows
    st.run_len = np.where(rows, 0, st.run_len)
    st.ring_z[rows] = np.nan
    st.drift.forget(rows)


def _fit(st: State, idx: I64, p: Params, t: int) -> None:
    """Initial state of the series ``idx`` from their full warm-up buffers (module doc)."""
    m, w = p.season_length, p.warmup
    chunk = max(1, _MAX_PAIRS // (w * w))
    for c0 in range(0, idx.size, chunk):
        sel = idx[c0:c0 + chunk]
        ys, ts = st.buf_y[sel], st.buf_t[sel]
        lg = np.all(ys > 0, axis=1)
        ys = np.where(lg[:, None], np.log(np.where(lg[:, None], ys, 1.0)), ys)
        dt = ts[:, None, :] - ts[:, :, None]
        ok = (dt > 0) & (dt % m == 0)
        slopes = np.where(ok, (ys[:, None, :] - ys[:, :, None]) / np.where(ok, dt, 1), np.nan)
        b = nanmedian_rows(slopes.reshape(sel.size, w * w))
        b = np.where(np.isnan(b), 0.0, b)
        # σ from same-phase pair differences (Shamos: σ = 1.0483·median |yⱼ − yᵢ − b·Δt|);
        # residuals of the fitted medians would be shrunk towards 0.
        diff = np.where(ok, ys[:, None, :] - ys[:, :, None] - b[:, None, None] * dt, np.nan)
        dev = np.abs(diff.reshape(sel.size, w * w))
        sigma = _SHAMOS * nanmedian_rows(dev)
        mean_dev = np.nansum(dev, axis=1) / np.maximum(np.sum(ok, axis=(1, 2)), 1)
        sigma = np.where(sigma > 0, sigma, _MEAN_PAIR * mean_dev)
        sigma = np.where(np.isnan(sigma), 0.0, sigma)
        # A slope from a short warm-up is noisy and extrapolated for long: keep it only when
        # it is clear, else start flat and let the trend be learnt.
        span = (ts[:, -1] - ts[:, 0]).astype(np.float64)
        b = np.where(np.abs(b) * span >= TREND_SIGNIFICANCE * sigma, b, 0.0)
        sigma = sigma * _inflation(m, w)
        d = ys - b[:, None] * (ts - t)
        phase = ts % m
        s = np.stack([nanmedian_rows(np.where(phase == k, d, np.nan)) for k in range(m)], axis=1)
        s = s - nanmedian_rows(s)[:, None]
        s = np.where(np.isnan(s), 0.0, s)
        level = nanmedian_rows(d - np.take_along_axis(s, phase, axis=1))
        st.level[sel] = level
        st.trend[sel] = b
        st.season[sel] = s
        st.sigma[sel] = sigma
        st.last_t[sel] = t
        st.ready[sel] = True
        st.log[sel] = lg
