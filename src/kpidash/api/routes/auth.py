"""Authentication (OAuth2 password flow, refresh rotation, logout), the caller's profile and
sessions, and user administration."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field

from kpidash.api.deps import ServerAdmin, Shared, User
from kpidash.auth import Role
from kpidash.core.aggregate import check_dimension_names
from kpidash.errors import InputError, InvalidCredentials, QueryError

router = APIRouter(prefix="/api/v1", tags=["auth"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RefreshBody(_Body):
    refresh_token: str = Field(min_length=10, max_length=200)


class PasswordBody(_Body):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


Theme = Literal["corporate", "dark", "light", "vibrant", "pastel"]


class ProfilePatch(_Body):
    display_name: str | None = Field(default=None, max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    theme: Theme | None = None
    refresh_interval: int | None = Field(default=None, ge=5, le=86400)
    followed: list[str] | None = Field(default=None, max_length=500)
    saved_filters: dict[str, dict[str, list[str]]] | None = None


class NewUser(_Body):
    username: str = Field(min_length=2, max_length=63)
    password: str = Field(max_length=1024)
    role: Role = Role.VIEWER
    display_name: str = Field(default="", max_length=100)
    timezone: str = Field(default="UTC", max_length=64)


class UserPatch(_Body):
    role: Role | None = None
    display_name: str | None = Field(default=None, max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    disabled: bool | None = None
    password: str | None = Field(default=None, max_length=1024)


def _client(request: Request) -> tuple[str, str]:
    address = request.client.host if request.client else ""
    return address, request.headers.get("user-agent", "")[:200]


@router.post("/auth/token", summary="Log in (OAuth2 password flow)")
async def token(st: Shared, request: Request,
                form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
    address, agent = _client(request)
    if not form.username or not form.password:
        raise InvalidCredentials("username and password are required")
    pair = await st.run(st.accounts.login, form.username, form.password, address=address,
                        user_agent=agent)
    return pair.to_dict()


@router.post("/auth/refresh", summary="Exchange a refresh token for a new pair (rotation)")
async def refresh(st: Shared, request: Request, body: RefreshBody) -> dict[str, Any]:
    address, agent = _client(request)
    pair = await st.run(st.accounts.refresh, body.refresh_token, address=address,
                        user_agent=agent)
    return pair.to_dict()


@router.post("/auth/logout", status_code=204, summary="Revoke the current session")
async def logout(st: Shared, me: User) -> Response:
    await st.run(st.accounts.logout, me.session_id)
    return Response(status_code=204)


# -- the caller -------------------------------------------------------------------------------


@router.get("/me", summary="My profile")
async def get_me(st: Shared, me: User) -> dict[str, Any]:
    user = await st.run(st.accounts.get_user, me.user_id)
    return user.to_dict()


@router.patch("/me", summary="Change my profile, theme, followed KPIs, saved filters")
async def patch_me(st: Shared, me: User, body: ProfilePatch) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    registry = st.engine.registry
    for kpi_id in [*(changes.get("followed") or []), *(changes.get("saved_filters") or {})]:
        registry.get(kpi_id)
    for kpi_id, filters in (changes.get("saved_filters") or {}).items():
        try:  # the dimensions a query of the KPI accepts
            check_dimension_names(registry, kpi_id, filters)
        except QueryError as exc:
            raise InputError(f"saved_filters.{kpi_id}: {exc}") from None
    user = await st.run(st.accounts.update_user, me.user_id, **changes)
    return user.to_dict()


@router.post("/me/password", status_code=204, summary="Change my password")
async def change_password(st: Shared, request: Request, me: User,
                          body: PasswordBody) -> Response:
    address, agent = _client(request)
    # the current password is checked like a login (rate limited, same message)
    await st.run(st.accounts.login, me.username, body.current_password, address=address,
                 user_agent=agent)
    await st.run(st.accounts.set_password, me.user_id, body.new_password)
    return Response(status_code=204)


@router.get("/me/sessions", summary="My active sessions")
async def my_sessions(st: Shared, me: User) -> list[dict[str, Any]]:
    now = st.clock.now()
    sessions = await st.run(st.accounts.sessions, me.user_id)
    return [{**s.to_dict(), "state": s.state(now), "current": s.id == me.session_id}
            for s in sessions]


@router.delete("/me/sessions/{session_id}", status_code=204, summary="Revoke one session")
async def revoke_session(st: Shared, me: User, session_id: str) -> Response:
    await st.run(st.accounts.revoke_session, me.user_id, session_id)
    return Response(status_code=204)


# -- users (admin) ----------------------------------------------------------------------------


@router.get("/users", summary="All users", tags=["users"])
async def list_users(st: Shared, _: ServerAdmin) -> list[dict[str, Any]]:
    return [u.to_dict() for u in await st.run(st.accounts.list_users)]


@router.post("/users", status_code=201, summary="Create a user", tags=["users"])
async def create_user(st: Shared, _: ServerAdmin, body: NewUser) -> dict[str, Any]:
    user = await st.run(st.accounts.create_user, body.username, body.password, role=body.role,
                        display_name=body.display_name, timezone=body.timezone)
    return user.to_dict()


@router.get("/users/{user_id}", summary="One user", tags=["users"])
async def get_user(st: Shared, _: ServerAdmin, user_id: str) -> dict[str, Any]:
    return (await st.run(st.accounts.get_user, user_id)).to_dict()


@router.patch("/users/{user_id}", summary="Change a user's role, profile, password",
              tags=["users"])
async def patch_user(st: Shared, _: ServerAdmin, user_id: str, body: UserPatch) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    password = changes.pop("password", None)
    if password is not None:
        await st.run(st.accounts.set_password, user_id, password)
    user = await st.run(st.accounts.update_user, user_id, **changes) if changes else \
        await st.run(st.accounts.get_user, user_id)
    return user.to_dict()


@router.delete("/users/{user_id}", status_code=204, summary="Delete a user", tags=["users"])
async def delete_user(st: Shared, me: ServerAdmin, user_id: str) -> Response:
    from kpidash.errors import Conflict

    if user_id == me.user_id:
        raise Conflict("you cannot delete your own account; ask another admin")
    await st.run(st.accounts.delete_user, user_id)
    return Response(status_code=204)
