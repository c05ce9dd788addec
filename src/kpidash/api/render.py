"""Dashboard specs → rendered JSON (widgets themed for the viewer), with a render cache.

A dashboard spec (stored per user, see :mod:`kpidash.auth`) names its KPIs, a grain, a range
(``{"last": "30d"}``), filters, a theme override and a layout. Layout item ids say which
widgets exist beyond the KPI cards: ``chart:<kpi>`` or ``chart:<kpi>:<dimension>`` (a line
chart, grouped by the dimension), ``insights`` (the recommendations widget); the alerts
panel (active alerts, most urgent first) always travels in the top-level ``alerts`` list.

A render is cached under (dashboard, spec, theme, the current period, the data versions of
its KPIs, a time bucket of its refresh interval): a dashboard whose data did not change is
served from memory, and one whose KPIs received points is rendered again on the next read.
The cache keeps one render per (dashboard, spec, theme) — the latest; a render made stale by
new data or a new period is replaced, not kept beside it — and at most
:data:`RENDER_CACHE_SIZE` of them per workspace (least recently used dropped first); the
response bodies (:func:`board_json`) at most :data:`BODY_CACHE_SIZE`, least recently used
dropped first. Measured with benchmarks/soak.py (the demo dashboard re-rendered after every
ingest batch): keyed by data version, stale renders (~170 KiB of Python objects each, plus a
~46 KB body) piled up towards the old cap of 512 entries, ~65 renders a minute (~14 MiB a
minute) for ~8 minutes before a clear.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from kpidash.core import aggregate as agg
from kpidash.core.alerts import codec
from kpidash.errors import QueryError
from kpidash.model import Grain

if TYPE_CHECKING:
    from kpidash.api.state import WorkspaceState

_RANGE_RE = re.compile(r"^(\d{1,5})([hdwmqy])$")
_DAYS = {"h": 1 / 24, "d": 1, "w": 7, "m": 30.4375, "q": 91.3125, "y": 365.25}
_GRAIN_DAYS = {Grain.MINUTE: 1 / 1440, Grain.HOUR: 1 / 24, Grain.DAY: 1, Grain.WEEK: 7,
               Grain.MONTH: 30.4375, Grain.QUARTER: 91.3125, Grain.YEAR: 365.25}
DEFAULT_SPEC: dict[str, Any] = {"grain": "day", "range": {"last": "30d"}, "refresh_interval": 60}
MAX_PERIODS = 2000
ALERTS_VERSION = "__alerts__"  # bumped when alerts change (tick, ack, silence): renders hold them
INSIGHTS_TTL = 60  # seconds a user's top insights are reused between renders
RENDER_CACHE_SIZE = 128
"""Renders kept per workspace: one per (dashboard, spec, theme) in use (see the module doc)."""
BODY_CACHE_SIZE = 64
"""Response bodies of renders kept per server (by etag, least recently used dropped first)."""


def periods_for(range_spec: Any, grain: Grain) -> int:
    """``{"last": "30d"}`` at a day grain → 30 periods; at a week grain → 5 (rounded up)."""
    last = (range_spec or {}).get("last", "30d") if isinstance(range_spec, dict) else "30d"
    m = _RANGE_RE.match(str(last))
    if m is None:
        raise QueryError(f"range.last must look like 30d, 12w, 6m, 2y or 48h, got {last!r}")
    days = int(m.group(1)) * _DAYS[m.group(2)]
    n = max(1, math.ceil(days / _GRAIN_DAYS[grain] - 1e-9))
    if n > MAX_PERIODS:
        raise QueryError(f"range {last} at a {grain} grain is {n} periods; the most a "
                         f"dashboard shows is {MAX_PERIODS}: use a coarser grain")
    return n


def charts_of(layout: Any) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for item in layout or []:
        ident = str(item.get("id", "")) if isinstance(item, dict) else ""
        if ident.startswith("chart:"):
            parts = ident.split(":")
            out.append((parts[1], parts[2] if len(parts) > 2 and parts[2] else None))
    return out


def wants_insights(layout: Any) -> bool:
    return any(isinstance(i, dict) and i.get("id") == "insights" for i in layout or [])


def _plan(st: WorkspaceState, spec: dict[str, Any], theme: str | None, key: str | None,
          ) -> tuple[dict[str, Any], Grain, list[str], list[tuple[str, str | None]], datetime,
                     Any]:
    """(full spec, grain, KPI ids, charts, now, cache key or None); reads memory only."""
    engine = st.engine
    now = st.clock.now()
    spec = {**DEFAULT_SPEC, **{k: v for k, v in spec.items() if v is not None}}
    try:
        grain = Grain(spec["grain"])
    except ValueError:
        raise QueryError(f"grain must be one of {', '.join(g.value for g in Grain)}, got "
                         f"{spec['grain']!r}") from None
    kpi_ids = list(spec.get("kpis") or [k.id for k in engine.registry])
    for k in kpi_ids:
        engine.registry.get(k)
    charts = charts_of(spec.get("layout"))
    used = {i for k in [*kpi_ids, *(c[0] for c in charts)]
            for i in engine.registry.simple_inputs(k)}
    # the period containing now is the same for every instant of a minute (periods are whole
    # minutes or longer and zone offsets whole minutes), so it is computed once a minute per
    # grain: period_keys (pandas) was ~0.35 ms of every cached render (benchmarks/api.py)
    memo_key = (grain, engine.timezone, now.replace(second=0, microsecond=0))
    period = st.periods.get(memo_key)
    if period is None:
        period = agg.period_keys(now, now + timedelta(microseconds=1), grain,
                                 engine.timezone)[0]
        if len(st.periods) > 256:
            st.periods.clear()
        st.periods[memo_key] = period
    ttl = max(5, int(spec.get("refresh_interval") or 60))
    cache_key: Any = None
    if key is not None:
        cache_key = (key, json.dumps(spec, sort_keys=True, default=str), theme, str(period),
                     tuple(sorted((k, st.versions.get(k, 0)) for k in used)),
                     st.versions.get(ALERTS_VERSION, 0), int(now.timestamp() // ttl))
    return spec, grain, kpi_ids, charts, now, cache_key


def cached_render(st: WorkspaceState, spec: dict[str, Any], *, theme: str | None,
                  key: str) -> dict[str, Any] | None:
    """The cached render of ``spec`` (as :func:`render` would return it), or None.

    Called in the event loop, without a worker thread or the engine lock (it reads memory
    only; an unknown KPI raises as in :func:`render`). Measured with benchmarks/api.py
    (cached render of the demo dashboard, 32 connections): with the cache hit answered in a
    worker thread, the threads contending for the GIL and the engine lock left the server at
    ~40 % CPU and 120–180 req/s, p99 0.7–1 s; the lookup in the loop removes that hop.
    """
    return _cache_get(st, _plan(st, spec, theme, key)[-1])


def _cache_get(st: WorkspaceState, cache_key: Any) -> dict[str, Any] | None:
    """The cached render under ``cache_key`` (see :func:`_plan`), or None. The key's first
    three parts (dashboard, spec, theme) name the slot; the rest (period, data versions,
    alerts version, time bucket) must match the slot's render."""
    slot = st.renders.get(cache_key[:3])
    if slot is None or slot[0] != cache_key[3:]:
        return None
    board: dict[str, Any] = slot[1]
    return board


