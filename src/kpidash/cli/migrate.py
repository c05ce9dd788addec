"""``kpidash migrate --from URL --to URL``: copy a whole store into a new, empty one — DuckDB to
PostgreSQL or back — and prove that nothing was lost (rows and checksums of every table read
back from the target). The copy logic is ``kpidash.store.migrate`` (stores opened by
``kpidash.engine.migrate``); this module shows progress and prints the comparison."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kpidash.cli._shared import err, out, progress


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)


def migrate(
    source: Annotated[str, typer.Option(
        "--from", metavar="URL", help="Store to copy: duckdb:PATH (or a path) or "
        "postgresql://user:password@host:port/database.")],
    target: Annotated[str, typer.Option(
        "--to", metavar="URL", help="New, empty store to copy into (created if it is a new "
        "DuckDB file; a PostgreSQL database must exist).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Copy every workspace, user, session, membership and ingest token of one store into a
    new, empty one (one transaction), then compare every table's rows and checksum.

    Stop the servers that write to the source first. Exit 1 if any table differs.
    """
    from rich.table import Table

    from kpidash.engine.migrate import GLOBAL_SCOPE, migrate_store

    with progress("migrating") as update:
        def step(phase: str, done: int, total: int) -> None:
            # one bar: the copy is the first half of the work, the read-back the second
            update(done + (total if phase == "verify" else 0), 2 * total)

        report = migrate_store(source, target, progress=step)
    if as_json:
        out.print_json(json.dumps({
            "source": report.source, "target": report.target,
            "schema_version": report.schema_version, "workspaces": list(report.workspaces),
            "ok": report.ok,
            "tables": [{"scope": c.scope, "table": c.table, "source_rows": c.source_rows,
                        "target_rows": c.target_rows, "source_sha256": c.source_sha256,
                        "target_sha256": c.target_sha256, "ok": c.ok} for c in report.tables]}))
    else:
        table = Table("workspace", "table", title=f"{report.source} → {report.target}")
        table.add_column("rows", justify="right")
        table.add_column("checksum")
        for c in report.tables:
            rows = (f"{c.source_rows:,}" if c.source_rows == c.target_rows
                    else f"{c.source_rows:,} → {max(c.target_rows, 0):,}")
            table.add_row(c.scope if c.scope != GLOBAL_SCOPE else "(server-wide)", c.table,
                          rows, "[green]match[/]" if c.ok else "[red]MISMATCH[/]")
        out.print(table)
    if not report.ok:
        bad = ", ".join(f"{c.scope}/{c.table}" for c in report.mismatches)
        err.print(f"error: {len(report.mismatches)} table(s) differ after the copy: {bad}",
                  markup=False)
        raise typer.Exit(1)
    if not as_json:
        out.print(f"copied {report.rows:,} rows of {len(report.workspaces)} workspace(s) and "
                  f"the server-wide tables; every table matches", markup=False)
