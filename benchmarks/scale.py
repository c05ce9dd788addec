"""Scale-out: forecasting and anomaly scoring of many daily series, one process vs a Dask cluster.

Usage::

    .venv/bin/python benchmarks/scale.py [--series 100000] [--workers 1,2] [--what forecast,anomaly]
    .venv/bin/python benchmarks/scale.py --scheduler tcp://host:8786   # an existing cluster

Data: ``forecast_throughput.make`` (numpy, seed 20240501): two-year daily series (730 days),
weekly season, trend and noise. Forecast: ``forecast(series, 28, season_candidates=(7,))``
(season detected per series, every candidate model, 6-window backtest, 80/95 % intervals).
Anomalies: ``score_many(series, season_length=7)``. Each runs once in this process (the
single-process path, one core), then through :mod:`kpidash.engine.distributed` on a
``LocalCluster`` of N single-threaded worker processes (or on ``--scheduler``). Wall time covers
the whole call — scattering the values, the planning phase, the tasks, gathering — but not the
cluster's start. Every distributed result is compared with the single-process one, exactly.
series/s = series ÷ wall time. Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from forecast_throughput import DAYS, make


def same(a: Any, b: Any) -> bool:
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, float) and np.isnan(a):
        return bool(np.isnan(b))
    return bool(a == b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--workers", default="1,2", help="LocalCluster sizes to run")
    ap.add_argument("--what", default="forecast,anomaly")
    ap.add_argument("--scheduler", default=None, help="use this cluster instead of LocalClusters")
    a = ap.parse_args()

    from distributed import Client, LocalCluster

    from kpidash.core.anomaly import score_many
    from kpidash.core.forecast import forecast
    from kpidash.engine import distributed as dist

    series = [y[:DAYS] for y in make(a.series)]
    jobs: dict[str, tuple[Callable[[], list[Any]], Callable[[dist.Cluster], list[Any]]]] = {
        "forecast": (lambda: forecast(series, 28, season_candidates=(7,)),
                     lambda c: dist.forecast_many(c, series, 28, season_candidates=(7,))),
        "anomaly": (lambda: score_many(series, season_length=7),
                    lambda c: dist.score_many(c, series, season_length=7)),
    }
    print(f"{a.series:,} daily series × {DAYS} days; partitions of {dist.PARTITION:,} series "
          "(forecast tasks: one panel of ≤ 512 series each)")
    print(f"{'task':<9} {'where':<26} {'seconds':>8} {'series/s':>9} {'speed-up':>8}  identical")
    sizes = [int(w) for w in a.workers.split(",")] if not a.scheduler else [0]
    for what in a.what.split(","):
        local_fn, dist_fn = jobs[what]
        t0 = time.perf_counter()
        ref = local_fn()
        base = time.perf_counter() - t0
        print(f"{what:<9} {'one process':<26} {base:>8.1f} {a.series / base:>9.0f} {1.0:>8.2f}  -",
              flush=True)
        for n in sizes:
            if a.scheduler:
                client, label, lc = Client(a.scheduler), f"scheduler {a.scheduler}", None
            else:
                lc = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR)
                client, label = Client(lc), f"LocalCluster {n} worker(s)"
            try:
                # long-lived workers have kpidash imported already (~2 s per process otherwise)
                client.run(lambda: (__import__("kpidash.engine.distributed"),
                                    __import__("kpidash.core.forecast"), None)[-1])
                cluster = dist.Cluster(client)
                t0 = time.perf_counter()
                got = dist_fn(cluster)
                dt = time.perf_counter() - t0
                ok = len(got) == len(ref) and all(same(x, y) for x, y in zip(ref, got, strict=True))
                print(f"{what:<9} {label:<26} {dt:>8.1f} {a.series / dt:>9.0f} {base / dt:>8.2f}  "
                      f"{'yes' if ok else 'NO'}", flush=True)
            finally:
                client.close()
                if lc is not None:
                    lc.close()


if __name__ == "__main__":
    main()
