"""Dashboard query latency on the DuckDB store built by the Parquet ingest, vs pandas; with
``--postgres``, the same queries on a PostgreSQL store side by side.

Usage::

    .venv/bin/python benchmarks/query.py [--points 10000000] [--workdir bench-data]
                                         [--reps 30] [--warmup 3] [--postgres [URL]]

The "dashboard" is all 20 KPIs at day grain over the full two years with one dimension
filter (region = EU), fetched with one ``engine.query_many(ids, "day", start, end,
filters={"region": "EU"})`` call per refresh. The pandas equivalent works on the same data
held in memory (``pd.read_parquet`` once; per repetition: filter region == EU, group by kpi
and day, aggregate each KPI with its own aggregation — sum, mean, or for ``last`` KPIs the
last value per series and day summed over series). Both results are compared for equality.
Per-KPI single-query latency (``engine.query``) is printed for context. The store is built
with ``benchmarks/ingest.py``'s Parquet run when absent. Prints figures; never passes or fails.

``--postgres URL`` (a server whose role may create databases) runs the same dashboard and
single queries, same repetitions, on the PostgreSQL database ``kpidash_bench_<N>`` that
``ingest.py --postgres URL`` built (built here by its PostgreSQL Parquet run when absent);
``--postgres`` alone starts a throwaway server and builds it (see ``_pg.py``). The database
is VACUUM ANALYZEd first — the steady state autovacuum reaches a minute after a load, made
deterministic (it also analyzes the partitioned parent, which autovacuum never does). Its
results are checked against pandas and DuckDB's; the table gains its row and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
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
import _pg  # noqa: E402
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


def measure(engine: Any, ids: list[str], reps: int, warmup: int) -> dict[str, Any]:
    """The dashboard (cold call, then ``reps`` timed refreshes) and every single KPI query."""
    def dashboard() -> dict[str, Any]:
        return engine.query_many(ids, "day", START, END, filters={"region": REGION})

    t0 = time.perf_counter()
    first = dashboard()
    cold_ms = (time.perf_counter() - t0) * 1000
    dash = timings(dashboard, reps, warmup)

    per_kpi: dict[str, list[float]] = {}
    for k in ids:
        per_kpi[k] = timings(lambda k=k: engine.query(k, "day", START, END,
                                                     filters={"region": REGION}),
                             max(5, reps // 3), 1)
    return {"first": first, "cold_ms": cold_ms, "dash": dash, "per_kpi": per_kpi}


def worst_diff(ids: list[str], got: dict[str, Any], expected: dict[str, Any], what: str,
               ) -> float:
    """Largest relative difference between two dashboards (exits on a shape mismatch)."""
    import numpy as np

    worst = 0.0
    for k in ids:
        a = got[k][0].values
        b = expected[k].to_numpy() if hasattr(expected[k], "to_numpy") else expected[k][0].values
        if a.shape != b.shape:
            raise SystemExit(f"{k}: {what} returned {a.shape} periods, expected {b.shape}")
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))))
    return worst


def print_single(label: str, per_kpi: dict[str, list[float]]) -> None:
    single = [x for v in per_kpi.values() for x in v]
    print(f"\nper-KPI single query{label} (engine.query, region=EU, day grain, 2 years), p50 ms:")
    print("  " + "  ".join(f"{k} {statistics.median(v):.1f}" for k, v in per_kpi.items()))
    print(f"  all single queries: p50 {pct(single, 50):.1f} ms, p95 {pct(single, 95):.1f} ms; "
          f"sum of 20 p50s {sum(statistics.median(v) for v in per_kpi.values()):.0f} ms")


def postgres_store(base_url: str, given: bool, workdir: Path, points: int) -> str:
    """The URL of the PostgreSQL database built by the Parquet ingest (built when absent)."""
    dbname = _pg.bench_db(points)
    url = _pg.db_url(base_url, dbname)
    if given and _pg.database_exists(base_url, dbname):
        store = _pg.open_pg_store(url)
        try:
            n = store.point_count("default")
        finally:
            store.close()
        if n == _data.layout(points).total_rows:
            _pg.vacuum_analyze(url)
            return url
    print(f"building PostgreSQL database {dbname} with the Parquet ingest …", flush=True)
    ingest.generate(workdir, points)
    ingest.spawn(["--child", "pg-parquet", "--points", str(points), "--workdir", str(workdir),
                  "--pg-url", base_url])
    _pg.vacuum_analyze(url)
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description="kpidash dashboard query benchmark (prints figures)")
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--postgres", nargs="?", const="", default=None, metavar="URL",
                    help="also query PostgreSQL: a server URL whose role may create databases "
                         "(reuses ingest.py's database), or no URL for a throwaway server")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        pg_base = (None if args.postgres is None
                   else stack.enter_context(_pg.server(args.postgres)))
        run(args, pg_base)


def run(args: argparse.Namespace, pg_base: str | None) -> None:
    workdir: Path = args.workdir.resolve()
    db = ingest.store_path(workdir, args.points)
    if not db.exists():
        print(f"building {db} with the Parquet ingest …", flush=True)
        ingest.generate(workdir, args.points)
        ingest.spawn(["--child", "parquet", "--points", str(args.points),
                      "--workdir", str(workdir)])

    import pandas as pd

    from kpidash.engine import Engine
    from kpidash.store.base import open_store

    engine = Engine(open_store(str(db)))
    ids = _data.kpi_ids()
    n_points = engine.store.point_count(engine.workspace)
    print(f"kpidash query benchmark — store {db.name}: {n_points:,} points, "
          f"{engine.store.series_count(engine.workspace):,} series; dashboard = {len(ids)} KPIs "
          f"× day grain × {START.date()}..{END.date()} × region={REGION}; "
          f"{args.warmup} warm-up + {args.reps} reps; {os.cpu_count()} CPUs, load average "
          f"{ingest.load_average()}", flush=True)

    duck = measure(engine, ids, args.reps, args.warmup)
    first, cold_ms, dash, per_kpi = duck["first"], duck["cold_ms"], duck["dash"], duck["per_kpi"]

    pg: dict[str, Any] | None = None
    if pg_base is not None:
        pg_url = postgres_store(pg_base, bool(args.postgres), workdir, args.points)
        print(f"PostgreSQL {_pg.redact(pg_url)}"
              f"{'' if args.postgres else ' (throwaway server)'}: {_pg.describe(pg_url)}",
              flush=True)
        pg_engine = Engine(_pg.open_pg_store(pg_url))
        pg_points = pg_engine.store.point_count(pg_engine.workspace)
        if pg_points != n_points:
            raise SystemExit(f"PostgreSQL holds {pg_points:,} points, DuckDB {n_points:,}")
        pg = measure(pg_engine, ids, args.reps, args.warmup)
        pg_engine.close()

    pq_path, _ = _data.paths(workdir, args.points)
    t0 = time.perf_counter()
    df = pd.read_parquet(pq_path)
    load_s = time.perf_counter() - t0
    expected = pandas_dashboard(df, ids)
    pand = timings(lambda: pandas_dashboard(df, ids), args.reps, args.warmup)

    # same answer? (the engine returns every day of the range; the data has every day)
    worst = worst_diff(ids, first, expected, "engine")

    d50, d95 = pct(dash, 50), pct(dash, 95)
    p50, p95 = pct(pand, 50), pct(pand, 95)
    print(f"\nfirst (cold) dashboard call: {cold_ms:.1f} ms; results equal pandas within "
          f"relative {worst:.1e}")
    if pg is not None:
        print(f"PostgreSQL first (cold) dashboard call: {pg['cold_ms']:.1f} ms; results equal "
              f"pandas within relative {worst_diff(ids, pg['first'], expected, 'PostgreSQL'):.1e}"
              f", DuckDB within {worst_diff(ids, pg['first'], first, 'PostgreSQL'):.1e}")
    print(f"pandas: read_parquet {load_s:.1f}s once; frame "
          f"{df.memory_usage(deep=True).sum() / 2**20:,.0f} MiB "
          f"(dtypes: {', '.join(f'{c}={t}' for c, t in df.dtypes.astype(str).items())})")
    print_single("" if pg is None else " on DuckDB", per_kpi)
    if pg is not None:
        print_single(" on PostgreSQL", pg["per_kpi"])
    print()
    print(f"{'dashboard refresh (20 KPIs)':<34}{'p50 ms':>9}{'p95 ms':>9}{'min ms':>9}"
          f"{'target':>10}  verdict")
    verdict = "met" if d95 <= TARGET_P95_MS else "MISSED"
    print(f"{'kpidash engine.query_many':<34}{d50:>9.1f}{d95:>9.1f}{min(dash):>9.1f}"
          f"{'p95≤' + str(int(TARGET_P95_MS)):>10}  {verdict}")
    if pg is not None:
        g50, g95 = pct(pg["dash"], 50), pct(pg["dash"], 95)
        verdict = "met" if g95 <= TARGET_P95_MS else "MISSED"
        print(f"{'kpidash on PostgreSQL':<34}{g50:>9.1f}{g95:>9.1f}{min(pg['dash']):>9.1f}"
              f"{'p95≤' + str(int(TARGET_P95_MS)):>10}  {verdict}")
    print(f"{'pandas (in memory)':<34}{p50:>9.1f}{p95:>9.1f}{min(pand):>9.1f}"
          f"{'-':>10}  (reference)")
    print(f"\nratio pandas / kpidash: p50 {p50 / d50:.1f}×, p95 {p95 / d95:.1f}× "
          f"(>1 means kpidash is faster)")
    if pg is not None:
        ps = [x for v in pg["per_kpi"].values() for x in v]
        ds = [x for v in per_kpi.values() for x in v]
        print(f"ratio PostgreSQL / DuckDB (latency, >1 means DuckDB is faster): dashboard "
              f"p50 {g50 / d50:.1f}×, p95 {g95 / d95:.1f}×; single queries p50 "
              f"{pct(ps, 50) / pct(ds, 50):.1f}×, p95 {pct(ps, 95) / pct(ds, 95):.1f}×")
    print(f"peak RSS of this process: {_data.peak_rss_mib().get('vmhwm', 0):,.0f} MiB "
          "(includes the pandas frame)")
    print(f"load average at the end: {ingest.load_average()}")
    engine.close()


if __name__ == "__main__":
    main()
