"""Accounts in the DuckDB store: users, login sessions, failed logins and dashboards.

The store is generic here: it keeps rows and JSON documents and never imports
``kpidash.auth``; passwords arrive hashed and refresh tokens as their SHA-256.

Users are global (not scoped by workspace); dashboards belong to a workspace.

A *session* is a family of refresh-token rows. The first row of a family is written at login
(``family_id`` = its own id); each refresh adds a row with ``rotated_from`` = the row it
replaces. The *current* row of a family is the one nothing was rotated from. Family-wide
state (``last_seen``, ``revoked_at``) is written to every row of the family, so any row tells
it; rotated-out rows are kept so that a rotated-out token is recognised when it comes back.

The SQL is shared with the PostgreSQL store (through its DuckDB-like connection adapter),
except the few dialect hooks on :class:`AccountTables` (JSON list tests on ``shared_with``,
the unique-violation exception) that ``store/postgres/accounts.py`` overrides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb

from kpidash.errors import Conflict, QueryError
from kpidash.store.duckdb.periods import from_epoch_us

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

_USER_COLS = "id, username, password_hash, role, doc, epoch_us(created_at), " \
             "epoch_us(updated_at), disabled"
_USER_CHANGES = ("password_hash", "role", "doc", "disabled")
# one refresh-token row, with whether it is its family's current one
_SESSION_COLS = ("s.id, s.user_id, s.family_id, s.refresh_hash, epoch_us(s.created_at), "
                 "epoch_us(s.last_seen), epoch_us(s.expires_at), epoch_us(s.revoked_at), "
                 "s.user_agent, s.address, s.rotated_from, NOT EXISTS (SELECT 1 FROM sessions n "
                 "WHERE n.rotated_from = s.id) AS current")
_DASH_COLS = ("id, owner_id, name, spec, shared_with, epoch_us(created_at), "
              "epoch_us(updated_at)")


class AccountTables:
    """Mixed into DuckDBStore: the methods over users, sessions, login_failures and
    dashboards."""

    _con: duckdb.DuckDBPyConnection

    # dialect hooks (DuckDB here; PostgreSQL in store/postgres/accounts.py). One ``?`` each:
    # the user id. Whether a dashboard's shared_with (a JSON list of user ids) holds it …
    _SHARED_WITH_HAS: ClassVar[str] = "json_contains(shared_with, to_json(?::VARCHAR))"
    # … and shared_with without it (a JSON list, order kept)
    _SHARED_WITH_DROP: ClassVar[str] = (
        "to_json(list_filter(from_json(shared_with, '[\"VARCHAR\"]'), lambda x: x <> ?))")
    # what the driver raises when a PRIMARY KEY or UNIQUE constraint is violated
    _UNIQUE_VIOLATION: ClassVar[tuple[type[Exception], ...]] = (duckdb.ConstraintException,)

    if TYPE_CHECKING:  # provided by DuckDBStore
        def transaction(self) -> AbstractContextManager[None]: ...

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._con.execute(sql, list(params)).fetchall()

    # -- users ----------------------------------------------------------------------------

    def add_user(self, user: Mapping[str, Any]) -> None:
        """Insert a user (id, username, password_hash, role, doc, created_at, disabled);
        Conflict if the id or username is taken."""
        created = _aware(user.get("created_at"), "created_at")
        with self.transaction():
            taken = self._all("SELECT id, username FROM users WHERE id = ? OR username = ?",
                              [user["id"], user["username"]])
            if taken:
                key = "username" if any(t[1] == user["username"] for t in taken) else "id"
                raise Conflict(f"user {key} {user[key]!r} is already taken; choose another")
            try:
                self._all("INSERT INTO users (id, username, password_hash, role, doc, "
                          "created_at, updated_at, disabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
                    _str(user.get("id"), "id"), _str(user.get("username"), "username"),
                    _str(user.get("password_hash"), "password_hash"),
                    _str(user.get("role"), "role"), _dumps(user.get("doc") or {}), created,
                    created, bool(user.get("disabled"))])
            except self._UNIQUE_VIOLATION:  # a concurrent insert won the race (PostgreSQL)
                raise Conflict(f"user id {user['id']!r} or username {user['username']!r} is "
                               "already taken; choose another") from None

    def user(self, user_id: str) -> dict[str, Any] | None:
        """One user by id, or None."""
        rows = self._all(f"SELECT {_USER_COLS} FROM users WHERE id = ?", [user_id])
        return _user(rows[0]) if rows else None

    def user_by_name(self, username: str) -> dict[str, Any] | None:
        """One user by username (exact match), or None."""
        rows = self._all(f"SELECT {_USER_COLS} FROM users WHERE username = ?", [username])
        return _user(rows[0]) if rows else None

    def users(self) -> list[dict[str, Any]]:
        """Every user, by username."""
        return [_user(r) for r in self._all(f"SELECT {_USER_COLS} FROM users ORDER BY username")]

    def update_user(self, user_id: str, changes: Mapping[str, Any], now: datetime) -> bool:
        """Set some of password_hash, role, doc (replaced whole), disabled; True if the user
        exists."""
        unknown = sorted(set(changes) - set(_USER_CHANGES))
        if unknown:
            raise QueryError(f"cannot update user field(s) {', '.join(unknown)}; "
                             f"expected some of {', '.join(_USER_CHANGES)}")
        sets: list[str] = ["updated_at = ?"]
        params: list[Any] = [_aware(now, "now")]
        for key in _USER_CHANGES:
            if key in changes:
                value = changes[key]
                sets.append(f"{key} = ?")
                params.append(_dumps(value) if key == "doc" else
                              bool(value) if key == "disabled" else _str(value, key))
        with self.transaction():
            rows = self._all(f"UPDATE users SET {', '.join(sets)} WHERE id = ? RETURNING id",
                             [*params, user_id])
        return bool(rows)

    def delete_user(self, user_id: str) -> bool:
        """Delete a user with their sessions, memberships and the dashboards they own (every
        workspace), and drop them from dashboards shared with them; True if the user existed."""
        with self.transaction():
            self._all("DELETE FROM sessions WHERE user_id = ?", [user_id])
            self._all("DELETE FROM memberships WHERE user_id = ?", [user_id])
            self._all("DELETE FROM dashboards WHERE owner_id = ?", [user_id])
            self._all(f"UPDATE dashboards SET shared_with = {self._SHARED_WITH_DROP} "
                      f"WHERE {self._SHARED_WITH_HAS}", [user_id, user_id])
            rows = self._all("DELETE FROM users WHERE id = ? RETURNING id", [user_id])
        return bool(rows)

    # -- sessions (families of refresh-token rows) -------------------------------------------

    def add_session(self, row: Mapping[str, Any]) -> bool:
        """Insert a refresh-token row (id, user_id, family_id, refresh_hash, created_at,
        last_seen, expires_at, user_agent, address, rotated_from); with ``rotated_from`` it
        becomes its family's current row only if that row still is current and unrevoked
        (else False and nothing is written). Conflict if the id or hash exists."""
        rotated_from = row.get("rotated_from")
        values = [_str(row.get("id"), "id"), _str(row.get("user_id"), "user_id"),
                  _str(row.get("family_id"), "family_id"),
                  _str(row.get("refresh_hash"), "refresh_hash"),
                  _aware(row.get("created_at"), "created_at"),
                  _aware(row.get("last_seen"), "last_seen"),
                  _aware(row.get("expires_at"), "expires_at"),
                  str(row.get("user_agent") or ""), str(row.get("address") or ""), rotated_from]
        with self.transaction():
            if rotated_from is not None:
                prev = self.session_row(token_id=str(rotated_from))
                if (prev is None or not prev["current"] or prev["revoked_at"] is not None
                        or prev["family_id"] != row["family_id"]):
                    return False
                # family-wide state moves with the family
                self._all("UPDATE sessions SET last_seen = ? WHERE family_id = ?",
                          [values[5], values[2]])
            try:
                self._all("INSERT INTO sessions (id, user_id, family_id, refresh_hash, "
                          "created_at, last_seen, expires_at, user_agent, address, rotated_from) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
            except self._UNIQUE_VIOLATION:
                raise Conflict("a session row with this id or refresh hash already exists"
                               ) from None
        return True

    def session_row(self, *, token_id: str | None = None, refresh_hash: str | None = None,
                    ) -> dict[str, Any] | None:
        """One refresh-token row by its id or refresh hash, with ``current`` (bool), or None."""
        if (token_id is None) == (refresh_hash is None):
            raise QueryError("session_row needs exactly one of token_id or refresh_hash")
        column, value = (("id", token_id) if token_id is not None
                         else ("refresh_hash", refresh_hash))
        rows = self._all(f"SELECT {_SESSION_COLS} FROM sessions s WHERE s.{column} = ?", [value])
        return _session_row(rows[0]) if rows else None

    def session(self, family_id: str) -> dict[str, Any] | None:
        """A session (family) by id: its current row with ``id`` = family id, ``created_at``
        of the login, ``token_id`` = the current row's id; or None."""
        found = self._families("s.family_id = ?", [family_id])
        return found[0] if found else None

    def sessions(self, user_id: str) -> list[dict[str, Any]]:
        """A user's sessions (as :meth:`session`), newest login first."""
        return self._families("s.user_id = ?", [user_id])

    def _families(self, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        rows = self._all(
            f"SELECT {_SESSION_COLS}, (SELECT epoch_us(min(f.created_at)) FROM sessions f "
            f"WHERE f.family_id = s.family_id) AS login FROM sessions s WHERE {where} "
            "AND NOT EXISTS (SELECT 1 FROM sessions n WHERE n.rotated_from = s.id) "
            "ORDER BY login DESC, s.family_id", params)
        out = []
        for r in rows:
            row = _session_row(r[:-1])
            out.append({**row, "id": row["family_id"], "token_id": row["id"],
                        "created_at": from_epoch_us(r[-1])})
        return out

    def touch_session(self, family_id: str, now: datetime) -> None:
        """Set a session's last_seen to ``now``."""
        with self.transaction():
            self._all("UPDATE sessions SET last_seen = ? WHERE family_id = ?",
                      [_aware(now, "now"), family_id])

    def revoke_sessions(self, now: datetime, *, user_id: str | None = None,
                        family_id: str | None = None) -> int:
        """Revoke the sessions of a user, or one session, not yet revoked; returns how many."""
        if user_id is None and family_id is None:
            raise QueryError("revoke_sessions needs a user_id or a family_id")
        where = "revoked_at IS NULL"
        params: list[Any] = []
        for column, value in (("user_id", user_id), ("family_id", family_id)):
            if value is not None:
                where += f" AND {column} = ?"
                params.append(value)
        with self.transaction():
            n = self._all(f"SELECT count(DISTINCT family_id) FROM sessions WHERE {where}", params)
            self._all(f"UPDATE sessions SET revoked_at = ? WHERE {where}",
                      [_aware(now, "now"), *params])
        return int(n[0][0])

    # -- failed logins ------------------------------------------------------------------------

    def add_login_failures(self, keys: Sequence[str], at: datetime) -> None:
        """Record one failed login at ``at`` under each key (e.g. ``user:ana``, ``addr:…``)."""
        if not keys:
            return
        at = _aware(at, "at")
        with self.transaction():
            self._con.executemany("INSERT INTO login_failures (key, at_ts) VALUES (?, ?)",
                                  [[str(k), at] for k in keys])

    def login_failures(self, keys: Sequence[str], since: datetime,
                       ) -> dict[str, list[datetime]]:
        """Times of failures at or after ``since`` per key (every key present), oldest first."""
        out: dict[str, list[datetime]] = {str(k): [] for k in keys}
        if not out:
            return out
        rows = self._all(
            f"SELECT key, epoch_us(at_ts) FROM login_failures WHERE key IN "
            f"({', '.join('?' * len(out))}) AND at_ts >= ? ORDER BY at_ts",
            [*out, _aware(since, "since")])
        for key, us in rows:
            out[key].append(from_epoch_us(us))
        return out

    def clear_login_failures(self, keys: Sequence[str] | None = None, *,
                             before: datetime | None = None) -> int:
        """Forget failures of the given keys (None: every key), or only those before
        ``before``; returns how many."""
        where = "true"
        params: list[Any] = []
        if keys is not None:
            if not keys:
                return 0
            where += f" AND key IN ({', '.join('?' * len(keys))})"
            params += [str(k) for k in keys]
        if before is not None:
            where += " AND at_ts < ?"
            params.append(_aware(before, "before"))
        with self.transaction():
            rows = self._all(f"DELETE FROM login_failures WHERE {where} RETURNING 1", params)
        return len(rows)

    # -- dashboards (per workspace) ------------------------------------------------------------

    def put_dashboard(self, workspace: str, doc: Mapping[str, Any]) -> None:
        """Insert or replace a dashboard by id (id, owner_id, name, spec, shared_with,
        created_at, updated_at)."""
        values = [workspace, _str(doc.get("id"), "id"), _str(doc.get("owner_id"), "owner_id"),
                  _str(doc.get("name"), "name"), _dumps(doc.get("spec") or {}),
                  _dumps([str(u) for u in doc.get("shared_with") or ()]),
                  _aware(doc.get("created_at"), "created_at"),
                  _aware(doc.get("updated_at"), "updated_at")]
        with self.transaction():
            self._all("INSERT INTO dashboards (workspace_id, id, owner_id, name, spec, "
                      "shared_with, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (workspace_id, id) DO UPDATE SET owner_id = excluded.owner_id, "
                      "name = excluded.name, spec = excluded.spec, "
                      "shared_with = excluded.shared_with, created_at = excluded.created_at, "
                      "updated_at = excluded.updated_at", values)

    def dashboard(self, workspace: str, dashboard_id: str) -> dict[str, Any] | None:
        """One dashboard by id, or None."""
        rows = self._all(f"SELECT {_DASH_COLS} FROM dashboards WHERE workspace_id = ? AND id = ?",
                         [workspace, dashboard_id])
        return _dashboard(rows[0]) if rows else None

    def dashboards(self, workspace: str, *, visible_to: str | None = None,
                   ) -> list[dict[str, Any]]:
        """Dashboards by name then id; with ``visible_to``, those the user owns or that are
        shared with them."""
        sql = f"SELECT {_DASH_COLS} FROM dashboards WHERE workspace_id = ?"
        params: list[Any] = [workspace]
        if visible_to is not None:
            sql += f" AND (owner_id = ? OR {self._SHARED_WITH_HAS})"
            params += [visible_to, visible_to]
        return [_dashboard(r) for r in self._all(sql + " ORDER BY name, id", params)]

    def delete_dashboard(self, workspace: str, dashboard_id: str) -> bool:
        """Delete a dashboard; True if it existed."""
        with self.transaction():
            rows = self._all("DELETE FROM dashboards WHERE workspace_id = ? AND id = ? "
                             "RETURNING id", [workspace, dashboard_id])
        return bool(rows)


def _user(r: Sequence[Any]) -> dict[str, Any]:
    return {"id": r[0], "username": r[1], "password_hash": r[2], "role": r[3],
            "doc": json.loads(r[4]), "created_at": from_epoch_us(r[5]),
            "updated_at": from_epoch_us(r[6]), "disabled": bool(r[7])}


def _session_row(r: Sequence[Any]) -> dict[str, Any]:
    return {"id": r[0], "user_id": r[1], "family_id": r[2], "refresh_hash": r[3],
            "created_at": from_epoch_us(r[4]), "last_seen": from_epoch_us(r[5]),
            "expires_at": from_epoch_us(r[6]),
            "revoked_at": None if r[7] is None else from_epoch_us(r[7]),
            "user_agent": r[8], "address": r[9], "rotated_from": r[10], "current": bool(r[11])}


def _dashboard(r: Sequence[Any]) -> dict[str, Any]:
    return {"id": r[0], "owner_id": r[1], "name": r[2], "spec": json.loads(r[3]),
            "shared_with": json.loads(r[4]), "created_at": from_epoch_us(r[5]),
            "updated_at": from_epoch_us(r[6])}


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise QueryError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _aware(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise QueryError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value
