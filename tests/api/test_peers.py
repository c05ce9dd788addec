"""Two workers on one PostgreSQL store (api/peers.py): what one changes, the other serves
and pushes to its live clients, with no state only one of them knows.

Both apps run in this process, each with its own PostgresStore on one database (a copy of
the DuckDB demo template made by ``kpidash migrate``'s copy), its own TestClient and event
loop, and one FixedClock: the account cache never expires by time here, so only the
announcements can make a worker see another's writes. tests/cli/test_serve_workers.py runs
the real ``kpidash serve --workers 2``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from kpidash.api import create_app, live
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.settings import Settings
from kpidash.store import open_store
from kpidash.store.base import redact_url
from kpidash.store.migrate import migrate
from loopback import eventually

from .conftest import NOW, SECRET, Api, Template, accounts_for, assert_error, point
from .test_live import card, connected, dashboard, receive

WAIT = 10.0


@contextmanager
def worker(url: str, clock: FixedClock, template: Template, **settings: Any) -> Iterator[Api]:
    engine = Engine(open_store(url), clock)
    accounts = accounts_for(engine, clock)
    options: dict[str, Any] = {"refresh_tick_seconds": 0.05, **settings}
    app = create_app(Settings(db=url, secret=SecretStr(SECRET), **options), clock=clock,
                     engine=engine, accounts=accounts)
    with TestClient(app) as client:
        yield Api(client, app, clock, dict(template.ids))


@pytest.fixture
def pg_demo(template: Template, pg_database: str) -> str:
    """A PostgreSQL database holding the API tests' demo store."""
    source, target = open_store(str(template.path)), open_store(pg_database)
    try:
        migrate(source, target)
    finally:
        source.close()
        target.close()
    return pg_database


@pytest.fixture
def pair(pg_demo: str, template: Template) -> Iterator[tuple[Api, Api]]:
    clock = FixedClock(NOW)
    with ExitStack() as stack:
        a = stack.enter_context(worker(pg_demo, clock, template))
        b = stack.enter_context(worker(pg_demo, clock, template))
        yield a, b


def test_both_workers_share_the_store_and_hear_each_other(pair: tuple[Api, Api]) -> None:
    a, b = pair
    assert a.st.peers.shared and b.st.peers.shared
    assert a.st.peers.node != b.st.peers.node
    health = b.client.get("/api/v1/health").json()
    assert health["worker"]["id"] == b.st.peers.node
    assert health["worker"]["runs_alert_ticks"] == b.st.leading
    assert health["store"] == redact_url(b.engine.store.url)  # never a password


def test_health_never_shows_a_password() -> None:
    assert redact_url("postgresql://kp:s3cret@db:5432/kp") == "postgresql://kp:***@db:5432/kp"
    assert redact_url("duckdb:./a:b@c.duckdb") == "duckdb:./a:b@c.duckdb"


def test_a_session_made_by_one_worker_works_on_the_other_and_logout_ends_it_on_both(
        pair: tuple[Api, Api]) -> None:
    a, b = pair
    tokens = a.pair("viewer")
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert b.client.get("/api/v1/me", headers=h).status_code == 200  # cached in b now
    assert a.client.post("/api/v1/auth/logout", headers=h).status_code == 204
    # b's cache never expires by the fixed clock: only a's announcement can end it
    eventually(lambda: b.client.get("/api/v1/me", headers=h).status_code == 401,
               "the other worker refuses a token whose session was ended")


def test_points_ingested_on_one_worker_are_served_by_the_other(pair: tuple[Api, Api]) -> None:
    a, b = pair
    did = dashboard(b, "viewer", ["signups"])
    url = f"/api/v1/dashboards/{did}/render"
    before = card({"data": b.client.get(url, headers=b.auth("viewer")).json()}, "signups")
    r = a.client.post("/api/v1/ingest", headers=a.auth("analyst"),
                      json={"points": [point(7, ts="2024-06-30T20:00:00Z")]})
    assert r.status_code == 200, r.text

    def rendered() -> bool:
        board = b.client.get(url, headers=b.auth("viewer")).json()
        return card({"data": board}, "signups") == before + 7

    eventually(rendered, "the other worker's cached render is replaced")


def test_the_other_workers_live_clients_get_the_update(pair: tuple[Api, Api]) -> None:
    a, b = pair
    did = dashboard(b, "viewer", ["signups"])
    with connected(b, "viewer") as ws:
        ws.send_json({"type": "subscribe", "dashboard": did})
        first = receive(ws, lambda m: m["type"] == "dashboard")
        before = card(first, "signups")
        r = a.client.post("/api/v1/ingest", headers=a.auth("analyst"),
                          json={"points": [point(11, ts="2024-06-30T21:00:00Z")]})
        assert r.status_code == 200, r.text
        pushed = receive(ws, lambda m: m["type"] == "dashboard" and card(m, "signups") != before)
        assert card(pushed, "signups") == before + 11


def test_a_kpi_defined_on_one_worker_can_be_used_on_the_other(pair: tuple[Api, Api]) -> None:
    a, b = pair
    h = a.auth("analyst")
    r = a.client.post("/api/v1/kpis", headers=h,
                      json={"id": "nps", "name": "NPS", "aggregation": "mean"})
    assert r.status_code == 201, r.text
    eventually(lambda: b.client.get("/api/v1/kpis/nps", headers=b.auth("viewer")).status_code
               == 200, "the other worker knows the new KPI")
    r = b.client.post("/api/v1/ingest", headers=b.auth("analyst"), json={"points": [
        {"kpi": "nps", "ts": "2024-06-30T12:00:00Z", "value": 42}]})
    assert r.status_code == 200, r.text
    assert a.client.delete("/api/v1/kpis/nps?purge=true", headers=h).status_code == 204
    eventually(lambda: b.client.get("/api/v1/kpis/nps", headers=b.auth("viewer")).status_code
               == 404, "the other worker forgets the deleted KPI")


