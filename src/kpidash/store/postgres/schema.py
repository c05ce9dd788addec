"""PostgreSQL schema: one list of statements per version, applied in order on open.

The versions count like DuckDB's (``SCHEMA_VERSION`` is the same number): a new database
goes straight to version 9, which creates DuckDB's whole schema of version 9 with PostgreSQL
types (VARCHAR → text, DOUBLE → double precision, JSON → jsonb), its sequences and keys, in
DuckDB's column order, so that ``SELECT *`` and positional ``INSERT … VALUES`` written for
DuckDB run unchanged. Later versions add statements for both engines.

Shims so that DuckDB SQL runs unchanged:

- ``epoch_us(timestamptz) → bigint`` exact microseconds since 1970 (``extract`` returns
  numeric from PostgreSQL 14 on); ``make_timestamptz(bigint) → timestamptz`` and
  ``make_timestamp(bigint) → timestamp`` its inverses (exact for |µs| < 2^53, until 2255);
  ``any_value(anyelement)`` where the server lacks it (before PostgreSQL 16).
- Tables that DuckDB reads in its implicit ``rowid`` order (kpis, correction_log) carry an
  explicit last column ``rowid bigserial``.

Points: ``points`` has the key (series_id, ts) (so a write is one ``INSERT … ON CONFLICT``).
Where the TimescaleDB extension is available (``pg_available_extensions``, checked when the
schema is created, and it can be created: it needs ``shared_preload_libraries``), ``points``
is a hypertable with 30-day chunks that TimescaleDB creates itself. Otherwise it is natively
range-partitioned by ``ts``: one partition per calendar month in UTC (``points_pYYYYMM``),
created on demand by the write path (:func:`ensure_partitions`), plus ``points_default``
for rows that arrive by another way (they are moved into their month's partition when it is
created).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql as pgsql

SCHEMA_VERSION = 10
MIN_SERVER_VERSION = 140000  # exact extract(epoch …) as numeric; date_trunc(field, ts, zone)
# advisory lock keys (pg_advisory_lock takes one bigint): 'kpidash' in ASCII, then + n
MIGRATION_LOCK = 0x6B7069_6461_7368
PARTITION_LOCK = MIGRATION_LOCK + 1

SHIMS: list[str] = [
    """CREATE OR REPLACE FUNCTION epoch_us(timestamptz) RETURNS bigint
           LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
           AS $$ SELECT (extract(epoch FROM $1) * 1000000)::bigint $$""",
    """CREATE OR REPLACE FUNCTION make_timestamptz(bigint) RETURNS timestamptz
           LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
           AS $$ SELECT 'epoch'::timestamptz + $1 * interval '1 microsecond' $$""",
    """CREATE OR REPLACE FUNCTION make_timestamp(bigint) RETURNS timestamp
           LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
           AS $$ SELECT 'epoch'::timestamp + $1 * interval '1 microsecond' $$""",
    """DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'any_value') THEN
               CREATE FUNCTION kpidash_any_value_step(anyelement, anyelement)
                   RETURNS anyelement LANGUAGE sql IMMUTABLE PARALLEL SAFE
                   AS 'SELECT coalesce($1, $2)';
               CREATE AGGREGATE any_value(anyelement) (
                   SFUNC = kpidash_any_value_step, STYPE = anyelement, PARALLEL = SAFE);
           END IF;
       END $$""",
]

TABLES: list[str] = [
    """CREATE TABLE workspaces (id text PRIMARY KEY, name text NOT NULL,
           settings jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL,
           updated_at timestamptz)""",
    """CREATE TABLE kpis (workspace_id text NOT NULL, kpi_id text NOT NULL,
           definition jsonb NOT NULL, updated_at timestamptz NOT NULL,
           rowid bigserial NOT NULL, PRIMARY KEY (workspace_id, kpi_id))""",
    "CREATE SEQUENCE series_id_seq START 1",
    """CREATE TABLE series (series_id bigint PRIMARY KEY, workspace_id text NOT NULL,
           kpi_id text NOT NULL, series_key text NOT NULL, last_ts timestamptz,
           min_gap_us bigint, UNIQUE (workspace_id, series_key))""",
    "CREATE INDEX series_kpi ON series (workspace_id, kpi_id)",
    """CREATE TABLE series_dims (series_id bigint NOT NULL, dim text NOT NULL,
           value text NOT NULL, PRIMARY KEY (series_id, dim))""",
    "CREATE INDEX series_dims_value ON series_dims (dim, value)",
    # points: created by points_sql() (partitioned or hypertable)
    """CREATE TABLE correction_log (workspace_id text NOT NULL, kpi_id text NOT NULL,
           series_key text NOT NULL, ts timestamptz NOT NULL, raw_value double precision,
           corrected_value double precision, method text, reason text, action text NOT NULL,
           logged_at timestamptz NOT NULL, rowid bigserial NOT NULL)""",
    "CREATE INDEX correction_log_ws ON correction_log (workspace_id, kpi_id)",
    "CREATE SEQUENCE annotation_id_seq START 1",
    """CREATE TABLE annotations (id bigint PRIMARY KEY, workspace_id text NOT NULL,
           kpi_id text, start_ts timestamptz NOT NULL, end_ts timestamptz NOT NULL,
           label text NOT NULL, kind text NOT NULL, created_at timestamptz NOT NULL)""",
    """CREATE TABLE anomalies (workspace_id text NOT NULL, kpi_id text NOT NULL,
           slice text NOT NULL, grain text NOT NULL, ts timestamptz NOT NULL,
           actual double precision, expected double precision, lo double precision,
           hi double precision, score double precision, severity text, kind text,
           favourable boolean, detected_at timestamptz NOT NULL,
           PRIMARY KEY (workspace_id, kpi_id, slice, grain, ts))""",
    """CREATE TABLE outbox (workspace_id text NOT NULL, notification_id text NOT NULL,
           channel text NOT NULL, payload jsonb NOT NULL, status text NOT NULL,
           attempts integer NOT NULL DEFAULT 0, next_attempt_at timestamptz NOT NULL,
           last_error text, created_at timestamptz NOT NULL, delivered_at timestamptz,
           PRIMARY KEY (workspace_id, notification_id, channel))""",
    """CREATE TABLE alert_rules (workspace_id text NOT NULL, rule_id text NOT NULL,
           definition jsonb NOT NULL, updated_at timestamptz NOT NULL,
           PRIMARY KEY (workspace_id, rule_id))""",
    """CREATE TABLE alert_instances (workspace_id text NOT NULL, fingerprint text NOT NULL,
           rule_id text NOT NULL, kpi_id text, state text NOT NULL, severity text,
           doc jsonb NOT NULL, updated_at timestamptz NOT NULL,
           PRIMARY KEY (workspace_id, fingerprint))""",
    "CREATE SEQUENCE alert_history_seq START 1",
    """CREATE TABLE alert_history (seq bigint NOT NULL, workspace_id text NOT NULL,
           fingerprint text NOT NULL, from_state text, to_state text NOT NULL,
           at_ts timestamptz NOT NULL, severity text, value double precision, detail text)""",
    "CREATE INDEX alert_history_fp ON alert_history (workspace_id, fingerprint, seq)",
    "CREATE SEQUENCE alert_ack_seq START 1",
    """CREATE TABLE alert_acks (seq bigint NOT NULL, workspace_id text NOT NULL,
           fingerprint text NOT NULL, ack_by text NOT NULL, at_ts timestamptz NOT NULL,
           comment text)""",
    """CREATE TABLE silences (workspace_id text NOT NULL, silence_id text NOT NULL,
           start_ts timestamptz NOT NULL, end_ts timestamptz NOT NULL, doc jsonb NOT NULL,
           created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
           PRIMARY KEY (workspace_id, silence_id))""",
    """CREATE TABLE alert_groups (workspace_id text NOT NULL, group_key text NOT NULL,
           doc jsonb NOT NULL, updated_at timestamptz NOT NULL,
           PRIMARY KEY (workspace_id, group_key))""",
    "CREATE SEQUENCE interaction_seq START 1",
    """CREATE TABLE interactions (seq bigint NOT NULL, workspace_id text NOT NULL,
           user_id text NOT NULL, role text, kind text NOT NULL, kpi_id text,
           filters json NOT NULL, at_ts timestamptz NOT NULL)""",
    "CREATE INDEX interactions_ws ON interactions (workspace_id, seq)",
    """CREATE TABLE insight_views (workspace_id text NOT NULL, user_id text NOT NULL,
           insight_key text NOT NULL, first_shown timestamptz NOT NULL,
           last_shown timestamptz NOT NULL, times integer NOT NULL,
           PRIMARY KEY (workspace_id, user_id, insight_key))""",
    """CREATE TABLE users (id text PRIMARY KEY, username text NOT NULL UNIQUE,
           password_hash text NOT NULL, role text NOT NULL, doc jsonb NOT NULL,
           created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
           disabled boolean NOT NULL DEFAULT false)""",
    """CREATE TABLE sessions (id text PRIMARY KEY, user_id text NOT NULL,
           family_id text NOT NULL, refresh_hash text NOT NULL UNIQUE,
           created_at timestamptz NOT NULL, last_seen timestamptz NOT NULL,
           expires_at timestamptz NOT NULL, revoked_at timestamptz,
           user_agent text NOT NULL DEFAULT '', address text NOT NULL DEFAULT '',
           rotated_from text)""",
    "CREATE INDEX sessions_family ON sessions (family_id)",
    "CREATE INDEX sessions_user ON sessions (user_id)",
    "CREATE TABLE login_failures (key text NOT NULL, at_ts timestamptz NOT NULL)",
    "CREATE INDEX login_failures_key ON login_failures (key, at_ts)",
    """CREATE TABLE dashboards (workspace_id text NOT NULL, id text NOT NULL,
           owner_id text NOT NULL, name text NOT NULL, spec jsonb NOT NULL,
           shared_with jsonb NOT NULL, created_at timestamptz NOT NULL,
           updated_at timestamptz NOT NULL, PRIMARY KEY (workspace_id, id))""",
    """CREATE TABLE memberships (workspace_id text NOT NULL, user_id text NOT NULL,
           role text NOT NULL, created_at timestamptz NOT NULL,
           PRIMARY KEY (workspace_id, user_id))""",
    "CREATE INDEX memberships_user ON memberships (user_id)",
    """CREATE TABLE ingest_tokens (workspace_id text NOT NULL, id text NOT NULL,
           name text NOT NULL, token_hash text NOT NULL UNIQUE, created_by text NOT NULL,
           created_at timestamptz NOT NULL, last_used_at timestamptz,
           revoked_at timestamptz, expires_at timestamptz, PRIMARY KEY (workspace_id, id))""",
]

_POINTS_COLUMNS = """(series_id bigint NOT NULL, ts timestamptz NOT NULL,
           value double precision NOT NULL, raw_value double precision, correction text,
           ingested_at timestamptz NOT NULL, correction_reason text,
           PRIMARY KEY (series_id, ts))"""


def points_sql(timescale: bool) -> list[str]:
    """The statements creating ``points``: a hypertable, or a partitioned table."""
    if timescale:
        return [f"CREATE TABLE points {_POINTS_COLUMNS}",
                "SELECT create_hypertable('points', 'ts', "
                "chunk_time_interval => interval '30 days')"]
    return [f"CREATE TABLE points {_POINTS_COLUMNS} PARTITION BY RANGE (ts)",
            "CREATE TABLE points_default PARTITION OF points DEFAULT"]


MIGRATIONS: dict[int, list[str]] = {
    9: [*SHIMS, *TABLES],
    # UNLOGGED: a running server's state, not data (lost at a server crash: buckets start
    # full, stored points are counted again)
    10: ["""CREATE UNLOGGED TABLE quota_state (workspace_id text PRIMARY KEY,
             bucket_level text, bucket_at timestamptz, stored bigint)"""],
}


def create_timescale(con: psycopg.Connection[Any]) -> bool:
    """Create the TimescaleDB extension when the server offers it and it loads; whether
    ``points`` can be a hypertable. Runs in a savepoint: a failure changes nothing."""
    if con.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
                   ).fetchone() is None:
        return False
    try:
        with con.transaction():
            con.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error:  # offered but not loadable (shared_preload_libraries)
        return False
    return True


def is_hypertable(con: psycopg.Connection[Any]) -> bool:
    """Whether ``points`` is a TimescaleDB hypertable (else natively partitioned)."""
    row = con.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = "
                      "to_regclass('points')").fetchone()
    return row is None and con.execute("SELECT to_regclass('points')").fetchone() != (None,)


def month_start(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, 1, tzinfo=UTC)


def next_month(t: datetime) -> datetime:
    return t.replace(year=t.year + t.month // 12, month=t.month % 12 + 1)


def partition_name(month: datetime) -> str:
    return f"points_p{month.year:04d}{month.month:02d}"


def existing_partitions(con: psycopg.Connection[Any]) -> set[str]:
    rows = con.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = "
                       "i.inhrelid WHERE i.inhparent = to_regclass('points')").fetchall()
    return {str(r[0]) for r in rows}


def ensure_partitions(con: psycopg.Connection[Any], months: Iterable[datetime],
                      known: set[str]) -> set[str]:
    """Create the monthly partitions of ``points`` for ``months`` (first instants, UTC) that
    do not exist yet; ``known`` is a cache of existing names, updated. Returns the names
    created. Runs in the caller's transaction (its locks are held until it ends).

    Rows of a new month that sit in ``points_default`` are moved into the new partition
    before it is attached (PostgreSQL refuses to attach a range the default holds rows of).
    """
    wanted = {partition_name(m): m for m in months}
    missing = {n: m for n, m in wanted.items() if n not in known}
    if not missing:
        return set()
    con.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
    known |= existing_partitions(con)
    created: set[str] = set()
    for name, month in sorted(missing.items()):
        if name in known:
            continue
        lo, hi = month, next_month(month)
        ident = pgsql.Identifier(name)
        con.execute(pgsql.SQL("CREATE TABLE {} (LIKE points INCLUDING DEFAULTS)").format(ident))
        con.execute(pgsql.SQL(
            "WITH moved AS (DELETE FROM points_default WHERE ts >= %s AND ts < %s RETURNING *) "
            "INSERT INTO {} SELECT * FROM moved").format(ident), [lo, hi])
        con.execute(pgsql.SQL("ALTER TABLE points ATTACH PARTITION {} FOR VALUES FROM ({}) "
                              "TO ({})").format(ident, pgsql.Literal(lo), pgsql.Literal(hi)))
        known.add(name)
        created.add(name)
    return created
