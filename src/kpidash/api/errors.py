"""One JSON error envelope for every error the API returns.

::

    {"error": {"code": "validation_failed", "message": "…", "status": 422,
               "details": [{"code": "point.value", "message": "expected a finite number",
                            "location": {"row": 3, "field": "value"}}]}}

Every kpidash error class maps to one status (below); request-validation errors name the
field (``location.field`` is the dotted path, ``location.in`` body/query/path/header);
anything unexpected is a 500 whose message says nothing of the internals (the traceback goes
to the log). A test pins this shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kpidash import errors as e

log = logging.getLogger("kpidash.api")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
"""On every response (kpidash.api adds them; the 500 below carries them itself, because the
server-error middleware that sends it sits outside every other one)."""
API_CACHE = "no-store"
"""The Cache-Control of every response under /api/."""


class PayloadTooLarge(e.KpidashError):
    """A request body over the configured size limit (413)."""


# (class, status, code) — the first matching class wins, so subclasses come first
STATUS: list[tuple[type[Exception], int, str]] = [
    (PayloadTooLarge, 413, "payload_too_large"),
    (e.RateLimited, 429, "rate_limited"),
    (e.QuotaExceeded, 429, "quota_exceeded"),
    (e.TokenReused, 401, "token_reused"),
    (e.InvalidToken, 401, "invalid_token"),
    (e.InvalidCredentials, 401, "invalid_credentials"),
    (e.AuthError, 401, "unauthenticated"),
    (e.Forbidden, 403, "forbidden"),
    (e.NotFound, 404, "not_found"),
    (e.Conflict, 409, "conflict"),
    (e.IllegalTransition, 409, "illegal_transition"),
    (e.ValidationFailed, 422, "validation_failed"),
    (e.AlertError, 400, "alert_error"),
    (e.QueryError, 400, "bad_query"),
    (e.InputError, 400, "bad_input"),
    (e.ConfigError, 400, "bad_config"),
    (e.SchemaVersionError, 503, "store_incompatible"),
    (e.StoreError, 503, "store_unavailable"),
    (e.KpidashError, 400, "error"),
]

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
               413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_failed",
               429: "rate_limited"}


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable, e.g. validation_failed, not_found")
    message: str = Field(description="what was expected, what came, how to fix it")
    status: int = Field(description="the HTTP status, repeated")
    details: list[dict[str, Any]] = Field(
        description="one item per problem: code, message, location (row/field/in)")


class ErrorEnvelope(BaseModel):
    """The body of every error response (the OpenAPI schema documents it on each route)."""

    error: ErrorBody


_MEANING = {400: "Bad input or query", 401: "No valid credential", 403: "Role too low",
            404: "Not found (or not visible to the caller)", 409: "Conflict with the current "
            "state", 413: "Body over the size limit", 422: "Request validation failed",
            429: "Rate limited or over a workspace quota", 503: "Store unavailable"}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "required": True,
                               "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds to wait before retrying", "required": True,
                          "schema": {"type": "integer", "minimum": 1}}},
    # sent when the database server is out of reach and the store is reconnecting
    # (StoreUnavailable); not with a store that is incompatible or otherwise broken
    503: {"Retry-After": {"description": "seconds to wait before retrying", "required": False,
                          "schema": {"type": "integer", "minimum": 1}}},
}


def error_responses(*statuses: int, model: bool = True) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses=`` of these error statuses, each the envelope; what clients
    receive is unchanged (the handlers below make every error this shape).

    With ``model`` FastAPI documents the envelope in the route's own media type (and adds
    ErrorEnvelope to the schema's components); without it, as JSON whatever the route's
    media type (/metrics is text/plain), by reference to that component."""
    body: dict[str, Any] = {"model": ErrorEnvelope} if model else {"content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}
    return {s: {**body, "description": _MEANING[s],
                **({"headers": _HEADERS[s]} if s in _HEADERS else {})} for s in statuses}


API_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503)
"""The errors an API route may return (documented on every route that needs a caller)."""
PUBLIC_ERRORS = error_responses(404, 422, 503, model=False)
"""Those of the routes without authentication (health, metrics, widget schemas)."""


def envelope(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "status": status,
                      "details": details or []}}
    return JSONResponse(body, status_code=status, headers=headers)


def classify(exc: Exception) -> tuple[int, str]:
    for cls, status, code in STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def kpidash_error(exc: e.KpidashError) -> JSONResponse:
    status, code = classify(exc)
    details: list[dict[str, Any]] = []
    message = str(exc)
    if isinstance(exc, e.ValidationFailed):
        details = [i.to_dict() for i in exc.report.issues[:200]]
        message = str(exc).split(":", 1)[0] + f": {exc.report.error_count} error(s)"
    headers: dict[str, str] = {}
    if isinstance(exc, e.QuotaExceeded):  # which quota, for clients that act on it
        details = [{"code": f"quota.{exc.quota}", "message": message,
                    "location": {"field": exc.quota}, "limit": exc.limit,
                    "needed": exc.needed, "workspace": exc.workspace}]
    if isinstance(exc, e.RateLimited | e.QuotaExceeded | e.StoreUnavailable):
        headers["Retry-After"] = str(max(1, int(exc.retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return envelope(status, code, message, details, headers)


def _field_path(loc: tuple[Any, ...]) -> tuple[str, str]:
    where = str(loc[0]) if loc else "body"
    path = ".".join(str(p) for p in loc[1:]) or where
    return where, path


def request_validation(exc: RequestValidationError) -> JSONResponse:
    details: list[dict[str, Any]] = []
    for err in exc.errors():
        where, path = _field_path(tuple(err.get("loc", ())))
        got = err.get("input")
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":  # loc is ("body", <character offset>)
            position = path
            path, got = "body", None
            reason = (err.get("ctx") or {}).get("error", "")
            message = f"the body is not valid JSON: {reason or message} (at character " \
                      f"{position})"
        if got is not None and not isinstance(got, dict | list) and len(repr(got)) < 80:
            message += f" (got {got!r})"
        details.append({"code": f"request.{err.get('type', 'invalid')}", "message": message,
                        "location": {"in": where, "field": path}})
    first: dict[str, Any] = details[0] if details else {"message": "invalid request",
                                                        "location": {}}
    return envelope(422, "validation_failed",
                    f"{first['location'].get('field', 'request')}: {first['message']}", details)


def _body_problem(exc: StarletteHTTPException) -> str | None:
    """What FastAPI's "There was an error parsing the body" (400) was: it hides the cause, a
    body that is not UTF-8 or JSON nested beyond the parser's recursion limit."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not valid UTF-8 JSON: {e.bad_byte(cause)}"
    if isinstance(cause, RecursionError):
        return "the body's JSON is nested too deeply to read"
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the envelope."""

    @app.exception_handler(e.KpidashError)
    async def _kpidash(_: Request, exc: e.KpidashError) -> JSONResponse:
        return kpidash_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return request_validation(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return envelope(exc.status_code, code, _body_problem(exc) or str(exc.detail), None,
                        headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        headers = dict(SECURITY_HEADERS)
        if request.url.path.startswith("/api/"):
            headers["Cache-Control"] = API_CACHE
        return envelope(500, "internal_error",
                        "the server hit an unexpected error; it has been logged", None, headers)
