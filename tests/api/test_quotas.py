"""Quotas per workspace over the API: the ingest rate, the number of KPI definitions and the
stored points. Going over one is a 429 with Retry-After and a message naming the quota;
nothing of the request is written, no ingest tokens are taken, and every other workspace —
with the same KPI ids, on the same server — goes on as before. Time is the FixedClock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .conftest import Api, assert_error, point

SIGNUPS = {"id": "signups", "name": "Sign-ups", "unit": "count", "aggregation": "sum",
           "dimensions": ["region", "plan", "channel"]}
T0 = datetime(2024, 6, 1, tzinfo=UTC)


def base(ws: str) -> str:
    return f"/api/v1/workspaces/{ws}"


def workspace(api: Api, ws: str, quotas: dict[str, Any] | None = None,
              **members: str) -> None:
    """Workspace ``ws`` (created by the server admin, with these quota overrides) holding
    the ``signups`` KPI of the same id as the demo's; the analyst is a member, and so are
    ``members`` (role name → role there)."""
    c, admin = api.client, api.auth("admin")
    settings = {"quotas": quotas} if quotas else {}
    r = c.post("/api/v1/workspaces", headers=admin,
               json={"id": ws, "name": ws.title(), "settings": settings})
    assert r.status_code == 201, r.text
    for who, role in {"analyst": "analyst", **members}.items():
        r = c.put(f"{base(ws)}/members/{api.ids[who]}", headers=admin, json={"role": role})
        assert r.status_code == 204, r.text
    r = c.put(f"{base(ws)}/kpis/signups", headers=admin, json=SIGNUPS)
    assert r.status_code == 200, r.text


def points(n: int, start: int = 0) -> dict[str, Any]:
    """A JSON batch of ``n`` signups points, one a minute from T0 + ``start`` minutes."""
    return {"points": [point(1, ts=(T0 + timedelta(minutes=start + i)).isoformat())
                       for i in range(n)]}


def csv(n: int, start: int = 0) -> bytes:
    rows = [f"{(T0 + timedelta(minutes=start + i)).isoformat()},signups,1,EU,pro,paid"
            for i in range(n)]
    return ("timestamp,kpi,value,region,plan,channel\n" + "\n".join(rows) + "\n").encode()


def lines(n: int, start: int = 0) -> bytes:
    t0 = int(T0.timestamp())
    return "".join(f"signups,region=EU,plan=pro,channel=paid value=1 {t0 + 60 * (start + i)}\n"
                   for i in range(n)).encode()


def stored(api: Api, ws: str) -> int:
    with api.st.lock:
        return api.engine.store.point_count(ws)


def ingest(api: Api, ws: str, n: int, start: int = 0, who: str = "analyst") -> Any:
    return api.client.post(f"{base(ws)}/ingest", headers=api.auth(who), json=points(n, start))


def refused(r: Any, quota: str, retry_after: int) -> str:
    """``r`` is the 429 of ``quota`` with this Retry-After; its message."""
    err = assert_error(r, 429, "quota_exceeded")
    assert r.headers["Retry-After"] == str(retry_after)
    (detail,) = err["details"]
    assert detail["code"] == f"quota.{quota}" and detail["location"] == {"field": quota}
    return str(err["message"])


def test_ingest_rate_refuses_then_refills_and_never_slows_another_workspace(api: Api) -> None:
    workspace(api, "acme", {"ingest_points_per_minute": 60})
    workspace(api, "beta")
    assert ingest(api, "acme", 50).status_code == 200
    message = refused(ingest(api, "acme", 20, start=50), "ingest_points_per_minute", 10)
    assert message == (
        "workspace 'acme' is over its ingest_points_per_minute quota of 60 points: this "
        "request carries 20 points and 10 may be sent now; nothing was written. Retry in 10 s "
        "(Retry-After), send smaller batches, or ask a server administrator to raise the "
        "quota")
    assert stored(api, "acme") == 50
    # another workspace with the same KPI id, and the server's own, ingest as usual
    for i in range(3):
        r = ingest(api, "beta", 100, start=i * 100)
        assert r.status_code == 200 and r.json()["written"] == 100, r.text
    r = api.client.post("/api/v1/ingest", headers=api.auth("analyst"), json=points(100))
    assert r.status_code == 200 and r.json()["written"] == 100, r.text
    assert stored(api, "beta") == 300
    # the bucket refills with the clock; the refusal took no tokens: 10 s is exactly enough
    api.clock.advance(timedelta(seconds=9))
    refused(ingest(api, "acme", 20, start=50), "ingest_points_per_minute", 1)
    api.clock.advance(timedelta(seconds=1))
    assert ingest(api, "acme", 20, start=50).status_code == 200
    assert stored(api, "acme") == 70
    refused(ingest(api, "acme", 1, start=70), "ingest_points_per_minute", 1)
    # a batch larger than a minute's worth is told to split
    api.clock.advance(timedelta(minutes=5))
    message = refused(ingest(api, "acme", 61, start=100), "ingest_points_per_minute", 3600)
    assert "more than a minute allows" in message and "batches of at most 60 points" in message


def test_line_protocol_and_uploads_count_against_the_rate(api: Api) -> None:
    workspace(api, "acme", {"ingest_points_per_minute": 10})
    c, h = api.client, api.auth("analyst")
    token = {"Authorization": f"Token {api.token('analyst')}"}
    assert c.post(f"{base('acme')}/write?precision=s", headers=token,
                  content=lines(4)).status_code == 204
    r = c.post("/write?db=acme&precision=s", headers=token, content=lines(7, start=4))
    refused(r, "ingest_points_per_minute", 6)  # 6 in the bucket, 1 missing at 1 per 6 s
    assert c.post(f"{base('acme')}/ingest/file?format=csv", headers=h,
                  content=csv(6, start=4)).status_code == 200
    assert stored(api, "acme") == 10
    # an upload is counted as it is read: written, found over the quota, rolled back
    api.clock.advance(timedelta(seconds=30))  # 5 points in the bucket
    message = refused(c.post(f"{base('acme')}/ingest/file?format=csv", headers=h,
                             content=csv(8, start=10)), "ingest_points_per_minute", 18)
    assert "carries 8 points and 5 may be sent now" in message
    assert stored(api, "acme") == 10
    # an empty bucket refuses an upload before reading it
    assert c.post(f"{base('acme')}/ingest/file?format=csv", headers=h,
                  content=csv(5, start=10)).status_code == 200
    message = refused(c.post(f"{base('acme')}/ingest/file?format=csv", headers=h,
                             content=csv(1, start=20)), "ingest_points_per_minute", 6)
    assert "this upload's points are counted as it is read" in message
    assert stored(api, "acme") == 15


def test_stored_points_quota(api: Api) -> None:
    workspace(api, "acme", {"max_points": 100})
    workspace(api, "beta")
    c, h = api.client, api.auth("analyst")
    assert ingest(api, "acme", 80).status_code == 200
    message = refused(ingest(api, "acme", 30, start=80), "max_points", 3600)
    assert message == (
        "workspace 'acme' would exceed its max_points quota of 100 stored points: it stores "
        "80 and this request of 30 points would bring it to 110; nothing was written. Delete "
        "data (DELETE /kpis/{kpi_id}?purge=true) or ask a server administrator to raise the "
        "quota")
    assert stored(api, "acme") == 80
    # beta, same KPI id, same server: not limited
    assert ingest(api, "beta", 500).status_code == 200 and stored(api, "beta") == 500
    # points that replace stored ones do not add to the count
    assert ingest(api, "acme", 30, start=60).status_code == 200  # 20 replaced, 10 new
    assert stored(api, "acme") == 90
    refused(c.post(f"{base('acme')}/ingest/file?format=csv", headers=h,
                   content=csv(11, start=90)), "max_points", 3600)
    refused(c.post(f"{base('acme')}/write?precision=s", headers=h,
                   content=lines(11, start=90)), "max_points", 3600)
    assert stored(api, "acme") == 90
    assert c.post(f"{base('acme')}/ingest/file?format=csv", headers=h,
                  content=csv(10, start=90)).status_code == 200
    assert stored(api, "acme") == 100
    refused(ingest(api, "acme", 1, start=100), "max_points", 3600)
    # deleting data makes room again
    r = c.delete(f"{base('acme')}/kpis/signups?purge=true", headers=h)
    assert r.status_code == 204, r.text
    assert c.put(f"{base('acme')}/kpis/signups", headers=h, json=SIGNUPS).status_code == 200
    assert ingest(api, "acme", 100).status_code == 200 and stored(api, "acme") == 100


def test_kpi_count_quota(api: Api) -> None:
    workspace(api, "acme", {"max_kpis": 2})
    workspace(api, "beta")
    c, h = api.client, api.auth("analyst")

    def kpi(kpi_id: str) -> dict[str, Any]:
        return {"id": kpi_id, "name": kpi_id.title(), "aggregation": "sum"}

    def ids(ws: str) -> list[str]:
        return sorted(k["id"] for k in c.get(f"{base(ws)}/kpis", headers=h).json())

    r = c.post(f"{base('acme')}/kpis", headers=h, json=[kpi("mrr"), kpi("churn")])
    message = refused(r, "max_kpis", 3600)
    assert message == (
        "workspace 'acme' would exceed its max_kpis quota of 2 KPI definitions: it has 1 and "
        "this request adds 2 new (churn, mrr); nothing was stored. Delete KPIs (DELETE "
        "/kpis/{kpi_id}) or ask a server administrator to raise the quota")
    assert ids("acme") == ["signups"]
    assert c.put(f"{base('acme')}/kpis/mrr", headers=h, json=kpi("mrr")).status_code == 200
    refused(c.put(f"{base('acme')}/kpis/churn", headers=h, json=kpi("churn")), "max_kpis",
            3600)
    # replacing a KPI it has is not adding one
    r = c.post(f"{base('acme')}/kpis", headers=h, json=[{**kpi("mrr"), "name": "MRR"}, SIGNUPS])
    assert r.status_code == 201, r.text
    assert ids("acme") == ["mrr", "signups"]
    # beta is not limited, and the same ids are its own
    r = c.post(f"{base('beta')}/kpis", headers=h, json=[kpi("mrr"), kpi("churn"), kpi("arr")])
    assert r.status_code == 201, r.text
    assert ids("beta") == ["arr", "churn", "mrr", "signups"]


def test_server_defaults_and_workspace_overrides(make_api: Callable[..., Any]) -> None:
    with make_api(quota_ingest_points_per_minute=5, quota_max_kpis=50) as api:
        workspace(api, "acme", {"ingest_points_per_minute": 100})
        workspace(api, "beta")
        for ws in ("default", "beta"):  # the server's default: 5 a minute, 1 per 12 s
            assert ingest(api, ws, 4).status_code == 200
            message = refused(ingest(api, ws, 4, start=4), "ingest_points_per_minute", 36)
            assert f"workspace {ws!r}" in message and "quota of 5 points" in message
        assert ingest(api, "acme", 6).status_code == 200  # its own, higher limit
        r = api.client.get(f"{base('acme')}/usage", headers=api.auth("analyst"))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "workspace": "acme",
            "quotas": {"max_kpis": 50, "max_points": None, "ingest_points_per_minute": 100},
            "server_defaults": {"max_kpis": 50, "max_points": None,
                                "ingest_points_per_minute": 5},
            "workspace_overrides": {"max_kpis": None, "max_points": None,
                                    "ingest_points_per_minute": 100},
            "usage": {"kpis": 1, "points": 6, "ingest_points_available": 94}}


def test_only_a_server_admin_changes_a_workspaces_quotas(api: Api) -> None:
    # vera is acme's admin, not a server admin
    workspace(api, "acme", {"ingest_points_per_minute": 10}, viewer="admin")
    c, vera, adam = api.client, api.auth("viewer"), api.auth("admin")
    assert ingest(api, "acme", 10).status_code == 200
    refused(ingest(api, "acme", 10, start=10), "ingest_points_per_minute", 60)
    r = c.patch(base("acme"), headers=vera,
                json={"settings": {"quotas": {"ingest_points_per_minute": 1000}}})
    err = assert_error(r, 403, "forbidden")
    assert "only a server administrator can change the quotas of workspace 'acme'" in \
        err["message"]
    # other settings are hers to change, and doing so does not refill the bucket
    r = c.patch(base("acme"), headers=vera, json={"settings": {"default_theme": "dark"}})
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["quotas"]["ingest_points_per_minute"] == 10
    refused(ingest(api, "acme", 10, start=10), "ingest_points_per_minute", 60)
    # the server admin raises it: in force at once
    r = c.patch(base("acme"), headers=adam,
                json={"settings": {"quotas": {"ingest_points_per_minute": 1000}}})
    assert r.status_code == 200, r.text
    api.clock.advance(timedelta(seconds=1))  # 1000/min refills 16.7 points a second
    assert ingest(api, "acme", 10, start=10).status_code == 200
    assert stored(api, "acme") == 20


def test_usage_is_for_members(api: Api) -> None:
    workspace(api, "acme", {"max_points": 1000, "ingest_points_per_minute": 600},
              viewer="viewer")
    c = api.client
    assert ingest(api, "acme", 25).status_code == 200
    r = c.get(f"{base('acme')}/usage", headers=api.auth("viewer"))
    assert r.status_code == 200, r.text
    assert r.json()["usage"] == {"kpis": 1, "points": 25, "ingest_points_available": 575}
    api.clock.advance(timedelta(seconds=2))  # 10 points a second
    r = c.get(f"{base('acme')}/usage", headers=api.auth("viewer"))
    assert r.json()["usage"]["ingest_points_available"] == 595
    # not a member, or no such workspace: the same 404; no token: 401
    other = assert_error(c.get(f"{base('acme')}/usage", headers=api.auth("other")), 404)
    missing = assert_error(c.get(f"{base('nope')}/usage", headers=api.auth("other")), 404)
    assert other["message"] == "no workspace 'acme'" and missing["code"] == other["code"]
    assert_error(c.get(f"{base('acme')}/usage"), 401)
    # the server's own workspace: unlimited by default
    r = c.get(f"{base('default')}/usage", headers=api.auth("viewer"))
    assert r.status_code == 200, r.text
    assert r.json()["quotas"] == {"max_kpis": None, "max_points": None,
                                  "ingest_points_per_minute": None}
    assert r.json()["usage"]["points"] == stored(api, "default") > 0
    assert r.json()["usage"]["ingest_points_available"] is None
