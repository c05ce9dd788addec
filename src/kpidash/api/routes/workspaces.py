"""Workspaces and their members: server administrators create and delete workspaces; a
workspace's admins rename it and manage its members. Each workspace's data lives under
``/api/v1/workspaces/{workspace}/...`` (the routers of the other modules, mounted there by
:func:`kpidash.api.create_app`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from kpidash.api.deps import Shared, User
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
async def list_workspaces(st: Shared, me: User) -> list[dict[str, Any]]:
    return [_json(w) for w in await st.run(st.accounts.list_workspaces, me.user_id)]


@router.post("/workspaces", status_code=201, summary="Create a workspace (server admin)")
async def create_workspace(st: Shared, me: User, body: NewWorkspace) -> dict[str, Any]:
    record = await st.run(st.accounts.create_workspace, me.user_id, body.id, body.name,
                          body.settings or None)
    return dict(_json(record))


@router.patch("/workspaces/{workspace}", summary="Rename or reconfigure (workspace admin)")
async def patch_workspace(st: Shared, me: User, workspace: str,
                          body: WorkspacePatch) -> dict[str, Any]:
    record = await st.run(st.accounts.rename_workspace, me.user_id, workspace,
                          name=body.name, settings=body.settings)
    if body.settings is not None:  # its engine is rebuilt with the new time zone
        st.forget(workspace)
    return dict(_json(record))


@router.delete("/workspaces/{workspace}", summary="Delete a workspace and all its data "
               "(server admin)")
async def delete_workspace(st: Shared, me: User, workspace: str) -> dict[str, Any]:
    def delete() -> dict[str, int]:  # one lock hold: no request of it runs after
        counts = st.accounts.delete_workspace(me.user_id, workspace)
        st.forget(workspace, deleted=True)
        return counts

    counts = await st.run(delete)
    return {"deleted": counts}


@router.get("/workspaces/{workspace}/members", summary="Members and their roles")
async def members(st: Shared, me: User, workspace: str) -> list[dict[str, Any]]:
    return [_json(m) for m in await st.run(st.accounts.members, me.user_id, workspace)]


@router.put("/workspaces/{workspace}/members/{user_id}",
            summary="Add a member or change their role (workspace admin)")
async def put_member(st: Shared, me: User, workspace: str, user_id: str,
                     body: MemberBody) -> Response:
    await st.run(st.accounts.add_member, me.user_id, workspace, user_id, body.role)
    return Response(status_code=204)


@router.delete("/workspaces/{workspace}/members/{user_id}", status_code=204,
               summary="Remove a member (workspace admin)")
async def delete_member(st: Shared, me: User, workspace: str, user_id: str) -> Response:
    await st.run(st.accounts.remove_member, me.user_id, workspace, user_id)
    return Response(status_code=204)
