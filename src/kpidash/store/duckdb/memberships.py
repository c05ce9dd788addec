"""Memberships in the DuckDB store: a user's role in a workspace.

The store keeps rows only: it does not check that the user or the workspace exists, nor that
the role is one the accounts service knows (it never imports ``kpidash.auth``). Memberships
are deleted with their workspace (``delete_workspace``) and with their user
(``delete_user``), and never exported: users are global to a server. The SQL is shared with
the PostgreSQL store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from kpidash.errors import QueryError
from kpidash.store.duckdb.periods import from_epoch_us

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


class MembershipTables:
    """Mixed into DuckDBStore: the methods over memberships."""

    _con: duckdb.DuckDBPyConnection

    if TYPE_CHECKING:  # provided by DuckDBStore
        def transaction(self) -> AbstractContextManager[None]: ...

    def _m(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._con.execute(sql, list(params)).fetchall()

    def put_membership(self, workspace: str, user_id: str, role: str, now: datetime) -> None:
        """Make a user a member of a workspace with ``role``, or change their role (created_at kept)."""
        values = [_text(workspace, "workspace"), _text(user_id, "user_id"), _text(role, "role")]
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise QueryError(f"now must be a timezone-aware datetime, got {now!r}")
        with self.transaction():
            self._m("INSERT INTO memberships (workspace_id, user_id, role, created_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id, user_id) "
                    "DO UPDATE SET role = excluded.role", [*values, now])

    def delete_membership(self, workspace: str, user_id: str) -> bool:
        """Remove a user from a workspace; True if they were a member."""
        with self.transaction():
            rows = self._m("DELETE FROM memberships WHERE workspace_id = ? AND user_id = ? "
                           "RETURNING user_id", [workspace, user_id])
        return bool(rows)

    def memberships(self, workspace: str) -> list[dict[str, Any]]:
        """The members of a workspace (user_id, role, created_at), by user id."""
        rows = self._m("SELECT user_id, role, epoch_us(created_at) FROM memberships "
                       "WHERE workspace_id = ? ORDER BY user_id", [workspace])
        return [{"user_id": u, "role": r, "created_at": from_epoch_us(c)} for u, r, c in rows]

    def user_memberships(self, user_id: str) -> list[dict[str, Any]]:
        """A user's workspaces (workspace_id, name, role, created_at), by workspace id."""
        rows = self._m(
            "SELECT m.workspace_id, w.name, m.role, epoch_us(m.created_at) FROM memberships m "
            "JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = ? "
            "ORDER BY m.workspace_id", [user_id])
        return [{"workspace_id": w, "name": n, "role": r, "created_at": from_epoch_us(c)}
                for w, n, r, c in rows]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise QueryError(f"{name} must be a non-empty string, got {value!r}")
    return value
