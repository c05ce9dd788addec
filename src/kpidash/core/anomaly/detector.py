"""Entry points: score a whole history (:func:`score`), many at once (:func:`score_many`), or
point by point (:class:`OnlineDetector`). All three run the same state machine
(:mod:`kpidash.core.anomaly.state`) and give bit-for-bit the same numbers for a series.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kpidash.core.anomaly.result import (
    AnomalyScores,
    Kind,
    Severity,
    score_from_z,
    severity_from_z,
)
from kpidash.core.anomaly.season import DETECT_POINTS, detect_season
from kpidash.core.anomaly.state import Out, Params, State, default_warmup, step

F64 = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

DEFAULT_THRESHOLD = 4.0
"""T: a robust z of 4 (Gaussian tail 6e-5 per point), the KPI's default ``anomaly_threshold``."""
_START_METHOD = "spawn"  # safe whatever threads the caller runs; costs an import per worker


def _check_options(season_length: int | None, threshold: float) -> None:
    if season_length is not None and (isinstance(season_length, bool) or not isinstance(
            season_length, int | np.integer) or season_length < 1):
        raise ValueError(f"season_length must be a positive integer (1 = no season) or None "
                         f"to detect it, got {season_length!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.floating) or \
            not math.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a finite number > 0 (a robust z, default 4), "
                         f"got {threshold!r}")


