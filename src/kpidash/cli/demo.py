"""``kpidash demo``: load the deterministic SaaS demo and print (or keep refreshing) the dashboard."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from kpidash.cli._shared import err, open_engine, progress
from kpidash.clock import FixedClock, SystemClock
from kpidash.engine import Engine


def register(app: typer.Typer) -> None:
    app.command()(demo)


DEMO_CHARTS = (("revenue", "region"), ("customer_churn_rate", None), ("signups", None))


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
    engine = open_engine(clock)
    try:
        engine.register(load_pack("saas"))
        data = demo_data.generate(last_day, days=days)
        with progress("loading demo data") as update:
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
    board = engine.dashboard(grain=grain, charts=DEMO_CHARTS, title="kpidash demo",
                             recommendations=5)
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
