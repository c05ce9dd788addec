"""Every route's authentication and role check, generated from the app's own route table.

``MIN_ROLE`` says who may call each (method, path); a route the app has and the table lacks
fails ``test_every_route_is_in_the_table``, so a new endpoint cannot ship unchecked.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from pydantic import SecretStr
from starlette.routing import Mount

from kpidash.api import create_app
from kpidash.settings import Settings

from .conftest import NOW, SECRET, Api, assert_error, point

PUBLIC, VIEWER, ANALYST, ADMIN = "public", "viewer", "analyst", "admin"
RANK = {VIEWER: 0, ANALYST: 1, ADMIN: 2}
SKIP = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}

MIN_ROLE: dict[tuple[str, str], str] = {
    # public
    ("GET", "/api/v1/health"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/v1/schemas/{name}"): PUBLIC,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("POST", "/api/v1/auth/refresh"): PUBLIC,
    ("WS", "/api/v1/ws"): PUBLIC,  # authenticates with its first message (test_live)
    ("GET", "/"): PUBLIC,  # the web dashboard's page and files (it logs in through the API)
    ("GET", "/static/vendor/plotly.min.js"): PUBLIC,
    ("MOUNT", "/static"): PUBLIC,
    # any logged-in user
    ("POST", "/api/v1/auth/logout"): VIEWER,
    ("GET", "/api/v1/me"): VIEWER,
    ("PATCH", "/api/v1/me"): VIEWER,
    ("POST", "/api/v1/me/password"): VIEWER,
    ("GET", "/api/v1/me/sessions"): VIEWER,
    ("DELETE", "/api/v1/me/sessions/{session_id}"): VIEWER,
    ("GET", "/api/v1/kpis"): VIEWER,
    ("GET", "/api/v1/kpis/{kpi_id}"): VIEWER,
    ("POST", "/api/v1/kpis/validate"): VIEWER,
    ("GET", "/api/v1/series/{kpi_id}"): VIEWER,
    ("GET", "/api/v1/forecast/{kpi_id}"): VIEWER,
    ("GET", "/api/v1/anomalies"): VIEWER,
    ("GET", "/api/v1/quality/{kpi_id}"): VIEWER,
    ("GET", "/api/v1/trends/{kpi_id}"): VIEWER,
    ("GET", "/api/v1/alerts"): VIEWER,
    ("GET", "/api/v1/alerts/{fingerprint}"): VIEWER,
    ("GET", "/api/v1/silences"): VIEWER,
    ("GET", "/api/v1/alert-rules"): VIEWER,
    ("GET", "/api/v1/alert-rules/{rule_id}"): VIEWER,
    ("GET", "/api/v1/insights"): VIEWER,
    ("GET", "/api/v1/digest"): VIEWER,
    ("POST", "/api/v1/interactions"): VIEWER,
    ("GET", "/api/v1/dashboards"): VIEWER,
    ("POST", "/api/v1/dashboards"): VIEWER,
    ("GET", "/api/v1/dashboards/{dashboard_id}"): VIEWER,
    ("PATCH", "/api/v1/dashboards/{dashboard_id}"): VIEWER,
    ("DELETE", "/api/v1/dashboards/{dashboard_id}"): VIEWER,
    ("PUT", "/api/v1/dashboards/{dashboard_id}/share"): VIEWER,
    ("GET", "/api/v1/dashboards/{dashboard_id}/render"): VIEWER,
    ("GET", "/api/v1/dashboards/{dashboard_id}/events"): VIEWER,
    ("GET", "/api/v1/render"): VIEWER,
    # analysts: change KPIs, data, alerting
    ("POST", "/api/v1/kpis"): ANALYST,
    ("PUT", "/api/v1/kpis/{kpi_id}"): ANALYST,
    ("DELETE", "/api/v1/kpis/{kpi_id}"): ANALYST,
    ("POST", "/api/v1/ingest"): ANALYST,
    ("POST", "/api/v1/ingest/file"): ANALYST,
    ("POST", "/api/v1/write"): ANALYST,
    ("POST", "/write"): ANALYST,
    ("POST", "/api/v2/write"): ANALYST,
    ("POST", "/api/v1/anomalies/detect/{kpi_id}"): ANALYST,
    ("POST", "/api/v1/alerts/{fingerprint}/ack"): ANALYST,
    ("POST", "/api/v1/silences"): ANALYST,
    ("POST", "/api/v1/silences/{silence_id}/expire"): ANALYST,
    ("POST", "/api/v1/alert-rules"): ANALYST,
    ("PUT", "/api/v1/alert-rules/{rule_id}"): ANALYST,
    ("DELETE", "/api/v1/alert-rules/{rule_id}"): ANALYST,
    ("POST", "/api/v1/alert-rules/backtest"): ANALYST,
    # admins: users
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("GET", "/api/v1/users/{user_id}"): ADMIN,
    ("PATCH", "/api/v1/users/{user_id}"): ADMIN,
    ("DELETE", "/api/v1/users/{user_id}"): ADMIN,
    # workspaces: any user may call; what they may do there depends on their role in it
    # (server admin, workspace admin) and is tested in test_workspaces.py
    ("GET", "/api/v1/workspaces"): VIEWER,
    ("POST", "/api/v1/workspaces"): VIEWER,
    ("PATCH", "/api/v1/workspaces/{workspace}"): VIEWER,
    ("DELETE", "/api/v1/workspaces/{workspace}"): VIEWER,
    ("GET", "/api/v1/workspaces/{workspace}/members"): VIEWER,
    ("PUT", "/api/v1/workspaces/{workspace}/members/{user_id}"): VIEWER,
    ("DELETE", "/api/v1/workspaces/{workspace}/members/{user_id}"): VIEWER,
    # a workspace's admins (and server admins) export it; server admins import (test_transfer)
    ("GET", "/api/v1/workspaces/{workspace}/export"): ADMIN,
    ("POST", "/api/v1/workspaces/import"): ADMIN,
    # a workspace's admins (and server admins) manage its ingest tokens (test_ingest_tokens)
    ("GET", "/api/v1/workspaces/{workspace}/ingest-tokens"): ADMIN,
    ("POST", "/api/v1/workspaces/{workspace}/ingest-tokens"): ADMIN,
    ("DELETE", "/api/v1/workspaces/{workspace}/ingest-tokens/{token_id}"): ADMIN,
    # across the caller's own workspaces (test_portfolio.py)
    ("GET", "/api/v1/portfolio"): VIEWER,
    ("GET", "/api/v1/workspaces/{workspace}/usage"): VIEWER,
}
WORKSPACE_ADMIN = {path for _, path in MIN_ROLE if path.startswith("/api/v1/workspaces")}
# not about one workspace's data: served once, at /api/v1/...
GLOBAL = ("/api/v1/auth/", "/api/v1/me", "/api/v1/users", "/api/v1/workspaces",
          "/api/v1/health", "/api/v1/schemas/", "/api/v1/ws", "/api/v1/portfolio")
# every other /api/v1 route is also served per workspace, with the role it needs there
MIN_ROLE.update({(method, "/api/v1/workspaces/{workspace}" + path[len("/api/v1"):]): role
                 for (method, path), role in list(MIN_ROLE.items())
                 if path.startswith("/api/v1/") and not path.startswith(GLOBAL)})


def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the app serves (the WebSocket as "WS", a mounted app
    as "MOUNT"), the OpenAPI docs aside."""
    app = create_app(Settings(db=":memory:", secret=SecretStr(SECRET)))
    try:
        out: list[tuple[str, str]] = []
        for ctx in iter_route_contexts(app.routes):
            route, path = ctx.original_route, str(ctx.path)
            if path in SKIP:
                continue
            if isinstance(route, APIWebSocketRoute):
                out.append(("WS", path))
            elif isinstance(route, Mount):
                out.append(("MOUNT", path))
            else:
                assert isinstance(route, APIRoute), f"unexpected route type {route!r}"
                out.extend((m, path) for m in sorted(ctx.methods or ()))
        return out
    finally:
        app.state.kpidash.engine.close()


