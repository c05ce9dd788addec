"""The Store protocol: everything kpidash persists goes through these methods.

Every read and write is scoped by workspace. A store is used from one thread at a time;
``transaction()`` makes a group of writes atomic (a rejected file writes nothing).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from kpidash.core.aggregate import AggRows
from kpidash.core.batch import CleanBatch
from kpidash.core.quota import QuotaState
from kpidash.errors import ConfigError
from kpidash.model import Aggregation, Annotation, Grain, OutboxItem
from kpidash.store.coordination import Leadership, Listener, OnMessage


@dataclass(frozen=True)
class WriteStats:
    written: int
    replaced: int
    new_series: int


@dataclass(frozen=True)
class AggSpec:
    """One simple KPI to aggregate."""

    kpi_id: str
    aggregation: Aggregation


class Store(Protocol):
    url: str
    shared: bool
    """Whether several processes may use this store at once (PostgreSQL: True; an embedded
    DuckDB file is opened by one process)."""

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Atomic group of writes; nested calls join the outer transaction."""
        ...

    def schema_version(self) -> int: ...

    def ensure_workspace(self, workspace: str, name: str | None = None) -> None: ...

    # -- workspaces (records; delete, export and import every row a workspace owns) --------

    def create_workspace(self, workspace: str, name: str, settings: Mapping[str, Any] | None,
                         now: datetime) -> None:
        """Create a workspace (settings validated, defaults filled); Conflict if it exists."""
        ...

    def workspace(self, workspace: str) -> dict[str, Any] | None:
        """One workspace record (id, name, settings, created_at, updated_at), or None."""
        ...

    def workspaces(self) -> list[dict[str, Any]]:
        """Every workspace record, by id."""
        ...

    def update_workspace(self, workspace: str, *, name: str | None = None,
                         settings: Mapping[str, Any] | None = None, now: datetime) -> bool:
        """Rename and/or change settings (others kept), updated_at = now; True if it exists."""
        ...

    def delete_workspace(self, workspace: str) -> dict[str, int]:
        """Delete a workspace, every row it owns and its memberships, atomically; rows per table."""
        ...

    def export_workspace(self, workspace: str) -> Iterator[tuple[str, pa.Table]]:
        """(table name, rows of the workspace without its workspace column) for every table."""
        ...

    def import_workspace(self, workspace: str, tables: Mapping[str, pa.Table],
                         now: datetime) -> dict[str, int]:
        """Load exported tables into a new or empty workspace, all or nothing; rows per table."""
        ...

    def export_global(self) -> Iterator[tuple[str, pa.Table]]:
        """(table name, every row, ids kept) of each server-wide table: workspace records,
        users, sessions, login failures, memberships, ingest tokens (with password and token
        hashes: for copying a whole store, ``kpidash migrate``, never for an archive)."""
        ...

    def import_global(self, tables: Mapping[str, pa.Table]) -> dict[str, int]:
        """Load tables of ``export_global``, ids kept, all or nothing; workspace records are
        created or overwritten, the other tables must be empty (Conflict); rows per table."""
        ...

    def put_kpis(self, workspace: str, definitions: Sequence[Mapping[str, Any]],
                 now: datetime) -> None:
        """Insert or replace KPI definitions (JSON-able mappings with an ``id``)."""
        ...

    def get_kpis(self, workspace: str) -> list[dict[str, Any]]: ...

    def delete_kpi(self, workspace: str, kpi_id: str, purge: bool = False) -> bool:
        """Delete a definition (and with ``purge`` its series and points); False if absent."""
        ...

    def write_points(self, workspace: str, batch: CleanBatch, now: datetime) -> WriteStats:
        """Store a validated batch; a point with the same (kpi, series, ts) replaces the old one.

        Within a batch the last occurrence of a duplicate key wins.
        """
        ...

    def aggregate(self, workspace: str, specs: Sequence[AggSpec], grain: Grain, tz: str,
                  start: datetime, end: datetime, filters: Mapping[str, Sequence[str]],
                  group_by: str | None) -> dict[str, AggRows]:
        """Aggregate simple KPIs per period key (see core.aggregate) and group."""
        ...

    def read_points(self, workspace: str, kpi_id: str, start: datetime | None = None,
                    end: datetime | None = None) -> pa.Table:
        """Points of a KPI: ts, value, raw_value, correction, correction_reason, series_key,
        ingested_at and one column per dimension."""
        ...

    def apply_corrections(self, workspace: str, corrections: pa.Table, now: datetime) -> int:
        """Correct stored points (series_key, ts, value, method, reason); raw values kept."""
        ...

    def revert_corrections(self, workspace: str, kpi_id: str, now: datetime,
                           start: datetime | None = None, end: datetime | None = None) -> int:
        """Restore the raw values of corrected points; returns how many."""
        ...

    def correction_log(self, workspace: str, kpi_id: str | None = None) -> pa.Table:
        """Every correction applied or reverted (the audit trail)."""
        ...

    def add_annotation(self, workspace: str, annotation: Annotation, now: datetime) -> int: ...

    def annotations(self, workspace: str, kpi_id: str | None = None) -> list[Annotation]: ...

    def delete_annotation(self, workspace: str, annotation_id: int) -> bool: ...

    def put_anomalies(self, workspace: str, rows: pa.Table, now: datetime) -> int:
        """Store anomalies once per (kpi, slice, grain, ts); returns how many were new."""
        ...

    def anomalies(self, workspace: str, kpi_id: str | None = None,
                  since: datetime | None = None) -> pa.Table: ...

    def enqueue(self, workspace: str, items: list[OutboxItem], now: datetime) -> int:
        """Queue notifications for delivery; an item already queued is left as it is."""
        ...

    def due(self, workspace: str, now: datetime, limit: int = 100) -> list[OutboxItem]: ...

    def record_delivery(self, workspace: str, item: OutboxItem, status: str, now: datetime,
                        next_attempt_at: datetime | None = None, error: str | None = None,
                        ) -> None: ...

    def outbox(self, workspace: str, status: str | None = None) -> list[OutboxItem]: ...

    # -- alerting state (JSON documents; the store does not know the alert model) ----------

    def put_alert_rules(self, workspace: str, rules: Sequence[Mapping[str, Any]],
                        now: datetime) -> None:
        """Insert or replace alert rule definitions (JSON-able mappings with an ``id``)."""
        ...

    def alert_rules(self, workspace: str) -> list[dict[str, Any]]:
        """Alert rule definitions, ordered by id."""
        ...

    def delete_alert_rule(self, workspace: str, rule_id: str) -> bool:
        """Delete a rule with its alerts, their history and acknowledgements; True if it existed."""
        ...

    def put_alert_instances(self, workspace: str, docs: Sequence[Mapping[str, Any]],
                            now: datetime) -> None:
        """Insert or replace alert documents by fingerprint (keys rule_id, kpi_id, state,
        severity)."""
        ...

    def alert_instances(self, workspace: str, *, rule_id: str | None = None,
                        states: Sequence[str] | None = None, fingerprint: str | None = None,
                        ) -> list[dict[str, Any]]:
        """Alert documents ordered by fingerprint, optionally filtered."""
        ...

    def add_alert_history(self, workspace: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append transitions (fingerprint, from_state, to_state, at, severity, value, detail)."""
        ...

    def alert_history(self, workspace: str, fingerprint: str | None = None,
                      since: datetime | None = None, limit: int | None = None,
                      ) -> list[dict[str, Any]]:
        """Transitions oldest first; ``limit`` keeps the latest ones; a missing value is NaN."""
        ...

    def add_acknowledgement(self, workspace: str, fingerprint: str, by: str, at: datetime,
                            comment: str) -> None:
        """Log an acknowledgement of an alert."""
        ...

    def acknowledgements(self, workspace: str, fingerprint: str | None = None,
                         ) -> list[dict[str, Any]]:
        """Acknowledgements (fingerprint, by, at, comment), oldest first."""
        ...

    def put_silence(self, workspace: str, doc: Mapping[str, Any], now: datetime) -> None:
        """Insert or replace a silence by id (start/end: datetimes or ISO strings with offset)."""
        ...

    def silences(self, workspace: str, *, active_at: datetime | None = None,
                 ) -> list[dict[str, Any]]:
        """Silence documents by start then id; with ``active_at``, those in force then."""
        ...

    def delete_silence(self, workspace: str, silence_id: str) -> bool:
        """Delete a silence; True if it existed."""
        ...

    def alert_groups(self, workspace: str) -> dict[str, dict[str, Any]]:
        """Notification group states by group key."""
        ...

    def put_alert_groups(self, workspace: str,
                         groups: Mapping[str, Mapping[str, Any] | None], now: datetime) -> None:
        """Insert or replace group states; a None value deletes that group."""
        ...

    # -- usage (interactions and the insights shown to each user) ---------------------------

    def record_interactions(self, workspace: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append interactions (user, role, kind, kpi_id, filters, at) in the given order."""
        ...

    def interactions(self, workspace: str, *, user: str | None = None,
                     since: datetime | None = None, kinds: Sequence[str] | None = None,
                     ) -> list[dict[str, Any]]:
        """Interactions oldest first; filters as dict[str, list[str]], at timezone-aware."""
        ...

    def mark_insights_shown(self, workspace: str, user: str, keys: Sequence[str],
                            now: datetime) -> None:
        """Count one showing of each insight key for a user (first shown kept, last = now)."""
        ...

    def insight_views(self, workspace: str, user: str) -> dict[str, tuple[int, datetime]]:
        """Insight key → (times shown, last shown) for one user."""
        ...

    # -- accounts (users and sessions are global; dashboards per workspace) -----------------

    def add_user(self, user: Mapping[str, Any]) -> None:
        """Insert a user (id, username, password_hash, role, doc, created_at, disabled); Conflict if taken."""
        ...

    def user(self, user_id: str) -> dict[str, Any] | None:
        """One user by id (the fields above plus updated_at), or None."""
        ...

    def user_by_name(self, username: str) -> dict[str, Any] | None:
        """One user by exact username, or None."""
        ...

    def users(self) -> list[dict[str, Any]]:
        """Every user, by username."""
        ...

    def update_user(self, user_id: str, changes: Mapping[str, Any], now: datetime) -> bool:
        """Set some of password_hash, role, doc (whole), disabled; True if the user exists."""
        ...

    def delete_user(self, user_id: str) -> bool:
        """Delete a user with sessions, memberships, owned dashboards; unshare them; True if found."""
        ...

    # -- memberships (a user's role in a workspace; deleted with either, never exported) ---

    def put_membership(self, workspace: str, user_id: str, role: str, now: datetime) -> None:
        """Make a user a member of a workspace with ``role``, or change their role."""
        ...

    def delete_membership(self, workspace: str, user_id: str) -> bool:
        """Remove a user from a workspace; True if they were a member."""
        ...

    def memberships(self, workspace: str) -> list[dict[str, Any]]:
        """The members of a workspace (user_id, role, created_at), by user id."""
        ...

    def user_memberships(self, user_id: str) -> list[dict[str, Any]]:
        """A user's workspaces (workspace_id, name, role, created_at), by workspace id."""
        ...

    def add_session(self, row: Mapping[str, Any]) -> bool:
        """Insert a refresh-token row; with rotated_from, only if that row is current and live."""
        ...

    def session_row(self, *, token_id: str | None = None, refresh_hash: str | None = None,
                    ) -> dict[str, Any] | None:
        """One refresh-token row by id or refresh hash, with ``current`` (bool), or None."""
        ...

    def session(self, family_id: str) -> dict[str, Any] | None:
        """A session (token family) by id: its current row, login created_at, token_id."""
        ...

    def sessions(self, user_id: str) -> list[dict[str, Any]]:
        """A user's sessions (as ``session``), newest login first."""
        ...

    def touch_session(self, family_id: str, now: datetime) -> None:
        """Set a session's last_seen to ``now``."""
        ...

    def revoke_sessions(self, now: datetime, *, user_id: str | None = None,
                        family_id: str | None = None) -> int:
        """Revoke a user's sessions or one session (not yet revoked); returns how many."""
        ...

    def add_login_failures(self, keys: Sequence[str], at: datetime) -> None:
        """Record one failed login at ``at`` under each key."""
        ...

    def login_failures(self, keys: Sequence[str], since: datetime,
                       ) -> dict[str, list[datetime]]:
        """Failure times at or after ``since`` for every key given, oldest first."""
        ...

    def clear_login_failures(self, keys: Sequence[str] | None = None, *,
                             before: datetime | None = None) -> int:
        """Forget failures of some keys (None: all), or only those before ``before``."""
        ...

    def put_dashboard(self, workspace: str, doc: Mapping[str, Any]) -> None:
        """Insert or replace a dashboard (id, owner_id, name, spec, shared_with, times) by id."""
        ...

    def dashboard(self, workspace: str, dashboard_id: str) -> dict[str, Any] | None:
        """One dashboard by id, or None."""
        ...

    def dashboards(self, workspace: str, *, visible_to: str | None = None,
                   ) -> list[dict[str, Any]]:
        """Dashboards by name then id; with ``visible_to``, owned by or shared with that user."""
        ...

    def delete_dashboard(self, workspace: str, dashboard_id: str) -> bool:
        """Delete a dashboard; True if it existed."""
        ...

    # -- ingest tokens (write-only credentials of one workspace; deleted with it, never
    # exported; the secret's SHA-256 only) -------------------------------------------------

    def add_ingest_token(self, workspace: str, row: Mapping[str, Any]) -> None:
        """Insert a token (id, name, token_hash, created_by, created_at, expires_at|None)."""
        ...

    def ingest_tokens(self, workspace: str) -> list[dict[str, Any]]:
        """A workspace's tokens (revoked too), by created_at then id; no hashes."""
        ...

    def ingest_token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The token with this hash, with its ``workspace`` (any workspace), or None."""
        ...

    def touch_ingest_token(self, workspace: str, token_id: str, now: datetime) -> None:
        """Set a token's last_used_at."""
        ...

    def revoke_ingest_token(self, workspace: str, token_id: str, now: datetime) -> bool:
        """Set revoked_at unless already set; True if the workspace has the token."""
        ...

    def last_seen(self, workspace: str, kpi_ids: Sequence[str], by: str | None = None,
                  ) -> dict[tuple[str, str | None], datetime]:
        """Latest point time per (kpi, value of dimension ``by`` or None)."""
        ...

    def point_count(self, workspace: str, kpi_id: str | None = None) -> int: ...

    def series_count(self, workspace: str, kpi_id: str | None = None) -> int: ...

    def time_range(self, workspace: str, kpi_ids: Sequence[str] | None = None,
                   ) -> tuple[datetime, datetime] | None:
        """(first ts, last ts) of the stored points, or None when there are none."""
        ...

    # -- quota state (store/duckdb/quota_state.py) -------------------------------------------

    def quota_state(self, workspace: str, *, lock: bool = False) -> QuotaState:
        """What the servers remember of a workspace's quotas (empty when nothing yet);
        ``lock``: its row stays locked until the current transaction ends."""
        ...

    def put_quota_state(self, workspace: str, state: QuotaState) -> None: ...

    # -- coordination between processes sharing the store (store/coordination.py) ------------

    def publish(self, message: str) -> None:
        """Send ``message`` (≤ MAX_MESSAGE_BYTES) to every listener on this store, the caller's
        own included; inside a transaction, only when and if it commits."""
        ...

    def listen(self, on_message: OnMessage) -> Listener:
        """Call ``on_message`` (from a thread) with every published message, None after a
        reconnection lost some; until the listener is closed."""
        ...

    def leadership(self, name: str) -> Leadership:
        """A lock named ``name`` that one process at a time holds (see Leadership)."""
        ...


SERVER_SCHEMES = ("postgresql:", "postgres:")
"""URL prefixes of a store on a database server (PostgreSQL); anything else is DuckDB."""


def redact_url(url: str) -> str:
    """A store URL without its password (for messages, reports and health): DuckDB paths
    unchanged, ``postgresql://user:***@host/db``."""
    if not url.startswith(SERVER_SCHEMES):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@",
                                                                 ":***@")))


def open_store(url: str, **options: Any) -> Store:
    """Open a store by URL: ``duckdb:PATH``, ``duckdb::memory:``, a bare path or ``:memory:``;
    ``postgresql://user:password@host:port/database`` (or ``postgres://``) for PostgreSQL."""
    if url.startswith(SERVER_SCHEMES):
        from kpidash.store.postgres import PostgresStore

        return PostgresStore(url, **options)
    path = url.removeprefix("duckdb:")
    if not path:
        raise ConfigError("empty store URL; use a path such as ./kpidash.duckdb or :memory:")
    from kpidash.store.duckdb import DuckDBStore

    if path != ":memory:":
        parent = Path(path).expanduser().resolve().parent
        if not parent.is_dir():
            raise ConfigError(f"cannot create the database {path!r}: folder {parent} does not "
                              "exist")
    return DuckDBStore(path, **options)
