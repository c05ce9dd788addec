"""Data-quality rules on one series of points: each returns :class:`Finding` objects that
name the rule (:class:`Code`), the point (0-based ``index`` into the input arrays and its
timestamp) and explain what was expected and what came.

Timestamps are UTC instants as ``datetime64`` (naive = UTC, like ``Series.periods``) or
timezone-aware Python datetimes; arrays are in **arrival order** (the order points were
ingested), which is what the out-of-order rule checks. Other rules do not depend on order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd

from kpidash.core.report import Level, Report, ReportBuilder

Times = npt.NDArray[np.datetime64]
TimeLike = datetime | np.datetime64
Duration = timedelta | np.timedelta64


class Code(StrEnum):
    NON_FINITE = "quality.non_finite"
    OUT_OF_BOUNDS = "quality.out_of_bounds"
    DUPLICATE = "quality.duplicate"
    OUT_OF_ORDER = "quality.out_of_order"
    LATE = "quality.late"
    GAP = "quality.gap"
    STALE = "quality.stale"
    SCALE_ERROR = "quality.scale_error"
    OUTLIER = "quality.outlier"


# Default level per rule. Points inside a known-event window are reported at INFO instead.
LEVELS: dict[Code, Level] = {
    Code.NON_FINITE: Level.ERROR, Code.OUT_OF_BOUNDS: Level.ERROR,
    Code.DUPLICATE: Level.WARNING, Code.OUT_OF_ORDER: Level.INFO, Code.LATE: Level.WARNING,
    Code.GAP: Level.WARNING, Code.STALE: Level.WARNING, Code.SCALE_ERROR: Level.WARNING,
    Code.OUTLIER: Level.WARNING,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem. ``index`` is None for series-level findings (stale)."""

    code: Code
    level: Level
    message: str
    index: int | None = None
    ts: np.datetime64 | None = None
    value: float | None = None

    @property
    def field(self) -> str:
        return "timestamp" if self.code in _TIME_CODES else "value"


_TIME_CODES = {Code.DUPLICATE, Code.OUT_OF_ORDER, Code.LATE, Code.GAP, Code.STALE}


@dataclass(frozen=True, slots=True)
class Findings:
    """All findings of a check, in rule order then index order."""

    items: tuple[Finding, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    def indices(self, code: Code | str) -> npt.NDArray[np.int64]:
        """Sorted input positions flagged by ``code``."""
        return np.array(sorted({f.index for f in self.items
                                if f.code == code and f.index is not None}), dtype=np.int64)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(str(f.code) for f in self.items).items()))

    def __add__(self, other: Findings) -> Findings:
        return Findings(self.items + other.items)

    def report(self, kpi_id: str | None = None, *, source: str | None = None,
               cap_per_code: int = 1000) -> Report:
        """As a :class:`Report`: ``row`` is the 1-based input position, ``field`` is
        ``value`` or ``timestamp``, ``item`` the KPI id; the timestamp is in the message."""
        b = ReportBuilder(cap_per_code)
        for f in self.items:
            b.add(f.level, str(f.code), f.message, source=source, item=kpi_id,
                  row=None if f.index is None else f.index + 1, field=f.field)
        return b.build()


def iso(t: np.datetime64 | None) -> str:
    return "?" if t is None else str(np.datetime_as_string(t, unit="s")) + "Z"


def to_utc64(t: TimeLike) -> np.datetime64:
    """An instant as naive UTC ``datetime64[us]``; a Python datetime must be aware."""
    out: np.datetime64 = times([t])[0]
    return out


def times(ts: Sequence[TimeLike] | npt.ArrayLike) -> Times:
    """Timestamps as naive UTC ``datetime64[us]``, shape (n,)."""
    arr = np.asarray(ts)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[us]")
    if any(isinstance(t, datetime) and t.tzinfo is None for t in arr.ravel()):
        raise ValueError("timestamps must be timezone-aware datetimes or datetime64 in UTC; "
                         "got a naive datetime — attach a tzinfo")
    idx = pd.DatetimeIndex(pd.to_datetime(arr.ravel(), utc=True)).tz_convert(None)
    return np.asarray(idx.values, dtype="datetime64[us]")


def to_delta(d: Duration) -> np.timedelta64:
    return np.timedelta64(pd.Timedelta(d).to_timedelta64(), "us")


def infer_interval(ts: Times) -> np.timedelta64 | None:
    """The expected sampling interval: median of positive spacings of the sorted distinct
    timestamps (None with fewer than two distinct timestamps)."""
    u = np.unique(ts[~np.isnat(ts)])
    if u.size < 2:
        return None
    return np.timedelta64(int(np.median(np.diff(u).astype(np.int64))), "us")


