"""Period-over-period change: the last complete period against the previous one and
against the same period a year earlier.

For a value ``c`` in the current period and ``r`` in a reference period (KPI units):

* ``absolute = c − r`` (KPI units);
* ``percent = 100 × (c − r) / |r|`` (percent; ``None`` when ``r == 0``);
* ``direction`` is ``"flat"`` when ``|percent| ≤ flat_pct`` (or, when the percent is
  undefined, when ``c == r``), else ``"up"``/``"down"`` by the sign of ``absolute``;
* ``favourable`` is ``direction == "up"`` for a KPI where higher is better (reversed when
  lower is better) and ``None`` when flat or unknown.

Reference periods are found **by calendar**, never by counting array positions: the previous
period starts one grain before the current one; the year-ago period starts one calendar year
before (for ``week`` 52 weeks, so weekdays line up; a 29 February maps to 28 February). For
day and coarser grains the arithmetic is done on the local wall clock of ``tz`` (the keys of
:mod:`kpidash.core.aggregate`), for hour and minute grains in UTC. A reference period absent
from ``periods``, or a NaN value, gives ``None`` fields — never a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from kpidash.core.aggregate import LOCAL_GRAINS, keys_to_utc
from kpidash.model import Grain

Direction = Literal["up", "down", "flat"]
TimeLike = datetime | np.datetime64

_STEP = {Grain.MINUTE: pd.DateOffset(minutes=1), Grain.HOUR: pd.DateOffset(hours=1),
         Grain.DAY: pd.DateOffset(days=1), Grain.WEEK: pd.DateOffset(weeks=1),
         Grain.MONTH: pd.DateOffset(months=1), Grain.QUARTER: pd.DateOffset(months=3),
         Grain.YEAR: pd.DateOffset(years=1)}
_YEAR = {Grain.WEEK: pd.DateOffset(weeks=52)}
# Positions per year, used only when no period timestamps are given.
_YEAR_STEPS = {Grain.WEEK: 52, Grain.MONTH: 12, Grain.QUARTER: 4, Grain.YEAR: 1}


def to_utc64(t: TimeLike) -> np.datetime64:
    """An instant as naive UTC ``datetime64[us]``; a Python datetime must be timezone-aware."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got naive {t.isoformat()}; "
                             "attach a tzinfo (e.g. datetime.UTC)")
        t = pd.Timestamp(t).tz_convert("UTC").tz_localize(None).to_datetime64()
    return np.datetime64(np.asarray(t).astype("datetime64[us]").item(), "us")


@dataclass(frozen=True, slots=True)
class Change:
    """The current period compared with one reference period (``None`` = unknown)."""

    reference_index: int | None
    reference_period: np.datetime64 | None
    reference_value: float | None
    absolute: float | None
    percent: float | None
    direction: Direction | None
    favourable: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {"reference_index": self.reference_index,
                "reference_period": _iso(self.reference_period),
                "reference_value": self.reference_value, "absolute": self.absolute,
                "percent": self.percent, "direction": self.direction,
                "favourable": self.favourable}


@dataclass(frozen=True, slots=True)
class PeriodComparison:
    """Last complete period vs the previous period and vs the same period a year ago."""

    grain: Grain
    current_index: int | None
    current_period: np.datetime64 | None
    current_value: float | None
    previous: Change
    year_ago: Change

    def to_dict(self) -> dict[str, Any]:
        return {"grain": str(self.grain), "current_index": self.current_index,
                "current_period": _iso(self.current_period),
                "current_value": self.current_value, "previous": self.previous.to_dict(),
                "year_ago": self.year_ago.to_dict()}


def _iso(t: np.datetime64 | None) -> str | None:
    return None if t is None else str(np.datetime_as_string(t, unit="s")) + "Z"


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _shift(periods: npt.NDArray[np.datetime64], grain: Grain, tz: str,
           offset: pd.DateOffset) -> npt.NDArray[np.datetime64]:
    """UTC period starts moved by a calendar offset (local wall clock for local grains)."""
    idx = pd.DatetimeIndex(periods.astype("datetime64[us]"))
    if grain in LOCAL_GRAINS:
        local = idx.tz_localize("UTC").tz_convert(tz).tz_localize(None)
        keys = np.asarray((local + offset).values, dtype="datetime64[us]")
        return keys_to_utc(keys, grain, tz)[0]
    return np.asarray((idx + offset).values, dtype="datetime64[us]")


def _find(periods: npt.NDArray[np.datetime64], target: np.datetime64) -> int | None:
    hits = np.flatnonzero(periods == target)
    return int(hits[0]) if hits.size else None


def compare_periods(values: npt.ArrayLike, periods: npt.ArrayLike | None = None, *,
                    grain: Grain, now: TimeLike | None = None, tz: str = "UTC",
                    higher_is_better: bool = True, flat_pct: float = 0.0,
                    ) -> PeriodComparison:
    """Compare the last complete period with the previous one and with a year ago.

    ``values``: shape (n,), one value per period, NaN where missing. ``periods``: shape (n,)
    UTC period starts (``datetime64``, like :attr:`Series.periods`), ascending. Without
    ``periods`` every position is taken as consecutive and complete, and the year-ago
    reference is 52/12/4/1 positions back for week/month/quarter/year (``None`` for finer
    grains, which need a calendar). With ``now`` the current period is the last one whose
    end (start + one grain) is at or before ``now``; without it, the last period.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[0]
    nothing = Change(None, None, None, None, None, None, None)
    if periods is None:
        cur: int | None = n - 1 if n else None
        prev = cur - 1 if cur is not None and cur >= 1 else None
        steps = _YEAR_STEPS.get(grain)
        ago = cur - steps if cur is not None and steps and cur >= steps else None
        p = None
    else:
        p = np.asarray(periods, dtype="datetime64[us]")
        if p.shape != v.shape:
            raise ValueError(f"periods has shape {p.shape} but values has shape {v.shape}")
        cur = n - 1 if n else None
        if now is not None and n:
            complete = np.flatnonzero(_shift(p, grain, tz, _STEP[grain]) <= to_utc64(now))
            cur = int(complete[-1]) if complete.size else None
        prev = ago = None
        if cur is not None:
            one = p[cur:cur + 1]
            prev = _find(p, _shift(one, grain, tz, -_STEP[grain])[0])
            year = _YEAR.get(grain, pd.DateOffset(years=1))
            ago = _find(p, _shift(one, grain, tz, -year)[0])
    if cur is None:
        return PeriodComparison(grain, None, None, None, nothing, nothing)
    c = _finite(v[cur])

    def change(ref: int | None) -> Change:
        if ref is None:
            return nothing
        r = _finite(v[ref])
        rp = None if p is None else p[ref]
        if c is None or r is None:
            return Change(ref, rp, r, None, None, None, None)
        absolute = c - r
        pct = 100.0 * absolute / abs(r) if r != 0 else None
        flat = abs(pct) <= flat_pct if pct is not None else absolute == 0
        direction: Direction = "flat" if flat else ("up" if absolute > 0 else "down")
        fav = None if flat else (direction == "up") == higher_is_better
        return Change(ref, rp, r, absolute, pct, direction, fav)

    return PeriodComparison(grain, cur, None if p is None else p[cur], c, change(prev),
                            change(ago))
