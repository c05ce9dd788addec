"""Export a workspace from one server and import it into another over the API: nothing lost
(every table's row count and checksum, and what the API reads back), a damaged archive
refused with nothing written, and only admins may move workspaces."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kpidash.store.archive import table_checksum

from .conftest import Api, assert_error, point

MakeApi = Callable[..., AbstractContextManager[Api]]
RULE = {"id": "signups_high", "kpi": "signups", "per": "region",
        "condition": {"kind": "threshold", "direction": "above", "bands": {"high": 100_000}}}
# GET paths whose answers must be the same on both servers (relative to the workspace)
READS = ["/kpis", "/kpis/revenue", "/series/revenue?grain=week&group_by=region",
         "/series/customer_churn_rate?grain=month&filter=plan:pro",
         "/series/signups?grain=day&from=2024-06-01T00:00:00Z", "/alert-rules", "/alerts",
         "/silences?all=true", "/anomalies?kpi=revenue", "/quality/revenue"]


def filled(api: Api) -> dict[str, Any]:
    """The server's ``default`` workspace (the demo's KPIs and 120 days of points with
    dimensions) plus an alert rule, a firing alert that was acknowledged, a silence, a
    dashboard, an annotation, detected anomalies and a recorded interaction."""
    c, analyst, admin = api.client, api.auth("analyst"), api.auth("admin")
    assert c.post("/api/v1/alert-rules", headers=analyst, json=[RULE]).status_code == 201
    r = c.post("/api/v1/ingest", headers=analyst, json={"points": [point(500_000)]})
    assert r.status_code == 200, r.text
    with api.st.lock:
        api.engine.evaluate_alerts()
        (alert,) = api.engine.alerts()
        api.engine.annotate("Spring campaign", datetime(2024, 5, 1, tzinfo=UTC),
                            datetime(2024, 5, 8, tzinfo=UTC), kpi_id="signups")
    r = c.post(f"/api/v1/alerts/{alert.fingerprint}/ack", headers=analyst,
               json={"comment": "looking"})
    assert r.status_code == 200, r.text
    r = c.post("/api/v1/silences", headers=analyst,
               json={"matchers": ["kpi=revenue"], "duration": "2h", "comment": "deploy"})
    assert r.status_code == 201, r.text
    assert c.post("/api/v1/anomalies/detect/revenue", headers=analyst).status_code == 200
    r = c.post("/api/v1/dashboards", headers=admin, json={
        "name": "Board", "spec": {"kpis": ["revenue", "signups"], "grain": "week"}})
    assert r.status_code == 201, r.text
    board = r.json()
    assert c.post("/api/v1/interactions", headers=analyst,
                  json={"kind": "view_kpi", "kpi_id": "revenue"}).status_code == 204
    return {"dashboard": board["id"], "fingerprint": alert.fingerprint}


def export(api: Api, who: str = "admin", workspace: str = "default") -> Any:
    return api.client.get(f"/api/v1/workspaces/{workspace}/export", headers=api.auth(who))


def manifest_of(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return dict(json.loads(zf.read("manifest.json")))


def checksums(api: Api, workspace: str) -> dict[str, tuple[int, str]]:
    """Rows and checksum of every table of ``workspace``, as an export would hold them."""
    with api.st.lock:
        return {name: (t.num_rows, table_checksum(t))
                for name, t in api.st.engine.store.export_workspace(workspace)}


@pytest.fixture
def source(api: Api) -> Iterator[tuple[Api, dict[str, Any], bytes]]:
    ids = filled(api)
    r = export(api)
    assert r.status_code == 200, r.text
    yield api, ids, r.content


def test_round_trip_into_another_server_loses_nothing(
        source: tuple[Api, dict[str, Any], bytes], make_api: MakeApi) -> None:
    a, ids, data = source
    manifest = manifest_of(data)
    expected = {n: (t["rows"], t["sha256"]) for n, t in manifest["tables"].items()}
    assert checksums(a, "default") == expected  # the archive is the workspace
    for table in ("kpis", "points", "series_dims", "alert_rules", "alert_instances",
                  "alert_acks", "silences", "dashboards", "annotations", "anomalies",
                  "interactions"):
        assert expected[table][0] > 0, table
    with make_api() as b:
        r = b.client.post("/api/v1/workspaces/import?id=copy", content=data,
                          headers={**b.auth("admin"), "Content-Type": "application/zip"})
        assert r.status_code == 201, r.text
        summary = r.json()
        assert summary["tables"] == {n: rows for n, (rows, _) in expected.items()}
        assert summary["checksums_matched"] is True
        assert summary["source"]["workspace"] == "default"
        assert "memberships" in summary["not_imported"] and summary["dashboards_adopted"] == 0
        assert summary["workspace"]["id"] == "copy" and summary["workspace"]["role"] == "admin"
        assert checksums(b, "copy") == expected
        # served at once; every read through the API gives the same answers
        for path in READS:
            want = a.client.get(f"/api/v1{path}", headers=a.auth("analyst"))
            got = b.client.get(f"/api/v1/workspaces/copy{path}", headers=b.auth("admin"))
            assert want.status_code == got.status_code == 200, (path, got.text)
            assert got.json() == want.json(), path
        board = ids["dashboard"]
        for path in (f"/dashboards/{board}", f"/dashboards/{board}/render"):
            want = a.client.get(f"/api/v1{path}", headers=a.auth("admin")).json()
            got = b.client.get(f"/api/v1/workspaces/copy{path}", headers=b.auth("admin")).json()
            assert _without_workspace(got) == _without_workspace(want), path
        members = b.client.get("/api/v1/workspaces/copy/members", headers=b.auth("admin"))
        assert [(m["username"], m["role"]) for m in members.json()] == [("adam", "admin")]
        # the same id again: refused, nothing changed (reads above recorded interactions)
        now = checksums(b, "copy")
        assert_error(b.client.post("/api/v1/workspaces/import?id=copy",
                                   headers=b.auth("admin"), content=data), 409, "conflict")
        assert_error(b.client.post("/api/v1/workspaces/import", headers=b.auth("admin"),
                                   content=data), 409)  # the archived id: default exists
        assert checksums(b, "copy") == now


def _without_workspace(doc: Any) -> Any:
    """A response with its workspace id taken out (it differs by design)."""
    if isinstance(doc, dict):
        return {k: _without_workspace(v) for k, v in doc.items() if k != "workspace"}
    if isinstance(doc, list):
        return [_without_workspace(v) for v in doc]
    return doc


def test_export_headers_name_the_workspace_and_time(
        source: tuple[Api, dict[str, Any], bytes]) -> None:
    a, _, data = source
    r = export(a)
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == \
        'attachment; filename="default-20240701T060000Z.kpidash.zip"'
    assert int(r.headers["content-length"]) == len(r.content)
    assert manifest_of(r.content)["tables"] == manifest_of(data)["tables"]  # deterministic


def _tampered(data: bytes, table: str, change: Callable[[pa.Table], pa.Table]) -> bytes:
    """The archive with one table's Parquet file replaced (its manifest entry kept)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == f"tables/{table}.parquet":
                buf = io.BytesIO()
                pq.write_table(change(pq.read_table(io.BytesIO(body))), buf)
                body = buf.getvalue()
            dst.writestr(item, body)
    return out.getvalue()


