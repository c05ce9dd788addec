"""Every endpoint's happy path and its answers to bad input (4xx naming the problem, never
500), against the demo store."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kpidash.api import live

from .conftest import NOW, PASSWORD, Api, assert_error, point

RULE: dict[str, Any] = {"id": "signups_high", "kpi": "signups", "per": "region",
        "condition": {"kind": "threshold", "direction": "above", "bands": {"high": 100_000}}}
NPS: dict[str, Any] = {"id": "nps", "name": "Net promoter score", "unit": "pts", "dimensions": ["region"]}


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content and "json" in r.headers.get("content-type", "") else None


# -- KPI definitions --------------------------------------------------------------------------


def test_kpis_list_and_get(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    kpis = ok(shared_api.client.get("/api/v1/kpis", headers=h))
    assert {"revenue", "mrr", "arr", "signups", "conversion_rate"} <= {k["id"] for k in kpis}
    revenue = ok(shared_api.client.get("/api/v1/kpis/revenue", headers=h))
    assert revenue["name"] == "Revenue" and revenue["dimensions"] == ["region", "plan", "channel"]
    assert_error(shared_api.client.get("/api/v1/kpis/nope", headers=h), 404, "not_found")


def test_kpi_create_replace_delete(api: Api) -> None:
    h = api.auth("analyst")
    (created,) = ok(api.client.post("/api/v1/kpis", headers=h, json=NPS), 201)
    assert created["id"] == "nps" and created["unit"] == "pts"
    many = ok(api.client.post("/api/v1/kpis", headers=h, json={"kpis": [
        {**NPS, "id": "csat", "name": "CSAT"}, {**NPS, "id": "ces", "name": "CES"}]}), 201)
    assert sorted(k["id"] for k in many) == ["ces", "csat"]
    replaced = ok(api.client.put("/api/v1/kpis/nps", headers=h,
                                 json={**NPS, "name": "NPS", "higher_is_better": True}))
    assert replaced["name"] == "NPS"
    assert ok(api.client.get("/api/v1/kpis/nps", headers=h))["name"] == "NPS"
    assert api.client.delete("/api/v1/kpis/nps", headers=h).status_code == 204
    assert_error(api.client.get("/api/v1/kpis/nps", headers=h), 404)
    # purge=true deletes the data too
    ok(api.client.post("/api/v1/ingest", headers=h, json={"points": [
        {"kpi": "csat", "ts": "2024-06-30T00:00:00Z", "value": 4, "dims": {"region": "EU"}}]}))
    assert api.client.delete("/api/v1/kpis/csat?purge=true", headers=h).status_code == 204


def test_kpi_definition_errors(api: Api) -> None:
    h = api.auth("analyst")
    c = api.client
    err = assert_error(c.post("/api/v1/kpis", headers=h, json="revenue"), 400, "bad_input")
    assert "KPI definition" in err["message"]
    err = assert_error(c.post("/api/v1/kpis", headers=h, json=[{"id": "x"}]), 422)
    assert err["details"][0]["location"]["field"] == "name"
    err = assert_error(c.put("/api/v1/kpis/nps", headers=h, json={**NPS, "id": "other"}), 400)
    assert "differs from the path" in err["message"]
    assert_error(c.put("/api/v1/kpis/nps", headers=h, json=[NPS]), 400, "bad_input")
    assert_error(c.delete("/api/v1/kpis/nope", headers=h), 404)
    err = assert_error(c.delete("/api/v1/kpis/mrr", headers=h), 409, "conflict")  # arr uses it
    assert "arr" in err["message"]
    assert_error(c.get("/api/v1/kpis/x", headers=h), 404)  # nothing stored by the failures


def test_kpi_validate_stores_nothing(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    good = ok(shared_api.client.post("/api/v1/kpis/validate", headers=h, json=NPS))
    assert good == {"ok": True, "errors": 0, "issues": []}
    bad = ok(shared_api.client.post("/api/v1/kpis/validate", headers=h,
                                    json=[{"id": "x", "unit": 5}]))
    assert bad["ok"] is False and bad["errors"] >= 1
    assert {i["location"]["field"] for i in bad["issues"]} >= {"name"}
    assert_error(shared_api.client.get("/api/v1/kpis/nps", headers=h), 404)
    assert_error(shared_api.client.post("/api/v1/kpis/validate", headers=h, json=7), 400)


# -- ingestion --------------------------------------------------------------------------------


def test_ingest_json(api: Api) -> None:
    before = api.points()
    r = ok(api.client.post("/api/v1/ingest", headers=api.auth("analyst"),
                           json={"points": [point(5), point(7, region="NA")]}))
    assert r["rows"] == 2 and r["written"] == 2
    assert api.points() == before + 2


def test_ingest_bad_points_write_nothing(api: Api) -> None:
    before = api.points()
    r = api.client.post("/api/v1/ingest", headers=api.auth("analyst"), json={"points": [
        point(5), {"kpi": "signups", "ts": "yesterday", "value": 1, "dims": {}},
        point(3, region="Mars", bogus="x"), {"kpi": "nope", "ts": "2024-06-30T00:00:00Z",
                                             "value": 1}]})
    err = assert_error(r, 422, "validation_failed")
    assert "nothing written" in err["message"]
    where = {(d["location"]["row"], d["location"]["field"], d["code"]) for d in err["details"]}
    assert (2, "timestamp", "point.timestamp") in where
    assert (4, "kpi", "point.kpi") in where
    assert any(row == 3 and code == "point.dimension" for row, _, code in where)
    assert api.points() == before  # the good first point was not written either
    err = assert_error(api.client.post("/api/v1/ingest", headers=api.auth("analyst"),
                                       content=b"not json"), 422)
    assert err["details"][0]["code"] == "json.syntax"
    err = assert_error(api.client.post("/api/v1/ingest", headers=api.auth("analyst"),
                                       json={"points": "many"}), 422)
    assert err["details"][0]["code"] == "json.shape"


CSV = (b"timestamp,kpi,value,region,plan,channel\n"
       b"2024-06-30T10:00:00Z,signups,4,EU,pro,paid\n"
       b"2024-06-30T11:00:00Z,signups,6,NA,free,organic\n")


def test_ingest_csv_and_parquet_files(api: Api) -> None:
    h = api.auth("analyst")
    before = api.points()
    r = ok(api.client.post("/api/v1/ingest/file?format=csv", headers=h, content=CSV))
    assert r["written"] == 2
    table = pa.table({
        "timestamp": pa.array([datetime(2024, 6, 30, 12, tzinfo=UTC),
                               datetime(2024, 6, 30, 13, tzinfo=UTC)],
                              pa.timestamp("us", tz="UTC")),
        "kpi": ["signups", "signups"], "value": [1.0, 2.0], "region": ["EU", "APAC"],
        "plan": ["pro", "pro"], "channel": ["paid", "paid"]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    r = ok(api.client.post("/api/v1/ingest/file?format=parquet", headers=h,
                           content=buf.getvalue()))
    assert r["written"] == 2
    assert api.points() == before + 4


def test_ingest_file_errors(api: Api) -> None:
    h = api.auth("analyst")
    before = api.points()
    err = assert_error(api.client.post("/api/v1/ingest/file?format=csv", headers=h,
                                       content=CSV.replace(b",4,", b",four,")), 422)
    (d,) = err["details"]
    assert d["location"]["row"] == 1 and d["location"]["field"] == "value"
    err = assert_error(api.client.post("/api/v1/ingest/file?format=parquet", headers=h,
                                       content=b"this is no parquet file"), 400, "bad_input")
    assert "parquet" in err["message"].lower()
    err = assert_error(api.client.post("/api/v1/ingest/file?format=xml", headers=h,
                                       content=CSV), 422)
    assert err["details"][0]["location"] == {"in": "query", "field": "format"}
    assert_error(api.client.post("/api/v1/ingest/file?format=csv", headers=h, content=b""),
                 400)
    # a header row that is not UTF-8 (here a PNG sent as CSV) was a 500 (found by fuzzing)
    err = assert_error(api.client.post("/api/v1/ingest/file?format=csv", headers=h,
                                       content=b"\x89PNG\r\n\x1a\n"), 400, "bad_input")
    assert "not valid UTF-8" in err["message"] and "header row, byte 0" in err["message"]
    assert api.points() == before


LINE = b"signups,region=EU,plan=pro,channel=paid value=3 1719741600\n"  # 2024-06-30T10:00Z


@pytest.mark.parametrize("path", ["/api/v1/write", "/write", "/api/v2/write"])
def test_line_protocol(api: Api, path: str) -> None:
    before = api.points()
    r = api.client.post(f"{path}?precision=s", headers=api.auth("analyst"), content=LINE)
    assert r.status_code == 204, r.text
    # InfluxDB clients send "Authorization: Token <token>"
    r = api.client.post(f"{path}?precision=s", content=LINE.replace(b"=3 1719741600",
                                                                     b"=4 1719745200"),
                        headers={"Authorization": f"Token {api.token('analyst')}"})
    assert r.status_code == 204, r.text
    assert api.points() == before + 2


def test_line_protocol_errors(api: Api) -> None:
    h = api.auth("analyst")
    before = api.points()
    err = assert_error(api.client.post("/api/v1/write", headers=h,
                                       content=LINE + b"signups,region=EU value\n"), 422)
    assert err["details"][0]["code"].startswith("lineprotocol.")
    assert err["details"][0]["location"] == {"row": 2, "field": "value"}
    err = assert_error(api.client.post("/api/v1/write?precision=fortnight", headers=h,
                                       content=LINE), 422)
    assert err["details"][0]["code"] == "lineprotocol.precision"
    assert "UTF-8" in assert_error(api.client.post("/api/v1/write", headers=h,
                                                   content=b"\xff\xfe"), 400)["message"]
    assert api.client.post("/api/v1/write", content=LINE,
                           headers={"Authorization": "Token nope"}).status_code == 401
    assert api.points() == before


def test_413_on_ingest_write_and_upload(make_api: Any) -> None:
    with make_api(max_body_bytes=1024, max_upload_bytes=2048) as a:
        h = a.auth("analyst")
        before = a.points()
        big = b"#" * 1500
        assert_error(a.client.post("/api/v1/ingest", headers=h, content=big), 413)
        assert_error(a.client.post("/api/v1/write", headers=h, content=big), 413)
        assert_error(a.client.post("/api/v2/write", headers=h, content=big), 413)
        ok(a.client.post("/api/v1/ingest/file", headers=h, content=CSV))  # under 2048
        assert_error(a.client.post("/api/v1/ingest/file", headers=h, content=b"#" * 3000), 413)
        # no Content-Length (chunked): counted while reading
        chunks = (b"#" * 512 for _ in range(6))
        assert_error(a.client.post("/api/v1/ingest/file", headers=h, content=chunks), 413)
        assert a.points() == before + 2


# -- queries ----------------------------------------------------------------------------------


def test_series_with_filter_and_by(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    (total,) = ok(shared_api.client.get("/api/v1/series/revenue?grain=week", headers=h))
    (eu,) = ok(shared_api.client.get("/api/v1/series/revenue?grain=week&filter=region:EU",
                                     headers=h))
    assert total["kpi_id"] == "revenue" and total["grain"] == "week"
    assert eu["periods"] == total["periods"]
    assert all(e < t for e, t in zip(eu["values"], total["values"], strict=True) if t)
    by = ok(shared_api.client.get("/api/v1/series/revenue?grain=week&filter=region:EU"
                                  "&filter=region:NA&by=plan", headers=h))
    assert len(by) >= 2 and all(s["group"] for s in by)
    ranged = ok(shared_api.client.get(
        "/api/v1/series/signups?from=2024-06-01T00:00:00Z&to=2024-06-08T00:00:00Z", headers=h))
    assert len(ranged[0]["periods"]) == 7


@pytest.mark.parametrize(("query", "status", "needle"), [
    ("grain=fortnight", 400, "unknown grain"),
    ("by=colour", 400, "no dimension 'colour'"),
    ("filter=EU", 400, "dim:value"),
    ("filter=colour:red", 400, "no dimension 'colour'"),
    ("from=2024-06-01", 400, "UTC offset"),
    ("from=soon", 400, "ISO date"),
    ("tz=Mars/Olympus", 400, "time zone"),
    ("from=2024-06-08T00:00:00Z&to=2024-06-01T00:00:00Z", 400, "after start"),
])
def test_series_errors(shared_api: Api, query: str, status: int, needle: str) -> None:
    r = shared_api.client.get(f"/api/v1/series/revenue?{query}",
                              headers=shared_api.auth("viewer"))
    assert needle in assert_error(r, status)["message"]


def test_forecast(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    (f,) = ok(shared_api.client.get("/api/v1/forecast/revenue?horizon=7", headers=h))
    assert f["kpi_id"] == "revenue" and len(f["periods"]) == 7
    assert f["periods"][0].startswith("2024-07-01")
    by = ok(shared_api.client.get("/api/v1/forecast/signups?horizon=3&grain=week&by=region",
                                  headers=h))
    assert len(by) == 4
    err = assert_error(shared_api.client.get("/api/v1/forecast/revenue?horizon=0", headers=h),
                       422)
    assert err["details"][0]["location"]["field"] == "horizon"
    assert_error(shared_api.client.get("/api/v1/forecast/nope", headers=h), 404)
    assert_error(shared_api.client.get("/api/v1/forecast/revenue?grain=year", headers=h), 400)


def test_anomalies_detect_and_list(api: Api) -> None:
    c, h = api.client, api.auth("analyst")
    assert ok(c.get("/api/v1/anomalies", headers=h)) == []
    found = ok(c.post("/api/v1/anomalies/detect/revenue?by=region", headers=h))
    assert found["new"] >= 1 and len(found["anomalies"]) >= found["new"]
    listed = ok(c.get("/api/v1/anomalies?kpi=revenue&since=2024-01-01T00:00:00Z",
                      headers=api.auth("viewer")))
    assert len(listed) >= found["new"] and all(a["kpi_id"] == "revenue" for a in listed)
    again = ok(c.post("/api/v1/anomalies/detect/revenue?by=region", headers=h))
    assert again["new"] == 0  # stored once
    assert_error(c.get("/api/v1/anomalies?kpi=nope", headers=h), 404)
    assert "ISO" in assert_error(c.get("/api/v1/anomalies?since=later", headers=h),
                                 400)["message"]
    assert_error(c.post("/api/v1/anomalies/detect/revenue?grain=eon", headers=h), 400)


def test_quality(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    q = ok(shared_api.client.get("/api/v1/quality/revenue", headers=h))
    assert q["kpi_id"] == "revenue" and q["points"] > 1000 and q["series"] > 1
    err = assert_error(shared_api.client.get("/api/v1/quality/arr", headers=h), 400)
    assert "derived" in err["message"]


def test_trends(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    (t,) = ok(shared_api.client.get("/api/v1/trends/revenue", headers=h))
    assert t["kpi_id"] == "revenue" and t["grain"] == "week" and "change" in t
    by = ok(shared_api.client.get("/api/v1/trends/revenue?by=region&filter=plan:pro",
                                  headers=h))
    assert len(by) == 4
    assert_error(shared_api.client.get("/api/v1/trends/revenue?grain=eon", headers=h), 400)


# -- alerts, silences, rules ------------------------------------------------------------------


def firing(api: Api) -> str:
    """A rule, a breaching point through the API, an alert tick: the fingerprint."""
    h = api.auth("analyst")
    ok(api.client.post("/api/v1/alert-rules", headers=h, json=RULE), 201)
    ok(api.client.post("/api/v1/ingest", headers=h, json={"points": [point(500_000)]}))
    api.run(live.alert_tick, api.st)
    (alert,) = ok(api.client.get("/api/v1/alerts", headers=api.auth("viewer")))
    assert alert["state"] == "firing" and alert["slice"] == {"region": "EU"}
    return str(alert["fingerprint"])


def test_alerts_list_get_ack(api: Api) -> None:
    c = api.client
    fp = firing(api)
    one = ok(c.get(f"/api/v1/alerts/{fp}", headers=api.auth("viewer")))
    assert one["rule_id"] == "signups_high"
    assert [(h["from"], h["to"]) for h in one["history"]][-1][1] == "firing"
    assert one["acknowledgements"] == []
    acked = ok(c.post(f"/api/v1/alerts/{fp}/ack", headers=api.auth("analyst"),
                      json={"comment": "on it"}))
    assert acked["fingerprint"] == fp
    one = ok(c.get(f"/api/v1/alerts/{fp}", headers=api.auth("viewer")))
    (ack,) = one["acknowledgements"]
    assert ack["by"] == "ana" and ack["comment"] == "on it"
    assert ok(c.get("/api/v1/alerts?state=firing", headers=api.auth("viewer")))
    assert ok(c.get("/api/v1/alerts?state=resolved", headers=api.auth("viewer"))) == []
    assert len(ok(c.get("/api/v1/alerts?all=true", headers=api.auth("viewer")))) == 1


def test_alert_errors(api: Api) -> None:
    c, h = api.client, api.auth("analyst")
    assert_error(c.get("/api/v1/alerts/nope", headers=h), 404)
    assert_error(c.post("/api/v1/alerts/nope/ack", headers=h, json={}), 404)
    err = assert_error(c.get("/api/v1/alerts?state=burning", headers=h), 400)
    assert "burning" in err["message"] and "firing" in err["message"]
    err = assert_error(c.post("/api/v1/alerts/nope/ack", headers=h, json={"note": "x"}), 422)
    assert err["details"][0]["location"]["field"] == "note"


def test_silences_add_list_expire(api: Api) -> None:
    c, h = api.client, api.auth("analyst")
    s = ok(c.post("/api/v1/silences", headers=h, json={
        "matchers": ["kpi=signups", "region=EU"], "duration": "2h", "comment": "deploy"}), 201)
    assert s["state"] == "active" and s["comment"] == "deploy"
    (listed,) = ok(c.get("/api/v1/silences", headers=api.auth("viewer")))
    assert listed["id"] == s["id"]
    later = ok(c.post("/api/v1/silences", headers=h, json={
        "matchers": ["kpi=revenue"], "start": "2024-07-02T00:00:00Z",
        "end": "2024-07-03T00:00:00Z"}), 201)
    assert later["state"] == "pending"
    expired = ok(c.post(f"/api/v1/silences/{s['id']}/expire", headers=h))
    assert expired["state"] == "expired"
    assert [x["id"] for x in ok(c.get("/api/v1/silences", headers=h))] == [later["id"]]
    assert len(ok(c.get("/api/v1/silences?all=true", headers=h))) == 2


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"matchers": []}, 422, "matchers"),
    ({"matchers": ["kpi=signups"], "duration": "a while"}, 400, "duration"),
    ({"matchers": ["kpi=signups"]}, 400, "end or a duration"),
    ({"matchers": ["kpi=signups"], "start": "2024-07-01T00:00:00", "duration": "1h"}, 400,
     "UTC offset"),
])
def test_silence_errors(api: Api, body: dict[str, Any], status: int, needle: str) -> None:
    r = api.client.post("/api/v1/silences", headers=api.auth("analyst"), json=body)
    assert needle in assert_error(r, status)["message"]
    assert_error(api.client.post("/api/v1/silences/nope/expire", headers=api.auth("analyst")),
                 404)


YAML = b"""rules:
  - id: revenue_low
    kpi: revenue
    condition: {kind: threshold, direction: below, bands: {high: 1000}}
