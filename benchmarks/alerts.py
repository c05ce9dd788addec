"""Alert manager throughput: 1,000 rules over 10,000 series per tick.

Usage::

    .venv/bin/python benchmarks/alerts.py [--kpis 100] [--slices 100] [--rules-per-kpi 10]
                                          [--days 60] [--ticks 5] [--profile]
                                          [--side-kpis 10] [--side-ticks 3] [--skip-side]

Data (generated here, deterministically, numpy seed :data:`SEED`, into a DuckDB file in a
temporary folder): ``--kpis`` simple sum KPIs ``k000`` … with one dimension ``region`` of
``--slices`` values (100 × 100 = 10,000 series), ``--days`` daily points per series at UTC
midnight (level per KPI, ±10 % per region, weekly cycle ±10 %, noise 5 %), one
``Engine.ingest_table`` call. On the last complete day about 2 % of the slices breach:
1 % jump 2.2–3.5×, 0.5 % drop to 0.2–0.4×, 0.5 % stopped reporting 4 days earlier.

Rules: ``--rules-per-kpi`` per KPI (default 10 → 1,000), all ``grain: day``, ``per: region``
(so one store query serves them all and each rule evaluates every slice: 100,000 slice
evaluations per tick), cycling through a realistic mix — threshold above/below with 2–3
bands and a recovery value, change vs ``previous_period`` and ``same_period_last_week``,
``stale`` (max_age), and ``any`` / ``all`` combinations; some with ``for`` and
``keep_firing_for``. No anomaly or forecast conditions in the main figure: those run the
detector / forecaster per KPI and are timed apart (side scenarios: ``--side-kpis`` rules of
each kind over ``--side-kpis`` × ``--slices`` series).

Measured: the first tick (cold: creates every alert instance that left *normal*), then
``--ticks`` steady ticks, each one hour later on the engine's FixedClock (same data, stored
instances updated). ``tick(engine, now, None, deliver=False)``: notifications are queued to the
outbox, nothing is delivered. Per tick: wall time, split into loading (rules, instances,
silences, group states from the store), gather (the shared ``query_many`` + last point times),
persistence (the write transaction) and the rest (evaluation, lifecycle, muting, grouping,
message building). Figures: median / min tick, time per rule (tick ÷ rules), slice
evaluations per second, firing count, notifications queued, peak RSS (VmHWM).
``--profile`` prints the top of a cProfile of one steady tick (cumulative time).

Target: ≤ 1 s per tick (median steady tick) on this machine. Prints figures; never passes
or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _data  # noqa: E402

from kpidash.clock import FixedClock  # noqa: E402
from kpidash.engine import Engine  # noqa: E402
from kpidash.engine import alerts as alerts_  # noqa: E402
from kpidash.store.base import open_store  # noqa: E402

SEED = 20240611
START = datetime(2024, 1, 1, tzinfo=UTC)
TARGET_TICK_S = 1.0


# -- data -------------------------------------------------------------------------------------


def make_table(n_kpis: int, n_slices: int, days: int, seed: int) -> tuple[Any, np.ndarray]:
    """Long table timestamp, kpi, value, region; and the level of each KPI."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    level = rng.lognormal(6.0, 1.0, n_kpis)                       # per KPI
    base = level[:, None] * rng.lognormal(0.0, 0.05, (n_kpis, n_slices)).clip(0.9, 1.1)
    day = np.arange(days)
    weekly = 1.0 + 0.1 * np.sin(2 * np.pi * (day % 7) / 7)
    noise = rng.normal(1.0, 0.05, (n_kpis, n_slices, days)).clip(0.85, 1.15)
    values = base[:, :, None] * weekly[None, None, :] * noise
    keep = np.ones(values.shape, dtype=bool)
    # ~2 % of the slices breach on the last complete day
    kind = rng.random((n_kpis, n_slices))
    jump, drop, stale = kind < 0.01, (kind >= 0.01) & (kind < 0.015), (kind >= 0.015) & (
        kind < 0.02)
    values[jump, -1] *= rng.uniform(2.2, 3.5, int(jump.sum()))
    values[drop, -1] *= rng.uniform(0.2, 0.4, int(drop.sum()))
    keep[stale, -4:] = False
    values = np.round(values, 2)
    k_idx, s_idx, d_idx = np.nonzero(keep)
    ts = (np.datetime64(START.replace(tzinfo=None), "us")
          + d_idx.astype("timedelta64[D]").astype("timedelta64[us]"))
    kpi_names = pa.array([f"k{i:03d}" for i in range(n_kpis)])
    regions = pa.array([f"r{i:03d}" for i in range(n_slices)])
    table = pa.table({
        "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "kpi": kpi_names.take(pa.array(k_idx)),
        "value": pa.array(values[keep]),
        "region": regions.take(pa.array(s_idx)),
    })
    return table, level


