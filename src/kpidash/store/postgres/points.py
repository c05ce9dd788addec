"""The points path on PostgreSQL: write (COPY + upsert), aggregate, read, counts.

Writing a batch, in one transaction:

1. duplicates within the batch are dropped (the last occurrence of a (series, ts) key wins)
   and rows are sorted by (series, ts), as in the DuckDB store;
2. series are resolved by key; missing ones are inserted with their dimensions
   (``ON CONFLICT DO NOTHING``: a concurrent writer creating the same series wins and its id
   is read back);
3. the monthly partitions the batch needs are created (not with a TimescaleDB hypertable,
   which makes its own chunks). Attaching a partition locks ``points_default`` until the
   transaction ends, blocking readers of ``points``: outside a caller's transaction they are
   created in a short transaction of their own first; inside one (an all-or-nothing upload
   reaching a new month), readers wait for that transaction;
4. the batch is written as CSV by Arrow and COPYed into a temporary table (timestamps as
   epoch µs, floats in their shortest round-trip form, so nothing is rounded), then
   an UPDATE of the stored points with the batch's keys counts the replaced ones (PostgreSQL
   cannot return ``xmax`` from a partitioned table) and ``INSERT … ON CONFLICT (series_id,
   ts) DO UPDATE`` adds the rest (replacing any point a concurrent writer added meanwhile);
5. ``series.last_ts`` and ``series.min_gap_us`` are kept exact like DuckDB's
   ``_update_spacing``.

Aggregates: sums and means run on ``numeric(38, 12)`` (exact, hence the same every run, and
equal to DuckDB's DECIMAL(38, 12) sums); a float8 goes to numeric through its text form,
because float8 → numeric keeps only 15 significant digits. Period keys are local wall-clock
starts: ``date_trunc(grain, ts AT TIME ZONE zone)``, the query's zone for day and longer
grains, UTC for minute and hour. ``last`` is the value at the latest ts per (series, period),
summed over series.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kpidash.core.aggregate import LOCAL_GRAINS, AggRows
from kpidash.core.batch import SERIES_KEY_SEP, CleanBatch
from kpidash.errors import NotFound
from kpidash.model import Aggregation, Grain
from kpidash.store.base import AggSpec, WriteStats
from kpidash.store.duckdb.periods import batch_spacing, from_epoch_us
from kpidash.store.duckdb.sql import optional_where
from kpidash.store.postgres.connection import PgConnection
from kpidash.store.postgres.schema import (
    ensure_partitions,
    existing_partitions,
    is_hypertable,
    month_start,
)

_EXACT = "{}::text::numeric(38, 12)"
_AGG_SQL = {
    Aggregation.SUM: f"sum({_EXACT.format('x.value')})::float8",
    Aggregation.MEAN: f"avg({_EXACT.format('x.value')})::float8",
    Aggregation.MIN: "min(x.value)",
    Aggregation.MAX: "max(x.value)",
    Aggregation.COUNT: "count(*)::float8",
}
_GRAIN_FIELD = {Grain.MINUTE: "minute", Grain.HOUR: "hour", Grain.DAY: "day",
                Grain.WEEK: "week", Grain.MONTH: "month", Grain.QUARTER: "quarter",
                Grain.YEAR: "year"}


ANALYZE_AFTER = 100_000  # points written before statistics are refreshed (see below)
BIG_BATCH = 100_000  # rows from which the write transaction gets more work_mem
# measured with benchmarks/ingest.py (--postgres): the upsert of 1M points took 7.1 s with
# the default 4MB, 6.35 s with 256MB (its sort no longer spills to disk)
BIG_BATCH_WORK_MEM = "256MB"


class PgPoints:
    """Points methods of PostgresStore (mixed in; uses ``_con`` and ``transaction``)."""

    _con: PgConnection
    _hypertable: bool
    _unanalyzed: int
    _analyzed: int

    def _init_points(self) -> None:
        with self._con.connection() as con:
            self._hypertable = is_hypertable(con)
        self._unanalyzed = 0  # points written by this store since its last ANALYZE
        self._analyzed = 0  # points written by this store up to its last ANALYZE

    def _analyze_if_due(self, written: int, created: bool) -> None:
        """ANALYZE ``points`` after a bulk load: autovacuum analyses new partitions in time
        but never the partitioned parent, and without statistics the planner expects one row
        everywhere. Measured with benchmarks/query.py (--postgres, 1M points right after the
        ingest): one dashboard refresh took ~1.7 s, ~0.3 s after ANALYZE. Due when this store
        created a partition or wrote 100,000 points and a tenth of what it wrote before since
        the last one (so a steady trickle costs nothing and a big load a few analyses)."""
        self._unanalyzed += written
        if not (created or self._unanalyzed >= max(ANALYZE_AFTER, self._analyzed // 10)):
            return
        if self._con.in_transaction:  # a caller's transaction: left to the next write
            return
        self._con.execute("ANALYZE points")
        self._analyzed += self._unanalyzed
        self._unanalyzed = 0

    # -- write -----------------------------------------------------------------------------

    def write_points(self, workspace: str, batch: CleanBatch, now: datetime) -> WriteStats:
        if len(batch) == 0:
            return WriteStats(0, 0, 0)
        ts = np.asarray(pc.cast(batch.ts, pa.int64()).to_numpy(zero_copy_only=False),
                        dtype=np.int64)
        if not self._hypertable and not self._con.in_transaction:
            # Creating a partition locks points_default (ATTACH scans it) until the
            # transaction ends, which blocks every reader of points: done in a transaction
            # of its own when it can be. A write that then fails leaves an empty partition.
            with self._con.transaction(), self._con.connection() as con:
                created = self._ensure_months(con, ts)
        else:
            created = False
        with self._con.transaction(), self._con.connection() as con:
            # the workspace row stays share-locked until the write commits: a deletion of the
            # workspace by another process (delete_workspace locks the row first) waits for
            # it and then deletes these points too, or ran first and this write is refused —
            # never points left behind for a workspace that no longer exists
            if con.execute("SELECT 1 FROM workspaces WHERE id = %s FOR SHARE",
                           [workspace]).fetchone() is None:
                raise NotFound(f"no workspace {workspace!r}: points are written into an "
                               "existing workspace (deleted meanwhile?)")
            if len(batch) >= BIG_BATCH:  # the upsert's sort and hash fit in memory
                con.execute(f"SET LOCAL work_mem = '{BIG_BATCH_WORK_MEM}'")
            keys_enc = pc.dictionary_encode(batch.series_key)
            uniq = keys_enc.dictionary
            codes = np.asarray(keys_enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
            ids, new_series = self._resolve_series(con, workspace, uniq)
            sid = ids[codes]
            # last occurrence of a (series, ts) key wins; rows end sorted by (series, ts)
            order = np.argsort(ts, kind="stable")
            order = order[np.argsort(sid[order], kind="stable")]
            s_sorted, t_sorted = sid[order], ts[order]
            last = np.ones(len(order), dtype=bool)
            last[:-1] = (s_sorted[1:] != s_sorted[:-1]) | (t_sorted[1:] != t_sorted[:-1])
            keep = order[last]
            if not self._hypertable:  # inside a caller's transaction: created in it
                created = self._ensure_months(con, ts[keep]) or created
            tbl = pa.table({
                "series_id": pa.array(sid[keep]),
                "us": pa.array(ts[keep]),
                "value": pa.array(np.asarray(batch.value, dtype=np.float64)[keep]),
                "raw_value": pa.array(np.asarray(batch.raw_value, dtype=np.float64)[keep],
                                      from_pandas=True),
                "correction": batch.correction.take(pa.array(keep)).cast(pa.string()),
                "reason": batch.reason.take(pa.array(keep)).cast(pa.string()),
            })
            con.execute("CREATE TEMP TABLE _kp_points (series_id bigint, us bigint, "
                        "value float8, raw_value float8, correction text, reason text) "
                        "ON COMMIT DROP")
            _copy_csv(con, "_kp_points", tbl)
            replaced = 0
            if new_series < len(uniq):  # only series that existed can hold old points
                lo, hi = (from_epoch_us(int(v)) for v in (ts[keep].min(), ts[keep].max()))
                # the constant ts range prunes the scan to the batch's partitions
                cur = con.execute(
                    "UPDATE points p SET value = b.value, raw_value = b.raw_value, "
                    "correction = b.correction, ingested_at = %s, correction_reason = b.reason "
                    "FROM _kp_points b WHERE p.series_id = b.series_id "
                    "AND p.ts = make_timestamptz(b.us) AND p.ts BETWEEN %s AND %s",
                    [now, lo, hi])
                replaced = max(cur.rowcount, 0)
            # ON CONFLICT: a point written meanwhile by a concurrent transaction is replaced
            con.execute(
                "INSERT INTO points (series_id, ts, value, raw_value, correction, ingested_at, "
                "correction_reason) SELECT series_id, make_timestamptz(us), value, raw_value, "
                "correction, %s, reason FROM _kp_points ORDER BY series_id, us "
                "ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value, "
                "raw_value = excluded.raw_value, correction = excluded.correction, "
                "ingested_at = excluded.ingested_at, "
                "correction_reason = excluded.correction_reason", [now])
            con.execute("DROP TABLE _kp_points")
            self._update_spacing(con, sid[keep], ts[keep])
        self._analyze_if_due(tbl.num_rows, created)
        return WriteStats(written=tbl.num_rows, replaced=replaced, new_series=new_series)

    def _ensure_months(self, con: psycopg.Connection[Any], us: np.ndarray[Any, Any]) -> bool:
        """Create the monthly partitions holding these epoch-µs instants; whether any was
        created. The catalog is asked each time rather than cached: a partition created in
        a transaction that rolls back is gone again."""
        months = np.unique(us.astype("datetime64[us]").astype("datetime64[M]"))
        starts = [month_start(from_epoch_us(int(m.astype("datetime64[us]").astype(np.int64))))
                  for m in months]
        return bool(ensure_partitions(con, starts, existing_partitions(con)))

    def _resolve_series(self, con: psycopg.Connection[Any], workspace: str, uniq: pa.Array,
                        ) -> tuple[np.ndarray[Any, Any], int]:
        """Series ids for each distinct series key (creating missing series); how many new."""
        keys: list[str] = uniq.to_pylist()
        pos = {k: i for i, k in enumerate(keys)}
        ids = np.full(len(keys), -1, dtype=np.int64)

        def lookup(wanted: list[str]) -> None:
            for key, series_id in con.execute(
                    "SELECT series_key, series_id FROM series WHERE workspace_id = %s "
                    "AND series_key = ANY(%s)", [workspace, wanted]).fetchall():
                ids[pos[key]] = series_id

        lookup(keys)
        missing = [keys[i] for i in np.flatnonzero(ids < 0)]
        if not missing:
            return ids, 0
        kpis = [k.split(SERIES_KEY_SEP, 1)[0] for k in missing]
        created = con.execute(
            "INSERT INTO series (series_id, workspace_id, kpi_id, series_key) "
            "SELECT nextval('series_id_seq'), %s, k, s FROM unnest(%s::text[], %s::text[]) "
            "AS u(k, s) ON CONFLICT (workspace_id, series_key) DO NOTHING "
            "RETURNING series_key, series_id", [workspace, kpis, missing]).fetchall()
        dim_ids: list[int] = []
        dims: list[str] = []
        values: list[str] = []
        for key, series_id in created:
            ids[pos[key]] = series_id
            for pair in key.split(SERIES_KEY_SEP)[1:]:
                if pair:
                    dim, value = pair.split("=", 1)
                    dim_ids.append(series_id)
                    dims.append(dim)
                    values.append(value)
        if dim_ids:
            con.execute("INSERT INTO series_dims (series_id, dim, value) "
                        "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[])",
                        [dim_ids, dims, values])
        if len(created) < len(missing):  # a concurrent writer created some of them first
            lookup([k for k in missing if ids[pos[k]] < 0])
        return ids, len(created)

    def _update_spacing(self, con: psycopg.Connection[Any], sid: np.ndarray[Any, Any],
                        ts: np.ndarray[Any, Any]) -> None:
        """Keep series.last_ts and series.min_gap_us exact (see DuckDBStore._update_spacing):
        appends update them from the batch; a series written at or before its last
        timestamp is recomputed from its stored points."""
        starts, ends, gap = batch_spacing(sid, ts)
        gaps = [int(g) if np.isfinite(g) else None for g in gap]
        stale = con.execute(
            "WITH b AS (SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], "
            "%s::bigint[]) AS b(series_id, first_us, last_us, gap)), "
            "u AS (UPDATE series SET min_gap_us = CASE "
            "WHEN series.last_ts IS NULL THEN b.gap "
            "WHEN b.first_us > epoch_us(series.last_ts) THEN least(series.min_gap_us, b.gap, "
            "b.first_us - epoch_us(series.last_ts)) ELSE -1 END, "
            "last_ts = greatest(series.last_ts, make_timestamptz(b.last_us)) "
            "FROM b WHERE series.series_id = b.series_id RETURNING series.series_id, "
            "series.min_gap_us) SELECT array_agg(series_id) FROM u WHERE min_gap_us = -1",
            [sid[starts].tolist(), ts[starts].tolist(), ts[ends - 1].tolist(), gaps]).fetchone()
        if stale and stale[0]:
            con.execute(
                "UPDATE series SET min_gap_us = g.gap FROM (SELECT series_id, min(d) AS gap "
                "FROM (SELECT series_id, epoch_us(ts) - lag(epoch_us(ts)) OVER (PARTITION BY "
                "series_id ORDER BY ts) AS d FROM points WHERE series_id = ANY(%s)) w "
                "GROUP BY series_id) g WHERE series.series_id = g.series_id", [stale[0]])

    # -- queries ---------------------------------------------------------------------------

    def aggregate(self, workspace: str, specs: Sequence[AggSpec], grain: Grain, tz: str,
                  start: datetime, end: datetime, filters: Mapping[str, Sequence[str]],
                  group_by: str | None) -> dict[str, AggRows]:
        empty = AggRows(np.array([], dtype="datetime64[us]"), np.array([], dtype=object),
                        np.array([], dtype=np.float64))
        result = {s.kpi_id: empty for s in specs}
        if not specs:
            return result
        codes = {s.kpi_id: n for n, s in enumerate(specs)}
        sel_sql, sel_params = _series_filter(workspace, list(codes), filters)
        zone = tz if grain in LOCAL_GRAINS else "UTC"
        bucket = f"date_trunc('{_GRAIN_FIELD[grain]}', p.ts AT TIME ZONE %s)"
        kc = "CASE s.kpi_id " + " ".join(f"WHEN %s THEN {n}" for n in codes.values()) + " END"
        kc_params: list[Any] = list(codes)
        scan = (f"FROM points p JOIN ({sel_sql}) s ON s.series_id = p.series_id "
                "WHERE p.ts >= %s AND p.ts < %s")
        scan_params = [*sel_params, start, end]
        group = "g.value" if group_by else "NULL::text"
        join_g = ("LEFT JOIN series_dims g ON g.series_id = x.series_id AND g.dim = %s"
                  if group_by else "")
        g_params: list[Any] = [group_by] if group_by else []
        plain = [s for s in specs if s.aggregation is not Aggregation.LAST]
        lasts = [s for s in specs if s.aggregation is Aggregation.LAST]
        rows: list[tuple[Any, ...]] = []
        with self._con.connection() as con:
            if plain:
                case = " ".join(f"WHEN x.kc = {codes[s.kpi_id]} THEN {_AGG_SQL[s.aggregation]}"
                                for s in plain)
                rows += con.execute(
                    f"SELECT x.kc, x.k, {group} AS grp, CASE {case} END AS v FROM ("
                    f"SELECT {kc} AS kc, p.series_id, {bucket} AS k, p.value {scan} "
                    f"AND s.kpi_id = ANY(%s)) x {join_g} GROUP BY x.kc, x.k, grp",
                    [*kc_params, zone, *scan_params, [s.kpi_id for s in plain], *g_params],
                ).fetchall()
            if lasts:
                rows += con.execute(
                    f"SELECT x.kc, x.k, {group} AS grp, "
                    f"sum({_EXACT.format('x.value')})::float8 AS v FROM ("
                    f"SELECT DISTINCT ON (p.series_id, k) {kc} AS kc, p.series_id, "
                    f"{bucket} AS k, p.value {scan} AND s.kpi_id = ANY(%s) "
                    f"ORDER BY p.series_id, k, p.ts DESC) x {join_g} GROUP BY x.kc, x.k, grp",
                    [*kc_params, zone, *scan_params, [s.kpi_id for s in lasts], *g_params],
                ).fetchall()
        if not rows:
            return result
        rows.sort(key=lambda r: (r[0], r[1], r[2] is not None, r[2] or ""))
        kcs = np.array([r[0] for r in rows], dtype=np.int64)
        keys = np.array([r[1] for r in rows], dtype="datetime64[us]")
        grps = np.array([r[2] for r in rows], dtype=object)
        vals = np.array([r[3] for r in rows], dtype=np.float64)
        bounds = np.searchsorted(kcs, np.arange(len(specs) + 1))
        for n, spec in enumerate(specs):
            lo, hi = bounds[n], bounds[n + 1]
            if hi > lo:
                result[spec.kpi_id] = AggRows(keys[lo:hi], grps[lo:hi], vals[lo:hi])
        return result

    def point_count(self, workspace: str, kpi_id: str | None = None) -> int:
        where, params = optional_where(("s.kpi_id = ?", kpi_id))
        row = self._con.execute("SELECT count(*) FROM points p JOIN series s USING (series_id) "
                                "WHERE s.workspace_id = ?" + where,
                                [workspace, *params]).fetchone()
        return int(row[0]) if row else 0

    def series_count(self, workspace: str, kpi_id: str | None = None) -> int:
        where, params = optional_where(("kpi_id = ?", kpi_id))
        row = self._con.execute("SELECT count(*) FROM series WHERE workspace_id = ?" + where,
                                [workspace, *params]).fetchone()
        return int(row[0]) if row else 0

    def time_range(self, workspace: str, kpi_ids: Sequence[str] | None = None,
                   ) -> tuple[datetime, datetime] | None:
        sql = ("SELECT epoch_us(min(p.ts)), epoch_us(max(p.ts)) FROM points p "
               "JOIN series s USING (series_id) WHERE s.workspace_id = ?")
        params: list[Any] = [workspace]
        if kpi_ids:
            sql += " AND s.kpi_id = ANY(?)"
            params.append(list(kpi_ids))
        row = self._con.execute(sql, params).fetchone()
        if not row or row[0] is None:
            return None
        return from_epoch_us(row[0]), from_epoch_us(row[1])


def _series_filter(workspace: str, kpi_ids: list[str], filters: Mapping[str, Sequence[str]],
                   ) -> tuple[str, list[Any]]:
    """SELECT series_id, kpi_id of the workspace's series of these KPIs matching ``filters``
    (dimension → accepted values), in psycopg's %s style."""
    sql = "SELECT series_id, kpi_id FROM series WHERE workspace_id = %s AND kpi_id = ANY(%s)"
    params: list[Any] = [workspace, kpi_ids]
    for dim, values in sorted(filters.items()):
        sql += (" AND series_id IN (SELECT series_id FROM series_dims WHERE dim = %s AND "
                "value = ANY(%s))")
        params += [dim, list(values)]
    return sql, params


def _copy_csv(con: psycopg.Connection[Any], table: str, tbl: pa.Table) -> None:
    """COPY an Arrow table into ``table`` (same column order) as CSV written by Arrow:
    unquoted empty fields are NULL, strings are quoted, floats round-trip exactly."""
    buf = io.BytesIO()
    pacsv.write_csv(tbl, buf, pacsv.WriteOptions(include_header=False))
    with con.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
        copy.write(buf.getbuffer())

