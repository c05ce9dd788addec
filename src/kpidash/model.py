"""Domain types shared by every layer.

KPI definitions are pydantic models (they are parsed from YAML/JSON at the boundary and
their validation errors become report issues); results of computation are frozen
dataclasses over numpy arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

KPI_ID_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
KPI_ID_RE = re.compile(KPI_ID_PATTERN)
DIM_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
DEFAULT_WORKSPACE = "default"
# Names a KPI's ``forecast_model`` may take (implemented in kpidash.core.forecast).
FORECAST_MODELS = ("auto", "ets", "ensemble", "naive", "seasonal_naive", "ses", "holt", "damped",
                   "theta", "holt_winters_additive", "holt_winters_multiplicative")


class Aggregation(StrEnum):
    """How a simple KPI's points combine within a period and a slice.

    ``last`` is *semi-additive*: within each series (one combination of dimension values)
    the last value of the period is taken, then series are summed — right for stocks such
    as customers or MRR. Use ``mean`` for gauges that must not be summed across slices.
    """

    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    COUNT = "count"


class KpiKind(StrEnum):
    SIMPLE = "simple"
    RATIO = "ratio"
    DERIVED = "derived"


class BoundsPolicy(StrEnum):
    """What ingestion does with a value outside [min_value, max_value].

    reject: the batch is rejected naming the row; clamp: the value is clamped to the bound
    and the raw value is kept with method ``clamp``; accept: stored as sent, reported as a
    warning.
    """

    REJECT = "reject"
    CLAMP = "clamp"
    ACCEPT = "accept"


class Grain(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


MAX_ABS_VALUE = 1e18  # largest accepted |value| of a point or a KPI's number: beyond any real
# KPI, and the store sums values exactly below it
# A number of a definition: finite (no NaN/inf, which JSON cannot carry back) and within ±1e18
Number = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]


class KPI(BaseModel):
    """One KPI definition. Field names follow the original seed design."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False,
                              allow_inf_nan=False)

    id: str = Field(pattern=KPI_ID_PATTERN, description="lower_snake_case identifier")
    name: str = Field(min_length=1)
    description: str = ""
    unit: str = ""
    higher_is_better: bool = True
    min_value: Number | None = None
    max_value: Number | None = None
    weight: Number = 1.0
    anomaly_threshold: Number = Field(default=4.0, gt=0, description="robust z at which a point is anomalous")
    critical: bool = False
    forecast_model: str = "auto"
    kind: KpiKind = KpiKind.SIMPLE
    aggregation: Aggregation = Aggregation.SUM
    numerator: str | None = None
    denominator: str | None = None
    scale: Number = Field(default=1.0, description="ratio multiplier, e.g. 100 for percent")
    expression: str | None = None
    target: Number | None = None
    target_grain: Grain | None = Field(
        default=None, description="for sum/count KPIs: the target is the total of one such "
        "period (e.g. month); unset: a level every period should reach")
    dimensions: tuple[str, ...] = ()
    season_length: int | None = Field(default=None, ge=1)
    on_out_of_bounds: BoundsPolicy = BoundsPolicy.REJECT
    formula: str = Field(default="", description="human-readable formula for documentation")

    def inputs(self) -> tuple[str, ...]:
        """KPI ids this KPI is computed from (empty for simple KPIs)."""
        if self.kind is KpiKind.RATIO:
            return tuple(x for x in (self.numerator, self.denominator) if x)
        if self.kind is KpiKind.DERIVED and self.expression:
            from kpidash.core.expression import parse_expression

            try:
                return parse_expression(self.expression).names
            except ValueError:
                return ()
        return ()


@dataclass(frozen=True, slots=True)
class Point:
    """One observation. ``ts`` must be timezone-aware; ``dims`` maps dimension → value."""

    kpi_id: str
    ts: datetime
    value: float
    dims: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Series:
    """A KPI aggregated at a grain: one value per period, NaN where a period has no data.

    ``periods`` are period starts as UTC ``datetime64[us]``; ``labels`` the same instants in
    the query's time zone (ISO strings) for display. ``group`` is the dimension value when the
    query was grouped, else None.
    """

    kpi_id: str
    grain: Grain
    tz: str
    periods: npt.NDArray[np.datetime64]
    values: npt.NDArray[np.float64]
    group: str | None = None
    labels: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def missing(self) -> npt.NDArray[np.bool_]:
        return np.isnan(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kpi_id": self.kpi_id, "grain": str(self.grain), "tz": self.tz, "group": self.group,
            "periods": list(self.labels),
            "values": [None if np.isnan(v) else float(v) for v in self.values],
        }


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What an accepted batch did. ``corrected`` counts values changed by a bounds policy."""

    rows: int
    written: int
    new_series: int
    corrected: int
    warnings: int


@dataclass(frozen=True, slots=True)
class Annotation:
    """A known event (launch, holiday, outage) over [start, end); ``kpi_id`` None = every KPI.

    Cleaning never corrects points inside an annotation's window.
    """

    start: datetime
    end: datetime
    label: str
    kind: str = "event"
    kpi_id: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notification waiting for (or done with) delivery on one channel.

    ``status``: pending (to send at ``next_attempt_at``), delivered, or failed (gave up:
    a non-retryable error or too many attempts). ``payload`` is the notification's JSON.
    """

    notification_id: str
    channel: str
    payload: dict[str, Any]
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