ROUTES = app_routes()
HTTP = [r for r in ROUTES if r[0] not in ("WS", "MOUNT")]


def role_of(route: tuple[str, str]) -> str:
    assert route in MIN_ROLE, f"{route} is not in MIN_ROLE: add it with its minimum role"
    return MIN_ROLE[route]


def ids(routes: list[tuple[str, str]]) -> list[str]:
    return [f"{m} {p}" for m, p in routes]


PROTECTED = [r for r in HTTP if MIN_ROLE.get(r) != PUBLIC]
ABOVE_VIEWER = [r for r in HTTP if MIN_ROLE.get(r) in (ANALYST, ADMIN)]
ADMIN_ONLY = [r for r in HTTP if MIN_ROLE.get(r) == ADMIN]
PUBLIC_HTTP = [r for r in HTTP if MIN_ROLE.get(r) == PUBLIC]


def test_every_route_is_in_the_table() -> None:
    missing = sorted(set(ROUTES) - set(MIN_ROLE))
    stale = sorted(set(MIN_ROLE) - set(ROUTES))
    assert not missing, f"routes without a MIN_ROLE entry (add them): {missing}"
    assert not stale, f"MIN_ROLE entries for routes that no longer exist: {stale}"
    assert len(ROUTES) == len(set(ROUTES)) > 50


