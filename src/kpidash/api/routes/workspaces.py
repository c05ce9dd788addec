"""Workspaces and their members: server administrators create and delete workspaces; a
workspace's admins rename it, manage its members and export it; server administrators import
an export as a new workspace (see :mod:`kpidash.auth.transfer`). Each workspace's data lives under
``/api/v1/workspaces/{workspace}/...`` (the routers of the other modules, mounted there by
:func:`kpidash.api.create_app`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kpidash.api.deps import Shared, User
from kpidash.api.routes.data import _form_file, read_limited
from kpidash.auth import Role, transfer
from kpidash.core.workspace import WORKSPACE_ID_PATTERN
from kpidash.errors import InputError

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


@router.put("/workspaces/{workspace}/members/{user_id}", status_code=204,
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


# -- export / import -------------------------------------------------------------------------

CHUNK = 1024 * 1024
ARCHIVE_BODY = {"required": True, "content": {
    "application/zip": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}}}}}}


@router.get("/workspaces/{workspace}/export", response_class=StreamingResponse,
            summary="Download the workspace as one archive (workspace admin)",
            description="A zip of one Parquet file per table (KPI definitions, points, alert "
                        "rules and state, silences, dashboards, annotations, insight state) "
                        "and a manifest with every table's row count and SHA-256. Memberships "
                        "and credentials are not exported.",
            responses={200: {"content": {"application/zip": {}},
                             "description": "The archive (<workspace>-<UTC time>.kpidash.zip)"}})
async def export_workspace(st: Shared, me: User, workspace: str) -> StreamingResponse:
    fd, name = tempfile.mkstemp(prefix="kpidash-export-", suffix=".kpidash.zip")
    os.close(fd)
    path = Path(name)
    try:  # written under the store lock: a consistent snapshot of the workspace
        await st.run(transfer.export_workspace, st.accounts, me.user_id, workspace, path)
        handle = path.open("rb")
    finally:
        # the open handle keeps the data readable; nothing is left behind if the client
        # goes away before the body is sent (no cleanup task that might not run)
        _unlink(path)
    size = os.fstat(handle.fileno()).st_size
    stamp = st.clock.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"{workspace}-{stamp}.kpidash.zip"
    return StreamingResponse(_chunks(handle, path), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(size)})


async def _chunks(handle: Any, path: Path) -> AsyncIterator[bytes]:
    try:
        while chunk := await anyio.to_thread.run_sync(handle.read, CHUNK):
            yield chunk
    finally:
        handle.close()
        _unlink(path)  # where an open file cannot be deleted (Windows): now


def _unlink(path: Path) -> None:
    with contextlib.suppress(PermissionError):  # open (Windows): _chunks deletes it later
        path.unlink(missing_ok=True)


@router.post("/workspaces/import", status_code=201, openapi_extra={"requestBody": ARCHIVE_BODY},
             summary="Create a workspace from an export archive (server admin)",
             description="The body is the archive (raw, or a multipart form with a `file` "
                         "field). Every table's row count and checksum are verified before "
                         "anything is written; a damaged archive is refused (400) naming the "
                         "table. Memberships and credentials are not in an archive: the "
                         "importing administrator becomes the new workspace's admin member.")
async def import_workspace(
        st: Shared, me: User, request: Request,
        new_id: Annotated[str | None, Query(
            alias="id", pattern=WORKSPACE_ID_PATTERN,
            description="Id of the new workspace (default: the archived one's)")] = None,
        name: Annotated[str | None, Query(
            min_length=1, max_length=200,
            description="Name of the new workspace (default: the archived one's)")] = None,
) -> dict[str, Any]:
    await st.run(transfer.may_import, st.accounts, me.user_id)  # before reading the upload
    limit = st.settings.max_upload_bytes
    label = "the uploaded archive"
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        try:
            raw, filename = await _form_file(request, limit)
        except InputError:
            raise InputError("the multipart form needs a `file` field holding the workspace "
                             "archive (a .kpidash.zip from GET …/export)") from None
        label = f"the uploaded archive {filename!r}" if filename else label
    else:
        raw = await read_limited(request, limit)
    if not raw:
        raise InputError("the body is empty: send the archive (a .kpidash.zip from "
                         "GET /api/v1/workspaces/{workspace}/export) as the body or as the "
                         "`file` field of a multipart form")

    def load(path: Path) -> dict[str, Any]:
        done = transfer.import_workspace(st.accounts, me.user_id, path, new_id, name,
                                         label=label)
        st.forget(done.workspace)  # served at once, with its own settings
        record = st.accounts.get_workspace(me.user_id, done.workspace)
        return {**done.summary(), "workspace": _json(record)}

    with tempfile.TemporaryDirectory(prefix="kpidash-import-") as tmp:
        path = Path(tmp) / "import.kpidash.zip"
        await anyio.to_thread.run_sync(path.write_bytes, raw)
        del raw
        return await st.run(load, path)
