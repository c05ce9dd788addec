"""Workspaces and their members, for the accounts service (mixed into :class:`Accounts`).

Who may do what:

* A user whose global role is ``admin`` (and who is enabled) is a *server administrator*:
  admin in every workspace, the only one who may create or delete workspaces.
* Everyone else has a role per workspace through a membership (viewer < analyst < admin).
  A workspace's admins rename it, change its settings and manage its members — but not its
  ``quotas``: only a server administrator sets or changes those (Forbidden otherwise).
* :meth:`WorkspaceAccounts.role_in` is None for a user who is not a member (or is disabled or
  unknown), and every method answers NotFound — the same answer as for a workspace that does
  not exist — for a workspace the actor may not see, so existence never leaks; Forbidden only
  for one they see but may not change.
* A workspace always keeps one admin member: removing or demoting the last one is a Conflict.
  The ``default`` workspace cannot be deleted (Conflict).

Records are plain dicts (JSON-able apart from datetimes): a workspace is the store record
(id, name, settings, created_at, updated_at) plus the user's ``role``; a member is user_id,
username, display_name, role, disabled and ``joined_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kpidash.auth.roles import Role
from kpidash.core.workspace import WorkspaceSettings, validate_settings
from kpidash.errors import Conflict, Forbidden, NotFound
from kpidash.model import DEFAULT_WORKSPACE

if TYPE_CHECKING:
    from kpidash.clock import Clock
    from kpidash.store.base import Store


class WorkspaceAccounts:
    """Workspace and membership methods of :class:`kpidash.auth.Accounts`."""

    store: Store
    clock: Clock

    # -- who may see what ------------------------------------------------------------------

    def is_server_admin(self, user_id: str) -> bool:
        """True for an enabled user whose global role is admin."""
        row = self.store.user(user_id)
        return _server_admin(row)

    def role_in(self, user_id: str, workspace: str) -> Role | None:
        """The user's role in a workspace (server admins: admin in every existing one); None
        when they are not a member, are disabled or unknown, or the workspace does not exist."""
        row = self.store.user(user_id)
        if row is None or row["disabled"] or self.store.workspace(workspace) is None:
            return None
        if _server_admin(row):
            return Role.ADMIN
        for m in self.store.user_memberships(user_id):
            if m["workspace_id"] == workspace:
                return Role(m["role"])
        return None

    def _access(self, actor_id: str, workspace: str, need: Role, action: str) -> Role:
        role = self.role_in(actor_id, workspace)
        if role is None:
            raise NotFound(f"no workspace {workspace!r}")
        if not role.allows(need):
            raise Forbidden(f"you cannot {action} of workspace {workspace!r}: that needs the "
                            f"{need} role there, and yours is {role}")
        return role

    def _require_server_admin(self, actor_id: str, action: str) -> None:
        if not self.is_server_admin(actor_id):
            raise Forbidden(f"only a server administrator can {action}")

    # -- workspaces ------------------------------------------------------------------------

    def create_workspace(self, actor_id: str, workspace_id: str, name: str,
                         settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A new workspace (server admins only, else Forbidden), its creator its admin
        member; Conflict if the id is taken, ValidationFailed for a bad id, name or settings."""
        self._require_server_admin(actor_id, "create workspaces")
        now = self.clock.now()
        with self.store.transaction():
            self.store.create_workspace(workspace_id, name, settings, now)
            self.store.put_membership(workspace_id, actor_id, str(Role.ADMIN), now)
        return self._record(workspace_id, Role.ADMIN)

    def get_workspace(self, user_id: str, workspace: str) -> dict[str, Any]:
        """A workspace the user may see, with their role; NotFound otherwise."""
        role = self.role_in(user_id, workspace)
        if role is None:
            raise NotFound(f"no workspace {workspace!r}")
        return self._record(workspace, role)

    def list_workspaces(self, user_id: str) -> list[dict[str, Any]]:
        """The workspaces the user is a member of (server admins: all), by id, each with
        the user's ``role``; NotFound for an unknown user, none for a disabled one."""
        row = self.store.user(user_id)
        if row is None:
            raise NotFound(f"no user with id {user_id!r}")
        if row["disabled"]:
            return []
        if _server_admin(row):
            return [{**w, "role": str(Role.ADMIN)} for w in self.store.workspaces()]
        roles = {m["workspace_id"]: m["role"] for m in self.store.user_memberships(user_id)}
        return [{**w, "role": str(Role(roles[w["id"]]))} for w in self.store.workspaces()
                if w["id"] in roles]

    def rename_workspace(self, actor_id: str, workspace: str, name: str | None = None,
                         settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Rename and/or change some settings (workspace admins and server admins); the
        record with the actor's role. A change of ``quotas`` is for server admins only
        (Forbidden; sending the quotas the workspace already has is no change)."""
        role = self._access(actor_id, workspace, Role.ADMIN, "rename or reconfigure")
        if settings is not None and "quotas" in settings:
            self._check_quota_change(actor_id, workspace, settings)
        if not self.store.update_workspace(workspace, name=name, settings=settings,
                                           now=self.clock.now()):
            raise NotFound(f"no workspace {workspace!r}")
        return self._record(workspace, role)

    def _check_quota_change(self, actor_id: str, workspace: str,
                            settings: Mapping[str, Any]) -> None:
        """Forbidden when ``settings`` would change the workspace's quotas and the actor is
        not a server admin (ValidationFailed first for settings that are invalid anyway)."""
        if self.is_server_admin(actor_id):
            return
        record = self.store.workspace(workspace)
        if record is None:
            raise NotFound(f"no workspace {workspace!r}")
        current = WorkspaceSettings.model_validate(record["settings"])
        if validate_settings(settings, current).quotas != current.quotas:
            raise Forbidden(f"only a server administrator can change the quotas of workspace "
                            f"{workspace!r} (its current quotas: "
                            f"{current.quotas.model_dump()}); ask one to raise them")

    def delete_workspace(self, actor_id: str, workspace: str) -> dict[str, int]:
        """Delete a workspace with everything it owns and its memberships (server admins
        only); rows deleted per table. Conflict for ``default``."""
        self._access(actor_id, workspace, Role.VIEWER, "delete")  # NotFound unless visible
        self._require_server_admin(actor_id, "delete workspaces")
        if workspace == DEFAULT_WORKSPACE:
            raise Conflict(f"the {DEFAULT_WORKSPACE!r} workspace cannot be deleted; it is "
                           "where single-business installs keep their data")
        return self.store.delete_workspace(workspace)

    def _record(self, workspace: str, role: Role) -> dict[str, Any]:
        record = self.store.workspace(workspace)
        if record is None:
            raise NotFound(f"no workspace {workspace!r}")
        return {**record, "role": str(role)}

    # -- members ---------------------------------------------------------------------------

    def members(self, actor_id: str, workspace: str) -> list[dict[str, Any]]:
        """The members of a workspace (workspace admins and server admins), by username."""
        self._access(actor_id, workspace, Role.ADMIN, "see the members")
        out = []
        for m in self.store.memberships(workspace):
            row = self.store.user(m["user_id"])
            if row is None:
                continue
            out.append({"user_id": row["id"], "username": row["username"],
                        "display_name": row["doc"].get("display_name", ""),
                        "role": str(Role(m["role"])), "disabled": bool(row["disabled"]),
                        "joined_at": m["created_at"]})
        return sorted(out, key=lambda m: m["username"])

    def add_member(self, actor_id: str, workspace: str, user_id: str,
                   role: Role | str) -> dict[str, Any]:
        """Add a user to a workspace or change their role there (workspace admins and server
        admins); the member. NotFound for an unknown user, Conflict when it would demote the
        workspace's last admin."""
        self._access(actor_id, workspace, Role.ADMIN, "manage the members")
        new = Role.parse(role)
        row = self.store.user(user_id)
        if row is None:
            raise NotFound(f"no user with id {user_id!r}")
        with self.store.transaction():
            if new is not Role.ADMIN:
                self._keep_a_workspace_admin(workspace, user_id, row["username"], "demote")
            self.store.put_membership(workspace, user_id, str(new), self.clock.now())
        return next(m for m in self.members(actor_id, workspace) if m["user_id"] == user_id)

    def remove_member(self, actor_id: str, workspace: str, user_id: str) -> None:
        """Remove a user from a workspace (workspace admins and server admins); NotFound if
        they are not a member, Conflict for the workspace's last admin."""
        self._access(actor_id, workspace, Role.ADMIN, "manage the members")
        with self.store.transaction():
            if not any(m["user_id"] == user_id for m in self.store.memberships(workspace)):
                raise NotFound(f"user {user_id!r} is not a member of workspace {workspace!r}")
            row = self.store.user(user_id)
            self._keep_a_workspace_admin(workspace, user_id,
                                         row["username"] if row else user_id, "remove")
            self.store.delete_membership(workspace, user_id)

    def _keep_a_workspace_admin(self, workspace: str, user_id: str, username: str,
                                action: str) -> None:
        """Conflict when ``user_id`` is the only enabled admin member of ``workspace``."""
        admins = [m["user_id"] for m in self.store.memberships(workspace)
                  if m["role"] == Role.ADMIN and _enabled(self.store.user(m["user_id"]))]
        if user_id in admins and len(admins) == 1:
            raise Conflict(f"cannot {action} {username!r}: they are the last admin of "
                           f"workspace {workspace!r}; make another member admin first")

    def _sync_default_membership(self, user_id: str, role: Role | str) -> None:
        """Follow a change of global role in the user's ``default`` membership, if any."""
        if any(m["workspace_id"] == DEFAULT_WORKSPACE
               for m in self.store.user_memberships(user_id)):
            self.store.put_membership(DEFAULT_WORKSPACE, user_id, str(Role.parse(role)),
                                      self.clock.now())


def _enabled(row: Mapping[str, Any] | None) -> bool:
    return row is not None and not row["disabled"]


def _server_admin(row: Mapping[str, Any] | None) -> bool:
    return _enabled(row) and row is not None and row["role"] == Role.ADMIN
