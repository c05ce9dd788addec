"""Public entry points: :func:`forecast` (many series, model choice, calibrated intervals) and
:func:`fit_model` (one named model on one series, optionally with fixed parameters).

Throughput: series are grouped by (season length, backtest length), sorted by length within a
group (so the end-aligned panels waste few cells) and cut into chunks; each chunk is one
vectorised panel. With ``n_jobs > 1`` chunks run in a process pool; results come back in input
order whatever the scheduling, and every computation is deterministic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from kpidash.core.forecast.ets import SPECS, initial_states, project, run
from kpidash.core.forecast.panel import make_panel, min_train
from kpidash.core.forecast.seasonality import detect_season_length
from kpidash.core.forecast.select import BUILDERS, FALLBACK, MODELS, solve
from kpidash.core.forecast.transform import Transform, make_transform
from kpidash.core.forecast.types import FloatArray, Forecast, ModelFit
from kpidash.errors import QueryError

MIN_POINTS = 3
DEFAULT_LEVELS = (80, 95)
_CELL_BUDGET = 3_000_000      # k × grid × m floats held by one panel's seasonal states
_MAX_CHUNK = 512              # series per panel: larger panels fall out of the CPU caches
_PARALLEL_MIN = 64            # fewer series than this always run in-process


@dataclass(frozen=True, slots=True)
class _Job:
    index: list[int]
    z: list[FloatArray]
    y: list[FloatArray]
    m: int
    h: int
    h_bt: int
    windows: int
    levels: tuple[int, ...]
    model: str
    inverse: Transform


def forecast(series: Sequence[Sequence[float] | FloatArray], horizon: int, *,
             season_length: int | None = None, levels: Sequence[int] = DEFAULT_LEVELS,
             bounds: tuple[float | None, float | None] = (None, None), n_jobs: int = 1,
             model: str = "auto", backtest_windows: int = 6,
             season_candidates: tuple[int, ...] | None = None) -> list[Forecast]:
    """Forecast each of ``series`` ``horizon`` steps ahead, one :class:`Forecast` per series.

    ``series``: 1-D arrays (any lengths; NaN allowed: leading NaNs are dropped, inner gaps are
    interpolated linearly, trailing NaNs carry the last value forward). ``season_length``: the
    period in steps for every series (used when a series has two full seasons), or None to
    detect it per series from the ACF (optionally only among ``season_candidates``).
    ``levels``: interval levels in percent (1–99). ``bounds``: (lower, upper), None = open;
    models then run on a log/logit scale so forecasts and intervals stay inside. ``model``:
    one of ``MODELS`` ("auto" chooses by backtest). ``backtest_windows``: rolling origins
    (spaced by the horizon) used for choice, calibration and the reported metrics.
    ``n_jobs``: worker processes (−1 = all cores).
    """
    h = _check_args(horizon, levels, bounds, n_jobs, model, backtest_windows, season_length)
    levs = tuple(sorted({int(v) for v in levels}))
    lo, hi = bounds
    ys = [_clean(s, i, lo, hi) for i, s in enumerate(series)]
    jobs = _plan(ys, h, season_length, season_candidates, levs, lo, hi, model, backtest_windows)
    workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    results: list[Forecast | None] = [None] * len(ys)
    if workers > 1 and len(ys) >= _PARALLEL_MIN and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            done = list(pool.map(_run_job, jobs))
    else:
        done = [_run_job(j) for j in jobs]
    for job, fcs in zip(jobs, done, strict=True):
        for i, f in zip(job.index, fcs, strict=True):
            results[i] = f
    return [r for r in results if r is not None]


def _run_job(job: _Job) -> list[Forecast]:
    p = make_panel(job.z, job.m, job.h, job.h_bt, job.windows)
    y0 = make_panel(job.y, job.m, job.h, job.h_bt, job.windows).y
    return solve(p, y0, job.inverse.inverse, job.levels, job.model)


def _plan(ys: list[FloatArray], h: int, season_length: int | None,
          candidates: tuple[int, ...] | None, levels: tuple[int, ...], lo: float | None,
          hi: float | None, model: str, windows: int) -> list[_Job]:
    groups: dict[tuple[int, int], list[tuple[int, FloatArray, FloatArray, Transform]]] = {}
    for i, y in enumerate(ys):
        tr = make_transform(y, lo, hi)
        z = tr.forward(y)
        n = z.shape[0]
        m = season_length if season_length is not None else detect_season_length(z, candidates)
        if m < 2 or n < 2 * m:
            m = 1
        h_bt = max(0, min(h, n - min_train(m)))
        groups.setdefault((m, h_bt), []).append((i, z, y, tr))
    jobs: list[_Job] = []
    for (m, h_bt), members in sorted(groups.items()):
        members.sort(key=lambda t: (t[1].shape[0], t[0]))
        grid = max(s.grid.shape[0] for s in SPECS.values())
        size = max(1, min(_MAX_CHUNK, _CELL_BUDGET // (grid * max(m, 1))))
        for a in range(0, len(members), size):
            part = members[a: a + size]
            jobs.append(_Job([t[0] for t in part], [t[1] for t in part], [t[2] for t in part],
                             m, h, h_bt, windows, levels, model, part[0][3]))
    return jobs


def fit_model(y: Sequence[float] | FloatArray, horizon: int, model: str, *,
              season_length: int | None = None, params: dict[str, float] | None = None) -> ModelFit:
    """Fit one named model to one series (modelling scale = the series' own) and forecast.

    With ``params`` (as returned in :attr:`ModelFit.params`) nothing is estimated: the
    recursion runs with exactly those smoothing parameters and initial states, which makes
    fitted values reproducible and lets tests check that they never look ahead.
    """
    h = _check_args(horizon, DEFAULT_LEVELS, (None, None), 1, model, 1, season_length)
    if model in ("auto", "ets", "ensemble"):
        raise QueryError(f"fit_model expects one concrete model, got {model!r}; "
                         f"use forecast(model={model!r}) to choose among models")
    z = _clean(y, 0, None, None)
    n = z.shape[0]
    m = season_length if season_length is not None else detect_season_length(z)
    if m < 2 or n < 2 * m:
        m = 1
        model = FALLBACK.get(model, model)
    if params is None or (model not in SPECS and model != "theta"):
        cand = BUILDERS[model](make_panel([z], m, h, 0, 0))
        sigma = float(cand.sigma[0])
        fitted = cand.fitted[0]
        fc = cand.fc[0]
        out = {k: float(v[0]) for k, v in cand.params.items() if v.ndim == 1}
        for k, v in cand.params.items():
            if v.ndim == 2:
                out |= {f"{k}{j}": float(x) for j, x in enumerate(v[0])}
        return ModelFit(model, m, fc, fitted, out, sigma)
    if model == "theta":
        return _theta_fixed(z, h, m, params)
    return _ets_fixed(z, h, m, model, params)


def _ets_fixed(z: FloatArray, h: int, m: int, model: str, params: dict[str, float]) -> ModelFit:
    spec = SPECS[model]
    row = np.array([[[params.get("alpha", 0.0), params.get("beta", 0.0),
                      params.get("gamma", 0.0), params.get("phi", 0.0)]]])
    l0 = np.array([[params["l0"]]])
    b0 = np.array([[params.get("b0", 0.0)]])
    mm = m if spec.season != "none" else 1
    s0 = np.array([params[f"s{j}"] for j in range(mm)]).reshape(mm, 1, 1) if spec.season != "none" \
        else initial_states(z[None, :], np.zeros(1, dtype=np.int64), 1, False, "none")[2]
    r = run(z[None, :], np.zeros(1, dtype=np.int64), spec.trend, spec.season, m, row, l0, b0, s0,
            np.empty(0, dtype=np.int64), False, True)
    assert r.fitted is not None
    lf, bf, Sf = r.final
    fc = project(lf, bf, Sf, z.shape[0], h, spec.trend, spec.season, m, row[..., 3])[0, 0]
    return ModelFit(model, m, fc, r.fitted[:, 0, 0], dict(params),
                    float(np.sqrt(r.sse[0, 0] / z.shape[0])))


def _theta_fixed(z: FloatArray, h: int, m: int, params: dict[str, float]) -> ModelFit:
    n = z.shape[0]
    a, slope, mult = params["alpha"], params["slope"], params.get("multiplicative", 0.0) > 0
    s = np.array([params[f"s{j}"] for j in range(m)]) if m > 1 else np.array(
        [1.0 if mult else 0.0])
    phase = np.arange(n + h) % s.shape[0]
    x = z / s[phase[:n]] if mult else z - s[phase[:n]]
    level = params["l0"]
    ses = np.empty(n)
    for t in range(n):
        ses[t] = level
        level = level + a * (x[t] - level)
    drift = 0.5 * slope * (1.0 - (1.0 - a) ** np.arange(n)) / a
    fx = ses + drift
    steps = np.arange(1, h + 1)
    fh = level + 0.5 * slope * (steps - 1.0 + (1.0 - (1.0 - a) ** n) / a)
    sf, sh = s[phase[:n]], s[phase[n:]]
    fitted = fx * sf if mult else fx + sf
    fc = fh * sh if mult else fh + sh
    return ModelFit("theta", m, fc, fitted, dict(params), float(np.sqrt(np.mean((z - fitted) ** 2))))


def _check_args(horizon: int, levels: Sequence[int], bounds: tuple[float | None, float | None],
                n_jobs: int, model: str, windows: int, season_length: int | None) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise QueryError(f"horizon must be a whole number of steps ≥ 1, got {horizon!r}")
    bad = [v for v in levels if not (isinstance(v, int | np.integer) and 1 <= v <= 99)]
    if bad or not levels:
        raise QueryError(f"levels must be whole percentages between 1 and 99, got {list(levels)!r}; "
                         "e.g. levels=(80, 95)")
    lo, hi = bounds
    if lo is not None and hi is not None and not lo < hi:
        raise QueryError(f"bounds must satisfy lower < upper, got {bounds!r}")
    if n_jobs == 0 or n_jobs < -1:
        raise QueryError(f"n_jobs must be ≥ 1 (or −1 for all cores), got {n_jobs}")
    if model not in MODELS:
        raise QueryError(f"unknown forecast model {model!r}; expected one of {', '.join(MODELS)}")
    if windows < 0:
        raise QueryError(f"backtest_windows must be ≥ 0, got {windows}")
    if season_length is not None and season_length < 1:
        raise QueryError(f"season_length must be ≥ 1 (1 = not seasonal), got {season_length}")
    return int(horizon)


def _clean(s: Sequence[float] | FloatArray, i: int, lo: float | None, hi: float | None) -> FloatArray:
    y = np.asarray(s, dtype=np.float64)
    if y.ndim != 1:
        raise QueryError(f"series {i}: expected a 1-D array of values, got shape {y.shape}")
    if np.isinf(y).any():
        raise QueryError(f"series {i}: infinite value at position {int(np.flatnonzero(np.isinf(y))[0])}; "
                         "remove it or replace it by NaN (missing)")
    obs = np.flatnonzero(np.isfinite(y))
    if obs.size < MIN_POINTS:
        raise QueryError(f"series {i}: expected at least {MIN_POINTS} observed values, got "
                         f"{obs.size}; drop the series or provide more history")
    y = y[obs[0]:]
    obs = obs - obs[0]
    if obs.size < y.shape[0]:
        pos = np.arange(y.shape[0])
        y = np.interp(pos, obs, y[obs])      # inner gaps linear; trailing gap = last value
    for bound, name, cmp in ((lo, "lower", y < (lo if lo is not None else 0)),
                             (hi, "upper", y > (hi if hi is not None else 0))):
        if bound is not None and cmp.any():
            j = int(np.flatnonzero(cmp)[0])
            raise QueryError(f"series {i}: value {y[j]:g} at position {j} is outside the {name} "
                             f"bound {bound:g}; fix the data or the bounds")
    return np.asarray(y, dtype=np.float64)
