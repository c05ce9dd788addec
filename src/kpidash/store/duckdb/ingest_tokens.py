"""Ingest tokens in the DuckDB store: long-lived credentials that write points into one
workspace.

The store keeps rows only: the secret arrives as its SHA-256 (``token_hash``), and the store
does not check that the creator or the workspace exists (it never imports ``kpidash.auth``).
A token row names its workspace; ``ingest_token_by_hash`` is the one lookup across
workspaces, since a secret is all a client presents. Rows are kept after revocation (for the
record), deleted with their workspace (``delete_workspace``, see ``MEMBER_TABLES``) and never
exported: an archive imported into another server must not carry working credentials.
The SQL is shared with the PostgreSQL store; only the unique-violation exception is a
dialect hook (overridden in store/postgres/accounts.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb

from kpidash.errors import Conflict, QueryError
from kpidash.store.duckdb.periods import from_epoch_us

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

_COLS = ("workspace_id, id, name, created_by, epoch_us(created_at), epoch_us(last_used_at), "
         "epoch_us(revoked_at), epoch_us(expires_at)")


class IngestTokenTables:
    """Mixed into DuckDBStore: the methods over ingest_tokens."""

    _con: duckdb.DuckDBPyConnection
    # dialect hook: what the driver raises when a PRIMARY KEY or UNIQUE constraint is violated
    _UNIQUE_VIOLATION: ClassVar[tuple[type[Exception], ...]] = (duckdb.ConstraintException,)

    if TYPE_CHECKING:  # provided by DuckDBStore
        def transaction(self) -> AbstractContextManager[None]: ...

    def _it(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._con.execute(sql, list(params)).fetchall()

    def add_ingest_token(self, workspace: str, row: Mapping[str, Any]) -> None:
        """Insert a token of ``workspace`` (id, name, token_hash, created_by, created_at,
        expires_at or None); Conflict if its id (in the workspace) or hash is taken."""
        values = [_text(workspace, "workspace"), _text(row.get("id"), "id"),
                  _text(row.get("name"), "name"), _text(row.get("token_hash"), "token_hash"),
                  _text(row.get("created_by"), "created_by"),
                  _aware(row.get("created_at"), "created_at"),
                  _aware(row.get("expires_at"), "expires_at", optional=True)]
        with self.transaction():
            conflict = Conflict(f"ingest token {values[1]!r} (or its secret) already exists")
            if self._it("SELECT 1 FROM ingest_tokens WHERE (workspace_id = ? AND id = ?) "
                        "OR token_hash = ?", [values[0], values[1], values[3]]):
                raise conflict
            try:
                self._it("INSERT INTO ingest_tokens (workspace_id, id, name, token_hash, "
                         "created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         values)
            except self._UNIQUE_VIOLATION:  # a concurrent insert won the race (PostgreSQL)
                raise conflict from None

    def ingest_tokens(self, workspace: str) -> list[dict[str, Any]]:
        """The tokens of a workspace, revoked ones included, by creation time then id; no
        hashes."""
        rows = self._it(f"SELECT {_COLS} FROM ingest_tokens WHERE workspace_id = ? "
                        "ORDER BY created_at, id", [workspace])
        return [_token(r) for r in rows]

    def ingest_token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The token whose secret has this SHA-256, with its ``workspace``, or None."""
        rows = self._it(f"SELECT {_COLS} FROM ingest_tokens WHERE token_hash = ?",
                        [token_hash])
        return _token(rows[0]) if rows else None

    def touch_ingest_token(self, workspace: str, token_id: str, now: datetime) -> None:
        """Record that the token was used at ``now``."""
        self._it("UPDATE ingest_tokens SET last_used_at = ? WHERE workspace_id = ? AND id = ?",
                 [_aware(now, "now"), workspace, token_id])

    def revoke_ingest_token(self, workspace: str, token_id: str, now: datetime) -> bool:
        """Revoke a token at ``now`` (a revoked one keeps its first revocation time); True if
        the workspace has it."""
        at = _aware(now, "now")
        with self.transaction():
            found = self._it("SELECT 1 FROM ingest_tokens WHERE workspace_id = ? AND id = ?",
                             [workspace, token_id])
            if found:
                self._it("UPDATE ingest_tokens SET revoked_at = ? WHERE workspace_id = ? "
                         "AND id = ? AND revoked_at IS NULL", [at, workspace, token_id])
        return bool(found)


def _token(r: Sequence[Any]) -> dict[str, Any]:
    ws, tid, name, by, created, used, revoked, expires = r
    return {"workspace": ws, "id": tid, "name": name, "created_by": by,
            "created_at": from_epoch_us(created), "last_used_at": _instant(used),
            "revoked_at": _instant(revoked), "expires_at": _instant(expires)}


def _instant(us: int | None) -> datetime | None:
    return None if us is None else from_epoch_us(us)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise QueryError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _aware(value: Any, name: str, *, optional: bool = False) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise QueryError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value
