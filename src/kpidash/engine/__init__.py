"""The orchestrator: the only place that moves data between the store and the pure core.

An :class:`Engine` owns one store, one clock and one workspace. It registers KPI definitions,
ingests points from Python, JSON, CSV and Parquet (validate → write, all or nothing), answers
queries at any grain and renders the widgets of a dashboard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kpidash import sources
from kpidash.clock import Clock, SystemClock
from kpidash.core import aggregate as agg
from kpidash.core import widgets
from kpidash.core.batch import FUTURE_HORIZON, validate
from kpidash.core.registry import Registry, build_registry
from kpidash.core.report import Report, ReportBuilder
from kpidash.engine.alerting import AlertsMixin
from kpidash.engine.interactions import InsightsMixin
from kpidash.errors import BatchRejected, ConfigError, NotFound, QueryError
from kpidash.model import (
    DEFAULT_WORKSPACE,
    KPI,
    Annotation,
    Grain,
    IngestResult,
    KpiKind,
    Point,
    Series,
)
from kpidash.settings import Settings
from kpidash.store.base import AggSpec, Store, open_store, redact_url

if TYPE_CHECKING:  # the analysis services import scipy (~0.7 s): loaded when first used
    from kpidash.core.quota import QuotaState
    from kpidash.engine import forecasts as forecasts_
    from kpidash.engine import outbox as outbox_
    from kpidash.engine import quality as quality_
    from kpidash.engine import trends as trends_
    from kpidash.notify.base import Notification, Notifier

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class DetectionResult:
    """What one anomaly detection run found (``found``) and how many were not stored yet."""

    new: int
    found: list[dict[str, Any]]


class Engine(AlertsMixin, InsightsMixin):
    """Ingest, query and render for one workspace of one store."""

    def __init__(self, store: Store, clock: Clock | None = None, *,
                 workspace: str = DEFAULT_WORKSPACE, timezone: str = "UTC",
                 input_timezone: str | None = None, chunk_rows: int = 1_000_000) -> None:
        agg.check_timezone(timezone)
        if input_timezone:
            agg.check_timezone(input_timezone)
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.workspace = workspace
        self.timezone = timezone
        self.input_timezone = input_timezone
        self.chunk_rows = chunk_rows
        self.notifiers: dict[str, Notifier] = {}
        """Channels alert notifications go to, by name (see :meth:`evaluate_alerts`)."""
        self.dashboard_url: str | None = None
        store.ensure_workspace(workspace)
        self._registry = Registry({})
        self.reload()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> Engine:
        engine = cls(open_store(settings.db), clock, workspace=settings.workspace,
                     timezone=settings.timezone, input_timezone=settings.input_timezone,
                     chunk_rows=settings.chunk_rows)
        if settings.kpis is not None:
            from kpidash.core.registry import load_registry

            engine.register(load_registry(_read_setting_file(settings.kpis, "KPIDASH_KPIS"),
                                          source=str(settings.kpis)))
        if settings.channels is not None:
            from kpidash.notify import load_channels

            engine.notifiers = load_channels(
                _read_setting_file(settings.channels, "KPIDASH_CHANNELS"),
                source=str(settings.channels))
        engine.dashboard_url = settings.public_url
        return engine

    def close(self) -> None:
        self.store.close()

    @property
    def store_label(self) -> str:
        """The store's URL without a password (for messages)."""
        return redact_url(self.store.url)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[None]:
        """An atomic group of engine calls: everything written inside is rolled back if it
        raises (e.g. a quota found exceeded after an upload was read)."""
        return self.store.transaction()

    def stored_points(self, kpi_id: str | None = None) -> int:
        """Raw points stored in this workspace (of one KPI, or all)."""
        return self.store.point_count(self.workspace, kpi_id)

    def quota_state(self, *, lock: bool = False) -> QuotaState:
        """What the servers remember of this workspace's quotas (see Store.quota_state)."""
        return self.store.quota_state(self.workspace, lock=lock)

    def put_quota_state(self, state: QuotaState) -> None:
        self.store.put_quota_state(self.workspace, state)

    # -- registry --------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        return self._registry

    def reload(self) -> Registry:
        """Read the KPI definitions from the store again (another process sharing the store
        changed them)."""
        stored = self.store.get_kpis(self.workspace)
        self._registry = build_registry(stored, source="store") if stored else Registry({})
        return self._registry

    def register(self, kpis: Registry | Iterable[KPI | Mapping[str, Any]]) -> Registry:
        """Add or replace KPI definitions (validated together with those already known)."""
        new = kpis if isinstance(kpis, Registry) else build_registry(kpis, source="register")
        merged = self._registry.merged(new)
        self.store.put_kpis(self.workspace, [k.model_dump(mode="json") for k in new],
                            self.clock.now())
        self._registry = merged
        return merged

    def delete_kpi(self, kpi_id: str, *, purge: bool = False) -> None:
        """Remove a KPI definition; ``purge`` also deletes its stored points. Refused while
        another KPI is computed from it or an alert rule watches it."""
        from kpidash.errors import Conflict

        self._registry.get(kpi_id)
        users = sorted(k.id for k in self._registry if kpi_id in k.inputs())
        if users:
            raise Conflict(f"KPI {kpi_id!r} is an input of {', '.join(users)}; delete or change "
                           "those first")
        rules = sorted(r["id"] for r in self.store.alert_rules(self.workspace)
                       if r.get("kpi") == kpi_id)
        if rules:
            raise Conflict(f"alert rule(s) {', '.join(rules)} watch {kpi_id!r}; delete them "
                           "first")
        self.store.delete_kpi(self.workspace, kpi_id, purge)
        self._registry = Registry({k.id: k for k in self._registry if k.id != kpi_id})

    # -- ingestion -------------------------------------------------------------------------

    def ingest(self, points: Iterable[Point | Mapping[str, Any]]) -> IngestResult:
        """Ingest Python points (Point objects or dicts shaped like JSON points)."""
        items = [_point_dict(p) for p in points]
        return self.ingest_table(sources.points_from_json(items, source="points"),
                                 source="points")

    def ingest_json(self, payload: str | bytes | Mapping[str, Any] | list[Any]) -> IngestResult:
        """Ingest a JSON batch (``{"points": [...]}``); the API server reuses this path."""
        return self.ingest_table(sources.points_from_json(payload), source="json")

    def ingest_table(self, table: pa.Table | pd.DataFrame, *, source: str | None = None,
                     ) -> IngestResult:
        """Ingest a long-format table (timestamp, kpi, value, dimension columns…) atomically."""
        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table, preserve_index=False)
        n, size = table.num_rows, self.chunk_rows
        chunks = (sources.Chunk(table.slice(o, size), o, min(n, o + size))
                  for o in range(0, max(n, 1), size))
        return self._ingest_chunks(chunks, source, None, None)

    def ingest_file(self, path: str | Path, *, fmt: str | None = None,
                    progress: Progress | None = None) -> IngestResult:
        """Stream a CSV/Parquet/JSON file in chunks; the whole file is one atomic batch."""
        path = Path(path)
        fmt = fmt or sources.detect_format(path)
        total = sources.progress_total(path, fmt) if path.is_file() else None
        chunks = sources.read_chunks(path, fmt, self.chunk_rows)
        return self._ingest_chunks(chunks, path.name, progress, total)

    def _ingest_chunks(self, chunks: Iterable[sources.Chunk], source: str | None,
                       progress: Progress | None, total: int | None) -> IngestResult:
        report = ReportBuilder()
        rows = written = new_series = corrected = 0
        failed = False
        now = self.clock.now()
        with self.store.transaction():
            for chunk in chunks:
                batch, rep = validate(chunk.table, self._registry, row_offset=chunk.row_offset,
                                      default_tz=self.input_timezone, source=source,
                                      latest=now + FUTURE_HORIZON)
                report.extend(rep)
                rows += chunk.table.num_rows
                if batch is None:
                    failed = True
                elif not failed:  # after the first bad chunk keep validating, stop writing
                    stats = self.store.write_points(self.workspace, batch, now)
                    written += stats.written
                    new_series += stats.new_series
                    corrected += batch.corrected
                if progress:
                    progress(chunk.progress, total)
            final: Report = report.build()
            if failed or not final.ok:
                raise BatchRejected(f"batch from {source or 'input'} rejected, nothing written",
                                    final)
        return IngestResult(rows=rows, written=written, new_series=new_series,
                            corrected=corrected, warnings=len(final.warnings))

    # -- queries ---------------------------------------------------------------------------

    def query(self, kpi_id: str, grain: Grain | str = Grain.DAY, start: datetime | None = None,
              end: datetime | None = None, *, tz: str | None = None,
              filters: Mapping[str, str | Sequence[str]] | None = None,
              group_by: str | None = None) -> list[Series]:
        """One KPI at a grain; one Series per group (a single Series when not grouped)."""
        return self.query_many([kpi_id], grain, start, end, tz=tz, filters=filters,
                               group_by=group_by)[kpi_id]

    def query_many(self, kpi_ids: Sequence[str], grain: Grain | str = Grain.DAY,
                   start: datetime | None = None, end: datetime | None = None, *,
                   tz: str | None = None, filters: Mapping[str, str | Sequence[str]] | None = None,
                   group_by: str | None = None) -> dict[str, list[Series]]:
        """Several KPIs over the same range, fetched from the store in one aggregate call.

        Without ``start``/``end`` the range is that of the stored data of the KPIs' inputs.
        Every period of the range is present; periods without data are NaN.
        """
        grain = _grain(grain)
        tz = tz or self.timezone
        kpis = [self._registry.get(k) for k in kpi_ids]
        simple: dict[str, None] = {}
        for k in kpis:
            simple.update(dict.fromkeys(self._registry.simple_inputs(k.id)))
        if start is None or end is None:
            rng = self.store.time_range(self.workspace, list(simple))
            if rng is None:
                raise QueryError(f"no data stored yet for {', '.join(kpi_ids)}; ingest points "
                                 "first or pass a start and end")
            start = start or rng[0]
            end = end or rng[1] + timedelta(microseconds=1)
        flt = {d: (v,) if isinstance(v, str) else tuple(v) for d, v in (filters or {}).items()}
        for k in kpis:
            agg.check_dimensions(agg.Query(k.id, grain, start, end, tz, flt, group_by),
                                 self._registry)
        specs = [AggSpec(s, self._registry.get(s).aggregation) for s in simple]
        rows = self.store.aggregate(self.workspace, specs, grain, tz, start, end, flt, group_by)
        keys = agg.period_keys(start, end, grain, tz)
        if group_by:
            found = {g for r in rows.values() for g in r.groups}
            groups: list[str | None] = sorted((g for g in found if g is not None), key=str)
            if None in found:
                groups.append(None)
        else:
            groups = [None]
        dense = {s: agg.densify(rows[s], keys, groups) for s in simple}
        periods, labels = agg.keys_to_utc(keys, grain, tz)  # once: labels cost ~2 ms each time
        out: dict[str, list[Series]] = {}
        for k in kpis:
            matrix = agg.compose(k, self._registry, dense)
            series = agg.to_series(k, matrix, periods, labels, groups, grain, tz)
            if group_by:
                series = [_label_group(s) for s in series]
            out[k.id] = series
        return out

    # -- annotations and corrections ------------------------------------------------------

    def annotate(self, label: str, start: datetime, end: datetime, *, kind: str = "event",
                 kpi_id: str | None = None) -> Annotation:
        """Record a known event; cleaning never corrects points inside its window."""
        if start.tzinfo is None or end.tzinfo is None:
            raise QueryError("annotation start and end must be timezone-aware")
        if end <= start:
            raise QueryError(f"annotation end {end.isoformat()} must be after start "
                             f"{start.isoformat()}")
        if kpi_id is not None:
            self._registry.get(kpi_id)
        ann = Annotation(start=start, end=end, label=label, kind=kind, kpi_id=kpi_id)
        ann_id = self.store.add_annotation(self.workspace, ann, self.clock.now())
        return Annotation(start, end, label, kind, kpi_id, ann_id)

    def annotations(self, kpi_id: str | None = None) -> list[Annotation]:
        return self.store.annotations(self.workspace, kpi_id)

    def delete_annotation(self, annotation_id: int) -> None:
        if not self.store.delete_annotation(self.workspace, annotation_id):
            raise NotFound(f"no annotation with id {annotation_id}")

    def corrections(self, kpi_id: str) -> pa.Table:
        """Points of a KPI whose stored value differs from the value sent (raw kept beside)."""
        self._registry.get(kpi_id)
        t = self.store.read_points(self.workspace, kpi_id)
        return t.filter(pc.is_valid(t["raw_value"]))

    def correction_history(self, kpi_id: str) -> pa.Table:
        """The audit trail of a KPI's corrections (applied and reverted), oldest first."""
        self._registry.get(kpi_id)
        return self.store.correction_log(self.workspace, kpi_id)

    def revert_corrections(self, kpi_id: str, start: datetime | None = None,
                           end: datetime | None = None) -> int:
        """Put the raw values back for a KPI's corrected points; logged in the audit trail."""
        self._registry.get(kpi_id)
        return self.store.revert_corrections(self.workspace, kpi_id, self.clock.now(), start, end)

    def quality(self, kpi_id: str) -> quality_.KpiQuality:
        """Run the data-quality rules and the outlier scan on every series of a simple KPI."""
        kpi = self._registry.get(kpi_id)
        if kpi.kind is not KpiKind.SIMPLE:
            raise QueryError(f"quality runs on stored points; {kpi_id!r} is a {kpi.kind} KPI "
                             f"computed from {', '.join(kpi.inputs())} — check those instead")
        from kpidash.engine import quality as quality_

        points = self.store.read_points(self.workspace, kpi_id)
        return quality_.assess(kpi, points, self.annotations(kpi_id), self.clock.now())

    def apply_corrections(self, kpi_id: str) -> int:
        """Store the corrections :meth:`quality` proposes (raw values kept, changes logged)."""
        from kpidash.engine import quality as quality_

        table = quality_.corrections_table(self.quality(kpi_id))
        return self.store.apply_corrections(self.workspace, table, self.clock.now())

    def trend(self, kpi_id: str, grain: Grain | str = Grain.WEEK, *,
              filters: Mapping[str, str | Sequence[str]] | None = None,
              group_by: str | None = None, window: int | None = None,
              ) -> list[trends_.TrendReport]:
        """Change vs previous period and a year ago, significant trend, trend changes.

        Computed on every stored period of the KPI up to the last one complete at the
        clock's now; one report per group when grouped.
        """
        from kpidash.engine import trends as trends_

        series = self.query(kpi_id, grain, filters=filters, group_by=group_by)
        kpi = self._registry.get(kpi_id)
        now = self.clock.now()
        return [trends_.report(kpi, s, now, window) for s in series]

    def forecast(self, kpi_id: str, grain: Grain | str = Grain.DAY, horizon: int = 28, *,
                 filters: Mapping[str, str | Sequence[str]] | None = None,
                 group_by: str | None = None, levels: Sequence[int] = (80, 95),
                 n_jobs: int = 1) -> list[forecasts_.KpiForecast]:
        """Forecast a KPI ``horizon`` periods past its last complete period (one per group).

        Bounds come from the KPI's min/max (modelled on a log/logit scale), the model from
        its ``forecast_model``; every result carries the chosen model, why, and its backtest.
        """
        from kpidash.engine import forecasts as forecasts_

        series = self.query(kpi_id, grain, filters=filters, group_by=group_by)
        return forecasts_.forecast_series(self._registry.get(kpi_id), series, self.clock.now(),
                                          horizon, tuple(levels), n_jobs)

    def detect_anomalies(self, kpi_id: str, grain: Grain | str = Grain.DAY, *,
                         filters: Mapping[str, str | Sequence[str]] | None = None,
                         group_by: str | None = None) -> DetectionResult:
        """Score a KPI (each group when grouped) for anomalies and store new ones.

        Uses the KPI's ``anomaly_threshold`` and ``higher_is_better``; only periods complete
        at the clock's now are scored. Returns every anomaly found and how many were new.
        """
        from kpidash.engine import anomalies as anomalies_

        grain = _grain(grain)
        flt = {d: (v,) if isinstance(v, str) else tuple(v) for d, v in (filters or {}).items()}
        series = self.query(kpi_id, grain, filters=flt, group_by=group_by)
        slices = [anomalies_.slice_name(flt, group_by, s.group) for s in series]
        found, rows = anomalies_.detect(self._registry.get(kpi_id), series, slices,
                                        self.clock.now())
        new = self.store.put_anomalies(self.workspace, rows, self.clock.now())
        return DetectionResult(new=new, found=[{"slice": name, **a.to_dict()}
                                               for name, a in found])

    def anomalies(self, kpi_id: str | None = None, since: datetime | None = None,
                  ) -> list[dict[str, Any]]:
        """Stored anomalies (each detected once), oldest first."""
        t = self.store.anomalies(self.workspace, kpi_id, since)
        return [{**r, "ts": r["ts"].isoformat(), "detected_at": r["detected_at"].isoformat()}
                for r in t.to_pylist()]

    # -- notifications (durable outbox) ---------------------------------------------------

    def notify(self, notifications: list[Notification], channels: list[str]) -> int:
        """Queue notifications on channels; returns how many (notification, channel) are new."""
        from kpidash.engine import outbox as outbox_

        return self.store.enqueue(self.workspace, outbox_.queue(notifications, channels),
                                  self.clock.now())

    def deliver(self, notifiers: Mapping[str, Notifier], **options: Any,
                ) -> outbox_.DeliveryReport:
        """Send every queued notification that is due (retries with backoff, see outbox)."""
        from kpidash.engine import outbox as outbox_

        return outbox_.deliver_due(self.store, self.workspace, notifiers, self.clock.now(),
                                   **options)

    # -- widgets ---------------------------------------------------------------------------

    def dashboard(self, kpi_ids: Sequence[str] | None = None, *, grain: Grain | str = Grain.DAY,
                  periods: int = 30, charts: Sequence[tuple[str, str | None]] | None = None,
                  title: str = "kpidash", now: datetime | None = None,
                  recommendations: int = 0, user: str | None = None,
                  filters: Mapping[str, str | Sequence[str]] | None = None,
                  annotate: bool = False) -> dict[str, Any]:
        """Cards for ``kpi_ids`` (all KPIs by default) over the last ``periods`` complete
        periods before ``now`` (the clock by default), plus line charts ``(kpi_id, group_by)``
        and, with ``recommendations`` > 0, a widget of that many ranked insights. With
        ``annotate`` every chart marks its anomalies (the causal detector, run with enough
        history before the window to warm up) and an ungrouped chart adds its forecast with an
        80 % band for a third of the window (at most 28 periods).
        """
        grain = _grain(grain)
        now = now or self.clock.now()
        ids = list(kpi_ids) if kpi_ids is not None else [k.id for k in self._registry]
        # the range ends where the period containing `now` starts: only complete periods
        end = agg.period_start(now, grain, self.timezone)
        start = agg.periods_back(end, grain, periods, self.timezone)
        series = self.query_many(ids, grain, start, end, filters=filters)
        cards = [widgets.kpi_card(self._registry.get(k), series[k][0]) for k in ids]
        chart_widgets = []
        for kpi_id, group_by in charts or ():
            s = self.query(kpi_id, grain, start, end, group_by=group_by, filters=filters)
            chart = widgets.line_chart(self._registry.get(kpi_id), s)
            if annotate:
                from kpidash.engine.charts import annotate_chart

                chart = annotate_chart(self, chart, kpi_id, grain, start, end, periods,
                                       group_by, filters, now)
            chart_widgets.append(chart)
        extra = []
        if recommendations > 0:
            from kpidash.engine import insights as insights_

            top = insights_.ranked(self, now, user=user, limit=recommendations)
            extra.append(widgets.recommendations([r.to_dict() for r in top]))
        return widgets.dashboard(cards, chart_widgets, title=title, generated_at=now,
                                 grain=str(grain), tz=self.timezone, extra=extra)


def _read_setting_file(path: Path, setting: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc}") from None


def _grain(value: Grain | str) -> Grain:
    try:
        return Grain(value)
    except ValueError:
        raise QueryError(f"unknown grain {value!r}; use one of "
                         f"{', '.join(g.value for g in Grain)}") from None


def _label_group(s: Series) -> Series:
    if s.group is not None:
        return s
    return Series(s.kpi_id, s.grain, s.tz, s.periods, s.values, agg.NO_GROUP, s.labels)


def _point_dict(p: Point | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(p, Point):
        return {"kpi": p.kpi_id, "ts": p.ts.isoformat(),
                "value": p.value, "dims": dict(p.dims)}
    return p


__all__ = ["DetectionResult", "Engine"]
