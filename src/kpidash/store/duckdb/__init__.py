"""The embedded DuckDB store (default).

Schema (see schema.py for every version)::

    kpidash_schema(version, applied_at)               one row per applied migration
    workspaces(id PK, name, settings JSON, created_at, updated_at)
    kpis(workspace_id, kpi_id, definition JSON, updated_at)          PK (workspace_id, kpi_id)
    series(series_id PK, workspace_id, kpi_id, series_key)           UNIQUE (workspace_id, series_key)
    series_dims(series_id, dim, value)                               one row per dimension
    points(series_id, ts TIMESTAMPTZ, value, raw_value, correction, ingested_at)
    … and one table per concern (audit, outbox, alerts, usage, accounts, memberships,
    ingest tokens);
    workspaces.py lists which tables a workspace owns (deleted, exported and imported with it)

A series is one KPI × one combination of dimension values. Points carry no key constraint:
keeping an ART index over tens of millions of rows would cost more memory and insert time
than the whole load, so uniqueness of (series_id, ts) is kept by the write path instead
(delete the batch's keys, then insert, inside one transaction). Each batch is inserted
sorted by (series_id, ts) so DuckDB's per-row-group min/max indexes prune scans by series.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kpidash.core.aggregate import LOCAL_GRAINS, AggRows
from kpidash.core.batch import SERIES_KEY_SEP, CleanBatch
from kpidash.errors import NotFound, SchemaVersionError, StoreError
from kpidash.model import DEFAULT_WORKSPACE, Aggregation, Grain
from kpidash.store.base import AggSpec, WriteStats
from kpidash.store.coordination import LocalCoordination
from kpidash.store.duckdb.accounts import AccountTables
from kpidash.store.duckdb.alerts import AlertTables
from kpidash.store.duckdb.audit import AuditTables
from kpidash.store.duckdb.ingest_tokens import IngestTokenTables
from kpidash.store.duckdb.kpis import KpiTables
from kpidash.store.duckdb.memberships import MembershipTables
from kpidash.store.duckdb.outbox import OutboxTable
from kpidash.store.duckdb.periods import (
    batch_spacing,
    bucket_sql,
    from_epoch_us,
    longest_period_us,
)
from kpidash.store.duckdb.quota_state import QuotaStateTable
from kpidash.store.duckdb.schema import MIGRATIONS, SCHEMA_VERSION
from kpidash.store.duckdb.sql import optional_where
from kpidash.store.duckdb.usage import UsageTables
from kpidash.store.duckdb.workspaces import WorkspaceTables

__all__ = ["CHECKPOINT_THRESHOLD", "MIGRATIONS", "SCHEMA_VERSION", "DuckDBStore"]

CHECKPOINT_THRESHOLD = "4MB"
"""WAL size at which DuckDB checkpoints (its default is 16 MB). Until a checkpoint, what was
written since the last one lives in memory: the rows inserted and, for rewritten points (DELETE
+ INSERT), the deleted versions too. Measured with benchmarks/soak.py (a bounded key space
rewritten at ~700 points/s): with 16 MB the WAL took ~5 minutes to fill, the demo load itself
was never checkpointed, and the server's RSS grew all that time (+12 % in five minutes after
the render cache fix); with 4 MB it checkpoints every ~1–2 minutes, RSS levelled off (+2.6 %)
and ingest got faster (p99 of the JSON batches 4.5 s → 2.1 s on the shared 2-core machine)."""


class DuckDBStore(AuditTables, OutboxTable, AlertTables, UsageTables, AccountTables,
                  MembershipTables, IngestTokenTables, WorkspaceTables, KpiTables,
                  QuotaStateTable, LocalCoordination):
    """A Store on one DuckDB database file (or ``:memory:``)."""

    def __init__(self, path: str = ":memory:", *, memory_limit: str | None = None,
                 threads: int | None = None,
                 checkpoint_threshold: str = CHECKPOINT_THRESHOLD) -> None:
        self.url = f"duckdb:{path}"
        config: dict[str, Any] = {"checkpoint_threshold": checkpoint_threshold}
        if memory_limit:
            config["memory_limit"] = memory_limit
        if threads:
            config["threads"] = threads
        try:
            self._con = duckdb.connect(path, config=config)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open DuckDB database {path!r}: {exc}") from None
        self._lock = threading.RLock()
        self._depth = 0
        self._run("SET TimeZone = 'UTC'")
        self._migrate()

    # -- lifecycle -------------------------------------------------------------------------

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
        """Execute and drain the result (DuckDB refuses new work while a result is open)."""
        return self._con.execute(sql, params).fetchall()

    def close(self) -> None:
        self._con.close()

    def _migrate(self) -> None:
        self._run("CREATE TABLE IF NOT EXISTS kpidash_schema (version INTEGER PRIMARY KEY, "
                    "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"database schema version {current} is newer than this kpidash understands "
                f"({SCHEMA_VERSION}); upgrade kpidash")
        for version in sorted(v for v in MIGRATIONS if v > current):
            with self.transaction():
                for stmt in MIGRATIONS[version]:
                    self._run(stmt)
                self._run("INSERT INTO kpidash_schema (version) VALUES (?)", [version])
        self.ensure_workspace(DEFAULT_WORKSPACE, "Default")

    def schema_version(self) -> int:
        # fetchall, not fetchone: a result left unfinished makes DuckDB refuse the next
        # relation (con.sql) on this connection
        row = _first(self._run("SELECT max(version) FROM kpidash_schema"))
        return int(row[0]) if row and row[0] is not None else 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._run("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._run("ROLLBACK")
                raise
            self._depth = 0
            self._run("COMMIT")

    # -- points ----------------------------------------------------------------------------

    def write_points(self, workspace: str, batch: CleanBatch, now: datetime) -> WriteStats:
        if len(batch) == 0:
            return WriteStats(0, 0, 0)
        con = self._con
        with self.transaction():
            if not self._run("SELECT 1 FROM workspaces WHERE id = ?", [workspace]):
                raise NotFound(f"no workspace {workspace!r}: points are written into an "
                               "existing workspace (deleted meanwhile?)")
            keys_enc = pc.dictionary_encode(batch.series_key)
            uniq = keys_enc.dictionary
            codes = np.asarray(keys_enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
            ids, new_series = self._resolve_series(workspace, uniq, batch, codes)
            sid = ids[codes]
            ts = np.asarray(pc.cast(batch.ts, pa.int64()).to_numpy(zero_copy_only=False))
            # Last occurrence of a (series, ts) key wins; rows end sorted by (series, ts).
            # Two stable argsorts equal lexsort((arange, ts, sid)) but run as timsort, which
            # is near-linear on the runs of an export ordered by time (lexsort was ~150 ms
            # per million rows).
            order = np.argsort(ts, kind="stable")
            order = order[np.argsort(sid[order], kind="stable")]
            s_sorted, t_sorted = sid[order], ts[order]
            last = np.ones(len(order), dtype=bool)
            last[:-1] = (s_sorted[1:] != s_sorted[:-1]) | (t_sorted[1:] != t_sorted[:-1])
            keep = order[last]
            tbl = pa.table({
                "series_id": pa.array(sid[keep]),
                "ts": batch.ts.take(pa.array(keep)),
                "value": pa.array(batch.value[keep]),
                "raw_value": pa.array(batch.raw_value[keep], from_pandas=True),
                "correction": batch.correction.take(pa.array(keep)),
                "reason": batch.reason.take(pa.array(keep)),
            })
            # Read by name through DuckDB's replacement scan (caller's locals), not
            # con.register: a view registered inside a transaction keeps its Arrow table
            # alive until COMMIT, so a file's whole stream of batches stayed in memory
            # (~40 MB per million rows, the bulk of the peak RSS of a 10M-point ingest).
            _kp_batch = tbl
            replaced = 0
            # Only series that existed can hold old points, and only if a stored point
            # falls in the batch's (series, ts) box: that probe is pruned by row-group
            # min/max and costs ~nothing for new time ranges, where the DELETE's hash
            # join over the batch costs time and memory.
            if new_series < len(uniq) and self._may_overlap(sid[keep], tbl["ts"]):
                lo, hi = pc.min_max(tbl["ts"]).values()
                row = con.execute(
                    "DELETE FROM points p USING _kp_batch b WHERE p.series_id = b.series_id "
                    "AND p.ts = b.ts AND p.ts BETWEEN ? AND ?",
                    [lo.as_py(), hi.as_py()]).fetchall()
                replaced = int(row[0][0]) if row else 0
            con.execute("INSERT INTO points (series_id, ts, value, raw_value, correction, "
                        "correction_reason, ingested_at) SELECT series_id, ts, value, raw_value, "
                        "correction, reason, ?::TIMESTAMPTZ FROM _kp_batch", [now]).fetchall()
            self._update_spacing(sid[keep], ts[keep])
        return WriteStats(written=tbl.num_rows, replaced=replaced, new_series=new_series)

    def _update_spacing(self, sid: np.ndarray[Any, Any], ts: np.ndarray[Any, Any]) -> None:
        """Keep series.last_ts and series.min_gap_us (the smallest distance between two
        points of the series, NULL with fewer than two) exact after a write.

        ``sid``/``ts`` (epoch µs) are the batch sorted by (series, ts). Appends update the
        statistics from the batch alone; a series that received points at or before its last
        timestamp (backfill, re-send) is recomputed from its stored points.
        """
        con = self._con
        starts, ends, gap = batch_spacing(sid, ts)
        _kp_stats = pa.table({
            "series_id": pa.array(sid[starts]), "first_us": pa.array(ts[starts]),
            "last_us": pa.array(ts[ends - 1]),
            "gap": pa.array(np.where(np.isfinite(gap), gap, 0).astype(np.int64),
                            mask=~np.isfinite(gap))})
        con.execute(
            "UPDATE series SET min_gap_us = CASE "
            "WHEN series.last_ts IS NULL THEN b.gap "
            "WHEN b.first_us > epoch_us(series.last_ts) THEN least(series.min_gap_us, b.gap, "
            "b.first_us - epoch_us(series.last_ts)) ELSE -1 END, "
            "last_ts = greatest(series.last_ts, make_timestamptz(b.last_us)) "
            "FROM _kp_stats b WHERE series.series_id = b.series_id").fetchall()
        stale = con.execute("SELECT count(*) FROM series WHERE min_gap_us = -1").fetchall()
        if stale[0][0]:
            con.execute(
                "UPDATE series SET min_gap_us = g.gap FROM (SELECT series_id, min(d) AS gap "
                "FROM (SELECT series_id, epoch_us(ts) - lag(epoch_us(ts)) OVER (PARTITION BY "
                "series_id ORDER BY ts) AS d FROM points WHERE series_id IN (SELECT series_id "
                "FROM series WHERE min_gap_us = -1)) GROUP BY series_id) g "
                "WHERE series.series_id = g.series_id").fetchall()

    def _may_overlap(self, sid: np.ndarray[Any, Any], ts: pa.ChunkedArray) -> bool:
        """Whether any stored point lies in [min sid, max sid] × [min ts, max ts]."""
        lo, hi = pc.min_max(ts).values()
        row = self._con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM points WHERE series_id BETWEEN ? AND ? "
            "AND ts BETWEEN ? AND ? LIMIT 1)",
            [int(sid.min()), int(sid.max()), lo.as_py(), hi.as_py()]).fetchall()
        return bool(row[0][0])

    def _resolve_series(self, workspace: str, uniq: pa.Array, batch: CleanBatch,
                        codes: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], int]:
        """Series ids for each distinct series key (creating missing series)."""
        con = self._con
        # Arrow tables are read by name (replacement scan), see write_points for why.
        _kp_keys = pa.table({"series_key": uniq, "pos": pa.array(np.arange(len(uniq)))})
        found = con.execute(
            "SELECT k.pos, s.series_id FROM _kp_keys k JOIN series s "
            "ON s.series_key = k.series_key AND s.workspace_id = ?", [workspace]).fetchnumpy()
        ids = np.full(len(uniq), -1, dtype=np.int64)
        ids[np.asarray(found["pos"], dtype=np.int64)] = np.asarray(found["series_id"])
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            new_ids = np.asarray(con.execute(
                f"SELECT nextval('series_id_seq') AS id FROM range({len(missing)})",
            ).fetchnumpy()["id"], dtype=np.int64)
            ids[missing] = new_ids
            new_keys = uniq.take(pa.array(missing)).to_pylist()
            rows_series = pa.table({
                "series_id": pa.array(new_ids), "workspace_id": pa.array([workspace] * len(missing)),
                "kpi_id": pa.array([k.split(SERIES_KEY_SEP, 1)[0] for k in new_keys]),
                "series_key": pa.array(new_keys)})
            dim_rows: dict[str, list[Any]] = {"series_id": [], "dim": [], "value": []}
            for i, key in zip(new_ids.tolist(), new_keys, strict=True):
                for pair in key.split(SERIES_KEY_SEP)[1:]:
                    if pair:
                        dim, value = pair.split("=", 1)
                        dim_rows["series_id"].append(i)
                        dim_rows["dim"].append(dim)
                        dim_rows["value"].append(value)
            _kp_new = rows_series
            _kp_dims = pa.table(dim_rows, schema=pa.schema(
                [("series_id", pa.int64()), ("dim", pa.string()), ("value", pa.string())]))
            con.execute("INSERT INTO series (series_id, workspace_id, kpi_id, series_key) "
                        "SELECT * FROM _kp_new").fetchall()
            con.execute("INSERT INTO series_dims SELECT * FROM _kp_dims").fetchall()
        return ids, len(missing)

    # -- queries ---------------------------------------------------------------------------

    def _series_filter(self, workspace: str, kpi_ids: Sequence[str],
                       filters: Mapping[str, Sequence[str]]) -> tuple[str, list[Any]]:
        marks = ", ".join("?" * len(kpi_ids))
        sql = ("SELECT series_id, kpi_id, coalesce(min_gap_us, 9223372036854775807) AS gap "
               f"FROM series WHERE workspace_id = ? AND kpi_id IN ({marks})")
        params: list[Any] = [workspace, *kpi_ids]
        for dim, values in sorted(filters.items()):
            vmarks = ", ".join("?" * len(values))
            sql += (" AND series_id IN (SELECT series_id FROM series_dims WHERE dim = ? AND "
                    f"value IN ({vmarks}))")
            params += [dim, *values]
        return sql, params

    def aggregate(self, workspace: str, specs: Sequence[AggSpec], grain: Grain, tz: str,
                  start: datetime, end: datetime, filters: Mapping[str, Sequence[str]],
                  group_by: str | None) -> dict[str, AggRows]:
        if not specs:
            return {}
        con = self._con
        ids = [s.kpi_id for s in specs]
        sel_sql, params = self._series_filter(workspace, ids, filters)
        sel = con.execute(sel_sql, params).fetchnumpy()
        empty = AggRows(np.array([], dtype="datetime64[us]"), np.array([], dtype=object),
                        np.array([], dtype=np.float64))
        result = {s.kpi_id: empty for s in specs}
        if len(sel["series_id"]) == 0:
            return result
        bucket, bparams = bucket_sql(grain, tz if grain in LOCAL_GRAINS else "UTC", start, end)
        sel_ids = np.asarray(sel["series_id"], dtype=np.int64)
        sel_kpis = np.asarray(sel["kpi_id"], dtype=object)
        group_sql = "g.value" if group_by else "NULL::VARCHAR"
        join_g = ("LEFT JOIN series_dims g ON g.series_id = x.series_id AND g.dim = ?"
                  if group_by else "")
        gparams: list[Any] = [group_by] if group_by else []

        codes = {s.kpi_id: n for n, s in enumerate(specs)}

        def run(part: Sequence[AggSpec], template: str) -> pa.Table:
            """Run ``template`` (with {base}) over the points of this part's series only."""
            mask = np.isin(sel_kpis, [s.kpi_id for s in part])
            # read by name through DuckDB's replacement scan (see write_points); KPIs are
            # small integer codes so hash keys stay narrow
            _kp_sel = pa.table({"series_id": pa.array(sel_ids[mask]),
                                "kc": pa.array([codes[k] for k in sel_kpis[mask]], pa.int32())})
            # One constant range on series_id: DuckDB skips row groups (min/max) outside it,
            # which a join filter cannot. Measured on the 10M-point benchmark store: an OR of
            # per-KPI ranges or an IN list is evaluated row by row and costs ~2x the scan,
            # while one BETWEEN is nearly free. The two parts run as separate statements:
            # as one UNION ALL they took twice as long as apart.
            lo, hi = int(sel_ids[mask].min()), int(sel_ids[mask].max())
            sql = template.format(
                scan="FROM points p JOIN _kp_sel s ON s.series_id = p.series_id WHERE "
                     "p.series_id BETWEEN ? AND ? AND p.ts >= ? AND p.ts < ?",
                group=f"{group_sql} AS grp", join_g=join_g, bucket=bucket)
            params = [*bparams, lo, hi, start, end, *gparams]
            return con.sql(sql, params=params).to_arrow_table()

        # A `last` KPI whose selected series never hold two points within one period has one
        # point per (series, period): its last value is that point, so it is aggregated as a
        # sum — without the per-(series, period) hash aggregate, ~4x the cost of a sum.
        longest = longest_period_us(grain, tz if grain in LOCAL_GRAINS else "UTC", start, end)
        sel_gaps = np.asarray(sel["gap"], dtype=np.int64)
        sparse = {s.kpi_id for s in specs if s.aggregation is Aggregation.LAST
                  and longest is not None and bool(np.all(sel_gaps[sel_kpis == s.kpi_id]
                                                          >= longest))}
        plain = [AggSpec(s.kpi_id, Aggregation.SUM) if s.kpi_id in sparse else s
                 for s in specs if s.aggregation is not Aggregation.LAST or s.kpi_id in sparse]
        lasts = [s for s in specs if s.aggregation is Aggregation.LAST and s.kpi_id not in sparse]
        tables: list[pa.Table] = []
        if plain:
            case = " ".join(f"WHEN x.kc = {codes[s.kpi_id]} THEN {_AGG_SQL[s.aggregation]}"
                            for s in plain)
            if group_by:  # the dimension value is joined per series, after the scan
                tables.append(run(plain, (
                    "SELECT x.kc, x.k, {group}, " + f"CASE {case} END AS v FROM ("
                    "SELECT s.kc, p.series_id, {bucket} AS k, p.value {scan}) x "
                    "{join_g} GROUP BY x.kc, x.k, grp")))
            else:
                tables.append(run(plain, (
                    "SELECT x.kc, x.k, NULL::VARCHAR AS grp, " + f"CASE {case} END AS v FROM ("
                    "SELECT s.kc, {bucket} AS k, p.value {scan}) x GROUP BY x.kc, x.k")))
        if lasts:
            # last value per (series, period) — keyed by integers only — then summed over
            # series within (kpi, period, group)
            tables.append(run(lasts, (
                "SELECT x.kc, x.k, {group}, " + _EXACT_SUM.format("x.v") + " AS v FROM ("
                "SELECT any_value(s.kc) AS kc, p.series_id, {bucket} AS k, "
                "arg_max(p.value, p.ts) AS v {scan} GROUP BY p.series_id, k) x "
                "{join_g} GROUP BY x.kc, x.k, grp")))
        out = pa.concat_tables(tables)
        kc = np.asarray(out["kc"].to_numpy(zero_copy_only=False))
        keys = np.asarray(pc.cast(out["k"], pa.timestamp("us")).to_numpy(zero_copy_only=False),
                          dtype="datetime64[us]")
        grps = np.asarray(out["grp"].to_numpy(zero_copy_only=False), dtype=object)
        vals = np.asarray(out["v"].to_numpy(zero_copy_only=False), dtype=np.float64)
        order = np.argsort(kc, kind="stable")
        bounds = np.searchsorted(kc[order], np.arange(len(specs) + 1))
        for n, spec in enumerate(specs):
            idx = order[bounds[n]:bounds[n + 1]]
            result[spec.kpi_id] = AggRows(keys[idx], grps[idx], vals[idx])
        return result

    def point_count(self, workspace: str, kpi_id: str | None = None) -> int:
        sql = ("SELECT count(*) FROM points p JOIN series s USING (series_id) "
               "WHERE s.workspace_id = ?")
        where, params = optional_where(("s.kpi_id = ?", kpi_id))
        row = _first(self._run(sql + where, [workspace, *params]))
        return int(row[0]) if row else 0

    def series_count(self, workspace: str, kpi_id: str | None = None) -> int:
        sql = "SELECT count(*) FROM series WHERE workspace_id = ?"
        where, params = optional_where(("kpi_id = ?", kpi_id))
        row = _first(self._run(sql + where, [workspace, *params]))
        return int(row[0]) if row else 0

    def time_range(self, workspace: str, kpi_ids: Sequence[str] | None = None,
                   ) -> tuple[datetime, datetime] | None:
        # epoch microseconds: fetching TIMESTAMPTZ as Python objects would need pytz
        sql = ("SELECT epoch_us(min(p.ts)), epoch_us(max(p.ts)) FROM points p "
               "JOIN series s USING (series_id) "
               "WHERE s.workspace_id = ?")
        params: list[Any] = [workspace]
        if kpi_ids:
            sql += f" AND s.kpi_id IN ({', '.join('?' * len(kpi_ids))})"
            params += list(kpi_ids)
        row = _first(self._run(sql, params))
        if not row or row[0] is None:
            return None
        return from_epoch_us(row[0]), from_epoch_us(row[1])


# Sums and means run on DECIMAL: DuckDB adds doubles in parallel in whatever order threads
# finish, so sum(DOUBLE) differs in the last bits from run to run (5 distinct results in 5
# runs of one query, measured) and "same input, same output" would not hold. A DECIMAL sum is
# exact, hence the same every time. Values are validated to |v| ≤ MAX_ABS_VALUE (1e18), so
# DECIMAL(38, 12) holds any sum of up to 1e8 of them; digits below 1e-12 are dropped.
_EXACT_SUM = "sum({}::DECIMAL(38, 12))::DOUBLE"
_AGG_SQL = {
    Aggregation.SUM: _EXACT_SUM.format("x.value"),
    Aggregation.MEAN: "avg(x.value::DECIMAL(38, 12))::DOUBLE",
    Aggregation.MIN: "min(x.value)",
    Aggregation.MAX: "max(x.value)",
    Aggregation.COUNT: "count(*)::DOUBLE",
}


def _first(rows: list[Any]) -> Any:
    return rows[0] if rows else None

