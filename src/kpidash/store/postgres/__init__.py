"""The PostgreSQL store: the same Store contract as DuckDB's, on a server many processes share.

``PostgresStore(url, *, min_size=1, max_size=4)`` keeps a psycopg_pool ``ConnectionPool`` of
autocommit connections (session ``TimeZone=UTC``, JSON read as text). ``self._con`` is a
:class:`~kpidash.store.postgres.connection.PgConnection`, the subset of DuckDB's connection
API the store mixins use (its docstring is the contract), so the DuckDB mixins' SQL runs
here unchanged where it is portable; where it is not, an area's ``store/postgres/<area>.py``
subclasses the DuckDB mixin and overrides its dialect hook, and that subclass replaces the
DuckDB mixin among ``PostgresStore``'s bases.

Transactions nest like DuckDB's (inner calls join the outer one) and are bound to the
calling thread: all work of one transaction runs on one pooled connection. Outside a
transaction each statement borrows a connection, so several threads may use one store.

Schema (schema.py): DuckDB's tables with PostgreSQL types, versioned migrations applied on
open under an advisory lock (several processes starting together migrate once), and the
points table range-partitioned by month or a TimescaleDB hypertable when available. The
points path (write with COPY, aggregate, read) is in points.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from kpidash.errors import SchemaVersionError, StoreError
from kpidash.model import DEFAULT_WORKSPACE
from kpidash.store.base import redact_url
from kpidash.store.duckdb.accounts import AccountTables
from kpidash.store.duckdb.alerts import AlertTables
from kpidash.store.duckdb.audit import AuditTables
from kpidash.store.duckdb.ingest_tokens import IngestTokenTables
from kpidash.store.duckdb.kpis import KpiTables
from kpidash.store.duckdb.memberships import MembershipTables
from kpidash.store.duckdb.outbox import OutboxTable
from kpidash.store.duckdb.quota_state import QuotaStateTable
from kpidash.store.duckdb.usage import UsageTables
from kpidash.store.duckdb.workspaces import WorkspaceTables
from kpidash.store.postgres.accounts import PostgresAccountsDialect
from kpidash.store.postgres.alerts import PostgresAlertsDialect
from kpidash.store.postgres.connection import RECONNECT_SECONDS, PgConnection, configure
from kpidash.store.postgres.coordination import KEEPALIVE, PgCoordination
from kpidash.store.postgres.points import PgPoints
from kpidash.store.postgres.schema import (
    MIGRATION_LOCK,
    MIGRATIONS,
    MIN_SERVER_VERSION,
    SCHEMA_VERSION,
    create_timescale,
    is_hypertable,
    points_sql,
)
from kpidash.store.postgres.workspaces import PostgresWorkspaces

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore"]


class PostgresStore(PgCoordination, PgPoints, PostgresWorkspaces,
                    PostgresAccountsDialect, PostgresAlertsDialect, AuditTables, OutboxTable,
                    AlertTables, UsageTables, AccountTables, MembershipTables, IngestTokenTables,
                    WorkspaceTables, KpiTables, QuotaStateTable):
    """A Store on a PostgreSQL (≥ 14) database given by a ``postgresql://`` URL."""

    _con: PgConnection  # type: ignore[assignment]
    _FOR_UPDATE = " FOR UPDATE"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4,
                 timeout: float = 30.0) -> None:
        self.url = url
        conninfo = "postgresql:" + url.split(":", 1)[1] if url.startswith("postgres:") else url
        self._conninfo, self._connect_timeout = conninfo, max(1, round(timeout))
        self._coordinators = set()
        # one direct connection first: a wrong URL, password or database name is reported at
        # once with the server's reason (the pool would retry quietly until its timeout)
        try:
            psycopg.connect(conninfo, connect_timeout=self._connect_timeout).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreError(f"cannot connect to PostgreSQL at {redact_url(url)}: {reason}"
                             ) from None
        # a lost server is noticed by TCP keepalive too (a cut network sends no reset), and
        # the pool's reconnect attempts are short (see connection.py): PostgreSQL restarted
        # under load is reconnected by this process within seconds, by itself
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
            kwargs={"autocommit": True, **KEEPALIVE}, configure=configure,
            reconnect_timeout=RECONNECT_SECONDS, name=f"kpidash {redact_url(url)}")
        try:
            pool.open(wait=True, timeout=timeout)
        except PoolTimeout:
            pool.close()
            raise StoreError(f"cannot connect to PostgreSQL at {redact_url(url)} within "
                             f"{timeout:g} s; is the server running and the URL right?") from None
        self._con = PgConnection(pool, label=f"PostgreSQL at {redact_url(url)}")
        try:
            self._check_server()
            self._migrate()
            self._init_points()
        except BaseException:
            pool.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
        return self._con.execute(sql, params).fetchall()

    def close(self) -> None:
        self._close_coordination()
        self._con.close()

    def _check_server(self) -> None:
        with self._con.connection() as con:
            version = con.info.server_version
        if version < MIN_SERVER_VERSION:
            raise StoreError(f"PostgreSQL {version // 10000} is too old for kpidash; use "
                             "PostgreSQL 14 or newer")

    def _migrate(self) -> None:
        """Apply the missing migrations in one transaction under an advisory lock, so that
        processes starting together wait for the first one and then find nothing to do."""
        with self._con.transaction(), self._con.connection() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
            con.execute("CREATE TABLE IF NOT EXISTS kpidash_schema (version integer PRIMARY KEY, "
                        "applied_at timestamptz NOT NULL DEFAULT now())")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"database schema version {current} is newer than this kpidash "
                    f"understands ({SCHEMA_VERSION}); upgrade kpidash")
            for version in sorted(v for v in MIGRATIONS if v > current):
                for stmt in MIGRATIONS[version]:
                    con.execute(stmt)
                if version == min(MIGRATIONS):  # the first version creates points as well
                    for stmt in points_sql(create_timescale(con)):
                        con.execute(stmt)
                con.execute("INSERT INTO kpidash_schema (version) VALUES (%s)", [version])
            self.ensure_workspace(DEFAULT_WORKSPACE, "Default")

    def schema_version(self) -> int:
        rows = self._run("SELECT max(version) FROM kpidash_schema")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    @property
    def timescale(self) -> bool:
        """Whether points live in a TimescaleDB hypertable (else monthly partitions)."""
        with self._con.connection() as con:
            return is_hypertable(con)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._con.transaction():
            yield
