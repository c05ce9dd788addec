"""What recorded interactions say about a user: affinity factors and filter-usage suggestions.

Pure: interactions come in as mappings (``user``, ``role``, ``kind``, ``kpi_id``, ``filters``,
``at`` — the rows the store returns) and ``now`` is given. Interactions after ``now`` are
ignored everywhere.

- :func:`affinity` and :func:`filter_affinity` give ranking factors in [1, 2]: 1 plus the
  user's recency-weighted share of activity on a KPI, or with a filter value; each
  interaction weighs ``exp(-age·ln 2 / half_life)``.
- :func:`suggestions` writes :class:`~kpidash.core.insights.model.Insight` objects of type
  ``FILTER_USAGE``: save a filter set used again and again as the default, and look at a KPI
  the user's peers (same role) watch but the user has not opened.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from kpidash.core.insights.model import Insight, InsightType

VIEW = "view_kpi"
APPLY_FILTER = "apply_filter"
SAVE_FILTER = "save_filter"
KPI_KINDS = frozenset({VIEW, APPLY_FILTER, SAVE_FILTER})
"""The kinds that count towards a KPI's affinity (views and filters on it)."""

Filters = dict[str, list[str]]
K = TypeVar("K", str, tuple[str, str])


@dataclass(frozen=True)
class _Row:
    user: str
    role: str | None
    kind: str
    kpi_id: str | None
    filters: Filters
    at: datetime


def canonical_filters(filters: Mapping[str, Any] | None) -> Filters:
    """Sorted dimensions, each with its sorted distinct values (a string is one value)."""
    out: Filters = {}
    for dim in sorted(filters or {}, key=str):
        values = (filters or {})[dim]
        vals = [values] if isinstance(values, str) else list(values)
        out[str(dim)] = sorted({str(v) for v in vals})
    return out


def filters_json(filters: Mapping[str, Any] | None) -> str:
    """The canonical JSON text of a filter set (equal sets give equal text)."""
    return json.dumps(canonical_filters(filters), sort_keys=True, separators=(",", ":"))


def _rows(interactions: Iterable[Mapping[str, Any]], now: datetime) -> list[_Row]:
    _aware(now, "now")
    out = []
    for r in interactions:
        at = _aware(r["at"], "interaction time")
        if at <= now:
            out.append(_Row(str(r["user"]), r.get("role"), str(r["kind"]), r.get("kpi_id"),
                            canonical_filters(r.get("filters")), at))
    return out


def _weight(age: timedelta, half_life: timedelta) -> float:
    return math.exp(-(age / half_life) * math.log(2.0))


def _check_half_life(half_life: timedelta) -> None:
    if half_life <= timedelta(0):
        raise ValueError(f"half_life must be positive, got {half_life}")


def affinity(interactions: Iterable[Mapping[str, Any]], user: str, *, now: datetime,
             half_life: timedelta = timedelta(days=14)) -> dict[str, float]:
    """KPI id → 1 + the user's recency-weighted share of views and filters on that KPI.

    Only KPIs the user touched appear (a caller uses 1.0 for the rest); the factors of all
    KPIs add up to one more than their count.
    """
    _check_half_life(half_life)
    weights: dict[str, float] = {}
    for r in _rows(interactions, now):
        if r.user == user and r.kpi_id is not None and r.kind in KPI_KINDS:
            weights[r.kpi_id] = weights.get(r.kpi_id, 0.0) + _weight(now - r.at, half_life)
    return _shares(weights, sum(weights.values()))


def filter_affinity(interactions: Iterable[Mapping[str, Any]], user: str, *, now: datetime,
                    half_life: timedelta = timedelta(days=14)) -> dict[tuple[str, str], float]:
    """(dimension, value) → 1 + the recency-weighted share of the user's filtered
    interactions (any kind carrying filters) that used that value."""
    _check_half_life(half_life)
    weights: dict[tuple[str, str], float] = {}
    total = 0.0
    for r in _rows(interactions, now):
        if r.user != user or not any(r.filters.values()):
            continue
        w = _weight(now - r.at, half_life)
        total += w
        for dim, values in r.filters.items():
            for v in values:
                weights[(dim, v)] = weights.get((dim, v), 0.0) + w
    return _shares(weights, total)


def _shares(weights: dict[K, float], total: float) -> dict[K, float]:
    if total <= 0.0:
        return {}
    return {k: min(2.0, 1.0 + w / total) for k, w in sorted(weights.items(), key=lambda kv:
                                                            str(kv[0]))}