def _bump_first_value(t: pa.Table) -> pa.Table:
    values = t["value"].to_pylist()
    values[0] += 1
    return t.set_column(t.column_names.index("value"), "value", pa.array(values, pa.float64()))


def _with_manifest(data: bytes, **changes: Any) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "manifest.json":
                body = json.dumps({**json.loads(body), **changes}).encode()
            dst.writestr(item, body)
    return out.getvalue()


@pytest.mark.parametrize("damage, words", [
    (lambda d: _tampered(d, "points", _bump_first_value), ["'points'", "checksum"]),
    (lambda d: _tampered(d, "alert_rules", lambda t: t.slice(1)), ["'alert_rules'", "rows"]),
    (lambda d: _with_manifest(d, format_version=99), ["newer", "upgrade kpidash"]),
    (lambda d: _with_manifest(d, schema_version=999), ["schema version", "upgrade"]),
    (lambda d: d[: len(d) // 2], ["not a kpidash workspace archive"]),
    (lambda d: b"", ["body is empty"]),
], ids=["changed-value", "missing-row", "newer-format", "newer-schema", "truncated", "empty"])
def test_a_damaged_archive_is_refused_and_writes_nothing(
        source: tuple[Api, dict[str, Any], bytes], damage: Callable[[bytes], bytes],
        words: list[str]) -> None:
    a, _, data = source
    c, admin = a.client, a.auth("admin")
    before = c.get("/api/v1/workspaces", headers=admin).json()
    r = c.post("/api/v1/workspaces/import?id=broken", headers=admin, content=damage(data))
    error = assert_error(r, 400, "bad_input")
    for word in words:
        assert word in error["message"], error["message"]
    assert "/tmp" not in error["message"]  # the server's temporary path is not shown
    assert c.get("/api/v1/workspaces", headers=admin).json() == before
    with a.st.lock:
        assert a.engine.store.workspace("broken") is None
    assert_error(c.get("/api/v1/workspaces/broken/kpis", headers=admin), 404)


def test_only_admins_move_workspaces(api: Api) -> None:
    c, admin = api.client, api.auth("admin")
    # default: vera is a viewer, ana an analyst, otto a viewer there
    for who in ("viewer", "analyst", "other"):
        error = assert_error(export(api, who), 403, "forbidden")
        assert "admin" in error["message"]
    assert export(api, "admin").status_code == 200
    # acme: vera is its admin, ana is not a member (404: existence does not leak)
    assert c.post("/api/v1/workspaces", headers=admin,
                  json={"id": "acme", "name": "Acme"}).status_code == 201
    assert c.put(f"/api/v1/workspaces/acme/members/{api.ids['viewer']}", headers=admin,
                 json={"role": "admin"}).status_code == 204
    assert_error(export(api, "analyst", "acme"), 404, "not_found")
    assert_error(export(api, "admin", "nowhere"), 404)
    r = export(api, "viewer", "acme")  # a workspace admin may export it…
    assert r.status_code == 200, r.text
    # …but not import it: only server admins create workspaces (refused before the upload
    # is read)
    for who in ("viewer", "analyst"):
        error = assert_error(c.post("/api/v1/workspaces/import?id=acme2",
                                    headers=api.auth(who), content=r.content), 403)
        assert "server administrator" in error["message"]
    with api.st.lock:
        assert api.engine.store.workspace("acme2") is None


def test_import_as_a_multipart_upload_with_a_name(api: Api, make_api: MakeApi) -> None:
    """A small non-default workspace (its own time zone) moves under a new id and name; the
    importing admin adopts the dashboard whose owner this server does not know."""
    c, admin = api.client, api.auth("admin")
    assert c.post("/api/v1/workspaces", headers=admin, json={
        "id": "acme", "name": "Acme", "settings": {"timezone": "Europe/Paris",
                                                   "currency": "EUR"}}).status_code == 201
    assert c.put(f"/api/v1/workspaces/acme/members/{api.ids['analyst']}", headers=admin,
                 json={"role": "analyst"}).status_code == 204
    kpi = {"id": "signups", "name": "Sign-ups", "unit": "count", "aggregation": "sum",
           "dimensions": ["region", "plan", "channel"]}
    ws, ana = "/api/v1/workspaces/acme", api.auth("analyst")
    assert c.post(f"{ws}/kpis", headers=ana, json=kpi).status_code == 201
    day = datetime(2024, 6, 1, 12, tzinfo=UTC)
    pts = [point(10 + i, ts=(day + timedelta(days=i)).isoformat(), region=r)
           for i in range(20) for r in ("EU", "NA")]
    assert c.post(f"{ws}/ingest", headers=ana, json={"points": pts}).status_code == 200
    r = c.post(f"{ws}/dashboards", headers=ana,
               json={"name": "Ana's board", "spec": {"kpis": ["signups"]}})
    assert r.status_code == 201, r.text
    data = export(api, "admin", "acme").content
    with make_api() as b:
        bc, badmin = b.client, b.auth("admin")
        # this server does not know ana: her dashboard goes to the importing admin
        assert bc.delete(f"/api/v1/users/{b.ids['analyst']}", headers=badmin).status_code == 204
        r = bc.post("/api/v1/workspaces/import", params={"id": "acme-eu", "name": "Acme EU"},
                    headers=badmin, files={"file": ("acme.kpidash.zip", data, "application/zip")})
        assert r.status_code == 201, r.text
        got = checksums(b, "acme-eu")  # before any read records an interaction
        body = r.json()
        assert body["workspace"]["name"] == "Acme EU"
        assert body["workspace"]["settings"]["timezone"] == "Europe/Paris"
        assert body["tables"]["points"] == 40 and body["dashboards_adopted"] == 1
        (board,) = bc.get("/api/v1/workspaces/acme-eu/dashboards", headers=badmin).json()
        assert board["name"] == "Ana's board" and board["owner_id"] == b.ids["admin"]
        path = "/series/signups?grain=day&group_by=region"
        assert bc.get(f"/api/v1/workspaces/acme-eu{path}", headers=badmin).json() == \
            c.get(f"{ws}{path}", headers=ana).json()
        want = {n: (t["rows"], t["sha256"]) for n, t in manifest_of(data)["tables"].items()}
        changed = {n for n in want if got[n] != want[n]}
        assert changed == {"workspaces", "dashboards"}  # the new name, the adopted owner
        assert {n: v[0] for n, v in got.items()} == {n: v[0] for n, v in want.items()}
        # a form without the file field
        r = bc.post("/api/v1/workspaces/import", headers=badmin,
                    files={"upload": ("a.zip", data, "application/zip")})
        assert "`file` field" in assert_error(r, 400)["message"]
        assert_error(bc.post("/api/v1/workspaces/import?id=Bad%20Id", headers=badmin,
                             content=data), 422)
