"""Drivers: which slices of a dimension moved a KPI between two periods.

Three pure analyses over one dimension (region, plan, channel …) whose slices are named by
``labels`` and measured in a *before* and an *after* period:

**Additive KPIs** (sum, count) — :func:`contributions`. With ``b_i``/``a_i`` the slice
values (a NaN means the slice had no data in that period and counts as 0):

* ``change_i = a_i − b_i``; ``total_change = Σa − Σb = Σ change_i`` (up to float rounding);
* ``share_of_change_i = change_i / total_change`` (``None`` when ``total_change == 0``);
* ``percent_change_i = 100 × change_i / |b_i|`` (percent; ``None`` when ``b_i == 0``).

*Drivers* are the slices whose change has the sign of the total change, *detractors* those
with the opposite sign (both empty when the total did not move). :func:`explained_by` is the
share of the total change carried by the largest drivers.

**Ratio KPIs** (``R = scale × Σnum / Σden``, e.g. conversion, ARPU) — :func:`mix_rate`, an
exact mix/rate decomposition. With weights ``w_i = den_i / Σden`` and rates
``r_i = scale × num_i / den_i`` in each period (0 = before, 1 = after)::

    R1 − R0 = Σ (w1_i − w0_i) · r0_i   [mix effect]   +   Σ w1_i · (r1_i − r0_i)   [rate effect]

which holds exactly because ``R = Σ w_i r_i``. A segment whose denominator is 0 or NaN in a
period has weight 0 there and its (undefined) rate is taken from the other period, so a new
segment contributes ``w1·r1`` of pure mix and a vanished one ``−w0·r0`` of pure mix.

**Concentration** of a non-negative additive KPI — :func:`concentration`: the share of each
slice ``s_i = v_i / Σv``, the top slice and the Herfindahl–Hirschman index
``HHI = Σ s_i²`` (``1/n`` when all ``n`` slices are equal, ``1`` when one holds everything).

Every ordering is deterministic: by magnitude descending, ties by label. Bad input raises
:class:`ValueError` naming what was expected and what came.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Concentration",
    "Contribution",
    "Decomposition",
    "MixRate",
    "SegmentEffect",
    "Share",
    "concentration",
    "contributions",
    "explained_by",
    "mix_rate",
]

FloatArray = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------------------------
# Additive KPIs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Contribution:
    """One slice's part in the change of an additive KPI (KPI units; percent in percent)."""

    label: str
    before: float
    after: float
    change: float
    share_of_change: float | None
    percent_change: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "before": _finite(self.before), "after": _finite(self.after),
                "change": _finite(self.change), "share_of_change": _opt(self.share_of_change),
                "percent_change": _opt(self.percent_change)}


@dataclass(frozen=True, slots=True)
class Decomposition:
    """The change of an additive KPI split over the slices of one dimension.

    ``contributions`` is sorted by ``|change|`` descending, ties by label; the changes sum to
    ``total_change`` up to float rounding.
    """

    dimension: str
    total_before: float
    total_after: float
    total_change: float
    contributions: tuple[Contribution, ...]

    @property
    def drivers(self) -> tuple[Contribution, ...]:
        """Slices that moved with the total (same sign as ``total_change``), largest first."""
        sign = np.sign(self.total_change)
        return tuple(c for c in self.contributions if sign != 0 and np.sign(c.change) == sign)

    @property
    def detractors(self) -> tuple[Contribution, ...]:
        """Slices that moved against the total (opposite sign), largest first."""
        sign = np.sign(self.total_change)
        return tuple(c for c in self.contributions if sign != 0 and np.sign(c.change) == -sign)

    def to_dict(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "total_before": _finite(self.total_before),
                "total_after": _finite(self.total_after),
                "total_change": _finite(self.total_change),
                "contributions": [c.to_dict() for c in self.contributions],
                "drivers": [c.label for c in self.drivers],
                "detractors": [c.label for c in self.detractors]}


def contributions(dimension: str, labels: Sequence[str], before: npt.ArrayLike,
                  after: npt.ArrayLike) -> Decomposition:
    """Split the change of an additive KPI (sum, count) between two periods over slices.

    ``before``/``after``: shape (n,), one value per label; NaN = no data in that period,
    counted as 0. ``change_i = after_i − before_i``; ``share_of_change_i = change_i /
    total_change`` (``None`` when the total did not change); ``percent_change_i =
    100 × change_i / |before_i|`` (``None`` when ``before_i == 0``).
    """
    names = _labels(labels)
    b = _values("before", before, len(names))
    a = _values("after", after, len(names))
    total_before = math.fsum(b.tolist())
    total_after = math.fsum(a.tolist())
    total_change = total_after - total_before
    items = []
    for label, bi, ai in zip(names, b.tolist(), a.tolist(), strict=True):
        change = ai - bi
        share = change / total_change if total_change != 0 else None
        pct = 100.0 * change / abs(bi) if bi != 0 else None
        items.append(Contribution(label, bi, ai, change, share, pct))
    items.sort(key=lambda c: (-abs(c.change), c.label))
    return Decomposition(dimension, total_before, total_after, total_change, tuple(items))


