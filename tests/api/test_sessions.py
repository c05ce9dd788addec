"""Logins, refresh-token rotation and reuse detection, logout, sessions, rate limits,
disabled users and role changes — through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .conftest import NOW, Api, assert_error, point


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


def refresh(api: Api, token: str) -> Any:
    return api.client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_login_returns_a_bearer_pair(api: Api) -> None:
    r = api.login("analyst")
    assert r.status_code == 200, r.text
    pair = r.json()
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 15 * 60
    assert pair["session_id"].startswith("ses_") and pair["refresh_token"]
    assert api.client.get("/api/v1/me", headers=bearer(pair)).json()["username"] == "ana"


def test_refresh_rotates_and_reuse_revokes_the_session(api: Api) -> None:
    first = api.login("analyst").json()
    r = refresh(api, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["session_id"] == first["session_id"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert api.client.get("/api/v1/me", headers=bearer(second)).status_code == 200
    third = refresh(api, second["refresh_token"]).json()  # the chain goes on

    # the retired first token comes back: someone copied it — the whole session ends
    err = assert_error(refresh(api, first["refresh_token"]), 401, "token_reused")
    assert "log in again" in err["message"]
    assert_error(refresh(api, third["refresh_token"]), 401, "invalid_token")
    assert_error(api.client.get("/api/v1/me", headers=bearer(third)), 401, "invalid_token")
    assert_error(api.client.get("/api/v1/me", headers=bearer(second)), 401, "invalid_token")
    # other sessions of the same user are untouched
    assert api.client.get("/api/v1/me", headers=api.auth("analyst")).status_code == 200


def test_refresh_errors(api: Api) -> None:
    assert_error(refresh(api, "x" * 43), 401, "invalid_token")
    err = assert_error(api.client.post("/api/v1/auth/refresh", json={}), 422)
    assert err["details"][0]["location"]["field"] == "refresh_token"
    assert_error(api.client.post("/api/v1/auth/refresh",
                                 json={"refresh_token": "x" * 43, "extra": 1}), 422)


def test_a_refresh_token_outlives_its_access_token(api: Api) -> None:
    pair = api.login("viewer").json()
    api.clock.advance(timedelta(minutes=20))
    assert_error(api.client.get("/api/v1/me", headers=bearer(pair)), 401)
    fresh = refresh(api, pair["refresh_token"]).json()
    assert api.client.get("/api/v1/me", headers=bearer(fresh)).status_code == 200


def test_logout_revokes_access_and_refresh_tokens(api: Api) -> None:
    pair = api.login("viewer").json()
    r = api.client.post("/api/v1/auth/logout", headers=bearer(pair))
    assert r.status_code == 204, r.text
    assert_error(api.client.get("/api/v1/me", headers=bearer(pair)), 401)
    assert_error(refresh(api, pair["refresh_token"]), 401)
    assert_error(api.client.post("/api/v1/auth/logout", headers=bearer(pair)), 401)


def test_sessions_show_last_activity(api: Api) -> None:
    pair = api.login("viewer").json()
    (s,) = [x for x in api.client.get("/api/v1/me/sessions", headers=bearer(pair)).json()
            if x["current"]]
    assert s["created_at"] == s["last_seen"] == NOW.isoformat()
    assert s["user_agent"] and s["state"] == "active"
    api.clock.advance(timedelta(minutes=5))
    sessions = api.client.get("/api/v1/me/sessions", headers=bearer(pair)).json()
    (s,) = [x for x in sessions if x["id"] == pair["session_id"]]
    assert s["last_seen"] == (NOW + timedelta(minutes=5)).isoformat()
    assert s["created_at"] == NOW.isoformat()


def test_revoke_another_session(api: Api) -> None:
    laptop, phone = api.login("viewer").json(), api.login("viewer").json()
    r = api.client.delete(f"/api/v1/me/sessions/{phone['session_id']}", headers=bearer(laptop))
    assert r.status_code == 204, r.text
    assert_error(api.client.get("/api/v1/me", headers=bearer(phone)), 401)
    assert_error(refresh(api, phone["refresh_token"]), 401)
    assert api.client.get("/api/v1/me", headers=bearer(laptop)).status_code == 200
    states = {s["id"]: s["state"] for s in
              api.client.get("/api/v1/me/sessions", headers=bearer(laptop)).json()}
    assert states[phone["session_id"]] == "revoked" and states[laptop["session_id"]] == "active"
    # another user's session is not found for this one
    theirs = api.login("other").json()["session_id"]
    assert_error(api.client.delete(f"/api/v1/me/sessions/{theirs}", headers=bearer(laptop)),
                 404)


def test_login_rate_limit(api: Api) -> None:
    for _ in range(5):
        assert_error(api.login("viewer", "guess guess guess"), 401, "invalid_credentials")
    r = api.login("viewer")
    assert_error(r, 429, "rate_limited")
    wait = int(r.headers["retry-after"])
    assert 0 < wait <= 15 * 60
    api.clock.advance(timedelta(seconds=wait))
    assert api.login("viewer").status_code == 200


def test_unknown_users_get_the_same_answer(api: Api) -> None:
    unknown = assert_error(api.login("nobody", "whatever it is"), 401, "invalid_credentials")
    wrong = assert_error(api.login("viewer", "whatever it is"), 401, "invalid_credentials")
    assert unknown["message"] == wrong["message"]
    err = assert_error(api.client.post("/api/v1/auth/token", data={"username": "vera"}), 422)
    assert err["details"][0]["location"]["field"] == "password"


def test_a_disabled_user_cannot_log_in(api: Api) -> None:
    pair = api.login("viewer").json()
    admin = api.auth("admin")
    r = api.client.patch(f"/api/v1/users/{api.ids['viewer']}", headers=admin,
                         json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert_error(api.client.get("/api/v1/me", headers=bearer(pair)), 401)  # sessions ended
    assert_error(refresh(api, pair["refresh_token"]), 401)
    err = assert_error(api.login("viewer"), 401, "invalid_credentials")
    assert err["message"] == "wrong username or password"  # no hint that the account exists
    api.client.patch(f"/api/v1/users/{api.ids['viewer']}", headers=admin,
                     json={"disabled": False})
    assert api.login("viewer").status_code == 200


def test_a_role_change_applies_on_the_next_request(api: Api) -> None:
    vera = api.auth("viewer")
    admin = api.auth("admin")
    body = {"points": [point(3)]}
    assert_error(api.client.post("/api/v1/ingest", headers=vera, json=body), 403)
    api.client.patch(f"/api/v1/users/{api.ids['viewer']}", headers=admin,
                     json={"role": "analyst"})
    r = api.client.post("/api/v1/ingest", headers=vera, json=body)  # the same token
    assert r.status_code == 200, r.text
    assert api.client.get("/api/v1/me", headers=vera).json()["role"] == "analyst"
    api.client.patch(f"/api/v1/users/{api.ids['viewer']}", headers=admin,
                     json={"role": "viewer"})
    assert_error(api.client.post("/api/v1/ingest", headers=vera, json=body), 403)
    assert_error(api.client.get("/api/v1/users", headers=vera), 403)


def test_a_deleted_user_is_logged_out(api: Api) -> None:
    otto = api.auth("other")
    r = api.client.delete(f"/api/v1/users/{api.ids['other']}", headers=api.auth("admin"))
    assert r.status_code == 204
    assert_error(api.client.get("/api/v1/me", headers=otto), 401)
    assert_error(api.login("other"), 401)
