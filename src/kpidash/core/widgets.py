"""The visualization engine: analysis results → JSON widget dicts.

Every function here returns plain JSON data — only ``str``, ``int``, ``float``, ``bool``,
``None``, ``list`` and ``dict`` — so ``json.dumps(widget, allow_nan=False)`` always works.
Missing or non-finite numbers (NaN, ±inf) become ``null``; numpy scalars never leak out.

Widget shapes (each has a JSON Schema in :mod:`kpidash.schemas`):

* ``kpi``: ``{"type": "kpi", "schema_version": 1, "data": {title, value, unit, trend,
  comparison, color, …extra}}`` — the seed shape; fields may be added, never renamed.
* ``line``: ``{"type": "line", "schema_version": 1, "data": {kpi_id, title, unit, grain, tz,
  figure}}`` where ``figure`` is a Plotly figure dict (``{"data": [...], "layout": {...}}``).
* ``dashboard``: ``{"type": "dashboard", "schema_version": 1, title, generated_at, grain, tz,
  widgets}``.

Number conventions:

* values (``value``, ``previous``, ``sparkline``): in the KPI's unit, rounded by
  :func:`round_value` — 2 decimals when ``|x| >= 1``, else 4 decimals.
* ``trend``: percent change of the current period vs the previous one,
  ``100 * (cur - prev) / |prev|``, rounded to 1 decimal; null when either is missing or
  ``prev == 0``.
* ``comparison``: percent difference to the KPI's target,
  ``100 * (value - target) / |target|``, rounded to 1 decimal; null without a target, with
  ``target == 0`` or without a value.

Status and colour: with a target, the card is ``good`` when the value meets it (``value >=
target`` if higher is better, ``value <= target`` otherwise) and ``bad`` when it does not.
Without a target, the trend decides: a move smaller than :data:`NEUTRAL_TREND_PCT` percent (or
no trend) is ``neutral``; otherwise a move in the good direction (up when higher is better,
down when lower is better) is ``good`` and the opposite ``bad`` — a rise in churn is bad.
Status and comparisons use the unrounded numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go

from kpidash.model import KPI, Grain, Series

SCHEMA_VERSION: Final = 1
"""Version of every widget shape built here; pinned equal to ``kpidash.schemas.SCHEMA_VERSION``."""

COLOR_GOOD: Final = "#00b894"
COLOR_BAD: Final = "#d63031"
COLOR_NEUTRAL: Final = "#636e72"
STATUS_COLORS: Final[dict[str, str]] = {
    "good": COLOR_GOOD, "bad": COLOR_BAD, "neutral": COLOR_NEUTRAL,
}

NEUTRAL_TREND_PCT: Final = 0.5
"""Percent change below which (in absolute value) a trend counts as flat / neutral."""

SPARKLINE_LENGTH: Final = 30
"""Number of periods (ending at the current one) in a card's sparkline."""

Status = Literal["good", "bad", "neutral"]
Direction = Literal["up", "down", "flat"]


# --- number helpers -------------------------------------------------------------------------


