"""Scale-out on Dask: a real LocalCluster gives exactly the single-process floats, and a failed,
dead or stuck worker gives one clear error instead of a hang."""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import dask
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from kpidash.clock import FixedClock
from kpidash.core.anomaly import score_many
from kpidash.core.forecast import forecast
from kpidash.engine import Engine
from kpidash.engine import distributed as dist
from kpidash.engine.distributed import Cluster
from kpidash.errors import ConfigError, QueryError
from kpidash.store import open_store

pytestmark = pytest.mark.timeout(120)


def _series(n: int, seed: int = 7) -> list[np.ndarray]:
    """Daily series of mixed lengths (10–500), weekly cycle, a few gaps and leading NaNs."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(10, 500))
        t = np.arange(k)
        y = (rng.uniform(50, 5000) * (1 + 0.2 * np.sin(2 * np.pi * t / 7 + i))
             * np.exp(0.05 * rng.standard_normal(k)))
        if i % 17 == 0:
            y[: min(3, k - 5)] = np.nan
        if i % 11 == 0 and k > 60:
            y[30:34] = np.nan
        out.append(y)
    return out


def same(a: Any, b: Any) -> bool:
    """Exact equality of results (arrays bit for bit, NaN equal to NaN)."""
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return bool(a == b)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two single-threaded workers in this process, reachable over TCP (for the CLI test)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                      host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as lc, Client(lc, set_as_default=False) as c:
        yield c


@pytest.fixture
def cluster(client: Client) -> Cluster:
    return Cluster(client, timeout=60)


# -- equivalence --------------------------------------------------------------------------------


@pytest.mark.parametrize("bounds", [(None, None), (0.0, None)], ids=["open", "non-negative"])
def test_forecasts_are_identical_to_one_process(cluster: Cluster,
                                                bounds: tuple[float | None, None]) -> None:
    ys = _series(200)
    local = forecast(ys, 14, bounds=bounds, season_candidates=(7,))
    remote = dist.forecast_many(cluster, ys, 14, bounds=bounds, season_candidates=(7,),
                                partition=50)
    assert len(remote) == len(local) == 200
    assert all(same(a, b) for a, b in zip(local, remote, strict=True))


def test_forecasts_in_batches_match_the_cli_batches(cluster: Cluster) -> None:
    ys = _series(200, seed=3)
    local = [f for a in range(0, 200, 100) for f in forecast(ys[a:a + 100], 7, season_length=7)]
    remote = dist.forecast_many(cluster, ys, 7, season_length=7, batch=100, partition=60)
    assert all(same(a, b) for a, b in zip(local, remote, strict=True))


def test_anomaly_scores_are_identical_to_one_process(cluster: Cluster) -> None:
    ys = _series(400, seed=11)
    seasons = [7 if i % 3 else None for i in range(400)]
    local = score_many(ys, season_length=seasons, threshold=3.5, higher_is_better=False)
    remote = dist.score_many(cluster, ys, season_length=seasons, threshold=3.5,
                             higher_is_better=False, partition=90)
    assert all(same(a, b) for a, b in zip(local, remote, strict=True))


def test_without_a_scheduler_the_single_process_path_runs() -> None:
    local = Cluster.connect(None)
    assert not local.distributed and local.workers == 1
    ys = _series(30)
    assert all(same(a, b) for a, b in zip(forecast(ys, 5), dist.forecast_many(local, ys, 5),
                                           strict=True))


# -- stored KPIs ------------------------------------------------------------------------------

NOW = datetime(2024, 7, 1, tzinfo=UTC)
CUSTOMERS = 200


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One KPI summed over 200 customers, 400 days, with a spike in some recent days."""
    path = tmp_path_factory.mktemp("dist") / "kpidash.duckdb"
    e = Engine(open_store(str(path)), FixedClock(NOW))
    e.register([{"id": "revenue", "name": "Revenue", "unit": "$", "aggregation": "sum",
                 "dimensions": ["customer"], "min_value": 0}])
    rng = np.random.default_rng(5)
    days = pd.date_range(NOW - timedelta(days=400), periods=400, freq="D")
    frames = []
    for c in range(CUSTOMERS):
        v = rng.uniform(100, 1000) * (1 + 0.15 * np.sin(2 * np.pi * np.arange(400) / 7 + c)) \
            * np.exp(0.04 * rng.standard_normal(400)) * np.linspace(1, 1 + (c % 5 - 2) / 10, 400)
        if c % 9 == 0:
            v[-3] *= 1.8
        frames.append(pd.DataFrame({"timestamp": days, "kpi": "revenue", "value": v,
                                    "customer": f"c{c:03d}"}))
    e.ingest_table(pd.concat(frames, ignore_index=True))
    yield e
    e.close()


