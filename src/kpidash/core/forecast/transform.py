"""Modelling scale for bounded KPIs: models run on z = g(y), forecasts come back as g⁻¹(z).

* no bounds: identity.
* one bound ``lo`` (counts, revenue ≥ 0): z = log(y − lo); ``hi`` only: z = log(hi − y).
* both bounds (rates in [0, 100]): z = logit((y − lo) / (hi − lo)).

Values on a bound (a zero count, a 100 % rate) cannot be logged; they are moved inside by
``delta``: half the smallest positive distance of any observation to the bound (in units of
the series; 10⁻³ of the scale when no observation is off the bound), so integer counts map
0 → 0.5. Back-transformed forecasts are strictly inside the
bounds because g⁻¹ maps the whole real line into them — nothing is clipped afterwards. Quantiles
commute with the monotone g⁻¹, so an interval computed on the z scale stays a valid interval,
and the back-transformed point forecast is the median on the y scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kpidash.core.forecast.types import FloatArray

_EXP_MAX = 700.0  # exp(700) ≈ 1e304: keeps the back-transform finite for run-away trends


@dataclass(frozen=True, slots=True)
class Transform:
    """The map between a series' scale y and the modelling scale z (see module docstring)."""

    kind: str            # "identity", "log_lower", "log_upper" or "logit"
    lo: float
    hi: float
    delta: float         # distance used for observations on a bound, in units of y (logit: of (y-lo)/(hi-lo))
    delta_hi: float = 0.0  # logit only: the same at the upper bound

    def forward(self, y: FloatArray) -> FloatArray:
        if self.kind == "identity":
            return y.astype(np.float64, copy=True)
        if self.kind == "log_lower":
            return np.log(np.maximum(y - self.lo, self.delta))
        if self.kind == "log_upper":
            return np.log(np.maximum(self.hi - y, self.delta))
        p = np.clip((y - self.lo) / (self.hi - self.lo), self.delta, 1.0 - self.delta_hi)
        return np.log(p) - np.log1p(-p)

    def inverse(self, z: FloatArray) -> FloatArray:
        if self.kind == "identity":
            return z
        if self.kind == "log_lower":
            return self.lo + np.exp(np.minimum(z, _EXP_MAX))
        if self.kind == "log_upper":
            return self.hi - np.exp(np.minimum(z, _EXP_MAX))
        ez = np.exp(-np.clip(z, -_EXP_MAX, _EXP_MAX))
        return self.lo + (self.hi - self.lo) / (1.0 + ez)


def make_transform(y: FloatArray, lo: float | None, hi: float | None) -> Transform:
    """Choose the transform for observations ``y`` (n,) within bounds [lo, hi] (None = open).

    The caller has checked that every observation lies within the bounds.
    """
    if lo is None and hi is None:
        return Transform("identity", np.nan, np.nan, 0.0)
    if lo is not None and hi is not None:
        p = (y - lo) / (hi - lo)
        return Transform("logit", lo, hi, _delta(p, 1.0), _delta(1.0 - p, 1.0))
    if lo is not None:
        d = y - lo
        return Transform("log_lower", lo, np.nan, _delta(d, _scale(d)))
    assert hi is not None
    d = hi - y
    return Transform("log_upper", np.nan, hi, _delta(d, _scale(d)))


def _scale(d: FloatArray) -> float:
    s = float(np.max(np.abs(d))) if d.size else 0.0
    return s if s > 0 else 1.0


def _delta(d: FloatArray, scale: float) -> float:
    """Half the smallest positive distance to the bound; 1e-3·scale when none is positive."""
    pos = d[d > 0]
    small = float(pos.min()) / 2.0 if pos.size else 1e-3 * scale
    return max(small, 1e-6 * scale)
