"""``kpidash trend``: how a stored KPI moved — change, significant trend, trend changes."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kpidash.cli._shared import FilterOption, open_engine, out, parse_filters


def register(app: typer.Typer) -> None:
    app.command()(trend)


def trend(
    kpi: Annotated[str, typer.Argument(help="KPI id.")],
    grain: Annotated[str, typer.Option(help="day, week, month, quarter …")] = "week",
    filters: FilterOption = None,
    by: Annotated[str | None, typer.Option("--by", help="One report per value of this dim.")
                  ] = None,
    window: Annotated[int | None, typer.Option(help="Periods the trend test looks back over.")
                      ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Change vs the previous period and a year ago, and whether the KPI is really trending."""
    engine = open_engine()
    try:
        reports = engine.trend(kpi, grain, filters=parse_filters(filters), group_by=by,
                               window=window)
        if as_json:
            out.print_json(json.dumps([r.to_dict() for r in reports]))
            return
        for r in reports:
            d = r.to_dict()
            ch, tr = d["change"], d["trend"]
            head = f"{kpi}" + (f" [{r.group}]" if r.group else "")
            out.print(f"{head}: {grain} of {ch['current_period']}: {_num(ch['current_value'])}",
                      markup=False)
            for name in ("previous", "year_ago"):
                c = ch[name]
                pct = "n/a" if c["percent"] is None else f"{c['percent']:+.1f} %"
                fav = {True: "good", False: "bad", None: ""}[c["favourable"]]
                out.print(f"  vs {name.replace('_', ' ')}: {pct} {fav}", markup=False)
            p = "n/a" if tr["p_value"] is None else f"{tr['p_value']:.3g}"
            slope = "" if tr["slope_pct"] is None else f", {tr['slope_pct']:+.2f} % per {grain}"
            out.print(f"  trend over {tr['window_periods']} {grain}s: {tr['label']} "
                      f"(Mann-Kendall p = {p}{slope})", markup=False)
            for b in d["trend_changes"]["breaks"]:
                if b["significant"]:
                    out.print(f"  new trend from {b['label']}: slope {b['slope_before']:+.4g} → "
                              f"{b['slope_after']:+.4g} per {grain}", markup=False)
    finally:
        engine.close()


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
