"""``kpidash workspaces …``: list, create, export, import and delete workspaces of the store
named by KPIDASH_DB (``--db``), as its operator — no login: whoever can open the database file
administers it. The API does the same for signed-in administrators
(``/api/v1/workspaces``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from kpidash.cli._shared import out, progress, settings
from kpidash.errors import Conflict, InputError, NotFound
from kpidash.model import DEFAULT_WORKSPACE

workspaces_app = typer.Typer(
    help="Workspaces: list, create, export to one file, import, delete.", no_args_is_help=True)


@contextmanager
def _store() -> Iterator[Any]:
    """The engine of the configured store (its store and clock are what the commands use)."""
    from kpidash.engine import Engine

    with Engine.from_settings(settings()) as engine:
        yield engine


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    size = n / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"


@workspaces_app.command("list")
def workspaces_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the workspaces with their settings and number of KPIs."""
    from rich.table import Table

    with _store() as engine:
        store = engine.store
        rows = [{**w, "kpis": len(store.get_kpis(w["id"]))} for w in store.workspaces()]
    if as_json:
        out.print_json(json.dumps(rows, default=lambda v: v.isoformat()))
        return
    table = Table("id", "name", "time zone", "currency", "KPIs", "created")
    for w in rows:
        s = w["settings"]
        table.add_row(w["id"], w["name"], s["timezone"], s["currency"], str(w["kpis"]),
                      w["created_at"].strftime("%Y-%m-%d %H:%M UTC"))
    out.print(table)


@workspaces_app.command("create")
def workspaces_create(
    workspace_id: Annotated[str, typer.Argument(
        metavar="ID", help="Lower-case letters, digits, '_' or '-' (at most 63).")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/Paris.")
                        ] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code, e.g. EUR.")] = None,
    fiscal_year_start: Annotated[int | None, typer.Option(
        help="First month of the fiscal year (1-12).")] = None,
    theme: Annotated[str | None, typer.Option(help="Default dashboard theme.")] = None,
) -> None:
    """Create an empty workspace."""
    given = {"timezone": timezone, "currency": currency, "fiscal_year_start": fiscal_year_start,
             "default_theme": theme}
    with _store() as engine:
        engine.store.create_workspace(workspace_id, name or workspace_id,
                                      {k: v for k, v in given.items() if v is not None},
                                      engine.clock.now())
        record = engine.store.workspace(workspace_id)
    s = record["settings"]
    out.print(f"workspace {workspace_id!r} ({record['name']}) created: {s['timezone']}, "
              f"{s['currency']}, fiscal year from month {s['fiscal_year_start']}", markup=False)


@workspaces_app.command("export")
def workspaces_export(
    workspace_id: Annotated[str, typer.Argument(metavar="ID", help="The workspace to export.")],
    file: Annotated[Path, typer.Argument(help="Archive to write (e.g. acme.kpidash.zip).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")
                     ] = False,
) -> None:
    """Write a workspace (definitions, data, rules, alerts, dashboards …) to one archive file;
    memberships and credentials are not exported."""
    from kpidash.auth.transfer import export_archive

    if file.exists() and not force:
        raise InputError(f"{file} exists; choose another file or pass --force to overwrite it")
    if not file.parent.is_dir():
        raise InputError(f"cannot write {file}: no directory {file.parent}")
    part = file.with_name(file.name + ".part")  # FILE appears only when complete
    try:
        with _store() as engine, progress(f"exporting {workspace_id}") as update:
            if engine.store.workspace(workspace_id) is None:
                raise NotFound(f"no workspace {workspace_id!r} in {engine.store.url} (see "
                               "`kpidash workspaces list`)")
            update(0, None)
            manifest = export_archive(engine.store, workspace_id, part)
            rows = sum(int(t["rows"]) for t in manifest["tables"].values())
            update(rows, rows)
        os.replace(part, file)
    finally:
        part.unlink(missing_ok=True)
    out.print(f"exported workspace {workspace_id!r} ({manifest['workspace']['name']}): "
              f"{rows:,} rows in {len(manifest['tables'])} tables to {file} "
              f"({_size(file.stat().st_size)}); memberships and credentials are not exported",
              markup=False)


@workspaces_app.command("import")
def workspaces_import(
    file: Annotated[Path, typer.Argument(help="An archive written by export.")],
    as_id: Annotated[str | None, typer.Option(
        "--as", metavar="ID", help="Id of the new workspace (default: the archived id).")
                     ] = None,
    name: Annotated[str | None, typer.Option(help="Its name (default: the archived name).")
                    ] = None,
    admin: Annotated[str | None, typer.Option(
        metavar="USERNAME", help="Make this user its admin member and the owner of "
        "dashboards whose owner this server does not know.")] = None,
) -> None:
    """Create a workspace from an archive; every table's row count and checksum are verified
    first, and nothing is written if one does not match."""
    from kpidash.auth import Role
    from kpidash.auth.transfer import adopt_dashboards, import_archive

    if not file.is_file():
        raise InputError(f"no such file: {file}")
    with _store() as engine, progress(f"importing {file.name}") as update:
        store = engine.store
        user = None
        if admin is not None:
            user = store.user_by_name(admin)
            if user is None:
                raise NotFound(f"--admin: no user named {admin!r} (see `kpidash users list`)")

        def members(st: Any, ws: str) -> int:
            if user is None:
                return 0
            st.put_membership(ws, user["id"], str(Role.ADMIN), engine.clock.now())
            return adopt_dashboards(st, ws, user["id"])

        update(0, None)
        done = import_archive(store, file, as_id, name, now=engine.clock.now, then=members)
        rows = sum(done.tables.values())
        update(rows, rows)
        record = store.workspace(done.workspace)
    who = (f"{admin} is its admin" + (f" and owns {done.adopted} adopted dashboard(s)"
                                      if done.adopted else "")
           if admin else "no members (server admins see it; add members with the API)")
    out.print(f"imported workspace {done.workspace!r} ({record['name']}) from {file}: "
              f"{rows:,} rows in {len(done.tables)} tables, checksums matched; {who}",
              markup=False)


@workspaces_app.command("delete")
def workspaces_delete(
    workspace_id: Annotated[str, typer.Argument(metavar="ID", help="The workspace to delete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: everything it holds is deleted.")
                   ] = False,
) -> None:
    """Delete a workspace and everything it holds (data, rules, dashboards, memberships)."""
    if workspace_id == DEFAULT_WORKSPACE:
        raise Conflict(f"the {DEFAULT_WORKSPACE!r} workspace cannot be deleted; it is where "
                       "single-business installs keep their data")
    with _store() as engine:
        if engine.store.workspace(workspace_id) is None:
            raise NotFound(f"no workspace {workspace_id!r} in {engine.store.url} (see "
                           "`kpidash workspaces list`)")
        if not yes:
            raise InputError(f"deleting workspace {workspace_id!r} removes all its data and "
                             "cannot be undone; pass --yes to confirm (export it first to "
                             "keep a copy)")
        counts = engine.store.delete_workspace(workspace_id)
    rows = sum(n for table, n in counts.items() if table != "workspaces")
    out.print(f"deleted workspace {workspace_id!r} and {rows:,} rows it held", markup=False)


__all__ = ["workspaces_app"]
