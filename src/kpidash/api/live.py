"""Live updates: the WebSocket endpoint, the Server-Sent Events fallback, and the background
refresher that renders subscribed dashboards and pushes what changed.

WebSocket protocol (JSON messages)::

    → {"type": "auth", "token": "<access token>"}        first, within 10 s (never in the URL)
    ← {"type": "ready", "user": "ana", "role": "analyst"}
    → {"type": "subscribe", "dashboard": "<id>" | "__all__", "theme": "dark"?}
    ← {"type": "dashboard", "id": "<id>", "data": {…widgets…}}   now, and whenever it changes
    ← {"type": "alerts", "items": [...]}                  after an alert tick changed something
    → {"type": "unsubscribe", "dashboard": "<id>"} · {"type": "ping"} ← {"type": "pong"}

A client that reads slowly loses intermediate states, never the latest (see hub.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from kpidash.api.deps import AppState, State, Viewer
from kpidash.api.hub import Client, Message
from kpidash.api.render import alert_json, render
from kpidash.errors import KpidashError

log = logging.getLogger("kpidash.api.live")
router = APIRouter(prefix="/api/v1", tags=["live"])
AUTH_TIMEOUT = 10.0


async def _subscription(st: AppState, client: Client, dashboard: str, theme: str | None,
                        user_id: str) -> tuple[str, dict[str, Any]]:
    """Register (dashboard, theme) for ``client``; returns its key and current render."""
    if dashboard == "__all__":
        spec: dict[str, Any] = {"grain": "day"}
        title = "kpidash"
    else:
        d = await st.run(st.accounts.get_dashboard, user_id, dashboard)
        spec, title = d.spec, d.name
        theme = theme or d.spec.get("theme")
    if theme is None:
        theme = (await st.run(st.accounts.get_user, user_id)).theme
    key = f"{dashboard}|{theme or ''}"
    # render first: a spec or theme that cannot render is refused, never registered (the
    # refresher would fail on it at every tick)
    board = await st.run(render, st, spec, theme=theme, user=client.user, key=dashboard,
                         title=title)
    st.live[key] = (spec, theme, title, client.user, dashboard)
    client.dashboards.add(key)
    return key, board


@router.websocket("/ws")
async def websocket(ws: WebSocket) -> None:
    st: AppState = ws.app.state.kpidash
    await ws.accept()
    try:
        first = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT)
        if not isinstance(first, dict) or first.get("type") != "auth":
            raise KpidashError("the first message must be {\"type\": \"auth\", \"token\": …}")
        claims = await st.run(st.accounts.verify, str(first.get("token", "")))
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
    st.metrics.ws_clients.set(len(st.hub.clients))
    sender = asyncio.create_task(_send(ws, client))
    try:
        await ws.send_json({"type": "ready", "user": claims.username, "role": claims.role})
        while True:
            msg = await ws.receive_json()
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind == "subscribe":
                try:
                    key, board = await _subscription(st, client, str(msg.get("dashboard")),
                                                     msg.get("theme"), claims.user_id)
                except KpidashError as exc:
                    client.offer({"type": "error", "code": "subscribe_failed",
                                  "message": str(exc)[:300]})
                    continue
                st.pushed[key] = board.get("etag")
                client.offer({"type": "dashboard", "id": msg.get("dashboard"), "data": board})
            elif kind == "unsubscribe":
                client.dashboards = {k for k in client.dashboards
                                     if not k.startswith(f"{msg.get('dashboard')}|")}
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


@router.get("/dashboards/{dashboard_id}/events", summary="Live updates as Server-Sent Events")
async def events(st: State, me: Viewer, request: Request, dashboard_id: str,
                 theme: str | None = None) -> StreamingResponse:
    client = st.hub.connect(me.username, me.role)
    try:
        key, board = await _subscription(st, client, dashboard_id, theme, me.user_id)
    except BaseException:
        st.hub.disconnect(client)  # no stream: the client must not stay registered
        raise
    st.pushed[key] = board.get("etag")
    client.offer({"type": "dashboard", "id": dashboard_id, "data": board})
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


async def refresher(st: AppState, stop: asyncio.Event) -> None:
    """Render subscribed dashboards when their data or period changed (renders are cached by
    data version, so unchanged ones cost a dict lookup) and tick the alert manager."""
    loop = asyncio.get_running_loop()
    next_alerts = loop.time() + st.settings.alert_interval_seconds
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(st.changed.wait(), st.settings.refresh_tick_seconds)
        st.changed.clear()
        try:
            await refresh_once(st)
            if loop.time() >= next_alerts:
                next_alerts = loop.time() + st.settings.alert_interval_seconds
                await alert_tick(st)
        except Exception:  # a bad dashboard must not stop the refresher
            log.exception("background refresh failed")


async def refresh_once(st: AppState) -> int:
    """Push every subscribed dashboard whose render changed; returns how many were pushed."""
    pushed = 0
    for key in sorted(st.hub.subscribed()):
        entry = st.live.get(key)
        if entry is None:
            continue
        spec, theme, title, user, dashboard = entry
        try:
            board = await st.run(render, st, spec, theme=theme, user=user, key=dashboard,
                                 title=title)
        except KpidashError:  # e.g. a KPI it shows was deleted: the others still refresh
            log.warning("cannot refresh live dashboard %s", key, exc_info=True)
            continue
        if st.pushed.get(key) != board.get("etag"):
            st.pushed[key] = board.get("etag")
            message = Message({"type": "dashboard", "id": dashboard, "data": board})
            for c in list(st.hub.clients):
                if key in c.dashboards:
                    c.offer(message)
            st.metrics.pushes.labels("dashboard").inc()
            pushed += 1
    return pushed


async def alert_tick(st: AppState) -> None:
    report = await st.run(st.engine.evaluate_alerts)
    st.metrics.alert_ticks.inc()
    if report.transitions:
        st.alerts_changed()
        items = await st.run(st.engine.alerts, states=["pending", "firing", "recovering"])
        st.hub.publish_all({"type": "alerts", "items": [alert_json(a) for a in items]})
        st.metrics.pushes.labels("alerts").inc()
