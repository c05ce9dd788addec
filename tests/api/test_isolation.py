"""Workspace isolation over HTTP, generated from the app's own OpenAPI schema.

Workspace ``beta`` holds data, alert rules, a firing alert, a silence and a dashboard, all
marked with :data:`MARK`. Two attackers — the admin of another workspace (``alpha``) and an
analyst of ``default`` who is also in ``alpha`` — call every operation the schema lists with
beta's ids and a plausible body: on every path that names a workspace they are refused (404,
or 403 where the route is a server-admin one), nowhere do they see a byte of beta's data, and
afterwards beta's tables are exactly as before (checksums of its export). A route added to the
app is covered without editing this file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kpidash.store.archive import table_checksum

from .conftest import Api, Template, point, running

MARK = "Zq7beta"  # in the names and labels of beta's data (not in ids, which the attacker
# sends and may see echoed in an error); never in an attacker's response
B = "beta"
SKIP = {
    # the attacker's own account: logging out or changing their password is not an attack
    ("POST", "/api/v1/auth/token"), ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/me/password"),
    ("PATCH", "/api/v1/me"),
    # Server-Sent Events stream forever on success: tested in test_live / below by status
}
SSE = re.compile(r"/events$")
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/kpis"): {"id": "signups", "name": "hijacked", "unit": "count",
                        "aggregation": "sum"},
    ("PUT", "/kpis/{kpi_id}"): {"name": "hijacked", "unit": "count",
                                "aggregation": "sum"},
    ("POST", "/kpis/validate"): {"id": "x", "name": "x", "unit": "count"},
    ("POST", "/ingest"): {"points": [point(1, kpi="signups")]},
    ("POST", "/alerts/{fingerprint}/ack"): {"comment": "mine now"},
    ("POST", "/silences"): {"matchers": ["kpi=signups"], "duration": "1h"},
    ("POST", "/alert-rules"): [{"id": "hijack", "kpi": "signups", "condition": {
        "kind": "threshold", "direction": "above", "bands": {"low": 0}}}],
    ("PUT", "/alert-rules/{rule_id}"): {"kpi": "signups", "condition": {
        "kind": "threshold", "direction": "above", "bands": {"low": 0}}},
    ("POST", "/alert-rules/backtest"): {"rules": [{"id": "r", "kpi": "signups", "condition": {
        "kind": "threshold", "direction": "above", "bands": {"low": 0}}}],
        "from": "2024-06-01T00:00:00Z", "to": "2024-07-01T00:00:00Z"},
    ("POST", "/interactions"): {"kind": "view_kpi", "kpi_id": "signups"},
    ("POST", "/dashboards"): {"name": "mine", "spec": {"kpis": ["signups"]}},
    ("PATCH", "/dashboards/{dashboard_id}"): {"name": "mine now"},
    ("PUT", "/dashboards/{dashboard_id}/share"): {"user_ids": []},
    ("PATCH", "/api/v1/workspaces/{workspace}"): {"name": "mine now"},
    ("PUT", "/api/v1/workspaces/{workspace}/members/{user_id}"): {"role": "admin"},
    ("PATCH", "/api/v1/users/{user_id}"): {"role": "viewer"},
    ("POST", "/api/v1/users"): {"username": "intruder", "password": "long enough pass 1",
                                "role": "admin"},
    ("POST", "/api/v1/workspaces"): {"id": "gamma", "name": "Gamma"},
}
RAW = {("POST", "/write"): b"signups,region=EU value=1 1719000000000000000\n",
       ("POST", "/ingest/file"): b"timestamp,kpi,value\n2024-06-30T00:00:00Z,signups,1\n"}


def operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path template, operation) of every operation in the OpenAPI schema."""
    schema = api.app.openapi()
    return [(m.upper(), path, op) for path, ops in schema["paths"].items()
            for m, op in ops.items() if (m.upper(), path) not in SKIP]