def kpi_defs(n_kpis: int) -> list[dict[str, Any]]:
    return [{"id": f"k{i:03d}", "name": f"KPI {i}", "aggregation": "sum", "min_value": 0,
             "dimensions": ["region"]} for i in range(n_kpis)]


def _r(x: float) -> float:
    return float(round(x, 2))


def rule_mix(kpi: str, lv: float, n: int) -> list[dict[str, Any]]:
    """``n`` rules on ``kpi`` (level ``lv``), cycling through ten shapes."""
    shapes: list[dict[str, Any]] = [
        {"for": "2h", "condition": {"kind": "threshold", "direction": "above", "bands": {
            "medium": _r(1.6 * lv), "high": _r(2 * lv), "critical": _r(3 * lv)},
            "recovery": _r(1.4 * lv)}},
        {"condition": {"kind": "threshold", "direction": "below", "bands": {
            "medium": _r(0.5 * lv), "high": _r(0.3 * lv)}, "recovery": _r(0.6 * lv)}},
        {"keep_firing_for": "1h", "condition": {"kind": "threshold", "direction": "above",
                                                "bands": {"high": _r(2.5 * lv),
                                                          "critical": _r(4 * lv)}}},
        {"for": "1h", "condition": {"kind": "change", "compare_to": "previous_period",
                                    "bands": {"medium": 40, "high": 80, "critical": 150},
                                    "recovery": 20}},
        {"condition": {"kind": "change", "direction": "down", "bands": {"high": 50,
                                                                        "critical": 75}}},
        {"condition": {"kind": "change", "direction": "up", "compare_to": "same_period_last_week",
                       "bands": {"medium": 50, "high": 100}, "recovery": 25}},
        {"condition": {"kind": "stale", "max_age": "2d", "severity": "high"}},
        {"condition": {"kind": "any", "conditions": [
            {"kind": "threshold", "direction": "above", "bands": {"high": _r(2 * lv)}},
            {"kind": "change", "direction": "down", "bands": {"critical": 50}}]}},
        {"condition": {"kind": "all", "conditions": [
            {"kind": "threshold", "direction": "below", "bands": {"medium": _r(0.6 * lv)}},
            {"kind": "change", "direction": "down", "compare_to": "same_period_last_week",
             "bands": {"medium": 30}}]}},
        {"keep_firing_for": "2h", "condition": {"kind": "any", "conditions": [
            {"kind": "stale", "max_age": "3d"},
            {"kind": "all", "conditions": [
                {"kind": "threshold", "direction": "above", "bands": {"medium": _r(1.8 * lv),
                                                                      "high": _r(2.6 * lv)},
                 "recovery": _r(1.5 * lv)},
                {"kind": "change", "direction": "up", "bands": {"medium": 40}}]}]}},
    ]
    out = []
    for j in range(n):
        r = dict(shapes[j % len(shapes)])
        r.update(id=f"{kpi}_r{j:02d}", kpi=kpi, grain="day", per="region")
        out.append(r)
    return out


