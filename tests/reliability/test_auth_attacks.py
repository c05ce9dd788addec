"""The auth attack suite (issue 10): every attack of the issue, against the real app, in one place.

Table-driven: forged and misused tokens against one route of every kind (self, viewer,
analyst, admin, workspace-scoped, the WebSocket); refresh-token reuse; privilege escalation
over the whole route table of tests/api/test_auth_matrix.py (reused, not copied); mass
assignment; one user against another's dashboards, sessions and profile; login brute force
per user and per client (also with the username's case and surrounding spaces changed); CORS;
the security headers on every kind of response. Each attack request is counted as
"auth attacks tried"; none may get a 2xx, and each gets the error envelope.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.conftest import NOW, PASSWORD, SECRET, Api, Template, accounts_for, assert_error, point
from api.test_auth_matrix import ABOVE_VIEWER, ADMIN_ONLY, fill, real  # noqa: F401
from counts import count
from kpidash.api import SECURITY_HEADERS, create_app
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.settings import Settings
from kpidash.store import open_store
from loopback import serve_in_thread

ATTACKS = "auth attacks tried"
OTHER_SECRET = "another-kpidash-deployment-" + "9876543210" * 3


def attack(api: Api, method: str, path: str, *, client: TestClient | None = None,
           **kwargs: Any) -> Any:
    """One attack request (counted)."""
    count(ATTACKS)
    return (client or api.client).request(method, path, **kwargs)


def b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- forged and misused access tokens -----------------------------------------------------------

def _signed(good: str, key: str = SECRET, alg: str = "HS256", drop: tuple[str, ...] = (),
            **changes: Any) -> str:
    doc = {k: v for k, v in {**claims_of(good), **changes}.items() if k not in drop}
    return jwt.encode(doc, key, algorithm=alg)


def _rsa_signed(good: str) -> str:
    """alg confusion: a token claiming RS256 (as an attacker's own key pair would sign it,
    seeded random bytes for the signature); a server that took the algorithm from the header
    would look for a public key — or take its HMAC secret as one."""
    import random

    sig = base64.urlsafe_b64encode(random.Random(1234).randbytes(256)).rstrip(b"=").decode()
    return f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64({**claims_of(good), 'role': 'admin'})}.{sig}"


def _header_swapped(good: str, alg: str) -> str:
    """The genuine signature under a header that claims another algorithm."""
    _, body, sig = good.split(".")
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{body}.{sig}"


def _in(seconds: int) -> int:
    return int((NOW + timedelta(seconds=seconds)).timestamp())


# name → (make(good viewer token, the app) → what is sent as the bearer, reason in the message)
FORGED: dict[str, tuple[Callable[[str, Api], str], str]] = {
    "garbage": (lambda g, a: "not-a-jwt", "malformed"),
    "three-garbage-parts": (lambda g, a: "a.b.c", "malformed"),
    "huge": (lambda g, a: "x" * 20_000, "too long"),
    "tampered-role": (lambda g, a: ".".join([g.split(".")[0], b64({**claims_of(g), "role": "admin"}),
                                             g.split(".")[2]]), "bad signature"),
    "tampered-sub": (lambda g, a: ".".join([g.split(".")[0],
                                            b64({**claims_of(g), "sub": a.ids["admin"]}),
                                            g.split(".")[2]]), "bad signature"),
    "signature-stripped": (lambda g, a: g.rsplit(".", 1)[0] + ".", "bad signature"),
    "alg-none": (lambda g, a: f"{b64({'alg': 'none', 'typ': 'JWT'})}."
                              f"{b64({**claims_of(g), 'role': 'admin'})}.", "algorithm not allowed"),
    "alg-None-case": (lambda g, a: f"{b64({'alg': 'None', 'typ': 'JWT'})}."
                                   f"{b64({**claims_of(g), 'role': 'admin'})}.", "algorithm"),
    "alg-none-keeps-signature": (lambda g, a: _header_swapped(g, "none"), "algorithm not allowed"),
    "alg-HS512-same-secret": (lambda g, a: _signed(g, SECRET + SECRET, "HS512", role="admin"),
                              "algorithm not allowed"),
    "alg-header-RS256-hmac-signature": (lambda g, a: _header_swapped(g, "RS256"),
                                        "algorithm not allowed"),
    "alg-RS256-own-key": (lambda g, a: _rsa_signed(g), "algorithm not allowed"),
    "wrong-key": (lambda g, a: _signed(g, OTHER_SECRET, role="admin"), "bad signature"),
    "wrong-audience": (lambda g, a: _signed(g, aud="another-api"), "wrong audience"),
    "audience-list-without-ours": (lambda g, a: _signed(g, aud=["x", "y"]), "wrong audience"),
    "wrong-issuer": (lambda g, a: _signed(g, iss="evil"), "wrong issuer"),
    "expired": (lambda g, a: _signed(g, exp=_in(-1)), "expired"),
    "expires-now": (lambda g, a: _signed(g, exp=_in(0)), "expired"),
    "not-yet-valid-nbf": (lambda g, a: _signed(g, nbf=_in(600)), "not yet valid"),
    "issued-in-the-future": (lambda g, a: _signed(g, iat=_in(600), exp=_in(1500)),
                             "not yet valid"),
    "exp-as-string": (lambda g, a: _signed(g, exp=str(_in(900))), "malformed"),
    "role-unknown": (lambda g, a: _signed(g, role="root"), "malformed claims"),
    "sub-empty": (lambda g, a: _signed(g, sub=""), "malformed claims"),
    "session-of-another-user": (lambda g, a: _signed(g, sid=claims_of(a.token("admin"))["sid"]),
                                "session not found"),
    "unknown-session": (lambda g, a: _signed(g, sid="ses_forged"), "session not found"),
    "refresh-token-as-access": (lambda g, a: str(a.login("viewer").json()["refresh_token"]),
                                "malformed"),
    **{f"missing-{claim}": ((lambda c: lambda g, a: _signed(g, drop=(c,)))(claim),
                            f"missing claim {claim}")
       for claim in ("sub", "name", "role", "sid", "iss", "aud", "iat", "exp", "jti")},
}

# one route of every kind of gate (and the WebSocket, below)
TARGETS = [("GET", "/api/v1/me"), ("GET", "/api/v1/kpis"),
           ("GET", "/api/v1/workspaces/default/alerts"), ("POST", "/api/v1/ingest"),
           ("GET", "/api/v1/users"), ("POST", "/api/v1/auth/logout")]


@pytest.mark.parametrize("kind", list(FORGED))
def test_forged_and_misused_access_tokens_are_refused(shared_api: Api, kind: str) -> None:
    a = shared_api
    make, reason = FORGED[kind]
    token = make(a.token("viewer"), a)
    before = a.points()
    for method, path in TARGETS:
        body = {"json": {"points": [point(1)]}} if path.endswith("/ingest") else {}
        r = attack(a, method, path, headers=bearer(token), **body)
        err = assert_error(r, 401, "invalid_token")
        assert reason in err["message"], (kind, path, err)
        assert r.headers["www-authenticate"] == "Bearer"
        assert token not in r.text or len(token) < 8  # the token is never echoed
        # the InfluxDB clients' scheme is checked the same way
        r = attack(a, method, path, headers={"Authorization": f"Token {token}"}, **body)
        assert_error(r, 401, "invalid_token")
    with a.client.websocket_connect("/api/v1/ws") as ws:
        count(ATTACKS)
        ws.send_json({"type": "auth", "token": token})
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["code"] == "unauthenticated", msg
        assert reason in msg["message"]
    assert a.points() == before


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic dmVyYTpwYXNzd29yZA==",
                                    "bearer  ", "Digest x"])
def test_missing_or_other_scheme_credentials_are_401(shared_api: Api, header: str) -> None:
    for method, path in TARGETS:
        r = attack(shared_api, method, path, headers={"Authorization": header} if header else {})
        assert_error(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"


def test_an_ingest_token_is_no_user_token(api: Api) -> None:
    r = api.client.post("/api/v1/workspaces/default/ingest-tokens", headers=api.auth("admin"),
                        json={"name": "telegraf"})
    assert r.status_code == 201, r.text
    secret = r.json()["token"]
    for method, path in [("GET", "/api/v1/me"), ("GET", "/api/v1/kpis"), ("GET", "/api/v1/users"),
                         ("GET", "/api/v1/workspaces/default/ingest-tokens")]:
        err = assert_error(attack(api, method, path, headers=bearer(secret)), 401)
        assert "ingest token" in err["message"]
    with api.client.websocket_connect("/api/v1/ws") as ws:
        count(ATTACKS)
        ws.send_json({"type": "auth", "token": secret})
        assert ws.receive_json()["code"] == "unauthenticated"


def test_an_access_token_is_no_refresh_token(api: Api) -> None:
    pair = api.login("viewer").json()
    for token in (pair["access_token"][:200], pair["session_id"], "x" * 43):
        r = attack(api, "POST", "/api/v1/auth/refresh", json={"refresh_token": token})
        assert_error(r, 401, "invalid_token")
    assert api.client.get("/api/v1/me", headers=bearer(pair["access_token"])).status_code == 200


def _outlive(a: Api, pair: dict[str, Any]) -> None:
    """Keep the session busy (a refresh every 6 days) past its 30 days at most."""
    token = pair["refresh_token"]
    for _ in range(5):
        a.clock.advance(timedelta(days=6))
        r = a.client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        if r.status_code != 200:
            break
        token = r.json()["refresh_token"]
    pair["refresh_token"] = token


# tokens that were good once: the user or session is gone
ENDED: dict[str, Callable[[Api, dict[str, Any]], Any]] = {
    "logged-out": lambda a, p: a.client.post("/api/v1/auth/logout",
                                             headers=bearer(p["access_token"])),
    "session-revoked-elsewhere": lambda a, p: a.client.delete(
        f"/api/v1/me/sessions/{p['session_id']}",
        headers=bearer(a.login("other").json()["access_token"])),
    "user-disabled": lambda a, p: a.client.patch(f"/api/v1/users/{a.ids['other']}",
                                                 headers=a.auth("admin"), json={"disabled": True}),
    "user-deleted": lambda a, p: a.client.delete(f"/api/v1/users/{a.ids['other']}",
                                                 headers=a.auth("admin")),
    "password-changed": lambda a, p: a.client.patch(f"/api/v1/users/{a.ids['other']}",
                                                    headers=a.auth("admin"),
                                                    json={"password": "a brand new passphrase"}),
    "idle-too-long": lambda a, p: a.clock.advance(timedelta(days=7, minutes=1)),
    "session-too-old": _outlive,
}


@pytest.mark.parametrize("how", list(ENDED))
def test_tokens_of_ended_sessions_and_users_are_refused(api: Api, how: str) -> None:
    pair = api.login("other").json()
    assert api.client.get("/api/v1/me", headers=bearer(pair["access_token"])).status_code == 200
    api.auth("admin")  # the admin's session is opened before the clock moves
    ENDED[how](api, pair)
    # a fresh access token signed by the server itself, for the ended session
    fresh = _signed(pair["access_token"], iat=int(api.clock.now().timestamp()),
                    exp=int((api.clock.now() + timedelta(minutes=15)).timestamp()))
    for token in (pair["access_token"], fresh):
        for method, path in TARGETS[:3]:
            assert_error(attack(api, method, path, headers=bearer(token)), 401, "invalid_token")
    r = attack(api, "POST", "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_error(r, 401)


# -- refresh-token reuse --------------------------------------------------------------------------

@pytest.mark.parametrize("reused", ["first", "second"])
def test_refresh_token_reuse_revokes_the_whole_family(api: Api, reused: str) -> None:
    def refresh(token: str) -> Any:
        return attack(api, "POST", "/api/v1/auth/refresh", json={"refresh_token": token})

    first = api.login("viewer").json()
    other_session = api.login("viewer").json()
    second = refresh(first["refresh_token"]).json()
    third = refresh(second["refresh_token"]).json()
    stolen = {"first": first, "second": second}[reused]["refresh_token"]
    assert_error(refresh(stolen), 401, "token_reused")
    for pair in (first, second, third):  # every token of the family is dead
        assert_error(attack(api, "GET", "/api/v1/me", headers=bearer(pair["access_token"])), 401)
        assert_error(refresh(pair["refresh_token"]), 401)
    # the user's other session is not the thief's: it lives on
    assert api.client.get("/api/v1/me",
                          headers=bearer(other_session["access_token"])).status_code == 200


# -- privilege escalation ---------------------------------------------------------------------------

def test_viewers_and_analysts_cannot_climb_any_route(shared_api: Api, real: dict[str, str]) -> None:  # noqa: F811
    """The route table of test_auth_matrix, walked once per attacker: a viewer on every
    analyst/admin route, an analyst on every admin route — real ids, so a missing check would
    act on real data."""
    a = shared_api
    for who, routes in (("viewer", ABOVE_VIEWER), ("analyst", ADMIN_ONLY)):
        for method, path in routes:
            r = attack(a, method, fill(path, real), headers=a.auth(who))
            assert_error(r, 403, "forbidden")
    assert a.client.get(f"/api/v1/users/{real['user_id']}", headers=a.auth("admin")).status_code \
        == 200


def test_a_workspace_admin_is_admin_there_only(api: Api) -> None:
    """Vera (a viewer) administers workspace acme; that role does not leak into the server's
    user administration nor into another workspace, and what she grants there stays there."""
    c, admin = api.client, api.auth("admin")
    assert c.post("/api/v1/workspaces", headers=admin,
                  json={"id": "acme", "name": "Acme"}).status_code == 201
    vera_id, otto_id = api.ids["viewer"], api.ids["other"]
    assert c.put(f"/api/v1/workspaces/acme/members/{vera_id}", headers=admin,
                 json={"role": "admin"}).status_code == 204
    vera = api.auth("viewer")
    # what she may do in acme: make otto an admin there
    assert c.put(f"/api/v1/workspaces/acme/members/{otto_id}", headers=vera,
                 json={"role": "admin"}).status_code == 204
    otto = api.auth("other")
    for who in (vera, otto):
        for method, path, body, status in [
            ("GET", "/api/v1/users", None, 403),
            ("POST", "/api/v1/users", {"username": "mallory", "password": "pw " * 6,
                                       "role": "admin"}, 403),
            ("PATCH", f"/api/v1/users/{vera_id}", {"role": "admin"}, 403),
            ("PUT", f"/api/v1/workspaces/default/members/{vera_id}", {"role": "admin"}, 403),
            ("PUT", f"/api/v1/workspaces/default/members/{otto_id}", {"role": "analyst"}, 403),
            ("POST", "/api/v1/workspaces/default/ingest-tokens", {"name": "t"}, 403),
            ("GET", "/api/v1/workspaces/default/export", None, 403),
            ("POST", "/api/v1/ingest", {"points": [point(1)]}, 403),
            ("POST", "/api/v1/workspaces/default/alert-rules", {"id": "r", "kpi": "signups"}, 403),
            ("DELETE", "/api/v1/workspaces/acme", None, 403),
            ("DELETE", "/api/v1/workspaces/default", None, 403),
        ]:
            r = attack(api, method, path, headers=who, **({"json": body} if body else {}))
            assert_error(r, status)
    for name in ("vera", "otto"):
        me = c.get("/api/v1/me", headers=api.auth("viewer" if name == "vera" else "other"))
        assert me.json()["role"] == "viewer"
    assert "mallory" not in [u["username"] for u in c.get("/api/v1/users", headers=admin).json()]


MASS_ASSIGN = [
    ("PATCH", "/api/v1/me", {"role": "admin"}),
    ("PATCH", "/api/v1/me", {"disabled": False, "display_name": "x"}),
    ("PATCH", "/api/v1/me", {"id": "usr_other"}),
    ("PATCH", "/api/v1/me", {"username": "adam"}),
    ("PATCH", "/api/v1/me", {"password_hash": "$argon2id$forged"}),
    ("PATCH", "/api/v1/me", {"is_admin": True}),
    ("PATCH", "/api/v1/me", {"roles": ["admin"]}),
    ("POST", "/api/v1/dashboards", {"name": "mine", "owner_id": "{admin}"}),
    ("POST", "/api/v1/dashboards", {"name": "mine", "shared_with": ["{admin}"]}),
    ("POST", "/api/v1/dashboards", {"name": "mine", "id": "dsh_chosen"}),
    ("POST", "/api/v1/dashboards", {"name": "mine", "workspace": "other"}),
    ("POST", "/api/v1/dashboards", {"name": "mine", "spec": {"owner_id": "{admin}"}}),
    ("PATCH", "/api/v1/dashboards/{dashboard}", {"owner_id": "{other}"}),
    ("PATCH", "/api/v1/dashboards/{dashboard}", {"shared_with": ["{other}"]}),
    ("PATCH", "/api/v1/dashboards/{dashboard}", {"spec": {"owner_id": "{other}"}}),
    ("POST", "/api/v1/auth/refresh", {"refresh_token": "x" * 43, "user_id": "{admin}"}),
]


def test_mass_assignment_is_refused_and_changes_nothing(api: Api) -> None:
    vera = api.auth("viewer")
    mine = api.client.post("/api/v1/dashboards", headers=vera, json={"name": "Mine"}).json()
    ids = {"admin": api.ids["admin"], "other": api.ids["other"], "dashboard": mine["id"]}
    before_me = api.client.get("/api/v1/me", headers=vera).json()
    for method, path, body in MASS_ASSIGN:
        text = json.dumps(body)
        for key, value in ids.items():
            text = text.replace("{" + key + "}", value)
        r = attack(api, method, path.format(**ids), headers=vera, json=json.loads(text))
        err = assert_error(r, 422 if r.status_code == 422 else 400)
        assert err["details"] or "spec" in err["message"], err
    assert api.client.get("/api/v1/me", headers=vera).json() == before_me
    assert api.client.get(f"/api/v1/dashboards/{mine['id']}", headers=vera).json() == mine
    names = [d["name"] for d in api.client.get("/api/v1/dashboards", headers=vera).json()]
    assert names == ["Mine"]
    # a user admin changes through /users, and the role a viewer asks for is not granted
    assert_error(attack(api, "PATCH", f"/api/v1/users/{api.ids['viewer']}", headers=vera,
                        json={"role": "admin"}), 403)
    assert_error(attack(api, "PUT", f"/api/v1/workspaces/default/members/{api.ids['viewer']}",
                        headers=vera, json={"role": "admin"}), 403)
    assert api.client.get("/api/v1/me", headers=vera).json()["role"] == "viewer"


# -- one user against another's things ------------------------------------------------------------

def test_one_user_cannot_read_change_or_delete_anothers(api: Api) -> None:
    vera, otto = api.auth("viewer"), api.auth("other")
    private = api.client.post("/api/v1/dashboards", headers=vera,
                              json={"name": "Private", "spec": {"kpis": ["signups"]}}).json()
    shared = api.client.post("/api/v1/dashboards", headers=vera,
                             json={"name": "Shared", "spec": {"kpis": ["signups"]}}).json()
    r = api.client.put(f"/api/v1/dashboards/{shared['id']}/share", headers=vera,
                       json={"user_ids": [api.ids["other"]]})
    assert r.status_code == 200, r.text
    shared = r.json()
    vera_session = api.pair("viewer")["session_id"]
    p, s = f"/api/v1/dashboards/{private['id']}", f"/api/v1/dashboards/{shared['id']}"
    cases = [
        # (method, path, body, status): otto against vera
        ("GET", p, None, 404), ("PATCH", p, {"name": "mine now"}, 404), ("DELETE", p, None, 404),
        ("PUT", p + "/share", {"user_ids": [api.ids["other"]]}, 404),
        ("GET", p + "/render", None, 404), ("GET", p + "/events", None, 404),
        ("GET", f"/api/v1/workspaces/default/dashboards/{private['id']}", None, 404),
        ("PATCH", s, {"name": "mine now"}, 403), ("DELETE", s, None, 403),
        ("PUT", s + "/share", {"user_ids": []}, 403),
        ("PATCH", s, {"spec": {"kpis": []}}, 403),
        ("DELETE", f"/api/v1/me/sessions/{vera_session}", None, 404),
        ("GET", f"/api/v1/users/{api.ids['viewer']}", None, 403),
        ("PATCH", f"/api/v1/users/{api.ids['viewer']}", {"display_name": "pwned"}, 403),
        ("PATCH", f"/api/v1/users/{api.ids['viewer']}", {"password": "otto owns vera now"}, 403),
        ("DELETE", f"/api/v1/users/{api.ids['viewer']}", None, 403),
    ]
    for method, path, body, status in cases:
        r = attack(api, method, path, headers=otto, **({"json": body} if body else {}))
        assert_error(r, status)
    # nothing of vera's changed: her dashboards, their sharing, her session, her profile
    assert api.client.get(p, headers=vera).json() == private
    assert api.client.get(s, headers=vera).json() == shared
    assert api.client.get(s, headers=otto).status_code == 200  # what was shared stays readable
    assert api.client.get("/api/v1/me", headers=vera).json()["display_name"] == ""
    assert api.login("viewer").status_code == 200  # her password is hers
    # otto's own list shows only what was shared with him
    assert [d["id"] for d in api.client.get("/api/v1/dashboards", headers=otto).json()] \
        == [shared["id"]]


# -- login brute force -------------------------------------------------------------------------------

def login(api: Api, username: str, password: str, client: TestClient | None = None) -> Any:
    return attack(api, "POST", "/api/v1/auth/token", client=client,
                  data={"username": username, "password": password})


def client_at(api: Api, address: str) -> TestClient:
    """Another client of the same app, from another address."""
    return TestClient(api.app, client=(address, 40000))


# the username as an attacker may vary it: the limit is on the account, whatever the spelling
SPELLINGS = ["vera", "VERA", "Vera", " vera", "vera ", "\tvera\n", " VeRa "]


@pytest.mark.parametrize("spelling", SPELLINGS[1:])
def test_the_per_user_limit_holds_whatever_the_spelling_and_address(api: Api,
                                                                    spelling: str) -> None:
    for i in range(5):  # five failures from five addresses, half of them respelled
        name = spelling if i % 2 else "vera"
        assert_error(login(api, name, "guess guess guess", client_at(api, f"10.0.0.{i}")), 401,
                     "invalid_credentials")
    for name in ("vera", spelling):  # the right password is refused while locked
        r = login(api, name, PASSWORD, client_at(api, "10.0.1.1"))
        assert_error(r, 429, "rate_limited")
        assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    assert login(api, "ana", PASSWORD, client_at(api, "10.0.1.1")).status_code == 200


def test_the_per_client_limit_holds_across_usernames(api: Api) -> None:
    attacker = client_at(api, "192.0.2.66")
    for name in ["nobody", "root", "admin", "vera", "ana"]:
        assert_error(login(api, name, "guess guess guess", attacker), 401)
    r = login(api, "adam", PASSWORD, attacker)  # the right password of another user
    assert_error(r, 429, "rate_limited")
    # elsewhere, the users are not locked out by that attacker
    assert login(api, "adam", PASSWORD, client_at(api, "192.0.2.1")).status_code == 200


def test_a_correct_password_in_the_lock_window_is_refused_until_it_ends(api: Api) -> None:
    for _ in range(5):
        assert_error(login(api, "Vera ", "guess guess guess"), 401)
    r = login(api, "vera", PASSWORD)
    wait = int(r.headers["retry-after"])
    assert_error(r, 429, "rate_limited")
    api.clock.advance(timedelta(seconds=wait - 1))
    assert_error(login(api, "vera", PASSWORD), 429, "rate_limited")
    # the current-password check of a password change is a login: it is locked too
    api.clock.advance(timedelta(seconds=1))
    r = login(api, "vera", PASSWORD)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    for _ in range(5):
        r = attack(api, "POST", "/api/v1/me/password", headers=bearer(token),
                   json={"current_password": "guess guess guess",
                         "new_password": "a brand new passphrase"})
        assert_error(r, 401)
    r = attack(api, "POST", "/api/v1/me/password", headers=bearer(token),
               json={"current_password": PASSWORD, "new_password": "a brand new passphrase"})
    assert_error(r, 429, "rate_limited")
    assert_error(login(api, "vera", PASSWORD, client_at(api, "10.9.9.9")), 429)


def test_parallel_guesses_do_not_beat_the_limit(template: Template, tmp_path: Path) -> None:
    """24 wrong passwords at once over a real server (8 connections): exactly 5 are checked,
    the rest refused — the check and the count of a login are one step in a process."""
    path = tmp_path / "api.duckdb"
    shutil.copy(template.path, path)
    clock = FixedClock(NOW)
    engine = Engine(open_store(str(path)), clock)
    app = create_app(Settings(db=str(path), secret=SecretStr(SECRET)), clock=clock,
                     engine=engine, accounts=accounts_for(engine, clock))

    def guess(i: int) -> int:
        count(ATTACKS)
        r = httpx.post(f"{server.url}/api/v1/auth/token", timeout=30,
                       data={"username": ("vera", "VERA", " vera")[i % 3],
                             "password": f"guess number {i}"})
        return r.status_code

    with serve_in_thread(app) as server, ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(guess, range(24)))
        assert statuses == {401: 5, 429: 19}, statuses
        r = httpx.post(f"{server.url}/api/v1/auth/token", timeout=30,
                       data={"username": "vera", "password": PASSWORD})
        assert r.status_code == 429


def test_a_respelled_username_logs_in_as_the_account(api: Api) -> None:
    """The spelling the limit folds is the spelling login accepts: one account, one counter."""
    for spelling in SPELLINGS:
        r = login(api, spelling, PASSWORD)
        assert r.status_code == 200, (spelling, r.text)
        me = api.client.get("/api/v1/me", headers=bearer(r.json()["access_token"])).json()
        assert me["username"] == "vera"


# -- CORS ------------------------------------------------------------------------------------------

ALLOWED = "https://dash.example.com"
EVIL = "https://evil.example.net"


def _no_cors(r: Any) -> None:
    assert "access-control-allow-origin" not in r.headers, r.headers
    assert "access-control-allow-credentials" not in r.headers, r.headers


def test_cors_allows_the_configured_origin_only(make_api: Any) -> None:
    with make_api(cors_origins=[ALLOWED]) as a:
        vera = a.auth("viewer")
        r = a.client.get("/api/v1/kpis", headers={**vera, "Origin": ALLOWED})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == ALLOWED
        assert "access-control-allow-credentials" not in r.headers  # bearer tokens, no cookies
        for origin in (EVIL, ALLOWED + ".evil.net", "null", ALLOWED.replace("https", "http"),
                       ALLOWED + ":8443"):
            r = attack(a, "GET", "/api/v1/kpis", headers={**vera, "Origin": origin})
            _no_cors(r)
        pre = {"Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization,content-type"}
        r = a.client.options("/api/v1/ingest", headers={**pre, "Origin": ALLOWED})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == ALLOWED
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in r.headers
        for headers in ({**pre, "Origin": EVIL},
                        {**pre, "Origin": ALLOWED, "Access-Control-Request-Headers": "x-evil"}):
            r = attack(a, "OPTIONS", "/api/v1/ingest", headers=headers)
            err = assert_error(r, 400, "cors_refused")
            assert "origin" in err["message"] or "header" in err["message"]
            if headers["Origin"] == EVIL:
                _no_cors(r)
            for name, value in SECURITY_HEADERS.items():
                assert r.headers[name] == value


def test_without_cors_origins_no_origin_is_allowed(shared_api: Api) -> None:
    r = attack(shared_api, "GET", "/api/v1/kpis",
               headers={**shared_api.auth("viewer"), "Origin": ALLOWED})
    assert r.status_code == 200
    _no_cors(r)
    r = attack(shared_api, "OPTIONS", "/api/v1/kpis",
               headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"})
    assert_error(r, 405)
    _no_cors(r)


def test_a_wildcard_origin_never_allows_credentials(make_api: Any) -> None:
    with make_api(cors_origins=["*"]) as a:
        r = attack(a, "GET", "/api/v1/kpis", headers={**a.auth("viewer"), "Origin": EVIL,
                                                     "Cookie": "session=stolen"})
        assert r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r.headers
        r = attack(a, "OPTIONS", "/api/v1/kpis",
                   headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"})
        assert r.status_code == 200 and "access-control-allow-credentials" not in r.headers


# -- security headers on every kind of response ----------------------------------------------------

HTML_CSP = ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'")


def _kinds(a: Api) -> list[tuple[str, Any, str]]:
    """(kind, response, expected content type prefix)."""
    vera = a.auth("viewer")
    c = a.client
    return [
        ("json", c.get("/api/v1/kpis", headers=vera), "application/json"),
        ("json-public", c.get("/api/v1/health"), "application/json"),
        ("render", c.get("/api/v1/render", headers=vera), "application/json"),
        ("error-401", c.get("/api/v1/kpis"), "application/json"),
        ("error-403", c.get("/api/v1/users", headers=vera), "application/json"),
        ("error-404-route", c.get("/api/v1/nothing-here", headers=vera), "application/json"),
        ("error-404-item", c.get("/api/v1/kpis/nope", headers=vera), "application/json"),
        ("error-405", c.put("/api/v1/health"), "application/json"),
        ("error-422", c.post("/api/v1/auth/token", data={}), "application/json"),
        ("html", c.get("/"), "text/html"),
        ("static-js", c.get("/static/app.js"), "text/javascript"),
        ("static-css", c.get("/static/app.css"), "text/css"),
        ("static-vendor", c.get("/static/vendor/plotly.min.js"), "text/javascript"),
        ("static-404", c.get("/static/nope.js"), "application/json"),
        ("metrics", c.get("/metrics"), "text/plain"),
        ("digest-html", c.get("/api/v1/digest?format=html", headers=vera), "text/html"),
        ("no-content", c.post("/api/v1/auth/logout",
                              headers=bearer(a.login("other").json()["access_token"])), ""),
    ]


def test_security_headers_on_every_kind_of_response(shared_api: Api) -> None:
    for kind, r, ctype in _kinds(shared_api):
        count(ATTACKS)
        assert r.headers.get("content-type", "").startswith(ctype), (kind, r.headers)
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (kind, name, r.headers)
        if r.url.path.startswith("/api/"):
            assert r.headers["cache-control"] == "no-store", (kind, r.headers)
        if ctype == "text/html":
            csp = r.headers["content-security-policy"]
            assert all(part in csp for part in HTML_CSP), (kind, csp)
            script = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
            assert "unsafe-inline" not in script and "*" not in script and "http" not in script


def test_security_headers_on_an_unexpected_500(make_api: Any) -> None:
    with make_api(raise_server_exceptions=False) as a:
        vera = a.auth("viewer")

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("injected failure with a secret inside")

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(a.st.accounts, "list_dashboards", broken)
            r = a.client.get("/api/v1/dashboards", headers=vera)
        err = assert_error(r, 500, "internal_error")
        assert "secret" not in err["message"]
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (name, r.headers)
        assert r.headers["cache-control"] == "no-store"
