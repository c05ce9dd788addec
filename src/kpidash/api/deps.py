"""What every route needs: the app's state (:mod:`kpidash.api.state`), the workspace a
request is about, the caller (from the bearer token or an ingest token) and their role there.

Routers mounted under ``/api/v1/workspaces/{workspace}`` check membership first
(:data:`SCOPED`); the same routers at ``/api/v1/...`` serve the server's own workspace
(normally ``default``), so a single-business install never names one.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from kpidash.api.state import AppState, WorkspaceState
from kpidash.auth import Claims, Role
from kpidash.auth.ingest_tokens import INGEST_TOKEN_PREFIX, IngestGrant
from kpidash.errors import Forbidden, InvalidToken, NotFound

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def state(request: Request) -> AppState:
    st: AppState = request.app.state.kpidash
    return st


async def _state(request: Request) -> AppState:
    """:func:`state` as a dependency. Async so that FastAPI calls it in the event loop: a
    plain ``def`` dependency runs in the thread pool, a worker-thread hop on every request
    (measured with benchmarks/api.py: part of the GIL and thread-pool contention that held
    cached renders at 120–340 req/s)."""
    return state(request)


Shared = Annotated[AppState, Depends(_state)]


INFLUX_PATHS = {"/write": "db", "/api/v2/write": "bucket"}
"""InfluxDB clients' write paths, and the query parameter that names the workspace there
(an InfluxDB 1.x database, a 2.x bucket)."""


def workspace_of(request: Request) -> str:
    """The workspace a request is about: the ``{workspace}`` of a scoped path; on the
    InfluxDB write paths the database/bucket parameter, or without one the workspace of the
    ingest token presented (see :func:`credential`); else the server's own."""
    ws = request.path_params.get("workspace")
    if ws is None and request.url.path in INFLUX_PATHS:
        ws = (request.query_params.get(INFLUX_PATHS[request.url.path])
              or getattr(request.state, "ingest_workspace", None))
    return str(ws) if ws is not None else state(request).engine.workspace


async def _scope(request: Request) -> WorkspaceState:
    """The state of the request's workspace. Routes that take it also take a role
    (:data:`Viewer` …), which checks membership — and on scoped paths :data:`SCOPED` checks
    it before anything else runs."""
    return await state(request).scoped(workspace_of(request))


State = Annotated[WorkspaceState, Depends(_scope)]


INGEST_ONLY = ("this is an ingest token: it only writes points (POST …/ingest, …/ingest/file, "
               "…/write, /write, /api/v2/write); sign in as a user (POST /api/v1/auth/token) "
               "to use this endpoint")


async def credential(request: Request, token: Annotated[str | None, Depends(oauth2)],
                     ) -> Claims | IngestGrant:
    """Who the request speaks for: the verified claims of a user's access token (Bearer, or
    InfluxDB clients' ``Authorization: Token <token>``), or — on the routes that take
    :data:`Ingester` only — the grant of an ingest token (``kpi_…``), whose workspace must be
    the request's (404 otherwise, as for a non-member). 401 without a valid credential, and
    for an ingest token anywhere else."""
    if not token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "token" else None
    if not token:
        raise InvalidToken("this endpoint needs a bearer token: POST /api/v1/auth/token first")
    st = state(request)
    if not token.startswith(INGEST_TOKEN_PREFIX):
        claims = await st.cached(st.accounts.verify, token)
        request.state.user = claims.username
        return claims
    if not _takes_ingest_tokens(request):
        raise InvalidToken(INGEST_ONLY)
    grant = await st.cached(st.accounts.verify_ingest_token, token)
    request.state.user = f"ingest token {grant.token_id}"
    request.state.ingest_workspace = grant.workspace  # the InfluxDB paths without ?db=/?bucket=
    ws = workspace_of(request)
    if ws != grant.workspace:
        raise NotFound(f"no workspace {ws!r} (this ingest token writes into workspace "
                       f"{grant.workspace!r} only)")
    return grant


