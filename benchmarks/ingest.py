"""Ingest throughput: Parquet and CSV into a fresh DuckDB store, and SQLite for comparison;
with ``--postgres``, the same ingest into a fresh PostgreSQL store side by side.

Usage::

    .venv/bin/python benchmarks/ingest.py [--points 10000000] [--workdir bench-data]
                                          [--skip-sqlite] [--skip-csv] [--postgres [URL]]

Every run happens in its own fresh subprocess so its peak RSS is its own; the parent only
imports the standard library (see ``_data.peak_rss_mib`` for why that matters). Prints
figures; never passes or fails.

* DuckDB: ``Engine(open_store(path))``, register the 20 KPIs, ``engine.ingest_file(path)``
  (validation + series resolution + write, one atomic batch). ``ingest`` time is the
  ``ingest_file`` call (it includes the commit); ``close`` (checkpoint) is shown apart.
* SQLite (stdlib ``sqlite3``): ``points(kpi, ts, value, region, plan, channel)`` WITHOUT
  ROWID with PRIMARY KEY (kpi, ts, region, plan, channel) and ``INSERT OR REPLACE`` so a
  re-sent point replaces (the same semantics as kpidash), WAL + synchronous=NORMAL,
  ``executemany`` in batches of 100k rows read from the Parquet with pyarrow, one transaction.
* PostgreSQL (``--postgres URL``: an existing server whose role may create databases;
  ``--postgres`` alone: a throwaway server started for the run, see ``_pg.py``): exactly the
  DuckDB run with the store swapped — a fresh database, ``Engine(store)``, register,
  ``engine.ingest_file(path)`` — so the two columns differ by the store only. Peak RSS is the
  client process's; the largest server backend's VmHWM is shown beside it. The Parquet-built
  database ``kpidash_bench_<N>`` is kept for ``query.py --postgres URL``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _pg  # noqa: E402  (standard library only until a PostgreSQL run is asked for)

TARGET_PARQUET = 1_000_000   # points/s
TARGET_CSV = 250_000         # points/s
TARGET_RSS_MIB = 1024        # peak RSS per ingest run


def store_path(workdir: Path, points: int) -> Path:
    """The DuckDB store built from the Parquet file (query.py reuses it)."""
    return workdir / f"store-{points}.duckdb"


def _fresh(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


# -- children (one per run) ----------------------------------------------------------------

def child_duckdb(fmt: str, workdir: Path, points: int) -> dict[str, object]:
    import _data

    from kpidash.engine import Engine
    from kpidash.store.base import open_store

    pq_path, csv_path = _data.paths(workdir, points)
    src = pq_path if fmt == "parquet" else csv_path
    db = store_path(workdir, points) if fmt == "parquet" else workdir / f"ingest-csv-{points}.duckdb"
    _fresh(db)
    t0 = time.perf_counter()
    engine = Engine(open_store(str(db)))
    engine.register(_data.registry())
    t1 = time.perf_counter()
    result = engine.ingest_file(src)
    t2 = time.perf_counter()
    engine.close()
    t3 = time.perf_counter()
    if fmt == "csv":
        db.unlink(missing_ok=True)  # only the Parquet-built store is kept (for query.py)
    return {"run": f"duckdb-{fmt}", "rows": result.rows, "written": result.written,
            "new_series": result.new_series, "setup_s": t1 - t0, "ingest_s": t2 - t1,
            "close_s": t3 - t2, "rss": _data.peak_rss_mib()}


def child_sqlite(workdir: Path, points: int) -> dict[str, object]:
    import sqlite3

    import _data
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pq_path, _ = _data.paths(workdir, points)
    db = workdir / f"ingest-{points}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    t0 = time.perf_counter()
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE points (kpi TEXT NOT NULL, ts INTEGER NOT NULL, "
                "value REAL NOT NULL, region TEXT NOT NULL, plan TEXT NOT NULL, "
                "channel TEXT NOT NULL, PRIMARY KEY (kpi, ts, region, plan, channel)) "
                "WITHOUT ROWID")
    sql = ("INSERT OR REPLACE INTO points (kpi, ts, value, region, plan, channel) "
           "VALUES (?, ?, ?, ?, ?, ?)")
    rows = 0
    con.execute("BEGIN")
    for batch in pq.ParquetFile(pq_path).iter_batches(batch_size=100_000):
        ts = pc.cast(batch.column("timestamp"), pa.int64())  # epoch µs, UTC
        con.executemany(sql, zip(batch.column("kpi").to_pylist(), ts.to_pylist(),
                                 batch.column("value").to_pylist(),
                                 batch.column("region").to_pylist(),
                                 batch.column("plan").to_pylist(),
                                 batch.column("channel").to_pylist(), strict=True))
        rows += batch.num_rows
    con.execute("COMMIT")
    t1 = time.perf_counter()
    con.close()
    t2 = time.perf_counter()
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return {"run": "sqlite-parquet", "rows": rows, "written": rows, "new_series": None,
            "setup_s": 0.0, "ingest_s": t1 - t0, "close_s": t2 - t1,
            "rss": _data.peak_rss_mib()}


def child_postgres(fmt: str, workdir: Path, points: int, base_url: str) -> dict[str, object]:
    import _data

    from kpidash.engine import Engine

    pq_path, csv_path = _data.paths(workdir, points)
    src = pq_path if fmt == "parquet" else csv_path
    dbname = _pg.bench_db(points, fmt)
    url = _pg.recreate_database(base_url, dbname)
    t0 = time.perf_counter()
    engine = Engine(_pg.open_pg_store(url))
    engine.register(_data.registry())
    t1 = time.perf_counter()
    result = engine.ingest_file(src)
    t2 = time.perf_counter()
    server_rss = _pg.backend_peak_mib(url)  # before close: the pool's backends still run
    engine.close()
    t3 = time.perf_counter()
    if fmt == "csv":
        _pg.drop_database(base_url, dbname)  # only the Parquet-built database is kept
    return {"run": f"postgres-{fmt}", "rows": result.rows, "written": result.written,
            "new_series": result.new_series, "setup_s": t1 - t0, "ingest_s": t2 - t1,
            "close_s": t3 - t2, "rss": _data.peak_rss_mib(), "server_rss": server_rss}


# -- parent --------------------------------------------------------------------------------

def spawn(args: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"child {args} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate(workdir: Path, points: int) -> None:
    # In a subprocess too: building 10M rows here would inflate the children's ru_maxrss.
    subprocess.run([sys.executable, str(HERE / "_data.py"), "--points", str(points),
                    "--workdir", str(workdir)], check=True, stdout=subprocess.DEVNULL)


def _rate(r: dict[str, object]) -> float:
    return float(r["rows"]) / float(r["ingest_s"])  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description="kpidash ingest benchmark (prints figures)")
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("bench-data"))
    ap.add_argument("--skip-sqlite", action="store_true", help="skip the SQLite comparison")
    ap.add_argument("--skip-csv", action="store_true", help="skip the CSV run")
    ap.add_argument("--postgres", nargs="?", const="", default=None, metavar="URL",
                    help="also ingest into PostgreSQL: a server URL whose role may create "
                         "databases, or no URL to start a throwaway server for the run")
    ap.add_argument("--child", choices=["parquet", "csv", "sqlite", "pg-parquet", "pg-csv"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--pg-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    workdir: Path = args.workdir.resolve()
    if args.child:
        if args.child.startswith("pg-"):
            out = child_postgres(args.child.removeprefix("pg-"), workdir, args.points,
                                 args.pg_url)
        elif args.child == "sqlite":
            out = child_sqlite(workdir, args.points)
        else:
            out = child_duckdb(args.child, workdir, args.points)
        print(json.dumps(out))
        return

    generate(workdir, args.points)
    print(f"kpidash ingest benchmark — {args.points:,} requested points, workdir {workdir}, "
          f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"load average {load_average()}", flush=True)
    runs = ["parquet"] + ([] if args.skip_csv else ["csv"]) + \
        ([] if args.skip_sqlite else ["sqlite"])
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        pg_url = None
        if args.postgres is not None:
            pg_url = stack.enter_context(_pg.server(args.postgres))
            print(f"PostgreSQL {_pg.redact(pg_url)}"
                  f"{'' if args.postgres else ' (throwaway server)'}: {_pg.describe(pg_url)}",
                  flush=True)
            runs += ["pg-parquet"] + ([] if args.skip_csv else ["pg-csv"])
        for run in runs:
            child = ["--child", run, "--points", str(args.points), "--workdir", str(workdir)]
            r = spawn(child + (["--pg-url", pg_url] if run.startswith("pg-") and pg_url
                               else []))
            results[run] = r
            rss = r["rss"]
            server = (f"; server backend peak {r['server_rss']:,.0f} MiB"
                      if r.get("server_rss") is not None else "")
            print(f"  {r['run']:<16} {r['rows']:>11,} rows  ingest {r['ingest_s']:7.2f}s  "
                  f"→ {_rate(r):>11,.0f} points/s  (close {r['close_s']:.2f}s, "
                  f"setup {r['setup_s']:.2f}s)  peak RSS {rss.get('vmhwm', float('nan')):,.0f} "
                  f"MiB (ru_maxrss {rss['ru_maxrss']:,.0f} MiB){server}", flush=True)

    print()
    print(f"{'run':<16}{'points/s':>12}{'target':>12}{'wall s':>9}{'peak RSS MiB':>14}"
          f"{'RSS target':>12}  verdict")
    targets = {"parquet": TARGET_PARQUET, "csv": TARGET_CSV, "sqlite": None}
    for run, r in results.items():
        if run.startswith("pg-"):
            continue  # in the side-by-side table below
        rate = _rate(r)
        rss = float(r["rss"].get("vmhwm", r["rss"]["ru_maxrss"]))  # type: ignore[union-attr]
        target = targets[run]
        if target is None:
            verdict = "(reference)"
            tcol, rcol = "-", "-"
        else:
            ok = rate >= target and rss <= TARGET_RSS_MIB
            verdict = "met" if ok else "MISSED " + ", ".join(
                x for x, bad in (("rate", rate < target), ("rss", rss > TARGET_RSS_MIB)) if bad)
            tcol, rcol = f"≥{target:,}", f"≤{TARGET_RSS_MIB:,}"
        print(f"{r['run']:<16}{rate:>12,.0f}{tcol:>12}{float(r['ingest_s']):>9.2f}"  # type: ignore[arg-type]
              f"{rss:>14,.0f}{rcol:>12}  {verdict}")
    if "sqlite" in results:
        ratio = _rate(results["parquet"]) / _rate(results["sqlite"])
        print(f"\nDuckDB (Parquet) / SQLite (Parquet) throughput ratio: {ratio:.1f}×")
    if any(run.startswith("pg-") for run in results):
        side_by_side(results)
    print(f"\nload average at the end: {load_average()}")


def _peak(r: dict[str, Any]) -> float:
    return float(r["rss"].get("vmhwm", r["rss"]["ru_maxrss"]))


def side_by_side(results: dict[str, dict[str, Any]]) -> None:
    """DuckDB and PostgreSQL per input format: points/s, peak RSS, ratio."""
    print(f"\n{'same ingest, two stores':<24}{'DuckDB pts/s':>14}{'PostgreSQL pts/s':>18}"
          f"{'DuckDB/PG':>11}{'DuckDB RSS':>12}{'PG client RSS':>15}{'PG backend':>12}")
    for fmt in ("parquet", "csv"):
        duck, pg = results.get(fmt), results.get(f"pg-{fmt}")
        if duck is None or pg is None:
            continue
        backend = pg.get("server_rss")
        print(f"{'ingest_file (' + fmt + ')':<24}{_rate(duck):>14,.0f}{_rate(pg):>18,.0f}"
              f"{_rate(duck) / _rate(pg):>10.1f}×{_peak(duck):>8,.0f} MiB{_peak(pg):>11,.0f} MiB"
              f"{'-' if backend is None else f'{backend:,.0f} MiB':>12}")
    print("(RSS = VmHWM; PG client = the Python process, PG backend = the largest server "
          "backend, shared buffers it touched included)")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
