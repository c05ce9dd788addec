"""What the server processes sharing one store tell each other (``kpidash serve --workers N``
on PostgreSQL).

Each worker keeps, in its own memory, what is cheap to rebuild but costly to read on every
request — rendered dashboards by data version, each workspace's engine with its KPI
registry and settings, account lookups — and serves its own WebSocket/SSE clients. When a
request changes something in one worker, the others must drop what it made stale and push
to their clients what changed. :class:`Peers` does both halves:

* **announce** (the worker that made the change, after it committed): a short JSON message
  published through the store (PostgreSQL ``NOTIFY``) by one sender thread, in order, so
  that a request never waits on it;
* **apply** (every other worker): its listener thread hands the message to the event loop,
  which invalidates and pushes exactly as the originating worker did locally.

Messages (``v`` 1; ``node`` the sender, whose own messages are ignored)::

    {"kind": "data", "ws": W, "kpis": [...] | null}     points of these KPIs (null: any) changed
    {"kind": "kpis", "ws": W, "kpis": [...] | null}     KPI definitions changed: reload them
    {"kind": "workspace", "ws": W, "deleted": bool}     settings changed or workspace deleted
    {"kind": "alerts", "ws": W, "push": "list"|null, "alert": fp|null}
                                                        alerts changed; push the active list
                                                        (after a tick) or one alert (an ack)
    {"kind": "dashboard", "ws": W, "id": D}             a dashboard's spec changed
    {"kind": "accounts"}                                users, sessions, tokens, memberships

A listener that lost its connection may have missed messages: on reconnecting it reports
``None`` and the worker drops every cache (:meth:`Peers.resync`). Whatever is missed for
another reason (a write made outside a server, e.g. ``kpidash ingest`` on the same database)
is bounded anyway: a cached render lives at most its dashboard's refresh interval, account
lookups one second.

On a store only one process opens (DuckDB), nothing is sent or heard: the worker's own
changes are applied where they are made.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import secrets
import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kpidash.store.coordination import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from kpidash.api.state import AppState, WorkspaceState
    from kpidash.store.coordination import Listener

log = logging.getLogger("kpidash.api.peers")
VERSION = 1
_STOP = object()


class Peers:
    """The announcing and applying halves for one app (see the module docstring)."""

    def __init__(self, st: AppState) -> None:
        self.st = st
        self.store = st.engine.store
        self.node = secrets.token_hex(8)
        """This worker's id in messages (random per process start; results never use it)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._outbox: queue.Queue[object] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def shared(self) -> bool:
        return bool(getattr(self.store, "shared", False))

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Listen and send from now on (call in the server's event loop)."""
        if not self.shared or self._listener is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._sender = threading.Thread(target=self._send_loop, name="kpidash-announce",
                                        daemon=True)
        self._sender.start()
        self._listener = self.store.listen(self._heard)

    async def stop(self) -> None:
        """Stop listening, finish what applies the others' changes, send what is queued."""
        import anyio

        if self._listener is not None:
            await anyio.to_thread.run_sync(self._listener.close)
            self._listener = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sender is not None:
            self._outbox.put(_STOP)
            await anyio.to_thread.run_sync(self._sender.join, 10)
            self._sender = None

    # -- announcing --------------------------------------------------------------------------

    def announce(self, kind: str, workspace: str | None = None, **fields: Any) -> None:
        """Tell the other workers (never blocks; a no-op on a store of one process). Call
        after the change committed. ``kpis`` lists too long for one message become null
        (= every KPI of the workspace)."""
        if self._sender is None:  # a store of one process, or the app is not serving
            return
        doc = {"v": VERSION, "node": self.node, "kind": kind, "ws": workspace, **fields}
        if isinstance(doc.get("kpis"), list | tuple | set | frozenset):
            doc["kpis"] = sorted(doc["kpis"])
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) > MAX_MESSAGE_BYTES and "kpis" in doc:
            text = json.dumps({**doc, "kpis": None}, separators=(",", ":"))
        self._outbox.put(text)

    def _send_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is _STOP:
                return
            try:
                self.store.publish(str(item))
            except Exception:  # the others' caches then expire by time (see the docstring)
                log.warning("could not announce a change to the other workers", exc_info=True)

    # -- applying ----------------------------------------------------------------------------

    def _heard(self, text: str | None) -> None:
        """From the listener's thread: hand the message to the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if text is None:
            loop.call_soon_threadsafe(self._spawn, None)
            return
        try:
            doc = json.loads(text)
        except ValueError:
            log.warning("ignoring a malformed message from another worker: %.200s", text)
            return
        if not isinstance(doc, dict) or doc.get("v") != VERSION or doc.get("node") == self.node:
            return
        loop.call_soon_threadsafe(self._spawn, doc)

    def _spawn(self, doc: dict[str, Any] | None) -> None:
        """In the event loop: apply ``doc`` (None: resync) in a task of its own."""
        work = self.resync() if doc is None else self.apply(doc)
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("applying another worker's change failed", exc_info=task.exception())

    async def apply(self, doc: dict[str, Any]) -> None:
        """Apply another worker's message in this one (see the module docstring)."""
        st, kind, ws = self.st, doc.get("kind"), doc.get("ws")
        if kind == "accounts":
            st.accounts_changed(announce=False)
            return
        if not isinstance(ws, str):
            return
        if kind == "workspace":
            await st.run(st.forget, ws, deleted=bool(doc.get("deleted")), announce=False)
            st.changed.set()
            return
        scope = st.scopes.get(ws)
        if scope is None:  # never used in this worker: nothing of it is cached here
            return
        kpis = doc.get("kpis")
        if kind == "kpis":
            await scope.run(scope.engine.reload)
            self._bump(scope, kpis)
        elif kind == "data":
            self._bump(scope, kpis)
        elif kind == "alerts":
            scope.alerts_changed(announce=False)
            await self._push_alerts(scope, doc)
        elif kind == "dashboard":
            await self._reload_dashboard(scope, str(doc.get("id")))
        st.changed.set()

    @staticmethod
    def _bump(scope: WorkspaceState, kpis: Iterable[str] | None) -> None:
        if kpis is None:
            scope.renders.clear()
            scope.insight_widgets.clear()
            kpis = [k.id for k in scope.engine.registry]
        scope.bump(kpis)

    async def _push_alerts(self, scope: WorkspaceState, doc: dict[str, Any]) -> None:
        from kpidash.api.render import alert_json

        if doc.get("push") == "list":
            items = await scope.run(scope.engine.alerts,
                                    states=["pending", "firing", "recovering"])
            scope.publish({"type": "alerts", "workspace": scope.workspace,
                           "items": [alert_json(a) for a in items]})
        elif isinstance(doc.get("alert"), str):
            a = await scope.run(scope.engine.alert, doc["alert"])
            scope.publish({"type": "alert", "alert": alert_json(a)})

    async def _reload_dashboard(self, scope: WorkspaceState, dashboard: str) -> None:
        """Live subscribers of a dashboard changed elsewhere get renders of its new spec."""
        st = self.st
        doc = await scope.run(st.engine.store.dashboard, scope.workspace, dashboard)
        if doc is None:
            return
        for key, entry in list(st.live.items()):
            if entry.workspace == scope.workspace and entry.dashboard == dashboard:
                st.live[key] = replace(entry, spec=doc["spec"], title=doc["name"])

    async def resync(self) -> None:
        """After messages may have been lost: drop every cache; reload every workspace's
        KPI definitions and settings (a workspace gone meanwhile is forgotten)."""
        from kpidash.api.state import workspace_options
        from kpidash.errors import NotFound

        st = self.st
        st.accounts_changed(announce=False)
        for ws, scope in list(st.scopes.items()):
            try:
                options = await st.run(workspace_options, st.engine.store, ws)
            except NotFound:
                await st.run(st.forget, ws, deleted=True, announce=False)
                continue
            if options != scope.options:
                await st.run(st.forget, ws, announce=False)
                continue
            await scope.run(scope.engine.reload)
            self._bump(scope, None)
            scope.alerts_changed(announce=False)
        st.changed.set()
