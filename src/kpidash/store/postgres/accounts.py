"""Accounts on PostgreSQL: ``PostgresAccountsDialect``, the dialect hooks of the accounts area.

NOTE for ``PostgresStore``: list ``PostgresAccountsDialect`` among its bases *before* the shared
mixins (``AccountTables``, ``IngestTokenTables``), so that its attributes win in the MRO.

Users, sessions, failed logins, dashboards, memberships, ingest tokens and the outbox run the
shared SQL of ``store/duckdb/{accounts,memberships,ingest_tokens,outbox}.py`` through the
connection adapter (the outbox's set-based enqueue through ``RowWrites._write``, overridden by
``PostgresAlertsDialect``). What differs is overridden here:

- ``dashboards.shared_with`` is ``jsonb``: a JSON array of user ids contains a user when
  ``shared_with @> to_jsonb(id::text)`` (an array contains a primitive equal to one of its
  elements), and a user is removed by re-aggregating the other elements in their order
  (``'[]'`` when none is left, as ``jsonb_agg`` of nothing is NULL);
- a duplicate key raises ``psycopg.errors.UniqueViolation`` (the mixins turn it into
  ``Conflict``, so a concurrent insert that wins the race between the check and the insert
  still gives the caller a Conflict).
"""

from __future__ import annotations

from typing import ClassVar

import psycopg

__all__ = ["PostgresAccountsDialect"]


class PostgresAccountsDialect:
    """Mixed into PostgresStore before the shared account mixins: their PostgreSQL hooks."""

    _SHARED_WITH_HAS: ClassVar[str] = "shared_with @> to_jsonb(?::text)"
    _SHARED_WITH_DROP: ClassVar[str] = (
        "coalesce((SELECT jsonb_agg(e.v ORDER BY e.i) FROM jsonb_array_elements(shared_with) "
        "WITH ORDINALITY AS e(v, i) WHERE e.v <> to_jsonb(?::text)), '[]'::jsonb)")
    _UNIQUE_VIOLATION: ClassVar[tuple[type[Exception], ...]] = (psycopg.errors.UniqueViolation,)
