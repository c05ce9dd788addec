"""Live updates: the WebSocket endpoint, the Server-Sent Events fallback, and the background
refresher that renders subscribed dashboards and pushes what changed.

WebSocket protocol (JSON messages)::

    → {"type": "auth", "token": "<access token>"}        first, within 10 s (never in the URL)
    ← {"type": "ready", "user": "ana", "role": "analyst", "worker": "<id>"}
                                                        (the server process it talks to)
    → {"type": "subscribe", "dashboard": "<id>" | "__all__", "theme": "dark"?,
       "workspace": "<id>"?}                            (the server's own workspace if absent)
    ← {"type": "dashboard", "id": "<id>", "data": {…widgets…}}   now, and whenever it changes
    ← {"type": "alerts", "workspace": "<id>", "items": [...]}   after an alert tick changed
                                                                  something in that workspace
    → {"type": "unsubscribe", "dashboard": "<id>", "workspace": "<id>"?}
    → {"type": "ping"} ← {"type": "pong"}

A subscription is checked like a request: the user must be a member of the workspace (the
same "subscribe_failed" answer for one that does not exist) and may see the dashboard; alert
messages go only to clients subscribed to a dashboard of the workspace they concern.

A client that reads slowly loses intermediate states, never the latest (see hub.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from kpidash.api.deps import INGEST_ONLY, State, Viewer
from kpidash.api.hub import Client, Message
from kpidash.api.render import alert_json, render
from kpidash.api.state import AppState, LiveEntry, WorkspaceState
from kpidash.auth.ingest_tokens import INGEST_TOKEN_PREFIX
from kpidash.errors import KpidashError, NotFound, StoreUnavailable

log = logging.getLogger("kpidash.api.live")
router = APIRouter(tags=["live"])  # mounted per workspace (Server-Sent Events)
socket = APIRouter(prefix="/api/v1", tags=["live"])  # one WebSocket for every workspace
AUTH_TIMEOUT = 10.0


async def _subscription(st: WorkspaceState, client: Client, dashboard: str,
                        theme: str | None, user_id: str) -> tuple[str, dict[str, Any]]:
    """Register (dashboard, theme) of ``st``'s workspace for ``client``; returns its key and
    current render."""
    from kpidash.api.routes.dashboards import _user_theme

    if dashboard == "__all__":
        spec: dict[str, Any] = {"grain": "day"}
        title = "kpidash"
    else:
        d = await st.run(st.accounts.get_dashboard, user_id, dashboard, workspace=st.workspace)
        spec, title = d.spec, d.name
        theme = theme or d.spec.get("theme")
    if theme is None:
        theme = await _user_theme(st, user_id)
    key = st.live_key(dashboard, theme)
    # render first: a spec or theme that cannot render is refused, never registered (the
    # refresher would fail on it at every tick)
    board = await st.run(render, st, spec, theme=theme, user=client.user, key=dashboard,
                         title=title)
    st.live[key] = LiveEntry(st.workspace, dashboard, spec, theme, title, client.user)
    client.dashboards.add(key)
    client.workspaces.add(st.workspace)
    return key, board


async def _member_scope(st: AppState, user_id: str, workspace: Any) -> WorkspaceState:
    """The state of a workspace the user belongs to (NotFound otherwise, whether or not it
    exists)."""
    ws = st.engine.workspace if workspace is None else str(workspace)
    if await st.run(st.accounts.role_in, user_id, ws) is None:
        raise NotFound(f"no workspace {ws!r}")
    return await st.scoped(ws)


@socket.websocket("/ws")
async def websocket(ws: WebSocket) -> None:
    st: AppState = ws.app.state.kpidash
    await ws.accept()
    try:
        first = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT)
        if not isinstance(first, dict) or first.get("type") != "auth":
            raise KpidashError("the first message must be {\"type\": \"auth\", \"token\": …}")
        token = str(first.get("token", ""))
        if token.startswith(INGEST_TOKEN_PREFIX):
            raise KpidashError(INGEST_ONLY)
        claims = await st.run(st.accounts.verify, token)
    except (TimeoutError, KpidashError, ValueError, json.JSONDecodeError) as exc:
        reason = "authentication timed out" if isinstance(exc, TimeoutError) else str(exc)
        with contextlib.suppress(Exception):
            await ws.send_json({"type": "error", "code": "unauthenticated",
                                "message": reason[:200]})
            await ws.close(code=4401)
        return
    except WebSocketDisconnect:
        return
    client = st.hub.connect(claims.username, claims.role)
    # the server's own workspace's alerts reach its members without a subscription; another
    # workspace's only while the client follows one of its dashboards
    home = ({st.engine.workspace} if await st.run(st.accounts.role_in, claims.user_id,
                                                  st.engine.workspace) is not None else set())
    client.workspaces |= home
    st.metrics.ws_clients.set(len(st.hub.clients))
    sender = asyncio.create_task(_send(ws, client))
    try:
        await ws.send_json({"type": "ready", "user": claims.username, "role": claims.role,
                            "worker": st.peers.node})
        while True:
            msg = await ws.receive_json()
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind == "subscribe":
                try:
                    scope = await _member_scope(st, claims.user_id, msg.get("workspace"))
                    key, board = await _subscription(scope, client, str(msg.get("dashboard")),
                                                     msg.get("theme"), claims.user_id)
                except KpidashError as exc:
                    client.offer({"type": "error", "code": "subscribe_failed",
                                  "message": str(exc)[:300]})
                    continue
                st.pushed[key] = board.get("etag")
                client.offer({"type": "dashboard", "id": msg.get("dashboard"),
                              "workspace": scope.workspace, "data": board})
            elif kind == "unsubscribe":
                gone = msg.get("workspace") or st.engine.workspace
                prefix = f"{gone}|{msg.get('dashboard')}|"
                client.dashboards = {k for k in client.dashboards if not k.startswith(prefix)}
                client.workspaces = home | {k.split("|", 1)[0] for k in client.dashboards}
            elif kind == "ping":
                client.offer({"type": "pong"})
            else:
                client.offer({"type": "error", "code": "unknown_message",
                              "message": "expected subscribe, unsubscribe or ping"})
    except (WebSocketDisconnect, RuntimeError):
        pass
    except (ValueError, json.JSONDecodeError):
        with contextlib.suppress(Exception):
            await ws.close(code=1003)
    finally:
        sender.cancel()
        st.hub.disconnect(client)
        st.metrics.ws_clients.set(len(st.hub.clients))


async def _send(ws: WebSocket, client: Client) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, asyncio.CancelledError):
        while True:
            message = await client.queue.get()
            if isinstance(message, Message):  # one encoding shared by every client
                await ws.send_text(message.text())
            else:
                await ws.send_json(message)


SSE_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string", "description": "the message type: dashboard, alert, …"},
    "data": {"type": "string", "description": "the message as JSON"}}}
"""One event of the stream, as the OpenAPI schema documents it (keep-alives are comments)."""


@router.get("/dashboards/{dashboard_id}/events", summary="Live updates as Server-Sent Events",
            response_class=StreamingResponse,
            responses={200: {"description": "An event stream: the dashboard, then its updates",
                             "content": {"text/event-stream": {"schema": SSE_EVENT}}}})
async def events(st: State, me: Viewer, request: Request, dashboard_id: str,
                 theme: str | None = None) -> StreamingResponse:
    client = st.hub.connect(me.username, me.role)
    try:
        key, board = await _subscription(st, client, dashboard_id, theme, me.user_id)
    except BaseException:
        st.hub.disconnect(client)  # no stream: the client must not stay registered
        raise
    st.pushed[key] = board.get("etag")
    client.offer({"type": "dashboard", "id": dashboard_id, "workspace": st.workspace,
                  "data": board})
    st.metrics.ws_clients.set(len(st.hub.clients))

    async def stream() -> AsyncIterator[bytes]:
        try:
            while not await request.is_disconnected():
                try:
                    message = await asyncio.wait_for(client.queue.get(), 15.0)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield f"event: {message['type']}\ndata: {json.dumps(message)}\n\n".encode()
        finally:
            st.hub.disconnect(client)
            st.metrics.ws_clients.set(len(st.hub.clients))

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# -- the background refresher -----------------------------------------------------------------


LEADERSHIP_CHECK_SECONDS = 5.0
"""How often a worker checks that it still leads, or tries to take over (see refresher)."""


async def refresher(st: AppState, stop: asyncio.Event) -> None:
    """Render subscribed dashboards when their data or period changed (renders are cached by
    data version, so unchanged ones cost a dict lookup) and tick the alert manager.

    Every worker renders for its own live clients; the alert manager ticks in one worker
    only: the one holding the store's ``refresher`` leadership (PostgreSQL: an advisory
    lock; a store of one process: always this one). A worker that dies or loses its
    database connection loses it, and another takes over within
    :data:`LEADERSHIP_CHECK_SECONDS`; its ticks reach every worker's clients through
    :mod:`kpidash.api.peers`.
    """
    loop = asyncio.get_running_loop()
    next_alerts = loop.time() + st.settings.alert_interval_seconds
    next_check = loop.time()
    lead = st.engine.store.leadership("refresher")
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(st.changed.wait(), st.settings.refresh_tick_seconds)
            st.changed.clear()
            try:
                await refresh_once(st)
                now = loop.time()
                if now >= next_check or now >= next_alerts:
                    next_check = now + LEADERSHIP_CHECK_SECONDS
                    leading = await anyio.to_thread.run_sync(lead.acquire)
                    if leading != st.leading:
                        log.info("this worker %s the alert ticks",
                                 "now runs" if leading else "no longer runs")
                    st.leading = leading
                if now >= next_alerts:
                    next_alerts = now + st.settings.alert_interval_seconds
                    if st.leading:
                        await alert_tick(st)
            except StoreUnavailable as exc:  # the store reconnects by itself: one line a tick
                log.warning("background refresh skipped: %s", exc)
            except Exception:  # a bad dashboard must not stop the refresher
                log.exception("background refresh failed")
    finally:
        st.leading = False
        await anyio.to_thread.run_sync(lead.release)


async def refresh_once(st: AppState) -> int:
    """Push every subscribed dashboard whose render changed; returns how many were pushed."""
    pushed = 0
    for key in sorted(st.hub.subscribed()):
        entry = st.live.get(key)
        if entry is None:
            continue
        try:
            scope = await st.scoped(entry.workspace)
            board = await st.run(render, scope, entry.spec, theme=entry.theme, user=entry.user,
                                 key=entry.dashboard, title=entry.title)
        except StoreUnavailable:  # not this dashboard's fault: the refresher logs it once
            raise
        except KpidashError:  # e.g. a KPI it shows was deleted: the others still refresh
            log.warning("cannot refresh live dashboard %s", key, exc_info=True)
            continue
        if st.pushed.get(key) != board.get("etag"):
            st.pushed[key] = board.get("etag")
            message = Message({"type": "dashboard", "id": entry.dashboard,
                               "workspace": entry.workspace, "data": board})
            for c in list(st.hub.clients):
                if key in c.dashboards:
                    c.offer(message)
            st.metrics.pushes.labels("dashboard").inc()
            pushed += 1
    return pushed


async def alert_tick(st: AppState) -> None:
    """Evaluate the alert rules of every workspace that has some; a workspace whose alerts
    changed gets its renders refreshed and its live clients (only those) the active list."""
    workspaces = await st.run(_with_rules, st)
    for ws in workspaces:
        try:
            scope = await st.scoped(ws)
        except NotFound:  # deleted meanwhile
            continue
        try:
            report = await st.run(scope.engine.evaluate_alerts)
        except StoreUnavailable:  # an outage stops every workspace alike: the refresher logs it
            raise
        except Exception:  # one workspace's failure must not stop the others' alerts
            log.exception("alert tick of workspace %s failed", ws)
            continue
        if report.transitions:
            scope.alerts_changed(push="list")  # the other workers push it to their clients
            items = await st.run(scope.engine.alerts, states=["pending", "firing", "recovering"])
            scope.publish({"type": "alerts", "workspace": ws,
                           "items": [alert_json(a) for a in items]})
            st.metrics.pushes.labels("alerts").inc()
    st.metrics.alert_ticks.inc()


def _with_rules(st: AppState) -> list[str]:
    """Workspaces with alert rules (the server's own always: a tick also resolves alerts
    whose rule was deleted), by id."""
    store = st.engine.store
    out = {st.engine.workspace}
    out.update(w["id"] for w in store.workspaces() if store.alert_rules(w["id"]))
    return sorted(out)
