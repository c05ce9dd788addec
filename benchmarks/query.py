"""Dashboard query latency on the DuckDB store built by the Parquet ingest, vs pandas.

Usage::

    .venv/bin/python benchmarks/query.py [--points 10000000] [--workdir bench-data]
                                         [--reps 30] [--warmup 3]

The "dashboard" is all 20 KPIs at day grain over the full two years with one dimension
filter (region = EU), fetched with one ``engine.query_many(ids, "day", start, end,
filters={"region": "EU"})`` call per refresh. The pandas equivalent works on the same data
held in memory (``pd.read_parquet`` once; per repetition: filter region == EU, group by kpi
and day, aggregate each KPI with its own aggregation — sum, mean, or for ``last`` KPIs the
last value per series and day summed over series). Both results are compared for equality.
Per-KPI single-query latency (``engine.query``) is printed for context. The store is built
with ``benchmarks/ingest.py``'s Parquet run when absent. Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _data  # noqa: E402
import ingest  # noqa: E402

TARGET_P95_MS = 100.0
START = datetime(2023, 1, 1, tzinfo=UTC)
END = START + timedelta(days=_data.DAYS)
REGION = "EU"


def timings(fn: Callable[[], Any], reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation; with 30 samples p95 is the 29th)."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def pandas_dashboard(df: Any, kpis: list[str]) -> dict[str, Any]:
    """KPI → daily values (Series indexed by UTC day) for region == EU, like the engine."""
    sub = df[df["region"] == REGION]
    day = sub["timestamp"].dt.floor("D")
    g = sub.groupby([sub["kpi"], day], observed=True, sort=True)["value"]
    sums, means = g.sum(), g.mean()
    last_mask = sub["kpi"].isin(_data.LAST_KPIS)
    lsub = sub[last_mask]
    lday = day[last_mask]
    lasts = (lsub.assign(day=lday).sort_values("timestamp", kind="stable")
             .groupby(["kpi", "region", "plan", "channel", "day"], observed=True)["value"]
             .last().groupby(level=["kpi", "day"]).sum())
    out = {}
    for k in kpis:
        agg = _data.aggregation(k)
        src = lasts if agg == "last" else means if agg == "mean" else sums
        out[k] = src.xs(k, level=0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="kpidash dashboard query benchmark (prints figures)")
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    workdir: Path = args.workdir.resolve()
    db = ingest.store_path(workdir, args.points)
    if not db.exists():
        print(f"building {db} with the Parquet ingest …", flush=True)
        ingest.generate(workdir, args.points)
        ingest.spawn(["--child", "parquet", "--points", str(args.points),
                      "--workdir", str(workdir)])

    import numpy as np
    import pandas as pd

    from kpidash.engine import Engine
    from kpidash.store.base import open_store

    engine = Engine(open_store(str(db)))
    ids = _data.kpi_ids()
    n_points = engine.store.point_count(engine.workspace)
    print(f"kpidash query benchmark — store {db.name}: {n_points:,} points, "
          f"{engine.store.series_count(engine.workspace):,} series; dashboard = {len(ids)} KPIs "
          f"× day grain × {START.date()}..{END.date()} × region={REGION}; "
          f"{args.warmup} warm-up + {args.reps} reps", flush=True)

    def dashboard() -> dict[str, Any]:
        return engine.query_many(ids, "day", START, END, filters={"region": REGION})

    t0 = time.perf_counter()
    first = dashboard()
    cold_ms = (time.perf_counter() - t0) * 1000
    dash = timings(dashboard, args.reps, args.warmup)

    per_kpi: dict[str, list[float]] = {}
    for k in ids:
        per_kpi[k] = timings(lambda k=k: engine.query(k, "day", START, END,
                                                     filters={"region": REGION}),
                             max(5, args.reps // 3), 1)

    pq_path, _ = _data.paths(workdir, args.points)
    t0 = time.perf_counter()
    df = pd.read_parquet(pq_path)
    load_s = time.perf_counter() - t0
    expected = pandas_dashboard(df, ids)
    pand = timings(lambda: pandas_dashboard(df, ids), args.reps, args.warmup)

    # same answer? (the engine returns every day of the range; the data has every day)
    worst = 0.0
    for k in ids:
        got = first[k][0].values
        want = expected[k].to_numpy()
        if got.shape != want.shape:
            raise SystemExit(f"{k}: engine returned {got.shape} periods, pandas {want.shape}")
        worst = max(worst, float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))))

    d50, d95 = pct(dash, 50), pct(dash, 95)
    p50, p95 = pct(pand, 50), pct(pand, 95)
    single = [x for v in per_kpi.values() for x in v]
    print(f"\nfirst (cold) dashboard call: {cold_ms:.1f} ms; results equal pandas within "
          f"relative {worst:.1e}")
    print(f"pandas: read_parquet {load_s:.1f}s once; frame "
          f"{df.memory_usage(deep=True).sum() / 2**20:,.0f} MiB "
          f"(dtypes: {', '.join(f'{c}={t}' for c, t in df.dtypes.astype(str).items())})")
    print("\nper-KPI single query (engine.query, region=EU, day grain, 2 years), p50 ms:")
    print("  " + "  ".join(f"{k} {statistics.median(v):.1f}" for k, v in per_kpi.items()))
    print(f"  all single queries: p50 {pct(single, 50):.1f} ms, p95 {pct(single, 95):.1f} ms; "
          f"sum of 20 p50s {sum(statistics.median(v) for v in per_kpi.values()):.0f} ms")
    print()
    print(f"{'dashboard refresh (20 KPIs)':<34}{'p50 ms':>9}{'p95 ms':>9}{'min ms':>9}"
          f"{'target':>10}  verdict")
    verdict = "met" if d95 <= TARGET_P95_MS else "MISSED"
    print(f"{'kpidash engine.query_many':<34}{d50:>9.1f}{d95:>9.1f}{min(dash):>9.1f}"
          f"{'p95≤' + str(int(TARGET_P95_MS)):>10}  {verdict}")
    print(f"{'pandas (in memory)':<34}{p50:>9.1f}{p95:>9.1f}{min(pand):>9.1f}"
          f"{'-':>10}  (reference)")
    print(f"\nratio pandas / kpidash: p50 {p50 / d50:.1f}×, p95 {p95 / d95:.1f}× "
          f"(>1 means kpidash is faster)")
    print(f"peak RSS of this process: {_data.peak_rss_mib().get('vmhwm', 0):,.0f} MiB "
          "(includes the pandas frame)")
    engine.close()


if __name__ == "__main__":
    main()
