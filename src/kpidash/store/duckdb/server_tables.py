"""The server-wide tables of a store, exported and imported whole (``kpidash migrate``).

:data:`SERVER_TABLES` lists what a workspace export leaves out and a whole-store copy needs:
the workspace records with their times, the global tables (users, sessions, login failures)
and the member tables (memberships, ingest tokens). Unlike a workspace archive, these keep
their ids as they are — sessions and memberships name users by id, dashboards name their
owner — and carry credentials (password and token hashes): they are for moving a store
between engines or servers, never written into an archive.

The SQL runs on both engines: rows go in through the workspace import's ``_insert`` (whose
``_attach`` hook PostgreSQL overrides), JSON columns are exported canonical as in
``workspaces.py``, so an export checksums the same on DuckDB and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from kpidash.errors import Conflict
from kpidash.store.duckdb.sql import conform

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

SERVER_TABLES: tuple[tuple[str, str], ...] = (
    ("workspaces", "id"),
    ("users", "id"),
    ("sessions", "id"),
    ("login_failures", "key, at_ts"),
    ("memberships", "workspace_id, user_id"),
    ("ingest_tokens", "workspace_id, id"),
)
"""(table, export order) of every server-wide table, in import order."""
SERVER_TABLE_NAMES: tuple[str, ...] = tuple(name for name, _ in SERVER_TABLES)


class ServerTables:
    """Mixed into the stores (through WorkspaceTables): export_global and import_global."""

    _con: duckdb.DuckDBPyConnection

    if TYPE_CHECKING:  # provided by WorkspaceTables and the store
        def transaction(self) -> AbstractContextManager[None]: ...
        def _q(self, sql: str, params: list[Any] | None = None) -> list[Any]: ...
        def _columns(self, table: str) -> list[str]: ...
        def _json_columns(self, table: str) -> list[str]: ...
        def _insert(self, table: str, sql: str, params: list[Any], expect: int,
                    tables: dict[str, pa.Table]) -> None: ...

    def export_global(self) -> Iterator[tuple[str, pa.Table]]:
        """(table name, every row, all columns, ids kept) for each server-wide table: workspace
        records, users, sessions, login failures, memberships, ingest tokens. Holds password
        and token hashes: for copying a whole store, never for an archive."""
        with self.transaction():  # one snapshot on DuckDB
            tables = [(name, self._global_table(name, order, where=""))
                      for name, order in SERVER_TABLES]
        yield from tables

    def global_schemas(self) -> dict[str, pa.Schema]:
        """The Arrow schema of every table of :meth:`export_global`, by name."""
        return {name: self._global_table(name, order, where="WHERE 1 = 0").schema
                for name, order in SERVER_TABLES}

    def _global_table(self, name: str, order: str, where: str) -> pa.Table:
        from kpidash.store.duckdb.workspaces import _canonical_json

        tbl = self._con.sql(f"SELECT {', '.join(self._columns(name))} FROM {name} {where} "
                            f"ORDER BY {order}").to_arrow_table()
        return _canonical_json(tbl, self._json_columns(name))

    def import_global(self, tables: Mapping[str, pa.Table]) -> dict[str, int]:
        """Load tables of :meth:`export_global` (a missing one: no rows), ids kept, all or
        nothing; rows per table. Workspace records are created or overwritten (name,
        settings, times); the other tables must hold no rows yet (Conflict otherwise)."""
        schemas = self.global_schemas()
        data = conform(tables, schemas, "server table")
        with self.transaction():
            held = [name for name in SERVER_TABLE_NAMES[1:]
                    if self._q(f"SELECT 1 FROM {name} LIMIT 1")]
            if held:
                raise Conflict(f"the store already holds {', '.join(held)}; server tables "
                               "are imported into a store without any")
            for name in SERVER_TABLE_NAMES:
                tbl = data[name]
                if not tbl.num_rows:
                    continue
                cols = ", ".join(schemas[name].names)
                upsert = ""
                if name == "workspaces":
                    upsert = (" ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                              "settings = excluded.settings, created_at = excluded.created_at, "
                              "updated_at = excluded.updated_at")
                self._insert(name, f"INSERT INTO {name} ({cols}) SELECT {cols} FROM _kp_in"
                             f"{upsert}", [], tbl.num_rows, {"_kp_in": tbl})
        return {name: tbl.num_rows for name, tbl in data.items()}