def suffix(path: str) -> str:
    for prefix in ("/api/v1/workspaces/{workspace}", "/api/v1"):
        if path.startswith(prefix) and (prefix == "/api/v1" or "{workspace}/" in path):
            rest = path[len(prefix):]
            if rest and not (prefix == "/api/v1" and rest.startswith("/workspaces")):
                return rest
    return path


@pytest.fixture(scope="module")
def world(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Api, dict[str, str]]]:
    """The app with workspaces alpha and beta; beta's ids by path parameter name."""
    with running(template, tmp_path_factory.mktemp("isolation")) as api:
        c, admin = api.client, api.auth("admin")
        for ws in ("alpha", B):
            assert c.post("/api/v1/workspaces", headers=admin, json={
                "id": ws, "name": f"{MARK} {ws}" if ws == B else "Alpha"}).status_code == 201
        # otto: admin of alpha only (viewer in default); ana: analyst in default and alpha
        for who, role in (("other", "admin"), ("analyst", "analyst")):
            assert c.put(f"/api/v1/workspaces/alpha/members/{api.ids[who]}", headers=admin,
                         json={"role": role}).status_code == 204
        base = f"/api/v1/workspaces/{B}"
        kpi = {"id": "signups", "name": f"{MARK} sign-ups", "unit": "count",
               "aggregation": "sum", "dimensions": ["region", "plan", "channel"]}
        assert c.post(f"{base}/kpis", headers=admin, json=kpi).status_code == 201
        # the same KPI id in alpha, so that a crossing read would find something
        assert c.post("/api/v1/workspaces/alpha/kpis", headers=admin,
                      json={**kpi, "name": "Alpha sign-ups"}).status_code == 201
        pts = [point(1000 + i, ts=f"2024-06-{d:02d}T12:00:00Z", region=f"{MARK}{i % 2}")
               for i, d in enumerate(range(1, 31))]
        assert c.post(f"{base}/ingest", headers=admin, json={"points": pts}).status_code == 200
        rule = {"id": "beta_rule", "kpi": "signups", "per": "region",
                "condition": {"kind": "threshold", "direction": "above",
                              "bands": {"high": 10}}}
        assert c.post(f"{base}/alert-rules", headers=admin, json=rule).status_code == 201
        scope = api.run(api.st.scoped, B)
        with api.st.lock:
            scope.engine.evaluate_alerts()
            fingerprint = scope.engine.alerts()[0].fingerprint
            silence = scope.engine.silence([f"region={MARK}0"], by="adam",
                                           duration=timedelta(hours=1), comment=MARK)
        r = c.post(f"{base}/dashboards", headers=admin,
                   json={"name": f"{MARK} board", "spec": {"kpis": ["signups"]}})
        assert r.status_code == 201
        ids = {"workspace": B, "kpi_id": "signups", "dashboard_id": r.json()["id"],
               "fingerprint": fingerprint, "rule_id": rule["id"], "silence_id": silence.id,
               "user_id": api.ids["admin"], "session_id": api.pair("admin")["session_id"],
               "name": "dashboard", "token_id": "tok_unknown", "kpi": "signups"}
        yield api, ids


def fingerprint_of(api: Api) -> dict[str, str]:
    """Beta's tables: name → checksum of its export (exactly what an export would hold)."""
    with api.st.lock:
        return {name: table_checksum(table)
                for name, table in api.st.engine.store.export_workspace(B)}


def call(api: Api, who: str, method: str, path: str, op: dict[str, Any],
         ids: dict[str, str]) -> Any:
    url = path.format(**{k: ids.get(k, "x") for k in re.findall(r"{(\w+)}", path)})
    params = {p["name"]: ids.get(p["name"], "signups") for p in op.get("parameters", [])
              if p["in"] == "query" and p.get("required")}
    headers = api.auth(who)
    key = (method, suffix(path))
    if key in RAW:
        return api.client.request(method, url, params=params, headers=headers,
                                  content=RAW[key])
    body = BODIES.get(key, BODIES.get((method, path)))
    if body is None and "requestBody" in op:
        body = {}
    return api.client.request(method, url, params=params, headers=headers,
                              **({"json": body} if body is not None else {}))


