"""``kpidash kpis …``: validate, load and list KPI definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kpidash.cli._shared import err, open_engine, out
from kpidash.core.registry import parse_yaml, validate_definitions
from kpidash.errors import InputError, KpidashError, bad_byte

kpis_app = typer.Typer(help="Manage KPI definitions.", no_args_is_help=True)


def _read(file: Path) -> str:
    if not file.is_file():
        raise KpidashError(f"no such file: {file}")
    data = file.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{file}: not valid UTF-8 text ({bad_byte(exc)}); save the file as "
                         "UTF-8") from None


@kpis_app.command("validate")
def kpis_validate(file: Annotated[Path, typer.Argument(help="YAML file of KPI definitions.")],
                  ) -> None:
    """Check a KPI definition file; print every problem; exit 1 when any is an error."""
    raw = parse_yaml(_read(file), source=str(file))
    kpis, report = validate_definitions(raw, source=str(file))
    for issue in report.issues:
        (err if issue.level == "error" else out).print(str(issue), markup=False)
    if not report.ok:
        err.print(f"{file}: {report.error_count} error(s), {len(report.warnings)} warning(s)",
                  markup=False)
        raise typer.Exit(1)
    out.print(f"{file}: {len(kpis)} KPI(s) valid, {len(report.warnings)} warning(s)",
              markup=False)


@kpis_app.command("load")
def kpis_load(
    file: Annotated[Path | None, typer.Argument(help="YAML file of KPI definitions.")] = None,
    pack: Annotated[str | None, typer.Option(help="Load a KPI pack, e.g. 'saas'.")] = None,
) -> None:
    """Register KPI definitions (a file and/or a pack) in the store."""
    from kpidash.core.registry import load_registry
    from kpidash.packs import load_pack

    if file is None and pack is None:
        raise KpidashError("give a YAML file or --pack NAME")
    engine = open_engine()
    try:
        if pack:
            engine.register(load_pack(pack))
        if file:
            engine.register(load_registry(_read(file), source=str(file)))
        out.print(f"{len(engine.registry)} KPI(s) registered in {engine.store.url}", markup=False)
    finally:
        engine.close()


@kpis_app.command("list")
def kpis_list() -> None:
    """List the registered KPIs."""
    engine = open_engine()
    try:
        table = Table("id", "name", "kind", "aggregation", "unit", "dimensions", "formula")
        for k in engine.registry:
            table.add_row(k.id, k.name, str(k.kind), str(k.aggregation) if k.kind == "simple"
                          else "", k.unit, ", ".join(k.dimensions), k.formula)
        out.print(table)
    finally:
        engine.close()
