"""``PgConnection``: the subset of DuckDB's connection API that the store mixins use, on a
psycopg 3 connection pool — so the mixins' SQL runs unchanged on PostgreSQL where it is
portable.

Contract (what a mixin may rely on when ``self._con`` is a PgConnection)::

    con.execute(sql, params=None) -> PgResult     one statement, rows fetched eagerly
    con.executemany(sql, seq_of_params) -> None
    con.sql(sql, params=None) -> PgResult         same as execute (DuckDB's relation API)
    result.fetchall() -> list[tuple]              result.fetchone() -> tuple | None
    result.fetchnumpy() -> dict[str, np.ndarray]  column → array (object arrays for text)
    result.to_arrow_table() -> pa.Table           types from the PostgreSQL column types
    con.register(name, table) / con.unregister(name)   an Arrow table as a TEMP table
    con.copy_arrow(table, arrow_table, columns=None) -> int   COPY rows into a table
    con.transaction()                             context manager; nests (joins the outer)

- Placeholders: SQL arrives with DuckDB's ``?``; with parameters given, each ``?`` outside
  quotes becomes ``%s`` and a literal ``%`` becomes ``%%``. Without parameters (``None``) the
  SQL is sent as it is. Parameters are a sequence (no named parameters).
- Statements without a result set (INSERT/UPDATE/DELETE without RETURNING) give one row
  ``(rowcount,)`` like DuckDB's; DDL gives no rows.
- Types: json/jsonb come back as TEXT (``str``; the mixins call ``json.loads``) and a Python
  ``str`` parameter goes into a json/jsonb column as it is. timestamptz comes back as an
  aware ``datetime`` in UTC (session ``TimeZone=UTC``); numeric as ``Decimal`` from fetchall.
  Arrow types: int8→int64, int4→int32, int2→int16, float8→float64, float4→float32,
  numeric→float64, text/varchar/bpchar/name/json/jsonb/uuid→string, bool→bool,
  timestamptz→timestamp("us", tz="UTC"), timestamp→timestamp("us"), date→date32,
  bytea→binary; anything else is left to Arrow's inference.
- Transactions: autocommit connections. Outside ``transaction()`` each statement borrows a
  pooled connection for itself. Inside, every statement of that thread runs on the one
  connection the transaction holds (thread-bound), and inner ``transaction()`` calls join it:
  an exception leaving the outermost block rolls everything back.
- Errors are psycopg's (``psycopg.errors.UniqueViolation`` for a duplicate key, …), except
  that a server that cannot be reached is :class:`~kpidash.errors.StoreUnavailable` (503
  with Retry-After in the API): no pooled connection within the wait, or the connection
  broke under a statement (server stopped or restarted, network cut; a COMMIT it broke
  committed whole or not at all). After such a failure the facade is *down*: checkouts wait
  at most ``DOWN_WAIT`` seconds instead of the pool's timeout, so requests get their 503 at
  once rather than hanging, and the idle connections (broken with the server) are checked
  and replaced. The first statement that succeeds again ends it; the pool, whose reconnect
  attempts give up after a few seconds (``RECONNECT_SECONDS``) and start again on the next
  checkout, reconnects within seconds of the server's return.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql as pgsql
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from kpidash.errors import StoreUnavailable

__all__ = ["DOWN_WAIT", "RECONNECT_SECONDS", "PgConnection", "PgResult", "arrow_to_pg_type",
           "configure", "translate"]

DOWN_WAIT = 0.5
"""Seconds a checkout waits for a pooled connection while the server is known down."""
RECONNECT_SECONDS = 4.0
"""The pool's ``reconnect_timeout``: its attempts to replace a connection (backing off 1 s,
2 s …) give up after this long, and the next checkout starts new ones at once — so a server
back after a long outage is reconnected within seconds, not after a long backoff."""
RETRY_AFTER = 2
"""The Retry-After (s) of :class:`StoreUnavailable`."""

log = logging.getLogger("kpidash.store.postgres")

_ARROW_BY_TYPE = {
    "int8": pa.int64(), "int4": pa.int32(), "int2": pa.int16(), "oid": pa.int64(),
    "float8": pa.float64(), "float4": pa.float32(), "numeric": pa.float64(),
    "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(), "name": pa.string(),
    "json": pa.string(), "jsonb": pa.string(), "uuid": pa.string(),
    "bool": pa.bool_(), "timestamptz": pa.timestamp("us", tz="UTC"),
    "timestamp": pa.timestamp("us"), "date": pa.date32(), "bytea": pa.binary(),
}


def configure(con: psycopg.Connection[Any]) -> None:
    """Per-connection setup (the pool's ``configure``): JSON as text, UTC session."""
    con.adapters.register_loader("json", TextLoader)
    con.adapters.register_loader("jsonb", TextLoader)
    con.execute("SET TimeZone = 'UTC'")


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """DuckDB-style ``?`` placeholders to psycopg's ``%s`` (``%`` escaped as ``%%``), leaving
    string literals, quoted identifiers and comments alone."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote inside the literal
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i:j + 1].replace("%", "%%"))
            i = j + 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(sql[i:j].replace("%", "%%"))
            i = j
        elif c == "?":
            out.append("%s")
            i += 1
        elif c == "%":
            out.append("%%")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class PgResult:
    """The rows of one statement, fetched eagerly, with their column names and types."""

    def __init__(self, columns: list[str], types: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.columns, self.types, self._rows, self._pos = columns, types, rows, 0

    @classmethod
    def from_cursor(cls, cur: psycopg.Cursor[Any]) -> PgResult:
        if cur.description is None:  # no result set: DuckDB answers DML with its row count
            rows = [(cur.rowcount,)] if cur.rowcount >= 0 else []
            return cls(["Count"], ["int8"], rows)
        types = []
        for d in cur.description:
            info = cur.adapters.types.get(d.type_code)
            types.append(info.name if info is not None else "")
        return cls([d.name for d in cur.description], types, cur.fetchall())

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._pos = self._rows[self._pos:], len(self._rows)
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def to_arrow_table(self) -> pa.Table:
        cols = list(zip(*self._rows, strict=True)) if self._rows else [()] * len(self.columns)
        arrays = []
        for values, typ in zip(cols, self.types, strict=True):
            target = _ARROW_BY_TYPE.get(typ)
            if typ == "numeric":
                values = tuple(None if v is None else float(v) for v in values)
            elif typ == "uuid":
                values = tuple(None if v is None else str(v) for v in values)
            arrays.append(pa.array(values, type=target) if target is not None or values
                          else pa.array(values, type=pa.null()))
        return pa.table(arrays, names=self.columns)

    def fetchnumpy(self) -> dict[str, np.ndarray[Any, Any]]:
        tbl = self.to_arrow_table()
        return {name: np.asarray(col.to_numpy(zero_copy_only=False))
                for name, col in zip(tbl.column_names, tbl.columns, strict=True)}


def arrow_to_pg_type(t: pa.DataType) -> str:
    """The PostgreSQL column type holding an Arrow type (for TEMP tables and COPY)."""
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytea"
    if pa.types.is_dictionary(t):
        return arrow_to_pg_type(t.value_type)
    if pa.types.is_null(t):
        return "text"
    return "text"


class PgConnection:
    """DuckDB-like connection facade over a ``ConnectionPool`` (see the module docstring)."""

    def __init__(self, pool: ConnectionPool[psycopg.Connection[Any]], label: str = "") -> None:
        self.pool = pool
        self.label = label or "PostgreSQL"  # names the server in StoreUnavailable's message
        self.down = False  # the last statement found the server unreachable
        self._local = threading.local()

    # -- connections and transactions -----------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The thread's transaction connection, or a pooled one for the block."""
        con: psycopg.Connection[Any] | None = getattr(self._local, "con", None)
        if con is not None:
            yield con
            return
        with self._pooled() as con:
            yield con

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for the block; an unreachable server is StoreUnavailable
        (see the module docstring)."""
        try:
            with self.pool.connection(timeout=DOWN_WAIT if self.down else None) as con:
                try:
                    yield con
                except psycopg.OperationalError as exc:
                    if not (con.broken or con.closed):
                        raise  # the statement's own failure (a cancelled query, …)
                    raise self._unavailable(exc) from exc
        except PoolTimeout as exc:
            raise self._unavailable(exc) from None
        self.down = False

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if not self.down:
            self.down = True
            log.warning("%s unreachable: %s", self.label, reason)
            if not isinstance(exc, PoolTimeout):
                with suppress(Exception):  # drop the idle connections that broke with it
                    self.pool.check()
        return StoreUnavailable(
            f"the store ({self.label}) cannot be reached: {reason}. kpidash reconnects by "
            f"itself; retry in {RETRY_AFTER} s (Retry-After). A write it interrupted was "
            "stored whole or not at all", RETRY_AFTER)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        local = self._local
        if getattr(local, "depth", 0):
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        with self._pooled() as con:
            local.con, local.depth = con, 1
            try:
                with con.transaction():
                    yield
            finally:
                local.con, local.depth = None, 0

    # -- statements -------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgResult:
        query = sql if params is None else translate(sql)
        with self.connection() as con, con.cursor() as cur:
            cur.execute(query, None if params is None else list(params))
            return PgResult.from_cursor(cur)

    def sql(self, sql: str, params: Sequence[Any] | None = None) -> PgResult:
        return self.execute(sql, params)

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        rows = [list(p) for p in seq]
        if not rows:
            return
        with self.connection() as con, con.cursor() as cur:
            cur.executemany(translate(sql), rows)

    # -- Arrow tables in and out ------------------------------------------------------------

    def copy_arrow(self, table: str, tbl: pa.Table, columns: Sequence[str] | None = None) -> int:
        """COPY the rows of ``tbl`` into ``table`` (its ``columns``, by default the Arrow
        column names, in order); returns how many rows."""
        cols = list(columns) if columns is not None else list(tbl.column_names)
        stmt = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            pgsql.Identifier(*table.split(".")),
            pgsql.SQL(", ").join(pgsql.Identifier(c) for c in cols))
        if tbl.num_rows == 0:
            return 0
        pycols = [_copy_values(tbl.column(i)) for i in range(tbl.num_columns)]
        with self.connection() as con, con.cursor() as cur, cur.copy(stmt) as copy:
            for row in zip(*pycols, strict=True):
                copy.write_row(row)
        return int(tbl.num_rows)

    def register(self, name: str, tbl: pa.Table) -> None:
        """Make ``tbl`` readable as the relation ``name`` (a TEMP table, filled by COPY).

        Inside a transaction the table is dropped at COMMIT/ROLLBACK; call ``unregister`` to
        drop it earlier. Outside one, statements may run on different pooled connections, so
        use it inside ``transaction()``.
        """
        cols = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(pgsql.Identifier(f.name), pgsql.SQL(arrow_to_pg_type(f.type)))
            for f in tbl.schema)
        tail = pgsql.SQL(" ON COMMIT DROP" if self.in_transaction else "")
        with self.connection() as con:
            con.execute(pgsql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(pgsql.Identifier(name)))
            con.execute(pgsql.SQL("CREATE TEMP TABLE {} ({})").format(pgsql.Identifier(name), cols)
                        + tail)
        self.copy_arrow(name, tbl)

    def unregister(self, name: str) -> None:
        with self.connection() as con:
            con.execute(pgsql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(pgsql.Identifier(name)))

    def close(self) -> None:
        self.pool.close()


def _copy_values(col: pa.ChunkedArray) -> list[Any]:
    """Python values of an Arrow column for COPY (dictionaries decoded, decimals kept)."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    values: list[Any] = col.to_pylist()
    if pa.types.is_decimal(col.type):
        return [None if v is None else Decimal(v) for v in values]
    return values
