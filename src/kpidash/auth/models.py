"""The values the accounts service hands out. Each has ``to_dict()`` for JSON; none carries a
password hash or a refresh-token hash."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from kpidash.auth.roles import Role

DEFAULT_IDLE_TIMEOUT = timedelta(days=7)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class User:
    """A user and their profile; ``refresh_interval`` in seconds, ``followed`` KPI ids,
    ``saved_filters`` KPI id → dimension → values."""

    id: str
    username: str
    role: Role
    display_name: str
    timezone: str
    theme: str
    refresh_interval: int
    followed: tuple[str, ...]
    saved_filters: dict[str, dict[str, list[str]]]
    created_at: datetime
    disabled: bool

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "role": str(self.role),
                "display_name": self.display_name, "timezone": self.timezone,
                "theme": self.theme, "refresh_interval": self.refresh_interval,
                "followed": list(self.followed),
                "saved_filters": {k: {d: list(v) for d, v in f.items()}
                                  for k, f in self.saved_filters.items()},
                "created_at": _iso(self.created_at), "disabled": self.disabled}


class SessionState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Session:
    """One login session (its refresh tokens rotate; its id stays)."""

    id: str
    user_id: str
    created_at: datetime
    last_seen: datetime
    expires_at: datetime
    revoked_at: datetime | None
    user_agent: str
    address: str
    idle_timeout: timedelta = field(default=DEFAULT_IDLE_TIMEOUT, compare=False)

    def state(self, now: datetime) -> SessionState:
        """REVOKED once revoked; EXPIRED at ``expires_at`` or after ``idle_timeout`` without
        use (last_seen); ACTIVE otherwise."""
        if self.revoked_at is not None:
            return SessionState.REVOKED
        if now >= self.expires_at or now - self.last_seen >= self.idle_timeout:
            return SessionState.EXPIRED
        return SessionState.ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, "created_at": _iso(self.created_at),
                "last_seen": _iso(self.last_seen), "expires_at": _iso(self.expires_at),
                "revoked_at": _iso(self.revoked_at), "user_agent": self.user_agent,
                "address": self.address}


@dataclass(frozen=True)
class TokenPair:
    """What login and refresh return; ``expires_in`` is the access token's lifetime in
    seconds."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    token_type: str = "bearer"

    def to_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "token_type": self.token_type, "expires_in": self.expires_in,
                "session_id": self.session_id}


@dataclass(frozen=True)
class Claims:
    """Who an access token speaks for."""

    user_id: str
    username: str
    role: Role
    session_id: str
    expires_at: datetime
    jti: str

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "username": self.username, "role": str(self.role),
                "session_id": self.session_id, "expires_at": _iso(self.expires_at),
                "jti": self.jti}


@dataclass(frozen=True)
class Dashboard:
    """A saved dashboard; ``spec`` as validated by :func:`kpidash.auth.dashboards.check_spec`,
    ``shared_with`` user ids that may read it."""

    id: str
    owner_id: str
    name: str
    spec: dict[str, Any]
    shared_with: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    workspace: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "owner_id": self.owner_id, "name": self.name,
                "spec": self.spec, "shared_with": list(self.shared_with),
                "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
                "workspace": self.workspace}
