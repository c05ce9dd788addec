"""Ingest tokens, for the accounts service (mixed into :class:`kpidash.auth.Accounts`).

A user's access token lives 15 minutes, so machines that push data — Telegraf, an InfluxDB
client, a nightly batch job — get an *ingest token* instead: a long-lived secret bound to one
workspace that can only write points there (the API accepts it on the ingest routes only,
with the rights of an analyst of that workspace).

* A workspace's admins (and server admins) create, list and revoke its tokens; anyone else
  gets NotFound (not a member: existence never leaks) or Forbidden (a member below admin).
* The secret is ``kpi_`` followed by 256 random bits (URL-safe base64); it is returned once,
  by :meth:`IngestTokenAccounts.create_ingest_token`, and only its SHA-256 is stored, like
  a refresh token's. The prefix makes a leaked one easy to recognise (secret scanners, logs).
* A token works until it is revoked or reaches its optional ``expires_at``. Revoked tokens
  stay listed (with ``revoked_at``) for the record; they go with their workspace. Removing
  the member who created a token does not revoke it: the token belongs to the workspace.
* :meth:`IngestTokenAccounts.verify_ingest_token` touches ``last_used_at`` at most once a
  minute, so a busy writer does not cost a database write per batch.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kpidash.auth.roles import Role
from kpidash.errors import Conflict, Forbidden, InputError, InvalidToken, NotFound

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kpidash.clock import Clock
    from kpidash.store.base import Store

INGEST_TOKEN_PREFIX = "kpi_"
"""How every ingest token's secret starts (a user's access token is a JWT, ``eyJ…``)."""
INGEST_ROLE = Role.ANALYST
"""What an ingest token may do in its workspace: what an analyst may do on the ingest routes."""
TOUCH_EVERY = timedelta(minutes=1)
MAX_NAME_LENGTH = 100
MAX_ACTIVE_TOKENS = 100
_MAX_SECRET_LENGTH = 256
_UNKNOWN = "ingest token not recognised: create one with POST " \
           "/api/v1/workspaces/{workspace}/ingest-tokens (workspace admins)"


def new_ingest_secret() -> str:
    """A fresh secret: the prefix and 256 random bits, URL-safe."""
    return INGEST_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_ingest_secret(secret: str) -> str:
    """The SHA-256 (hex) under which a secret is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class IngestToken:
    """A token as its workspace's admins see it (never its secret nor hash); ``state`` is
    ``active``, ``revoked`` or ``expired`` at the time it was read."""

    id: str
    workspace: str
    name: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None
    state: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "workspace": self.workspace, "name": self.name,
                "created_by": self.created_by, "created_at": _iso(self.created_at),
                "last_used_at": _iso(self.last_used_at), "revoked_at": _iso(self.revoked_at),
                "expires_at": _iso(self.expires_at), "state": self.state}


@dataclass(frozen=True)
class IssuedIngestToken:
    """A token just created, with its secret — the only time the secret is available."""

    token: IngestToken
    secret: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.token.to_dict(), "token": self.secret}


@dataclass(frozen=True)
class IngestGrant:
    """What a valid ingest token allows: writing points into ``workspace`` with the rights of
    :data:`INGEST_ROLE` there. ``expires_at`` (or None) bounds how long it may be cached."""

    workspace: str
    token_id: str
    name: str
    expires_at: datetime | None

    @property
    def role(self) -> Role:
        return INGEST_ROLE


def _state(row: Mapping[str, Any], now: datetime) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and now >= row["expires_at"]:
        return "expired"
    return "active"


def _token(row: Mapping[str, Any], now: datetime) -> IngestToken:
    return IngestToken(id=row["id"], workspace=row["workspace"], name=row["name"],
                       created_by=row["created_by"], created_at=row["created_at"],
                       last_used_at=row["last_used_at"], revoked_at=row["revoked_at"],
                       expires_at=row["expires_at"], state=_state(row, now))


def check_token_name(name: Any) -> str:
    """A token's name, trimmed: 1 to 100 printable characters (InputError otherwise)."""
    if not isinstance(name, str):
        raise InputError(f"name must be a string (what the token is for, e.g. "
                         f"'telegraf-eu'), got {type(name).__name__}")
    clean = name.strip()
    if not 1 <= len(clean) <= MAX_NAME_LENGTH or any(
            unicodedata.category(c).startswith("C") for c in clean):
        raise InputError(f"name must be 1 to {MAX_NAME_LENGTH} printable characters, got "
                         f"{name[:MAX_NAME_LENGTH + 10]!r}")
    return clean


