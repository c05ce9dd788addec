"""Every data endpoint per workspace: ``/api/v1/workspaces/{workspace}/...`` serves that
workspace's KPIs, data, alerts, dashboards and live updates to its members, with their role
there; ``/api/v1/...`` is the server's own workspace (``default``)."""

from __future__ import annotations

from typing import Any

from kpidash.api import live

from .conftest import Api, assert_error, point
from .test_live import connected, receive

SIGNUPS = {"id": "signups", "name": "Sign-ups", "unit": "count", "aggregation": "sum",
           "dimensions": ["region", "plan", "channel"]}
WS = "/api/v1/workspaces/acme"


def acme(api: Api, **members: str) -> None:
    """Workspace ``acme`` (Europe/Paris, EUR) with the ``signups`` KPI of the same id as the
    demo's, and these members (role name → role there)."""
    c, admin = api.client, api.auth("admin")
    r = c.post("/api/v1/workspaces", headers=admin, json={
        "id": "acme", "name": "Acme", "settings": {"timezone": "Europe/Paris",
                                                   "currency": "EUR"}})
    assert r.status_code == 201, r.text
    for who, role in members.items():
        r = c.put(f"{WS}/members/{api.ids[who]}", headers=admin, json={"role": role})
        assert r.status_code == 204, r.text
    r = c.post(f"{WS}/kpis", headers=admin, json=SIGNUPS)
    assert r.status_code == 201, r.text


def total(api: Api, base: str, who: str) -> float:
    r = api.client.get(f"{base}/series/signups?grain=month&from=2024-06-01T00:00:00Z"
                       "&to=2024-07-01T00:00:00Z", headers=api.auth(who))
    assert r.status_code == 200, r.text
    return float(sum(v for s in r.json() for v in s["values"] if v is not None))


def test_same_kpi_id_two_workspaces_nothing_crosses(api: Api) -> None:
    acme(api, analyst="analyst")
    c = api.client
    before = total(api, "/api/v1", "analyst")
    assert total(api, WS, "analyst") == 0
    r = c.post(f"{WS}/ingest", headers=api.auth("analyst"),
               json={"points": [point(7, ts="2024-06-15T12:00:00Z")]})
    assert r.status_code == 200 and r.json()["written"] == 1, r.text
    assert total(api, WS, "analyst") == 7
    assert total(api, "/api/v1", "analyst") == before  # default unchanged
    assert total(api, "/api/v1/workspaces/default", "analyst") == before  # = the legacy path
    # the KPI lists differ: acme has only its own definition
    ids = [k["id"] for k in c.get(f"{WS}/kpis", headers=api.auth("analyst")).json()]
    assert ids == ["signups"]
    assert_error(c.get(f"{WS}/kpis/revenue", headers=api.auth("analyst")), 404)


def test_roles_are_per_workspace(api: Api) -> None:
    # vera is a viewer in default and an analyst in acme; ana is not in acme at all
    acme(api, viewer="analyst")
    c, vera, ana = api.client, api.auth("viewer"), api.auth("analyst")
    body = {"points": [point(1)]}
    assert c.post(f"{WS}/ingest", headers=vera, json=body).status_code == 200
    assert_error(c.post("/api/v1/ingest", headers=vera, json=body), 403)
    err = assert_error(c.post(f"{WS}/ingest", headers=ana, json=body), 404)
    assert "acme" in err["message"]
    # a non-member gets the same answer as for a workspace that does not exist
    missing = assert_error(c.post("/api/v1/workspaces/nope/ingest", headers=ana, json=body),
                           404)
    assert missing["code"] == err["code"]
    assert_error(c.get(f"{WS}/kpis", headers=ana), 404)
    assert_error(c.get(f"{WS}/kpis"), 401)  # no token: 401 before anything else


def test_dashboards_belong_to_their_workspace(api: Api) -> None:
    acme(api, viewer="viewer")
    c, vera = api.client, api.auth("viewer")
    r = c.post(f"{WS}/dashboards", headers=vera, json={"name": "Acme board",
                                                       "spec": {"kpis": ["signups"]}})
    assert r.status_code == 201, r.text
    did = r.json()["id"]
    assert [d["id"] for d in c.get(f"{WS}/dashboards", headers=vera).json()] == [did]
    assert did not in [d["id"] for d in c.get("/api/v1/dashboards", headers=vera).json()]
    assert_error(c.get(f"/api/v1/dashboards/{did}", headers=vera), 404)
    assert_error(c.get(f"/api/v1/dashboards/{did}/render", headers=vera), 404)
    board = c.get(f"{WS}/dashboards/{did}/render", headers=vera)
    assert board.status_code == 200, board.text
    assert [w["data"]["kpi_id"] for w in board.json()["widgets"] if w["type"] == "kpi"] == \
        ["signups"]
    # a KPI of default is unknown in acme
    r = c.post(f"{WS}/dashboards", headers=vera, json={"name": "x",
                                                       "spec": {"kpis": ["revenue"]}})
    assert_error(r, 404)
    # sharing with a user who is not a member of acme is refused
    r = c.put(f"{WS}/dashboards/{did}/share", headers=vera,
              json={"user_ids": [api.ids["other"]]})
    assert "not members" in assert_error(r, 400)["message"]


