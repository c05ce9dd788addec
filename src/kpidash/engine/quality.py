"""Data quality of stored KPIs: run the cleaning rules per series, report, and correct.

The engine reads each series' points (raw values, in arrival order) and the annotations
that apply, calls :func:`kpidash.core.clean.clean_kpi_series`, and — when asked — stores the
proposed corrections through the store (raw values kept, every change logged).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kpidash.core.batch import SERIES_KEY_SEP
from kpidash.core.clean import CleanResult, clean_kpi_series, windows_from_annotations
from kpidash.model import KPI, Annotation

META_COLUMNS = ("ts", "value", "raw_value", "correction", "correction_reason", "series_key",
                "ingested_at")


@dataclass(frozen=True)
class SeriesQuality:
    dims: dict[str, str]
    series_key: str
    result: CleanResult


@dataclass(frozen=True)
class KpiQuality:
    """The quality of every series of one KPI, plus totals."""

    kpi_id: str
    generated_at: datetime
    series: tuple[SeriesQuality, ...]
    stored_corrections: int

    @property
    def proposed_corrections(self) -> int:
        return sum(len(s.result.corrections) for s in self.series)

    def issue_counts(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for s in self.series:
            total.update(dict(s.result.summary.issue_counts))
        return dict(sorted(total.items()))

    def to_dict(self, issues_per_series: int = 20) -> dict[str, Any]:
        sums = [s.result.summary for s in self.series]
        expected = sum(x.expected_periods or 0 for x in sums)
        present = sum(x.present_periods for x in sums)
        firsts = [x.first_ts for x in sums if x.first_ts is not None]
        lasts = [x.last_ts for x in sums if x.last_ts is not None]
        return {
            "kpi_id": self.kpi_id,
            "generated_at": self.generated_at.isoformat(),
            "series": len(self.series),
            "points": sum(x.points for x in sums),
            "issue_counts": self.issue_counts(),
            "completeness_pct": round(100 * present / expected, 3) if expected else None,
            "first_ts": str(min(firsts)) + "Z" if firsts else None,
            "last_ts": str(max(lasts)) + "Z" if lasts else None,
            "stale_series": sum(1 for x in sums if x.stale),
            "corrections": {"proposed": self.proposed_corrections,
                            "stored": self.stored_corrections},
            "by_series": [
                {"dims": s.dims, "summary": s.result.summary.to_dict(),
                 "issues": [i.to_dict() for i in s.result.report.issues[:issues_per_series]],
                 "corrections": [c.to_dict() for c in s.result.corrections]}
                for s in self.series],
        }


def assess(kpi: KPI, points: pa.Table, annotations: list[Annotation], now: datetime,
           ) -> KpiQuality:
    """Clean every series of ``points`` (as returned by ``Store.read_points``)."""
    events = windows_from_annotations(annotations, kpi.id)
    dim_cols = [c for c in points.column_names if c not in META_COLUMNS]
    stored = int(pc.sum(pc.is_valid(points["raw_value"])).as_py() or 0) if points.num_rows else 0
    out: list[SeriesQuality] = []
    if points.num_rows:
        keys = np.asarray(points["series_key"].to_numpy(zero_copy_only=False), dtype=object)
        order = np.lexsort((np.asarray(pc.cast(points["ts"], pa.int64())),
                            np.asarray(pc.cast(points["ingested_at"], pa.int64())), keys))
        keys_sorted = keys[order]
        starts = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
        ends = np.r_[starts[1:], len(order)]
        value = np.asarray(points["value"].to_numpy(zero_copy_only=False), dtype=np.float64)
        raw = np.asarray(pc.fill_null(points["raw_value"], np.nan).to_numpy(
            zero_copy_only=False), dtype=np.float64)
        sent = np.where(np.isnan(raw), value, raw)  # clean the values as sent, never stacked
        ts = np.asarray(pc.cast(points["ts"], pa.timestamp("us")).to_numpy(
            zero_copy_only=False), dtype="datetime64[us]")
        arrived = np.asarray(pc.cast(points["ingested_at"], pa.timestamp("us")).to_numpy(
            zero_copy_only=False), dtype="datetime64[us]")
        for a, b in zip(starts, ends, strict=True):
            idx = order[a:b]
            key = str(keys[idx[0]])
            result = clean_kpi_series(kpi, sent[idx], ts[idx], now=now, arrived_at=arrived[idx],
                                      events=events)
            dims = {c: points[c][int(idx[0])].as_py() for c in dim_cols}
            out.append(SeriesQuality({k: v for k, v in dims.items() if v is not None}, key,
                                     result))
    return KpiQuality(kpi.id, now, tuple(sorted(out, key=lambda s: s.series_key)), stored)


def corrections_table(quality: KpiQuality) -> pa.Table:
    """The proposed corrections of every series as a table for ``Store.apply_corrections``."""
    cols: dict[str, list[Any]] = {"series_key": [], "ts": [], "value": [], "method": [],
                                  "reason": []}
    for s in quality.series:
        for c in s.result.corrections:
            cols["series_key"].append(s.series_key)
            cols["ts"].append(c.ts)
            cols["value"].append(c.corrected)
            cols["method"].append(c.method)
            cols["reason"].append(c.reason)
    return pa.table({
        "series_key": pa.array(cols["series_key"], pa.string()),
        "ts": pa.array(np.array(cols["ts"], dtype="datetime64[us]")).cast(
            pa.timestamp("us", tz="UTC")),
        "value": pa.array(cols["value"], pa.float64()),
        "method": pa.array(cols["method"], pa.string()),
        "reason": pa.array(cols["reason"], pa.string())})


def dims_of(series_key: str) -> dict[str, str]:
    """Dimension values encoded in a series key."""
    pairs = [p.split("=", 1) for p in series_key.split(SERIES_KEY_SEP)[1:] if p]
    return {k: v for k, v in pairs}
