"""Workspaces and their members (issue 8, first part): server administrators create and
delete workspaces; a workspace's admins rename it and manage its members. Data endpoints are
scoped to the ``default`` workspace until per-workspace routing lands."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from kpidash.api.deps import State, Viewer
from kpidash.auth import Role

router = APIRouter(prefix="/api/v1", tags=["workspaces"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewWorkspace(_Body):
    id: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=100)
    settings: dict[str, Any] = Field(default_factory=dict)


class WorkspacePatch(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    settings: dict[str, Any] | None = None


class MemberBody(_Body):
    role: Role


def _json(record: Any) -> Any:
    if isinstance(record, dict):
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in record.items()}
    return record


@router.get("/workspaces", summary="The workspaces I belong to (server admins: all)")
async def list_workspaces(st: State, me: Viewer) -> list[dict[str, Any]]:
    return [_json(w) for w in await st.run(st.accounts.list_workspaces, me.user_id)]


@router.post("/workspaces", status_code=201, summary="Create a workspace (server admin)")
async def create_workspace(st: State, me: Viewer, body: NewWorkspace) -> dict[str, Any]:
    record = await st.run(st.accounts.create_workspace, me.user_id, body.id, body.name,
                          body.settings or None)
    return dict(_json(record))


@router.patch("/workspaces/{workspace_id}", summary="Rename or reconfigure (workspace admin)")
async def patch_workspace(st: State, me: Viewer, workspace_id: str,
                          body: WorkspacePatch) -> dict[str, Any]:
    record = await st.run(st.accounts.rename_workspace, me.user_id, workspace_id,
                          name=body.name, settings=body.settings)
    return dict(_json(record))


@router.delete("/workspaces/{workspace_id}", summary="Delete a workspace and all its data "
               "(server admin)")
async def delete_workspace(st: State, me: Viewer, workspace_id: str) -> dict[str, Any]:
    counts = await st.run(st.accounts.delete_workspace, me.user_id, workspace_id)
    return {"deleted": counts}


@router.get("/workspaces/{workspace_id}/members", summary="Members and their roles")
async def members(st: State, me: Viewer, workspace_id: str) -> list[dict[str, Any]]:
    return [_json(m) for m in await st.run(st.accounts.members, me.user_id, workspace_id)]


@router.put("/workspaces/{workspace_id}/members/{user_id}",
            summary="Add a member or change their role (workspace admin)")
async def put_member(st: State, me: Viewer, workspace_id: str, user_id: str,
                     body: MemberBody) -> Response:
    await st.run(st.accounts.add_member, me.user_id, workspace_id, user_id, body.role)
    return Response(status_code=204)


@router.delete("/workspaces/{workspace_id}/members/{user_id}", status_code=204,
               summary="Remove a member (workspace admin)")
async def delete_member(st: State, me: Viewer, workspace_id: str, user_id: str) -> Response:
    await st.run(st.accounts.remove_member, me.user_id, workspace_id, user_id)
    return Response(status_code=204)
