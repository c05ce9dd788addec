"""The ``kpidash`` command. It calls the engine, never a store directly.

Errors print as one readable line (exit 1; 2 for usage errors) unless ``--debug`` is given.
Long work (file ingestion, the demo load) shows a progress bar on stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from kpidash.clock import Clock, FixedClock, SystemClock
from kpidash.core.registry import parse_yaml, validate_definitions
from kpidash.core.report import Report
from kpidash.engine import Engine
from kpidash.errors import KpidashError, ValidationFailed
from kpidash.settings import Settings

app = typer.Typer(help="kpidash — KPI intelligence engine.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
kpis_app = typer.Typer(help="Manage KPI definitions.", no_args_is_help=True)
app.add_typer(kpis_app, name="kpis")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_state: dict[str, Any] = {"debug": False, "overrides": {}}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    db: Annotated[str | None, typer.Option(help="Store path or URL [env KPIDASH_DB].")] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone of periods [KPIDASH_TIMEZONE].")] = None,
    input_tz: Annotated[str | None, typer.Option(
        "--input-tz", help="Zone for timestamps without offset [KPIDASH_INPUT_TIMEZONE].")] = None,
) -> None:
    _state["debug"] = debug
    _state["overrides"] = {k: v for k, v in
                           {"db": db, "timezone": tz, "input_timezone": input_tz}.items() if v}


def main() -> None:
    """Console-script entry point: one readable line per error unless --debug."""
    try:
        rc = app(standalone_mode=False)  # returns the code of a typer.Exit in this mode
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:
        if _state["debug"] or "--debug" in sys.argv:
            raise
        _fail(exc)


def _fail(exc: BaseException) -> NoReturn:
    import click

    if isinstance(exc, click.exceptions.UsageError):
        err.print(f"usage error: {exc.format_message()}", markup=False)
        sys.exit(2)
    if isinstance(exc, click.exceptions.ClickException):
        err.print(f"error: {exc.format_message()}", markup=False)
        sys.exit(exc.exit_code)
    if isinstance(exc, ValidationFailed):
        _print_report(exc.report, header=str(exc).split(":")[0])
        sys.exit(1)
    if isinstance(exc, KpidashError):
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        err.print(f"error: setting {'.'.join(map(str, first['loc']))}: {first['msg']}",
                  markup=False)
        sys.exit(1)
    err.print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)",
              markup=False)
    sys.exit(1)


def _print_report(report: Report, header: str, limit: int = 20) -> None:
    err.print(f"error: {header}: {report.error_count} error(s)", markup=False)
    for issue in report.issues[:limit]:
        err.print(f"  {issue}", markup=False)
    rest = report.error_count + len(report.warnings) - min(limit, len(report.issues))
    if rest > 0:
        err.print(f"  … and {rest} more", markup=False)


def _settings(**extra: Any) -> Settings:
    return Settings(**{**_state["overrides"], **{k: v for k, v in extra.items() if v is not None}})


def _engine(clock: Clock | None = None, **extra: Any) -> Engine:
    return Engine.from_settings(_settings(**extra), clock)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int | None], None]]:
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeRemainingColumn(), console=err, transient=False,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


# -- kpis ----------------------------------------------------------------------------------


@kpis_app.command("validate")
def kpis_validate(file: Annotated[Path, typer.Argument(help="YAML file of KPI definitions.")],
                  ) -> None:
    """Check a KPI definition file; print every problem; exit 1 when any is an error."""
    if not file.is_file():
        raise KpidashError(f"no such file: {file}")
    raw = parse_yaml(file.read_text(encoding="utf-8"), source=str(file))
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
    engine = _engine()
    try:
        if pack:
            engine.register(load_pack(pack))
        if file:
            if not file.is_file():
                raise KpidashError(f"no such file: {file}")
            engine.register(load_registry(file.read_text(encoding="utf-8"), source=str(file)))
        out.print(f"{len(engine.registry)} KPI(s) registered in {engine.store.url}", markup=False)
    finally:
        engine.close()


@kpis_app.command("list")
def kpis_list() -> None:
    """List the registered KPIs."""
    engine = _engine()
    try:
        table = Table("id", "name", "kind", "aggregation", "unit", "dimensions", "formula")
        for k in engine.registry:
            table.add_row(k.id, k.name, str(k.kind), str(k.aggregation) if k.kind == "simple"
                          else "", k.unit, ", ".join(k.dimensions), k.formula)
        out.print(table)
    finally:
        engine.close()


# -- ingest and query ----------------------------------------------------------------------


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON file in long format.")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv, parquet or json.")] = None,
    kpis: Annotated[Path | None, typer.Option(help="Register these KPI definitions first.")] = None,
    pack: Annotated[str | None, typer.Option(help="Register this KPI pack first.")] = None,
) -> None:
    """Ingest points (timestamp, kpi, value, one column per dimension). All or nothing."""
    engine = _engine(kpis=kpis)
    try:
        if pack:
            from kpidash.packs import load_pack

            engine.register(load_pack(pack))
        with _progress(f"ingesting {file.name}") as update:
            result = engine.ingest_file(file, fmt=fmt, progress=update)
        out.print(f"{result.rows:,} rows read, {result.written:,} points written "
                  f"({result.new_series:,} new series, {result.corrected:,} corrected, "
                  f"{result.warnings:,} warnings) into {engine.store.url}", markup=False)
    finally:
        engine.close()


@app.command()
def query(
    kpi: Annotated[str, typer.Argument(help="KPI id.")],
    grain: Annotated[str, typer.Option(help="minute, hour, day, week, month, quarter, year")] = "day",
    start: Annotated[str | None, typer.Option("--from", help="ISO start (inclusive).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO end (exclusive).")] = None,
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", help="dim=value (repeat; same dim twice = either value).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Group by this dimension.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Aggregate a KPI at a grain, optionally filtered and grouped by dimensions."""
    engine = _engine()
    try:
        flt: dict[str, list[str]] = {}
        for f in filters or []:
            if "=" not in f:
                raise KpidashError(f"--filter expects dim=value, got {f!r}")
            d, v = f.split("=", 1)
            flt.setdefault(d.strip(), []).append(v.strip())
        series = engine.query(kpi, grain, _instant(start, "--from"), _instant(end, "--to"),
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


def _instant(text: str | None, opt: str) -> datetime | None:
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise KpidashError(f"{opt} expects an ISO date or timestamp, got {text!r}") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _fmt(v: float) -> str:
    return "—" if v != v else f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"


# -- demo ----------------------------------------------------------------------------------

DEMO_CHARTS = (("revenue", "region"), ("customer_churn_rate", None), ("signups", None))


@app.command()
def demo(
    days: Annotated[int, typer.Option(min=30, max=3650, help="Days of history.")] = 730,
    grain: Annotated[str, typer.Option(help="Grain of the cards.")] = "day",
    watch: Annotated[bool, typer.Option(help="Keep adding a day of data and refreshing.")] = False,
    interval: Annotated[float, typer.Option(min=0.0, help="Seconds between refreshes.")] = 5.0,
    ticks: Annotated[int | None, typer.Option(min=1, help="Stop --watch after N refreshes.")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the JSON here.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Write the incident manifest here.")] = None,
    end: Annotated[str | None, typer.Option(help="Last demo day (default: yesterday).")] = None,
) -> None:
    """Load the deterministic SaaS demo into the store and print the dashboard JSON."""
    from kpidash import demo as demo_data
    from kpidash.packs import load_pack

    last_day = (datetime.fromisoformat(end).date() if end
                else SystemClock().now().date() - timedelta(days=1))
    # Simulated time: the dashboard is computed as of the end of the last demo day.
    clock = FixedClock(datetime.combine(last_day + timedelta(days=1), datetime.min.time(), UTC))
    engine = _engine(clock)
    try:
        engine.register(load_pack("saas"))
        data = demo_data.generate(last_day, days=days)
        with _progress("loading demo data") as update:
            result = engine.ingest_table(data.points, source="demo")
            update(result.rows, result.rows)
        err.print(f"demo: {result.written:,} points for {days} days up to {last_day} in "
                  f"{engine.store.url}", markup=False)
        if manifest:
            manifest.write_text(demo_data.manifest_json(data), encoding="utf-8")
        _emit(engine, grain, out_file)
        if watch:
            asyncio.run(_watch(engine, clock, last_day, grain, interval, ticks, out_file))
    finally:
        engine.close()


def _emit(engine: Engine, grain: str, out_file: Path | None) -> None:
    board = engine.dashboard(grain=grain, charts=DEMO_CHARTS, title="kpidash demo")
    text = json.dumps(board, indent=2, allow_nan=False)
    if out_file:
        out_file.write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


async def _watch(engine: Engine, clock: FixedClock, last_day: Any, grain: str, interval: float,
                 ticks: int | None, out_file: Path | None) -> None:
    """Each tick appends the next simulated day and re-renders (Ctrl-C stops)."""
    from kpidash import demo as demo_data

    n = 0
    day = last_day
    while ticks is None or n < ticks:
        await asyncio.sleep(interval)
        day = day + timedelta(days=1)
        engine.ingest_table(demo_data.generate_days(day, day), source="demo")
        clock.advance(timedelta(days=1))
        _emit(engine, grain, out_file)
        err.print(f"demo: refreshed with {day}", markup=False)
        n += 1


if __name__ == "__main__":
    main()
