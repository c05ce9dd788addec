"""Deterministic benchmark data shared by the ingest and query benchmarks.

20 simple KPIs ``k01`` … ``k20`` with dimensions region (4) × plan (3) × channel (C), two
years of daily points (UTC midnight), long format ``timestamp, kpi, value, region, plan,
channel``, rows ordered by time then series (as an export from a warehouse would be).
C is chosen so that 20 KPIs × 730 days × series ≈ the requested number of points; for the
default 10,000,000 that is C = 57, i.e. 684 series per KPI and 9,986,400 points.

Written once per size to ``WORKDIR/points-<N>.parquet`` (row groups of about 1M rows) and
``WORKDIR/points-<N>.csv`` (ISO timestamps with 'Z'); generation is seeded (numpy), so the
same N always gives the same files. Run as a script to (re)generate: ``python
benchmarks/_data.py --points N --workdir DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

N_KPIS = 20
DAYS = 730
START = np.datetime64("2023-01-01", "D")
REGIONS = ("EU", "NA", "APAC", "LATAM")
PLANS = ("free", "pro", "enterprise")
LAST_KPIS = ("k05", "k10", "k15")   # semi-additive levels (MRR-like)
MEAN_KPIS = ("k08", "k16")          # averages (latency, NPS-like)
SEED = 20240501
DEFAULT_POINTS = 10_000_000
ROW_GROUP_DAYS_TARGET = 1_000_000   # rows per Parquet row group (rounded to whole days)


@dataclass(frozen=True)
class Layout:
    points: int          # requested N
    channels: int
    series_per_kpi: int
    rows_per_day: int
    total_rows: int


def layout(points: int) -> Layout:
    per_kpi = max(1, round(points / (N_KPIS * DAYS)))
    channels = max(1, round(per_kpi / (len(REGIONS) * len(PLANS))))
    series = len(REGIONS) * len(PLANS) * channels
    return Layout(points, channels, series, N_KPIS * series, N_KPIS * series * DAYS)


def kpi_ids() -> list[str]:
    return [f"k{i:02d}" for i in range(1, N_KPIS + 1)]


def aggregation(kpi: str) -> str:
    return "last" if kpi in LAST_KPIS else "mean" if kpi in MEAN_KPIS else "sum"


def registry() -> list[dict[str, Any]]:
    """KPI definitions for ``engine.register(...)``."""
    return [{"id": k, "name": f"KPI {k}", "aggregation": aggregation(k), "min_value": 0,
             "dimensions": ["region", "plan", "channel"], "season_length": 7}
            for k in kpi_ids()]


def paths(workdir: Path, points: int) -> tuple[Path, Path]:
    return workdir / f"points-{points}.parquet", workdir / f"points-{points}.csv"


def _day_block(lay: Layout, day0: int, ndays: int, base: np.ndarray, rng: np.random.Generator,
               ) -> dict[str, np.ndarray]:
    """Rows for days [day0, day0 + ndays): codes and values, ordered by day then series."""
    per_day = lay.rows_per_day
    n = per_day * ndays
    day = np.repeat(np.arange(day0, day0 + ndays), per_day)
    within = np.tile(np.arange(per_day), ndays)
    # series order inside a day: kpi, region, plan, channel
    kpi = within // lay.series_per_kpi
    rest = within % lay.series_per_kpi
    region = rest // (len(PLANS) * lay.channels)
    plan = (rest // lay.channels) % len(PLANS)
    channel = rest % lay.channels
    weekly = 1.0 + 0.15 * np.sin(2 * np.pi * (day % 7) / 7)
    growth = 1.0 + 0.4 * day / DAYS
    noise = rng.normal(1.0, 0.08, n).clip(0.5, 1.5)
    value = np.round(base[within] * weekly * growth * noise, 2)
    return {"day": day, "kpi": kpi, "region": region, "plan": plan, "channel": channel,
            "value": value}


def generate(workdir: Path, points: int = DEFAULT_POINTS, *, quiet: bool = False,
             ) -> tuple[Path, Path]:
    """Write the Parquet and CSV files for ``points`` unless both already exist."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    workdir.mkdir(parents=True, exist_ok=True)
    pq_path, csv_path = paths(workdir, points)
    if pq_path.exists() and csv_path.exists():
        return pq_path, csv_path
    t0 = time.perf_counter()
    lay = layout(points)
    rng = np.random.default_rng(SEED)
    base = rng.lognormal(3.0, 1.0, lay.rows_per_day) * 10  # per-series level
    kpis = pa.array(kpi_ids())
    regions, plans = pa.array(REGIONS), pa.array(PLANS)
    channels = pa.array([f"ch{c:02d}" for c in range(lay.channels)])
    day_ts = START + np.arange(DAYS)
    ts_arrow = pa.array(day_ts.astype("datetime64[us]"), pa.timestamp("us", tz="UTC"))
    ts_text = pa.array([f"{d}T00:00:00Z" for d in day_ts.astype(str)])
    days_per_block = max(1, ROW_GROUP_DAYS_TARGET // lay.rows_per_day)
    schema = pa.schema([("timestamp", pa.timestamp("us", tz="UTC")), ("kpi", pa.string()),
                        ("value", pa.float64()), ("region", pa.string()),
                        ("plan", pa.string()), ("channel", pa.string())])
    csv_schema = schema.set(0, pa.field("timestamp", pa.string()))
    tmp_pq = pq_path.with_name(pq_path.name + ".tmp")
    tmp_csv = csv_path.with_name(csv_path.name + ".tmp")
    with pq.ParquetWriter(tmp_pq, schema, compression="snappy") as pw, \
            pacsv.CSVWriter(tmp_csv, csv_schema,
                            write_options=pacsv.WriteOptions(quoting_style="none")) as cw:
        for day0 in range(0, DAYS, days_per_block):
            nd = min(days_per_block, DAYS - day0)
            b = _day_block(lay, day0, nd, base, rng)
            day_idx = pa.array(b["day"])
            cols = [kpis.take(pa.array(b["kpi"])), pa.array(b["value"]),
                    regions.take(pa.array(b["region"])), plans.take(pa.array(b["plan"])),
                    channels.take(pa.array(b["channel"]))]
            pw.write_table(pa.Table.from_arrays([ts_arrow.take(day_idx), *cols], schema=schema),
                           row_group_size=len(b["day"]))
            cw.write_table(pa.Table.from_arrays([ts_text.take(day_idx), *cols],
                                                schema=csv_schema))
    os.replace(tmp_pq, pq_path)
    os.replace(tmp_csv, csv_path)
    if not quiet:
        print(f"generated {lay.total_rows:,} points ({lay.series_per_kpi} series/KPI, "
              f"{lay.channels} channels) in {time.perf_counter() - t0:.1f}s → {pq_path}, "
              f"{csv_path}", flush=True)
    return pq_path, csv_path


def peak_rss_mib() -> dict[str, float]:
    """This process's peak resident memory, in MiB.

    ``vmhwm``: VmHWM from /proc/self/status — the high-water mark of *this* address space.
    ``ru_maxrss``: getrusage(RUSAGE_SELF); on Linux it can include the parent's peak when the
    process was started with vfork+exec (the kernel folds the old mm's high-water mark in at
    exec), so the benchmarks keep their parent processes small and report both.
    """
    import resource

    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=DEFAULT_POINTS)
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    args = ap.parse_args()
    pq_path, csv_path = generate(args.workdir, args.points)
    print(json.dumps({"parquet": str(pq_path), "csv": str(csv_path),
                      "rows": layout(args.points).total_rows}))


if __name__ == "__main__":
    main()
