"""Checks of dashboard names and specs.

A spec is an object with only these optional keys::

    kpis              list of KPI ids
    layout            list of {id: str, x: int ≥ 0, y: int ≥ 0, w: int ≥ 1, h: int ≥ 1}
    filters           dimension → list of values
    range             {"last": "<n><unit>"} with unit min, h, d, w, mo, q or y (e.g. "30d"),
                      or {"from": ISO time with offset, "to": later ISO time with offset}
    grain             minute, hour, day, week, month, quarter or year
    refresh_interval  seconds, an integer ≥ 5
    theme             corporate, dark, light, vibrant, pastel or null
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kpidash.auth.profiles import (
    check_filters,
    check_refresh_interval,
    check_str_list,
    check_theme,
    short_repr,
)
from kpidash.errors import InputError
from kpidash.model import Grain

SPEC_KEYS = ("kpis", "layout", "filters", "range", "grain", "refresh_interval", "theme")
LAYOUT_KEYS = ("id", "x", "y", "w", "h")
LAST_RE = re.compile(r"^[1-9][0-9]{0,4}(min|h|d|w|mo|q|y)$")
MAX_NAME_LENGTH = 100


def check_name(value: Any) -> str:
    """A dashboard name: 1–100 characters once surrounding spaces are removed."""
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= MAX_NAME_LENGTH:
        raise InputError(f"name must be 1–{MAX_NAME_LENGTH} characters, got {short_repr(value)}")
    return value.strip()


def check_spec(spec: Any) -> dict[str, Any]:
    """The normalised spec (see the module docstring); InputError naming the key at fault."""
    if not isinstance(spec, Mapping):
        raise InputError(f"spec must be an object, got {short_repr(spec)}")
    unknown = sorted(str(k) for k in spec if k not in SPEC_KEYS)
    if unknown:
        raise InputError(f"unknown spec key(s) {', '.join(unknown)}; expected some of "
                         f"{', '.join(SPEC_KEYS)}")
    out: dict[str, Any] = {}
    if "kpis" in spec:
        out["kpis"] = check_str_list(spec["kpis"], "spec.kpis")
    if "layout" in spec:
        out["layout"] = _layout(spec["layout"])
    if "filters" in spec:
        out["filters"] = check_filters(spec["filters"], "spec.filters")
    if "range" in spec:
        out["range"] = _range(spec["range"])
    if "grain" in spec:
        if spec["grain"] not in tuple(Grain):
            raise InputError(f"spec.grain must be one of {', '.join(Grain)}, got "
                             f"{short_repr(spec['grain'])}")
        out["grain"] = str(spec["grain"])
    if "refresh_interval" in spec:
        out["refresh_interval"] = check_refresh_interval(spec["refresh_interval"],
                                                         "spec.refresh_interval")
    if "theme" in spec:
        out["theme"] = check_theme(spec["theme"], allow_none=True, field="spec.theme")
    return out


def _layout(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list | tuple):
        raise InputError(f"spec.layout must be a list of {{id, x, y, w, h}}, got {short_repr(value)}")
    out = []
    for n, cell in enumerate(value):
        where = f"spec.layout[{n}]"
        if not isinstance(cell, Mapping) or set(cell) != set(LAYOUT_KEYS):
            raise InputError(f"{where} must have exactly the keys id, x, y, w, h, got "
                             f"{short_repr(cell)}")
        if not isinstance(cell["id"], str) or not cell["id"]:
            raise InputError(f"{where}.id must be a non-empty string, got {short_repr(cell['id'])}")
        for key in ("x", "y", "w", "h"):
            v, low = cell[key], 1 if key in ("w", "h") else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InputError(f"{where}.{key} must be an integer ≥ {low}, got {short_repr(v)}")
        out.append({k: cell[k] for k in LAYOUT_KEYS})
    return out


def _range(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping) and set(value) == {"last"}:
        if isinstance(value["last"], str) and LAST_RE.match(value["last"]):
            return {"last": value["last"]}
        raise InputError(f"spec.range.last must be a count and a unit (min, h, d, w, mo, q, y) "
                         f"such as '30d', got {short_repr(value['last'])}")
    if isinstance(value, Mapping) and set(value) == {"from", "to"}:
        start, end = _instant(value["from"], "from"), _instant(value["to"], "to")
        if start >= end:
            raise InputError(f"spec.range.from must be before spec.range.to, got "
                             f"{value['from']} → {value['to']}")
        return {"from": start.isoformat(), "to": end.isoformat()}
    raise InputError(f"spec.range must be {{\"last\": \"30d\"}} or {{\"from\": ISO time, "
                     f"\"to\": ISO time}}, got {short_repr(value)}")


def _instant(value: Any, key: str) -> datetime:
    try:
        instant = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise InputError(f"spec.range.{key} must be an ISO 8601 time with a UTC offset such as "
                         f"2024-01-01T00:00:00+00:00, got {short_repr(value)}")
    return instant
