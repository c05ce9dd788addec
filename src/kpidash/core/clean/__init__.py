"""Validation rules and auditable outlier correction for KPI points — the pure part of the
validator engine (the engine reads points and annotations, calls :func:`clean_series`, and
stores the report, the corrections and the summary).

Typical use::

    result = clean_kpi_series(kpi, values, timestamps, now=now, arrived_at=ingested_at,
                              events=windows_from_annotations(annotations, kpi.id))
    result.report            # Report: one issue per finding (codes in Code)
    result.corrections       # only the flagged points: raw, corrected, method, reason
    result.summary.to_dict() # counts, completeness, freshness
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from kpidash.core.clean import rules
from kpidash.core.clean.corrections import (
    Correction,
    Corrections,
    corrections_from_scan,
    propose_corrections,
)
from kpidash.core.clean.outliers import Scan, Window, event_mask, factor_name, scan
from kpidash.core.clean.rules import (
    LEVELS,
    Code,
    Duration,
    Finding,
    Findings,
    TimeLike,
    infer_interval,
    iso,
    times,
    to_delta,
    to_utc64,
)
from kpidash.core.clean.summary import QualitySummary, summarize
from kpidash.core.report import Level, Report
from kpidash.model import KPI, Annotation

__all__ = [
    "LEVELS", "CleanResult", "Code", "Correction", "Corrections", "Finding", "Findings",
    "QualitySummary", "Scan", "Window", "check_points", "clean_kpi_series", "clean_series",
    "event_mask", "factor_name", "infer_interval", "propose_corrections", "scan", "summarize",
    "windows_from_annotations",
]


@dataclass(frozen=True, slots=True)
class CleanResult:
    """Everything cleaning found for one series; ``cleaned`` = corrections applied to the
    raw values (same shape and order as the input)."""

    findings: Findings
    corrections: Corrections
    summary: QualitySummary
    cleaned: npt.NDArray[np.float64] = field(repr=False)
    kpi_id: str | None = None

    @property
    def report(self) -> Report:
        return self.findings.report(self.kpi_id)


def windows_from_annotations(annotations: Iterable[Annotation], kpi_id: str | None = None,
                             ) -> tuple[Window, ...]:
    """(start, end) windows of the annotations that apply to ``kpi_id`` (or to every KPI)."""
    return tuple((a.start, a.end) for a in annotations
                 if a.kpi_id is None or kpi_id is None or a.kpi_id == kpi_id)


def check_points(values: npt.ArrayLike, timestamps: Sequence[TimeLike] | npt.ArrayLike, *,
                 arrived_at: npt.ArrayLike | None = None, min_value: float | None = None,
                 max_value: float | None = None, max_lateness: Duration | None = None,
                 interval: Duration | None = None, now: TimeLike | None = None,
                 stale_after: float = 3.0) -> Findings:
    """Point and series rules (no outliers): non-finite, out of bounds, duplicate,
    out-of-order and late points, gaps and staleness.

    ``values``/``timestamps``/``arrived_at``: shape (n,), arrival order. ``interval``: the
    expected sampling interval (inferred as the median spacing when None). ``late`` needs
    ``arrived_at`` and ``max_lateness``; ``stale`` needs ``now`` (stale when the newest point
    is more than ``stale_after`` intervals old).
    """
    x = np.asarray(values, dtype=np.float64)
    ts = times(timestamps)
    if ts.shape != x.shape:
        raise ValueError(f"timestamps have shape {ts.shape} but values have shape {x.shape}")
    found = rules.non_finite(x, ts) + rules.out_of_bounds(x, ts, min_value, max_value)
    found += rules.duplicates(ts) + rules.out_of_order(ts)
    if arrived_at is not None and max_lateness is not None:
        arr = times(arrived_at)
        if arr.shape != ts.shape:
            raise ValueError(f"arrived_at has shape {arr.shape}, expected {ts.shape}")
        found += rules.late(ts, arr, max_lateness)
    step = to_delta(interval) if interval is not None else infer_interval(ts)
    if step is not None and step > np.timedelta64(0, "us"):
        found += rules.gaps(ts, step)
        if now is not None:
            found += rules.stale(ts, to_utc64(now), step, stale_after)
    return Findings(tuple(found))


def _outlier_findings(x: npt.NDArray[np.float64], ts: npt.NDArray[np.datetime64],
                      result: Scan) -> list[Finding]:
    out = []
    rz = result.rescaled_z(x)
    for i in np.flatnonzero(result.flagged):
        f = float(result.factor[i])
        code = Code.SCALE_ERROR if f else Code.OUTLIER
        level = Level.INFO if result.in_event[i] else LEVELS[code]
        what = (f"value {x[i]:.6g} at {iso(ts[i])} looks {f:g}× off (likely factor "
                f"{factor_name(f)}; rescaled robust-z {rz[i]:.1f})" if f else
                f"value {x[i]:.6g} at {iso(ts[i])} is {result.z[i]:+.1f} robust-z from the "
                f"baseline {result.baseline[i]:.6g}")
        note = "; inside a known-event window, not corrected" if result.in_event[i] else ""
        out.append(Finding(code, level, what + note, int(i), ts[i], float(x[i])))
    return out


def clean_series(values: npt.ArrayLike, timestamps: Sequence[TimeLike] | npt.ArrayLike, *,
                 now: TimeLike | None = None, arrived_at: npt.ArrayLike | None = None,
                 min_value: float | None = None, max_value: float | None = None,
                 max_lateness: Duration | None = timedelta(days=1),
                 interval: Duration | None = None, stale_after: float = 3.0,
                 season_length: int | None = None, events: Sequence[Window] = (),
                 threshold: float = 5.0, kpi_id: str | None = None,
                 start: TimeLike | None = None) -> CleanResult:
    """Run every rule, the seasonal outlier scan and the correction proposal on one series.

    ``values`` are the RAW values (never previously corrected ones), shape (n,), with their
    ``timestamps`` in arrival order. ``start`` opens the range used for completeness.
    """
    x = np.asarray(values, dtype=np.float64)
    ts = times(timestamps)
    step = to_delta(interval) if interval is not None else infer_interval(ts)
    findings = check_points(x, ts, arrived_at=arrived_at, min_value=min_value,
                            max_value=max_value, max_lateness=max_lateness, interval=step,
                            now=now, stale_after=stale_after)
    result = scan(x, ts, season_length=season_length, events=events, interval=step,
                  threshold=threshold)
    findings = findings + Findings(tuple(_outlier_findings(x, ts, result)))
    corrections = corrections_from_scan(x, ts, result, season_length)
    summary = summarize(ts, findings, corrections=len(corrections), interval=step,
                        now=None if now is None else to_utc64(now), values=x, kpi_id=kpi_id,
                        start=None if start is None else to_utc64(start))
    return CleanResult(findings, corrections, summary, corrections.apply(x), kpi_id)


def clean_kpi_series(kpi: KPI, values: npt.ArrayLike,
                     timestamps: Sequence[TimeLike] | npt.ArrayLike, *,
                     now: TimeLike | None = None, arrived_at: npt.ArrayLike | None = None,
                     events: Sequence[Window] = (), interval: Duration | None = None,
                     max_lateness: Duration | None = timedelta(days=1),
                     stale_after: float = 3.0, threshold: float = 5.0,
                     season_length: int | None = None) -> CleanResult:
    """:func:`clean_series` with the KPI's bounds, id and ``season_length`` (in sampling
    intervals of the raw points; pass ``season_length`` to override)."""
    return clean_series(values, timestamps, now=now, arrived_at=arrived_at,
                        min_value=kpi.min_value, max_value=kpi.max_value,
                        max_lateness=max_lateness, interval=interval, stale_after=stale_after,
                        season_length=season_length or kpi.season_length, events=events,
                        threshold=threshold, kpi_id=kpi.id)
