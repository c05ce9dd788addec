"""Soak: ten minutes of mixed load on one real server; throughput, p99 drift, RSS growth.

Usage::

    .venv/bin/python benchmarks/soak.py [--duration 600] [--warmup 60] [--days 120]
                                        [--ingest-rate 5] [--batch 200] [--query-rate 20]
                                        [--clients 50] [--churn 5] [--postgres [URL]]

The REAL server runs in its own process (``kpidash serve --demo``, as in ``api.py``, whose
``Server`` this script uses; ``KPIDASH_REFRESH_TICK_SECONDS=0.25``). Three load processes
(multiprocessing, spawn) run for ``--duration`` seconds at fixed rates, each as a few
concurrent loops that keep a schedule (``paced``: a loop that falls behind skips the slots it
missed, so a slow server shows as latency and fewer requests, not as a growing queue):

* **ingest** — ``--ingest-rate`` requests/s, alternately a JSON batch (``POST /api/v1/ingest``)
  and the same number of points as InfluxDB line protocol (``POST /api/v2/write``), each of
  ``--batch`` points of ``signups`` over its 48 series (region × plan × channel) at hourly
  timestamps of the last seven days, values changing every pass. The key space is bounded
  (7 × 24 × 48 = 8,064 series-hours are rewritten over and over), so the data does not grow
  and a growing RSS means a leak, not more data. These points are recent: each batch changes
  the demo dashboard, so the refresher re-renders it and pushes it to the WebSocket clients.
* **query** — ``--query-rate`` requests/s cycling through the read routes a dashboard user
  hits: KPI list, series (plain, filtered, grouped), trends, a forecast, anomalies, alerts,
  insights, the digest, the dashboard render.
* **live** — ``--clients`` WebSocket clients subscribed to the demo dashboard, counting the
  ``dashboard`` messages pushed to them; every 30 s ``--churn`` of them disconnect and connect
  again (connection set-up and tear-down are where servers leak).

The first ``--warmup`` seconds fill caches and are not part of the comparison. Figures per
minute: requests, p50 / p99 by kind, WebSocket messages, server RSS. Then the summary:
throughput, **p99 drift** (p99 of the last minute ÷ p99 of the first minute after warm-up,
all requests), **RSS growth** (server VmRSS at the end vs at the end of warm-up; target
≤ 10 %) and **error responses** (target none: any non-2xx, transport error or unexpected
WebSocket close). Prints figures and MET/MISSED verdicts; never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from api import CHANNELS, PLANS, REGIONS, Server, login, pct, verdict  # noqa: E402

TARGET_RSS_GROWTH = 0.10
SERIES = [(r, p, c) for r in REGIONS for p in PLANS for c in CHANNELS]
HOURS = 7 * 24
CHURN_EVERY = 30.0
INGEST_USERS = 4  # concurrent ingest loops (see paced)
QUERY_USERS = 8  # concurrent dashboard users


def minute_of(t: float, t0: float) -> int:
    return int((t - t0) // 60)


def record(stats: dict[str, Any], kind: str, minute: int, seconds: float | None,
           error: str | None) -> None:
    """Latency (or an error) of one request into ``stats[kind][minute]``."""
    slot = stats.setdefault(kind, {}).setdefault(minute, {"lat": [], "errors": []})
    if error is None and seconds is not None:
        slot["lat"].append(seconds)
    else:
        slot["errors"].append(error or "?")


async def paced(users: int, rate: float, t0: float, duration: float, one: Any) -> int:
    """``users`` concurrent loops calling ``await one(k)`` at ``rate`` calls/s in all, until
    ``t0 + duration``; returns the number of calls. Each loop keeps its own schedule (one call
    every ``users / rate`` seconds); a loop that falls behind calls at once and skips the
    slots it missed, so a slow server shows as latency and fewer calls, never as a backlog
    of queued requests."""
    interval = users / rate
    calls = 0

    async def loop(u: int) -> None:
        nonlocal calls
        at = t0 + u / rate
        k = u
        while True:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if time.monotonic() >= t0 + duration:
                return
            await one(k)
            calls += 1
            k += users
            at = max(at + interval, time.monotonic())

    await asyncio.gather(*(loop(u) for u in range(users)))
    return calls


# -- ingest -----------------------------------------------------------------------------------


def ingest_bodies(batch: int, now: datetime, passes: int) -> list[tuple[str, bytes, str]]:
    """The request bodies in sending order: (path, body, content type), alternately JSON and
    line protocol, walking over the bounded key space with new values every pass."""
    end = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    keys = [(end - timedelta(hours=h), s) for h in range(HOURS) for s in SERIES]
    out: list[tuple[str, bytes, str]] = []
    i = 0
    for p in range(passes):
        for start in range(0, len(keys), batch):
            chunk = keys[start:start + batch]
            values = [((i + k) * 7919 + p * 31) % 997 + 3 for k in range(len(chunk))]
            i += len(chunk)
            if len(out) % 2 == 0:
                pts = [{"kpi": "signups", "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": v,
                        "dims": {"region": r, "plan": pl, "channel": c}}
                       for (ts, (r, pl, c)), v in zip(chunk, values, strict=True)]
                out.append(("/api/v1/ingest", json.dumps({"points": pts}).encode(),
                            "application/json"))
            else:
                lines = [f"signups,region={r},plan={pl},channel={c} value={v} "
                         f"{int(ts.timestamp())}"
                         for (ts, (r, pl, c)), v in zip(chunk, values, strict=True)]
                out.append(("/api/v2/write?precision=s", "\n".join(lines).encode(),
                            "text/plain; charset=utf-8"))
    return out


def ingest_worker(url: str, token: str, rate: float, batch: int, duration: float,
                  t0: float, out: Any) -> None:
    import httpx

    n = int(rate * duration) + 1
    per_pass = -(-HOURS * len(SERIES) // batch)
    bodies = ingest_bodies(batch, datetime.now(UTC), -(-n // per_pass))

    async def main() -> dict[str, Any]:
        stats: dict[str, Any] = {}
        points = 0
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(
                max_connections=INGEST_USERS), headers={"Authorization": f"Bearer {token}"}) as c:

            async def one(k: int) -> None:
                nonlocal points
                path, body, ctype = bodies[k % len(bodies)]
                kind = "ingest json" if path.startswith("/api/v1") else "ingest lp"
                s = time.monotonic()
                try:
                    r = await c.post(path, content=body, headers={"Content-Type": ctype})
                    err = None if r.status_code in (200, 204) else f"{r.status_code} {r.text[:120]}"
                except httpx.HTTPError as exc:
                    err = type(exc).__name__
                record(stats, kind, minute_of(s, t0), time.monotonic() - s, err)
                if err is None:
                    points += batch

            await paced(INGEST_USERS, rate, t0, duration, one)
        return {"stats": stats, "points": points}

    out.put(("ingest", asyncio.run(main())))


# -- queries ----------------------------------------------------------------------------------


def query_paths(dashboard: str) -> list[tuple[str, str]]:
    return [
        ("kpis", "/api/v1/kpis"),
        ("series", "/api/v1/series/revenue?grain=day"),
        ("series", "/api/v1/series/signups?grain=day&filter=region:EU&by=plan"),
        ("trends", "/api/v1/trends/mrr?grain=week"),
        ("render", f"/api/v1/dashboards/{dashboard}/render"),
        ("series", "/api/v1/series/customer_churn_rate?grain=week&by=region"),
        ("forecast", "/api/v1/forecast/signups?grain=day&horizon=14"),
        ("anomalies", "/api/v1/anomalies"),
        ("alerts", "/api/v1/alerts"),
        ("insights", "/api/v1/insights"),
        ("render", f"/api/v1/dashboards/{dashboard}/render"),
        ("digest", "/api/v1/digest"),
    ]


def query_worker(url: str, token: str, dashboard: str, rate: float, duration: float,
                 t0: float, out: Any) -> None:
    import httpx

    paths = query_paths(dashboard)

    async def main() -> dict[str, Any]:
        stats: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(
                max_connections=QUERY_USERS), headers={"Authorization": f"Bearer {token}"}) as c:

            async def one(k: int) -> None:
                kind, path = paths[k % len(paths)]
                s = time.monotonic()
                try:
                    r = await c.get(path)
                    err = None if r.status_code == 200 else f"{r.status_code} {r.text[:120]}"
                except httpx.HTTPError as exc:
                    err = type(exc).__name__
                record(stats, "query " + kind, minute_of(s, t0), time.monotonic() - s, err)

            await paced(QUERY_USERS, rate, t0, duration, one)
        return {"stats": stats}

    out.put(("query", asyncio.run(main())))


# -- live clients -----------------------------------------------------------------------------


def live_worker(url: str, token: str, dashboard: str, clients: int, churn: int,
                duration: float, t0: float, out: Any) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    ws_url = url.replace("http://", "ws://") + "/api/v1/ws"

    async def main() -> dict[str, Any]:
        messages: dict[int, int] = {}
        errors: list[str] = []
        connects = 0
        t_end = t0 + duration

        async def session(i: int, until: float) -> None:
            """One client from connect to ``until`` (or the end of the run)."""
            nonlocal connects
            try:
                async with connect(ws_url, max_size=None, open_timeout=60, ping_interval=20,
                                   close_timeout=5) as ws:
                    connects += 1
                    await ws.send(json.dumps({"type": "auth", "token": token}))
                    first = json.loads(await ws.recv())
                    if first.get("type") != "ready":
                        errors.append(f"auth: {str(first)[:120]}")
                        return
                    await ws.send(json.dumps({"type": "subscribe", "dashboard": dashboard}))
                    while True:
                        left = until - time.monotonic()
                        if left <= 0:
                            return
                        try:
                            raw = await asyncio.wait_for(ws.recv(), left)
                        except TimeoutError:
                            return
                        m = json.loads(raw)
                        if m.get("type") == "dashboard":
                            minute = minute_of(time.monotonic(), t0)
                            messages[minute] = messages.get(minute, 0) + 1
                        elif m.get("type") == "error":
                            errors.append(f"message: {str(m)[:120]}")
            except ConnectionClosed as exc:
                errors.append(f"closed: {exc}")
            except (OSError, TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        async def client(i: int) -> None:
            # the first `churn` clients reconnect every CHURN_EVERY seconds, the rest stay
            while time.monotonic() < t_end:
                until = (min(t_end, time.monotonic() + CHURN_EVERY) if i < churn else t_end)
                failed = len(errors)
                await session(i, until)
                if len(errors) > failed:  # no tight reconnect loop against a failing server
                    await asyncio.sleep(1.0)

        await asyncio.gather(*(client(i) for i in range(clients)))
        return {"messages": messages, "errors": errors, "connects": connects}

    out.put(("live", asyncio.run(main())))


# -- main -------------------------------------------------------------------------------------


def sample_rss(server: Server, t0: float, duration: float, every: float,
               samples: list[tuple[float, float]]) -> None:
    while time.monotonic() < t0 + duration + 1:
        rss = server.peak_rss_mib().get("VmRSS")
        if rss is not None:
            samples.append((time.monotonic() - t0, rss))
        time.sleep(every)


def merge(into: dict[str, Any], stats: dict[str, Any]) -> None:
    for kind, minutes in stats.items():
        for minute, slot in minutes.items():
            dst = into.setdefault(kind, {}).setdefault(minute, {"lat": [], "errors": []})
            dst["lat"].extend(slot["lat"])
            dst["errors"].extend(slot["errors"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    ap.add_argument("--warmup", type=float, default=60.0,
                    help="seconds at the start left out of the drift and growth baselines")
    ap.add_argument("--days", type=int, default=120, help="days of demo data")
    ap.add_argument("--ingest-rate", type=float, default=5.0, help="ingest requests/s")
    ap.add_argument("--batch", type=int, default=200, help="points per ingest request")
    ap.add_argument("--query-rate", type=float, default=20.0, help="query requests/s")
    ap.add_argument("--clients", type=int, default=50, help="WebSocket clients")
    ap.add_argument("--churn", type=int, default=5,
                    help="clients that reconnect every 30 s")
    ap.add_argument("--tick", type=float, default=0.25,
                    help="KPIDASH_REFRESH_TICK_SECONDS of the server")
    ap.add_argument("--postgres", nargs="?", const="", default=None, metavar="URL",
                    help="serve a PostgreSQL store: a server URL whose role may create "
                         "databases, or no URL for a throwaway server")
    args = ap.parse_args()
    if args.warmup >= args.duration - 60:
        raise SystemExit("--duration must leave at least a minute after --warmup")

    with contextlib.ExitStack() as stack:
        db = None
        if args.postgres is not None:
            import _pg

            base = stack.enter_context(_pg.server(args.postgres))
            db = _pg.recreate_database(base, "kpidash_bench_soak")
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="kpidash-soak-"))
        server = Server(args.days, Path(tmp), args.tick, db)
        stack.callback(server.stop)
        run(args, server, "PostgreSQL" if db else "DuckDB")


def run(args: Any, server: Server, store: str) -> None:
    import threading

    import httpx

    started = server.wait_ready()
    print(f"machine: {os.cpu_count()} cores, shared by the server and the load processes")
    print(f"server: pid {server.proc.pid}, {store}, demo {args.days} days, ready in "
          f"{started:.1f} s")
    token = login(server.url, server.user, server.password)
    h = {"Authorization": f"Bearer {token}"}
    dashboard = httpx.get(f"{server.url}/api/v1/dashboards", headers=h, timeout=30).json()[0]
    print(f"load for {args.duration:g} s: ingest {args.ingest_rate:g} req/s × {args.batch} "
          f"points (JSON and line protocol), queries {args.query_rate:g} req/s, "
          f"{args.clients} WebSocket clients on {dashboard['name']!r} ({args.churn} reconnect "
          f"every {CHURN_EVERY:g} s); warm-up {args.warmup:g} s")
    sys.stdout.flush()

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    t0 = time.monotonic() + 5.0  # every process starts its schedule at the same instant
    procs = [
        ctx.Process(target=ingest_worker, args=(server.url, token, args.ingest_rate,
                                                args.batch, args.duration, t0, out)),
        ctx.Process(target=query_worker, args=(server.url, token, dashboard["id"],
                                               args.query_rate, args.duration, t0, out)),
        ctx.Process(target=live_worker, args=(server.url, token, dashboard["id"],
                                              args.clients, args.churn, args.duration, t0,
                                              out)),
    ]
    for p in procs:
        p.start()
    rss: list[tuple[float, float]] = []
    time.sleep(max(0.0, t0 - time.monotonic()))
    cpu0 = server.cpu_seconds()
    sampler = threading.Thread(target=sample_rss, args=(server, t0, args.duration, 5.0, rss),
                               daemon=True)
    sampler.start()
    results = dict(out.get(timeout=args.duration + 600) for _ in procs)
    cpu = (server.cpu_seconds() - cpu0) / args.duration
    for p in procs:
        p.join(60)
    sampler.join(30)
    crashed = server.proc.poll()
    report(args, results, rss, cpu, crashed, server.peak_rss_mib())


def report(args: Any, results: dict[str, Any], rss: list[tuple[float, float]], cpu: float,
           crashed: int | None, final: dict[str, float]) -> None:
    stats: dict[str, Any] = {}
    merge(stats, results["ingest"]["stats"])
    merge(stats, results["query"]["stats"])
    live = results["live"]
    minutes = int(-(-args.duration // 60))
    first = int(args.warmup // 60)  # the first whole minute after the warm-up

    def lat(kinds: list[str], minute: int | None = None) -> list[float]:
        return [x for k in kinds for m, slot in stats.get(k, {}).items()
                if minute is None or m == minute for x in slot["lat"]]

    def rss_at(t: float) -> float:
        before = [v for s, v in rss if s <= t]
        return before[-1] if before else rss[0][1]

    kinds = sorted(stats)
    ingest = [k for k in kinds if k.startswith("ingest")]
    query = [k for k in kinds if k.startswith("query")]
    print(f"\n{'minute':>6}{'ingest':>8}{'p50':>7}{'p99':>7}{'queries':>9}{'p50':>7}{'p99':>7}"
          f"{'all p99':>9}{'ws msgs':>9}{'RSS MiB':>9}{'errors':>8}   (latencies in ms)")
    for m in range(minutes):
        i, q = lat(ingest, m), lat(query, m)
        errs = sum(len(slot["errors"]) for k in kinds for mm, slot in stats[k].items()
                   if mm == m)
        print(f"{m + 1:>6}{len(i):>8}{pct(i, 50) * 1000:>7.0f}{pct(i, 99) * 1000:>7.0f}"
              f"{len(q):>9}{pct(q, 50) * 1000:>7.0f}{pct(q, 99) * 1000:>7.0f}"
              f"{pct(i + q, 99) * 1000:>9.0f}{live['messages'].get(m, 0):>9}"
              f"{rss_at(min((m + 1) * 60, args.duration)):>9.0f}{errs:>8}"
              + ("   (warm-up)" if m < first else ""))

    print(f"\n{'kind':<18}{'requests':>9}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'errors':>8}")
    for k in kinds:
        xs = lat([k])
        errs = [e for slot in stats[k].values() for e in slot["errors"]]
        print(f"{k:<18}{len(xs) + len(errs):>9}{pct(xs, 50) * 1000:>8.0f}"
              f"{pct(xs, 99) * 1000:>8.0f}{(max(xs) if xs else float('nan')) * 1000:>8.0f}"
              f"{len(errs):>8}")

    errors = [f"{k}: {e}" for k in kinds for slot in stats[k].values() for e in slot["errors"]]
    errors += [f"live: {e}" for e in live["errors"]]
    requests = len(lat(kinds)) + sum(len(slot["errors"]) for k in kinds
                                     for slot in stats[k].values())
    p99_first = pct(lat(kinds, first), 99) * 1000
    p99_last = pct(lat(kinds, minutes - 1), 99) * 1000
    base_rss = rss_at(args.warmup)
    end_rss = rss[-1][1] if rss else float("nan")
    growth = (end_rss - base_rss) / base_rss
    print(f"\nthroughput: {requests / args.duration:,.1f} requests/s "
          f"({requests:,} requests), {results['ingest']['points'] / args.duration:,.0f} "
          f"points/s ingested, {sum(live['messages'].values()):,} dashboard pushes to "
          f"{args.clients} WebSocket clients ({live['connects']:,} connections opened); "
          f"server CPU {cpu:.0%} of a core")
    print(f"p99 drift: {p99_first:.0f} ms in minute {first + 1} → {p99_last:.0f} ms in minute "
          f"{minutes} (×{p99_last / p99_first:.2f})")
    print(f"server RSS: {base_rss:,.0f} MiB after the warm-up → {end_rss:,.0f} MiB at the end "
          f"({growth:+.1%}); peak {final.get('VmHWM', float('nan')):,.0f} MiB (VmHWM)")
    if crashed is not None:
        errors.append(f"the server exited with {crashed} during the run")
    print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors[:10]))
    print(f"\n{'measure':<22}{'figure':<26}{'target':<14}verdict")
    print(f"{'RSS growth':<22}{growth:<+26.1%}{'≤ +10 %':<14}"
          f"{verdict(growth <= TARGET_RSS_GROWTH)}")
    print(f"{'error responses':<22}{len(errors):<26}{'0':<14}{verdict(not errors)}")
    print(f"{'p99 drift':<22}{f'×{p99_last / p99_first:.2f}':<26}{'(reported)':<14}-")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
