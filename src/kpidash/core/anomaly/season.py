"""Season-length detection from a series' first points only (so it is causal).

Method, on the first :data:`DETECT_POINTS` valid observations (positions ``t`` keep gaps):

1. remove a Theil–Sen line (median of all pairwise slopes, median intercept);
2. winsorise the residuals at ±3 robust σ (1.4826 · MAD) so outliers cannot fake a cycle;
3. autocorrelation ``ρ(k) = Σ eₜeₜ₊ₖ / √(Σ eₜ² · Σ eₜ₊ₖ²)`` over the pairs where both
   points are present, for lags 1 … :data:`MAX_LAG`;
4. candidates are local peaks (``ρ(k) > ρ(k−1)`` and ``ρ(k) ≥ ρ(k+1)``, or still rising at
   the longest lag looked at) with ``ρ(k) ≥ max(0.3, 3.5/√pairs)`` (:data:`NOISE_BAR`); the
   best one wins, except that its smallest divisor that is itself a candidate within 80 % of
   its ρ is preferred (7 rather than 14);
5. a smooth cycle has nearly the same ρ a lag either side, so among the winner and its
   neighbours the lag with the smallest mean squared lag difference ``(eₜ − eₜ₋ₖ)²`` wins,
   and a calendar period (4, 7, 12, 24) within :data:`CALENDAR_SLACK` of that is preferred
   (over three cycles a 24-hour profile often differences a little better at 23).

Pass the season explicitly when the sampling interval is known.

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
NOISE_BAR = 3.5
CALENDAR = (4, 7, 12, 24)
"""Periods of business calendars (quarters, weekdays, months, hours), preferred to a lag
one off them."""
CALENDAR_SLACK = 1.25
"""A calendar period wins when its mean squared lag difference is within this factor of the
best neighbour's."""
"""A peak must also reach NOISE_BAR/√pairs: white noise has ρ(k) ≈ N(0, 1/pairs) at each of
the ~MAX_LAG lags looked at, so a lower bar finds a spurious season in about one noise series
in ten."""


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
    msd = np.full(top + 2, np.nan)
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
        msd[k] = float(np.mean((a[ok] - b[ok]) ** 2))
        need[k] = max(MIN_ACF, NOISE_BAR / np.sqrt(pairs))
    cands = []
    for k in range(2, top + 1):
        left, here, right = acf[k - 1], acf[k], acf[k + 1]
        if np.isnan(here) or here < need[k]:
            continue
        # at the longest lag a cycle may still be rising (the peak sits just past it)
        if (np.isnan(left) or here > left) and (np.isnan(right) or here >= right or k == top):
            cands.append(k)
    if not cands:
        return 1
    best = max(cands, key=lambda k: (acf[k], -k))
    for k in sorted(cands):
        if best % k == 0 and acf[k] >= 0.8 * acf[best]:
            best = k
            break
    # A smooth cycle has nearly the same ρ one lag either side. The period is the lag whose
    # differences are smallest (the cycle cancels exactly only there), except that a
    # calendar period (quarters, weekdays, months, hours) within CALENDAR_SLACK of it wins:
    # over three cycles a smooth 24-hour profile often differences slightly better at 23.
    near = [k for k in (best - 1, best, best + 1)
            if 2 <= k <= top and not np.isnan(msd[k]) and acf[k] >= need[k]]
    if not near:
        return best
    best = min(near, key=lambda k: (msd[k], k))
    cal = [k for k in near if k in CALENDAR and msd[k] <= CALENDAR_SLACK * msd[best]]
    return cal[0] if cal else best