"""


def test_alert_rules_crud_json_and_yaml(api: Api) -> None:
    c, h, v = api.client, api.auth("analyst"), api.auth("viewer")
    (rule,) = ok(c.post("/api/v1/alert-rules", headers=h, json=RULE), 201)
    assert rule["id"] == "signups_high"
    both = ok(c.post("/api/v1/alert-rules", headers=h, json={"rules": [
        {**RULE, "id": "a"}, {**RULE, "id": "b"}]}), 201)
    assert [r["id"] for r in both] == ["a", "b"]
    (from_yaml,) = ok(c.post("/api/v1/alert-rules", content=YAML,
                             headers={**h, "content-type": "application/yaml"}), 201)
    assert from_yaml["id"] == "revenue_low" and from_yaml["kpi"] == "revenue"
    ids = {r["id"] for r in ok(c.get("/api/v1/alert-rules", headers=v))}
    assert ids == {"signups_high", "a", "b", "revenue_low"}
    assert ok(c.get("/api/v1/alert-rules/a", headers=v))["kpi"] == "signups"
    new = {**RULE, "condition": {**RULE["condition"], "bands": {"high": 5}}}
    put = ok(c.put("/api/v1/alert-rules/a", headers=h, json={k: v_ for k, v_ in new.items()
                                                             if k != "id"}))
    assert put["id"] == "a" and put["condition"]["bands"]["high"] == 5
    assert c.delete("/api/v1/alert-rules/a", headers=h).status_code == 204
    assert_error(c.get("/api/v1/alert-rules/a", headers=v), 404)


def test_alert_rule_errors(api: Api) -> None:
    c, h = api.client, api.auth("analyst")
    err = assert_error(c.post("/api/v1/alert-rules", content=b"rules: [",
                              headers={**h, "content-type": "application/yaml"}), 422)
    assert err["details"][0]["code"] == "yaml.syntax"
    err = assert_error(c.post("/api/v1/alert-rules", headers=h, json=5), 400, "bad_input")
    assert "alert rule" in err["message"]
    err = assert_error(c.post("/api/v1/alert-rules", headers=h,
                              json={**RULE, "kpi": "nope"}), 422)
    assert "nope" in str(err["details"])
    err = assert_error(c.put("/api/v1/alert-rules/a", headers=h, json={**RULE}), 400)
    assert "differs from the path" in err["message"]
    assert_error(c.put("/api/v1/alert-rules/a", headers=h, json=[RULE]), 400)
    assert_error(c.delete("/api/v1/alert-rules/nope", headers=h), 404)
    assert ok(c.get("/api/v1/alert-rules", headers=h)) == []  # nothing stored


def test_alert_rule_backtest(api: Api) -> None:
    c, h = api.client, api.auth("analyst")
    body = {"rules": [{**RULE, "condition": {**RULE["condition"], "bands": {"high": 300}}}],
            "from": "2024-05-01T00:00:00Z", "to": "2024-06-30T00:00:00Z"}
    (doc,) = ok(c.post("/api/v1/alert-rules/backtest", headers=h, json=body))
    assert doc["rule"] == "signups_high" or doc.get("rule_id") == "signups_high" \
        or "signups_high" in str(doc)
    yaml_body = {**body, "rules": YAML.decode()}
    assert len(ok(c.post("/api/v1/alert-rules/backtest", headers=h, json=yaml_body))) == 1
    assert ok(c.get("/api/v1/alert-rules", headers=h)) == []  # a backtest stores nothing
    err = assert_error(c.post("/api/v1/alert-rules/backtest", headers=h,
                              json={**body, "from": "May"}), 400)
    assert "from" in err["message"]
    assert_error(c.post("/api/v1/alert-rules/backtest", headers=h,
                        json={**body, "incidents": [{"kpi": "signups"}]}), 400)
    err = assert_error(c.post("/api/v1/alert-rules/backtest", headers=h,
                              json={"rules": [], "from": "x"}), 422)
    assert err["details"][0]["location"]["field"] == "to"


# -- insights, digest, interactions -----------------------------------------------------------


def test_insights(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    top = ok(shared_api.client.get("/api/v1/insights?limit=3", headers=h))
    assert 1 <= len(top) <= 3 and all(i["text"] for i in top)
    trends = ok(shared_api.client.get("/api/v1/insights?type=trend&kpi=revenue", headers=h))
    assert all(i["type"] == "trend" and i["kpi_id"] == "revenue" for i in trends)
    err = assert_error(shared_api.client.get("/api/v1/insights?type=gossip", headers=h), 400)
    assert "gossip" in err["message"] and "trend" in err["message"]
    assert_error(shared_api.client.get("/api/v1/insights?kpi=nope", headers=h), 404)
    assert_error(shared_api.client.get("/api/v1/insights?limit=0", headers=h), 422)


def test_digest_json_text_html(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    doc = ok(shared_api.client.get("/api/v1/digest?follow=revenue&limit=3", headers=h))
    assert isinstance(doc, dict) and doc
    text = shared_api.client.get("/api/v1/digest?format=text", headers=h)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "digest" in text.text.lower() and "1 July 2024" in text.text
    html = shared_api.client.get("/api/v1/digest?format=html", headers=h)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "<" in html.text
    assert_error(shared_api.client.get("/api/v1/digest?format=pdf", headers=h), 422)
    assert_error(shared_api.client.get("/api/v1/digest?follow=nope", headers=h), 404)


def test_interactions(api: Api) -> None:
    c, h = api.client, api.auth("viewer")
    r = c.post("/api/v1/interactions", headers=h, json={"kind": "apply_filter",
                                                         "kpi_id": "revenue",
                                                         "filters": {"region": ["EU"]}})
    assert r.status_code == 204, r.text
    seen = api.engine.interactions("vera")
    assert any(i.get("kpi_id") == "revenue" if isinstance(i, dict) else
               getattr(i, "kpi_id", None) == "revenue" for i in seen)
    assert_error(c.post("/api/v1/interactions", headers=h, json={"kind": "stare"}), 422)
    assert_error(c.post("/api/v1/interactions", headers=h,
                        json={"kind": "view_kpi", "kpi_id": "nope"}), 404)


# -- dashboards and rendering -----------------------------------------------------------------


LAYOUT = [{"id": "chart:revenue:region", "x": 0, "y": 0, "w": 6, "h": 4},
          {"id": "insights", "x": 6, "y": 0, "w": 6, "h": 4}]


def test_dashboards_crud_share_render(api: Api) -> None:
    c, h = api.client, api.auth("analyst")
    d = ok(c.post("/api/v1/dashboards", headers=h, json={
        "name": "Revenue", "spec": {"kpis": ["revenue", "signups"], "layout": LAYOUT}}), 201)
    assert d["owner_id"] == api.ids["analyst"] and d["spec"]["layout"] == LAYOUT
    assert [x["id"] for x in ok(c.get("/api/v1/dashboards", headers=h))] == [d["id"]]
    assert ok(c.get(f"/api/v1/dashboards/{d['id']}", headers=h))["name"] == "Revenue"
    renamed = ok(c.patch(f"/api/v1/dashboards/{d['id']}", headers=h, json={"name": "Growth"}))
    assert renamed["name"] == "Growth" and renamed["spec"]["kpis"] == ["revenue", "signups"]
    shared = ok(c.put(f"/api/v1/dashboards/{d['id']}/share", headers=h,
                      json={"user_ids": [api.ids["viewer"]]}))
    assert shared["shared_with"] == [api.ids["viewer"]]
    board = ok(c.get(f"/api/v1/dashboards/{d['id']}/render?theme=dark", headers=h))
    assert board["title"] == "Growth" and board["theme"]["name"] == "dark"
    assert [w["type"] for w in board["widgets"]] == ["kpi", "kpi", "line", "recommendations"]
    assert board["layout"] == LAYOUT and board["etag"]
    assert c.delete(f"/api/v1/dashboards/{d['id']}", headers=h).status_code == 204
    assert_error(c.get(f"/api/v1/dashboards/{d['id']}", headers=h), 404)


def test_dashboard_errors(api: Api) -> None:
    c, h = api.client, api.auth("analyst")
    assert_error(c.post("/api/v1/dashboards", headers=h,
                        json={"name": "x", "spec": {"kpis": ["nope"]}}), 404)
    err = assert_error(c.post("/api/v1/dashboards", headers=h,
                              json={"name": "x", "spec": {"layout": "grid"}}), 400)
    assert "spec.layout" in err["message"]
    err = assert_error(c.post("/api/v1/dashboards", headers=h,
                              json={"name": "x", "spec": {"theme": "neon"}}), 400)
    assert "spec.theme" in err["message"]
    err = assert_error(c.post("/api/v1/dashboards", headers=h, json={"name": ""}), 422)
    assert err["details"][0]["location"]["field"] == "name"
    d = ok(c.post("/api/v1/dashboards", headers=h, json={"name": "x"}), 201)
    assert_error(c.put(f"/api/v1/dashboards/{d['id']}/share", headers=h,
                       json={"user_ids": ["usr_nobody"]}), 404)
    assert_error(c.put(f"/api/v1/dashboards/{d['id']}/share", headers=h,
                       json={"user_ids": "all"}), 422)
    assert "theme" in assert_error(c.get(f"/api/v1/dashboards/{d['id']}/render?theme=neon",
                                         headers=h), 404)["message"]
    assert_error(c.patch(f"/api/v1/dashboards/{d['id']}", headers=h,
                         json={"spec": {"kpis": ["nope"]}}), 404)
    assert_error(c.delete("/api/v1/dashboards/dsh_nope", headers=h), 404)


def test_render_every_kpi(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    board = ok(shared_api.client.get("/api/v1/render", headers=h))
    assert board["type"] == "dashboard" and board["generated_at"] == "2024-07-01T06:00:00Z"
    assert len(board["widgets"]) == len(ok(shared_api.client.get("/api/v1/kpis", headers=h)))
    assert board["theme"]["name"] == "corporate"  # the user's default
    weekly = ok(shared_api.client.get("/api/v1/render?grain=week&theme=pastel", headers=h))
    assert weekly["grain"] == "week" and weekly["theme"]["name"] == "pastel"
    assert_error(shared_api.client.get("/api/v1/render?grain=eon", headers=h), 400)
    assert "2000" in assert_error(shared_api.client.get("/api/v1/render?grain=minute",
                                                        headers=h), 400)["message"]


# -- users, me, sessions ----------------------------------------------------------------------


def test_users_crud_by_admin(api: Api) -> None:
    c, h = api.client, api.auth("admin")
    assert {u["username"] for u in ok(c.get("/api/v1/users", headers=h))} == {
        "vera", "ana", "adam", "otto"}
    u = ok(c.post("/api/v1/users", headers=h, json={
        "username": "nina", "password": "another long password", "role": "analyst",
        "display_name": "Nina", "timezone": "Europe/Paris"}), 201)
    assert (u["role"], u["timezone"]) == ("analyst", "Europe/Paris")
    assert "password" not in str(u) or "password_hash" not in u
    assert ok(c.get(f"/api/v1/users/{u['id']}", headers=h))["username"] == "nina"
    changed = ok(c.patch(f"/api/v1/users/{u['id']}", headers=h,
                         json={"role": "viewer", "display_name": "N."}))
    assert (changed["role"], changed["display_name"]) == ("viewer", "N.")
    ok(c.patch(f"/api/v1/users/{u['id']}", headers=h, json={"password": "a new long secret"}))
    assert api.login("nina", "a new long secret").status_code == 200
    assert c.delete(f"/api/v1/users/{u['id']}", headers=h).status_code == 204
    assert_error(c.get(f"/api/v1/users/{u['id']}", headers=h), 404)


def test_user_errors(api: Api) -> None:
    c, h = api.client, api.auth("admin")
    me = api.ids["admin"]
    assert "username" in assert_error(c.post("/api/v1/users", headers=h, json={
        "username": "Not Valid", "password": "x" * 12}), 400)["message"]
    assert "too short" in assert_error(c.post("/api/v1/users", headers=h, json={
        "username": "nina", "password": "short"}), 400)["message"]
    assert_error(c.post("/api/v1/users", headers=h, json={
        "username": "nina", "password": "x" * 12, "role": "root"}), 422)
    assert "last admin" in assert_error(c.patch(f"/api/v1/users/{me}", headers=h,
                                                json={"role": "viewer"}), 409)["message"]
    assert_error(c.delete(f"/api/v1/users/{me}", headers=h), 409)
    assert_error(c.patch("/api/v1/users/usr_nope", headers=h, json={"role": "viewer"}), 404)
    assert_error(c.delete("/api/v1/users/usr_nope", headers=h), 404)
    assert_error(c.patch(f"/api/v1/users/{me}", headers=h, json={"email": "x@y"}), 422)


def test_me_get_patch_password(api: Api) -> None:
    c, h = api.client, api.auth("viewer")
    me = ok(c.get("/api/v1/me", headers=h))
    assert (me["username"], me["role"], me["theme"]) == ("vera", "viewer", "corporate")
    patched = ok(c.patch("/api/v1/me", headers=h, json={
        "display_name": "Vera V", "theme": "dark", "timezone": "Europe/Berlin",
        "refresh_interval": 30, "followed": ["revenue", "mrr"],
        "saved_filters": {"revenue": {"region": ["EU"]}}}))
    assert patched["theme"] == "dark" and patched["followed"] == ["revenue", "mrr"]
    assert patched["saved_filters"] == {"revenue": {"region": ["EU"]}}
    assert ok(c.get("/api/v1/me", headers=h))["display_name"] == "Vera V"
    r = c.post("/api/v1/me/password", headers=h,
               json={"current_password": PASSWORD, "new_password": "a brand new secret"})
    assert r.status_code == 204, r.text
    assert_error(c.get("/api/v1/me", headers=h), 401)  # a new password ends every session
    assert_error(api.login("viewer"), 401)
    assert api.login("viewer", "a brand new secret").status_code == 200


def test_me_errors(api: Api) -> None:
    c, h = api.client, api.auth("viewer")
    assert_error(c.patch("/api/v1/me", headers=h, json={"theme": "neon"}), 422)
    assert "time zone" in assert_error(c.patch("/api/v1/me", headers=h,
                                               json={"timezone": "Mars/Base"}), 400)["message"]
    assert_error(c.patch("/api/v1/me", headers=h, json={"followed": ["nope"]}), 404)
    assert_error(c.patch("/api/v1/me", headers=h, json={"role": "admin"}), 422)
    assert_error(c.patch("/api/v1/me", headers=h, json={"refresh_interval": 1}), 422)
    assert_error(c.post("/api/v1/me/password", headers=h,
                        json={"current_password": "wrong one", "new_password": "x" * 12}),
                 401, "invalid_credentials")
    assert "too short" in assert_error(c.post("/api/v1/me/password", headers=h, json={
        "current_password": PASSWORD, "new_password": "short"}), 400)["message"]
    assert ok(c.get("/api/v1/me", headers=h))["role"] == "viewer"


def test_my_sessions_list_and_revoke(api: Api) -> None:
    c, h = api.client, api.auth("viewer")
    other = api.login("viewer").json()
    sessions = ok(c.get("/api/v1/me/sessions", headers=h))
    assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
    assert all(s["state"] == "active" and s["last_seen"] for s in sessions)
    assert c.delete(f"/api/v1/me/sessions/{other['session_id']}", headers=h).status_code == 204
    states = {s["id"]: s["state"] for s in ok(c.get("/api/v1/me/sessions", headers=h))}
    assert states[other["session_id"]] == "revoked"
    assert_error(c.delete("/api/v1/me/sessions/ses_nope", headers=h), 404)
    admin_session = api.pair("admin")["session_id"]  # not vera's: not found for her
    assert_error(c.delete(f"/api/v1/me/sessions/{admin_session}", headers=h), 404)


# -- system -----------------------------------------------------------------------------------


def test_health_metrics_schemas(shared_api: Api) -> None:
    c = shared_api.client
    health = ok(c.get("/api/v1/health"))
    assert health["status"] == "ok" and health["schema_version"] >= 7
    assert health["store"].startswith("duckdb:")
    c.get("/api/v1/kpis", headers=shared_api.auth("viewer"))
    metrics = c.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "kpidash_http_requests_total" in metrics.text
    assert 'route="/api/v1/kpis",status="200"' in metrics.text
    schema = ok(c.get("/api/v1/schemas/dashboard"))
    assert isinstance(schema, dict) and "properties" in str(schema)
    assert "known schemas" in assert_error(c.get("/api/v1/schemas/nope"), 404)["message"]


def test_responses_carry_security_headers(shared_api: Api) -> None:
    r = shared_api.client.get("/api/v1/kpis", headers=shared_api.auth("viewer"))
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"


def test_clock_is_the_fixed_one(shared_api: Api) -> None:
    assert shared_api.clock.now() == NOW


def test_multipart_upload_as_browsers_send_it(make_api: Any) -> None:
    import gzip

    with make_api(max_upload_bytes=4096) as a:
        h = a.auth("analyst")
        c = a.client
        csv = (b"timestamp,kpi,value,region,plan,channel\n"
               b"2024-06-30T00:00:00Z,signups,7,EU,pro,paid\n")
        r = c.post("/api/v1/ingest/file", headers=h, files={"file": ("p.csv", csv, "text/csv")})
        assert r.status_code == 200 and r.json()["written"] == 1
        r = c.post("/api/v1/ingest/file", headers=h,
                   files={"file": ("p.csv.gz", gzip.compress(csv), "application/gzip")})
        assert r.status_code == 200 and r.json()["written"] == 1
        r = c.post("/api/v1/ingest/file", headers=h, files={"file": ("p.txt", csv, "text/plain")})
        assert r.status_code == 400 and "cannot tell the format" in r.json()["error"]["message"]
        r = c.post("/api/v1/ingest/file", headers=h, files={"other": ("p.csv", csv, "text/csv")})
        assert r.status_code == 400 and "`file` field" in r.json()["error"]["message"]
        r = c.post("/api/v1/ingest/file", headers=h,
                   files={"file": ("p.csv", csv * 200, "text/csv")})
        assert r.status_code == 413


def test_saved_filters_name_declared_dimensions_only(shared_api: Api) -> None:
    """Issue 10: a saved filter on a dimension the KPI lacks (or named with SQL) was stored."""
    c, h = shared_api.client, shared_api.auth("viewer")
    for dim in ("colour", "region'; DROP TABLE points; --"):
        err = assert_error(c.patch("/api/v1/me", headers=h, json={
            "saved_filters": {"revenue": {dim: ["EU"]}}}), 400)
        assert f"no dimension {dim!r}" in err["message"] and "region" in err["message"]
    assert ok(c.get("/api/v1/me", headers=h))["saved_filters"] == {}