def _f(code: Code, msg: str, index: int | None, ts: Times | None, value: float | None = None,
       ) -> Finding:
    t = None if ts is None or index is None else ts[index]
    return Finding(code, LEVELS[code], msg, index, t, value)


def non_finite(values: npt.NDArray[np.float64], ts: Times) -> list[Finding]:
    return [_f(Code.NON_FINITE, f"value at {iso(ts[i])} is {values[i]} (expected a finite "
               "number); it is ignored by cleaning", int(i), ts)
            for i in np.flatnonzero(~np.isfinite(values))]


def out_of_bounds(values: npt.NDArray[np.float64], ts: Times, min_value: float | None,
                  max_value: float | None) -> list[Finding]:
    lo = -np.inf if min_value is None else min_value
    hi = np.inf if max_value is None else max_value
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero((values < lo) | (values > hi))
    return [_f(Code.OUT_OF_BOUNDS, f"value {values[i]:.6g} at {iso(ts[i])} is outside the "
               f"KPI's bounds [{min_value}, {max_value}]", int(i), ts, float(values[i]))
            for i in bad]


def duplicates(ts: Times) -> list[Finding]:
    """Every point whose timestamp already occurred earlier in the input."""
    first: dict[np.datetime64, int] = {}
    out = []
    for i, t in enumerate(ts):
        if t in first:
            out.append(_f(Code.DUPLICATE, f"timestamp {iso(t)} repeats row {first[t] + 1} "
                          "(expected one point per timestamp)", i, ts))
        else:
            first[t] = i
    return out


def out_of_order(ts: Times) -> list[Finding]:
    """Points that arrived after a point with a later timestamp."""
    if ts.size < 2:
        return []
    prev_max = np.maximum.accumulate(ts)[:-1]
    bad = np.flatnonzero(ts[1:] < prev_max) + 1
    return [_f(Code.OUT_OF_ORDER, f"point {iso(ts[i])} arrived after a point for "
               f"{iso(prev_max[i - 1])}", int(i), ts) for i in bad]


def late(ts: Times, arrived_at: Times, max_lateness: Duration) -> list[Finding]:
    """Points that arrived behind the series' watermark by more than ``max_lateness``.

    The watermark of a point is the newest timestamp among points that arrived strictly
    earlier (streaming systems' notion of late data): a Monday value arriving after
    Wednesday's is late; a backfill of history in one batch is not.
    """
    order = np.lexsort((ts, arrived_at))
    a, t = arrived_at[order], ts[order]
    limit = to_delta(max_lateness)
    bad: list[int] = []
    watermark = None
    i = 0
    while i < len(order):  # one arrival instant at a time
        j = i
        while j < len(order) and a[j] == a[i]:
            j += 1
        if watermark is not None:
            bad.extend(int(order[k]) for k in range(i, j) if t[k] < watermark - limit)
        newest = t[i:j].max()
        watermark = newest if watermark is None else max(watermark, newest)
        i = j
    return [_f(Code.LATE, f"point {iso(ts[k])} arrived at {iso(arrived_at[k])}, when the series "
               f"already had newer data (allowed lateness {pd.Timedelta(limit)})", k, ts)
            for k in sorted(bad)]


def gaps(ts: Times, interval: Duration) -> list[Finding]:
    """Missing periods between consecutive distinct timestamps: a spacing ``d`` counts
    ``round(d / interval) − 1`` missing periods (so calendar months of 28–31 days at a
    31-day interval count none). Reported on the first point after the gap."""
    order = np.argsort(ts, kind="stable")
    s = ts[order]
    keep = np.concatenate([[True], s[1:] != s[:-1]])
    s, pos = s[keep], order[keep]
    interval = to_delta(interval)
    step = interval.astype(np.int64)
    missing = np.rint(np.diff(s).astype(np.int64) / step).astype(np.int64) - 1
    return [_f(Code.GAP, f"{missing[k]} missing period(s) of {pd.Timedelta(interval)} "
               f"between {iso(s[k])} and {iso(s[k + 1])}", int(pos[k + 1]), ts)
            for k in np.flatnonzero(missing >= 1)]


def stale(ts: Times, now: TimeLike, interval: Duration,
          after_intervals: float) -> list[Finding]:
    """A series-level finding when the newest point is older than ``after_intervals``
    expected intervals before ``now``."""
    if ts.size == 0:
        return []
    now, interval = to_utc64(now), to_delta(interval)
    last = ts.max()
    age = now - last
    if age.astype(np.int64) <= after_intervals * interval.astype(np.int64):
        return []
    return [Finding(Code.STALE, LEVELS[Code.STALE], f"no data since {iso(last)}: "
                    f"{pd.Timedelta(age)} before {iso(now)} is more than {after_intervals:g} "
                    f"expected intervals of {pd.Timedelta(interval)}", None, last)]
