"""The HTTP API: ``create_app(settings)`` builds a FastAPI app (nothing at import time).

Routes live in :mod:`kpidash.api.routes` (one module per area) and :mod:`kpidash.api.live`
(WebSocket, SSE, the background refresher); every error leaves through the envelope of
:mod:`kpidash.api.errors`; the caller comes from :mod:`kpidash.api.deps`. The app calls the
engine and the accounts service; it reads the store itself only for server-level facts
(health, workspace records, which workspaces have alert rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import URL, Headers, MutableHeaders
from starlette.responses import Response

from kpidash.api import errors
from kpidash.api.deps import SCOPED
from kpidash.api.hub import Hub
from kpidash.api.metrics import Metrics
from kpidash.api.state import AppState
from kpidash.clock import Clock, SystemClock
from kpidash.errors import ConfigError
from kpidash.settings import Settings

if TYPE_CHECKING:
    from kpidash.auth import Accounts
    from kpidash.engine import Engine

log = logging.getLogger("kpidash.api")
SECURITY_HEADERS = errors.SECURITY_HEADERS
API_CACHE = errors.API_CACHE
HTML_CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
"""The Content-Security-Policy of every HTML response (the dashboard page, the HTML digest):
scripts, styles, images and connections from this server only — no inline script, no other
origin (the dashboard loads nothing from anywhere else). Plotly's full bundle builds
functions from strings (``Function(…)``) and injects style elements, hence 'unsafe-eval' for
scripts and 'unsafe-inline' for styles."""
WORKSPACE_PREFIX = "/api/v1/workspaces/{workspace}"


def signing_secret(settings: Settings) -> str:
    """The token signing key; outside dev/demo mode one must be configured."""
    if settings.secret is not None:
        value = settings.secret.get_secret_value()
        if len(value) < 32:
            raise ConfigError("KPIDASH_SECRET must be at least 32 characters (e.g. the output "
                              "of `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)")
        return value
    if settings.mode in ("dev", "demo"):
        log.warning("no KPIDASH_SECRET: using a random one for this process (%s mode); "
                    "tokens stop working when it restarts", settings.mode)
        return secrets.token_urlsafe(48)
    raise ConfigError("KPIDASH_SECRET is not set: the server refuses to start without a token "
                      "signing key outside dev/demo mode (set KPIDASH_SECRET, or "
                      "KPIDASH_MODE=dev for local use)")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               engine: Engine | None = None, accounts: Accounts | None = None) -> FastAPI:
    """Build the app. ``engine``/``accounts``/``clock`` are for tests and the demo; by
    default they come from ``settings``."""
    from kpidash.api import live
    from kpidash.api.routes import (
        alerts,
        auth,
        dashboards,
        data,
        insights,
        portfolio,
        quotas,
        system,
        tokens,
        workspaces,
    )
    from kpidash.auth import Accounts, AuthSettings
    from kpidash.engine import Engine

    settings = settings or Settings()
    clock = clock or SystemClock()
    secret = signing_secret(settings)
    engine = engine or Engine.from_settings(settings, clock)
    if accounts is None:
        accounts = Accounts(engine.store, clock, AuthSettings(
            secret=secret, access_ttl=timedelta(minutes=settings.access_ttl_minutes),
            refresh_ttl=timedelta(days=settings.refresh_ttl_days),
            idle_timeout=timedelta(days=settings.session_idle_days)),
            workspace=engine.workspace)
    st = AppState(settings, clock, engine, accounts, Hub(), Metrics())
    st.default  # noqa: B018 -- made now, before requests run concurrently (reads the store)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        st.changed = asyncio.Event()  # bound to the server's loop
        st.peers.start()  # other workers' changes (a store shared by several processes)
        task = asyncio.create_task(live.refresher(st, stop))
        try:
            yield
        finally:
            stop.set()
            st.changed.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
            await st.peers.stop()
            st.metrics.close()
            st.locked(engine.close)

    from importlib.metadata import version

    app = FastAPI(title="kpidash", version=version("kpidash"), lifespan=lifespan,
                  description="KPI intelligence engine: KPIs, data, analytics, alerts, "
                              "insights and dashboards as JSON.")
    app.state.kpidash = st
    errors.install(app)
    if settings.cors_origins:
        app.add_middleware(_Cors, allow_origins=settings.cors_origins,
                           allow_credentials=False, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])

    # the scoped routers' routes carry their path without the prefix they are mounted at
    scoped_routes = {id(r) for router in (data.router, alerts.router, insights.router,
                                          dashboards.router, live.router)
                     for r in router.routes}
    app.add_middleware(_Measure, st=st, scoped=scoped_routes)

    # every route documents the error envelope of each status it may return
    for module in (auth, workspaces, tokens, portfolio, quotas):
        app.include_router(module.router, responses=errors.API_ERRORS)
    app.include_router(system.router, responses=errors.PUBLIC_ERRORS)
    # every workspace's data: at /api/v1/workspaces/{workspace}/... for its members, and at
    # /api/v1/... for the server's own workspace (a single-business install never names one)
    scoped = (data.router, alerts.router, insights.router, dashboards.router, live.router)
    for router in scoped:
        app.include_router(router, prefix="/api/v1", responses=errors.API_ERRORS)
    for router in scoped:
        app.include_router(router, prefix=WORKSPACE_PREFIX, dependencies=SCOPED,
                           responses=errors.API_ERRORS)
    app.include_router(data.compat)
    app.include_router(live.socket)

    # the built-in web dashboard (kpidash.web): every script and style comes from here, no CDN
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    from kpidash.web import STATIC, plotly_bundle

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        return FileResponse(plotly_bundle(), media_type="text/javascript")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class _Cors(CORSMiddleware):
    """Starlette's CORS middleware, whose refused preflight (a plain-text 400) answers with
    the API's error envelope instead; the allowed ones are unchanged."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        what = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        headers = {k: v for k, v in response.headers.items()
                   if k not in ("content-type", "content-length")}
        return errors.envelope(
            400, "cors_refused", f"CORS preflight refused: {what} not allowed (the allowed "
            "origins are KPIDASH_CORS_ORIGINS; methods any, headers Authorization and "
            "Content-Type)", None, headers)


class _Measure:
    """Request metrics and the security / cache headers, as a plain ASGI middleware.

    It was ``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware, which runs the app in
    a task group and pipes the response through a memory stream); measured with
    benchmarks/api.py (cached dashboard render, 32 connections) this one does the same —
    metrics taken when the response starts, headers added unless set — for less CPU per
    request.
    """

    def __init__(self, app: Any, st: AppState, scoped: set[int]) -> None:
        self.app = app
        self.st = st
        self.scoped = scoped

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        api = URL(scope=scope).path.startswith("/api/")
        metrics = self.st.metrics

        async def send_measured(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    headers.setdefault(k, v)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", HTML_CSP)
                if api:
                    headers.setdefault("Cache-Control", API_CACHE)
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                if id(route) in self.scoped:  # the route template, as the OpenAPI schema has it
                    prefix = ("/api/v1" if "workspace" not in scope.get("path_params", {})
                              else WORKSPACE_PREFIX)
                    path = prefix + path
                method = scope["method"]
                metrics.requests.labels(method, path, str(message["status"])).inc()
                metrics.latency.labels(method, path).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, send_measured)


__all__ = ["create_app", "signing_secret"]
