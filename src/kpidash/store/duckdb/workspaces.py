"""Workspaces in the DuckDB store: records, complete deletion, export and import.

:data:`OWNED_TABLES` lists every table whose rows belong to a workspace — by a
``workspace_id`` column, or through ``series_id`` for ``series_dims`` and ``points`` — and
:data:`MEMBER_TABLES` those deleted with a workspace but never exported (memberships name
users, who are global to a server: an archive imported into another server cannot keep them),
:data:`STATE_TABLES` a running server's state of a workspace (deleted with it, never exported
or migrated), and :data:`GLOBAL_TABLES` those that belong to none. A test compares them all
with the catalog, so a new table must be classified here before deletion, export and import
can forget it.

Exported tables are portable: the workspace column is dropped, points and series dimensions
name their series by ``series_key`` (not the store's series id), and columns numbered by a
store-wide sequence (annotation ids, history/acknowledgement/interaction sequence numbers) or
read in insertion order (``kpis``, ``correction_log``: an added ``ord``) hold 0-based ranks,
renumbered on import in the same order. JSON columns are exported canonical (keys sorted,
compact separators), so an export reads the same whether the engine keeps JSON text verbatim
(DuckDB) or re-renders it (PostgreSQL's jsonb): an archive moves between engines with the
same checksums.

The SQL here runs on DuckDB and, through the adapter of ``store/postgres``, on PostgreSQL;
what cannot be shared is behind the hooks that ``PostgresWorkspaces`` overrides:
``_attach``/``_detach`` (make an Arrow table readable by name), ``_import_errors`` (the
engine's error classes) and ``_lock_workspace`` (serialise imports across processes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kpidash.core.workspace import (
    WorkspaceSettings,
    check_workspace_id,
    check_workspace_name,
    validate_settings,
)
from kpidash.errors import Conflict, NotFound, StoreError
from kpidash.store.duckdb.periods import from_epoch_us
from kpidash.store.duckdb.server_tables import ServerTables
from kpidash.store.duckdb.sql import conform

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


@dataclass(frozen=True)
class Owned:
    """A table of workspace rows kept by ``workspace_id``, exported with every other column.

    ``ranked``: a column numbered by ``sequence``, exported as its 0-based rank; ``ord``: the
    table is read in insertion order, exported with an ``ord`` column (rank of rowid)."""

    name: str
    order: str
    ranked: str | None = None
    sequence: str | None = None
    ord: bool = False


# Export/import order: parents before the rows that name them.
OWNED_TABLES: tuple[Owned, ...] = (
    Owned("kpis", "rowid", ord=True),
    Owned("correction_log", "rowid", ord=True),
    Owned("annotations", "id", ranked="id", sequence="annotation_id_seq"),
    Owned("anomalies", "kpi_id, slice, grain, ts"),
    Owned("outbox", "created_at, notification_id, channel"),
    Owned("alert_rules", "rule_id"),
    Owned("alert_instances", "fingerprint"),
    Owned("alert_history", "seq", ranked="seq", sequence="alert_history_seq"),
    Owned("alert_acks", "seq", ranked="seq", sequence="alert_ack_seq"),
    Owned("silences", "silence_id"),
    Owned("alert_groups", "group_key"),
    Owned("interactions", "seq", ranked="seq", sequence="interaction_seq"),
    Owned("insight_views", "user_id, insight_key"),
    Owned("dashboards", "id"),
)
SERIES_TABLES = ("series", "series_dims", "points")
"""Tables of the data: ``series`` by workspace_id, the other two through its series_id."""
TABLE_NAMES: tuple[str, ...] = ("workspaces", *SERIES_TABLES,
                                *(t.name for t in OWNED_TABLES))
"""Every table of a workspace export, in import order."""
MEMBER_TABLES: tuple[str, ...] = ("memberships", "ingest_tokens")
"""Tables of workspace rows (by ``workspace_id``) that name global users or hold credentials:
deleted with the workspace, not exported (an archive must not carry working credentials), and
not counted as data by an import (a new workspace has its creator as a member)."""
STATE_TABLES: tuple[str, ...] = ("quota_state",)
"""Tables of a running server's state of a workspace (its quota bucket): deleted with the
workspace, never exported, imported or migrated (servers start afresh without it)."""
GLOBAL_TABLES = frozenset({"kpidash_schema", "users", "sessions", "login_failures"})
"""Tables of the whole server (users and their sessions are global)."""

_SERIES_EXPORT = {
    "series": "SELECT series_key, kpi_id, last_ts, min_gap_us FROM series "
              "WHERE workspace_id = ? ORDER BY series_id",
    "series_dims": "SELECT s.series_key, d.dim, d.value FROM series_dims d JOIN series s "
                   "USING (series_id) WHERE s.workspace_id = ? ORDER BY d.series_id, d.dim",
    "points": "SELECT s.series_key, p.ts, p.value, p.raw_value, p.correction, "
              "p.correction_reason, p.ingested_at FROM points p JOIN series s "
              "USING (series_id) WHERE s.workspace_id = ? ORDER BY p.series_id, p.ts",
}
_WORKSPACE_SCHEMA = pa.schema([("name", pa.string()), ("settings", pa.string())])


class WorkspaceTables(ServerTables):
    """Mixed into DuckDBStore: workspace records, delete, export and import (and, from
    ServerTables, the server-wide tables' export_global/import_global)."""

    _con: duckdb.DuckDBPyConnection

    if TYPE_CHECKING:  # provided by DuckDBStore
        def transaction(self) -> AbstractContextManager[None]: ...

    def _q(self, sql: str, params: list[Any] | None = None) -> list[Any]:
        return self._con.execute(sql, params or []).fetchall()

    # -- records ---------------------------------------------------------------------------

    def create_workspace(self, workspace: str, name: str, settings: Mapping[str, Any] | None,
                         now: datetime) -> None:
        """Create a workspace (settings validated, defaults filled); Conflict if it exists."""
        check_workspace_id(workspace)
        doc = _settings_json(validate_settings(settings))
        with self.transaction():
            if self._q("SELECT 1 FROM workspaces WHERE id = ?", [workspace]):
                raise Conflict(f"workspace {workspace!r} already exists; choose another id")
            self._q("INSERT INTO workspaces (id, name, settings, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)", [workspace, check_workspace_name(name), doc, now, now])

    def workspace(self, workspace: str) -> dict[str, Any] | None:
        """One workspace record (id, name, settings, created_at, updated_at), or None."""
        rows = self._records("WHERE id = ?", [workspace])
        return rows[0] if rows else None

    def workspaces(self) -> list[dict[str, Any]]:
        """Every workspace record, by id."""
        return self._records("", [])

    def _records(self, where: str, params: list[Any]) -> list[dict[str, Any]]:
        rows = self._q("SELECT id, name, settings, epoch_us(created_at), "
                       "epoch_us(coalesce(updated_at, created_at)) FROM workspaces "
                       f"{where} ORDER BY id", params)
        return [{"id": i, "name": n, "settings": validate_settings(json.loads(s)).model_dump(),
                 "created_at": from_epoch_us(c), "updated_at": from_epoch_us(u)}
                for i, n, s, c, u in rows]

    def update_workspace(self, workspace: str, *, name: str | None = None,
                         settings: Mapping[str, Any] | None = None, now: datetime) -> bool:
        """Rename and/or change some settings (others kept), recording ``now`` as the
        record's updated_at; True if the workspace exists."""
        with self.transaction():
            current = self.workspace(workspace)
            if current is None:
                return False
            merged = validate_settings(settings, WorkspaceSettings(**current["settings"]))
            self._q("UPDATE workspaces SET name = ?, settings = ?, updated_at = ? WHERE id = ?",
                    [current["name"] if name is None else check_workspace_name(name),
                     _settings_json(merged), now, workspace])
        return True

    # -- delete ----------------------------------------------------------------------------

    def delete_workspace(self, workspace: str) -> dict[str, int]:
        """Delete a workspace and every row it owns, atomically; rows deleted per table."""
        ids = "SELECT series_id FROM series WHERE workspace_id = ?"
        counts: dict[str, int] = {}
        with self.transaction():
            for table in ("points", "series_dims"):
                counts[table] = self._count(
                    f"DELETE FROM {table} WHERE series_id IN ({ids})", [workspace])
            counts["series"] = self._count("DELETE FROM series WHERE workspace_id = ?",
                                           [workspace])
            for name in (*(t.name for t in OWNED_TABLES), *MEMBER_TABLES, *STATE_TABLES):
                counts[name] = self._count(f"DELETE FROM {name} WHERE workspace_id = ?",
                                           [workspace])
            counts["workspaces"] = self._count("DELETE FROM workspaces WHERE id = ?",
                                               [workspace])
        return counts

    def _count(self, sql: str, params: list[Any]) -> int:
        """Rows changed by one DELETE or INSERT (DuckDB answers them with a count row)."""
        rows = self._q(sql, params)
        return int(rows[0][0]) if rows else 0

    def _holds_rows(self, workspace: str) -> list[str]:
        """Tables holding rows of ``workspace`` (its record aside)."""
        names = ["series", *(t.name for t in OWNED_TABLES)]
        sql = " UNION ALL ".join(
            f"SELECT '{n}' AS t FROM (SELECT 1 FROM {n} WHERE workspace_id = ? LIMIT 1) AS x"
            for n in names)
        return [r[0] for r in self._q(sql, [workspace] * len(names))]

    # -- export ----------------------------------------------------------------------------

    def export_workspace(self, workspace: str) -> Iterator[tuple[str, pa.Table]]:
        """(table name, rows of the workspace without its workspace column) for every table."""
        record = self.workspace(workspace)
        if record is None:
            raise NotFound(f"workspace {workspace!r} does not exist")
        yield "workspaces", pa.table(
            {"name": [record["name"]],
             "settings": [_settings_json(WorkspaceSettings(**record["settings"]))]},
            schema=_WORKSPACE_SCHEMA)
        for name in SERIES_TABLES:
            yield name, self._con.sql(_SERIES_EXPORT[name], params=[workspace]).to_arrow_table()
        for t in OWNED_TABLES:
            tbl = self._con.sql(self._export_sql(t), params=[workspace]).to_arrow_table()
            yield t.name, _canonical_json(tbl, self._json_columns(t.name))

    def _catalog(self, table: str) -> list[tuple[str, str]]:
        """(column, lower-case type name) of a table; PostgreSQL's ``rowid`` (its stand-in
        for DuckDB's implicit one) left out: insertion order is exported as ``ord``."""
        return [(r[0], str(r[1]).lower()) for r in self._q(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = current_schema() "
            "ORDER BY ordinal_position", [table]) if r[0] != "rowid"]

    def _columns(self, table: str) -> list[str]:
        return [c for c, _ in self._catalog(table)]

    def _json_columns(self, table: str) -> list[str]:
        return [c for c, kind in self._catalog(table) if kind in ("json", "jsonb")]

    def _export_sql(self, t: Owned) -> str:
        cols = []
        for c in self._columns(t.name):
            if c == "workspace_id":
                continue
            cols.append(f"(row_number() OVER (ORDER BY {t.order}) - 1)::BIGINT AS {c}"
                        if c == t.ranked else c)
        if t.ord:
            cols.insert(0, f"(row_number() OVER (ORDER BY {t.order}) - 1)::BIGINT AS ord")
        return (f"SELECT {', '.join(cols)} FROM {t.name} WHERE workspace_id = ? "
                f"ORDER BY {t.order}")

    def export_schemas(self) -> dict[str, pa.Schema]:
        """The Arrow schema of every exported table, by name."""
        out = {"workspaces": _WORKSPACE_SCHEMA}
        for name in SERIES_TABLES:
            out[name] = self._con.sql(_SERIES_EXPORT[name], params=[""]).to_arrow_table().schema
        for t in OWNED_TABLES:
            out[t.name] = self._con.sql(self._export_sql(t), params=[""]).to_arrow_table().schema
        return out

    # -- import ----------------------------------------------------------------------------

    def import_workspace(self, workspace: str, tables: Mapping[str, pa.Table],
                         now: datetime) -> dict[str, int]:
        """Load exported tables into a new or empty workspace, all or nothing (ids renumbered);
        rows imported per table. Conflict if the workspace holds rows, StoreError naming the
        table whose rows do not fit."""
        check_workspace_id(workspace)
        data = self._conform(tables)
        record = data["workspaces"]
        if record.num_rows != 1:
            raise StoreError(f"table 'workspaces' must hold exactly one row, got "
                             f"{record.num_rows}")
        name = check_workspace_name(record["name"][0].as_py())
        try:
            settings = validate_settings(json.loads(record["settings"][0].as_py()))
        except Exception as exc:
            raise StoreError(f"table 'workspaces': invalid settings: {exc}") from None
        counts = {n: tbl.num_rows for n, tbl in data.items()}
        with self.transaction():
            self._lock_workspace(workspace)
            taken = self._holds_rows(workspace)
            if taken:
                raise Conflict(f"workspace {workspace!r} already holds data (in "
                               f"{', '.join(taken)}); import into a new or empty workspace")
            if self._q("SELECT 1 FROM workspaces WHERE id = ?", [workspace]):
                self._q("UPDATE workspaces SET name = ?, settings = ?, updated_at = ? "
                        "WHERE id = ?", [name, _settings_json(settings), now, workspace])
            else:
                self._q("INSERT INTO workspaces (id, name, settings, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [workspace, name, _settings_json(settings), now, now])
            self._import_series(workspace, data)
            for t in OWNED_TABLES:
                self._import_owned(workspace, t, data[t.name])
        return counts

    def _conform(self, tables: Mapping[str, pa.Table]) -> dict[str, pa.Table]:
        """Every export table with exactly its columns and types (a missing table: no rows)."""
        return conform(tables, self.export_schemas(), "table")

    def _new_ids(self, sequence: str, n: int) -> np.ndarray[Any, Any]:
        """``n`` fresh values of a sequence, ascending."""
        if n == 0:
            return np.array([], dtype=np.int64)
        got = self._con.execute(
            f"SELECT nextval('{sequence}') AS id FROM generate_series(1, {int(n)}) AS g"
        ).fetchnumpy()["id"]
        return np.sort(np.asarray(got, dtype=np.int64))

    # -- engine hooks (overridden by store/postgres/workspaces.py) ---------------------------

    _import_errors: tuple[type[Exception], ...] = (duckdb.Error,)
    """Errors of the engine that mean "these rows do not fit", reported naming the table."""

    def _lock_workspace(self, workspace: str) -> None:
        """Serialise imports into ``workspace`` until the transaction ends (DuckDB: one
        process, whose store lock already does)."""

    def _attach(self, local: str, tbl: pa.Table, target: str) -> None:
        """Make ``tbl`` readable as ``local`` by the next INSERT into table ``target``."""
        self._con.register(local, tbl)

    def _detach(self, local: str) -> None:
        self._con.unregister(local)

    def _insert(self, table: str, sql: str, params: list[Any], expect: int,
                tables: dict[str, pa.Table]) -> None:
        """Run one INSERT … SELECT over the Arrow tables in ``tables`` (read by name) and
        check it wrote ``expect`` rows; StoreError naming ``table`` otherwise."""
        attached: list[str] = []
        try:
            for local, tbl in tables.items():
                self._attach(local, tbl, table)
                attached.append(local)
            written = self._count(sql, params)
        except self._import_errors as exc:
            raise StoreError(f"cannot import table {table!r}: {exc}") from None
        finally:
            for local in attached:
                self._detach(local)
        if written != expect:  # only an inner join on series_key drops rows
            raise StoreError(f"cannot import table {table!r}: {expect - written} of its "
                             f"{expect} rows name a series_key missing from table 'series'")

    def _import_series(self, workspace: str, data: dict[str, pa.Table]) -> None:
        series = data["series"]
        keys = series["series_key"]
        if pc.count_distinct(keys).as_py() != series.num_rows:
            raise StoreError("cannot import table 'series': a series_key occurs twice")
        for key in keys.to_pylist():
            if key is None:
                raise StoreError("cannot import table 'series': a series_key is null")
        new = series.append_column("series_id", pa.array(self._new_ids("series_id_seq",
                                                                       series.num_rows)))
        self._insert("series", "INSERT INTO series (series_id, workspace_id, kpi_id, series_key, "
                     "last_ts, min_gap_us) SELECT series_id, ?, kpi_id, series_key, last_ts, "
                     "min_gap_us FROM _kp_in", [workspace], series.num_rows, {"_kp_in": new})
        join = "JOIN series s ON s.workspace_id = ? AND s.series_key = x.series_key"
        dims = data["series_dims"]
        self._insert("series_dims", f"INSERT INTO series_dims SELECT s.series_id, x.dim, x.value "
                     f"FROM _kp_in x {join}", [workspace], dims.num_rows, {"_kp_in": dims})
        points = data["points"]
        pairs = pa.table({"k": points["series_key"], "t": pc.cast(points["ts"], pa.int64())})
        if pairs.group_by(["k", "t"]).aggregate([]).num_rows != points.num_rows:
            raise StoreError("cannot import table 'points': a (series_key, ts) occurs twice")
        # sorted by (series_id, ts) as the write path inserts, so scans prune by series
        self._insert("points", "INSERT INTO points (series_id, ts, value, raw_value, correction, "
                     "correction_reason, ingested_at) SELECT s.series_id, x.ts, x.value, "
                     "x.raw_value, x.correction, x.correction_reason, x.ingested_at "
                     f"FROM _kp_in x {join} ORDER BY s.series_id, x.ts", [workspace],
                     points.num_rows, {"_kp_in": points})

    def _import_owned(self, workspace: str, t: Owned, tbl: pa.Table) -> None:
        if t.ord:
            tbl = tbl.sort_by("ord").drop_columns(["ord"])
        if t.ranked is not None and t.sequence is not None:
            tbl = tbl.sort_by(t.ranked)
            tbl = tbl.set_column(tbl.column_names.index(t.ranked), t.ranked,
                                 pa.array(self._new_ids(t.sequence, tbl.num_rows)))
        cols = [c for c in self._columns(t.name) if c != "workspace_id"]
        # rows go in in the table's order (rowid and sequence order are kept)
        tbl = tbl.append_column("_n", pa.array(np.arange(tbl.num_rows, dtype=np.int64)))
        self._insert(t.name, f"INSERT INTO {t.name} (workspace_id, {', '.join(cols)}) "
                     f"SELECT ?, {', '.join(cols)} FROM _kp_in ORDER BY _n", [workspace],
                     tbl.num_rows, {"_kp_in": tbl})


def _settings_json(settings: WorkspaceSettings) -> str:
    return json.dumps(settings.model_dump(), sort_keys=True, separators=(",", ":"))


def _canonical_json(tbl: pa.Table, columns: list[str]) -> pa.Table:
    """``tbl`` with each of ``columns`` (JSON text) rewritten canonically: keys sorted, compact
    separators, ASCII escapes — the text both engines give for the same document. (PostgreSQL's
    jsonb keeps numbers as decimals: a float written in exponent form with an integral value,
    1e16 and up, reads back as an integer there.)"""
    for c in columns:
        values = [None if v is None else
                  json.dumps(json.loads(v), sort_keys=True, separators=(",", ":"))
                  for v in tbl[c].to_pylist()]
        tbl = tbl.set_column(tbl.column_names.index(c), c, pa.array(values, pa.string()))
    return tbl