def _finite(x: float | np.floating[Any] | None) -> float | None:
    """``x`` as a plain float, or None when it is None, NaN or ±inf."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def round_value(x: float | None) -> float | None:
    """Round a KPI value for display: 2 decimals when ``|x| >= 1``, else 4 decimals.

    Returns None for None/NaN/±inf. ``-0.0`` is normalised to ``0.0``.
    """
    f = _finite(x)
    if f is None:
        return None
    r = round(f, 2) if abs(f) >= 1 else round(f, 4)
    return r + 0.0  # turns -0.0 into 0.0


def pct_change(current: float | None, previous: float | None) -> float | None:
    """Percent change ``100 * (current - previous) / |previous|``, unrounded.

    None when either number is missing or non-finite, or when ``previous == 0`` (the
    change from zero has no meaningful percentage).
    """
    cur, prev = _finite(current), _finite(previous)
    if cur is None or prev is None or prev == 0:
        return None
    return _finite(100.0 * (cur - prev) / abs(prev))


def _round_pct(x: float | None) -> float | None:
    return None if x is None else round(x, 1) + 0.0


def kpi_status(
    value: float | None, trend_pct: float | None, *, target: float | None,
    higher_is_better: bool,
) -> Status:
    """Classify a card as good, bad or neutral (rules in the module docstring).

    ``value`` is in the KPI's unit, ``trend_pct`` a percent change (unrounded), ``target`` in
    the KPI's unit or None.
    """
    target = _finite(target)
    if target is not None:
        if value is None:
            return "neutral"
        meets = value >= target if higher_is_better else value <= target
        return "good" if meets else "bad"
    if trend_pct is None or abs(trend_pct) < NEUTRAL_TREND_PCT:
        return "neutral"
    return "good" if (trend_pct > 0) == higher_is_better else "bad"


def trend_direction(trend_pct: float | None) -> Direction | None:
    """``up``/``down`` for a change of at least :data:`NEUTRAL_TREND_PCT` percent, else
    ``flat``; None when there is no trend (unknown is not the same as flat)."""
    if trend_pct is None:
        return None
    if abs(trend_pct) < NEUTRAL_TREND_PCT:
        return "flat"
    return "up" if trend_pct > 0 else "down"


# --- series helpers -------------------------------------------------------------------------


def _labels(series: Series) -> list[str]:
    """Display labels of the periods: ``series.labels`` when complete, else UTC ISO strings."""
    if len(series.labels) == len(series):
        return [str(s) for s in series.labels]
    iso = np.datetime_as_string(series.periods.astype("datetime64[s]"), unit="s")
    return [f"{s}Z" for s in iso.tolist()]


def _values(values: np.ndarray[Any, np.dtype[np.float64]]) -> list[float | None]:
    """Float array → list of plain floats with None for NaN/±inf."""
    return [_finite(v) for v in values.tolist()]


def _resolve_index(series: Series, current_index: int | None) -> int | None:
    """The current period's index: as given (negative counts from the end), else the last
    period with a finite value, else the last period; None for an empty series."""
    n = len(series)
    if current_index is not None:
        if not -n <= current_index < n:
            raise IndexError(
                f"current_index {current_index} is out of range for series {series.kpi_id!r} "
                f"with {n} period(s); pass an index in [{-n}, {n - 1}] or None for the "
                "latest period with data"
            )
        return current_index % n
    if n == 0:
        return None
    finite = np.flatnonzero(np.isfinite(series.values))
    return int(finite[-1]) if finite.size else n - 1


def _check_series_kpi(kpi: KPI, series: Series) -> None:
    if series.kpi_id != kpi.id:
        raise ValueError(
            f"series is for KPI {series.kpi_id!r} but the widget is for KPI {kpi.id!r}; "
            "pass the series queried for this KPI"
        )


# --- widgets --------------------------------------------------------------------------------


def kpi_card(kpi: KPI, series: Series, *, current_index: int | None = None) -> dict[str, Any]:
    """A KPI card widget for the current period of ``series``.

    ``current_index`` selects the current period (negative counts from the end); by default
    it is the last period with a value. The previous period is ``current_index - 1``.

    ``data`` holds the six seed fields — ``title`` (KPI name), ``value`` (current value in
    ``unit``, rounded by :func:`round_value`), ``unit``, ``trend`` (% change vs previous
    period, 1 decimal), ``comparison`` (% difference to target, 1 decimal) and ``color`` (hex of
    the status) — plus ``kpi_id``, ``status`` (good/bad/neutral), ``direction``
    (up/down/flat, null without trend), ``higher_is_better``, ``target``, ``period`` (label of
    the current period), ``previous`` (previous value, rounded), ``grain``, ``tz``, ``group``,
    ``sparkline`` (up to :data:`SPARKLINE_LENGTH` rounded values ending at the current period,
    null where missing), ``critical`` and ``weight``. A series without any value gives
    ``value``/``trend``/``comparison`` null and status neutral.

    Raises ValueError when the series belongs to another KPI and IndexError when
    ``current_index`` is out of range.
    """
    _check_series_kpi(kpi, series)
    idx = _resolve_index(series, current_index)
    values = series.values
    labels = _labels(series)

    current = _finite(values[idx]) if idx is not None else None
    previous = _finite(values[idx - 1]) if idx is not None and idx > 0 else None
    trend_pct = pct_change(current, previous)
    target = _finite(kpi.target)
    comparison = pct_change(current, target)
    status = kpi_status(current, trend_pct, target=target,
                        higher_is_better=kpi.higher_is_better)

    if idx is None:
        sparkline: list[float | None] = []
    else:
        start = max(0, idx + 1 - SPARKLINE_LENGTH)
        sparkline = [round_value(v) for v in _values(values[start:idx + 1])]

    data: dict[str, Any] = {
        # the seed fields: never rename
        "title": kpi.name,
        "value": round_value(current),
        "unit": kpi.unit,
        "trend": _round_pct(trend_pct),
        "comparison": _round_pct(comparison),
        "color": STATUS_COLORS[status],
        # additions
        "kpi_id": kpi.id,
        "status": status,
        "direction": trend_direction(trend_pct),
        "higher_is_better": bool(kpi.higher_is_better),
        "target": target,
        "period": labels[idx] if idx is not None else None,
        "previous": round_value(previous),
        "grain": str(series.grain),
        "tz": series.tz,
        "group": series.group,
        "sparkline": sparkline,
        "critical": bool(kpi.critical),
        "weight": _finite(kpi.weight),
    }
    return {"type": "kpi", "schema_version": SCHEMA_VERSION, "data": data}


def _common(series: Sequence[Series], attr: Literal["grain", "tz"]) -> str | None:
    found = {str(getattr(s, attr)) for s in series}
    if len(found) > 1:
        raise ValueError(
            f"all series of one chart must share one {attr}; got {sorted(found)}; "
            f"query them at the same {attr}"
        )
    return found.pop() if found else None


def line_chart(
    kpi: KPI, series: Sequence[Series], *, title: str | None = None,
) -> dict[str, Any]:
    """A line chart widget: one Plotly ``scatter`` trace per series.

    Each trace is named after ``series.group`` (or the KPI name for an ungrouped series), has
    the period labels as ``x`` and the values (in the KPI's unit, unrounded) as ``y``, with
    null for missing periods and ``connectgaps=False`` so gaps stay visible; markers are drawn
    so a lone value between gaps still shows. The y-axis title is the unit. The Plotly
    template is stripped to keep the JSON small (renderers apply their own defaults).

    ``data`` holds ``kpi_id``, ``title`` (``title`` or the KPI name), ``unit``, ``grain`` and
    ``tz`` (null when ``series`` is empty) and ``figure`` (a plain JSON dict). Raises
    ValueError when a series belongs to another KPI or the series mix grains or time zones.
    """
    for s in series:
        _check_series_kpi(kpi, s)
    grain = _common(series, "grain")
    tz = _common(series, "tz")
    chart_title = title if title is not None else kpi.name

    traces = [
        go.Scatter(
            x=_labels(s), y=_values(s.values), name=s.group if s.group is not None else kpi.name,
            mode="lines+markers", connectgaps=False,
        )
        for s in series
    ]
    fig = go.Figure(data=traces)
    fig.update_layout(
        template="none",
        title={"text": chart_title},
        yaxis={"title": {"text": kpi.unit}} if kpi.unit else {},
        showlegend=len(traces) > 1,
    )
    figure: dict[str, Any] = json.loads(fig.to_json())
    figure.get("layout", {}).pop("template", None)
    return {
        "type": "line",
        "schema_version": SCHEMA_VERSION,
        "data": {
            "kpi_id": kpi.id, "title": chart_title, "unit": kpi.unit, "grain": grain, "tz": tz,
            "figure": figure,
        },
    }


def with_forecast(widget: dict[str, Any], labels: Sequence[str], mean: npt.ArrayLike,
                  lower: npt.ArrayLike, upper: npt.ArrayLike, *, level: int = 80,
                  model: str = "") -> dict[str, Any]:
    """A copy of a line widget with the forecast drawn after the data: the point forecast as a
    dashed line and the ``level`` % interval as a shaded band (two traces, the upper filled to
    the lower). The numbers are also in ``data.forecast``. Traces carry
    ``meta.kpidash`` = forecast / band_low / band_high so themes can colour them."""
    out: dict[str, Any] = json.loads(json.dumps(widget))
    x = list(labels)
    band = f"{level}% forecast interval"
    out["data"]["figure"]["data"] += [
        {"type": "scatter", "x": x, "y": _values(np.asarray(lower, dtype=np.float64)),
         "mode": "lines", "line": {"width": 0}, "name": band, "showlegend": False,
         "hoverinfo": "skip", "legendgroup": "forecast", "meta": {"kpidash": "band_low"}},
        {"type": "scatter", "x": x, "y": _values(np.asarray(upper, dtype=np.float64)),
         "mode": "lines", "line": {"width": 0}, "fill": "tonexty", "name": band,
         "fillcolor": "rgba(99, 110, 114, 0.18)", "legendgroup": "forecast",
         "meta": {"kpidash": "band_high"}},
        {"type": "scatter", "x": x, "y": _values(np.asarray(mean, dtype=np.float64)),
         "mode": "lines", "line": {"dash": "dash"}, "name": "forecast",
         "legendgroup": "forecast", "meta": {"kpidash": "forecast"}},
    ]
    out["data"]["figure"]["layout"]["showlegend"] = True
    out["data"]["forecast"] = {"periods": x, "mean": _values(np.asarray(mean, np.float64)),
                               "lower": _values(np.asarray(lower, np.float64)),
                               "upper": _values(np.asarray(upper, np.float64)),
                               "level": level, "model": model}
    return out


def with_anomalies(widget: dict[str, Any], points: Sequence[Mapping[str, Any]],
                   ) -> dict[str, Any]:
    """A copy of a line widget with anomalous points marked (``points``: period label,
    actual, expected, severity, kind, series name); also listed in ``data.anomalies``."""
    out: dict[str, Any] = json.loads(json.dumps(widget))
    if points:
        out["data"]["figure"]["data"].append({
            "type": "scatter", "mode": "markers", "name": "anomalies",
            "x": [p["period"] for p in points], "y": [_finite(p["actual"]) for p in points],
            "text": [f"{p['severity']} {p['kind']}: expected {_finite(p['expected'])}"
                     + (f" ({p['series']})" if p.get("series") else "") for p in points],
            "marker": {"symbol": "circle-open", "size": 12, "line": {"width": 2}},
            "meta": {"kpidash": "anomalies"}})
    out["data"]["anomalies"] = [{k: _finite(v) if isinstance(v, float) else v
                                 for k, v in p.items()} for p in points]
    return out


def recommendations(items: Sequence[Mapping[str, Any]], *, title: str = "Recommendations",
                    ) -> dict[str, Any]:
    """A recommendations widget from ranked insights (``Ranked.to_dict()`` of each): the
    sentence, the facts behind it and every factor of its score."""
    return {"type": "recommendations", "schema_version": SCHEMA_VERSION,
            "data": {"title": title, "items": [dict(i) for i in items]}}


def _iso_utc(ts: datetime) -> str:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(
            f"generated_at must be timezone-aware, got naive {ts.isoformat()}; "
            "pass clock.now() (UTC) or attach a tzinfo"
        )
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dashboard(
    cards: Sequence[dict[str, Any]], charts: Sequence[dict[str, Any]], *, title: str,
    generated_at: datetime, grain: str | Grain, tz: str,
    extra: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A dashboard: the cards, then the charts, with a title and when it was generated.

    ``generated_at`` must be timezone-aware and is written as ISO 8601 in UTC with a ``Z``
    suffix (e.g. ``2024-05-01T12:00:00Z``). ``grain`` is the grain the widgets were built at
    and ``tz`` the time zone of their period labels. Widgets are included as given.
    """
    return {
        "type": "dashboard",
        "schema_version": SCHEMA_VERSION,
        "title": title,
        "generated_at": _iso_utc(generated_at),
        "grain": str(grain),
        "tz": tz,
        "widgets": [*cards, *charts, *extra],
    }
