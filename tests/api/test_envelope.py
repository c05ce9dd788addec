"""The one error envelope: {"error": {"code", "message", "status", "details"}} for every
status the API answers with, request-validation errors that name the field, bad JSON that is
never a 500, and a 500 that says nothing of the internals."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from .conftest import Api, assert_error, point


def test_401(shared_api: Api) -> None:
    r = shared_api.client.get("/api/v1/me")
    err = assert_error(r, 401, "invalid_token")
    assert "bearer token" in err["message"] and err["details"] == []
    assert r.headers["www-authenticate"] == "Bearer"
    r = shared_api.login("viewer", "wrong password!")
    assert assert_error(r, 401, "invalid_credentials")["message"] == "wrong username or password"
    assert r.headers["www-authenticate"] == "Bearer"


def test_403(shared_api: Api) -> None:
    r = shared_api.client.post("/api/v1/ingest", headers=shared_api.auth("viewer"),
                               json={"points": []})
    err = assert_error(r, 403, "forbidden")
    assert err["message"] == "this needs the analyst role; you are viewer"


def test_404_from_the_engine_and_from_the_router(shared_api: Api) -> None:
    h = shared_api.auth("viewer")
    err = assert_error(shared_api.client.get("/api/v1/kpis/nope", headers=h), 404, "not_found")
    assert "unknown KPI 'nope'" in err["message"] and "revenue" in err["message"]
    assert_error(shared_api.client.get("/api/v1/no/such/route", headers=h), 404, "not_found")


def test_405_is_an_envelope_too(shared_api: Api) -> None:
    assert_error(shared_api.client.put("/api/v1/health"), 405, "method_not_allowed")


def test_409(api: Api) -> None:
    h = api.auth("admin")
    r = api.client.delete(f"/api/v1/users/{api.ids['admin']}", headers=h)
    assert "your own account" in assert_error(r, 409, "conflict")["message"]
    r = api.client.post("/api/v1/users", headers=h,
                        json={"username": "ana", "password": "another long password"})
    assert "already taken" in assert_error(r, 409, "conflict")["message"]


def test_413(make_api: Any) -> None:
    with make_api(max_body_bytes=1024) as a:
        r = a.client.post("/api/v1/ingest", headers=a.auth("analyst"), content=b" " * 2000)
        err = assert_error(r, 413, "payload_too_large")
        assert "2,000 bytes" in err["message"] and "1,024" in err["message"]


def test_422_names_rows_and_fields(shared_api: Api) -> None:
    r = shared_api.client.post("/api/v1/ingest", headers=shared_api.auth("analyst"),
                               json={"points": [point(1), point("lots")]})  # type: ignore[arg-type]
    err = assert_error(r, 422, "validation_failed")
    assert err["message"].endswith("1 error(s)")
    (detail,) = err["details"]
    assert detail["code"] == "point.value"
    assert detail["location"]["row"] == 2 and detail["location"]["field"] == "value"


def test_429_carries_retry_after(api: Api) -> None:
    for _ in range(5):
        assert_error(api.login("other", "not the password"), 401, "invalid_credentials")
    r = api.login("other")  # the right password, but too late
    err = assert_error(r, 429, "rate_limited")
    assert "try again in" in err["message"]
    assert int(r.headers["retry-after"]) > 0


def test_500_leaks_nothing(make_api: Any, monkeypatch: pytest.MonkeyPatch,
                           caplog: pytest.LogCaptureFixture) -> None:
    with make_api(raise_server_exceptions=False) as a:
        def boom(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("duckdb at /srv/secret/kpidash.duckdb: password=hunter2")

        monkeypatch.setattr(a.engine, "query", boom)
        with caplog.at_level(logging.ERROR, logger="kpidash.api"):
            r = a.client.get("/api/v1/series/revenue", headers=a.auth("viewer"))
        err = assert_error(r, 500, "internal_error")
        assert err == {"code": "internal_error", "status": 500, "details": [],
                       "message": "the server hit an unexpected error; it has been logged"}
        for secret in ("hunter2", "/srv/secret", "RuntimeError", "Traceback", "query"):
            assert secret not in r.text
        assert "unexpected error on GET /api/v1/series/revenue" in caplog.text  # logged, fully
        assert a.client.get("/api/v1/health").status_code == 200  # the server lives on


def test_query_validation_names_the_field(shared_api: Api) -> None:
    r = shared_api.client.get("/api/v1/insights?limit=abc", headers=shared_api.auth("viewer"))
    err = assert_error(r, 422, "validation_failed")
    assert err["details"][0]["location"] == {"in": "query", "field": "limit"}
    assert err["details"][0]["code"] == "request.int_parsing"
    assert err["message"].startswith("limit: ") and "'abc'" in err["message"]


def test_body_validation_names_the_field(shared_api: Api) -> None:
    r = shared_api.client.post("/api/v1/users", headers=shared_api.auth("admin"),
                               json={"username": "newbie", "password": "x" * 12, "role": "god"})
    err = assert_error(r, 422, "validation_failed")
    assert err["details"][0]["location"] == {"in": "body", "field": "role"}
    r = shared_api.client.post("/api/v1/dashboards", headers=shared_api.auth("viewer"),
                               json={"name": "x", "colour": "red"})
    err = assert_error(r, 422, "validation_failed")
    assert err["details"][0]["location"] == {"in": "body", "field": "colour"}


@pytest.mark.parametrize(("method", "path"), [
    ("PATCH", "/api/v1/me"),  # a pydantic body
    ("POST", "/api/v1/dashboards"),
    ("POST", "/api/v1/kpis"),  # bodies read by the route
    ("PUT", "/api/v1/kpis/revenue"),
    ("POST", "/api/v1/kpis/validate"),
    ("POST", "/api/v1/alert-rules"),
    ("POST", "/api/v1/ingest"),
])
def test_bad_json_is_a_clear_4xx_never_500(shared_api: Api, method: str, path: str) -> None:
    r = shared_api.client.request(method, path, headers={**shared_api.auth("admin"),
                                                         "content-type": "application/json"},
                                  content=b'{"name": "x",')
    assert r.status_code in (400, 422), r.text
    err = assert_error(r, r.status_code)
    text = (err["message"] + " ".join(d["message"] for d in err["details"])).lower()
    assert "json" in text, err
    if r.status_code == 422 and err["code"] == "validation_failed" and path.endswith("/me"):
        assert err["details"][0]["location"]["field"] == "body"
        assert "not valid JSON" in err["message"]


def test_errors_carry_the_security_headers(shared_api: Api) -> None:
    r = shared_api.client.get("/api/v1/kpis")
    assert r.status_code == 401
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


def test_the_openapi_schema_documents_the_envelope(shared_api: Api) -> None:
    """Every operation documents its error statuses as the envelope (FastAPI's own 422 shape,
    {"detail": [...]}, is what clients never get), with WWW-Authenticate on 401 and
    Retry-After on 429; the non-JSON answers document their content type."""
    doc = shared_api.client.get("/openapi.json").json()
    envelope = doc["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            errors = {s: r for s, r in op["responses"].items() if s.startswith(("4", "5"))}
            assert {"404", "422", "503"} <= set(errors), where
            if path not in ("/api/v1/health", "/metrics", "/api/v1/schemas/{name}"):
                assert {"400", "401", "403", "409", "413", "429"} <= set(errors), where
                assert "WWW-Authenticate" in errors["401"]["headers"], where
                assert "Retry-After" in errors["429"]["headers"], where
            for status, response in errors.items():
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (where, status)
    content = {path: set(doc["paths"][path]["get"]["responses"]["200"]["content"])
               for path in ("/metrics", "/api/v1/digest",
                            "/api/v1/dashboards/{dashboard_id}/events")}
    assert content == {"/metrics": {"text/plain"},
                       "/api/v1/digest": {"application/json", "text/plain", "text/html"},
                       "/api/v1/dashboards/{dashboard_id}/events": {"text/event-stream"}}
