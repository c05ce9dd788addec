"""The API's state, in two layers. :class:`AppState` is the server's: settings, clock,
accounts, the live hub, metrics, the lock and the caches that do not depend on a workspace.
:class:`WorkspaceState` is one workspace as a route sees it — its own engine, render cache,
data versions and insight widgets — and delegates the rest to the server's.

The engines share one store on one connection, which must not be used by two threads at
once: every engine or account call from a route goes through :meth:`AppState.run` (a lock,
in a worker thread so the event loop never waits on the database).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from kpidash.api.peers import Peers
from kpidash.errors import NotFound

if TYPE_CHECKING:
    from kpidash.api.hub import Hub
    from kpidash.api.metrics import Metrics
    from kpidash.auth import Accounts
    from kpidash.clock import Clock
    from kpidash.core.workspace import WorkspaceSettings
    from kpidash.engine import Engine
    from kpidash.settings import Settings

T = TypeVar("T")
# Accounts methods that only read (cacheable by AppState.cached); every other public method
# counts as a write
ACCOUNT_READS = frozenset({"verify", "get_user", "get_dashboard", "role_in",
                           "verify_ingest_token"})
ACCOUNT_CACHE_SECONDS = timedelta(seconds=1)
# Accounts methods that are not cached reads (so counted as writes above) yet change nothing
# another worker may have cached: not announced to the other workers (a dashboard list would
# otherwise empty every worker's cache; a login adds a session nobody has looked up yet)
ACCOUNT_LOCAL = frozenset({"count_admins", "get_user_by_name", "get_workspace",
                           "is_server_admin", "list_dashboards", "list_ingest_tokens",
                           "list_users", "list_workspaces", "login", "members", "sessions"})


@dataclass(frozen=True)
class LiveEntry:
    """A live subscription the refresher renders: a dashboard of one workspace, themed."""

    workspace: str
    dashboard: str
    spec: dict[str, Any]
    theme: str | None
    title: str
    user: str


@dataclass
class AppState:
    """What the server shares across workspaces, and one :class:`WorkspaceState` per
    workspace in use (:meth:`scope`). ``engine`` is the engine of the server's own
    workspace (``KPIDASH_WORKSPACE``, normally ``default``)."""

    settings: Settings
    clock: Clock
    engine: Engine
    accounts: Accounts
    hub: Hub
    metrics: Metrics
    lock: threading.RLock = field(default_factory=threading.RLock)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # live subscriptions: key "<workspace>|<dashboard>|<theme>" (WorkspaceState.live_key)
    live: dict[str, LiveEntry] = field(default_factory=dict)
    pushed: dict[str, Any] = field(default_factory=dict)  # key → etag last pushed
    # read-through cache of account lookups, see cached(): (method, args) → (generation,
    # clock time of the lookup, result)
    account_reads: dict[Any, tuple[int, Any, Any]] = field(default_factory=dict)
    account_generation: int = 0
    account_pending: dict[Any, asyncio.Future[Any]] = field(default_factory=dict)
    render_json: dict[str, bytes] = field(default_factory=dict)  # etag → response body
    periods: dict[Any, Any] = field(default_factory=dict)  # (grain, zone, minute) → period
    scopes: dict[str, WorkspaceState] = field(default_factory=dict)
    leading: bool = False
    """Whether this process runs the alert ticks (the refresher's leadership, see live.py)."""

    def __post_init__(self) -> None:
        self.peers = Peers(self)
        """What this worker tells the others sharing the store, and applies of theirs."""
        self._watch_account_writes()

    def _watch_account_writes(self) -> None:
        """Every Accounts method that may write (anything but the reads of
        :data:`ACCOUNT_READS`) bumps :attr:`account_generation` before and after it runs, so
        nothing cached before or during a write is served after it (also when the method is
        called directly, not through :meth:`run`), and tells the other workers to drop
        theirs."""
        acc = self.accounts
        for name in dir(type(acc)):
            if name.startswith("_") or name in ACCOUNT_READS:
                continue
            fn = getattr(acc, name, None)
            if not callable(fn) or getattr(fn, "__self__", None) is not acc:
                continue

            def wrapped(*args: Any, _fn: Callable[..., Any] = fn,
                        _announce: bool = name not in ACCOUNT_LOCAL, **kwargs: Any) -> Any:
                self.account_generation += 1
                try:
                    return _fn(*args, **kwargs)
                finally:
                    self.accounts_changed(announce=_announce)

            setattr(acc, name, wrapped)

    def accounts_changed(self, *, announce: bool = True) -> None:
        """Nothing read from accounts before now is served from :meth:`cached` again (in
        this worker; ``announce``: in every worker of the store)."""
        self.account_generation += 1
        self.account_reads.clear()
        if announce:
            self.peers.announce("accounts")

    async def cached(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
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
            return await self.run(fn, *args, **kwargs)
        key = (name, *args, *sorted(kwargs.items()))
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
            value = await self.run(fn, *args, **kwargs)
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

    # -- workspaces ----------------------------------------------------------------------------

    @property
    def default(self) -> WorkspaceState:
        """The state of the server's own workspace (the unscoped ``/api/v1/...`` paths)."""
        ws = self.engine.workspace
        scope = self.scopes.get(ws)
        if scope is None:
            scope = self.scopes[ws] = WorkspaceState(self, self.engine,
                                                     workspace_options(self.engine.store, ws))
        return scope

    def scope(self, workspace: str) -> WorkspaceState:
        """The state of ``workspace``; NotFound for one that does not exist. Call under the
        lock: a workspace used for the first time gets an engine (which reads its KPI
        definitions) with the workspace's time zone; its alert channels and public URL are
        the server's."""
        if workspace == self.engine.workspace:
            return self.default
        scope = self.scopes.get(workspace)
        if scope is not None:
            return scope
        from kpidash.engine import Engine

        settings = workspace_options(self.engine.store, workspace)
        engine = Engine(self.engine.store, self.clock, workspace=workspace,
                        timezone=settings.timezone, input_timezone=self.engine.input_timezone,
                        chunk_rows=self.engine.chunk_rows)
        engine.notifiers = self.engine.notifiers
        engine.dashboard_url = self.engine.dashboard_url
        scope = self.scopes[workspace] = WorkspaceState(self, engine, settings)
        return scope

    async def scoped(self, workspace: str) -> WorkspaceState:
        """:meth:`scope` from the event loop (a first use reads the store under the lock)."""
        hit = self.scopes.get(workspace)
        if hit is not None:
            return hit
        return await self.run(self.scope, workspace)

    def forget(self, workspace: str, *, deleted: bool = False, announce: bool = True) -> None:
        """Drop what is kept in memory for ``workspace`` (its settings changed, or
        ``deleted``): its engine, caches and live subscriptions. The next request starts
        afresh. Call under the lock, in the same hold as the deletion: a request that
        resolved the workspace before and runs after is then refused (NotFound) instead of
        writing rows for a workspace that no longer exists. ``announce``: the other workers
        forget it too."""
        gone = self.scopes.pop(workspace, None)
        if gone is not None and deleted:
            gone.deleted = True
        prefix = f"{workspace}|"
        for key in [k for k in self.live if k.startswith(prefix)]:
            del self.live[key]
            self.pushed.pop(key, None)
        for c in list(self.hub.clients):
            c.dashboards = {k for k in c.dashboards if not k.startswith(prefix)}
            c.workspaces.discard(workspace)
        if announce:
            self.peers.announce("workspace", workspace, deleted=deleted)


class WorkspaceState:
    """One workspace as a route sees it: its engine, render cache, data versions and insight
    widgets; everything else (settings, accounts, hub, lock, …) is the server's."""

    def __init__(self, server: AppState, engine: Engine, options: WorkspaceSettings) -> None:
        self.server = server
        self.engine = engine
        self.workspace = engine.workspace
        self.options = options
        """The workspace's settings (time zone, currency, fiscal year, default theme)."""
        self.deleted = False
        self.renders: dict[Any, Any] = {}
        self.versions: dict[str, int] = {}
        self.insight_widgets: dict[Any, dict[str, Any]] = {}

    @property
    def settings(self) -> Settings:
        return self.server.settings

    @property
    def clock(self) -> Clock:
        return self.server.clock

    @property
    def accounts(self) -> Accounts:
        return self.server.accounts

    @property
    def hub(self) -> Hub:
        return self.server.hub

    @property
    def metrics(self) -> Metrics:
        return self.server.metrics

    @property
    def lock(self) -> threading.RLock:
        return self.server.lock

    @property
    def changed(self) -> asyncio.Event:
        return self.server.changed

    @property
    def live(self) -> dict[str, LiveEntry]:
        return self.server.live

    @property
    def pushed(self) -> dict[str, Any]:
        return self.server.pushed

    @property
    def render_json(self) -> dict[str, bytes]:
        return self.server.render_json

    @property
    def periods(self) -> dict[Any, Any]:
        return self.server.periods

    def locked(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` under the lock, unless the workspace was deleted meanwhile (NotFound)."""
        with self.server.lock:
            if self.deleted:
                raise NotFound(f"no workspace {self.workspace!r}")
            return fn(*args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`locked` in a worker thread."""
        return await anyio.to_thread.run_sync(lambda: self.locked(fn, *args, **kwargs))

    async def cached(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.server.cached(fn, *args, **kwargs)

    def live_key(self, dashboard: str, theme: str | None) -> str:
        return f"{self.workspace}|{dashboard}|{theme or ''}"

    def alerts_changed(self, *, announce: bool = True, push: str | None = None,
                       alert: str | None = None) -> None:
        """Alerts changed (a tick, an acknowledgement, a silence): renders carry them.
        ``announce``: in every worker, which also push to their live clients the active
        list (``push="list"``, after a tick) or one acknowledged ``alert``."""
        from kpidash.api.render import ALERTS_VERSION

        self.bump([ALERTS_VERSION])
        self.server.changed.set()
        if announce:
            self.server.peers.announce("alerts", self.workspace, push=push, alert=alert)

    def data_changed(self, kpi_ids: Any) -> None:
        """Points of these KPIs were written (committed): renders using them are stale here
        and in every other worker."""
        kpi_ids = set(kpi_ids)
        self.bump(kpi_ids)
        self.server.changed.set()
        self.server.peers.announce("data", self.workspace, kpis=kpi_ids)

    def definitions_changed(self, kpi_ids: Any) -> None:
        """These KPI definitions were stored or deleted (committed): the other workers read
        their registry again; renders using them are stale everywhere."""
        kpi_ids = set(kpi_ids)
        self.bump(kpi_ids)
        self.server.changed.set()
        self.server.peers.announce("kpis", self.workspace, kpis=kpi_ids)

    def bump(self, kpi_ids: Any) -> None:
        """Data of these KPIs changed: cached renders of this worker that use them are
        stale (see :meth:`data_changed` to tell the other workers too)."""
        for k in kpi_ids:
            self.versions[k] = self.versions.get(k, 0) + 1

    def publish(self, message: dict[str, Any]) -> int:
        """Offer ``message`` to the live clients of this workspace (see ``Client.workspaces``;
        alerts never reach another workspace's clients)."""
        n = 0
        for c in list(self.hub.clients):
            if self.workspace in c.workspaces:
                c.offer(message)
                n += 1
        return n


def workspace_options(store: Any, workspace: str) -> WorkspaceSettings:
    """The settings of an existing workspace; NotFound otherwise."""
    from kpidash.core.workspace import WorkspaceSettings

    record = store.workspace(workspace)
    if record is None:
        raise NotFound(f"no workspace {workspace!r}")
    return WorkspaceSettings.model_validate(record["settings"])
