"""Dashboard layouts and themes persist across logins; shared dashboards are read-only."""

from __future__ import annotations

from typing import Any

from .conftest import Api, assert_error

LAYOUT = [{"id": "chart:revenue:region", "x": 0, "y": 0, "w": 6, "h": 4},
          {"id": "insights", "x": 6, "y": 0, "w": 6, "h": 4}]
MOVED = [{"id": "insights", "x": 0, "y": 0, "w": 12, "h": 3},
         {"id": "chart:revenue:region", "x": 0, "y": 3, "w": 12, "h": 5},
         {"id": "chart:signups", "x": 0, "y": 8, "w": 6, "h": 4}]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_dashboard(api: Api, who: str, **spec: Any) -> dict[str, Any]:
    r = api.client.post("/api/v1/dashboards", headers=api.auth(who), json={
        "name": "Growth", "spec": {"kpis": ["revenue", "signups"], "layout": LAYOUT, **spec}})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_saved_layout_comes_back_after_logging_in_again(api: Api) -> None:
    first = api.login("analyst").json()
    r = api.client.post("/api/v1/dashboards", headers=bearer(first["access_token"]), json={
        "name": "Growth", "spec": {"kpis": ["revenue", "signups"], "layout": LAYOUT,
                                   "theme": "dark"}})
    d = r.json()
    r = api.client.patch(f"/api/v1/dashboards/{d['id']}", headers=bearer(first["access_token"]),
                         json={"spec": {**d["spec"], "layout": MOVED, "theme": "pastel",
                                        "range": {"last": "12w"}, "grain": "week"}})
    assert r.status_code == 200, r.text
    assert api.client.post("/api/v1/auth/logout",
                           headers=bearer(first["access_token"])).status_code == 204
    assert_error(api.client.get(f"/api/v1/dashboards/{d['id']}",
                                headers=bearer(first["access_token"])), 401)

    again = api.login("analyst").json()
    assert again["access_token"] != first["access_token"]
    h = bearer(again["access_token"])
    (listed,) = api.client.get("/api/v1/dashboards", headers=h).json()
    assert listed["id"] == d["id"]
    back = api.client.get(f"/api/v1/dashboards/{d['id']}", headers=h).json()
    assert back["spec"]["layout"] == MOVED and back["spec"]["theme"] == "pastel"
    assert back["spec"]["grain"] == "week" and back["spec"]["range"] == {"last": "12w"}
    board = api.client.get(f"/api/v1/dashboards/{d['id']}/render", headers=h).json()
    assert board["layout"] == MOVED and board["theme"]["name"] == "pastel"
    assert board["grain"] == "week"
    assert [w["type"] for w in board["widgets"]] == ["kpi", "kpi", "line", "line",
                                                      "recommendations"]


def test_a_shared_dashboard_is_read_only(api: Api) -> None:
    d = new_dashboard(api, "analyst", theme="dark")
    r = api.client.put(f"/api/v1/dashboards/{d['id']}/share", headers=api.auth("analyst"),
                       json={"user_ids": [api.ids["viewer"]]})
    assert r.status_code == 200, r.text
    vera = api.auth("viewer")
    url = f"/api/v1/dashboards/{d['id']}"
    got = api.client.get(url, headers=vera)
    assert got.status_code == 200 and got.json()["owner_id"] == api.ids["analyst"]
    assert [x["id"] for x in api.client.get("/api/v1/dashboards", headers=vera).json()] == [
        d["id"]]
    board = api.client.get(f"{url}/render", headers=vera)
    assert board.status_code == 200 and board.json()["theme"]["name"] == "dark"
    assert "read-only" in assert_error(api.client.patch(url, headers=vera,
                                                        json={"name": "Mine now"}),
                                       403, "forbidden")["message"]
    assert_error(api.client.patch(url, headers=vera, json={"spec": {"layout": MOVED}}), 403)
    assert_error(api.client.delete(url, headers=vera), 403)
    assert_error(api.client.put(f"{url}/share", headers=vera,
                                json={"user_ids": [api.ids["other"]]}), 403)
    assert api.client.get(url, headers=api.auth("analyst")).json()["spec"]["layout"] == LAYOUT

    otto = api.auth("other")  # not shared with: it does not exist for him
    for r in (api.client.get(url, headers=otto), api.client.get(f"{url}/render", headers=otto),
              api.client.patch(url, headers=otto, json={"name": "x"}),
              api.client.delete(url, headers=otto)):
        assert_error(r, 404, "not_found")
    assert api.client.get("/api/v1/dashboards", headers=otto).json() == []

    # unsharing takes it away again
    api.client.put(f"{url}/share", headers=api.auth("analyst"), json={"user_ids": []})
    assert_error(api.client.get(url, headers=vera), 404)


def test_the_profile_theme_persists_and_applies(api: Api) -> None:
    first = api.login("viewer").json()
    h = bearer(first["access_token"])
    r = api.client.patch("/api/v1/me", headers=h, json={"theme": "vibrant",
                                                        "followed": ["revenue"]})
    assert r.status_code == 200 and r.json()["theme"] == "vibrant"
    api.client.post("/api/v1/auth/logout", headers=h)

    h = bearer(api.login("viewer").json()["access_token"])
    me = api.client.get("/api/v1/me", headers=h).json()
    assert me["theme"] == "vibrant" and me["followed"] == ["revenue"]
    assert api.client.get("/api/v1/render", headers=h).json()["theme"]["name"] == "vibrant"
    d = api.client.post("/api/v1/dashboards", headers=h,
                        json={"name": "Mine", "spec": {"kpis": ["revenue"]}}).json()
    board = api.client.get(f"/api/v1/dashboards/{d['id']}/render", headers=h).json()
    assert board["theme"]["name"] == "vibrant"  # no theme in the spec: the user's
    board = api.client.get(f"/api/v1/dashboards/{d['id']}/render?theme=light",
                           headers=h).json()
    assert board["theme"]["name"] == "light"  # the query wins
    # someone else's theme is theirs only
    assert api.client.get("/api/v1/render",
                          headers=api.auth("other")).json()["theme"]["name"] == "corporate"
