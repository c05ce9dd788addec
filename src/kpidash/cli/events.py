"""``kpidash annotations …``: known events (launches, holidays, outages) that cleaning respects."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from kpidash.cli._shared import open_engine, out, parse_instant

annotations_app = typer.Typer(help="Known events; points inside them are never auto-corrected.",
                              no_args_is_help=True)


@annotations_app.command("add")
def add(
    label: Annotated[str, typer.Argument(help="What happened, e.g. 'Black Friday'.")],
    start: Annotated[str, typer.Option("--from", help="ISO start (inclusive).")],
    end: Annotated[str, typer.Option("--to", help="ISO end (exclusive).")],
    kpi: Annotated[str | None, typer.Option(help="Only this KPI (default: every KPI).")] = None,
    kind: Annotated[str, typer.Option(help="event, launch, holiday, outage …")] = "event",
) -> None:
    """Record a known event."""
    s, e = parse_instant(start, "--from"), parse_instant(end, "--to")
    assert s is not None and e is not None
    engine = open_engine()
    try:
        ann = engine.annotate(label, s, e, kind=kind, kpi_id=kpi)
        out.print(f"annotation {ann.id} added: {label} [{s.isoformat()}, {e.isoformat()})",
                  markup=False)
    finally:
        engine.close()


@annotations_app.command("list")
def list_(
    kpi: Annotated[str | None, typer.Option(help="Those applying to this KPI.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List annotations."""
    engine = open_engine()
    try:
        items = engine.annotations(kpi)
        if as_json:
            out.print_json(json.dumps([
                {"id": a.id, "label": a.label, "kind": a.kind, "kpi_id": a.kpi_id,
                 "start": a.start.isoformat(), "end": a.end.isoformat()} for a in items]))
            return
        table = Table("id", "label", "kind", "kpi", "from", "to")
        for a in items:
            table.add_row(str(a.id), a.label, a.kind, a.kpi_id or "(all)", a.start.isoformat(),
                          a.end.isoformat())
        out.print(table)
    finally:
        engine.close()


@annotations_app.command("delete")
def delete(annotation_id: Annotated[int, typer.Argument(help="Id from 'annotations list'.")],
           ) -> None:
    """Delete an annotation."""
    engine = open_engine()
    try:
        engine.delete_annotation(annotation_id)
        out.print(f"annotation {annotation_id} deleted", markup=False)
    finally:
        engine.close()
