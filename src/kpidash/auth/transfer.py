"""Moving a workspace between servers: who may export and import, and what an import does
besides loading the archive (:mod:`kpidash.store.archive` does the file itself).

* Export: the workspace's admins and server administrators. Anyone else who can see the
  workspace gets Forbidden; someone who cannot see it, NotFound (existence never leaks).
* Import: server administrators only, into a workspace id that does not exist yet
  (Conflict otherwise). The archive is verified first — format, versions, every table's row
  count and checksum — and loaded all or nothing; a damaged or newer archive is an
  InputError naming the table and nothing is written.
* Memberships and credentials (users, sessions, tokens) are never in an archive: users are
  global to a server. The importing administrator becomes the new workspace's admin member
  and the owner of its dashboards whose owner is not a user of this server (``adopted``);
  user ids of this server's users are kept as they were, unknown ones dropped from
  ``shared_with``.

:func:`export_archive` and :func:`import_archive` are the store-level steps, which the CLI
uses as well (no actor: the operator owns the database file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpidash.auth.roles import Role
from kpidash.core.workspace import check_workspace_id, check_workspace_name
from kpidash.errors import Conflict, Forbidden, InputError, NotFound, StoreError
from kpidash.store.archive import read_archive, read_manifest, write_archive

if TYPE_CHECKING:
    from kpidash.auth.service import Accounts
    from kpidash.store.base import Store

NOT_EXPORTED = ("memberships", "ingest_tokens", "users", "sessions", "login_failures")
"""What an archive never holds: who may use a workspace belongs to the server."""


@dataclass(frozen=True)
class Imported:
    """What an import did: the new workspace's id, rows per table (as verified against the
    archive's manifest), the archive's source (workspace id, kpidash and schema versions)
    and the dashboards given to the importing admin because their owner is unknown here."""

    workspace: str
    tables: dict[str, int]
    source: dict[str, Any]
    adopted: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-able: what was imported, that checksums matched, and what was not."""
        return {"workspace": self.workspace, "tables": dict(self.tables),
                "rows": sum(self.tables.values()), "checksums_matched": True,
                "source": dict(self.source), "dashboards_adopted": self.adopted,
                "not_imported": list(NOT_EXPORTED),
                "note": "memberships and credentials are not part of an archive; add the "
                        "members of the new workspace on this server"}


def export_workspace(accounts: Accounts, actor_id: str, workspace: str,
                     path: str | Path) -> dict[str, Any]:
    """Write ``workspace`` to an archive at ``path`` (workspace admins and server admins);
    the manifest. NotFound for a workspace the actor cannot see, Forbidden below admin."""
    role = accounts.role_in(actor_id, workspace)
    if role is None:
        raise NotFound(f"no workspace {workspace!r}")
    if not role.allows(Role.ADMIN):
        raise Forbidden(f"you cannot export workspace {workspace!r}: that needs the "
                        f"{Role.ADMIN} role there, and yours is {role}")
    return export_archive(accounts.store, workspace, path)


def export_archive(store: Store, workspace: str, path: str | Path) -> dict[str, Any]:
    """Write ``workspace`` to an archive at ``path`` (the store-level step, also the CLI's);
    the manifest. NotFound for a workspace that does not exist."""
    return write_archive(store, workspace, path)


def may_import(accounts: Accounts, actor_id: str) -> None:
    """Forbidden unless the actor is a server administrator (checked before an upload is
    read, and again by :func:`import_workspace`)."""
    if not accounts.is_server_admin(actor_id):
        user = accounts.store.user(actor_id)
        yours = user["role"] if user is not None else "unknown"
        raise Forbidden(f"only a server administrator (server-wide role {Role.ADMIN}) can "
                        f"import a workspace; your role is {yours}")


def import_workspace(accounts: Accounts, actor_id: str, path: str | Path,
                     workspace: str | None = None, name: str | None = None, *,
                     label: str = "the archive") -> Imported:
    """Import the archive at ``path`` as a new workspace (server admins only), the actor its
    admin member. ``workspace`` defaults to the archived id, ``name`` to the archived name;
    ``label`` names the file in error messages."""
    may_import(accounts, actor_id)

    def members(store: Store, ws: str) -> int:
        # through Accounts, so that the API's cache of account reads sees the change
        accounts.add_member(actor_id, ws, actor_id, Role.ADMIN)
        return adopt_dashboards(store, ws, actor_id)

    return import_archive(accounts.store, path, workspace, name, now=accounts.clock.now,
                          label=label, then=members)


def import_archive(store: Store, path: str | Path, workspace: str | None = None,
                   name: str | None = None, *, now: Callable[[], Any], label: str = "",
                   then: Callable[[Store, str], int] | None = None) -> Imported:
    """Verify and load an archive as the new workspace ``workspace`` (default: the archived
    id), renamed to ``name`` if given; ``then(store, workspace)`` runs in the same
    transaction and returns how many dashboards it adopted. Conflict when the id exists,
    InputError (naming the table) for an archive that is damaged, not an archive, or newer
    than this kpidash; nothing is written then."""
    shown = label or str(path)
    if name is not None:
        check_workspace_name(name)
    if workspace is not None:
        check_workspace_id(workspace)
    manifest = _refused(shown, path, read_manifest, path)
    record = manifest.get("workspace") if isinstance(manifest.get("workspace"), dict) else {}
    target = workspace or str(record.get("id", ""))
    check_workspace_id(target)
    adopted = 0
    with store.transaction():
        if store.workspace(target) is not None:
            raise Conflict(f"workspace {target!r} already exists; import under another id "
                           "(the API's ?id=, the CLI's --as)")
        tables = _refused(shown, path, read_archive, store, path, target, now=now())
        if name is not None:
            store.update_workspace(target, name=name, now=now())
        if then is not None:
            adopted = then(store, target)
    source = {"workspace": record.get("id"), "name": record.get("name"),
              "kpidash_version": manifest.get("kpidash_version"),
              "schema_version": manifest.get("schema_version")}
    return Imported(target, {k: int(v) for k, v in tables.items()}, source, adopted)


def _refused(shown: str, path: str | Path, fn: Callable[..., Any], *args: Any,
             **kwargs: Any) -> Any:
    """``fn(*args)``, its archive errors (the store's refusals of a damaged, foreign or newer
    archive) as InputError worded for ``shown``."""
    try:
        return fn(*args, **kwargs)
    except StoreError as exc:
        message = str(exc).replace(str(path), shown)
        if shown not in message:
            message = f"{shown} was refused: {message}"
        raise InputError(f"{message}; nothing was imported") from None


def adopt_dashboards(store: Store, workspace: str, owner_id: str) -> int:
    """Give ``owner_id`` the dashboards whose owner is not a user of this server, and drop
    unknown users from every ``shared_with``; how many were adopted."""
    adopted = 0
    known: dict[str, bool] = {}

    def exists(user_id: str) -> bool:
        if user_id not in known:
            known[user_id] = store.user(user_id) is not None
        return known[user_id]

    for doc in store.dashboards(workspace):
        shared = [u for u in doc["shared_with"] if exists(u)]
        owner = doc["owner_id"] if exists(doc["owner_id"]) else owner_id
        if owner == doc["owner_id"] and shared == list(doc["shared_with"]):
            continue
        adopted += owner != doc["owner_id"]
        store.put_dashboard(workspace, {**doc, "owner_id": owner,
                                        "shared_with": [u for u in shared if u != owner]})
    return adopted
