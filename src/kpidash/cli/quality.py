"""``kpidash quality`` and ``kpidash corrections``: data-quality reports and audited fixes."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from kpidash.cli._shared import open_engine, out, parse_instant


def register(app: typer.Typer) -> None:
    app.command()(quality)
    app.command()(corrections)


def quality(
    kpi: Annotated[str, typer.Argument(help="A simple KPI id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full JSON report.")] = False,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Store the proposed corrections (raw values are kept).")] = False,
) -> None:
    """Check a KPI's stored data: gaps, duplicates, late and stale data, outliers, scale errors."""
    engine = open_engine()
    try:
        report = engine.quality(kpi)
        if apply:
            n = engine.apply_corrections(kpi)
            report = engine.quality(kpi)
            out.print(f"{n} correction(s) stored for {kpi}", markup=False)
        data = report.to_dict()
        if as_json:
            out.print_json(json.dumps(data))
            return
        out.print(f"{kpi}: {data['series']} series, {data['points']:,} points, "
                  f"{data['first_ts']} … {data['last_ts']}, completeness "
                  f"{data['completeness_pct']} %, stale series {data['stale_series']}, "
                  f"corrections proposed {data['corrections']['proposed']}, stored "
                  f"{data['corrections']['stored']}", markup=False)
        table = Table("issue", "count")
        for code, count in data["issue_counts"].items():
            table.add_row(code, f"{count:,}")
        out.print(table)
        shown = 0
        for s in report.series:
            for c in s.result.corrections:
                if shown < 20:
                    dims = ", ".join(f"{k}={v}" for k, v in s.dims.items()) or "(all)"
                    out.print(f"  {dims} {str(c.ts)[:19]}: {c.reason} [{c.method}]", markup=False)
                shown += 1
        if shown > 20:
            out.print(f"  … and {shown - 20} more (use --json)", markup=False)
    finally:
        engine.close()


def corrections(
    kpi: Annotated[str, typer.Argument(help="KPI id.")],
    revert: Annotated[bool, typer.Option("--revert", help="Restore the raw values.")] = False,
    start: Annotated[str | None, typer.Option("--from", help="Only from this instant.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Only before this instant.")] = None,
    history: Annotated[bool, typer.Option("--history", help="Show the audit trail.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """List a KPI's corrected points (raw value beside), show the audit trail, or revert."""
    engine = open_engine()
    try:
        if revert:
            n = engine.revert_corrections(kpi, parse_instant(start, "--from"),
                                          parse_instant(end, "--to"))
            out.print(f"{n} correction(s) reverted for {kpi}", markup=False)
            return
        rows = (engine.correction_history(kpi) if history else engine.corrections(kpi)).to_pylist()
        if as_json:
            out.print_json(json.dumps(rows, default=str))
            return
        if history:
            table = Table("when", "action", "series", "ts", "raw", "corrected", "method")
            for r in rows:
                table.add_row(str(r["logged_at"])[:19], r["action"],
                              r["series_key"].replace("\x1f", " "), str(r["ts"])[:19],
                              f"{r['raw_value']:g}", f"{r['corrected_value']:g}", r["method"])
            out.print(table)
            return
        table = Table("series", "ts", "raw", "stored", "method", "reason")
        for r in rows:
            table.add_row(r["series_key"].replace("\x1f", " "), str(r["ts"])[:19],
                          f"{r['raw_value']:g}", f"{r['value']:g}", r["correction"] or "",
                          r["correction_reason"] or "")
        out.print(table)
    finally:
        engine.close()
