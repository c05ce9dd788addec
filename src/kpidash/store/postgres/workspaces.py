"""Workspaces on PostgreSQL: ``PostgresWorkspaces``, the DuckDB mixin with its engine hooks
overridden (``PostgresStore`` lists it in place of ``WorkspaceTables``).

Records, deletion and export run the shared SQL of ``store/duckdb/workspaces.py`` unchanged
(the adapter answers a DELETE or INSERT with its row count, as DuckDB does). An import reads
its Arrow tables from TEMP tables filled by COPY instead of DuckDB's replacement scans: each
column takes the type of the target table's column of the same name (``jsonb`` accepts no
``text`` in an ``INSERT … SELECT``), the others their Arrow type. They are created ``ON COMMIT
DROP`` inside the import's transaction, so a failed import leaves neither rows nor tables.
Points of months that have no partition yet get one first (see ``schema.ensure_partitions``)
rather than landing in ``points_default``; outside a caller's transaction in a short
transaction of its own before the import's (attaching a partition locks ``points_default``,
which blocks every reader of points, until its transaction ends; an import that then fails
leaves empty partitions, as a failed write does).

Several processes share one server, so two guards DuckDB does not need: an export reads
every table in one REPEATABLE READ snapshot (a write committed meanwhile is in every table or
in none), and imports into one workspace id take a transaction-scoped advisory lock, so two
imports of the same id cannot both find it empty.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql as pgsql
from psycopg.pq import TransactionStatus

from kpidash.store.duckdb.workspaces import WorkspaceTables
from kpidash.store.postgres.connection import PgConnection, arrow_to_pg_type
from kpidash.store.postgres.schema import ensure_partitions, is_hypertable

__all__ = ["PostgresWorkspaces"]

_IMPORT_LOCK = 0x6B70  # the two-key advisory lock space: (this, hash of the workspace id)


class PostgresWorkspaces(WorkspaceTables):
    """Mixed into PostgresStore before the shared mixins: workspace import on PostgreSQL."""

    _con: PgConnection  # type: ignore[assignment]
    _import_errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def export_workspace(self, workspace: str) -> Iterator[tuple[str, pa.Table]]:
        """As DuckDB's, all tables read in one snapshot (inside a caller's transaction: in
        that transaction's, as it is)."""
        if self._con.in_transaction:
            yield from super().export_workspace(workspace)
            return
        with self._con.transaction():
            with self._con.connection() as con:
                con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            tables = list(super().export_workspace(workspace))
        yield from tables

    def import_workspace(self, workspace: str, tables: Mapping[str, pa.Table],
                         now: datetime) -> dict[str, int]:
        """As DuckDB's; the months of the points get their partitions first."""
        points = tables.get("points")
        if (points is not None and points.num_rows and "ts" in points.column_names
                and not self._con.in_transaction):
            try:
                ts = pc.cast(points["ts"], pa.timestamp("us", tz="UTC"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                pass  # the import refuses the table, naming it
            else:
                with self._con.transaction(), self._con.connection() as con:
                    self._partition_months(con, ts)
        return super().import_workspace(workspace, tables, now)

    def delete_workspace(self, workspace: str) -> dict[str, int]:
        """Lock the workspace row first: writes of points in flight in other processes
        (which share-lock it, see PgPoints.write_points) finish before the rows are deleted,
        and later ones find no workspace."""
        with self.transaction():
            self._q("SELECT 1 FROM workspaces WHERE id = ? FOR UPDATE", [workspace])
            return super().delete_workspace(workspace)

    def _lock_workspace(self, workspace: str) -> None:
        self._q("SELECT pg_advisory_xact_lock(?, hashtext(?))", [_IMPORT_LOCK, workspace])

    def _attach(self, local: str, tbl: pa.Table, target: str) -> None:
        """``tbl`` as the TEMP table ``local``, its columns typed like ``target``'s."""
        if not self._con.in_transaction:  # a TEMP table lives on one pooled connection
            raise RuntimeError("workspace import tables are attached inside a transaction")
        typed = dict(self._q(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = ?::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            [target]))
        cols = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(pgsql.Identifier(f.name),
                                      pgsql.SQL(typed.get(f.name) or arrow_to_pg_type(f.type)))
            for f in tbl.schema)
        with self._con.connection() as con:
            con.execute(pgsql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                pgsql.Identifier(local), cols))
            if target == "points" and tbl.num_rows:
                self._partition_months(con, tbl["ts"])
        self._con.copy_arrow(local, tbl)

    def _detach(self, local: str) -> None:
        with self._con.connection() as con:
            # after a failed statement the transaction only takes ROLLBACK, which drops it
            if con.info.transaction_status != TransactionStatus.INERROR:
                con.execute(pgsql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(
                    pgsql.Identifier(local)))

    def _partition_months(self, con: psycopg.Connection[Any], ts: pa.ChunkedArray) -> None:
        """Create the monthly partitions of ``points`` that rows at ``ts`` fall in."""
        if is_hypertable(con):  # TimescaleDB makes its own chunks
            return
        months = pc.unique(pc.floor_temporal(pc.drop_null(
            pc.cast(ts, pa.timestamp("us", tz="UTC"))), unit="month")).to_pylist()
        ensure_partitions(con, sorted(months), set())
