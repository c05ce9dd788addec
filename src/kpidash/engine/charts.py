"""Chart annotations for dashboards: anomaly markers (the causal detector, warmed up on
history before the window) and, for an ungrouped chart, the forecast with an 80 % band."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from kpidash.core import aggregate as agg
from kpidash.core import widgets
from kpidash.errors import QueryError
from kpidash.model import KPI, Grain, Series

if TYPE_CHECKING:
    from kpidash.engine import Engine


def annotate_chart(engine: Engine, chart: dict[str, Any], kpi_id: str, grain: Grain,
                   start: datetime, end: datetime, periods: int, group_by: str | None,
                   filters: Mapping[str, str | Sequence[str]] | None, now: datetime,
                   ) -> dict[str, Any]:
    """Anomaly markers (and, ungrouped, the forecast) for one chart of Engine.dashboard."""
    kpi = engine.registry.get(kpi_id)
    warm = agg.periods_back(start, grain, max(120, periods), engine.timezone)
    history = engine.query(kpi_id, grain, warm, end, group_by=group_by, filters=filters)
    labels = chart["data"]["figure"]["data"][0].get("x") if chart["data"]["figure"][
        "data"] else None
    if labels:
        chart = widgets.with_anomalies(chart, _chart_anomalies(
            kpi, history, labels[0], now, group_by is not None))
    if group_by is None and history and np.isfinite(history[0].values).sum() >= 14:
        from kpidash.engine import forecasts as forecasts_

        horizon = max(1, min(28, periods // 3))
        try:
            (fc,) = forecasts_.forecast_series(kpi, history, now, horizon, (80,))
        except QueryError:
            return chart
        r = fc.result
        chart = widgets.with_forecast(chart, fc.labels, r.mean, r.lower[80], r.upper[80],
                                      model=r.model)
    return chart


def _chart_anomalies(kpi: KPI, series: list[Series], window_start: Any, now: datetime,
                     grouped: bool) -> list[dict[str, Any]]:
    from kpidash.core.anomaly import anomalies as find
    from kpidash.engine import anomalies as anomalies_

    points: list[dict[str, Any]] = []
    for s, scores in zip(series, anomalies_.score_series(kpi, series, now), strict=True):
        for a in find(scores, s.labels[:len(scores)]):
            if str(a.timestamp) >= window_start:
                points.append({"period": str(a.timestamp), "actual": a.actual,
                               "expected": a.expected, "severity": a.severity.label,
                               "kind": a.kind.label, "series": s.group if grouped else None})
    return points