def explained_by(dec: Decomposition, top: int = 1) -> float:
    """Share of the total change carried by the ``top`` largest drivers.

    ``Σ change of the top drivers / total_change`` — e.g. 0.8 for "EU accounts for 80 % of
    the drop". It can exceed 1 when detractors offset part of the move. Fewer than ``top``
    drivers: all of them. NaN when the total did not change (there is nothing to explain).
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if dec.total_change == 0:
        return math.nan
    carried = math.fsum(c.change for c in dec.drivers[:top])
    return carried / dec.total_change


# ---------------------------------------------------------------------------------------------
# Ratio KPIs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SegmentEffect:
    """One segment's part in the change of a ratio KPI.

    ``weight_*`` = segment denominator / total denominator (0 when absent); ``rate_*`` =
    ``scale × num / den`` as observed (``None`` when the segment is absent in that period);
    ``mix = (weight_after − weight_before) × r0`` and ``rate = weight_after × (r1 − r0)``
    with an absent period's rate taken from the other period; ``total = mix + rate``.
    """

    label: str
    weight_before: float
    weight_after: float
    rate_before: float | None
    rate_after: float | None
    mix: float
    rate: float
    total: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "weight_before": _finite(self.weight_before),
                "weight_after": _finite(self.weight_after),
                "rate_before": _opt(self.rate_before), "rate_after": _opt(self.rate_after),
                "mix": _finite(self.mix), "rate": _finite(self.rate),
                "total": _finite(self.total)}


@dataclass(frozen=True, slots=True)
class MixRate:
    """Exact mix/rate decomposition of the change of a ratio KPI over one dimension.

    ``change = rate_after − rate_before = mix_effect + rate_effect`` and the segment totals
    sum to ``change`` (up to float rounding). ``segments`` is sorted by ``|total|``
    descending, ties by label.
    """

    dimension: str
    rate_before: float
    rate_after: float
    change: float
    mix_effect: float
    rate_effect: float
    segments: tuple[SegmentEffect, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "rate_before": _finite(self.rate_before),
                "rate_after": _finite(self.rate_after), "change": _finite(self.change),
                "mix_effect": _finite(self.mix_effect), "rate_effect": _finite(self.rate_effect),
                "segments": [s.to_dict() for s in self.segments]}


def mix_rate(dimension: str, labels: Sequence[str], num_before: npt.ArrayLike,
             den_before: npt.ArrayLike, num_after: npt.ArrayLike, den_after: npt.ArrayLike,
             scale: float = 1.0) -> MixRate:
    """Decompose the change of ``R = scale × Σnum / Σden`` into mix and rate effects.

    All arrays: shape (n,), one value per label. A denominator of 0 or NaN means the segment
    is absent in that period (weight 0; its numerator must then be 0 or NaN); denominators
    must not be negative. With ``w = den / Σden`` and ``r = scale × num / den``::

        mix_i  = (w1_i − w0_i) · r0_i        rate_i = w1_i · (r1_i − r0_i)

    where an absent period's rate is the other period's, so new and vanished segments
    contribute pure mix. Raises :class:`ValueError` when a period's total denominator is 0
    (its rate, hence the change, is undefined).
    """
    if not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    names = _labels(labels)
    nb, db = _ratio_period("before", num_before, den_before, names)
    na, da = _ratio_period("after", num_after, den_after, names)
    tot_b, tot_a = math.fsum(db.tolist()), math.fsum(da.tolist())
    empty = [p for p, t in (("before", tot_b), ("after", tot_a)) if t == 0]
    if empty:
        raise ValueError(f"the total denominator is 0 in period(s) {' and '.join(empty)} of "
                         f"dimension {dimension!r}, so the rate is undefined there and its change "
                         "cannot be decomposed; give at least one segment a positive denominator "
                         "in each period")
    rate_before = scale * math.fsum(nb.tolist()) / tot_b
    rate_after = scale * math.fsum(na.tolist()) / tot_a
    w0, w1 = db / tot_b, da / tot_a
    with np.errstate(divide="ignore", invalid="ignore"):
        r0_obs = np.where(db > 0, scale * nb / np.where(db > 0, db, 1.0), np.nan)
        r1_obs = np.where(da > 0, scale * na / np.where(da > 0, da, 1.0), np.nan)
    # An undefined rate is taken from the other period; absent in both → 0 (weights are 0).
    r0 = np.where(np.isnan(r0_obs), np.nan_to_num(r1_obs), r0_obs)
    r1 = np.where(np.isnan(r1_obs), r0, r1_obs)
    mix = (w1 - w0) * r0
    rate = w1 * (r1 - r0)
    segs = [SegmentEffect(label, float(w0[i]), float(w1[i]), _opt_nan(r0_obs[i]),
                          _opt_nan(r1_obs[i]), float(mix[i]), float(rate[i]),
                          float(mix[i] + rate[i]))
            for i, label in enumerate(names)]
    segs.sort(key=lambda s: (-abs(s.total), s.label))
    return MixRate(dimension, rate_before, rate_after, rate_after - rate_before,
                   math.fsum(mix.tolist()), math.fsum(rate.tolist()), tuple(segs))


# ---------------------------------------------------------------------------------------------
# Concentration
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Share:
    """One slice's value and its share ``value / total`` (0…1) of the dimension."""

    label: str
    value: float
    share: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "value": _finite(self.value), "share": _finite(self.share)}


