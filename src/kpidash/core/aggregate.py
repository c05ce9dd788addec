"""Time grains, period ranges, and composition of ratio and derived KPIs.

The store aggregates *simple* KPIs per period and slice (see :class:`AggRows`); this module
turns those rows into dense :class:`~kpidash.model.Series` with every period of the range
present (NaN where a period has no data), and computes

* ratio KPIs as ``scale × A(numerator) / A(denominator)`` where ``A`` is each input's own
  additive aggregate over the same period and slice — a ratio of sums, never a mean of
  ratios; a zero denominator gives NaN;
* derived KPIs by evaluating their expression on their inputs' aggregated series.

Period keys: for day and coarser grains a period is a calendar period in the query's time
zone and its key is the local wall-clock start (naive); for hour and minute grains the key
is the UTC start (naive). Hourly bucketing in UTC is exact for every zone whose offset is a
whole number of hours; for half-hour zones hours are UTC hours (documented limitation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pandas as pd

from kpidash.core.expression import parse_expression
from kpidash.core.registry import Registry
from kpidash.errors import ConfigError, QueryError
from kpidash.model import KPI, Grain, KpiKind, Series

LOCAL_GRAINS = (Grain.DAY, Grain.WEEK, Grain.MONTH, Grain.QUARTER, Grain.YEAR)
_FREQ = {Grain.MINUTE: "min", Grain.HOUR: "h", Grain.DAY: "D", Grain.WEEK: "W-MON",
         Grain.MONTH: "MS", Grain.QUARTER: "QS", Grain.YEAR: "YS"}
NO_GROUP = "(none)"


@dataclass(frozen=True)
class Query:
    """What to compute: one KPI at a grain over [start, end), in a time zone.

    ``filters`` keeps points whose dimension equals one of the given values (several
    dimensions combine with AND); ``group_by`` returns one series per value of a dimension.
    """

    kpi_id: str
    grain: Grain
    start: datetime
    end: datetime
    tz: str = "UTC"
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    group_by: str | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise QueryError("query start and end must be timezone-aware")
        if self.end <= self.start:
            raise QueryError(f"query end {self.end.isoformat()} must be after start "
                             f"{self.start.isoformat()}")
        check_instants(self.start, self.end, "query")
        periods = (self.end - self.start) / _APPROX[self.grain]
        if periods > MAX_PERIODS:
            raise QueryError(f"the query range {self.start.isoformat()} … {self.end.isoformat()} "
                             f"holds about {periods:,.0f} {self.grain} periods, more than "
                             f"{MAX_PERIODS:,}; narrow the range or use a coarser grain")
        check_timezone(self.tz)


# Instants pandas can hold (datetime64[ns]): every period computation goes through it
EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)
MAX_PERIODS = 1_000_000  # periods of one query (a year of minutes is 525,600)
_APPROX = {Grain.MINUTE: timedelta(minutes=1), Grain.HOUR: timedelta(hours=1),
           Grain.DAY: timedelta(days=1), Grain.WEEK: timedelta(weeks=1),
           Grain.MONTH: timedelta(days=28), Grain.QUARTER: timedelta(days=89),
           Grain.YEAR: timedelta(days=365)}


def check_instants(start: datetime, end: datetime, what: str) -> None:
    """QueryError unless both (aware) instants are within [EARLIEST, LATEST)."""
    for name, ts in (("start", start), ("end", end)):
        if not EARLIEST <= ts < LATEST:
            raise QueryError(f"{what} {name} {ts.isoformat()} is outside the supported range "
                             f"{EARLIEST:%Y-%m-%d} … {LATEST:%Y-%m-%d} (UTC)")


@dataclass(frozen=True)
class AggRows:
    """A simple KPI aggregated by the store: one row per (period key, group)."""

    keys: npt.NDArray[np.datetime64]
    groups: npt.NDArray[np.object_]
    values: npt.NDArray[np.float64]


def check_timezone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {tz!r}; use an IANA name such as 'UTC' or "
                          "'Europe/Paris'") from None


def period_keys(start: datetime, end: datetime, grain: Grain, tz: str,
                ) -> npt.NDArray[np.datetime64]:
    """Keys of every period that overlaps [start, end), as naive datetime64[us]."""
    if grain in LOCAL_GRAINS:
        s = pd.Timestamp(start).tz_convert(tz).tz_localize(None)
        e = pd.Timestamp(end).tz_convert(tz).tz_localize(None)
    else:
        s = pd.Timestamp(start).tz_convert("UTC").tz_localize(None)
        e = pd.Timestamp(end).tz_convert("UTC").tz_localize(None)
    first = floor_key(s, grain)
    idx = pd.date_range(first, e, freq=_FREQ[grain], inclusive="left")
    if len(idx) == 0:
        idx = pd.DatetimeIndex([first])
    return np.asarray(idx.values, dtype="datetime64[us]")


def floor_key(ts: pd.Timestamp, grain: Grain) -> pd.Timestamp:
    """Start of the period containing a naive timestamp (weeks start on Monday)."""
    if grain is Grain.MINUTE:
        return ts.floor("min")
    if grain is Grain.HOUR:
        return ts.floor("h")
    day = ts.normalize()
    if grain is Grain.DAY:
        return day
    if grain is Grain.WEEK:
        return day - pd.Timedelta(days=day.weekday())
    if grain is Grain.MONTH:
        return day.replace(day=1)
    if grain is Grain.QUARTER:
        return day.replace(month=3 * ((day.month - 1) // 3) + 1, day=1)
    return day.replace(month=1, day=1)


def keys_to_utc(keys: npt.NDArray[np.datetime64], grain: Grain, tz: str,
                ) -> tuple[npt.NDArray[np.datetime64], tuple[str, ...]]:
    """Period keys → (UTC instants as datetime64[us], ISO labels with the local offset)."""
    idx = pd.DatetimeIndex(keys)
    if grain in LOCAL_GRAINS:
        local = idx.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        if local.isna().any():  # an ambiguous local midnight: take the first occurrence
            local = idx.tz_localize(tz, ambiguous=np.ones(len(idx), dtype=bool),
                                    nonexistent="shift_forward")
        utc = local.tz_convert("UTC")
    else:
        utc = idx.tz_localize("UTC")
        local = utc.tz_convert(tz)
    return np.asarray(utc.tz_localize(None).values, dtype="datetime64[us]"), _iso_labels(
        local, utc)


def _iso_labels(local: pd.DatetimeIndex, utc: pd.DatetimeIndex) -> tuple[str, ...]:
    """ISO 8601 labels with the local offset ('2024-03-31T00:00:00+02:00'), vectorised:
    numpy formats the wall-clock part, and the few distinct offsets are formatted once."""
    wall = np.datetime_as_string(local.tz_localize(None).values.astype("datetime64[s]"),
                                 unit="s")
    offsets = ((local.tz_localize(None) - utc.tz_localize(None)).total_seconds() // 60)
    names = {int(m): f"{'+' if m >= 0 else '-'}{int(abs(m)) // 60:02d}:{int(abs(m)) % 60:02d}"
             for m in np.unique(offsets)}
    return tuple(w + names[int(m)] for w, m in zip(wall, offsets, strict=True))


def complete_periods(series: Series, now: datetime) -> int:
    """How many leading periods of ``series`` have ended by ``now`` (a period ends where the
    next one starts, in the series' zone, so DST-length days and months are exact)."""
    n = len(series)
    if n == 0:
        return 0
    last = pd.Timestamp(series.periods[-1]).tz_localize("UTC").to_pydatetime()
    step = pd.Timedelta(days=400) if series.grain in LOCAL_GRAINS else pd.Timedelta(days=1)
    keys = period_keys(last, last + step, series.grain, series.tz)
    after, _ = keys_to_utc(keys[1:2], series.grain, series.tz)
    ends = np.append(series.periods[1:], after[:1])
    return int(np.sum(ends <= np.datetime64(now.astimezone(UTC).replace(tzinfo=None), "us")))


def densify(rows: AggRows, keys: npt.NDArray[np.datetime64], groups: Sequence[str | None],
            ) -> npt.NDArray[np.float64]:
    """AggRows → matrix [len(groups) × len(keys)], NaN where a (group, period) has no row."""
    out = np.full((len(groups), len(keys)), np.nan)
    if len(rows.values) == 0:
        return out
    col = np.searchsorted(keys, rows.keys)
    col_ok = (col < len(keys))
    col_ok[col_ok] = keys[col[col_ok]] == rows.keys[col_ok]
    if len(groups) == 1 and groups[0] is None:  # ungrouped: every row is the one series
        row = np.where(pd.isna(rows.groups), 0, -1).astype(np.int64)
    else:
        gidx = {g: i for i, g in enumerate(groups)}
        row = np.array([gidx.get(g, -1) for g in rows.groups], dtype=np.int64)
    ok = col_ok & (row >= 0)
    out[row[ok], col[ok]] = rows.values[ok]
    return out


def compose(kpi: KPI, registry: Registry, inputs: Mapping[str, npt.NDArray[np.float64]],
            ) -> npt.NDArray[np.float64]:
    """The matrix of ``kpi`` from dense matrices of its simple inputs (same shape)."""
    if kpi.kind is KpiKind.SIMPLE:
        return inputs[kpi.id]
    if kpi.kind is KpiKind.RATIO:
        assert kpi.numerator and kpi.denominator  # guaranteed by registry validation
        num = compose(registry.get(kpi.numerator), registry, inputs)
        den = compose(registry.get(kpi.denominator), registry, inputs)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = kpi.scale * num / den
        out[~np.isfinite(out)] = np.nan
        return out
    assert kpi.expression
    expr = parse_expression(kpi.expression)
    env = {name: compose(registry.get(name), registry, inputs) for name in expr.names}
    return expr.evaluate(env)


def to_series(kpi: KPI, matrix: npt.NDArray[np.float64], periods: npt.NDArray[np.datetime64],
              labels: tuple[str, ...], groups: Sequence[str | None], grain: Grain, tz: str,
              ) -> list[Series]:
    """One Series per group (row of ``matrix``); ``periods``/``labels`` from keys_to_utc."""
    return [Series(kpi_id=kpi.id, grain=grain, tz=tz, periods=periods,
                   values=np.ascontiguousarray(matrix[i]), group=g, labels=labels)
            for i, g in enumerate(groups)]


def check_dimensions(query: Query, registry: Registry) -> None:
    """Filters and group-by must use dimensions every simple input of the KPI has."""
    used = set(query.filters) | ({query.group_by} if query.group_by else set())
    check_dimension_names(registry, query.kpi_id, used)


def check_dimension_names(registry: Registry, kpi_id: str, used: Iterable[str]) -> None:
    """QueryError naming the first simple input of ``kpi_id`` that lacks one of ``used``
    (a query of the KPI may filter or group by those only; saved filters too)."""
    wanted = set(used)
    for simple_id in registry.simple_inputs(kpi_id):
        dims = set(registry.get(simple_id).dimensions)
        missing = sorted(wanted - dims)
        if missing:
            via = "" if simple_id == kpi_id else f" (its input {simple_id!r})"
            raise QueryError(
                f"KPI {kpi_id!r}{via} has no dimension {', '.join(map(repr, missing))}; "
                f"available: {sorted(dims) or 'none'}")


def key_to_instant(key: Any, grain: Grain, tz: str) -> datetime:
    """The UTC instant a local period key (its start, naive local time) begins."""
    utc, _ = keys_to_utc(pd.DatetimeIndex([key]).values, grain, tz)
    instant: datetime = pd.Timestamp(utc[0]).tz_localize("UTC").to_pydatetime()
    return instant


def period_start(instant: datetime, grain: Grain, tz: str) -> datetime:
    """The start (UTC) of the ``grain`` period of zone ``tz`` containing ``instant``."""
    key = period_keys(instant, instant + timedelta(microseconds=1), grain, tz)[0]
    return key_to_instant(key, grain, tz)


def periods_back(start: datetime, grain: Grain, periods: int, tz: str) -> datetime:
    """The start of the period ``periods`` periods before the period starting at ``start``
    (negative: after it), in zone ``tz`` (DST-exact calendar arithmetic)."""
    local = pd.Timestamp(start).tz_convert(tz).tz_localize(None)
    offsets = {Grain.MINUTE: pd.DateOffset(minutes=periods), Grain.HOUR:
               pd.DateOffset(hours=periods), Grain.DAY: pd.DateOffset(days=periods),
               Grain.WEEK: pd.DateOffset(weeks=periods), Grain.MONTH:
               pd.DateOffset(months=periods), Grain.QUARTER: pd.DateOffset(months=3 * periods),
               Grain.YEAR: pd.DateOffset(years=periods)}
    return key_to_instant((local - offsets[grain]).to_datetime64(), grain, tz)
