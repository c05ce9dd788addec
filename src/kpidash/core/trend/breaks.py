"""Trend-change points: where "a new trend started".

Model (continuous segmented regression on the seasonally adjusted series ``y`` at period
positions ``t``)::

    y_t = a + b·t + Σ_k c_k·(t − τ_k)₊ [+ d_k·1(t ≥ τ_k) when ``jumps``] + ε_t

so segment ``j`` has slope ``b + Σ_{k≤j} c_k`` (units per period). Break positions are chosen
by greedy forward selection (a binary-segmentation search over the whole series): each step
adds the break that lowers the residual sum of squares most — computed for every candidate
at once by projecting its column(s) off the current design — moves every break, holding the
others, to its best position, and keeps the result only when

    BIC = n·ln(RSS/n) + penalty·p·ln(n)

falls (``p`` counts linear coefficients plus one per break location). A backward pass then
drops a break (re-placing the rest) while that lowers BIC. Each break then gets a partial F-test
(the model without it vs with it); the p-value is nominal — the location was searched — which
is why selection relies on BIC and the F-test only labels ``significant``.

Seasonal adjustment (when ``season_length ≥ 2``): ``level`` = centred rolling median over
one season; ``seasonal[k]`` = median of ``y − level`` over positions ``≡ k`` (mod season),
centred to mean 0; the adjusted series is ``y − seasonal[t mod season]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from kpidash.core.trend.change import _iso

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrendBreak:
    """A new trend starting at array position ``index`` (period ``period`` when known)."""

    index: int
    period: np.datetime64 | None
    slope_before: float
    slope_after: float
    p_value: float
    significant: bool
    jump: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "period": _iso(self.period),
                "slope_before": self.slope_before, "slope_after": self.slope_after,
                "p_value": self.p_value, "significant": self.significant, "jump": self.jump}


@dataclass(frozen=True, slots=True)
class TrendBreaks:
    """Selected breaks (by position), segment slopes, BIC with and without breaks, and the
    fitted piecewise line (shape (n,), NaN where the input was missing; seasonally adjusted
    scale when ``seasonally_adjusted``)."""

    breaks: tuple[TrendBreak, ...]
    slopes: tuple[float, ...]
    bic: float
    bic_without_breaks: float
    seasonally_adjusted: bool
    fitted: Array = field(repr=False)

    @property
    def significant(self) -> tuple[TrendBreak, ...]:
        return tuple(b for b in self.breaks if b.significant)

    def to_dict(self) -> dict[str, Any]:
        return {"breaks": [b.to_dict() for b in self.breaks], "slopes": list(self.slopes),
                "bic": self.bic, "bic_without_breaks": self.bic_without_breaks,
                "seasonally_adjusted": self.seasonally_adjusted}


def seasonal_adjust(y: npt.ArrayLike, season_length: int) -> Array:
    """``y`` (shape (n,), NaN = missing, one value per period) minus a robust seasonal
    component (see module doc); NaN stays NaN."""
    v = np.asarray(y, dtype=np.float64)
    m = int(season_length)
    if m < 2 or np.isfinite(v).sum() < 2 * m:
        return v.copy()
    win = m if m % 2 else m + 1
    level = pd.Series(v).rolling(win, center=True, min_periods=1).median().to_numpy()
    resid = v - level
    pos = np.arange(v.shape[0]) % m
    seasonal = np.array([np.nanmedian(resid[pos == k]) if np.isfinite(resid[pos == k]).any()
                         else 0.0 for k in range(m)])
    seasonal -= seasonal.mean()
    out: Array = v - seasonal[pos]
    return out


def _design(t: Array, taus: list[float], jumps: bool) -> Array:
    cols = [np.ones_like(t), t]
    for tau in taus:
        cols.append(np.maximum(t - tau, 0.0))
        if jumps:
            cols.append((t >= tau).astype(np.float64))
    return np.column_stack(cols)


def _rss(x: Array, y: Array) -> tuple[float, Array]:
    beta = np.asarray(np.linalg.lstsq(x, y, rcond=None)[0], dtype=np.float64)
    r = y - x @ beta
    return float(r @ r), beta


def _best(t: Array, y: Array, taus: list[float], cands: Array, jumps: bool,
          ) -> tuple[float, float]:
    """(best new break among ``cands``, RSS with it) given breaks ``taus``."""
    q, _ = np.linalg.qr(_design(t, taus, jumps))
    r = y - q @ (q.T @ y)
    h = np.maximum(t[:, None] - cands[None, :], 0.0)
    h -= q @ (q.T @ h)
    hh, rh = (h * h).sum(axis=0), r @ h
    gain = np.where(hh > 1e-12, rh ** 2 / np.where(hh > 1e-12, hh, 1.0), 0.0)
    if jumps:
        s = (t[:, None] >= cands[None, :]).astype(np.float64)
        s -= q @ (q.T @ s)
        hs, ss, rs = (h * s).sum(axis=0), (s * s).sum(axis=0), r @ s
        det = hh * ss - hs ** 2
        ok = det > 1e-9 * np.maximum(hh * ss, 1e-12)
        both = (ss * rh ** 2 - 2 * hs * rh * rs + hh * rs ** 2) / np.where(ok, det, 1.0)
        gain = np.where(ok, both, gain)
    k = int(np.argmax(gain))
    return float(cands[k]), float(r @ r - gain[k])


def _allowed(t: Array, taus: list[float], min_size: int) -> Array:
    n = t.shape[0]
    idx = np.arange(min_size, n - min_size + 1)
    for tau in taus:
        at = int(np.searchsorted(t, tau))
        idx = idx[np.abs(idx - at) >= min_size]
    return t[idx]


def trend_breaks(y: npt.ArrayLike, periods: npt.ArrayLike | None = None, *,
                 season_length: int | None = None, max_breaks: int = 3,
                 min_size: int | None = None, penalty: float = 1.0, alpha: float = 0.05,
                 jumps: bool = False) -> TrendBreaks:
    """Find points where the slope of ``y`` (shape (n,), NaN = missing) changes.

    ``min_size`` is the least number of observations in a segment (default
    ``max(5, season_length)`` when the series was seasonally adjusted, else 5); ``penalty``
    multiplies BIC's ``ln(n)`` term; ``periods`` (shape (n,) datetime64) only labels the
    breaks.
    """
    raw = np.asarray(y, dtype=np.float64)
    per = None if periods is None else np.asarray(periods, dtype="datetime64[us]")
    adj = bool(season_length and season_length >= 2
               and np.isfinite(raw).sum() >= 2 * season_length)
    v = seasonal_adjust(raw, season_length) if adj and season_length else raw
    ok = np.isfinite(v)
    t, yy = np.flatnonzero(ok).astype(np.float64), v[ok]
    n = t.shape[0]
    # a segment spans at least a season only when the season was actually removed
    size = max(2, min_size if min_size is not None else max(5, (season_length or 0) if adj else 0))
    per_break = 2 if jumps else 1
    floor = 1e-12 * (float(yy @ yy) + 1.0)

    def bic(rss: float, k: int) -> float:
        return float(n * np.log(max(rss, floor) / max(n, 1))
                     + penalty * (2 + k * (per_break + 1)) * np.log(max(n, 2)))

    fitted = np.full(raw.shape, np.nan)
    if n < 3:
        return TrendBreaks((), (), float("nan"), float("nan"), adj, fitted)
    rss0, _ = _rss(_design(t, [], jumps), yy)
    bic0 = best_bic = bic(rss0, 0)
    def refine(taus: list[float]) -> tuple[list[float], float]:
        """Move each break to its best place holding the others; (breaks, RSS)."""
        taus = list(taus)
        for _ in range(3):
            before = list(taus)
            for i in range(len(taus)):
                others = taus[:i] + taus[i + 1:]
                cands = _allowed(t, others, size)
                if cands.size:
                    taus[i] = _best(t, yy, others, cands, jumps)[0]
            if taus == before:
                break
        return taus, _rss(_design(t, taus, jumps), yy)[0]

    taus: list[float] = []
    while len(taus) < max_breaks:
        cands = _allowed(t, taus, size)
        if cands.size == 0:
            break
        grown, rss = refine([*taus, _best(t, yy, taus, cands, jumps)[0]])
        if bic(rss, len(grown)) >= best_bic:
            break
        taus, best_bic = grown, bic(rss, len(grown))
    while taus:  # backward: drop a break when the refined rest is better by BIC
        options = [refine(taus[:i] + taus[i + 1:]) for i in range(len(taus))]
        scores = [bic(r, len(taus) - 1) for _, r in options]
        k = int(np.argmin(scores))
        if scores[k] >= best_bic:
            break
        taus, best_bic = options[k][0], scores[k]
    taus.sort()
    x = _design(t, taus, jumps)
    rss, beta = _rss(x, yy)
    fitted[ok] = x @ beta
    dof = n - x.shape[1]
    step = per_break
    slopes = np.cumsum(np.concatenate([[beta[1]], beta[2::step]]))
    out = []
    for i, tau in enumerate(taus):
        rss_wo, _ = _rss(_design(t, taus[:i] + taus[i + 1:], jumps), yy)
        f = ((rss_wo - rss) / step) / (rss / dof) if dof > 0 and rss > floor else np.inf
        p = float(stats.f.sf(f, step, dof)) if dof > 0 else float("nan")
        index = int(tau)
        out.append(TrendBreak(index, None if per is None else per[index], float(slopes[i]),
                              float(slopes[i + 1]), p, bool(p < alpha),
                              float(beta[3 + 2 * i]) if jumps else 0.0))
    final_bic = bic(rss, len(taus)) if taus else bic0
    return TrendBreaks(tuple(out), tuple(float(s) for s in slopes), final_bic, bic0, adj,
                       fitted)