@pytest.fixture(scope="module")
def real(shared_api: Api) -> dict[str, str]:
    """Real ids for the path parameters: a dashboard, an alert, a rule, a silence, a session."""
    a = shared_api
    r = a.client.post("/api/v1/dashboards", headers=a.auth("analyst"),
                      json={"name": "Matrix", "spec": {"kpis": ["signups"]}})
    assert r.status_code == 201, r.text
    e = a.engine
    with a.st.lock:
        e.put_alert_rules([{"id": "signups_high", "kpi": "signups", "per": "region",
                            "condition": {"kind": "threshold", "direction": "above",
                                          "bands": {"high": 100_000}}}])
        e.ingest([point(500_000)])
        e.evaluate_alerts()
        (alert,) = e.alerts()
        silence = e.silence(["kpi=signups"], by="ana", duration=timedelta(hours=1))
    other_session = a.login("analyst").json()["session_id"]
    return {"kpi_id": "revenue", "dashboard_id": r.json()["id"], "fingerprint": alert.fingerprint,
            "rule_id": "signups_high", "silence_id": silence.id, "session_id": other_session,
            "user_id": a.ids["other"], "name": "dashboard", "workspace": "default",
            "token_id": "itk_missing"}


DUMMY = {"kpi_id": "no_such_kpi", "dashboard_id": "dsh_missing", "fingerprint": "f" * 16,
         "rule_id": "no_such_rule", "silence_id": "sil_missing", "session_id": "ses_missing",
         "user_id": "usr_missing", "name": "dashboard", "workspace": "default",
         "token_id": "itk_missing"}


def fill(path: str, values: dict[str, str]) -> str:
    """``path`` with ``values``; with the dummy values, the workspace administration routes
    get an unknown workspace (they would change ``default``), the data routes ``default``
    (so that the role check there is reached)."""
    if values is DUMMY and path in WORKSPACE_ADMIN:
        values = {**values, "workspace": "no_such_ws"}
    return path.format(**values)


def b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


@pytest.fixture
def bad_token(shared_api: Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """An access token that must be refused, of the kind in ``request.param``."""
    good = shared_api.token("viewer")
    head, body, sig = good.split(".")
    kind = request.param
    if kind == "tampered":  # the viewer's own token, promoted to admin, old signature kept
        yield f"{head}.{b64({**payload(good), 'role': 'admin'})}.{sig}"
    elif kind == "alg_none":
        yield f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({**payload(good), 'role': 'admin'})}."
    elif kind == "bad_signature":
        yield f"{head}.{body}.{sig[:-4]}AAAA"
    elif kind == "garbage":
        yield "not-a-jwt"
    elif kind == "expired":  # 15 min access tokens: one minute later than that
        shared_api.clock.advance(timedelta(minutes=16))
        try:
            yield good
        finally:
            shared_api.clock.set(NOW)
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.mark.parametrize("route", PROTECTED, ids=ids(PROTECTED))
def test_no_token_is_401_with_the_envelope(shared_api: Api, real: dict[str, str],
                                           route: tuple[str, str]) -> None:
    method, path = route
    r = shared_api.client.request(method, fill(path, real))
    err = assert_error(r, 401)
    assert err["code"] in ("invalid_token", "unauthenticated")
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("bad_token", ["tampered", "alg_none", "bad_signature", "garbage",
                                       "expired"], indirect=True)