def test_stored_kpi_forecasts_are_identical(engine: Engine, cluster: Cluster) -> None:
    local = engine.forecast("revenue", "day", 14, group_by="customer")
    remote = dist.forecast_kpi(engine, cluster, "revenue", "day", 14, group_by="customer")
    assert len(local) == CUSTOMERS
    assert [f.to_dict() for f in local] == [f.to_dict() for f in remote]
    assert all(same(a.result, b.result) for a, b in zip(local, remote, strict=True))


def test_stored_kpi_detection_is_identical(engine: Engine, cluster: Cluster) -> None:
    local = engine.detect_anomalies("revenue", "day", group_by="customer")
    remote = dist.detect_anomalies(engine, cluster, "revenue", "day", group_by="customer")
    assert local.found and remote.found == local.found
    assert (local.new, remote.new) == (len(local.found), 0)  # the same anomalies, kept once


def test_slice_insights_are_identical(engine: Engine, cluster: Cluster) -> None:
    local = dist.slice_insights(engine, Cluster(None), "revenue", "customer")
    with mock.patch.object(dist, "PARTITION", 45):  # 5 partitions of slices
        remote = dist.slice_insights(engine, cluster, "revenue", "customer")
    assert {str(i.type) for i in local} >= {"change", "anomaly"}
    assert {i.slice for i in local} == {(("customer", f"c{c:03d}"),) for c in range(CUSTOMERS)}
    assert [i.to_dict() for i in remote] == [i.to_dict() for i in local]


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_forecast_with_a_scheduler_prints_the_same_csv(client: Client,
                                                           tmp_path: Path) -> None:
    ys = _series(40, seed=2)
    rows = [(f"s{i}", (pd.Timestamp("2023-01-01") + pd.Timedelta(days=j)).date().isoformat(), v)
            for i, y in enumerate(ys) for j, v in enumerate(y)]
    csv = tmp_path / "many.csv"
    pd.DataFrame(rows, columns=["unique_id", "timestamp", "value"]).to_csv(csv, index=False)
    exe = shutil.which("kpidash") or str(Path(sys.executable).parent / "kpidash")
    cmd = [exe, "forecast", str(csv), "--horizon", "7"]
    env = {k: v for k, v in os.environ.items() if k != "KPIDASH_DASK_SCHEDULER"}
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    remote = subprocess.run([*cmd, "--scheduler", client.scheduler.address], capture_output=True,
                            text=True, env=env, check=True)
    assert remote.stdout == plain.stdout and plain.stdout.count("\n") == 40 * 7 + 1


# -- failures -----------------------------------------------------------------------------------


def test_a_failing_task_raises_one_clear_error(cluster: Cluster) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise MemoryError("injected")

    with mock.patch.object(dist, "_score_part", boom), \
            pytest.raises(QueryError, match=r"anomaly scoring failed in partition \d+ of 4: "
                                            r"MemoryError: injected"):
        dist.score_many(cluster, _series(40), season_length=7, partition=10)


def test_a_stuck_run_times_out_instead_of_hanging(client: Client) -> None:
    with pytest.raises(QueryError, match=r"did not finish within 0.5 s \(\d of 2 partitions "
                                         r"pending, 2 worker\(s\) connected\)"):
        Cluster(client, timeout=0.5).map(time.sleep, [3.0, 3.0], "sleeping")


def test_worker_processes_give_identical_results_and_a_dead_worker_is_an_error() -> None:
    def die(_: object) -> None:
        os._exit(3)  # the worker process dies mid-task

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                         dashboard_address=":0", silence_logs=logging.CRITICAL) as lc, \
            Client(lc, set_as_default=False) as c:
        cluster = Cluster(c, timeout=60)
        ys = _series(80, seed=4)
        remote = dist.forecast_many(cluster, ys, 7, season_candidates=(7,), partition=30)
        assert all(same(a, b) for a, b in zip(forecast(ys, 7, season_candidates=(7,)), remote,
                                              strict=True))
        with pytest.raises(QueryError, match=r"failed in partition 1 of 1: KilledWorker"):
            cluster.map(die, [None], "suicide")


# distributed leaves the refused connection's socket to the garbage collector
@pytest.mark.filterwarnings("ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_unreachable_scheduler_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cannot reach the Dask scheduler at "
                                          r"'tcp://127.0.0.1:9'.*dask scheduler"):
        Cluster.connect("tcp://127.0.0.1:9", connect_timeout=1)
    gc.collect()
