"""``kpidash anomalies``: score a ``timestamp,value`` CSV with the online anomaly detector.

Output (CSV, to ``--out`` or stdout): one row per input row, in input order, with columns
``timestamp,value,score,is_anomaly`` — timestamp and value exactly as read, score in [0, 1]
with 4 decimals, is_anomaly 0/1. An empty (or ``nan``/``NA``) value is a missing period:
score 0, is_anomaly 0. A one-line summary goes to stderr.

Rows are sorted by timestamp internally. The sampling interval is the median gap between
consecutive timestamps, snapped to calendar months, quarters and years when it is 28–31,
89–92 or 365–366 days; every timestamp must fall on that grid (within a quarter interval)
and no two rows on the same period; periods absent from the file are missing values.

Season length, unless ``--season-length`` is given: hourly data → 24, daily → 7, weekly → 52,
monthly → 12, quarterly → 4 — the last three only when the file spans at least four cycles
(three to learn the profile, one to score), otherwise no season; any other interval → no
season. Timestamps without an offset are read as UTC.
"""

from __future__ import annotations

import csv
import itertools
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from kpidash.cli._shared import err
from kpidash.errors import ConfigError, InputError

MISSING = {"", "nan", "na", "n/a", "null", "none"}
_DAY = 86_400.0


def register(app: typer.Typer) -> None:
    app.command()(anomalies)


def anomalies(
    file: Annotated[Path, typer.Argument(help="CSV with columns timestamp,value.")],
    out_file: Annotated[Path | None, typer.Option("--out", help="Write here (default stdout).")]
    = None,
    season_length: Annotated[int | None, typer.Option(
        "--season-length", help="Cycle in periods (1 = none); inferred from the interval.")]
    = None,
    threshold: Annotated[float, typer.Option(help="Robust z threshold T (score 0.5 at |z| = T).")]
    = 4.0,
) -> None:
    """Score every row of a timestamp,value CSV for anomalies (causal, seasonal, robust)."""
    from kpidash.core.anomaly import score

    if season_length is not None and season_length < 1:
        raise ConfigError(f"--season-length must be ≥ 1 (1 = no season), got {season_length}")
    if not math.isfinite(threshold) or threshold <= 0:
        raise ConfigError(f"--threshold must be a number > 0, got {threshold}")
    rows = read_rows(file)
    grid = to_grid(rows, file.name)
    m = season_length if season_length is not None else infer_season(grid)
    result = score(grid.values, season_length=m, threshold=threshold)
    scores = result.score[grid.slot]
    flags = result.is_anomaly[grid.slot]
    text = "timestamp,value,score,is_anomaly\n" + "".join(
        f"{_csv(r.ts_text)},{_csv(r.value_text)},{s:.4f},{int(f)}\n"
        for r, s, f in zip(rows, scores, flags, strict=True))
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text, encoding="utf-8")
    err.print(f"{file.name}: {len(rows):,} rows, interval {grid.interval_label}, season "
              f"{result.season_length or 'undecided'}, {int(flags.sum()):,} anomalies",
              markup=False)


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1-based data row (the header is row 0)
    ts: datetime
    ts_text: str
    value: float  # NaN when missing
    value_text: str


@dataclass(frozen=True, slots=True)
class Grid:
    values: np.ndarray  # one value per period from the first to the last, NaN when absent
    slot: np.ndarray  # period index of each input row, in input order
    interval_label: str
    unit: str  # second | month
    step: float  # seconds, or months


