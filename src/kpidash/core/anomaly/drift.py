"""Drift detection: a two-sided CUSUM on the robust z, for changes too gentle for the point
rule (a slow ramp, a level shift smaller than T·σ), and the re-fit of level and trend when
it fires. Vectorised across series like :mod:`kpidash.core.anomaly.state`, which calls it.

Statistic, per series, on every live (scored, non-gap) observation with robust z::

    v  ← (1 − λ)·v + λ·min((z − z_prev)²/2, Q)   short-run dispersion, 1 in control
    z* = clip(z / √max(v, 1), ±C)             C = DRIFT_CLIP = 3: one spike adds at most C − k
    S⁺ ← max(0, S⁺ + z* − k)                  k = DRIFT_K = 1 σ, the allowance: in control
    S⁻ ← max(0, S⁻ − z* − k)                  the sums drift back to 0 by about 1 per step
    alarm ⟺ S⁺ ≥ H or S⁻ ≥ H                 H = DRIFT_H · T = 1.5·T (6 at T = 4)

The bar follows the threshold. With k = 1 and H = 6 Siegmund's approximation puts the
in-control run length of Gaussian z near 10⁶ points per side (real forecast errors are not
that clean: the margin is for them), while a residual held at 2.5 σ — a ramp of ½–1 σ per
step seen through the smoothed level — or a step of 3.5 σ, just under the point bar, is
caught in about 4 points. The alarm's score is the one of an effective ``z = ±T·S/H`` (so
score ≥ 0.5 exactly when it fires, and grows with the evidence); its onset is the step
where the side last left 0.

v (λ = DISP_LAMBDA = 0.25, Q = DISP_CAP) uses successive differences, so a level shift or a
ramp hardly moves it while a noise burst raises it to about (σ_now/σ)²: dividing z by
√v keeps a burst from posing as a drift, and v ≥ DISP_BAR·T (8 at T = 4; Gaussian z exceed
it about once in 10⁵ points) confirms a variance change in :mod:`~.state`.

Re-fit on an alarm (from the last :data:`FIT_WINDOW` deseasonalised observations
``d = y − s[t mod m]`` since the drift episode began — an episode spans same-sign alarms
less than FIT_WINDOW apart, so a ramp is fitted over all of it):

* Theil–Sen slope c of d over t, level ℓ = median(dᵢ − c·(tᵢ − t));
* a **trend change** when at least MIN_TREND_POINTS points are fitted and c differs from the
  current trend b by ≥ TREND_SE standard errors (σ·1.1/√Σ(tᵢ − t̄)², Theil–Sen's efficiency)
  in the alarm's direction: b ← c, ℓ as fitted;
* else a **level shift**: ℓ = median(dᵢ − b·(tᵢ − t)), b kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kpidash.core.anomaly.season import nanmedian_rows

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

DRIFT_K = 1.0  # allowance k, in σ
DRIFT_H = 1.5  # alarm bar H as a multiple of the threshold T
DRIFT_CLIP = 3.0  # C: cap on one point's |z| in the sum
FIT_WINDOW = 12  # observations kept for the re-fit
MIN_TREND_POINTS = 4
TREND_SE = 2.0
DISP_LAMBDA = 0.25  # λ of the short-run dispersion v
DISP_CAP = 50.0  # Q: cap on one step's (Δz)²/2
DISP_BAR = 2.0  # v ≥ DISP_BAR·T confirms a noise burst (with points beyond ±⅔T both sides)
_TS_EFFICIENCY = 1.1  # Theil–Sen slope SE / least-squares slope SE for Gaussian noise


@dataclass(slots=True)
class Drift:
    """CUSUM state of S series: both sides, their start steps, the drift episode's start and
    sign, and a ring of the last :data:`FIT_WINDOW` deseasonalised observations."""

    up: F64
    down: F64
    up_t0: I64
    down_t0: I64
    ep_t0: I64  # start of the current drift episode (−1: none)
    ep_sign: F64
    ep_last: I64  # step of its latest alarm
    ring_d: F64  # S × FIT_WINDOW
    ring_t: I64
    n: I64
    z_prev: F64  # z of the previous live observation (NaN: none)
    disp: F64  # v, short-run dispersion of z (1 in control)

    @classmethod
    def new(cls, s: int) -> Drift:
        return cls(np.zeros(s), np.zeros(s), np.full(s, -1, np.int64),
                   np.full(s, -1, np.int64), np.full(s, -1, np.int64), np.zeros(s),
                   np.full(s, -1, np.int64), np.full((s, FIT_WINDOW), np.nan),
                   np.full((s, FIT_WINDOW), -1, np.int64), np.zeros(s, np.int64),
                   np.full(s, np.nan), np.ones(s))

    def reset(self, rows: Mask) -> None:
        """Zero both sides (the state was changed by another rule, or re-anchored)."""
        self.up = np.where(rows, 0.0, self.up)
        self.down = np.where(rows, 0.0, self.down)

    def forget(self, rows: Mask) -> None:
        """Reset and also drop the fit ring and episode (a gap or a change of scale)."""
        self.reset(rows)
        self.ring_d[rows] = np.nan
        self.ep_t0 = np.where(rows, -1, self.ep_t0)
        self.z_prev = np.where(rows, np.nan, self.z_prev)
        self.disp = np.where(rows, 1.0, self.disp)


def disperse(dr: Drift, z: F64, live: Mask) -> F64:
    """Update v, the short-run dispersion of z, and return it (S,).

    ``v ← (1 − λ)·v + λ·min((z − z_prev)²/2, Q)`` with λ = :data:`DISP_LAMBDA`, Q =
    :data:`DISP_CAP`: successive differences cancel a level shift or a ramp, so v stays near 1
    under a drift and grows to (σ_now/σ)² when the noise grows."""
    dz = z - dr.z_prev
    q = np.where(np.isnan(dz), 1.0, np.minimum(0.5 * dz * dz, DISP_CAP))
    dr.disp = np.where(live, (1.0 - DISP_LAMBDA) * dr.disp + DISP_LAMBDA * q, dr.disp)
    dr.z_prev = np.where(live, z, dr.z_prev)
    return dr.disp


def accumulate(dr: Drift, z: F64, live: Mask, t: int, bar: float,
               ) -> tuple[Mask, F64, I64, F64]:
    """Add the live points' z, divided by √max(v, 1), to both sides. Returns (alarm, sign ±1,
    onset, S/H) per series; sign, onset and S/H are meaningful where alarm is True."""
    zc = np.clip(z / np.sqrt(np.maximum(dr.disp, 1.0)), -DRIFT_CLIP, DRIFT_CLIP)
    up = np.where(live, np.maximum(dr.up + zc - DRIFT_K, 0.0), dr.up)
    down = np.where(live, np.maximum(dr.down - zc - DRIFT_K, 0.0), dr.down)
    dr.up_t0 = np.where(live & (dr.up == 0.0) & (up > 0.0), t, dr.up_t0)
    dr.down_t0 = np.where(live & (dr.down == 0.0) & (down > 0.0), t, dr.down_t0)
    dr.up, dr.down = up, down
    hi = up >= down
    stat = np.where(hi, up, down)
    alarm = live & (stat >= bar)
    sign = np.where(hi, 1.0, -1.0)
    onset = np.where(hi, dr.up_t0, dr.down_t0)
    return alarm, sign, onset, stat / bar


def remember(dr: Drift, d: F64, live: Mask, t: int, ar: I64) -> None:
    """Push the deseasonalised observations of the live series into the fit ring."""
    li = ar[live]
    pos = dr.n[li] % FIT_WINDOW
    dr.ring_d[li, pos] = d[li]
    dr.ring_t[li, pos] = t
    dr.n = dr.n + live


def refit(dr: Drift, rows: I64, sign: F64, onset: I64, t: int, trend: F64, sigma: F64,
          ) -> tuple[F64, F64, Mask]:
    """New (level, trend, is_trend_change) of the alarmed series ``rows`` (arrays of their
    length; ``sign``, ``onset``, ``trend`` and ``sigma`` are given for those rows)."""
    same = (dr.ep_t0[rows] >= 0) & (dr.ep_sign[rows] == sign) & (
        t - dr.ep_last[rows] < FIT_WINDOW)
    start = np.where(same, dr.ep_t0[rows], onset)
    dr.ep_t0[rows] = start
    dr.ep_sign[rows] = sign
    dr.ep_last[rows] = t
    ts = dr.ring_t[rows]
    use = (ts >= start[:, None]) & ~np.isnan(dr.ring_d[rows])
    d = np.where(use, dr.ring_d[rows], np.nan)
    u = np.where(use, ts - t, 0).astype(np.float64)  # steps before now (≤ 0)
    du = u[:, None, :] - u[:, :, None]
    pair = use[:, None, :] & use[:, :, None] & (du > 0)
    slopes = np.where(pair, (d[:, None, :] - d[:, :, None]) / np.where(pair, du, 1.0), np.nan)
    c = nanmedian_rows(slopes.reshape(rows.size, -1))
    k = np.sum(use, axis=1)
    um = np.sum(u, axis=1) / np.maximum(k, 1)
    suu = np.sum(np.where(use, (u - um[:, None]) ** 2, 0.0), axis=1)
    se = _TS_EFFICIENCY * sigma / np.sqrt(np.where(suu > 0, suu, 1.0))
    is_trend = (k >= MIN_TREND_POINTS) & ~np.isnan(c) & (
        sign * (np.nan_to_num(c) - trend) >= TREND_SE * se)
    b = np.where(is_trend, c, trend)
    level = nanmedian_rows(d - b[:, None] * u)
    return level, b, is_trend
