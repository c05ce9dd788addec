"""The portfolio view: up to five KPIs, each compared across every workspace the caller
belongs to (server administrators: all), ranked — and nothing of any other workspace.

Each workspace is read through its own state (:meth:`AppState.scoped`) and engine, under the
lock like every engine call; the ranking and the widgets are :mod:`kpidash.core.portfolio`.
Top insights are optional (``insights=true``): they take ~0.4–1.4 s per workspace, so each
one is kept for the minute (per workspace, KPI and user — the ranking uses the user's
affinity; the cache goes with the workspace's state when it is deleted or reconfigured).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from pydantic import StringConstraints

from kpidash.api.deps import Shared, User
from kpidash.api.state import WorkspaceState
from kpidash.core.portfolio import (
    MAX_SPARKLINE,
    MissingKpi,
    PortfolioRow,
    RankBy,
    WorkspaceInfo,
    portfolio_widget,
)
from kpidash.engine.portfolio import top_insight, workspace_rows
from kpidash.errors import NotFound
from kpidash.model import KPI_ID_PATTERN, Grain

router = APIRouter(prefix="/api/v1", tags=["portfolio"])

MAX_KPIS: Final = 5
INSIGHT_TTL_SECONDS: Final = 60
_CACHE_LIMIT: Final = 256

KpiId = Annotated[str, StringConstraints(pattern=KPI_ID_PATTERN, max_length=63)]


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _insight(scope: WorkspaceState, kpi_id: str, user: str,
                   now: datetime) -> dict[str, Any] | None:
    """The workspace's top insight about ``kpi_id`` for ``user``, computed once a minute."""
    key = ("portfolio", kpi_id, user, int(now.timestamp() // INSIGHT_TTL_SECONDS))
    hit = scope.insight_widgets.get(key)
    if hit is None:
        hit = {"insight": await scope.run(top_insight, scope.engine, kpi_id, user)}
        if len(scope.insight_widgets) > _CACHE_LIMIT:
            scope.insight_widgets.clear()
        scope.insight_widgets[key] = hit
    found: dict[str, Any] | None = hit["insight"]
    return found


@router.get("/portfolio", summary="Compare KPIs across the workspaces I belong to, ranked")
async def portfolio(
    st: Shared, me: User,
    kpi: Annotated[list[KpiId], Query(
        min_length=1, max_length=MAX_KPIS,
        description=f"KPI id, 1 to {MAX_KPIS} times; one widget each, in this order")],
    grain: Annotated[Grain, Query(description="period of the values")] = Grain.MONTH,
    rank_by: Annotated[RankBy, Query(
        description="value: current value; change: relative change vs previous period",
    )] = RankBy.VALUE,
    insights: Annotated[bool, Query(
        description="add each workspace's top insight about the KPI (slower)")] = False,
    periods: Annotated[int, Query(ge=2, le=MAX_SPARKLINE,
                                  description="sparkline length")] = 12,
) -> dict[str, Any]:
    """One ``portfolio`` widget per KPI over the caller's workspaces: the last complete
    period of each (in its own time zone), the change vs the one before, a sparkline, a rank
    in the KPI's better direction and, with ``insights``, the top insight. Workspaces without
    the KPI are listed under ``missing``; a KPI no workspace defines is 404."""
    kpi_ids = list(dict.fromkeys(kpi))
    now = st.clock.now()
    records = await st.run(st.accounts.list_workspaces, me.user_id)
    workspaces: list[dict[str, Any]] = []
    gathered: list[tuple[WorkspaceState, list[PortfolioRow | MissingKpi]]] = []
    for record in sorted(records, key=lambda r: str(r["id"])):
        try:
            scope = await st.scoped(record["id"])
            info = WorkspaceInfo(scope.workspace, str(record["name"]), scope.options.currency,
                                 scope.engine.timezone)
            rows = await scope.run(workspace_rows, scope.engine, info, kpi_ids, grain, now,
                                   periods=periods)
        except NotFound:  # deleted since it was listed: no longer part of the portfolio
            continue
        workspaces.append({"id": info.id, "name": info.name, "currency": info.currency,
                           "timezone": info.timezone, "role": str(record["role"])})
        gathered.append((scope, rows))

    unknown = [k for i, k in enumerate(kpi_ids)
               if not any(isinstance(rows[i], PortfolioRow) for _, rows in gathered)]
    if unknown:
        names = ", ".join(w["id"] for w in workspaces) or "none"
        raise NotFound(f"KPI {', '.join(map(repr, unknown))} is defined in none of your "
                       f"workspaces ({names}); ask a workspace's analyst to add it, or pick a "
                       "KPI from GET /api/v1/kpis")

    if insights:
        for scope, rows in gathered:
            for i, row in enumerate(rows):
                if isinstance(row, PortfolioRow):
                    try:
                        found = await _insight(scope, row.kpi_id, me.username, now)
                    except NotFound:  # deleted meanwhile: its numbers are already read
                        found = None
                    rows[i] = replace(row, insight=found)

    widgets = []
    for i, kpi_id in enumerate(kpi_ids):
        items = [rows[i] for _, rows in gathered]
        widgets.append(portfolio_widget(
            kpi_id, [r for r in items if isinstance(r, PortfolioRow)],
            [r for r in items if isinstance(r, MissingKpi)], grain=grain, rank_by=rank_by))
    return {"generated_at": _iso(now), "grain": str(grain), "rank_by": str(rank_by),
            "insights": insights, "workspaces": workspaces, "widgets": widgets}
