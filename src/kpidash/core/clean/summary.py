"""A data-quality summary per KPI (or per series), JSON-ready."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kpidash.core.clean.rules import Code, Findings, Times, iso


@dataclass(frozen=True, slots=True)
class QualitySummary:
    """Counts and coverage of one series.

    ``completeness_pct = 100 × present / expected`` where ``expected`` is the number of
    intervals from ``start`` (default: the first timestamp) to the last timestamp, inclusive,
    and ``present`` the number of distinct timestamps in that range; ``freshness_seconds`` is
    ``now − last timestamp`` in seconds.
    """

    kpi_id: str | None
    points: int
    issue_counts: tuple[tuple[str, int], ...]
    expected_periods: int | None
    present_periods: int
    completeness_pct: float | None
    first_ts: np.datetime64 | None
    last_ts: np.datetime64 | None
    interval_seconds: float | None
    corrections: int
    freshness_seconds: float | None
    stale: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kpi_id": self.kpi_id, "points": self.points,
                "issue_counts": dict(self.issue_counts),
                "expected_periods": self.expected_periods,
                "present_periods": self.present_periods,
                "completeness_pct": self.completeness_pct,
                "first_ts": None if self.first_ts is None else iso(self.first_ts),
                "last_ts": None if self.last_ts is None else iso(self.last_ts),
                "interval_seconds": self.interval_seconds, "corrections": self.corrections,
                "freshness_seconds": self.freshness_seconds, "stale": self.stale}


def summarize(ts: Times, findings: Findings, *, corrections: int,
              interval: np.timedelta64 | None, now: np.datetime64 | None,
              values: npt.NDArray[np.float64] | None = None, kpi_id: str | None = None,
              start: np.datetime64 | None = None) -> QualitySummary:
    """Summarise a checked series (``ts`` shape (n,) UTC datetime64)."""
    ok = ~np.isnat(ts)
    if values is not None:
        ok &= np.isfinite(values)
    good = np.unique(ts[ok])
    first = good[0] if good.size else None
    last = good[-1] if good.size else None
    begin = start if start is not None else first
    expected = completeness = None
    present = int(good.size)
    if begin is not None and last is not None and interval is not None and last >= begin:
        step = int(interval.astype("timedelta64[us]").astype(np.int64))
        expected = round(int((last - begin).astype("timedelta64[us]").astype(np.int64)) / step) + 1
        present = int(np.count_nonzero(good >= begin))
        completeness = round(100.0 * min(present, expected) / expected, 3)
    fresh = None
    if now is not None and last is not None:
        fresh = float((now - last).astype("timedelta64[us]").astype(np.int64)) / 1e6
    counts = findings.counts()
    return QualitySummary(
        kpi_id, int(ts.shape[0]), tuple(counts.items()), expected, present, completeness,
        first, last, None if interval is None else float(interval / np.timedelta64(1, "s")),
        corrections, fresh, counts.get(str(Code.STALE), 0) > 0)