def suggestions(interactions: Iterable[Mapping[str, Any]], user: str, *, now: datetime,
                saved: Mapping[str, Mapping[str, list[str]]] | None = None, min_uses: int = 3,
                window: timedelta = timedelta(days=14), role: str | None = None,
                names: Mapping[str, str] | None = None) -> list[Insight]:
    """Filter-usage insights for ``user`` from interactions in [now − window, now].

    - a filter set the user applied to a KPI at least ``min_uses`` times, unless it is
      already their saved default for that KPI (``saved``: KPI id → filters);
    - a KPI at least two other users of the same role viewed while this user did not.

    ``role`` defaults to the role on the user's latest interaction that has one; ``names``
    maps KPI ids to the names used in the sentences (the id otherwise). Ordered by
    significance (highest first), then KPI, then text.
    """
    if min_uses < 1:
        raise ValueError(f"min_uses must be at least 1, got {min_uses}")
    if window <= timedelta(0):
        raise ValueError(f"window must be positive, got {window}")
    rows = _rows(interactions, now)
    if role is None:
        roles = [r.role for r in sorted(rows, key=lambda r: r.at) if r.user == user and r.role]
        role = roles[-1] if roles else None
    recent = [r for r in rows if r.at >= now - window]
    names = names or {}
    out = _save_filter(recent, user, saved or {}, min_uses, window, names)
    if role:
        out += _peers_watch(recent, user, role, window, names)
    return sorted(out, key=lambda i: (-i.significance, i.kpi_id or "", i.text))


def _save_filter(recent: list[_Row], user: str, saved: Mapping[str, Mapping[str, list[str]]],
                 min_uses: int, window: timedelta, names: Mapping[str, str]) -> list[Insight]:
    uses: dict[tuple[str, str], list[datetime]] = {}
    for r in recent:
        if r.user == user and r.kind == APPLY_FILTER and r.kpi_id and any(r.filters.values()):
            uses.setdefault((r.kpi_id, filters_json(r.filters)), []).append(r.at)
    out = []
    for (kpi_id, text), times in uses.items():
        n = len(times)
        if n < min_uses or (kpi_id in saved and filters_json(saved[kpi_id]) == text):
            continue
        filters: Filters = json.loads(text)
        first, last = min(times), max(times)
        out.append(Insight(
            type=InsightType.FILTER_USAGE, kpi_id=kpi_id,
            text=(f"Save {_filter_label(filters)} as your default filter for "
                  f"{names.get(kpi_id, kpi_id)}: you applied it {n} times in "
                  f"{_window_label(window)}."),
            at=last, significance=1.0 - 0.5 ** (n - min_uses + 1), magnitude=min(1.0, n / 10),
            facts={"suggestion": "save_filter", "uses": n, "first_use": first,
                   "last_use": last, "filters": filters, "window_days": window / timedelta(1)},
            discriminator=text))
    return out


def _peers_watch(recent: list[_Row], user: str, role: str, window: timedelta,
                 names: Mapping[str, str]) -> list[Insight]:
    mine = {r.kpi_id for r in recent if r.user == user and r.kind == VIEW}
    watchers: dict[str, set[str]] = {}
    views: dict[str, int] = {}
    last: dict[str, datetime] = {}
    for r in recent:
        if (r.kind != VIEW or r.user == user or r.role != role or r.kpi_id is None
                or r.kpi_id in mine):
            continue
        watchers.setdefault(r.kpi_id, set()).add(r.user)
        views[r.kpi_id] = views.get(r.kpi_id, 0) + 1
        last[r.kpi_id] = max(last.get(r.kpi_id, r.at), r.at)
    out = []
    group = _plural(role)
    for kpi_id, who in watchers.items():
        w = len(who)
        if w < 2:
            continue
        out.append(Insight(
            type=InsightType.FILTER_USAGE, kpi_id=kpi_id,
            text=(f"{group[:1].upper()}{group[1:]} also watch {names.get(kpi_id, kpi_id)}: "
                  f"{w} other {group} viewed it {views[kpi_id]} times in "
                  f"{_window_label(window)}."),
            at=last[kpi_id], significance=w / (w + 1), magnitude=min(1.0, w / 5),
            facts={"suggestion": "peers_watch", "role": role, "watchers": w,
                   "views": views[kpi_id], "last_view": last[kpi_id],
                   "window_days": window / timedelta(1)},
            discriminator=f"role={role}"))
    return out


def _filter_label(filters: Filters) -> str:
    """``region=EU``; ``region=EU or NA and plan=Pro``."""
    return " and ".join(f"{d}={' or '.join(vs)}" for d, vs in filters.items())


def _window_label(window: timedelta) -> str:
    day, hour = timedelta(days=1), timedelta(hours=1)
    if window % day == timedelta(0):
        n, unit = window // day, "day"
    elif window % hour == timedelta(0):
        n, unit = window // hour, "hour"
    else:
        return f"the last {window}"
    return f"the last {unit}" if n == 1 else f"the last {n} {unit}s"


def _plural(role: str) -> str:
    """A role as a plural noun, lower case: analyst → analysts, company → companies."""
    word = role.strip().lower()
    if word.endswith("s"):
        return word
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _aware(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value
