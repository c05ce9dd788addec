"""Workspace rows, KPI definitions and raw point reads, shared by the DuckDB and PostgreSQL
stores (their SQL runs on both; PostgreSQL's ``kpis`` has a real ``rowid`` column for the
insertion order)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kpidash.store.duckdb.sql import quote_ident, quote_literal, time_range_sql

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


class KpiTables:
    """Mixed into the stores: needs ``_run``, ``_con.executemany`` and ``transaction``."""

    _con: Any

    if TYPE_CHECKING:  # provided by the store
        def transaction(self) -> AbstractContextManager[None]: ...

        def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[Any]: ...

    def ensure_workspace(self, workspace: str, name: str | None = None) -> None:
        self._run(
            "INSERT INTO workspaces (id, name, created_at, updated_at) VALUES (?, ?, now(), now()) "
            "ON CONFLICT DO NOTHING", [workspace, name or workspace])

    def put_kpis(self, workspace: str, definitions: Sequence[Mapping[str, Any]],
                 now: datetime) -> None:
        with self.transaction():
            self.ensure_workspace(workspace)
            if definitions:
                self._con.executemany(
                    "INSERT INTO kpis (workspace_id, kpi_id, definition, updated_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id, kpi_id) DO UPDATE SET "
                    "definition = excluded.definition, updated_at = excluded.updated_at",
                    [[workspace, d["id"], json.dumps(dict(d), sort_keys=True), now]
                     for d in definitions])

    def delete_kpi(self, workspace: str, kpi_id: str, purge: bool = False) -> bool:
        with self.transaction():
            found = self._run(
                "DELETE FROM kpis WHERE workspace_id = ? AND kpi_id = ? RETURNING kpi_id",
                [workspace, kpi_id])
            if purge:
                ids = "SELECT series_id FROM series WHERE workspace_id = ? AND kpi_id = ?"
                for table in ("points", "series_dims"):
                    self._run(f"DELETE FROM {table} WHERE series_id IN ({ids})",
                              [workspace, kpi_id])
                self._run("DELETE FROM series WHERE workspace_id = ? AND kpi_id = ?",
                          [workspace, kpi_id])
        return bool(found)

    def get_kpis(self, workspace: str) -> list[dict[str, Any]]:
        rows = self._run("SELECT definition FROM kpis WHERE workspace_id = ? ORDER BY rowid",
                         [workspace])
        return [json.loads(r[0]) for r in rows]

    def read_points(self, workspace: str, kpi_id: str, start: datetime | None = None,
                    end: datetime | None = None) -> pa.Table:
        dims = [str(r[0]) for r in self._con.execute(
            "SELECT DISTINCT d.dim FROM series_dims d JOIN series s USING (series_id) "
            "WHERE s.workspace_id = ? AND s.kpi_id = ? ORDER BY 1", [workspace, kpi_id]
        ).fetchall()]
        dim_cols = "".join(
            f", (SELECT value FROM series_dims d WHERE d.series_id = p.series_id "
            f"AND d.dim = '{quote_literal(d)}') AS \"{quote_ident(d)}\"" for d in dims)
        sql = (f"SELECT p.ts, p.value, p.raw_value, p.correction, p.correction_reason, "
               f"s.series_key, p.ingested_at{dim_cols} FROM points p "
               "JOIN series s USING (series_id) WHERE s.workspace_id = ? AND s.kpi_id = ?")
        where, params = time_range_sql("p.ts", start, end)
        table: pa.Table = self._con.sql(sql + where + " ORDER BY p.series_id, p.ts",
                                        params=[workspace, kpi_id, *params]).to_arrow_table()
        return table
