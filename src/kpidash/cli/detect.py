"""``kpidash detect``: find and store anomalies of a stored KPI (each one kept once)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from kpidash.cli._shared import FilterOption, open_engine, out, parse_filters


def register(app: typer.Typer) -> None:
    app.command()(detect)


def detect(
    kpi: Annotated[str, typer.Argument(help="KPI id.")],
    grain: Annotated[str, typer.Option(help="minute, hour, day, week, month …")] = "day",
    filters: FilterOption = None,
    by: Annotated[str | None, typer.Option("--by", help="Score each value of this dimension.")
                  ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Dask scheduler (tcp://host:8786) to score the slices on "
        "[KPIDASH_DASK_SCHEDULER]; same results as without.")] = None,
) -> None:
    """Score a KPI's complete periods for anomalies (causal, seasonal, robust) and store them."""
    from kpidash.cli._shared import settings

    engine = open_engine()
    try:
        conf = settings()
        address = scheduler or conf.dask_scheduler
        if address:
            from kpidash.engine.distributed import Cluster, detect_anomalies, quiet_logs

            quiet_logs()
            with Cluster.connect(address, timeout=conf.dask_timeout_seconds) as cluster:
                result = detect_anomalies(engine, cluster, kpi, grain,
                                          filters=parse_filters(filters), group_by=by)
        else:
            result = engine.detect_anomalies(kpi, grain, filters=parse_filters(filters),
                                             group_by=by)
        if as_json:
            out.print_json(json.dumps({"new": result.new, "anomalies": result.found}))
            return
        table = Table("slice", "period", "actual", "expected", "severity", "kind", "good?")
        for a in result.found:
            table.add_row(a["slice"] or "(all)", str(a["timestamp"])[:19], f"{a['actual']:,.4g}",
                          f"{a['expected']:,.4g}", a["severity"], a["kind"],
                          "yes" if a["favourable"] else "no")
        out.print(table)
        out.print(f"{len(result.found)} anomalies, {result.new} new", markup=False)
    finally:
        engine.close()