def _as_series(values: ArrayLike) -> F64:
    x = np.array(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {x.shape}")
    if np.isinf(x).any():
        i = int(np.flatnonzero(np.isinf(x))[0])
        raise ValueError(f"values[{i}] is {x[i]}; pass NaN for a missing value, never ±inf")
    return x


def resolve(values: F64, season_length: int | None, threshold: float) -> Params | None:
    """Detector settings for a series; None while automatic detection lacks points.

    With ``season_length`` None the season is detected from the first
    :data:`~kpidash.core.anomaly.season.DETECT_POINTS` valid observations (positions up to the
    last of them), and the warm-up is at least that long, so no score depends on later data.
    """
    if season_length is not None:
        m = int(season_length)
        return Params(m, float(threshold), default_warmup(m))
    valid = np.flatnonzero(~np.isnan(values))
    if valid.size < DETECT_POINTS:
        return None
    m = detect_season(values[: valid[DETECT_POINTS - 1] + 1])
    return Params(m, float(threshold), max(default_warmup(m), DETECT_POINTS))


def _run(block: F64, p: Params) -> Out:
    """Run the state machine over ``block`` (S × n, NaN = missing)."""
    s, n = block.shape
    st = State.new(s, p)
    out = Out.new(s, n)
    for t in range(n):
        step(st, np.ascontiguousarray(block[:, t]), p, out, t)
    return out


def _assemble(x: F64, expected: F64, spread: F64, z: F64, drift: F64,
              kind: npt.NDArray[np.int8], onset: npt.NDArray[np.int64], p: Params | None,
              threshold: float, higher_is_better: bool, log_scale: bool = False,
              ) -> AnomalyScores:
    T = float(threshold)
    # the evidence: the point's z, or a drift alarm's effective z where that is larger
    ev = np.where(np.abs(drift) > np.abs(z), drift, z)
    flag = np.abs(ev) >= T
    half = T * spread
    lo, hi = expected - half, expected + half
    if log_scale:
        expected, lo, hi = np.exp(expected), np.exp(lo), np.exp(hi)
    return AnomalyScores(
        values=x, expected=expected, lo=lo, hi=hi, z=z,
        score=score_from_z(ev, T), is_anomaly=flag,
        severity=np.where(flag, severity_from_z(ev, T), 0).astype(np.int8),
        kind=np.where(flag, kind, 0).astype(np.int8), onset=np.where(flag, onset, -1),
        favourable=flag & ((ev > 0) == higher_is_better),
        season_length=None if p is None else p.season_length, threshold=T,
        higher_is_better=bool(higher_is_better),
        warmup=DETECT_POINTS if p is None else p.warmup, log_scale=bool(log_scale))


def _empty(x: F64, threshold: float, higher_is_better: bool) -> AnomalyScores:
    n = x.shape[0]
    nan = np.full(n, np.nan)
    return _assemble(x, nan, nan.copy(), np.zeros(n), np.zeros(n), np.zeros(n, np.int8),
                     np.full(n, -1, np.int64), None, threshold, higher_is_better)


def score(values: ArrayLike, *, season_length: int | None = None,
          threshold: float = DEFAULT_THRESHOLD, higher_is_better: bool = True) -> AnomalyScores:
    """Causal anomaly scores of one regularly sampled series.

    ``values``: 1-D, one value per period, NaN for a missing period. ``season_length``: the
    cycle in periods (7 for daily data with a weekly cycle, 24 for hourly, 1 for none), or
    None to detect it from the first 72 valid points. ``threshold``: T in robust z units (the
    KPI's ``anomaly_threshold``). The score of point i depends on values[: i + 1] only.
    """
    _check_options(season_length, threshold)
    x = _as_series(values)
    p = resolve(x, season_length, threshold)
    if p is None:
        return _empty(x, threshold, higher_is_better)
    out = _run(x[None, :], p)
    return _assemble(x, out.expected[0], out.spread[0], out.z[0], out.drift[0], out.kind[0],
                     out.onset[0], p, threshold, higher_is_better, bool(out.log[0]))


def score_many(series: Sequence[ArrayLike], *,
               season_length: int | Sequence[int | None] | None = None,
               threshold: float = DEFAULT_THRESHOLD, higher_is_better: bool = True,
               n_jobs: int = 1) -> list[AnomalyScores]:
    """:func:`score` for many series at once (same result for each, much faster).

    ``season_length`` is one value for all series or one per series.

    Series sharing a season and warm-up are stacked (padded at the end with NaN, which by
    causality changes nothing) and advanced together, one loop over time with arrays over
    series; ``n_jobs`` > 1 splits the stacks over that many worker processes (the per-step
    work is many small numpy calls, which threads cannot overlap; workers are spawned, so a
    script calling this needs the usual ``if __name__ == "__main__":`` guard).
    """
    seasons = (list(season_length) if isinstance(season_length, Sequence)
               else [season_length] * len(series))
    if len(seasons) != len(series):
        raise ValueError(f"season_length has {len(seasons)} entries for {len(series)} series; "
                         "pass one per series or a single value")
    for m in seasons:
        _check_options(m, threshold)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    xs = [_as_series(v) for v in series]
    params = [resolve(x, m, threshold) for x, m in zip(xs, seasons, strict=True)]
    results: list[AnomalyScores | None] = [None] * len(xs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(params):
        if p is None:
            results[i] = _empty(xs[i], threshold, higher_is_better)
        else:
            groups.setdefault((p.season_length, p.warmup), []).append(i)
    tasks: list[tuple[list[int], Params]] = []
    for members in groups.values():
        p = params[members[0]]
        assert p is not None
        size = max(1, math.ceil(len(members) / n_jobs))
        tasks += [(members[k:k + size], p) for k in range(0, len(members), size)]

    blocks = []
    for members, _ in tasks:
        n = max(xs[i].shape[0] for i in members)
        block = np.full((len(members), n), np.nan)
        for r, i in enumerate(members):
            block[r, : xs[i].shape[0]] = xs[i]
        blocks.append(block)
    if n_jobs == 1 or len(tasks) == 1:
        outs = [_run(b, p) for b, (_, p) in zip(blocks, tasks, strict=True)]
    else:
        ctx = multiprocessing.get_context(_START_METHOD)
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
            outs = list(pool.map(_run, blocks, [p for _, p in tasks]))
    for (members, p), out in zip(tasks, outs, strict=True):
        for r, i in enumerate(members):
            k = xs[i].shape[0]
            results[i] = _assemble(xs[i], out.expected[r, :k].copy(), out.spread[r, :k].copy(),
                                   out.z[r, :k].copy(), out.drift[r, :k].copy(),
                                   out.kind[r, :k].copy(),
                                   out.onset[r, :k].copy(), p, threshold, higher_is_better,
                                   bool(out.log[r]))
    return [r for r in results if r is not None]


@dataclass(frozen=True, slots=True)
class PointScore:
    """The score of one point from :meth:`OnlineDetector.update` (fields as in
    :class:`~kpidash.core.anomaly.result.AnomalyScores`, for one index)."""

    index: int
    value: float
    expected: float
    lo: float
    hi: float
    z: float
    score: float
    is_anomaly: bool
    severity: Severity
    kind: Kind
    onset: int
    favourable: bool


class OnlineDetector:
    """Feed one value per period with :meth:`update`; the same numbers as :func:`score`.

    With ``season_length`` None the first 72 valid values are held until the season is
    decided, then replayed through the state machine (they are all warm-up points).
    """

    def __init__(self, *, season_length: int | None = None,
                 threshold: float = DEFAULT_THRESHOLD, higher_is_better: bool = True) -> None:
        _check_options(season_length, threshold)
        self._season = season_length
        self._threshold = float(threshold)
        self._hib = bool(higher_is_better)
        self._pending: list[float] = []
        self._params: Params | None = None
        self._state: State | None = None
        self._t = 0

    @property
    def params(self) -> Params | None:
        """Resolved settings (season, warm-up), None until the season is decided."""
        return self._params

    def update(self, value: float) -> PointScore:
        """Score the next period's value (NaN = missing) and advance the state."""
        x = _as_series([value])
        out = Out.new(1, 1)
        if self._state is None:
            self._pending.append(float(x[0]))
            p = resolve(np.array(self._pending), self._season, self._threshold)
            if p is not None:
                self._params, self._state = p, State.new(1, p)
                for v in self._pending:
                    step(self._state, np.array([v]), p, out, 0)
                self._pending = []
        else:
            assert self._params is not None
            step(self._state, x, self._params, out, 0)
        s = _assemble(x, out.expected[0], out.spread[0], out.z[0], out.drift[0], out.kind[0],
                      out.onset[0], self._params, self._threshold, self._hib,
                      bool(out.log[0]))
        i, self._t = self._t, self._t + 1
        return PointScore(
            index=i, value=float(x[0]), expected=float(s.expected[0]), lo=float(s.lo[0]),
            hi=float(s.hi[0]), z=float(s.z[0]), score=float(s.score[0]),
            is_anomaly=bool(s.is_anomaly[0]), severity=Severity(int(s.severity[0])),
            kind=Kind(int(s.kind[0])), onset=int(s.onset[0]),
            favourable=bool(s.favourable[0]))
