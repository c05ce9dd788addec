"""What an insight is: a typed, worded finding about a KPI (or slice) with the facts behind it.

Generators (one module per family) return :class:`Insight` objects with the *intrinsic*
factors — ``significance`` (how sure we are it is real, 0–1) and ``magnitude`` (how big it is
in business terms, 0–1) — and the instant it is about (``at``). Ranking
(:mod:`kpidash.core.insights.rank`) multiplies in the KPI weight, recency, novelty and the
user's affinity, and keeps every factor beside the score.

Every insight carries ``facts``: the JSON-safe numbers its sentence was written from (values,
periods, test statistics), so a reader can check the claim.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

SliceKey = tuple[tuple[str, str], ...]


class InsightType(StrEnum):
    CHANGE = "change"                # period over period, or vs a year ago
    TREND = "trend"                  # a significant trend, or a change of trend
    ANOMALY = "anomaly"              # an unusual value, with its expected range and drivers
    RECORD = "record"                # highest / lowest over a window
    PACE = "pace"                    # probability of reaching the target, run-rate needed
    DRIVERS = "drivers"              # which slices moved the KPI (mix / rate for ratios)
    CONCENTRATION = "concentration"  # one slice carries most of the KPI
    CORRELATION = "correlation"      # KPIs that move together or lead one another
    FILTER_USAGE = "filter_usage"    # from recorded interactions: save a filter, watch a KPI
    DATA_QUALITY = "data_quality"    # corrections, gaps, stale series


def json_safe(value: Any) -> Any:
    """Facts as JSON: non-finite floats become None, tuples lists, datetimes ISO text."""
    if isinstance(value, float):  # numpy float64 too: a float subclass, made a plain float
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return json_safe(value.tolist())
    return value


@dataclass(frozen=True)
class Insight:
    """One finding. ``key`` identifies it across refreshes (type, KPI, slice, period and a
    discriminator such as the comparison), so one already shown can decay (novelty)."""

    type: InsightType
    kpi_id: str | None
    text: str
    at: datetime
    significance: float
    magnitude: float
    facts: Mapping[str, Any] = field(default_factory=dict)
    slice: SliceKey = ()
    period: str | None = None
    discriminator: str = ""

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"Insight.at must be timezone-aware, got {self.at!r}")
        for name in ("significance", "magnitude"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"Insight.{name} must be in [0, 1], got {v!r}")
        object.__setattr__(self, "facts", json_safe(dict(self.facts)))

    @property
    def key(self) -> str:
        """16 hex digits of SHA-256 over type, KPI, slice, period and discriminator."""
        blob = json.dumps([str(self.type), self.kpi_id, [list(p) for p in self.slice],
                           self.period, self.discriminator], separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "type": str(self.type), "kpi_id": self.kpi_id,
                "slice": dict(self.slice), "period": self.period, "text": self.text,
                "at": self.at.isoformat(), "facts": dict(self.facts),
                "significance": self.significance, "magnitude": self.magnitude}


@dataclass(frozen=True)
class Factors:
    """Every factor of a score: score = significance × weight × magnitude × recency ×
    novelty × affinity."""

    significance: float
    weight: float
    magnitude: float
    recency: float
    novelty: float
    affinity: float

    @property
    def score(self) -> float:
        return (self.significance * self.weight * self.magnitude * self.recency
                * self.novelty * self.affinity)

    def to_dict(self) -> dict[str, float]:
        return {"significance": self.significance, "weight": self.weight,
                "magnitude": self.magnitude, "recency": self.recency, "novelty": self.novelty,
                "affinity": self.affinity}


@dataclass(frozen=True)
class Ranked:
    """An insight with its score and the factors it came from; ``rank`` starts at 1."""

    insight: Insight
    factors: Factors
    rank: int

    @property
    def score(self) -> float:
        return self.factors.score

    def to_dict(self) -> dict[str, Any]:
        return {**self.insight.to_dict(), "rank": self.rank, "score": self.score,
                "factors": self.factors.to_dict()}


def magnitude_of(relative_change: float, scale: float = 0.10) -> float:
    """Business size of a relative change in [0, 1): tanh(|Δ| / scale) — 10 % → 0.76,
    5 % → 0.46, 2 % → 0.20, 30 % → 0.995."""
    if not math.isfinite(relative_change):
        return 1.0
    return math.tanh(abs(relative_change) / scale)


def significance_of(p_value: float | None) -> float:
    """1 − p, clipped to [0, 1] (None → 0)."""
    if p_value is None or not math.isfinite(p_value):
        return 0.0
    return min(1.0, max(0.0, 1.0 - p_value))


def slice_label(slice_: SliceKey) -> str:
    return ", ".join(f"{d}={v}" for d, v in slice_)
