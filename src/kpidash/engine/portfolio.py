"""One workspace's rows of the portfolio view (:mod:`kpidash.core.portfolio`).

The API gathers these from each workspace the user belongs to, one engine at a time, and lets
the core rank them. Periods are those of the engine's time zone (the workspace's): the
current period is the last one complete at ``now``, as on a dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kpidash.core import aggregate as agg
from kpidash.core.portfolio import MAX_SPARKLINE, MissingKpi, PortfolioRow, WorkspaceInfo
from kpidash.errors import QueryError
from kpidash.model import Grain, Series

if TYPE_CHECKING:
    from kpidash.engine import Engine


def workspace_rows(engine: Engine, info: WorkspaceInfo, kpi_ids: Sequence[str],
                   grain: Grain | str, now: datetime, *, periods: int = 12,
                   ) -> list[PortfolioRow | MissingKpi]:
    """For each of ``kpi_ids`` (in order): the workspace's row, or :class:`MissingKpi` when
    the workspace does not define it.

    A row holds the value of the last period complete at ``now`` (in the engine's time zone),
    the value of the period before and the last ``periods`` values (2 ≤ periods ≤
    :data:`~kpidash.core.portfolio.MAX_SPARKLINE`, oldest first) as the sparkline; a period
    without data is None. The KPIs present are read in one query. ``insight`` is left None
    (see :func:`top_insight`).
    """
    if not 2 <= periods <= MAX_SPARKLINE:
        raise QueryError(f"periods must be between 2 and {MAX_SPARKLINE} (the current period "
                         f"and at least the previous one); got {periods}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise QueryError(f"now must be timezone-aware, got {now.isoformat()}")
    try:
        grain = Grain(grain)
    except ValueError:
        raise QueryError(f"unknown grain {grain!r}; use one of "
                         f"{', '.join(g.value for g in Grain)}") from None
    present = list(dict.fromkeys(k for k in kpi_ids if k in engine.registry))
    series: dict[str, Series] = {}
    if present:
        end = agg.period_start(now, grain, engine.timezone)  # only complete periods
        start = agg.periods_back(end, grain, periods, engine.timezone)
        series = {k: s[0] for k, s in engine.query_many(present, grain, start, end).items()}
    out: list[PortfolioRow | MissingKpi] = []
    for kpi_id in kpi_ids:
        s = series.get(kpi_id)
        if s is None:
            out.append(MissingKpi(info, kpi_id))
            continue
        kpi = engine.registry.get(kpi_id)
        values = [float(v) for v in s.values.tolist()][-periods:]
        out.append(PortfolioRow(
            workspace=info, kpi_id=kpi_id, title=kpi.name, unit=kpi.unit,
            higher_is_better=bool(kpi.higher_is_better), tz=s.tz,
            period=s.labels[-1] if s.labels else None,
            value=values[-1] if values else None,
            previous=values[-2] if len(values) > 1 else None,
            sparkline=tuple(values), target=kpi.target))
    return out


def top_insight(engine: Engine, kpi_id: str, user: str | None) -> dict[str, Any] | None:
    """The workspace's best ranked insight about ``kpi_id`` for ``user`` (``Ranked.to_dict()``,
    its ``facts`` the evidence), or None when there is none. Nothing is marked as shown.

    Insights read a year of data (~0.4–1.4 s on the demo): callers cache the answer.
    """
    ranked = engine.insights(user, limit=None, kpi_ids=[kpi_id])
    # suggestions from the user's interactions may be about other KPIs: skip them
    best = next((r for r in ranked if r.insight.kpi_id == kpi_id), None)
    return best.to_dict() if best is not None else None


__all__ = ["top_insight", "workspace_rows"]
