"""GET /api/v1/portfolio: KPIs compared across the caller's workspaces, and only those.

The world: ``default`` (the SaaS demo, USD), ``acme`` (USD, New York time) and ``beta`` (EUR)
each define ``mrr`` and ``customer_churn_rate`` under the same ids with their own data; acme
also defines ``signups`` without data, beta a KPI of its own. Otto (a viewer) belongs to
default and acme, never to beta; adam is a server administrator and sees all three.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kpidash import schemas
from kpidash.core import aggregate as agg
from kpidash.model import Grain

from .conftest import NOW, Api, Template, assert_error, running

URL = "/api/v1/portfolio"
BETA_MRR = 987654.32  # a number only beta holds: it must never reach otto
MONEY = {"unit": "$", "aggregation": "last", "higher_is_better": True}
CHURN = {"unit": "%", "aggregation": "last", "higher_is_better": False}


def kpis(prefix: str) -> list[dict[str, Any]]:
    return [{"id": "mrr", "name": f"{prefix} MRR", **MONEY},
            {"id": "customer_churn_rate", "name": f"{prefix} churn", **CHURN}]


def monthly(kpi: str, values: dict[str, float], day: int = 15) -> list[dict[str, Any]]:
    return [{"kpi": kpi, "ts": f"{month}-{day:02d}T16:00:00Z", "value": v, "dims": {}}
            for month, v in values.items()]


@pytest.fixture(scope="module")
def world(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running(template, tmp_path_factory.mktemp("portfolio")) as api:
        c, admin = api.client, api.auth("admin")
        for ws, name, settings in (("acme", "Acme Corp", {"currency": "USD",
                                                          "timezone": "America/New_York"}),
                                   ("beta", "Beta GmbH", {"currency": "EUR"})):
            r = c.post("/api/v1/workspaces", headers=admin,
                       json={"id": ws, "name": name, "settings": settings})
            assert r.status_code == 201, r.text
            for kpi in kpis(name):
                r = c.post(f"/api/v1/workspaces/{ws}/kpis", headers=admin, json=kpi)
                assert r.status_code == 201, r.text
        # acme defines signups but has no data of it yet
        r = c.post("/api/v1/workspaces/acme/kpis", headers=admin,
                   json={"id": "signups", "name": "Sign-ups", "aggregation": "sum"})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/workspaces/beta/kpis", headers=admin,
                   json={"id": "beta_only", "name": "Beta secret", "unit": "count",
                         "aggregation": "sum"})
        assert r.status_code == 201, r.text
        data = {
            "acme": monthly("mrr", {"2024-04": 18000.0, "2024-05": 20000.0, "2024-06": 21000.0})
            + monthly("customer_churn_rate", {"2024-05": 9.0, "2024-06": 12.0}),
            "beta": monthly("mrr", {"2024-05": 900000.0, "2024-06": BETA_MRR})
            + monthly("customer_churn_rate", {"2024-05": 0.5, "2024-06": 0.25})
            + monthly("beta_only", {"2024-06": 5.0}),
        }
        for ws, points in data.items():
            r = c.post(f"/api/v1/workspaces/{ws}/ingest", headers=admin,
                       json={"points": points})
            assert r.status_code == 200, r.text
        r = c.put(f"/api/v1/workspaces/acme/members/{api.ids['other']}", headers=admin,
                  json={"role": "viewer"})
        assert r.status_code == 204, r.text
        yield api


def get(api: Api, who: str, **params: Any) -> dict[str, Any]:
    r = api.client.get(URL, params=params, headers=api.auth(who))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    for widget in body["widgets"]:
        schemas.validate_widget(widget)
    return body


def rows_of(widget: dict[str, Any]) -> list[tuple[str, int | None, float | None]]:
    return [(r["workspace"], r["rank"], r["value"]) for r in widget["data"]["rows"]]


def default_june(api: Api, kpi: str) -> tuple[float, float]:
    """The default workspace's (June, May) values of ``kpi``, straight from its engine."""
    e = api.engine
    with api.st.lock:
        end = agg.period_start(NOW, Grain.MONTH, e.timezone)
        (s,) = e.query(kpi, Grain.MONTH, agg.periods_back(end, Grain.MONTH, 2, e.timezone), end)
    return round(float(s.values[-1]), 2), round(float(s.values[-2]), 2)


# --- who sees what ---------------------------------------------------------------------------


