"""Live updates: the WebSocket protocol, pushes after ingestion and alert ticks (the real
background refresher, inside TestClient's lifespan), Server-Sent Events, and the hub's
drop-to-latest queues."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from kpidash.api import live
from kpidash.api.hub import QUEUE_SIZE, Client, Hub
from kpidash.api.state import LiveEntry

from .conftest import Api, point

Message = dict[str, Any]
WAIT = 10.0  # seconds: the most any expected message may take


def receive(ws: WebSocketTestSession, until: Callable[[Message], bool] = lambda m: True,
            timeout: float = WAIT) -> Message:
    """The first message that satisfies ``until`` (others are skipped); fails after
    ``timeout`` seconds without one."""
    deadline = time.monotonic() + timeout
    pool = ThreadPoolExecutor(1)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no matching message within {timeout} s")
            try:
                message: Message = pool.submit(ws.receive_json).result(timeout=left)
            except FutureTimeout:
                pytest.fail(f"no matching message within {timeout} s")
            if until(message):
                return message
    finally:
        pool.shutdown(wait=False)


@contextmanager
def connected(api: Api, who: str) -> Iterator[WebSocketTestSession]:
    with api.client.websocket_connect("/api/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": api.token(who)})
        ready = receive(ws)
        assert ready["type"] == "ready" and ready["role"] == {"other": "viewer"}.get(who, who)
        yield ws


def dashboard(api: Api, who: str, kpis: list[str]) -> str:
    r = api.client.post("/api/v1/dashboards", headers=api.auth(who),
                        json={"name": "Live", "spec": {"kpis": kpis}})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def card(message: Message, kpi: str) -> float:
    (w,) = [w for w in message["data"]["widgets"]
            if w["type"] == "kpi" and w["data"]["kpi_id"] == kpi]
    return float(w["data"]["value"])


# -- the handshake ----------------------------------------------------------------------------


@pytest.mark.parametrize("first", [
    {"type": "subscribe", "dashboard": "__all__"},  # not auth first
    {"type": "auth", "token": "not-a-token"},
    {"type": "auth"},
    ["auth"],
])
def test_the_first_message_must_authenticate(shared_api: Api, first: Any) -> None:
    with shared_api.client.websocket_connect("/api/v1/ws") as ws:
        ws.send_json(first)
        error = receive(ws)
        assert error["type"] == "error" and error["code"] == "unauthenticated"
        assert error["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401


def test_a_first_message_that_is_not_json(shared_api: Api) -> None:
    with shared_api.client.websocket_connect("/api/v1/ws") as ws:
        ws.send_text("hello")
        assert receive(ws)["code"] == "unauthenticated"
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()


def test_an_expired_token_cannot_open_a_socket(api: Api) -> None:
    from datetime import timedelta

    token = api.token("viewer")
    api.clock.advance(timedelta(minutes=16))
    with api.client.websocket_connect("/api/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert "expired" in receive(ws)["message"]


def test_authentication_times_out(shared_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "AUTH_TIMEOUT", 0.2)
    with shared_api.client.websocket_connect("/api/v1/ws") as ws:
        error = receive(ws)
        assert error["message"] == "authentication timed out"


def test_ping_unknown_and_unsubscribe(api: Api) -> None:
    did = dashboard(api, "viewer", ["revenue"])
    with connected(api, "viewer") as ws:
        ws.send_json({"type": "ping"})
        assert receive(ws) == {"type": "pong"}
        ws.send_json({"type": "shout"})
        assert receive(ws)["code"] == "unknown_message"
        ws.send_json({"type": "subscribe", "dashboard": did})
        assert receive(ws)["type"] == "dashboard"
        assert any(k.startswith(f"default|{did}|") for k in api.st.hub.subscribed())
        ws.send_json({"type": "unsubscribe", "dashboard": did})
        ws.send_json({"type": "ping"})
        assert receive(ws) == {"type": "pong"}  # handled in order: unsubscribed by now
        assert api.st.hub.subscribed() == set()
    assert api.st.hub.clients == set()  # a closed socket leaves the hub


# -- pushes -----------------------------------------------------------------------------------


def test_subscribe_then_an_ingested_point_is_pushed(api: Api) -> None:
    did = dashboard(api, "analyst", ["signups", "revenue"])
    with connected(api, "analyst") as ws:
        ws.send_json({"type": "subscribe", "dashboard": did, "theme": "dark"})
        first = receive(ws)
        assert first["type"] == "dashboard" and first["id"] == did
        assert first["data"]["theme"]["name"] == "dark"
        before = card(first, "signups")

        r = api.client.post("/api/v1/ingest", headers=api.auth("analyst"),
                            json={"points": [point(1000, ts="2024-06-30T18:00:00Z")]})
        assert r.status_code == 200, r.text
        pushed = receive(ws, lambda m: m["type"] == "dashboard" and m["id"] == did
                         and card(m, "signups") != before)
        assert card(pushed, "signups") == before + 1000
        assert pushed["data"]["etag"] != first["data"]["etag"]
        assert card(pushed, "revenue") == card(first, "revenue")


def test_every_kpi_board_and_the_default_theme(api: Api) -> None:
    api.client.patch("/api/v1/me", headers=api.auth("viewer"), json={"theme": "pastel"})
    with connected(api, "viewer") as ws:
        ws.send_json({"type": "subscribe", "dashboard": "__all__"})
        board = receive(ws)
        assert board["id"] == "__all__" and board["data"]["theme"]["name"] == "pastel"
        assert len(board["data"]["widgets"]) == len(api.engine.registry)


def test_a_viewer_cannot_subscribe_to_an_unshared_dashboard(api: Api) -> None:
    did = dashboard(api, "analyst", ["revenue"])
    with connected(api, "viewer") as ws:
        ws.send_json({"type": "subscribe", "dashboard": did})
        error = receive(ws)
        assert error["type"] == "error" and error["code"] == "subscribe_failed"
        assert did in error["message"]
        ws.send_json({"type": "ping"})
        assert receive(ws) == {"type": "pong"}  # the socket stays usable
        assert api.st.hub.subscribed() == set()
    api.client.put(f"/api/v1/dashboards/{did}/share", headers=api.auth("analyst"),
                   json={"user_ids": [api.ids["viewer"]]})
    with connected(api, "viewer") as ws:
        ws.send_json({"type": "subscribe", "dashboard": did})
        assert receive(ws)["type"] == "dashboard"


def test_a_subscription_that_cannot_render_is_refused_not_kept(api: Api) -> None:
    did = dashboard(api, "analyst", ["signups"])
    with connected(api, "analyst") as ws:
        ws.send_json({"type": "subscribe", "dashboard": did, "theme": "neon"})
        error = receive(ws)
        assert error["code"] == "subscribe_failed" and "neon" in error["message"]
        assert api.st.hub.subscribed() == set() and not api.st.live


def test_one_broken_dashboard_does_not_stop_the_others(api: Api) -> None:
    did = dashboard(api, "analyst", ["signups"])
    with connected(api, "analyst") as ws:
        ws.send_json({"type": "subscribe", "dashboard": did})
        before = card(receive(ws), "signups")

        async def break_one() -> None:  # a subscription whose KPI is gone; sorts first
            (client,) = api.st.hub.clients
            api.st.live["!gone|"] = LiveEntry("default", "!gone", {"kpis": ["gone"]}, None,
                                              "Gone", "ana")
            client.dashboards.add("!gone|")

        api.run(break_one)
        api.client.post("/api/v1/ingest", headers=api.auth("analyst"),
                        json={"points": [point(5, ts="2024-06-30T19:00:00Z")]})
        pushed = receive(ws, lambda m: m["type"] == "dashboard" and m["id"] == did
                         and card(m, "signups") != before)
        assert card(pushed, "signups") == before + 5


def test_alert_transitions_are_pushed(api: Api) -> None:
    h = api.auth("analyst")
    with connected(api, "viewer") as ws:
        r = api.client.post("/api/v1/alert-rules", headers=h, json={
            "id": "signups_high", "kpi": "signups", "per": "region",
            "condition": {"kind": "threshold", "direction": "above",
                          "bands": {"high": 100_000}}})
        assert r.status_code == 201, r.text
        api.client.post("/api/v1/ingest", headers=h, json={"points": [point(500_000)]})
        api.run(live.alert_tick, api.st)
        pushed = receive(ws, lambda m: m["type"] == "alerts")
        (alert,) = pushed["items"]
        assert alert["rule_id"] == "signups_high" and alert["state"] == "firing"
        # an acknowledgement is pushed too
        api.client.post(f"/api/v1/alerts/{alert['fingerprint']}/ack", headers=h, json={})
        acked = receive(ws, lambda m: m["type"] == "alert")
        assert acked["alert"]["fingerprint"] == alert["fingerprint"]


# -- Server-Sent Events -----------------------------------------------------------------------


def test_sse_streams_the_dashboard(api: Api) -> None:
    did = dashboard(api, "viewer", ["revenue"])
    url = f"/api/v1/dashboards/{did}/events?theme=light"
    with api.client.stream("GET", url, headers=api.auth("viewer")) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "event: dashboard"
        data = next(lines)
        assert data.startswith("data: ")
        message = json.loads(data.removeprefix("data: "))
        assert message["type"] == "dashboard" and message["id"] == did
        assert message["data"]["theme"]["name"] == "light"


def test_sse_events_are_what_the_openapi_schema_says(api: Api) -> None:
    """The schema documents each event as {event, data} (it said a plain string)."""
    from jsonschema import Draft202012Validator

    doc = api.client.get("/openapi.json").json()
    content = doc["paths"]["/api/v1/dashboards/{dashboard_id}/events"]["get"]["responses"][
        "200"]["content"]
    assert set(content) == {"text/event-stream"}
    did = dashboard(api, "viewer", ["revenue"])
    with api.client.stream("GET", f"/api/v1/dashboards/{did}/events",
                           headers=api.auth("viewer")) as r:
        lines = r.iter_lines()
        event = {"event": next(lines).removeprefix("event: "),
                 "data": next(lines).removeprefix("data: ")}
    Draft202012Validator(content["text/event-stream"]["schema"]).validate(event)
    assert event["event"] == "dashboard" and json.loads(event["data"])["id"] == did


def test_sse_refuses_what_it_cannot_stream(api: Api) -> None:
    did = dashboard(api, "analyst", ["revenue"])
    r = api.client.get(f"/api/v1/dashboards/{did}/events", headers=api.auth("viewer"))
    assert r.status_code == 404
    assert api.client.get(f"/api/v1/dashboards/{did}/events").status_code == 401
    assert api.st.hub.clients == set()  # nothing left registered


# -- the hub ----------------------------------------------------------------------------------


def test_a_slow_client_drops_the_oldest_and_keeps_the_latest() -> None:
    c = Client("ana", "analyst")
    for n in range(QUEUE_SIZE + 5):
        c.offer({"n": n})
    assert c.queue.qsize() == QUEUE_SIZE and c.dropped == 5
    got = [c.queue.get_nowait()["n"] for _ in range(QUEUE_SIZE)]
    assert got == list(range(5, QUEUE_SIZE + 5))  # in order, the newest last


def test_the_hub_fans_out_and_counts_drops() -> None:
    hub = Hub()
    a, b = hub.connect("ana", "analyst"), hub.connect("vera", "viewer")
    a.dashboards.add("d1|")
    assert hub.subscribed() == {"d1|"}
    assert hub.publish_dashboard("d1|", {"type": "dashboard"}) == 1
    for _ in range(QUEUE_SIZE + 2):
        hub.publish_all({"type": "alerts"})
    assert (a.dropped, b.dropped) == (3, 2)
    hub.disconnect(a)
    hub.disconnect(b)
    assert hub.clients == set() and hub.dropped == 5
