"""``kpidash ingest`` and ``kpidash query``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kpidash.cli._shared import FilterOption, open_engine, out, parse_filters, parse_instant, progress
from kpidash.errors import InputError


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(query)


def ingest(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON file in long format.")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv, parquet or json.")] = None,
    kpis: Annotated[Path | None, typer.Option(help="Register these KPI definitions first.")] = None,
    pack: Annotated[str | None, typer.Option(help="Register this KPI pack first.")] = None,
) -> None:
    """Ingest points (timestamp, kpi, value, one column per dimension). All or nothing."""
    engine = open_engine(kpis=kpis)
    try:
        if pack:
            from kpidash.packs import load_pack

            engine.register(load_pack(pack))
        with progress(f"ingesting {file.name}") as update:
            result = engine.ingest_file(file, fmt=fmt, progress=update)
        if result.rows == 0:  # nothing was written: there was nothing
            raise InputError(f"{file.name} is empty: no points; expected rows of timestamp, "
                             "kpi, value and one column per dimension")
        out.print(f"{result.rows:,} rows read, {result.written:,} points written "
                  f"({result.new_series:,} new series, {result.corrected:,} corrected, "
                  f"{result.warnings:,} warnings) into {engine.store.url}", markup=False)
    finally:
        engine.close()


def query(
    kpi: Annotated[str, typer.Argument(help="KPI id.")],
    grain: Annotated[str, typer.Option(help="minute, hour, day, week, month, quarter, year")] = "day",
    start: Annotated[str | None, typer.Option("--from", help="ISO start (inclusive).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO end (exclusive).")] = None,
    filters: FilterOption = None,
    by: Annotated[str | None, typer.Option("--by", help="Group by this dimension.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Aggregate a KPI at a grain, optionally filtered and grouped by dimensions."""
    engine = open_engine()
    try:
        flt = parse_filters(filters)
        series = engine.query(kpi, grain, parse_instant(start, "--from"), parse_instant(end, "--to"),
                              filters=flt, group_by=by)
        if as_json:
            out.print_json(json.dumps([s.to_dict() for s in series]))
            return
        table = Table("period", *[s.group or kpi for s in series])
        for i, label in enumerate(series[0].labels):
            table.add_row(label, *[_fmt(s.values[i]) for s in series])
        out.print(table)
    finally:
        engine.close()


def _fmt(v: float) -> str:
    return "—" if v != v else f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