def _cache_put(st: WorkspaceState, cache_key: Any, board: dict[str, Any]) -> None:
    """Keep ``board`` as the render of its slot, replacing the slot's stale one; at most
    :data:`RENDER_CACHE_SIZE` slots (the least recently stored dropped first)."""
    name = cache_key[:3]
    st.renders.pop(name, None)
    st.renders[name] = (cache_key[3:], board)
    for oldest in list(st.renders)[:max(0, len(st.renders) - RENDER_CACHE_SIZE)]:
        st.renders.pop(oldest, None)


def render(st: WorkspaceState, spec: dict[str, Any], *, theme: str | None, user: str | None,
           key: str | None = None, title: str = "kpidash") -> dict[str, Any]:
    """Render ``spec`` (call under the engine lock). ``key`` enables the cache."""
    engine = st.engine
    spec, grain, kpi_ids, charts, now, cache_key = _plan(st, spec, theme, key)
    if cache_key is not None:
        hit = _cache_get(st, cache_key)
        if hit is not None:
            return hit
    with st.metrics.refresh.time():
        board = engine.dashboard(kpi_ids, grain=grain, periods=periods_for(spec.get("range"),
                                                                           grain),
                                 charts=charts, title=title, now=now,
                                 filters=spec.get("filters") or None, annotate=True)
        if wants_insights(spec.get("layout")):
            board["widgets"].append(_insights_widget(st, user, now))
        board["alerts"] = [alert_json(a) for a in engine.alerts(states=["firing", "recovering",
                                                                         "pending"])][:50]
        board["layout"] = list(spec.get("layout") or [])
    if theme:
        from kpidash.core.themes import apply, get_theme

        board = apply(board, get_theme(theme))
    board["etag"] = hashlib.sha256(json.dumps(board, sort_keys=True, default=str)
                                   .encode()).hexdigest()[:16]
    if cache_key is not None:
        _cache_put(st, cache_key, board)
    return board


def _insights_widget(st: WorkspaceState, user: str | None, now: datetime) -> dict[str, Any]:
    """The recommendations widget, reused for :data:`INSIGHTS_TTL` seconds per user.

    Insights read a year of every KPI (~0.4–1.4 s on the demo); recomputing them on every
    render made a point ingested through the API reach WebSocket clients only after that.
    Cards and charts are rendered fresh; the insights follow within a minute.
    """
    from kpidash.core import widgets

    key = (user, int(now.timestamp() // INSIGHTS_TTL))
    widget = st.insight_widgets.get(key)
    if widget is None:
        top = st.engine.insights(user, limit=5)
        widget = widgets.recommendations([r.to_dict() for r in top])
        if len(st.insight_widgets) > 256:
            st.insight_widgets.clear()
        st.insight_widgets[key] = widget
    return widget


_BOARD = TypeAdapter(dict[str, Any])


def board_json(st: WorkspaceState, board: dict[str, Any]) -> bytes:
    """The HTTP response body of a rendered board, made once per etag: byte for byte what
    FastAPI makes of a ``dict[str, Any]`` return value (the same pydantic TypeAdapter).

    Measured with benchmarks/api.py (cached render of the demo dashboard, ~31 KB): FastAPI
    validated and serialised the board again on every request (~0.5 ms of the event loop);
    sending the stored bytes skips that.
    """
    etag = board.get("etag")
    if not etag:
        return _BOARD.dump_json(board)
    cached = st.render_json
    body = cached.pop(etag, None)  # re-inserted below: the most recently used come last
    if body is None:
        body = _BOARD.dump_json(board)
    cached[etag] = body
    for oldest in list(cached)[:max(0, len(cached) - BODY_CACHE_SIZE)]:
        cached.pop(oldest, None)
    return body


def alert_json(a: Any) -> dict[str, Any]:
    doc = codec.instance_to_doc(a)
    doc["slice"] = dict(a.slice)
    return doc


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None
