"""Workspace administration over the API: server admins create and delete workspaces,
workspace admins rename them and manage members; others see nothing of them."""

from __future__ import annotations

from typing import Any

from .conftest import Api, assert_error


def test_workspace_lifecycle_and_roles(api: Api) -> None:
    c = api.client
    admin, viewer, other = api.auth("admin"), api.auth("viewer"), api.auth("other")
    assert_error(c.post("/api/v1/workspaces", headers=viewer,
                        json={"id": "acme", "name": "Acme"}), 403)
    r = c.post("/api/v1/workspaces", headers=admin,
               json={"id": "acme", "name": "Acme", "settings": {"currency": "EUR"}})
    assert r.status_code == 201, r.text
    assert r.json()["settings"]["currency"] == "EUR"
    assert_error(c.post("/api/v1/workspaces", headers=admin,
                        json={"id": "acme", "name": "Again"}), 409)
    assert_error(c.post("/api/v1/workspaces", headers=admin,
                        json={"id": "Bad Id", "name": "x"}), 422)
    # the viewer is not a member: acme is invisible to them (404, never 403)
    assert [w["id"] for w in c.get("/api/v1/workspaces", headers=viewer).json()] == ["default"]
    assert_error(c.get("/api/v1/workspaces/acme/members", headers=viewer), 404)
    r = c.put(f"/api/v1/workspaces/acme/members/{api.ids['viewer']}", headers=admin,
              json={"role": "admin"})
    assert r.status_code == 204, r.text
    ids = {w["id"]: w for w in c.get("/api/v1/workspaces", headers=viewer).json()}
    assert ids["acme"]["role"] == "admin"
    # now a workspace admin: may rename and manage members, may not delete (server admin)
    r = c.patch("/api/v1/workspaces/acme", headers=viewer, json={"name": "Acme Corp"})
    assert r.status_code == 200 and r.json()["name"] == "Acme Corp"
    assert c.put(f"/api/v1/workspaces/acme/members/{api.ids['other']}", headers=viewer,
                 json={"role": "viewer"}).status_code == 204
    members: list[dict[str, Any]] = c.get("/api/v1/workspaces/acme/members",
                                          headers=viewer).json()
    assert len(members) == 3  # creator, viewer (admin), other (viewer)
    assert_error(c.get("/api/v1/workspaces/acme/members", headers=other), 403)  # a member
    assert_error(c.delete(f"/api/v1/workspaces/acme/members/{api.ids['admin']}",
                          headers=other), 403)
    assert_error(c.delete("/api/v1/workspaces/acme", headers=viewer), 403)
    assert_error(c.delete("/api/v1/workspaces/default", headers=admin), 409)
    r = c.delete("/api/v1/workspaces/acme", headers=admin)
    assert r.status_code == 200 and "deleted" in r.json()
    assert [w["id"] for w in c.get("/api/v1/workspaces", headers=viewer).json()] == ["default"]


def test_adding_a_member_answers_the_status_it_documents(api: Api) -> None:
    """PUT …/members/{user_id} answered 204 while the schema said 200 (found by fuzzing)."""
    doc = api.client.get("/openapi.json").json()
    responses = doc["paths"]["/api/v1/workspaces/{workspace}/members/{user_id}"]["put"][
        "responses"]
    assert "204" in responses and "200" not in responses
    r = api.client.put(f"/api/v1/workspaces/default/members/{api.ids['other']}",
                       headers=api.auth("admin"), json={"role": "analyst"})
    assert r.status_code == 204 and r.content == b""