def read_rows(path: Path) -> list[Row]:
    """Rows of a timestamp,value CSV; the first problem raises naming its row."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        if "timestamp" not in header or "value" not in header:
            raise InputError(f"{path.name}: expected a header with columns timestamp,value;"
                                    f" got {','.join(header) or 'an empty file'}")
        it, iv = header.index("timestamp"), header.index("value")
        rows = []
        for number, rec in enumerate(reader, start=1):
            if not rec:
                continue
            if len(rec) <= max(it, iv):
                raise InputError(f"{path.name} row {number}: expected {len(header)} "
                                        f"fields, got {len(rec)}")
            rows.append(_row(path.name, number, rec[it].strip(), rec[iv].strip()))
    if not rows:
        raise InputError(f"{path.name}: no data rows after the header")
    return rows


def _row(name: str, number: int, ts_text: str, value_text: str) -> Row:
    try:
        ts = datetime.fromisoformat(ts_text)
    except ValueError:
        raise InputError(
            f"{name} row {number}: timestamp {ts_text!r} is not an ISO date or time; "
            "use e.g. 2024-01-31 or 2024-01-31T13:00:00Z") from None
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if value_text.lower() in MISSING:
        value = math.nan
    else:
        try:
            value = float(value_text)
        except ValueError:
            value = math.nan
            bad = True
        else:
            bad = not math.isfinite(value)
        if bad:
            raise InputError(
                f"{name} row {number}: value {value_text!r} is not a finite number; "
                "leave it empty for a missing value")
    return Row(number, ts, ts_text, value, value_text)


def to_grid(rows: list[Row], name: str) -> Grid:
    """Place rows on a regular grid of periods (module docstring)."""
    order = sorted(range(len(rows)), key=lambda i: rows[i].ts)
    for a, b in itertools.pairwise(order):
        if rows[a].ts == rows[b].ts:
            lo, hi = sorted((rows[a].number, rows[b].number))
            raise InputError(f"{name} row {hi}: timestamp {rows[b].ts_text} repeats row "
                                    f"{lo}; keep one value per timestamp")
    t0 = rows[order[0]].ts
    if len(rows) == 1:
        return Grid(np.array([rows[0].value]), np.array([0]), "unknown", "second", 1.0)
    gaps = [(rows[b].ts - rows[a].ts).total_seconds() for a, b in itertools.pairwise(order)]
    step = float(np.median(gaps))
    days = step / _DAY
    months = next((k for k, (lo, hi) in ((1, (28, 31)), (3, (89, 92)), (12, (365, 366)))
                   if lo <= days <= hi), None)
    if months is not None:
        unit, step, label = "month", float(months), {1: "1 month", 3: "1 quarter",
                                                     12: "1 year"}[months]
        pos = [_months(t0, r.ts) / months for r in rows]
    else:
        unit, label = "second", _label(step)
        pos = [(r.ts - t0).total_seconds() / step for r in rows]
    slot = np.rint(np.array(pos)).astype(np.int64)
    for r, p, s in zip(rows, pos, slot, strict=True):
        if abs(p - s) > 0.25:
            raise InputError(
                f"{name} row {r.number}: timestamp {r.ts_text} is off the regular grid of "
                f"{label} starting {rows[order[0]].ts_text}; the timestamps must be evenly "
                "spaced (missing periods may be left out)")
    seen: dict[int, int] = {}
    for r, s in sorted(zip(rows, slot.tolist(), strict=True), key=lambda x: x[0].number):
        if s in seen:
            raise InputError(f"{name} row {r.number}: timestamp {r.ts_text} falls in the "
                                    f"same {label} period as row {seen[s]}")
        seen[s] = r.number
    values = np.full(int(slot.max()) + 1, np.nan)
    values[slot] = [r.value for r in rows]
    return Grid(values, slot, label, unit, step)


def infer_season(grid: Grid) -> int:
    """Season length from the sampling interval (module docstring)."""
    n = grid.values.shape[0]
    if grid.unit == "month":
        m = {1.0: 12, 3.0: 4}.get(grid.step, 1)
        return m if n >= 4 * m else 1
    if math.isclose(grid.step, 3600.0, rel_tol=0.01):
        return 24
    if math.isclose(grid.step, _DAY, rel_tol=0.01):
        return 7
    if math.isclose(grid.step, 7 * _DAY, rel_tol=0.01):
        return 52 if n >= 4 * 52 else 1
    return 1


def _months(a: datetime, b: datetime) -> float:
    whole = (b.year - a.year) * 12 + (b.month - a.month)
    anchor = _add_months(a, whole)
    return whole + (b - anchor) / timedelta(days=30.436875)


def _add_months(a: datetime, k: int) -> datetime:
    y, mo = divmod(a.month - 1 + k, 12)
    day = min(a.day, [31, 29 if _leap(a.year + y) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                      31][mo])
    return a.replace(year=a.year + y, month=mo + 1, day=day)


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _label(seconds: float) -> str:
    for unit, size in (("day", _DAY), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size and float(seconds / size).is_integer():
            k = int(seconds / size)
            return f"{k} {unit}{'s' if k > 1 else ''}"
    return f"{seconds:g} s"


def _csv(text: str) -> str:
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