@pytest.mark.parametrize("who", ["other", "analyst"])
def test_no_operation_reaches_another_workspace(world: tuple[Api, dict[str, str]],
                                                who: str) -> None:
    api, ids = world
    before = fingerprint_of(api)
    tried = refused = 0
    for method, path, op in operations(api):
        if SSE.search(path) and "{workspace}" not in path:
            continue  # beta's dashboard id at the unscoped path: the 404 is checked below
        r = call(api, who, method, path, op, ids)
        tried += 1
        text = r.text
        assert MARK not in text and MARK.lower() not in text, (method, path, r.status_code,
                                                               text[:300])
        if "{workspace}" in path:
            assert r.status_code in (403, 404), (method, path, r.status_code, text[:300])
            refused += 1
        else:
            assert r.status_code < 500, (method, path, text[:300])
    assert fingerprint_of(api) == before, "an attacker's call changed beta"
    print(f"isolation ({who}): {tried} operations tried with beta's ids, {refused} of them "
          f"on workspace paths, all refused; beta unchanged ({len(before)} tables)")
    assert refused >= 40


def test_unscoped_paths_do_not_find_beta_ids(world: tuple[Api, dict[str, str]]) -> None:
    api, ids = world
    c, h = api.client, api.auth("analyst")
    for path in ("/api/v1/dashboards/{dashboard_id}", "/api/v1/dashboards/{dashboard_id}/render",
                 "/api/v1/dashboards/{dashboard_id}/events", "/api/v1/alerts/{fingerprint}",
                 "/api/v1/alert-rules/{rule_id}"):
        r = c.get(path.format(**ids), headers=h)
        assert r.status_code == 404 and MARK not in r.text, (path, r.text)


def test_live_subscription_to_beta_is_refused(world: tuple[Api, dict[str, str]]) -> None:
    api, ids = world
    with api.client.websocket_connect("/api/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": api.token("other")})
        assert ws.receive_json()["type"] == "ready"
        for dashboard in (ids["dashboard_id"], "__all__"):
            ws.send_json({"type": "subscribe", "dashboard": dashboard, "workspace": B})
            msg = ws.receive_json()
            assert msg["type"] == "error" and msg["code"] == "subscribe_failed", msg
            assert MARK not in json.dumps(msg)


def test_the_schema_lists_every_workspace_operation(world: tuple[Api, dict[str, str]],
                                                    tmp_path: Path) -> None:
    """Every data operation is in the schema both unscoped and per workspace, so the test
    above cannot miss a scoped route."""
    api, _ = world
    ops = {(m, p) for m, p, _ in operations(api)}
    scoped = {(m, p.replace("/api/v1/workspaces/{workspace}", "/api/v1", 1)) for m, p in ops
              if p.startswith("/api/v1/workspaces/{workspace}/")}
    data = {(m, p) for m, p in ops if p.startswith(("/api/v1/kpis", "/api/v1/ingest",
                                                     "/api/v1/series", "/api/v1/alerts",
                                                     "/api/v1/dashboards", "/api/v1/insights"))}
    assert data and data <= scoped


def test_the_same_calls_work_for_a_member(world: tuple[Api, dict[str, str]]) -> None:
    """The control: beta's own admin gets 2xx on the read operations the attackers were
    refused, with beta's data in them — so the refusals above are not bad URLs."""
    api, ids = world
    ok = seen = 0
    for method, path, op in operations(api):
        if method != "GET" or not path.startswith("/api/v1/workspaces/{workspace}/") \
                or SSE.search(path):
            continue
        r = call(api, "admin", method, path, op, ids)
        assert r.status_code == 200, (path, r.text[:300])
        ok += 1
        seen += MARK in r.text
    assert ok >= 15 and seen >= 5, (ok, seen)
