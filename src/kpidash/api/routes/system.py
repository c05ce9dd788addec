"""Health, Prometheus metrics, the widget JSON Schemas."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from kpidash.api.deps import Shared
from kpidash.store.base import redact_url

router = APIRouter(tags=["system"])


@router.get("/api/v1/health", summary="Liveness and the store's state (no auth)")
async def health(st: Shared) -> dict[str, Any]:
    from importlib.metadata import version

    version_ = await st.run(st.engine.store.schema_version)
    return {"status": "ok", "version": version("kpidash"), "store": redact_url(st.engine.store.url),
            "schema_version": version_, "live_clients": len(st.hub.clients),
            "worker": {"pid": os.getpid(), "id": st.peers.node,
                       "runs_alert_ticks": st.leading}}


@router.get("/metrics", summary="Prometheus metrics (no auth)", response_class=PlainTextResponse)
async def metrics(st: Shared) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(st.metrics.render_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/schemas/{name}", summary="A widget JSON Schema (no auth)")
async def schema(name: str) -> dict[str, Any]:
    from kpidash.schemas import load_schema

    return load_schema(name)
