"""Ingest tokens over HTTP: a workspace's admins create, list and revoke them; a token writes
points into its own workspace only (JSON, file upload, line protocol — InfluxDB clients with
nothing but ``Authorization: Token kpi_…``) and is refused everywhere else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from .conftest import Api, assert_error, point

SIGNUPS = {"id": "signups", "name": "Sign-ups", "unit": "count", "aggregation": "sum",
           "dimensions": ["region", "plan", "channel"]}
WS = "/api/v1/workspaces/acme"
TOKENS = f"{WS}/ingest-tokens"
LINE = b"signups,region=EU,plan=pro,channel=paid value=%d 1719000000000000000\n"


def acme(api: Api, **members: str) -> None:
    """Workspace ``acme`` with the ``signups`` KPI and these members (role name → role)."""
    c, admin = api.client, api.auth("admin")
    assert c.post("/api/v1/workspaces", headers=admin,
                  json={"id": "acme", "name": "Acme"}).status_code == 201
    for who, role in members.items():
        assert c.put(f"{WS}/members/{api.ids[who]}", headers=admin,
                     json={"role": role}).status_code == 204
    assert c.post(f"{WS}/kpis", headers=admin, json=SIGNUPS).status_code == 201


def create(api: Api, who: str = "admin", path: str = TOKENS, **body: Any) -> dict[str, Any]:
    r = api.client.post(path, headers=api.auth(who), json={"name": "telegraf", **body})
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    return doc


def influx(secret: str) -> dict[str, str]:
    return {"Authorization": f"Token {secret}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def counts(api: Api) -> dict[str, int]:
    """Stored signups points per workspace."""
    with api.st.lock:
        return {ws: api.engine.store.point_count(ws, "signups") for ws in ("default", "acme")}


def test_telegraf_writes_into_the_tokens_workspace_with_nothing_but_the_token(api: Api) -> None:
    acme(api)
    secret = create(api)["token"]
    before = counts(api)
    r = api.client.post("/api/v2/write", headers=influx(secret), content=LINE % 5)
    assert r.status_code == 204, r.text
    assert counts(api) == {**before, "acme": before["acme"] + 1}
    # the same with the workspace named, InfluxDB 1.x style, and on the workspace's own paths
    for path in ("/api/v2/write?bucket=acme", "/write?db=acme", "/write", f"{WS}/write"):
        r = api.client.post(path, headers=influx(secret), content=LINE % 6)
        assert r.status_code == 204, (path, r.text)
    r = api.client.post(f"{WS}/ingest", headers=bearer(secret),
                        json={"points": [point(3, ts="2024-06-20T12:00:00Z")]})
    assert r.status_code == 200 and r.json()["written"] == 1, r.text
    r = api.client.post(f"{WS}/ingest/file", headers=bearer(secret),
                        content=b"timestamp,kpi,value,region,plan,channel\n"
                                b"2024-06-19T00:00:00Z,signups,2,EU,pro,paid\n")
    assert r.status_code == 200 and r.json()["written"] == 1, r.text
    assert counts(api) == {**before, "acme": before["acme"] + 3}  # line protocol: same point
    assert counts(api)["default"] == before["default"]
    (listed,) = api.client.get(TOKENS, headers=api.auth("admin")).json()
    assert listed["last_used_at"] == api.clock.now().isoformat()


def test_a_token_cannot_write_into_another_workspace(api: Api) -> None:
    acme(api)
    assert api.client.post("/api/v1/workspaces", headers=api.auth("admin"),
                           json={"id": "beta", "name": "Beta"}).status_code == 201
    secret = create(api)["token"]
    before = counts(api)
    for path in ("/api/v2/write?bucket=default", "/write?db=beta", "/write?db=nowhere",
                 "/api/v1/write", "/api/v1/workspaces/default/write",
                 "/api/v1/workspaces/beta/write"):
        r = api.client.post(path, headers=influx(secret), content=LINE % 9)
        err = assert_error(r, 404, "not_found")
        assert "acme" in err["message"], err  # its own workspace: the holder knows it
    for path in ("/api/v1/ingest", "/api/v1/workspaces/beta/ingest"):
        assert_error(api.client.post(path, headers=bearer(secret),
                                     json={"points": [point(9)]}), 404)
    for path in ("/api/v1/ingest/file", "/api/v1/workspaces/default/ingest/file"):
        assert_error(api.client.post(path, headers=bearer(secret),
                                     content=b"timestamp,kpi,value\n2024-06-30,signups,9\n"),
                     404)
    assert counts(api) == before


@pytest.mark.parametrize(("method", "path"), [
    ("GET", f"{WS}/series/signups"), ("GET", f"{WS}/kpis"), ("GET", f"{WS}/dashboards"),
    ("GET", "/api/v1/series/signups"), ("GET", "/api/v1/kpis"), ("GET", f"{WS}/alerts"),
    ("POST", f"{WS}/kpis"), ("DELETE", f"{WS}/kpis/signups"), ("GET", "/api/v1/me"),
    ("GET", "/api/v1/workspaces"), ("GET", TOKENS), ("POST", TOKENS),
    ("GET", "/api/v1/portfolio?kpi=signups")])
def test_a_token_reads_and_changes_nothing_else(api: Api, method: str, path: str) -> None:
    acme(api)
    secret = create(api)["token"]
    for headers in (bearer(secret), influx(secret)):
        r = api.client.request(method, path, headers=headers, json={"name": "x"})
        err = assert_error(r, 401, "invalid_token")
        assert "only writes points" in err["message"], err
    assert [t["name"] for t in api.client.get(TOKENS, headers=api.auth("admin")).json()] == [
        "telegraf"]


def test_revoked_expired_and_unknown_tokens_are_refused(api: Api) -> None:
    acme(api)
    c, admin = api.client, api.auth("admin")
    revoked = create(api, name="old")
    expiring = create(api, name="nightly",
                      expires_at=(api.clock.now() + timedelta(days=1)).isoformat())
    for doc in (revoked, expiring):
        assert c.post("/api/v2/write", headers=influx(doc["token"]),
                      content=LINE % 1).status_code == 204
    before = counts(api)
    assert c.delete(f"{TOKENS}/{revoked['id']}", headers=admin).status_code == 204
    assert "revoked" in assert_error(
        c.post("/api/v2/write", headers=influx(revoked["token"]), content=LINE % 2),
        401, "invalid_token")["message"]
    api.clock.advance(timedelta(days=1))
    try:
        assert "expired" in assert_error(
            c.post("/api/v2/write", headers=influx(expiring["token"]), content=LINE % 3),
            401, "invalid_token")["message"]
        fresh = bearer(api.login("admin").json()["access_token"])  # 15 min access tokens
        states = {t["name"]: t["state"] for t in c.get(TOKENS, headers=fresh).json()}
        assert states == {"old": "revoked", "nightly": "expired"}
    finally:
        api.clock.set(api.clock.now() - timedelta(days=1))
    for secret in ("kpi_" + "A" * 43, "kpi_", revoked["token"][:-1]):
        err = assert_error(c.post("/api/v2/write", headers=influx(secret), content=LINE % 4),
                           401, "invalid_token")
        assert "not recognised" in err["message"]
    assert counts(api) == before
    assert_error(c.delete(f"{TOKENS}/itk_nope", headers=admin), 404)


def test_the_secret_is_shown_once_and_never_listed(api: Api) -> None:
    acme(api)
    doc = create(api, name="batch-job")
    secret = doc["token"]
    assert secret.startswith("kpi_") and doc["name"] == "batch-job" and doc["state"] == "active"
    assert doc["workspace"] == "acme" and doc["created_by"] == api.ids["admin"]
    r = api.client.get(TOKENS, headers=api.auth("admin"))
    assert r.status_code == 200 and secret not in r.text and '"token"' not in r.text
    assert [{k: t[k] for k in ("id", "name", "state")} for t in r.json()] == [
        {"id": doc["id"], "name": "batch-job", "state": "active"}]


def test_only_workspace_admins_manage_tokens(api: Api) -> None:
    acme(api, viewer="viewer", analyst="analyst", other="admin")
    c = api.client
    for who, status in (("viewer", 403), ("analyst", 403)):
        err = assert_error(c.post(TOKENS, headers=api.auth(who), json={"name": "t"}), status)
        assert "admin" in err["message"]
        assert_error(c.get(TOKENS, headers=api.auth(who)), status)
    doc = create(api, who="other")  # a workspace admin who is a viewer in default
    assert_error(c.post("/api/v1/workspaces/default/ingest-tokens",
                        headers=api.auth("other"), json={"name": "t"}), 403)
    assert_error(c.delete(f"{TOKENS}/{doc['id']}", headers=api.auth("analyst")), 403)
    # not a member of beta: 404, as if it did not exist
    assert c.post("/api/v1/workspaces", headers=api.auth("admin"),
                  json={"id": "beta", "name": "Beta"}).status_code == 201
    assert_error(c.get("/api/v1/workspaces/beta/ingest-tokens", headers=api.auth("other")), 404)
    assert_error(c.post("/api/v1/workspaces/beta/ingest-tokens", headers=api.auth("other"),
                        json={}), 404)  # membership before the body is looked at
    assert [t["id"] for t in c.get(TOKENS, headers=api.auth("admin")).json()] == [doc["id"]]


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 101},
                                  {"name": "t", "expires_at": "2030-01-01T00:00:00"},
                                  {"name": "t", "expires_at": "2020-01-01T00:00:00Z"},
                                  {"name": "t", "scope": "read"}])
def test_bad_bodies_are_refused(api: Api, body: dict[str, Any]) -> None:
    acme(api)
    r = api.client.post(TOKENS, headers=api.auth("admin"), json=body)
    assert r.status_code in (400, 422), r.text
    assert api.client.get(TOKENS, headers=api.auth("admin")).json() == []


def test_users_still_ingest_with_their_access_tokens(api: Api) -> None:
    acme(api, analyst="analyst", viewer="viewer")
    c = api.client
    token = api.token("analyst")
    assert c.post("/api/v2/write?bucket=acme", headers=influx(token),
                  content=LINE % 1).status_code == 204
    assert c.post(f"{WS}/ingest", headers=api.auth("analyst"),
                  json={"points": [point(1)]}).status_code == 200
    assert_error(c.post(f"{WS}/ingest", headers=api.auth("viewer"),
                        json={"points": [point(1)]}), 403)
    assert_error(c.post("/api/v2/write?bucket=acme", headers=api.auth("other"),
                        content=LINE % 1), 404)


def test_deleting_the_workspace_deletes_its_tokens(api: Api) -> None:
    acme(api)
    secret = create(api)["token"]
    assert api.client.post("/api/v2/write", headers=influx(secret),
                           content=LINE % 1).status_code == 204
    r = api.client.delete("/api/v1/workspaces/acme", headers=api.auth("admin"))
    assert r.status_code == 200 and r.json()["deleted"]["ingest_tokens"] == 1, r.text
    err = assert_error(api.client.post("/api/v2/write", headers=influx(secret),
                                       content=LINE % 1), 401, "invalid_token")
    assert "not recognised" in err["message"]


def test_an_ingest_token_cannot_open_a_live_connection(api: Api) -> None:
    acme(api)
    secret = create(api)["token"]
    with api.client.websocket_connect("/api/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": secret})
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["code"] == "unauthenticated"
        assert "ingest token" in msg["message"]
