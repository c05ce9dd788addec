"""Text for people and JSON for machines: numbers, labels and sparklines shared by every channel."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

SPARK_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, scaled between the series' min and max; NaN/inf shows as a space."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    top = len(SPARK_BARS) - 1
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(" ")
        elif hi == lo:
            out.append(SPARK_BARS[top // 2])
        else:
            out.append(SPARK_BARS[round((v - lo) / (hi - lo) * top)])
    return "".join(out)


def format_number(value: float | None, unit: str = "") -> str:
    """Readable number: thousands separators for large values, 4 significant digits otherwise."""
    if value is None or not math.isfinite(value):
        text = "n/a" if value is None else str(value)
    elif abs(value) >= 1000 or float(value).is_integer():
        text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    else:
        text = f"{value:.4g}"
    return f"{text} {unit}".rstrip() if unit else text


def json_number(value: float | None) -> float | None:
    """JSON has no NaN or infinity; they travel as null."""
    return value if value is not None and math.isfinite(value) else None


def from_json_number(value: float | None) -> float:
    """The inverse of :func:`json_number` for numbers that must exist: null comes back as NaN."""
    return math.nan if value is None else float(value)


def range_to_json(rng: tuple[float, float] | None) -> list[float | None] | None:
    return None if rng is None else [json_number(v) for v in rng]


def range_from_json(rng: Sequence[float | None] | None) -> tuple[float, float] | None:
    return None if rng is None else (from_json_number(rng[0]), from_json_number(rng[1]))


def since_label(since: datetime) -> str:
    return since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def slice_label(slice: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(slice.items())) or "all"


def reference_label(threshold: float | None, expected_range: tuple[float, float] | None,
                     unit: str) -> str | None:
    if threshold is not None:
        return f"threshold {format_number(threshold, unit)}"
    if expected_range is not None:
        lo, hi = expected_range
        return f"expected {format_number(lo, unit)} – {format_number(hi, unit)}"
    return None


def more_line(hidden: int) -> str:
    return f"… and {hidden} more"