def test_the_workspace_time_zone_is_its_engines(api: Api) -> None:
    acme(api, analyst="analyst")
    scope = api.run(api.st.scoped, "acme")
    assert scope.engine.timezone == "Europe/Paris" and scope.options.currency == "EUR"
    assert api.st.default.engine.timezone == "UTC"
    # a new time zone takes effect at once
    r = api.client.patch(WS, headers=api.auth("admin"),
                         json={"settings": {"timezone": "Asia/Tokyo"}})
    assert r.status_code == 200, r.text
    assert api.run(api.st.scoped, "acme").engine.timezone == "Asia/Tokyo"


def test_line_protocol_is_bound_to_the_named_workspace(api: Api) -> None:
    acme(api, analyst="analyst")
    c = api.client
    line = b"signups,region=EU,plan=pro,channel=paid value=3 1718452800000000000\n"
    token = {"Authorization": f"Token {api.token('analyst')}"}
    assert c.post("/api/v2/write?bucket=acme&org=any", headers=token,
                  content=line).status_code == 204
    assert c.post("/write?db=acme", headers=token, content=line).status_code == 204
    assert c.post(f"{WS}/write", headers=token, content=line).status_code == 204
    assert total(api, WS, "analyst") == 3  # the same point three times: stored once
    assert_error(c.post("/write?db=nope", headers=token, content=line), 404)
    assert_error(c.post("/api/v2/write?bucket=acme", headers={"Authorization":
                                                              f"Token {api.token('other')}"},
                        content=line), 404)
    assert_error(c.post("/write?db=acme", content=line), 401)


def test_live_updates_and_alerts_stay_in_their_workspace(api: Api) -> None:
    acme(api, analyst="analyst")
    c, h = api.client, api.auth("analyst")
    rule = {"id": "signups_high", "kpi": "signups", "per": "region",
            "condition": {"kind": "threshold", "direction": "above", "bands": {"high": 100}}}
    assert c.post(f"{WS}/alert-rules", headers=h, json=rule).status_code == 201
    did = c.post(f"{WS}/dashboards", headers=h, json={"name": "A", "spec": {
        "kpis": ["signups"]}}).json()["id"]
    with connected(api, "analyst") as ws, connected(api, "viewer") as other:
        # vera is not in acme: her subscription is refused like an unknown workspace
        other.send_json({"type": "subscribe", "dashboard": did, "workspace": "acme"})
        refused: dict[str, Any] = receive(other)
        assert refused["code"] == "subscribe_failed" and "acme" in refused["message"]
        ws.send_json({"type": "subscribe", "dashboard": did, "workspace": "acme"})
        first = receive(ws, lambda m: m["type"] == "dashboard")
        assert first["workspace"] == "acme"
        c.post(f"{WS}/ingest", headers=h, json={"points": [point(500)]})
        api.run(live.alert_tick, api.st)
        pushed = receive(ws, lambda m: m["type"] == "alerts")
        assert pushed["workspace"] == "acme" and pushed["items"][0]["rule_id"] == "signups_high"
        other.send_json({"type": "ping"})
        # vera (default only) got no alert of acme before her pong
        assert receive(other) == {"type": "pong"}


def test_deleting_a_workspace_forgets_it(api: Api) -> None:
    acme(api, analyst="analyst")
    c = api.client
    assert c.get(f"{WS}/kpis", headers=api.auth("analyst")).status_code == 200
    assert "acme" in api.st.scopes
    assert c.delete(WS, headers=api.auth("admin")).status_code == 200
    assert "acme" not in api.st.scopes
    assert_error(c.get(f"{WS}/kpis", headers=api.auth("admin")), 404)
    assert_error(c.get(f"{WS}/kpis", headers=api.auth("analyst")), 404)


def test_a_request_in_flight_cannot_write_into_a_deleted_workspace(api: Api) -> None:
    """A request that resolved the workspace before it was deleted and reaches the store
    after is refused: no rows for a workspace that no longer exists (or for a new one that
    takes its id later)."""
    import pytest

    from kpidash.errors import NotFound

    acme(api, analyst="analyst")
    stale = api.run(api.st.scoped, "acme")
    assert api.client.delete(WS, headers=api.auth("admin")).status_code == 200
    with pytest.raises(NotFound, match="acme"):
        api.run(stale.run, stale.engine.ingest, [point(1)])
    with api.st.lock:
        assert api.st.engine.store.point_count("acme", "signups") == 0


def test_unsubscribing_stops_a_workspaces_alerts(api: Api) -> None:
    acme(api, analyst="analyst")
    c, h = api.client, api.auth("analyst")
    rule = {"id": "signups_high", "kpi": "signups", "per": "region",
            "condition": {"kind": "threshold", "direction": "above", "bands": {"high": 100}}}
    assert c.post(f"{WS}/alert-rules", headers=h, json=rule).status_code == 201
    did = c.post(f"{WS}/dashboards", headers=h, json={"name": "A", "spec": {
        "kpis": ["signups"]}}).json()["id"]
    with connected(api, "analyst") as ws:
        ws.send_json({"type": "subscribe", "dashboard": did, "workspace": "acme"})
        receive(ws, lambda m: m["type"] == "dashboard")
        ws.send_json({"type": "unsubscribe", "dashboard": did, "workspace": "acme"})
        ws.send_json({"type": "ping"})
        receive(ws, lambda m: m["type"] == "pong")
        (client,) = api.st.hub.clients
        assert client.workspaces == {"default"}  # ana is a member of default
        c.post(f"{WS}/ingest", headers=h, json={"points": [point(500)]})
        api.run(live.alert_tick, api.st)
        ws.send_json({"type": "ping"})
        # nothing of acme arrives before the pong
        assert receive(ws, lambda m: m["type"] != "dashboard") == {"type": "pong"}