def side_rules(kpi: str, lv: float, kind: str) -> list[dict[str, Any]]:
    cond: dict[str, Any] = ({"kind": "anomaly", "min_severity": "medium"} if kind == "anomaly"
                            else {"kind": "forecast", "horizon": 7, "direction": "above",
                                  "threshold": _r(1.7 * lv)})
    return [{"id": f"{kpi}_{kind}", "kpi": kpi, "grain": "day", "per": "region",
             "condition": cond}]


def build(path: Path, n_kpis: int, n_slices: int, days: int, rules: Callable[[str, float],
          list[dict[str, Any]]]) -> tuple[Engine, FixedClock, dict[str, float]]:
    t0 = time.perf_counter()
    table, level = make_table(n_kpis, n_slices, days, SEED)
    t1 = time.perf_counter()
    # now = one hour into the day after the last point: that day is incomplete, so the last
    # evaluated period is the last day with data
    clock = FixedClock(START + timedelta(days=days, hours=1))
    engine = Engine(open_store(str(path)), clock)
    engine.register(kpi_defs(n_kpis))
    engine.ingest_table(table, source="bench")
    t2 = time.perf_counter()
    defs = [r for i in range(n_kpis) for r in rules(f"k{i:03d}", float(level[i]))]
    engine.put_alert_rules(defs)
    t3 = time.perf_counter()
    return engine, clock, {"generate": t1 - t0, "ingest": t2 - t1, "rules": t3 - t2,
                           "points": float(table.num_rows), "n_rules": float(len(defs))}


# -- instrumentation --------------------------------------------------------------------------