@dataclass(frozen=True, slots=True)
class Concentration:
    """How concentrated a non-negative additive KPI is over the slices of one dimension.

    ``hhi = Σ share²`` lies in ``[1/n, 1]``; ``shares`` is sorted by share descending, ties
    by label, so ``shares[0]`` is the top slice.
    """

    dimension: str
    total: float
    top_label: str
    top_share: float
    hhi: float
    shares: tuple[Share, ...]

    def concentrated(self, threshold: float = 0.5) -> bool:
        """Whether the top slice holds at least ``threshold`` (0…1) of the total."""
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a share between 0 and 1, got {threshold!r}")
        return self.top_share >= threshold

    def to_dict(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "total": _finite(self.total),
                "top_label": self.top_label, "top_share": _finite(self.top_share),
                "hhi": _finite(self.hhi), "shares": [s.to_dict() for s in self.shares]}


def concentration(dimension: str, labels: Sequence[str], values: npt.ArrayLike) -> Concentration:
    """Shares of a non-negative additive KPI per slice, the top slice and the HHI.

    ``values``: shape (n,), NaN = no data, counted as 0. ``share_i = v_i / Σv``;
    ``hhi = Σ share_i²``. Raises :class:`ValueError` for a negative value or a zero total.
    """
    names = _labels(labels)
    v = _values("values", values, len(names))
    negative = [names[i] for i in np.flatnonzero(v < 0)]
    if negative:
        raise ValueError(f"concentration needs non-negative values, but dimension {dimension!r} "
                         f"has negative values for {negative}; use contributions() for KPIs "
                         "that can be negative")
    total = math.fsum(v.tolist())
    if total == 0:
        raise ValueError(f"concentration needs a positive total, but dimension {dimension!r} "
                         f"sums to 0 over {len(names)} slice(s); shares of nothing are undefined")
    shares = sorted((Share(label, vi, vi / total) for label, vi in zip(names, v.tolist(),
                                                                      strict=True)),
                    key=lambda s: (-s.share, s.label))
    hhi = math.fsum(s.share * s.share for s in shares)
    return Concentration(dimension, total, shares[0].label, shares[0].share, hhi, tuple(shares))


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def _labels(labels: Sequence[str]) -> list[str]:
    names = list(labels)
    dupes = sorted(label for label, k in Counter(names).items() if k > 1)
    if dupes:
        raise ValueError(f"labels must be unique, but {dupes} appear more than once")
    return names


def _array(name: str, values: npt.ArrayLike, n: int) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one value per label, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains an infinite value; give finite numbers "
                         "(NaN for a slice with no data)")
    return arr


def _values(name: str, values: npt.ArrayLike, n: int) -> FloatArray:
    """Additive values with NaN (no data) counted as 0."""
    return np.nan_to_num(_array(name, values, n), nan=0.0)


def _ratio_period(period: str, num: npt.ArrayLike, den: npt.ArrayLike,
                  names: list[str]) -> tuple[FloatArray, FloatArray]:
    """Numerator and denominator of one period, NaN → 0, checked for consistency."""
    nu = _array(f"num_{period}", num, len(names))
    de = _array(f"den_{period}", den, len(names))
    if (de < 0).any():
        raise ValueError(f"den_{period} must not be negative, but it is for "
                         f"{[names[i] for i in np.flatnonzero(de < 0)]}")
    present = de > 0  # NaN compares False: absent
    orphan = ~present & ~np.isnan(nu) & (nu != 0)
    if orphan.any():
        raise ValueError(f"num_{period} is non-zero where den_{period} is 0 or missing "
                         f"(for {[names[i] for i in np.flatnonzero(orphan)]}); a segment with no "
                         "denominator cannot have a numerator")
    missing = present & np.isnan(nu)
    if missing.any():
        raise ValueError(f"num_{period} is NaN where den_{period} is positive (for "
                         f"{[names[i] for i in np.flatnonzero(missing)]}); give the numerator, or NaN/0 for "
                         "both when the segment had no data")
    return np.nan_to_num(nu, nan=0.0), np.nan_to_num(de, nan=0.0)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _opt(x: float | None) -> float | None:
    return None if x is None else _finite(x)


def _opt_nan(x: np.float64) -> float | None:
    return None if np.isnan(x) else float(x)
