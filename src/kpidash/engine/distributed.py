"""Scale-out analysis on a Dask distributed cluster: forecasts, anomaly scores and insights of
many series, partitioned by series, with the same floats as the single-process path.

Setting: ``KPIDASH_DASK_SCHEDULER=tcp://host:8786`` (or ``--scheduler``). Unset, every
function here runs the single-process code directly (no Dask import, no partitioning).

Where the data comes from. The client process reads the series through the engine (one shared
``query_many`` per KPI and grain) and ships values to the workers; workers never open the
store. That works for every store and keeps credentials off the workers; a DuckDB file held
read-write by the client cannot be opened by other processes at all. The cost is the client's
network link (8 bytes per value: 100,000 two-year daily series ≈ 0.6 GB), which is the first
thing to change when the store is PostgreSQL and the cluster spans machines (workers reading
their partition by URL).

What is distributed, and why the results are identical:

* **anomaly scores** — ``score_many`` gives every series the same numbers however many series
  are stacked with it, so contiguous partitions of series are mapped directly.
* **forecasts** — ``forecast`` fits end-aligned panels of series together, and a series' floats
  depend (in the last bits) on the panel it shares. So the run has two phases: (1) per
  partition, each series' cleaning, transform and season detection → (season, length); (2) the
  client groups and sorts those keys exactly as ``forecast`` plans its panels, and each panel is
  one task calling the public ``forecast`` on exactly that panel's series with the season fixed,
  which rebuilds the same panel. The equivalence test guards this against changes to the planner.
* **slice insights** — changes, records, trends and anomalies of every slice of a KPI grouped by
  a dimension: pure per slice (anomalies via ``score_many``), so partitions of slices are mapped.

Not distributed: store reads and writes, alert evaluation, cross-KPI work (correlations,
breakdowns by dimension, ranking) — they need all series at once and are cheap beside fitting.

Results come back in input order whatever the scheduling. A failed task, a dead worker or a run
longer than the timeout raises one :class:`~kpidash.errors.QueryError` and cancels the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from kpidash.core import aggregate as agg
from kpidash.core.anomaly import AnomalyScores
from kpidash.core.forecast import DEFAULT_LEVELS, Forecast
from kpidash.core.insights import Insight
from kpidash.errors import ConfigError, QueryError
from kpidash.model import KPI, Grain, Series

if TYPE_CHECKING:
    from distributed import Client

    from kpidash.engine import DetectionResult, Engine
    from kpidash.engine.forecasts import KpiForecast
    from kpidash.settings import Settings

F64 = npt.NDArray[np.float64]
R = TypeVar("R")

PARTITION = 2000
"""Series per task for per-series work (planning, scoring, insights): ~12 MB of two-year
daily values, seconds of work — large beside Dask's ~1 ms per task, small enough to balance."""
CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 3600.0
INSIGHT_WEEKS = 64
INSIGHT_DAYS = 180
RECENT_DAYS = 7


IN_FLIGHT_PER_WORKER = 2
"""Tasks queued per worker at a time by :meth:`Cluster.map` (one running, one waiting)."""


