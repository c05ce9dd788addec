"""Audit tables of the DuckDB store: corrections (raw values kept, every change logged),
annotations (known events) and anomalies (each stored once).

The SQL runs on DuckDB and, through its adapter, on PostgreSQL (where ``correction_log`` has a
``rowid`` column keeping insertion order); set-based writes go through
:meth:`RowWrites._write`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from kpidash.model import Annotation
from kpidash.store.duckdb.periods import from_epoch_us
from kpidash.store.duckdb.rows import RowWrites
from kpidash.store.duckdb.sql import optional_where, time_range_sql


class AuditTables(RowWrites):
    """Mixed into DuckDBStore: the methods over correction_log, annotations and anomalies."""

    _con: duckdb.DuckDBPyConnection

    if TYPE_CHECKING:  # provided by DuckDBStore
        def transaction(self) -> AbstractContextManager[None]: ...

    # -- corrections (auditable: the raw value is never lost) -------------------------------

    def apply_corrections(self, workspace: str, corrections: pa.Table, now: datetime) -> int:
        """Set corrected values; ``corrections``: series_key, ts, value, method, reason.

        The first raw value is kept in ``raw_value`` however often a point is corrected;
        rows naming no stored point are ignored. Every change is logged, in the order of
        ``corrections``.
        """
        if corrections.num_rows == 0:
            return 0
        rows = corrections.select(["series_key", "ts", "value", "method", "reason"])
        rows = rows.append_column("n", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
        with self.transaction():
            self._write(
                f"INSERT INTO correction_log ({_LOG_COLUMNS}) SELECT s.workspace_id, s.kpi_id, "
                "s.series_key, p.ts, coalesce(p.raw_value, p.value), c.value, c.method, "
                "c.reason, 'apply', ? FROM _kp_rows c JOIN series s "
                "ON s.series_key = c.series_key AND s.workspace_id = ? "
                "JOIN points p ON p.series_id = s.series_id AND p.ts = c.ts ORDER BY c.n",
                [now, workspace], rows)
            return self._write(
                "UPDATE points SET raw_value = coalesce(points.raw_value, points.value), "
                "value = c.value, correction = c.method, correction_reason = c.reason "
                "FROM _kp_rows c JOIN series s ON s.series_key = c.series_key "
                "AND s.workspace_id = ? WHERE points.series_id = s.series_id "
                "AND points.ts = c.ts", [workspace], rows)

    def revert_corrections(self, workspace: str, kpi_id: str, now: datetime,
                           start: datetime | None = None, end: datetime | None = None) -> int:
        """Restore raw values of a KPI's corrected points (optionally within [start, end));
        logged by series then time."""
        where = ("p.raw_value IS NOT NULL AND p.series_id IN (SELECT series_id FROM series "
                 "WHERE workspace_id = ? AND kpi_id = ?)")
        extra, times = time_range_sql("p.ts", start, end)
        where += extra
        params: list[Any] = [workspace, kpi_id, *times]
        with self.transaction():
            self._write(
                f"INSERT INTO correction_log ({_LOG_COLUMNS}) SELECT s.workspace_id, s.kpi_id, "
                "s.series_key, p.ts, p.raw_value, p.value, p.correction, p.correction_reason, "
                f"'revert', ? FROM points p JOIN series s USING (series_id) WHERE {where} "
                "ORDER BY s.series_key, p.ts",
                [now, *params])
            return self._write(
                "UPDATE points p SET value = p.raw_value, raw_value = NULL, correction = NULL, "
                f"correction_reason = NULL WHERE {where}", params)

    def correction_log(self, workspace: str, kpi_id: str | None = None) -> pa.Table:
        """The audit trail: every applied and reverted correction, oldest first."""
        sql = f"SELECT {_LOGGED} FROM correction_log WHERE workspace_id = ?"
        where, params = optional_where(("kpi_id = ?", kpi_id))
        return self._con.sql(sql + where + " ORDER BY rowid",
                             params=[workspace, *params]).to_arrow_table()

    # -- annotations ----------------------------------------------------------------------

    def add_annotation(self, workspace: str, annotation: Annotation, now: datetime) -> int:
        row = self._con.execute(
            "INSERT INTO annotations (id, workspace_id, kpi_id, start_ts, end_ts, label, kind, "
            "created_at) VALUES (nextval('annotation_id_seq'), ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [workspace, annotation.kpi_id, annotation.start, annotation.end, annotation.label,
             annotation.kind, now]).fetchall()
        return int(row[0][0])

    def annotations(self, workspace: str, kpi_id: str | None = None) -> list[Annotation]:
        """Annotations of a KPI (and those for every KPI), by start."""
        sql = ("SELECT id, kpi_id, epoch_us(start_ts), epoch_us(end_ts), label, kind "
               "FROM annotations WHERE workspace_id = ?")
        where, params = optional_where(("(kpi_id = ? OR kpi_id IS NULL)", kpi_id))
        rows = self._con.execute(sql + where + " ORDER BY start_ts, id",
                                 [workspace, *params]).fetchall()
        return [Annotation(start=from_epoch_us(a), end=from_epoch_us(b), label=label,
                           kind=kind, kpi_id=k, id=int(i)) for i, k, a, b, label, kind in rows]

    def delete_annotation(self, workspace: str, annotation_id: int) -> bool:
        row = self._con.execute("DELETE FROM annotations WHERE workspace_id = ? AND id = ? "
                                "RETURNING id", [workspace, annotation_id]).fetchall()
        return bool(row)

    # -- anomalies ------------------------------------------------------------------------

    def put_anomalies(self, workspace: str, rows: pa.Table, now: datetime) -> int:
        """Store detected anomalies once: a (kpi, slice, grain, ts) already stored is kept.

        ``rows``: kpi_id, slice, grain, ts, actual, expected, lo, hi, score, severity, kind,
        favourable. Returns how many were new.
        """
        if rows.num_rows == 0:
            return 0
        return self._write(
            "INSERT INTO anomalies (workspace_id, kpi_id, slice, grain, ts, actual, expected, lo, "
            "hi, score, severity, kind, favourable, detected_at) SELECT ?, kpi_id, slice, grain, "
            "ts, actual, expected, lo, hi, score, severity, kind, favourable, ? FROM _kp_rows "
            "ON CONFLICT DO NOTHING", [workspace, now], rows)

    def anomalies(self, workspace: str, kpi_id: str | None = None,
                  since: datetime | None = None) -> pa.Table:
        sql = ("SELECT kpi_id, slice, grain, ts, actual, expected, lo, hi, score, severity, kind, "
               "favourable, detected_at FROM anomalies WHERE workspace_id = ?")
        where, params = optional_where(("kpi_id = ?", kpi_id), ("ts >= ?", since))
        return self._con.sql(sql + where + " ORDER BY ts, kpi_id, slice",
                             params=[workspace, *params]).to_arrow_table()


# the columns of correction_log as written (PostgreSQL's also has a rowid), and as read
_LOGGED = "kpi_id, series_key, ts, raw_value, corrected_value, method, reason, action, logged_at"
_LOG_COLUMNS = f"workspace_id, {_LOGGED}"
