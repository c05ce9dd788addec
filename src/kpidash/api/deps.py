"""What every route needs: the app's state, the caller (from the bearer token), role checks.

The engine sits on one DuckDB connection, which must not be used by two threads at once:
every engine or account call from a route goes through :meth:`AppState.run` (a lock, in a
worker thread so the event loop never waits on the database).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from kpidash.auth import Claims, Role
from kpidash.errors import Forbidden, InvalidToken

if TYPE_CHECKING:
    from kpidash.api.hub import Hub
    from kpidash.api.metrics import Metrics
    from kpidash.auth import Accounts
    from kpidash.clock import Clock
    from kpidash.engine import Engine
    from kpidash.settings import Settings

T = TypeVar("T")

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@dataclass
class AppState:
    settings: Settings
    clock: Clock
    engine: Engine
    accounts: Accounts
    hub: Hub
    metrics: Metrics
    lock: threading.RLock = field(default_factory=threading.RLock)
    renders: dict[Any, Any] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # live subscriptions: key "<dashboard>|<theme>" → (spec, theme, title, user, dashboard)
    live: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    pushed: dict[str, Any] = field(default_factory=dict)  # key → etag last pushed

    def locked(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.lock:
            return fn(*args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` under the engine lock in a worker thread."""
        return await anyio.to_thread.run_sync(lambda: self.locked(fn, *args, **kwargs))

    def bump(self, kpi_ids: Any) -> None:
        """Data of these KPIs changed (ingest): cached renders that use them are stale."""
        for k in kpi_ids:
            self.versions[k] = self.versions.get(k, 0) + 1


def state(request: Request) -> AppState:
    st: AppState = request.app.state.kpidash
    return st


State = Annotated[AppState, Depends(state)]


async def caller(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Claims:
    """The verified claims of the bearer token (401 without a valid one). InfluxDB clients'
    ``Authorization: Token <access token>`` is accepted too."""
    if not token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "token" else None
    if not token:
        raise InvalidToken("this endpoint needs a bearer token: POST /api/v1/auth/token first")
    st = state(request)
    claims = await st.run(st.accounts.verify, token)
    request.state.user = claims.username
    return claims


def require(role: Role) -> Callable[..., Coroutine[Any, Any, Claims]]:
    async def check(claims: Annotated[Claims, Depends(caller)]) -> Claims:
        if not Role(claims.role).allows(role):
            raise Forbidden(f"this needs the {role} role; you are {claims.role}")
        return claims

    return check


Viewer = Annotated[Claims, Depends(require(Role.VIEWER))]
Analyst = Annotated[Claims, Depends(require(Role.ANALYST))]
Admin = Annotated[Claims, Depends(require(Role.ADMIN))]
