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
from datetime import timedelta
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
# Accounts methods that only read (cacheable by AppState.cached); every other public method
# counts as a write
ACCOUNT_READS = frozenset({"verify", "get_user", "get_dashboard"})
ACCOUNT_CACHE_SECONDS = timedelta(seconds=1)

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
    insight_widgets: dict[Any, dict[str, Any]] = field(default_factory=dict)
    # read-through cache of account lookups, see cached(): (method, args) → (generation,
    # clock time of the lookup, result)
    account_reads: dict[Any, tuple[int, Any, Any]] = field(default_factory=dict)
    account_generation: int = 0
    account_pending: dict[Any, asyncio.Future[Any]] = field(default_factory=dict)
    render_json: dict[str, bytes] = field(default_factory=dict)  # etag → response body
    periods: dict[Any, Any] = field(default_factory=dict)  # (grain, zone, minute) → period

    def __post_init__(self) -> None:
        self._watch_account_writes()

    def _watch_account_writes(self) -> None:
        """Every Accounts method that may write (anything but the reads of
        :data:`ACCOUNT_READS`) bumps :attr:`account_generation` before and after it runs, so
        nothing cached before or during a write is served after it (also when the method is
        called directly, not through :meth:`run`)."""
        acc = self.accounts
        for name in dir(type(acc)):
            if name.startswith("_") or name in ACCOUNT_READS:
                continue
            fn = getattr(acc, name, None)
            if not callable(fn) or getattr(fn, "__self__", None) is not acc:
                continue

            def wrapped(*args: Any, _fn: Callable[..., Any] = fn, **kwargs: Any) -> Any:
                self.account_generation += 1
                try:
                    return _fn(*args, **kwargs)
                finally:
                    self.account_generation += 1
                    self.account_reads.clear()

            setattr(acc, name, wrapped)

    async def cached(self, fn: Callable[..., T], *args: Any) -> T:
        """``await self.run(fn, *args)`` for a read of :data:`ACCOUNT_READS`, answered from
        memory when the same call was made less than :data:`ACCOUNT_CACHE_SECONDS` ago (by the
        app's clock) and no account write happened since.

        Measured with benchmarks/api.py (cached dashboard render, 32 connections): verifying
        the token (two DuckDB lookups, session and user, ~6.8 ms) plus get_dashboard and
        get_user (~0.8 ms each), each a worker-thread hop under the engine lock, were ~9 ms of
        every request: 70 req/s. Served from memory they cost no thread hop and no lock.
        Writes go through the Accounts methods, which bump the generation (see above); the
        short lifetime bounds what time alone changes in :meth:`Accounts.verify` (a session
        reaching its expiry or idle limit; ``last_seen`` is touched once a minute), and the
        access token's own expiry is checked on every hit.
        """
        name = getattr(fn, "__name__", "")
        if name not in ACCOUNT_READS:
            return await self.run(fn, *args)
        key = (name, *args)
        now = self.clock.now()
        hit = self.account_reads.get(key)
        if (hit is not None and hit[0] == self.account_generation
                and timedelta(0) <= now - hit[1] < ACCOUNT_CACHE_SECONDS):
            value: T = hit[2]
            expires = getattr(value, "expires_at", None)
            if expires is None or now < expires:
                return value
        # one lookup in flight per key: the requests that miss together (e.g. when an entry
        # expires under load: 32 verifications of ~7 ms queued on the lock) share it
        generation = self.account_generation
        pending = self.account_pending.get((generation, key))
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.account_pending[(generation, key)] = future
        try:
            value = await self.run(fn, *args)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody else waited
            raise
        else:
            future.set_result(value)
        finally:
            self.account_pending.pop((generation, key), None)
        if generation == self.account_generation:
            if len(self.account_reads) > 4096:
                self.account_reads.clear()
            self.account_reads[key] = (generation, now, value)
        return value

    def locked(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.lock:
            return fn(*args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` under the engine lock in a worker thread."""
        return await anyio.to_thread.run_sync(lambda: self.locked(fn, *args, **kwargs))

    def alerts_changed(self) -> None:
        """Alerts changed (a tick, an acknowledgement, a silence): renders carry them."""
        from kpidash.api.render import ALERTS_VERSION

        self.bump([ALERTS_VERSION])
        self.changed.set()

    def bump(self, kpi_ids: Any) -> None:
        """Data of these KPIs changed (ingest): cached renders that use them are stale."""
        for k in kpi_ids:
            self.versions[k] = self.versions.get(k, 0) + 1


def state(request: Request) -> AppState:
    st: AppState = request.app.state.kpidash
    return st


async def _state(request: Request) -> AppState:
    """:func:`state` as a dependency. Async so that FastAPI calls it in the event loop: a
    plain ``def`` dependency runs in the thread pool, a worker-thread hop on every request
    (measured with benchmarks/api.py: part of the GIL and thread-pool contention that held
    cached renders at 120–340 req/s)."""
    return state(request)


State = Annotated[AppState, Depends(_state)]


async def caller(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Claims:
    """The verified claims of the bearer token (401 without a valid one). InfluxDB clients'
    ``Authorization: Token <access token>`` is accepted too."""
    if not token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "token" else None
    if not token:
        raise InvalidToken("this endpoint needs a bearer token: POST /api/v1/auth/token first")
    st = state(request)
    claims = await st.cached(st.accounts.verify, token)
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