def test_workspace_settings_changed_on_one_worker_apply_on_the_other(
        pair: tuple[Api, Api]) -> None:
    a, b = pair
    assert b.client.get("/api/v1/kpis", headers=b.auth("viewer")).status_code == 200
    assert b.st.default.engine.timezone == "UTC"
    r = a.client.patch("/api/v1/workspaces/default", headers=a.auth("admin"),
                       json={"settings": {"timezone": "Asia/Tokyo"}})
    assert r.status_code == 200, r.text
    eventually(lambda: b.st.scopes.get("default") is None
               or b.st.scopes["default"].options.timezone == "Asia/Tokyo",
               "the other worker drops the workspace's old settings")


def test_one_ingest_bucket_per_workspace_whatever_worker_takes_the_request(
        pg_demo: str, template: Template) -> None:
    clock = FixedClock(NOW)
    limits = {"quota_ingest_points_per_minute": 10}
    with worker(pg_demo, clock, template, **limits) as a, \
            worker(pg_demo, clock, template, **limits) as b:
        batch = {"points": [point(1, ts=f"2024-06-30T0{i}:00:00Z") for i in range(6)]}
        assert a.client.post("/api/v1/ingest", headers=a.auth("analyst"),
                             json=batch).status_code == 200
        # 4 left in the one bucket, not 10 in b's own
        r = b.client.post("/api/v1/ingest", headers=b.auth("analyst"), json=batch)
        error = assert_error(r, 429, "quota_exceeded")
        assert "4 may be sent now" in error["message"]
        small = {"points": batch["points"][:4]}
        assert b.client.post("/api/v1/ingest", headers=b.auth("analyst"),
                             json=small).status_code == 200
        usage = a.client.get("/api/v1/workspaces/default/usage", headers=a.auth("admin"))
        assert usage.json()["usage"]["ingest_points_available"] == 0


def test_alert_ticks_run_in_one_worker_and_reach_the_clients_of_both(
        pair: tuple[Api, Api]) -> None:
    a, b = pair
    leaders = eventually(lambda: [w for w in (a, b) if w.st.leading] or None,
                         "one worker leads")
    assert len(leaders) == 1
    leader, other = (a, b) if leaders[0] is a else (b, a)
    h = other.auth("analyst")
    with connected(other, "viewer") as ws:
        r = other.client.post("/api/v1/alert-rules", headers=h, json={
            "id": "signups_high", "kpi": "signups", "per": "region",
            "condition": {"kind": "threshold", "direction": "above",
                          "bands": {"high": 100_000}}})
        assert r.status_code == 201, r.text
        other.client.post("/api/v1/ingest", headers=h, json={"points": [point(500_000)]})
        leader.run(live.alert_tick, leader.st)  # the tick the leader's refresher would run
        pushed = receive(ws, lambda m: m["type"] == "alerts")
        (alert,) = pushed["items"]
        assert alert["rule_id"] == "signups_high" and alert["state"] == "firing"
        # an acknowledgement on the leader reaches the other worker's client too
        leader.client.post(f"/api/v1/alerts/{alert['fingerprint']}/ack",
                           headers=leader.auth("analyst"), json={})
        acked = receive(ws, lambda m: m["type"] == "alert")
        assert acked["alert"]["fingerprint"] == alert["fingerprint"]
        assert acked["alert"]["acknowledgement"] is not None


def test_leadership_moves_when_the_leader_stops(pg_demo: str, template: Template) -> None:
    clock = FixedClock(NOW)
    with ExitStack() as first:
        a = first.enter_context(worker(pg_demo, clock, template))
        eventually(lambda: a.st.leading, "the first worker leads")
        with worker(pg_demo, clock, template) as b:
            time.sleep(0.3)
            assert a.st.leading and not b.st.leading
            first.close()  # a stops: its refresher gives the lock up
            eventually(lambda: b.st.leading, "the other worker takes over",
                       timeout=live.LEADERSHIP_CHECK_SECONDS + WAIT)


def test_a_worker_that_may_have_missed_messages_drops_its_caches(
        pair: tuple[Api, Api]) -> None:
    """A change nobody announced (as if its message was lost) is served after the listener
    reconnects: the reconnection drops every cache."""
    a, b = pair
    did = dashboard(b, "viewer", ["signups"])
    url = f"/api/v1/dashboards/{did}/render"
    before = card({"data": b.client.get(url, headers=b.auth("viewer")).json()}, "signups")
    with a.st.lock:  # written behind the workers' backs: no announcement
        a.engine.ingest([point(13, ts="2024-06-30T22:00:00Z")])
    time.sleep(0.2)
    assert card({"data": b.client.get(url, headers=b.auth("viewer")).json()},
                "signups") == before  # still b's cached render
    a.engine.store._run(  # type: ignore[attr-defined]
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()")
    eventually(lambda: card({"data": b.client.get(url, headers=b.auth("viewer")).json()},
                            "signups") == before + 13, "the reconnected worker renders afresh")
