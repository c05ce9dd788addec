"""Insight generation: one refresh for 100 KPIs × 50 slices.

Usage::

    .venv/bin/python benchmarks/insights.py [--kpis 100] [--slices 50] [--days 400]
                                            [--ratios 10] [--targets 5] [--reps 3] [--profile]

Data (numpy, seed 7, a DuckDB file in a temporary folder, one ``ingest_table``): ``--kpis``
KPIs of which ``--ratios`` are ratio KPIs over pairs of the simple ones and the rest simple
sum KPIs with one dimension ``segment`` of ``--slices`` values, ``--days`` daily points per
series (level per series, weekly cycle, slow growth, 5 % noise, a few incidents: a spike, a
drop in one segment, a level shift). ``--targets`` simple KPIs have a target (pace to goal
runs a forecast for each). A refresh is ``Engine.insights(limit=None)`` at a fixed clock: all
insight families — changes at four grains, drivers by segment (mix/rate for ratios),
concentration, trends and trend changes, records, anomalies with drivers, pace, data quality,
correlations — then scoring and ranking. Prints the median and best of ``--reps`` refreshes,
the insight count by type and peak RSS; ``--profile`` adds a cProfile of one refresh.

Target: ≤ 2 s per refresh on this machine. Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.store import open_store

SEED = 7


def build(path: Path, kpis: int, slices: int, days: int, ratios: int, targets: int,
          ) -> tuple[Engine, datetime]:
    rng = np.random.default_rng(SEED)
    simple = kpis - ratios
    first = date(2023, 1, 1)
    now = datetime.combine(first + timedelta(days=days), datetime.min.time(), UTC) + \
        timedelta(hours=6)
    defs = []
    for k in range(simple):
        d = {"id": f"k{k:03d}", "name": f"KPI {k:03d}", "dimensions": ["segment"],
             "weight": float(1 + k % 3)}
        if k < targets:
            d["target"] = 0.0  # set below from the data level
        defs.append(d)
    for r in range(ratios):
        a, b = 2 * r % simple, (2 * r + 1) % simple
        defs.append({"id": f"r{r:03d}", "name": f"Ratio {r:03d}", "kind": "ratio",
                     "numerator": f"k{a:03d}", "denominator": f"k{b:03d}", "scale": 100,
                     "unit": "%"})
    t = np.arange(days)
    week = np.array([1.06, 1.08, 1.07, 1.05, 1.0, 0.88, 0.86])
    level = 10 ** rng.uniform(1.5, 4, (simple, slices, 1))
    growth = np.exp(rng.uniform(-0.0005, 0.0015, (simple, slices, 1)) * t)
    values = level * growth * week[t % 7] * (1 + 0.05 * rng.standard_normal((simple, slices,
                                                                              days)))
    values[0, :, days - 3] *= 4           # a spike yesterday-but-two in every slice of k000
    values[1, 7, days - 10:] *= 0.5       # one segment of k001 halved for ten days
    values[2, :, days - 60:] *= 1.35      # a level shift in k002
    values = np.round(np.maximum(values, 0), 2)
    for d in defs[:targets]:
        k = int(d["id"][1:])
        d["target"] = float(values[k, :, -30:].sum(axis=0).mean() * 30 * 1.02)  # a month
        d["target_grain"] = "month"
    base = np.datetime64(first, "us")
    ts = base + (t * 86_400_000_000).astype("timedelta64[us]")
    kk, ss, dd = np.meshgrid(np.arange(simple), np.arange(slices), t, indexing="ij")
    table = pa.table({
        "timestamp": pa.array(ts[dd.ravel()], pa.timestamp("us", tz="UTC")),
        "kpi": pa.array(np.array([f"k{k:03d}" for k in range(simple)])[kk.ravel()]),
        "value": pa.array(values.ravel()),
        "segment": pa.array(np.array([f"s{s:02d}" for s in range(slices)])[ss.ravel()])})
    engine = Engine(open_store(str(path)), FixedClock(now))
    engine.register(defs)
    engine.ingest_table(table, source="benchmark")
    return engine, now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kpis", type=int, default=100)
    ap.add_argument("--slices", type=int, default=50)
    ap.add_argument("--days", type=int, default=400)
    ap.add_argument("--ratios", type=int, default=10)
    ap.add_argument("--targets", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        engine, _now = build(Path(tmp) / "bench.duckdb", args.kpis, args.slices, args.days,
                            args.ratios, args.targets)
        points = engine.store.point_count(engine.workspace)
        print(f"data: {args.kpis} KPIs ({args.ratios} ratios) × {args.slices} slices, "
              f"{args.days} days, {points:,} points, built in {time.perf_counter() - t0:.1f} s")
        times = []
        result = []
        for _ in range(args.reps):
            t1 = time.perf_counter()
            result = engine.insights(limit=None)
            times.append(time.perf_counter() - t1)
        kinds = Counter(str(r.insight.type) for r in result)
        print(f"refresh: median {statistics.median(times):.3f} s, best {min(times):.3f} s "
              f"over {args.reps} (first {times[0]:.3f} s); {len(result)} insights: "
              + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
        print("top 5:")
        for r in result[:5]:
            print(f"  {r.rank}. [{r.insight.type}] {r.insight.text} (score {r.score:.3g})")
        target = 2.0
        verdict = "MET" if statistics.median(times) <= target else "MISSED"
        print(f"target ≤ {target:.0f} s per refresh (median): {verdict}")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            engine.insights(limit=None)
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            print(buf.getvalue())
        engine.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