class IngestTokenAccounts:
    """Ingest-token methods of :class:`kpidash.auth.Accounts`."""

    store: Store
    clock: Clock

    if TYPE_CHECKING:  # provided by WorkspaceAccounts
        def role_in(self, user_id: str, workspace: str) -> Role | None: ...

    def _token_admin(self, actor_id: str, workspace: str, action: str) -> None:
        role = self.role_in(actor_id, workspace)
        if role is None:
            raise NotFound(f"no workspace {workspace!r}")
        if not role.allows(Role.ADMIN):
            raise Forbidden(f"you cannot {action} of workspace {workspace!r}: that needs the "
                            f"{Role.ADMIN} role there, and yours is {role}")

    def create_ingest_token(self, actor_id: str, workspace: str, name: str,
                            expires_at: datetime | None = None) -> IssuedIngestToken:
        """A new token of ``workspace`` (workspace admins and server admins) with its secret,
        returned this once. ``expires_at`` (timezone-aware, in the future) or None for a token
        that works until revoked. InputError for a bad name or expiry, Conflict when the
        workspace already has :data:`MAX_ACTIVE_TOKENS` active tokens."""
        self._token_admin(actor_id, workspace, "create ingest tokens")
        clean = check_token_name(name)
        now = self.clock.now()
        if expires_at is not None:
            if not isinstance(expires_at, datetime) or expires_at.utcoffset() is None:
                raise InputError(f"expires_at must be a date and time with a time zone (e.g. "
                                 f"2025-01-01T00:00:00Z) or null, got {expires_at!r}")
            if expires_at <= now:
                raise InputError(f"expires_at must be in the future (now is "
                                 f"{now.isoformat()}), got {expires_at.isoformat()}")
        secret = new_ingest_secret()
        row = {"id": f"itk_{secrets.token_hex(12)}", "name": clean,
               "token_hash": hash_ingest_secret(secret), "created_by": actor_id,
               "created_at": now, "expires_at": expires_at}
        with self.store.transaction():
            active = sum(1 for t in self.store.ingest_tokens(workspace)
                         if _state(t, now) == "active")
            if active >= MAX_ACTIVE_TOKENS:
                raise Conflict(f"workspace {workspace!r} already has {active} active ingest "
                               f"tokens (the limit is {MAX_ACTIVE_TOKENS}); revoke unused ones "
                               "first")
            self.store.add_ingest_token(workspace, row)
        token = _token({**row, "workspace": workspace, "last_used_at": None,
                        "revoked_at": None}, now)
        return IssuedIngestToken(token, secret)

    def list_ingest_tokens(self, actor_id: str, workspace: str) -> list[IngestToken]:
        """The workspace's tokens, revoked and expired ones too, oldest first (workspace
        admins and server admins); never a secret."""
        self._token_admin(actor_id, workspace, "see the ingest tokens")
        now = self.clock.now()
        return [_token(t, now) for t in self.store.ingest_tokens(workspace)]

    def revoke_ingest_token(self, actor_id: str, workspace: str, token_id: str) -> IngestToken:
        """Revoke a token at once (workspace admins and server admins); revoking a revoked one
        changes nothing. NotFound for a token the workspace does not have."""
        self._token_admin(actor_id, workspace, "revoke ingest tokens")
        now = self.clock.now()
        with self.store.transaction():
            if not self.store.revoke_ingest_token(workspace, token_id, now):
                raise NotFound(f"no ingest token {token_id!r} in workspace {workspace!r}")
            row = next(t for t in self.store.ingest_tokens(workspace) if t["id"] == token_id)
        return _token(row, now)

    def verify_ingest_token(self, secret: str) -> IngestGrant:
        """What a presented secret allows; InvalidToken when it is unknown (or not an ingest
        token at all), revoked or expired. Touches last_used_at at most once a minute."""
        if (not isinstance(secret, str) or not secret.startswith(INGEST_TOKEN_PREFIX)
                or len(secret) > _MAX_SECRET_LENGTH):
            raise InvalidToken(_UNKNOWN)
        row = self.store.ingest_token_by_hash(hash_ingest_secret(secret))
        if row is None:
            raise InvalidToken(_UNKNOWN)
        now = self.clock.now()
        state = _state(row, now)
        if state != "active":
            raise InvalidToken(f"ingest token {row['name']!r} rejected: {state}; ask an admin "
                               f"of workspace {row['workspace']!r} for a new one")
        last = row["last_used_at"]
        if last is None or not timedelta(0) <= now - last < TOUCH_EVERY:
            self.store.touch_ingest_token(row["workspace"], row["id"], now)
        return IngestGrant(workspace=row["workspace"], token_id=row["id"], name=row["name"],
                           expires_at=row["expires_at"])
