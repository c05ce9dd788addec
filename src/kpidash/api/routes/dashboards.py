"""Dashboards: each user's own (layout, KPIs, filters, range, grain, refresh, theme), shared
read-only with others, rendered to themed JSON widgets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from kpidash.api.deps import State, Viewer
from kpidash.api.render import board_json, cached_render, render

router = APIRouter(tags=["dashboards"])


class DashboardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    spec: dict[str, Any] = Field(default_factory=dict)


class DashboardPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    spec: dict[str, Any] | None = None


class ShareBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_ids: list[str] = Field(max_length=1000)


def _check_kpis(st: Any, spec: dict[str, Any]) -> None:
    for k in spec.get("kpis") or []:
        st.engine.registry.get(str(k))


@router.get("/dashboards", summary="My dashboards and those shared with me")
async def list_dashboards(st: State, me: Viewer) -> list[dict[str, Any]]:
    return [d.to_dict() for d in await st.run(st.accounts.list_dashboards, me.user_id,
                                                 workspace=st.workspace)]


@router.post("/dashboards", status_code=201, summary="Create a dashboard")
async def create_dashboard(st: State, me: Viewer, body: DashboardBody) -> dict[str, Any]:
    _check_kpis(st, body.spec)
    d = await st.run(st.accounts.create_dashboard, me.user_id, body.name, body.spec,
                     workspace=st.workspace)
    return d.to_dict()


@router.get("/dashboards/{dashboard_id}", summary="One dashboard (spec and layout)")
async def get_dashboard(st: State, me: Viewer, dashboard_id: str) -> dict[str, Any]:
    return (await st.run(st.accounts.get_dashboard, me.user_id, dashboard_id,
                        workspace=st.workspace)).to_dict()


@router.patch("/dashboards/{dashboard_id}", summary="Rename or change spec/layout (owner)")
async def patch_dashboard(st: State, me: Viewer, dashboard_id: str,
                          body: DashboardPatch) -> dict[str, Any]:
    if body.spec is not None:
        _check_kpis(st, body.spec)
    d = await st.run(st.accounts.update_dashboard, me.user_id, dashboard_id, name=body.name,
                     spec=body.spec, workspace=st.workspace)
    # live subscribers of this dashboard get renders of the new spec from now on
    for key, entry in list(st.live.items()):
        if entry.workspace == st.workspace and entry.dashboard == dashboard_id:
            st.live[key] = replace(entry, spec=d.spec, title=d.name)
    st.changed.set()
    st.server.peers.announce("dashboard", st.workspace, id=dashboard_id)  # and the others'
    return d.to_dict()


@router.delete("/dashboards/{dashboard_id}", status_code=204, summary="Delete (owner)")
async def delete_dashboard(st: State, me: Viewer, dashboard_id: str) -> Response:
    await st.run(st.accounts.delete_dashboard, me.user_id, dashboard_id,
                 workspace=st.workspace)
    return Response(status_code=204)


@router.put("/dashboards/{dashboard_id}/share", summary="Share read-only with these users")
async def share(st: State, me: Viewer, dashboard_id: str, body: ShareBody) -> dict[str, Any]:
    d = await st.run(st.accounts.share_dashboard, me.user_id, dashboard_id, body.user_ids,
                     workspace=st.workspace)
    return d.to_dict()


# The render routes answer with the board's stored JSON bytes (render.board_json) and read
# the dashboard and the user's theme through the account cache (AppState.cached): see the
# measured gains there. response_model keeps the OpenAPI schema of a dict return.
@router.get("/dashboards/{dashboard_id}/render", summary="The dashboard's widgets (JSON)",
            response_model=dict[str, Any])
async def render_dashboard(st: State, me: Viewer, dashboard_id: str,
                           theme: str | None = None) -> Response:
    d = await st.cached(st.accounts.get_dashboard, me.user_id, dashboard_id,
                        workspace=st.workspace)
    chosen = theme or d.spec.get("theme") or await _user_theme(st, me.user_id)
    board = cached_render(st, d.spec, theme=chosen, key=d.id)
    if board is None:
        board = await st.run(render, st, d.spec, theme=chosen, user=me.username, key=d.id,
                             title=d.name)
    return Response(board_json(st, board), media_type="application/json")


@router.get("/render", summary="A dashboard of every KPI (no saved spec needed)",
            response_model=dict[str, Any])
async def render_default(st: State, me: Viewer, theme: str | None = None,
                         grain: str = "day") -> Response:
    chosen = theme or await _user_theme(st, me.user_id)
    board = cached_render(st, {"grain": grain}, theme=chosen, key="__all__")
    if board is None:
        board = await st.run(render, st, {"grain": grain}, theme=chosen, user=me.username,
                             key="__all__")
    return Response(board_json(st, board), media_type="application/json")


async def _user_theme(st: Any, user_id: str) -> str | None:
    """The user's own theme if they chose one, else the workspace's default theme."""
    from kpidash.auth.profiles import PROFILE_DEFAULTS

    user = await st.cached(st.accounts.get_user, user_id)
    theme: str | None = user.theme
    if theme == PROFILE_DEFAULTS["theme"]:
        theme = st.options.default_theme
    return theme