@pytest.mark.parametrize("route", PROTECTED, ids=ids(PROTECTED))
def test_bad_tokens_are_401(shared_api: Api, real: dict[str, str], route: tuple[str, str],
                            bad_token: str) -> None:
    method, path = route
    r = shared_api.client.request(method, fill(path, real),
                                  headers={"Authorization": f"Bearer {bad_token}"})
    assert_error(r, 401, "invalid_token")
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", ABOVE_VIEWER, ids=ids(ABOVE_VIEWER))
def test_a_viewer_is_403_on_analyst_and_admin_routes(shared_api: Api, real: dict[str, str],
                                                     route: tuple[str, str]) -> None:
    method, path = route
    r = shared_api.client.request(method, fill(path, real), headers=shared_api.auth("viewer"))
    err = assert_error(r, 403, "forbidden")
    assert role_of(route) in err["message"] and "viewer" in err["message"]


@pytest.mark.parametrize("route", ADMIN_ONLY, ids=ids(ADMIN_ONLY))
def test_an_analyst_is_403_on_admin_routes(shared_api: Api, real: dict[str, str],
                                           route: tuple[str, str]) -> None:
    method, path = route
    r = shared_api.client.request(method, fill(path, real), headers=shared_api.auth("analyst"))
    assert_error(r, 403, "forbidden")


@pytest.mark.parametrize("route", PROTECTED, ids=ids(PROTECTED))
def test_the_minimum_role_gets_past_the_gate(shared_api: Api, route: tuple[str, str]) -> None:
    """The table is not stricter than the app: the minimum role is let through (dummy ids
    and no body, so the handler answers 2xx/4xx but never 401/403 and changes nothing)."""
    method, path = route
    role = role_of(route)
    if route == ("POST", "/api/v1/auth/logout"):  # ends its session: use a throwaway one
        headers = {"Authorization": f"Bearer {shared_api.login(role).json()['access_token']}"}
    else:
        headers = shared_api.auth(role)
    r = shared_api.client.request(method, fill(path, DUMMY), headers=headers)
    assert r.status_code not in (401, 403), (route, r.status_code, r.text)
    assert r.status_code < 500, r.text


@pytest.mark.parametrize("route", PUBLIC_HTTP, ids=ids(PUBLIC_HTTP))
def test_public_routes_need_no_token(shared_api: Api, route: tuple[str, str]) -> None:
    method, path = route
    r = shared_api.client.request(method, fill(path, DUMMY))
    if path.startswith("/api/v1/auth/"):  # no credentials: a validation error, not a 401 gate
        assert_error(r, 422, "validation_failed")
    else:
        assert r.status_code == 200, r.text


def test_refused_calls_change_nothing(shared_api: Api, real: dict[str, str]) -> None:
    a = shared_api
    for who in ("viewer", "analyst"):
        assert_error(a.client.delete(f"/api/v1/users/{real['user_id']}", headers=a.auth(who)),
                     403)
    assert_error(a.client.delete("/api/v1/kpis/revenue", headers=a.auth("viewer")), 403)
    assert_error(a.client.delete("/api/v1/kpis/revenue"), 401)
    assert a.client.get("/api/v1/kpis/revenue", headers=a.auth("viewer")).status_code == 200
    assert a.client.get(f"/api/v1/users/{real['user_id']}",
                        headers=a.auth("admin")).status_code == 200


def test_the_access_token_of_another_scheme_is_refused(shared_api: Api) -> None:
    token = shared_api.token("viewer")
    r = shared_api.client.get("/api/v1/me", headers={"Authorization": f"Basic {token}"})
    assert_error(r, 401)


def test_an_expired_token_still_works_a_moment_before(shared_api: Api) -> None:
    token = shared_api.token("viewer")
    shared_api.clock.advance(timedelta(minutes=14, seconds=59))
    try:
        r = shared_api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        shared_api.clock.advance(timedelta(seconds=1))
        r = shared_api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert "expired" in assert_error(r, 401, "invalid_token")["message"]
    finally:
        shared_api.clock.set(NOW)
