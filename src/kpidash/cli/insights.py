"""``kpidash insights`` and ``kpidash digest``: ranked, explained findings about stored KPIs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kpidash.cli._shared import open_engine, out, parse_instant
from kpidash.clock import FixedClock
from kpidash.errors import InputError


def register(app: typer.Typer) -> None:
    app.command()(insights)
    app.command()(digest)


At = Annotated[str | None, typer.Option("--at", help="As of this ISO instant (default: now).")]


def insights(
    user: Annotated[str | None, typer.Option(help="Rank for this user (affinity, novelty).")
                    ] = None,
    kpi: Annotated[list[str] | None, typer.Option("--kpi", help="Only these KPIs (repeat).")
                   ] = None,
    kind: Annotated[list[str] | None, typer.Option(
        "--type", help="Only these types: change, trend, anomaly, record, pace, drivers, "
        "concentration, correlation, filter_usage, data_quality (repeat).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many.")] = 10,
    all_per_kpi: Annotated[bool, typer.Option(
        "--all-per-kpi", help="Do not limit the top five to one insight per KPI.")] = False,
    at: At = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (facts and factors).")
                       ] = False,
) -> None:
    """Ranked insights: what moved, why, and how sure we are."""
    when = parse_instant(at, "--at")
    with open_engine(FixedClock(when) if when else None) as engine:
        ranked = engine.insights(user, limit=limit, kpi_ids=kpi or None, types=kind or None,
                                 diverse=not all_per_kpi)
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in ranked]))
        return
    table = Table("#", "score", "type", "insight")
    for r in ranked:
        table.add_row(str(r.rank), f"{r.score:.3g}", str(r.insight.type), r.insight.text)
    out.print(table)


def digest(
    user: Annotated[str, typer.Option(help="Whose digest.")],
    follow: Annotated[list[str] | None, typer.Option(
        "--follow", help="KPIs the user follows (repeat; default: all).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many insights.")] = 10,
    fmt: Annotated[str, typer.Option("--format", help="text, html or json.")] = "text",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write here.")] = None,
    at: At = None,
) -> None:
    """A user's digest of followed KPIs (marks its insights as shown to them)."""
    if fmt not in ("text", "html", "json"):
        raise InputError(f"--format expects text, html or json, got {fmt!r}")
    when = parse_instant(at, "--at")
    with open_engine(FixedClock(when) if when else None) as engine:
        d = engine.digest(user, followed=follow or [], limit=limit)
    text = (d.text() if fmt == "text" else d.html() if fmt == "html"
            else json.dumps(d.to_dict(), indent=2))
    if out_file:
        out_file.write_text(text, encoding="utf-8")
    else:
        out.print(text, markup=False, highlight=False)