class Cluster:
    """Where analysis runs: a ``distributed.Client`` or, with ``client=None``, this process.

    ``timeout``: seconds a whole run may take before it is cancelled with a clear error (a
    cluster that lost every worker otherwise waits for new ones forever).
    """

    def __init__(self, client: Client | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 owned: bool = False) -> None:
        if not timeout > 0:
            raise ConfigError(f"the Dask timeout must be > 0 seconds, got {timeout}")
        self.client = client
        self.timeout = float(timeout)
        self._owned = owned

    @classmethod
    def connect(cls, address: str | None, *, timeout: float = DEFAULT_TIMEOUT,
                connect_timeout: float = CONNECT_TIMEOUT) -> Cluster:
        """A cluster for a scheduler address (``tcp://host:8786``); None or '' = this process."""
        if not address:
            return cls(None, timeout=timeout)
        import distributed

        make: Any = distributed.Client
        try:
            client: Any = make(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {address!r} (KPIDASH_DASK_SCHEDULER / "
                f"--scheduler): {exc}; start one with `dask scheduler` and workers with "
                "`dask worker ADDRESS`, or unset the setting to run in this process") from None
        return cls(client, timeout=timeout, owned=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Cluster:
        """The cluster of ``KPIDASH_DASK_SCHEDULER`` (this process when unset)."""
        return cls.connect(settings.dask_scheduler, timeout=settings.dask_timeout_seconds)

    @property
    def distributed(self) -> bool:
        return self.client is not None

    @property
    def workers(self) -> int:
        """Workers connected now (1 for this process)."""
        if self.client is None:
            return 1
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def close(self) -> None:
        if self.client is not None and self._owned:
            client: Any = self.client
            client.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, fn: Callable[..., R], items: Sequence[Any], what: str = "tasks",
            **kwargs: Any) -> list[R]:
        """``[fn(item, **kwargs) for item in items]``, on the cluster when there is one.

        Each item is scattered when its task is submitted (large arguments do not travel in
        the task graph), with at most :data:`IN_FLIGHT_PER_WORKER` tasks per worker at a time,
        and each result is gathered and released as soon as it is done: memory stays flat
        on the client and the workers. (Measured with benchmarks/scale.py --what anomaly,
        100,000 series, 2 workers: scattering every partition up front and gathering at the
        end took the client to 14.6 GB and the kernel killed it.) Results come back in the
        order of ``items``; the first failure cancels the rest and raises.
        """
        if self.client is None:
            return [fn(it, **kwargs) for it in items]
        if not items:
            return []
        import distributed

        client: Any = self.client  # distributed is untyped
        window = max(2, IN_FLIGHT_PER_WORKER * max(1, self.workers))
        results: list[Any] = [None] * len(items)
        running: dict[Any, tuple[int, Any, Any]] = {}  # future key → (index, future, data)
        done_iter: Any = distributed.as_completed([], loop=client.loop, timeout=self.timeout)
        next_item = 0

        def submit() -> None:
            nonlocal next_item
            (data,) = client.scatter([items[next_item]], hash=False)
            future = client.submit(fn, data, **kwargs, pure=False)
            running[future.key] = (next_item, future, data)
            done_iter.add(future)
            next_item += 1

        try:
            while next_item < len(items) and len(running) < window:
                submit()
            for f in done_iter:
                i, future, data = running.pop(f.key)
                if f.status == "error":
                    exc: Any = f.exception()
                    raise QueryError(
                        f"distributed {what} failed in partition {i + 1} of {len(items)}: "
                        f"{type(exc).__name__}: {exc}; see the worker logs (a KilledWorker means "
                        "a worker died, often of memory: use smaller partitions or more memory "
                        "per worker)") from None
                results[i] = f.result()
                client.cancel([future, data])  # released: the result is here now
                if next_item < len(items):
                    submit()
            return results
        except TimeoutError:
            n = len(items) - sum(1 for r in results if r is not None)
            raise QueryError(
                f"distributed {what} did not finish within {self.timeout:g} s ({n} of "
                f"{len(items)} partitions pending, {self.workers} worker(s) connected); "
                "check that workers are running, or raise the timeout") from None
        finally:
            client.cancel([x for _, future, data in running.values() for x in (future, data)])


# -- anomaly scores ---------------------------------------------------------------------------


def score_many(cluster: Cluster, series: Sequence[F64 | Sequence[float]], *,
               season_length: int | Sequence[int | None] | None = None,
               threshold: float = 4.0, higher_is_better: bool = True,
               partition: int = PARTITION) -> list[AnomalyScores]:
    """:func:`kpidash.core.anomaly.score_many` on the cluster: the same numbers, input order."""
    from kpidash.core.anomaly import score_many as score_local

    if cluster.client is None:
        return score_local(series, season_length=season_length, threshold=threshold,
                           higher_is_better=higher_is_better)
    seasons = (list(season_length) if isinstance(season_length, Sequence)
               else [season_length] * len(series))
    if len(seasons) != len(series):
        raise QueryError(f"season_length has {len(seasons)} entries for {len(series)} series; "
                         "pass one per series or a single value")
    parts = [(list(series[a:a + partition]), seasons[a:a + partition])
             for a in range(0, len(series), _size(partition))]
    done = cluster.map(_score_part, parts, "anomaly scoring", threshold=threshold,
                       higher_is_better=higher_is_better)
    return [s for part in done for s in part]


def _score_part(part: tuple[list[F64], list[int | None]], *, threshold: float,
                higher_is_better: bool) -> list[AnomalyScores]:
    from kpidash.core.anomaly import score_many as score_local

    values, seasons = part
    return score_local(values, season_length=seasons, threshold=threshold,
                       higher_is_better=higher_is_better)


# -- forecasts --------------------------------------------------------------------------------


def forecast_many(cluster: Cluster, series: Sequence[F64 | Sequence[float]], horizon: int, *,
                  season_length: int | None = None, levels: Sequence[int] = DEFAULT_LEVELS,
                  bounds: tuple[float | None, float | None] = (None, None),
                  model: str = "auto", backtest_windows: int = 6,
                  season_candidates: tuple[int, ...] | None = None,
                  batch: int | None = None, partition: int = PARTITION) -> list[Forecast]:
    """:func:`kpidash.core.forecast.forecast` on the cluster: the same floats, input order.

    ``batch``: plan every consecutive ``batch`` series apart, as ``[forecast(b) for b in
    batches]`` does (the CLI forecasts files in batches of 2,000); all batches run at once.
    """
    from kpidash.core.forecast import forecast
    from kpidash.core.forecast.api import _check_args

    if cluster.client is None:
        step = batch or max(len(series), 1)
        return [f for a in range(0, len(series), step)
                for f in forecast(series[a:a + step], horizon, season_length=season_length,
                                  levels=levels, bounds=bounds, model=model,
                                  backtest_windows=backtest_windows,
                                  season_candidates=season_candidates)]
    h = _check_args(horizon, levels, bounds, 1, model, backtest_windows, season_length)
    size = _size(partition)
    parts = [(a, list(series[a:a + size])) for a in range(0, len(series), size)]
    keys = [k for part in cluster.map(_plan_keys, parts, "forecast planning",
                                      season_length=season_length, bounds=bounds,
                                      candidates=season_candidates) for k in part]
    panels = _panels(keys, h, batch)
    chunks = [(m, [series[i] for i in members]) for m, members in panels]
    done = cluster.map(_forecast_panel, chunks, "forecasting", horizon=h, levels=tuple(levels),
                       bounds=bounds, model=model, backtest_windows=backtest_windows)
    out: list[Forecast | None] = [None] * len(series)
    for (_, members), fcs in zip(panels, done, strict=True):
        for i, f in zip(members, fcs, strict=True):
            out[i] = f
    return [f for f in out if f is not None]


def _plan_keys(part: tuple[int, list[F64]], *, season_length: int | None,
               bounds: tuple[float | None, float | None],
               candidates: tuple[int, ...] | None) -> list[tuple[int, int]]:
    """(season, length) of each series as ``forecast`` decides them (cleaned, transformed,
    season detected; a season without two full cycles is none)."""
    from kpidash.core.forecast import detect_season_length
    from kpidash.core.forecast.api import _clean
    from kpidash.core.forecast.transform import make_transform

    offset, values = part
    lo, hi = bounds
    keys = []
    for j, s in enumerate(values):
        y = _clean(s, offset + j, lo, hi)  # errors name the series' index in the whole input
        z = make_transform(y, lo, hi).forward(y)
        n = int(z.shape[0])
        m = season_length if season_length is not None else detect_season_length(z, candidates)
        keys.append((1 if m < 2 or n < 2 * m else int(m), n))
    return keys


def _panels(keys: Sequence[tuple[int, int]], h: int, batch: int | None,
            ) -> list[tuple[int, list[int]]]:
    """The panels ``forecast`` builds: grouped by (season, backtest length), sorted by length
    then position, cut to the same chunk size (see :mod:`kpidash.core.forecast.api`)."""
    from kpidash.core.forecast.api import _CELL_BUDGET, _MAX_CHUNK
    from kpidash.core.forecast.ets import SPECS
    from kpidash.core.forecast.panel import min_train

    grid = max(s.grid.shape[0] for s in SPECS.values())
    groups: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    for i, (m, n) in enumerate(keys):
        h_bt = max(0, min(h, n - min_train(m)))
        groups.setdefault((i // batch if batch else 0, m, h_bt), []).append((n, i))
    panels = []
    for (_, m, _), members in sorted(groups.items()):
        members.sort()
        size = max(1, min(_MAX_CHUNK, _CELL_BUDGET // (grid * max(m, 1))))
        panels += [(m, [i for _, i in members[a:a + size]]) for a in range(0, len(members), size)]
    return panels


def _forecast_panel(chunk: tuple[int, list[F64]], *, horizon: int, levels: tuple[int, ...],
                    bounds: tuple[float | None, float | None], model: str,
                    backtest_windows: int) -> list[Forecast]:
    from kpidash.core.forecast import forecast

    m, values = chunk
    return forecast(values, horizon, season_length=m, levels=levels, bounds=bounds, model=model,
                    backtest_windows=backtest_windows)


def _size(partition: int) -> int:
    if partition < 1:
        raise ConfigError(f"partition size must be ≥ 1 series, got {partition}")
    return partition


# -- stored KPIs ------------------------------------------------------------------------------


def forecast_kpi(engine: Engine, cluster: Cluster, kpi_id: str, grain: Grain | str = Grain.DAY,
                 horizon: int = 28, *, filters: Mapping[str, str | Sequence[str]] | None = None,
                 group_by: str | None = None, levels: Sequence[int] = (80, 95),
                 ) -> list[KpiForecast]:
    """:meth:`Engine.forecast` with the fitting on ``cluster`` (identical results)."""
    from kpidash.engine import forecasts as fc

    if cluster.client is None:
        return engine.forecast(kpi_id, grain, horizon, filters=filters, group_by=group_by,
                               levels=levels)
    series = engine.query(kpi_id, grain, filters=filters, group_by=group_by)
    kpi = engine.registry.get(kpi_id)
    now = engine.clock.now()
    histories, ends = [], []
    for s in series:  # as forecasts.forecast_series: complete periods from the first value
        last = agg.complete_periods(s, now) - 1
        finite = np.flatnonzero(np.isfinite(s.values[:last + 1]))
        if finite.size == 0:
            raise QueryError(f"no complete {s.grain} of {kpi.id!r} has data yet")
        histories.append(s.values[finite[0]:last + 1])
        ends.append(last)
    g = series[0].grain
    results = forecast_many(cluster, histories, horizon, levels=levels, model=kpi.forecast_model,
                            bounds=(kpi.min_value, kpi.max_value),
                            season_candidates=fc.SEASON_CANDIDATES[g])
    return [fc.KpiForecast(kpi.id, g, s.group, fc._future(s, last, horizon), s.labels[last], r)
            for s, last, r in zip(series, ends, results, strict=True)]


def detect_anomalies(engine: Engine, cluster: Cluster, kpi_id: str,
                     grain: Grain | str = Grain.DAY, *,
                     filters: Mapping[str, str | Sequence[str]] | None = None,
                     group_by: str | None = None) -> DetectionResult:
    """:meth:`Engine.detect_anomalies` with the scoring on ``cluster``; stores new anomalies."""
    from kpidash.core.anomaly import anomalies
    from kpidash.engine import DetectionResult
    from kpidash.engine import anomalies as an

    if cluster.client is None:
        return engine.detect_anomalies(kpi_id, grain, filters=filters, group_by=group_by)
    flt = {d: (v,) if isinstance(v, str) else tuple(v) for d, v in (filters or {}).items()}
    series = engine.query(kpi_id, grain, filters=flt, group_by=group_by)
    kpi = engine.registry.get(kpi_id)
    now = engine.clock.now()
    histories, seasons = _histories(series, now)
    scores = score_many(cluster, histories, season_length=seasons,
                        threshold=kpi.anomaly_threshold, higher_is_better=kpi.higher_is_better)
    found = []
    for s, sc in zip(series, scores, strict=True):
        name = an.slice_name(flt, group_by, s.group)
        found += [(name, a) for a in anomalies(sc, s.periods[:len(sc)])]
    rows = an._rows(kpi, series[0].grain if series else Grain.DAY, found)
    new = engine.store.put_anomalies(engine.workspace, rows, now)
    return DetectionResult(new=new, found=[{"slice": name, **a.to_dict()} for name, a in found])


def _histories(series: Sequence[Series], now: datetime) -> tuple[list[F64], list[int]]:
    """As :func:`kpidash.engine.anomalies.score_series`: complete periods, and the grain's
    cycle when at least MIN_CYCLES of it are there."""
    from kpidash.engine.anomalies import GRAIN_SEASON, MIN_CYCLES

    histories, seasons = [], []
    for s in series:
        values = s.values[:agg.complete_periods(s, now)]
        m = GRAIN_SEASON[s.grain]
        histories.append(values)
        seasons.append(m if m > 1 and np.isfinite(values).sum() >= MIN_CYCLES * m else 1)
    return histories, seasons


# -- insights per slice -----------------------------------------------------------------------


def slice_insights(engine: Engine, cluster: Cluster, kpi_id: str, dimension: str, *,
                   filters: Mapping[str, str | Sequence[str]] | None = None,
                   now: datetime | None = None) -> list[Insight]:
    """Insights about every value of ``dimension`` of a KPI (one slice each): the day's and the
    week's change, records, the weekly trend and trend changes, and the strongest anomaly of
    the last week. Unranked, in slice order then kind; the same list with or without a cluster.
    """
    now = now or engine.clock.now()
    kpi = engine.registry.get(kpi_id)
    by_grain = {}
    for grain, back in ((Grain.DAY, INSIGHT_DAYS), (Grain.WEEK, INSIGHT_WEEKS)):
        end = agg.period_start(now, grain, engine.timezone)
        start = agg.periods_back(end, grain, back, engine.timezone)
        by_grain[grain] = {s.group: s for s in engine.query(kpi_id, grain, start, end,
                                                            filters=filters, group_by=dimension)}
    items = [(((dimension, str(g)),), by_grain[Grain.DAY][g], by_grain[Grain.WEEK].get(g))
             for g in by_grain[Grain.DAY]]
    size = _size(PARTITION)
    parts = [items[a:a + size] for a in range(0, len(items), size)]
    done = cluster.map(_insight_part, parts, "insights", kpi=kpi, now=now)
    return [i for part in done for per_slice in part for i in per_slice]


def _insight_part(items: list[tuple[tuple[tuple[str, str], ...], Series, Series | None]], *,
                  kpi: KPI, now: datetime) -> list[list[Insight]]:
    """Insights of each slice (``(slice key, daily, weekly)``), one list per slice."""
    from kpidash.core.anomaly import anomalies
    from kpidash.core.anomaly import score_many as score_local
    from kpidash.core.insights.change import change_insights, period_end
    from kpidash.core.insights.signals import anomaly_insight, record_insight, trend_insights
    from kpidash.core.trend import series_breaks, series_trend

    out: list[list[Insight]] = []
    for key, daily, weekly in items:
        found: list[Insight] = []
        for s in (daily, weekly):
            if s is None:
                continue
            found += change_insights(kpi, s, now, slice_=key)
            rec = record_insight(kpi, s, slice_=key)
            if rec is not None:
                found.append(rec)
        if weekly is not None and int(np.isfinite(weekly.values).sum()) >= 8:
            n = len(weekly)
            w = min(26, n)
            recent = Series(weekly.kpi_id, weekly.grain, weekly.tz, weekly.periods[n - w:],
                            weekly.values[n - w:], weekly.group, weekly.labels[n - w:])
            found += trend_insights(kpi, weekly, series_trend(recent, kpi), w,
                                    series_breaks(weekly, kpi), slice_=key, recent_breaks=8)
        out.append(found)
    histories, seasons = _histories([d for _, d, _ in items], now)
    scores = score_local(histories, season_length=seasons, threshold=kpi.anomaly_threshold,
                         higher_is_better=kpi.higher_is_better)
    for (key, daily, _), sc, found in zip(items, scores, out, strict=True):
        latest = [a for a in anomalies(sc) if int(a.timestamp) >= len(sc.values) - RECENT_DAYS]
        if not latest:
            continue
        a = max(latest, key=lambda x: (x.score, int(x.timestamp)))
        i = int(a.timestamp)
        found.append(anomaly_insight(
            kpi, {"actual": a.actual, "expected": a.expected, "lo": a.lo, "hi": a.hi,
                  "score": a.score, "severity": a.severity.label, "kind": a.kind.label,
                  "favourable": a.favourable}, Grain.DAY, period_end(daily, i),
            label=daily.labels[i], slice_=key))
    return out


def quiet_logs() -> None:
    """Keep Dask's INFO chatter (connections, worker start/stop) off a command's stderr."""
    for name in ("distributed", "distributed.client", "distributed.scheduler",
                 "distributed.worker", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.WARNING)


__all__ = ["PARTITION", "Cluster", "detect_anomalies", "forecast_kpi", "forecast_many",
           "quiet_logs", "score_many", "slice_insights"]
