"""Ingest tokens of a workspace (its admins and server admins): long-lived credentials that
only write points there, for Telegraf, InfluxDB clients and batch jobs (see
:mod:`kpidash.auth.ingest_tokens`; the ingest routes accept them through
:data:`kpidash.api.deps.Ingester`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kpidash.api.deps import Shared, User
from kpidash.auth import Claims, Role
from kpidash.auth.ingest_tokens import MAX_NAME_LENGTH
from kpidash.errors import Forbidden, NotFound

router = APIRouter(prefix="/api/v1/workspaces/{workspace}/ingest-tokens", tags=["workspaces"])

Workspace = Annotated[str, Path(description="A workspace id (see GET /api/v1/workspaces)",
                                max_length=63)]


async def _workspace_admin(st: Shared, me: User, workspace: Workspace) -> Claims:
    """The caller must be an admin of the workspace (404 for a non-member, 403 below admin)
    before a body is looked at; the accounts service checks again under the lock."""
    role = await st.cached(st.accounts.role_in, me.user_id, workspace)
    if role is None:
        raise NotFound(f"no workspace {workspace!r}")
    if not role.allows(Role.ADMIN):
        raise Forbidden(f"managing the ingest tokens of workspace {workspace!r} needs the "
                        f"{Role.ADMIN} role there; you are {role}")
    return me


WorkspaceAdmin = Annotated[Claims, Depends(_workspace_admin)]


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH,
                      description="What the token is for, e.g. 'telegraf-eu'")
    expires_at: AwareDatetime | None = Field(
        default=None, description="When it stops working (ISO 8601 with a time zone); "
                                  "null: until revoked")


@router.get("", summary="The workspace's ingest tokens, revoked ones too (workspace admin)",
            description="Never the secrets: a secret is shown once, when its token is created.")
async def list_tokens(st: Shared, me: WorkspaceAdmin, workspace: Workspace,
                      ) -> list[dict[str, Any]]:
    tokens = await st.run(st.accounts.list_ingest_tokens, me.user_id, workspace)
    return [t.to_dict() for t in tokens]


@router.post("", status_code=201, summary="Create an ingest token (workspace admin)",
             description="The response's `token` (`kpi_…`) is the secret, shown this once: "
                         "store it now. It writes points into this workspace only (POST "
                         "…/ingest, …/ingest/file, …/write; InfluxDB clients: `Authorization: "
                         "Token kpi_…` on /write or /api/v2/write) and nothing else.")
async def create_token(st: Shared, me: WorkspaceAdmin, workspace: Workspace,
                       body: NewToken) -> dict[str, Any]:
    expires: datetime | None = body.expires_at
    issued = await st.run(st.accounts.create_ingest_token, me.user_id, workspace, body.name,
                          expires)
    return issued.to_dict()


@router.delete("/{token_id}", status_code=204,
               summary="Revoke an ingest token at once (workspace admin)")
async def revoke_token(st: Shared, me: WorkspaceAdmin, workspace: Workspace,
                       token_id: Annotated[str, Path(max_length=64)]) -> Response:
    await st.run(st.accounts.revoke_ingest_token, me.user_id, workspace, token_id)
    return Response(status_code=204)
