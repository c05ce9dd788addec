"""Insights, digests and recorded interactions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from kpidash.api.deps import State, Viewer

router = APIRouter(tags=["insights"])


class Interaction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["view_kpi", "apply_filter", "save_filter", "open_dashboard"]
    kpi_id: str | None = Field(default=None, max_length=64)
    filters: dict[str, list[str]] | None = None


@router.get("/insights", summary="Ranked insights for me (facts and score factors included)")
async def insights(st: State, me: Viewer,
                   limit: Annotated[int, Query(ge=1, le=500)] = 20,
                   kpi: Annotated[list[str] | None, Query()] = None,
                   type: Annotated[list[str] | None, Query()] = None,
                   all_per_kpi: bool = False) -> list[dict[str, Any]]:
    from kpidash.core.insights import InsightType
    from kpidash.errors import QueryError

    known = [str(v) for v in InsightType]
    unknown = [t for t in type or [] if t not in known]
    if unknown:
        raise QueryError(f"unknown insight type(s) {', '.join(map(repr, unknown))}; use some "
                         f"of {', '.join(known)}")
    ranked = await st.run(st.engine.insights, me.username, limit=limit, kpi_ids=kpi or None,
                          types=type or None, diverse=not all_per_kpi)
    return [r.to_dict() for r in ranked]


@router.get("/digest", summary="My digest of followed KPIs (json, text or html)",
            responses={200: {"description": "The digest, in the format asked for", "content": {
                "application/json": {}, "text/plain": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}}}}})
async def digest(st: State, me: Viewer,
                 follow: Annotated[list[str] | None, Query()] = None,
                 limit: Annotated[int, Query(ge=1, le=100)] = 10,
                 format: Literal["json", "text", "html"] = "json") -> Response:
    followed = follow
    if followed is None:
        user = await st.run(st.accounts.get_user, me.user_id)
        followed = list(user.followed)
    d = await st.run(st.engine.digest, me.username, followed=followed, limit=limit)
    if format == "text":
        return Response(d.text(), media_type="text/plain; charset=utf-8")
    if format == "html":
        return Response(d.html(), media_type="text/html; charset=utf-8")
    import json

    return Response(json.dumps(d.to_dict()), media_type="application/json")


@router.post("/interactions", status_code=204, summary="Record what I looked at")
async def interaction(st: State, me: Viewer, body: Interaction) -> Response:
    await st.run(st.engine.record_interaction, me.username, body.kind, kpi_id=body.kpi_id,
                 filters=body.filters, role=me.role)
    return Response(status_code=204)