def test_a_member_of_two_workspaces_sees_exactly_those(world: Api) -> None:
    r = world.client.get(URL, params={"kpi": ["mrr", "customer_churn_rate"]},
                         headers=world.auth("other"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(w["id"], w["name"], w["role"]) for w in body["workspaces"]] == [
        ("acme", "Acme Corp", "viewer"), ("default", "Default", "viewer")]
    for widget in body["widgets"]:
        assert sorted(row[0] for row in rows_of(widget)) == ["acme", "default"]
        assert widget["data"]["missing"] == []
    # nothing of beta: not its id, its name, its KPI names or any of its numbers
    for leak in ("beta", "Beta", "987654", "900000", "0.25"):
        assert leak not in r.text, leak


def test_a_kpi_of_a_workspace_the_user_is_not_in_is_unknown(world: Api) -> None:
    err = assert_error(world.client.get(URL, params={"kpi": "beta_only"},
                                        headers=world.auth("other")), 404, "not_found")
    assert err["message"].startswith("KPI 'beta_only' is defined in none of your workspaces "
                                     "(acme, default)")
    assert "beta_only" in json.dumps(get(world, "admin", kpi="beta_only"))


def test_a_server_admin_sees_every_workspace(world: Api) -> None:
    body = get(world, "admin", kpi="customer_churn_rate")
    assert [w["id"] for w in body["workspaces"]] == ["acme", "beta", "default"]
    assert [w["currency"] for w in body["workspaces"]] == ["USD", "EUR", "USD"]
    assert body["workspaces"][0]["timezone"] == "America/New_York"


# --- ranking, change, sparkline --------------------------------------------------------------


def test_ranked_by_value_in_the_better_direction(world: Api) -> None:
    body = get(world, "other", kpi=["mrr", "customer_churn_rate"], grain="month")
    assert (body["grain"], body["rank_by"], body["insights"]) == ("month", "value", False)
    assert body["generated_at"] == "2024-07-01T06:00:00Z"
    mrr, churn = body["widgets"]
    d_mrr, _ = default_june(world, "mrr")
    d_churn, _ = default_june(world, "customer_churn_rate")
    # higher MRR is better: highest first
    expected = sorted([("acme", 21000.0), ("default", d_mrr)], key=lambda x: -x[1])
    assert rows_of(mrr) == [(w, i + 1, v) for i, (w, v) in enumerate(expected)]
    assert mrr["data"]["currency"] == "USD" and mrr["data"]["ranked"]
    # churn: lower is better, so the lowest churn ranks first (acme's 12 % is the worst)
    assert d_churn < 12.0
    assert rows_of(churn) == [("default", 1, d_churn), ("acme", 2, 12.0)]
    assert churn["data"]["higher_is_better"] is False and churn["data"]["currency"] is None
    acme = next(r for r in churn["data"]["rows"] if r["workspace"] == "acme")
    assert (acme["status"], acme["direction"], acme["color"]) == ("bad", "up", "#d63031")


def test_change_percent_period_and_sparkline(world: Api) -> None:
    body = get(world, "other", kpi="mrr", grain="month", periods=4)
    acme = next(r for r in body["widgets"][0]["data"]["rows"] if r["workspace"] == "acme")
    # June in New York starts at 04:00Z; the current period is the last complete one
    assert acme == {**acme, "period": "2024-06-01T00:00:00-04:00", "tz": "America/New_York",
                    "value": 21000.0, "previous": 20000.0, "change": 5.0, "direction": "up",
                    "status": "good", "currency": "USD", "title": "Acme Corp MRR",
                    "sparkline": [None, 18000.0, 20000.0, 21000.0], "insight": None}
    default = next(r for r in body["widgets"][0]["data"]["rows"] if r["workspace"] == "default")
    june, may = default_june(world, "mrr")
    assert default["change"] == round(100 * (june - may) / abs(may), 1)
    assert default["period"] == "2024-06-01T00:00:00+00:00"


def test_ranked_by_change(world: Api) -> None:
    body = get(world, "other", kpi="customer_churn_rate", rank_by="change")
    rows = body["widgets"][0]["data"]["rows"]
    changes = {r["workspace"]: r["change"] for r in rows}
    assert changes["acme"] == 33.3
    # lower is better: the biggest fall (or the smallest rise) first
    assert [r["workspace"] for r in rows] == sorted(changes, key=lambda w: changes[w])
    assert [r["rank"] for r in rows] == [1, 2]


def test_mixed_currencies(world: Api) -> None:
    by_value = get(world, "admin", kpi="mrr")["widgets"][0]["data"]
    assert (by_value["ranked"], by_value["mixed_currency"], by_value["currency"]) == (
        False, True, None)
    assert [r["workspace"] for r in by_value["rows"]] == ["acme", "beta", "default"]
    assert all(r["rank"] is None for r in by_value["rows"])
    assert {r["workspace"]: r["currency"] for r in by_value["rows"]} == {
        "acme": "USD", "beta": "EUR", "default": "USD"}
    assert "different currencies (EUR, USD)" in by_value["notes"][0]
    by_change = get(world, "admin", kpi="mrr", rank_by="change")["widgets"][0]["data"]
    assert by_change["ranked"] and by_change["mixed_currency"]
    assert [r["rank"] for r in by_change["rows"]] == [1, 2, 3]
    changes = [r["change"] for r in by_change["rows"]]
    assert changes == sorted(changes, reverse=True)


def test_a_workspace_without_the_kpi_is_listed_as_missing(world: Api) -> None:
    body = get(world, "other", kpi=["arr", "mrr"])
    arr, mrr = body["widgets"]
    assert [r["workspace"] for r in arr["data"]["rows"]] == ["default"]
    assert arr["data"]["missing"] == [{"workspace": "acme", "workspace_name": "Acme Corp",
                                       "reason": "KPI 'arr' is not defined in workspace "
                                                 "'acme'"}]
    assert mrr["data"]["missing"] == []


def test_a_workspace_without_data_comes_last_without_a_rank(world: Api) -> None:
    for rank_by in ("value", "change"):
        rows = get(world, "other", kpi="signups", grain="week",
                   rank_by=rank_by)["widgets"][0]["data"]["rows"]
        assert [(r["workspace"], r["rank"]) for r in rows] == [("default", 1), ("acme", None)]
        assert rows[1]["value"] is rows[1]["change"] is None
        assert rows[1]["sparkline"] == [None] * 12 and rows[1]["status"] == "neutral"


# --- insights --------------------------------------------------------------------------------


def test_each_row_carries_its_top_insight_with_evidence(world: Api) -> None:
    body = get(world, "other", kpi="mrr", insights="true")
    assert body["insights"] is True
    rows = body["widgets"][0]["data"]["rows"]
    for row in rows:
        insight = row["insight"]
        assert insight is not None, row["workspace"]
        assert insight["kpi_id"] == "mrr"
        assert insight["text"] and insight["facts"], insight
        assert set(insight["factors"]) >= {"significance", "magnitude", "recency"}
    # it is the workspace's own top insight: the one GET /insights ranks first for the KPI
    for row in rows:
        prefix = "/api/v1" if row["workspace"] == "default" else \
            f"/api/v1/workspaces/{row['workspace']}"
        r = world.client.get(f"{prefix}/insights", params={"kpi": "mrr", "limit": 50},
                             headers=world.auth("other"))
        assert r.status_code == 200, r.text
        top = next(i for i in r.json() if i["kpi_id"] == "mrr")
        assert row["insight"]["key"] == top["key"] and row["insight"]["text"] == top["text"]


# --- determinism and validation --------------------------------------------------------------


def test_same_data_same_json(world: Api) -> None:
    params = {"kpi": ["mrr", "customer_churn_rate", "arr"], "insights": "true",
              "rank_by": "change"}
    first = world.client.get(URL, params=params, headers=world.auth("admin"))
    with world.st.lock:  # recompute the insights, not only replay them from the cache
        for scope in world.st.scopes.values():
            scope.insight_widgets.clear()
    second = world.client.get(URL, params=params, headers=world.auth("admin"))
    assert first.status_code == second.status_code == 200
    assert first.content == second.content


@pytest.mark.parametrize(("params", "field"), [
    ({}, "kpi"),
    ({"kpi": ["mrr", "arr", "leads", "signups", "revenue", "arpa"]}, "kpi"),
    ({"kpi": "Not-An-Id"}, "kpi"),
    ({"kpi": "mrr", "grain": "fortnight"}, "grain"),
    ({"kpi": "mrr", "rank_by": "best"}, "rank_by"),
    ({"kpi": "mrr", "periods": 1}, "periods"),
    ({"kpi": "mrr", "periods": 31}, "periods"),
], ids=["no-kpi", "six-kpis", "bad-kpi-id", "bad-grain", "bad-rank-by", "periods-1",
        "periods-31"])
def test_bad_parameters_are_422(world: Api, params: dict[str, Any], field: str) -> None:
    err = assert_error(world.client.get(URL, params=params, headers=world.auth("other")), 422)
    assert field in json.dumps(err)


def test_unknown_kpis_are_404_naming_each(world: Api) -> None:
    r = world.client.get(URL, params={"kpi": ["mrr", "nope", "nada"]},
                         headers=world.auth("admin"))
    err = assert_error(r, 404, "not_found")
    assert "'nope', 'nada'" in err["message"] and "'mrr'" not in err["message"]


def test_needs_a_signed_in_user(world: Api) -> None:
    assert_error(world.client.get(URL, params={"kpi": "mrr"}), 401)


def test_duplicate_kpis_give_one_widget(world: Api) -> None:
    body = get(world, "other", kpi=["mrr", "mrr", "arr"])
    assert [w["data"]["kpi_id"] for w in body["widgets"]] == ["mrr", "arr"]