async def caller(cred: Annotated[Claims | IngestGrant, Depends(credential)]) -> Claims:
    """The verified claims of a user's access token (401 without a valid one)."""
    if isinstance(cred, IngestGrant):
        raise InvalidToken(INGEST_ONLY)
    return cred


async def member(request: Request, claims: Annotated[Claims, Depends(caller)]) -> Claims:
    """The caller as a member of the request's workspace: their claims with ``role`` their
    role there. A workspace they do not belong to, or one that does not exist, is NotFound
    — the same answer either way, so existence never leaks."""
    ws = workspace_of(request)
    st = state(request)
    role = await st.cached(st.accounts.role_in, claims.user_id, ws)
    if role is None:
        raise NotFound(f"no workspace {ws!r}")
    return claims if role == claims.role else replace(claims, role=role)


async def _workspace_path(workspace: Annotated[str, Path(
        description="A workspace id (see GET /api/v1/workspaces)", max_length=63)]) -> None:
    """Declares ``{workspace}`` in the OpenAPI schema of every scoped path."""


async def _admitted(request: Request,
                    cred: Annotated[Claims | IngestGrant, Depends(credential)]) -> None:
    """A member of the request's workspace, or an ingest token of it (on the ingest routes:
    :func:`credential` checked both)."""
    if isinstance(cred, Claims):
        await member(request, cred)


SCOPED = [Depends(_workspace_path), Depends(_admitted)]
"""Dependencies of the routers mounted under ``/api/v1/workspaces/{workspace}``: the caller
is authenticated and a member (or, on the ingest routes, an ingest token of the workspace)
before the route's own parameters are resolved."""


async def ingester(request: Request, cred: Annotated[Claims | IngestGrant, Depends(credential)],
                   ) -> Claims | IngestGrant:
    """The ingest routes' caller: a user with the analyst role in the request's workspace
    (403 below it, 404 for a non-member), or an ingest token of that workspace. Declaring
    this dependency is what lets a route accept ingest tokens (:func:`_takes_ingest_tokens`)."""
    if isinstance(cred, IngestGrant):
        return cred
    claims = await member(request, cred)
    if not Role(claims.role).allows(Role.ANALYST):
        raise Forbidden(f"this needs the {Role.ANALYST} role; you are {claims.role}")
    return claims


def _takes_ingest_tokens(request: Request) -> bool:
    """Whether the matched route declares :func:`ingester` (as its own parameter or its
    router's dependency). Asked only when an ingest token is presented: a walk over the
    route's few dependencies."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    return dependant is not None and any(d.call is ingester for d in _walk(dependant))


def _walk(dependant: Any) -> Iterator[Any]:
    for d in dependant.dependencies:
        yield d
        yield from _walk(d)


def require(role: Role) -> Callable[..., Coroutine[Any, Any, Claims]]:
    """The caller's role *in the request's workspace* must allow ``role`` (403 otherwise;
    404 for a workspace they do not belong to)."""
    async def check(claims: Annotated[Claims, Depends(member)]) -> Claims:
        if not Role(claims.role).allows(role):
            raise Forbidden(f"this needs the {role} role; you are {claims.role}")
        return claims

    return check


def require_global(role: Role) -> Callable[..., Coroutine[Any, Any, Claims]]:
    """The caller's server-wide role must allow ``role`` (users, profiles, sessions)."""
    async def check(claims: Annotated[Claims, Depends(caller)]) -> Claims:
        if not Role(claims.role).allows(role):
            raise Forbidden(f"this needs the {role} role; you are {claims.role}")
        return claims

    return check


Viewer = Annotated[Claims, Depends(require(Role.VIEWER))]
Analyst = Annotated[Claims, Depends(require(Role.ANALYST))]
Admin = Annotated[Claims, Depends(require(Role.ADMIN))]
Ingester = Annotated[Claims | IngestGrant, Depends(ingester)]
"""The ingest routes' caller: an analyst of the workspace, or an ingest token of it."""
User = Annotated[Claims, Depends(caller)]
"""Any signed-in user (routes about themselves or across workspaces)."""
ServerAdmin = Annotated[Claims, Depends(require_global(Role.ADMIN))]
