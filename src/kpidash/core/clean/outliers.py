"""Seasonal-robust outlier and scale-error detection (a Hampel filter on residuals from a
robust seasonal baseline). Nothing here smooths a series: only single points are judged.

Points are placed on a regular grid of slots ``k = round((ts − ts₀)/interval)`` (input
position when no timestamps are given); a slot holding several points uses their median.
Points inside known-event windows and non-finite values are left out of the grid, so they
never shape the baseline. With season length ``m ≥ 2`` (in slots):

* ``level``    = median of the ``m`` slots on each side of a slot (the slot excluded: every
  season position appears twice);
* ``seasonal`` = median of ``grid − level`` over the ``c = window_cycles`` same-position slots
  on each side (the same weekday/month in neighbouring cycles; the slot excluded);
* ``baseline`` = ``level + seasonal`` (without a season: the median of the ``half_window``
  slots on each side).

Leaving the judged slot out of its own baseline keeps a spike from pulling its baseline and
keeps the residual scale honest (an in-window median shrinks residuals and inflates z).

Residual ``r = x − baseline``; robust sigma ``σ = 1.4826 · MAD`` where the MAD is the rolling
median of ``|r|`` over ``max(2·c·m+1, 31)`` slots, floored at ``1e-3 · median|x|`` (so a
nearly constant series does not turn rounding into outliers). Robust z ``= r/σ``; a point is
flagged when ``|z| > threshold``. The scan runs twice: the second pass rebuilds the grid
without the points the first pass flagged, so a run of outliers cannot drag the baseline of
its neighbours (which would flag them in turn).

A flagged point is a **scale error** when, for a factor ``f`` in ×100, ×1000, ÷100, ÷1000,
``x/baseline`` is within a factor √10 of ``f`` and the rescaled ``x/f`` has ``|z| ≤ 3``
(the factor with the smallest rescaled ``|z|`` wins); otherwise it is an **outlier**.
Runs of scale errors longer than about half the windows contaminate the baseline and are
not recognised (documented limitation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from kpidash.core.clean.rules import TimeLike, Times, infer_interval, to_utc64

Array = npt.NDArray[np.float64]
Window = tuple[TimeLike, TimeLike]
FACTORS = (100.0, 1000.0, 0.01, 0.001)
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class Scan:
    """Per input point (shape (n,)): baseline, robust sigma, robust z, flags, and the scale
    factor ``f`` (value ≈ f × baseline; 0 when the point is not a scale error)."""

    baseline: Array = field(repr=False)
    sigma: Array = field(repr=False)
    z: Array = field(repr=False)
    flagged: npt.NDArray[np.bool_] = field(repr=False)
    factor: Array = field(repr=False)
    in_event: npt.NDArray[np.bool_] = field(repr=False)
    seasonal: bool
    threshold: float

    def rescaled_z(self, values: Array) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray((values / np.where(self.factor == 0, 1, self.factor)
                               - self.baseline) / self.sigma, dtype=np.float64)


def event_mask(ts: Times, events: Sequence[Window]) -> npt.NDArray[np.bool_]:
    """True where ``start ≤ ts < end`` for any window."""
    mask = np.zeros(ts.shape, dtype=bool)
    for start, end in events:
        mask |= (ts >= to_utc64(start)) & (ts < to_utc64(end))
    return mask


def _slots(ts: Times | None, n: int, interval: np.timedelta64 | None) -> npt.NDArray[np.int64]:
    if ts is None or n == 0:
        return np.arange(n, dtype=np.int64)
    step = interval if interval is not None else infer_interval(ts)
    if step is None or step.astype(np.int64) <= 0:
        return np.arange(n, dtype=np.int64)
    rel = (ts - ts.min()).astype("timedelta64[us]").astype(np.int64) / int(
        step.astype("timedelta64[us]").astype(np.int64))
    slots: npt.NDArray[np.int64] = np.rint(rel).astype(np.int64)
    if slots.max() > 50 * n:  # far too sparse for a grid: fall back to time order
        ranks: npt.NDArray[np.int64] = np.argsort(np.argsort(ts, kind="stable"),
                                                  kind="stable").astype(np.int64)
        return ranks
    return slots


def _roll(x: Array, width: int, min_periods: int) -> Array:
    return np.asarray(pd.Series(x).rolling(width, center=True, min_periods=min_periods)
                      .median().to_numpy(), dtype=np.float64)


def _loo_median(x: Array, half: int, min_count: int = 1) -> Array:
    """Median of the ``half`` values on each side of every position (position excluded,
    NaN ignored); NaN where fewer than ``min_count`` values exist."""
    n = x.shape[0]
    pad = np.full(n + 2 * half, np.nan)
    pad[half:half + n] = x
    cols = np.stack([pad[half + o:half + o + n] for o in range(-half, half + 1) if o], axis=1)
    count = np.isfinite(cols).sum(axis=1)
    out = np.full(n, np.nan)
    ok = count >= max(min_count, 1)
    if ok.any():
        out[ok] = np.nanmedian(cols[ok], axis=1)
    return out


def baseline_grid(grid: Array, season_length: int | None, window_cycles: int = 3,
                  half_window: int = 7) -> tuple[Array, Array]:
    """(baseline, robust sigma) on a regular grid (NaN = no usable value); see module doc."""
    n = grid.shape[0]
    m = season_length or 0
    if m >= 2:
        level = _loo_median(grid, m, max(1, m // 2))
        detrended = grid - level
        seasonal = np.full(n, np.nan)
        for k in range(m):
            seasonal[k::m] = _loo_median(detrended[k::m], window_cycles)
        base = level + seasonal
        width = max(2 * window_cycles * m + 1, 31)
    else:
        base = _loo_median(grid, half_window, 3)
        width = max(4 * half_window + 1, 31)
    mad = _roll(np.abs(grid - base), width, 5)
    finite = grid[np.isfinite(grid)]
    floor = 1e-3 * float(np.median(np.abs(finite))) if finite.size else 0.0
    sigma = np.maximum(MAD_TO_SIGMA * mad, max(floor, 1e-12))
    return base, sigma


def scan(values: npt.ArrayLike, ts: Times | None = None, *, season_length: int | None = None,
         events: Sequence[Window] = (), interval: np.timedelta64 | None = None,
         threshold: float = 5.0, window_cycles: int = 3, half_window: int = 7,
         min_relative: float = 0.2) -> Scan:
    """Judge every point of ``values`` (shape (n,)) against its robust seasonal baseline.

    ``season_length`` counts slots (e.g. 7 for daily data with a weekly cycle). Needs at
    least ``max(2m, 10)`` usable points, else nothing is flagged.

    A point is flagged when ``|x − base| > threshold · σ`` and also
    ``|x − base| > min_relative · |base|``: cleaning fixes gross errors only (a 2 % wobble
    of a smooth series is left to the anomaly detector). For count data (non-negative
    integers) σ is at least ``sqrt(max(base, 1))``, the Poisson noise of a count, so a
    sparse series of mostly zeros with an occasional 1 has nothing to correct.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    if events and ts is None:
        raise ValueError("known-event windows need timestamps to locate the points in them")
    in_event = event_mask(ts, events) if ts is not None else np.zeros(n, dtype=bool)
    usable = np.isfinite(x) & ~in_event
    m = season_length if season_length and season_length >= 2 else None
    empty = np.full(n, np.nan)
    if usable.sum() < max(2 * (m or 0), 10):
        return Scan(empty, empty, empty, np.zeros(n, dtype=bool), np.zeros(n), in_event,
                    m is not None, threshold)
    slots = _slots(ts, n, interval)
    fin = x[np.isfinite(x)]
    counts = bool(fin.size) and bool(np.all(fin >= 0)) and bool(np.all(fin == np.round(fin)))

    def judge(use: npt.NDArray[np.bool_]) -> tuple[Array, Array, Array]:
        grid = np.full(int(slots.max()) + 1, np.nan)
        per_slot = pd.Series(x[use]).groupby(slots[use]).median()
        grid[per_slot.index.to_numpy()] = per_slot.to_numpy()
        base_g, sigma_g = baseline_grid(grid, m, window_cycles, half_window)
        if counts:
            sigma_g = np.maximum(sigma_g, np.sqrt(np.maximum(np.abs(base_g), 1.0)))
        return base_g[slots], sigma_g[slots], (x - base_g[slots]) / sigma_g[slots]

    def outlying(base: Array, z: Array) -> npt.NDArray[np.bool_]:
        with np.errstate(invalid="ignore"):
            gross = np.abs(x - base) > min_relative * np.abs(base)
        return np.isfinite(z) & (np.abs(z) > threshold) & gross

    base, sigma, z = judge(usable)
    flagged = outlying(base, z)
    if flagged.any():  # judge again without the suspects, so a run cannot shift its neighbours
        base, sigma, z = judge(usable & ~flagged)
        flagged = outlying(base, z)
    factor = np.zeros(n)
    for i in np.flatnonzero(flagged):
        factor[i] = _scale_factor(float(x[i]), float(base[i]), float(sigma[i]))
    return Scan(base, sigma, z, flagged, factor, in_event, m is not None, threshold)


def _scale_factor(x: float, base: float, sigma: float, ok_z: float = 3.0) -> float:
    if x == 0 or base == 0 or np.sign(x) != np.sign(base):
        return 0.0
    ratio = np.log10(x / base)
    best, best_z = 0.0, ok_z
    for f in FACTORS:
        zf = abs(x / f - base) / sigma
        if abs(ratio - np.log10(f)) <= 0.5 and zf <= best_z:
            best, best_z = f, zf
    return best


def factor_name(f: float) -> str:
    """The correction applied for a value that is ``f`` × too large: ``rescale_div100`` etc."""
    return f"rescale_div{round(f)}" if f >= 1 else f"rescale_x{round(1 / f)}"