class Timers:
    """Wraps the tick's collaborators to split its wall time into phases."""

    def __init__(self, engine: Engine) -> None:
        self.t: dict[str, float] = defaultdict(float)
        store = engine.store
        for name in ("alert_rules", "alert_instances", "silences", "alert_groups"):
            self._wrap(store, name, "load")
        self._wrap(engine, "query_many", "query")
        self._wrap(store, "last_seen", "last_seen")
        gather = alerts_.gather
        real_tx = store.transaction

        def timed_gather(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return gather(*a, **k)
            finally:
                self.t["gather"] += time.perf_counter() - t0

        depth = [0]

        @contextlib.contextmanager
        def timed_tx() -> Iterator[Any]:  # store methods nest transactions: time the outer one
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                with real_tx() as tx:
                    yield tx
            finally:
                depth[0] -= 1
                if not depth[0]:
                    self.t["persist"] += time.perf_counter() - t0

        alerts_.gather = timed_gather
        store.transaction = timed_tx  # type: ignore[method-assign]

    def _wrap(self, obj: Any, name: str, phase: str) -> None:
        fn = getattr(obj, name)

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[phase] += time.perf_counter() - t0

        setattr(obj, name, timed)

    def take(self) -> dict[str, float]:
        out = dict(self.t)
        self.t.clear()
        return out


def run_ticks(engine: Engine, clock: FixedClock, timers: Timers, ticks: int,
              ) -> list[tuple[float, dict[str, float], alerts_.TickReport]]:
    out = []
    for i in range(ticks + 1):
        if i:
            clock.advance(timedelta(hours=1))
        timers.take()
        t0 = time.perf_counter()
        rep = alerts_.tick(engine, clock.now(), None, deliver=False)
        out.append((time.perf_counter() - t0, timers.take(), rep))
    return out


def show(label: str, rows: list[tuple[float, dict[str, float], alerts_.TickReport]],
         evals_per_tick: int) -> float:
    print(f"{'tick':<8}{'wall s':>8}{'load':>8}{'gather':>8}{'(query':>8}{'seen)':>8}"
          f"{'eval+':>8}{'persist':>9}{'evals':>9}{'moves':>7}{'firing':>8}{'notes':>7}"
          f"{'queued':>8}")
    for i, (wall, t, rep) in enumerate(rows):
        rest = wall - t.get("load", 0) - t.get("gather", 0) - t.get("persist", 0)
        name = "cold" if i == 0 else f"steady{i}"
        print(f"{name:<8}{wall:>8.3f}{t.get('load', 0):>8.3f}{t.get('gather', 0):>8.3f}"
              f"{t.get('query', 0):>8.3f}{t.get('last_seen', 0):>8.3f}{rest:>8.3f}"
              f"{t.get('persist', 0):>9.3f}{rep.evaluations:>9,}{rep.transitions:>7,}"
              f"{rep.firing:>8,}{rep.notifications:>7,}{rep.queued:>8,}")
        if rep.errors:
            print(f"   errors: {rep.errors[:3]}")
    steady = [w for w, _, _ in rows[1:]] or [rows[0][0]]
    med = statistics.median(steady)
    rules = rows[0][2].rules
    print(f"{label}: cold {rows[0][0]:.3f} s; steady median {med:.3f} s, min {min(steady):.3f} s"
          f" over {len(steady)} ticks; {1000 * med / max(rules, 1):.3f} ms per rule; "
          f"{evals_per_tick / med:,.0f} slice evaluations/s")
    return med


def profile_tick(engine: Engine, clock: FixedClock, top: int = 30) -> None:
    clock.advance(timedelta(hours=1))
    prof = cProfile.Profile()
    prof.enable()
    alerts_.tick(engine, clock.now(), None, deliver=False)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    print("\ncProfile of one steady tick (top cumulative):")
    print("\n".join(buf.getvalue().splitlines()[:top + 12]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kpis", type=int, default=100)
    ap.add_argument("--slices", type=int, default=100, help="regions per KPI")
    ap.add_argument("--rules-per-kpi", type=int, default=10)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--ticks", type=int, default=5, help="steady ticks after the cold one")
    ap.add_argument("--profile", action="store_true", help="cProfile one more steady tick")
    ap.add_argument("--side-kpis", type=int, default=10,
                    help="KPIs (one rule each) in the anomaly and forecast scenarios")
    ap.add_argument("--side-ticks", type=int, default=3)
    ap.add_argument("--skip-side", action="store_true", help="main scenario only")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="kpidash-bench-alerts-") as tmp:
        engine, clock, info = build(
            Path(tmp) / "main.duckdb", args.kpis, args.slices, args.days,
            lambda k, lv: rule_mix(k, lv, args.rules_per_kpi))
        series = args.kpis * args.slices
        n_rules = int(info["n_rules"])
        evals = n_rules * args.slices
        print(f"main: {args.kpis} KPIs × {args.slices} regions = {series:,} series, "
              f"{int(info['points']):,} points ({args.days} days); {n_rules:,} rules "
              f"(per region) → {evals:,} slice evaluations per tick")
        print(f"setup: generate {info['generate']:.2f} s, ingest {info['ingest']:.2f} s, "
              f"put rules {info['rules']:.2f} s")
        timers = Timers(engine)
        rows = run_ticks(engine, clock, timers, args.ticks)
        print()
        med = show("main", rows, evals)
        verdict = "MET" if med <= TARGET_TICK_S else "MISSED"
        print(f"target ≤ {TARGET_TICK_S:g} s per tick (steady median): {verdict}")
        if args.profile:
            profile_tick(engine, clock)
        engine.close()

        if not args.skip_side:
            for kind in ("anomaly", "forecast"):
                eng, clk, inf = build(
                    Path(tmp) / f"{kind}.duckdb", args.side_kpis, args.slices, args.days,
                    lambda k, lv, kind=kind: side_rules(k, lv, kind))  # type: ignore[misc]
                n = int(inf["n_rules"])
                print(f"\n{kind}: {n} rules ({kind} condition, per region) over "
                      f"{args.side_kpis * args.slices:,} series, {args.days} days")
                side = run_ticks(eng, clk, Timers(eng), args.side_ticks)
                show(kind, side, n * args.slices)
                eng.close()

    rss = _data.peak_rss_mib()
    print(f"\npeak RSS {rss.get('vmhwm', float('nan')):,.0f} MiB "
          f"(ru_maxrss {rss['ru_maxrss']:,.0f} MiB)")


if __name__ == "__main__":
    main()
