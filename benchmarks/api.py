"""API server throughput: dashboard renders, JSON-batch ingest, ingest → 500 WebSocket clients.

Usage::

    .venv/bin/python benchmarks/api.py [--days 180] [--duration 10] [--connections 32,64]
                                       [--load-procs 1] [--clients 500] [--ws-procs 2]
                                       [--rounds 5] [--batch 10000] [--ingest-clients 2]
                                       [--skip-render] [--skip-ingest] [--skip-ws]
                                       [--postgres [URL]] [--workers 1,2]

The REAL server runs in its own process: ``.venv/bin/kpidash serve --demo --days N --port P``
with ``KPIDASH_DB`` in a temporary folder (the demo data is generated deterministically by
``kpidash.demo``; the demo login is parsed from the server's stdout) and
``KPIDASH_REFRESH_TICK_SECONDS=0.25``. Every load generator runs in other processes
(multiprocessing, spawn): httpx ``AsyncClient`` with keep-alive connections, ``websockets``
for the live clients. The server is always stopped at the end (try/finally), after its peak
RSS (VmHWM from ``/proc/<pid>/status``) was read.

1. **render** — ``GET /api/v1/dashboards/{id}/render`` of a copy of the demo dashboard
   ("SaaS overview": 4 cards, 3 charts, the insights widget, 90 days at day grain) with a
   refresh interval of an hour (the render cache's key has a time bucket of the refresh
   interval; the demo's 30 s would re-render during the run). Warm: one request first
   renders it into the cache, 1 s of warm-up load, then ``--duration`` seconds with
   ``--connections`` concurrent keep-alive connections (each its own httpx client, a loop:
   request, read the whole body, next). Figures: requests/s, p50 / p99 / max latency
   (nearest rank), errors, CPU of the server and of the load process. Target ≥ 1,500 req/s
   with p99 ≤ 50 ms.
2. **ingest** — ``POST /api/v1/ingest`` of ``--batch`` points per request (``signups``,
   region × plan × channel = 48 series, hourly timestamps years before the demo data, every
   batch new points), JSON bytes built before the clock starts, ``--ingest-clients``
   processes each posting back to back for ``--duration`` seconds. points/s = points written
   ÷ wall time. Target ≥ 100,000 points/s.
3. **ws** — ``--clients`` WebSocket connections in ``--ws-procs`` processes (asyncio),
   each: auth, subscribe to that dashboard, wait for its first ``dashboard`` message.
   Then ``--rounds`` times: the clients are armed, the coordinator posts ONE point of
   ``signups`` (yesterday, a new value each round) and records the time just before sending
   and when the response arrived; every client records when it receives its next
   ``dashboard`` message (checked afterwards to carry a new etag). Latency per client from
   just before the POST (``time.monotonic`` is one system-wide clock on Linux, so it compares
   across processes). Figures per round: p50 / p99 / max, and the time until the last
   (500th) client; target ≤ 500 ms for the 500th client.

``--postgres [URL]`` serves a PostgreSQL store instead of the DuckDB file (a fresh database
per run on the server at URL, whose role may create databases, or on a throwaway server
started for the run: see ``_pg.py``), and ``--workers 1,2`` runs everything once per worker
count (``kpidash serve --workers N``; more than one needs ``--postgres``), then prints the
runs side by side. Server CPU and RSS then cover the whole process tree (the workers are
children of ``kpidash serve``).

The machine has 2 cores and the load generators share them with the server: the figures
are a floor for what the server does on its own. Prints figures and MET/MISSED verdicts;
never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KPIDASH = ROOT / ".venv" / "bin" / "kpidash"

TARGET_RENDER_RPS = 1500.0
TARGET_RENDER_P99_MS = 50.0
TARGET_INGEST_PPS = 100_000.0
TARGET_WS_MS = 500.0
REGIONS = ("NA", "EU", "APAC", "LATAM")
PLANS = ("free", "pro", "enterprise")
CHANNELS = ("organic", "paid", "referral", "partner")


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


# -- the server -------------------------------------------------------------------------------


class Server:
    def __init__(self, days: int, workdir: Path, tick: float, db: str | None = None,
                 workers: int = 1) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "KPIDASH_DB": db or str(workdir / "api.duckdb"),
               "KPIDASH_REFRESH_TICK_SECONDS": str(tick), "COLUMNS": "300",
               "PYTHONUNBUFFERED": "1"}
        env.pop("KPIDASH_SECRET", None)
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [str(KPIDASH), "serve", "--demo", "--days", str(days), "--port", str(self.port),
             "--workers", str(workers)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.user = self.password = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 600.0) -> float:
        import httpx

        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + "\n".join(self.lines[-30:]))
            for line in self.lines:
                m = re.search(r"demo login: user '([^']+)', password '([^']+)'", line)
                if m:
                    self.user, self.password = m.group(1), m.group(2)
            if self.password:
                try:
                    if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                        return time.monotonic() - t0
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise RuntimeError("server did not start in time:\n" + "\n".join(self.lines[-30:]))

    def pids(self) -> list[int]:
        """The server process and its worker processes (children)."""
        import psutil

        try:
            me = psutil.Process(self.proc.pid)
            return [me.pid, *(c.pid for c in me.children(recursive=True))]
        except psutil.Error:
            return [self.proc.pid]

    def peak_rss_mib(self) -> dict[str, float]:
        """VmHWM and VmRSS summed over the server's processes (MiB)."""
        out: dict[str, float] = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key, _, rest = line.partition(":")
                    if key in ("VmHWM", "VmRSS"):
                        out[key] = out.get(key, 0.0) + int(rest.split()[0]) / 1024
            except OSError:
                pass
        return out

    def cpu_seconds(self) -> float:
        """CPU seconds of the server's processes (user + system)."""
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                continue
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# -- render load (runs in its own process) ----------------------------------------------------


def render_worker(url: str, path: str, token: str, conns: int, warmup: float, duration: float,
                  barrier: Any, out: Any) -> None:
    import httpx

    async def main() -> dict[str, Any]:
        # one AsyncClient (one keep-alive connection) per concurrent loop: a single client's
        # pool shared by 32+ tasks costs the load generator several ms of CPU per request
        clients = [httpx.AsyncClient(base_url=url, timeout=60,
                                     limits=httpx.Limits(max_connections=1),
                                     headers={"Authorization": f"Bearer {token}"})
                   for _ in range(conns)]
        # open every connection before the clock starts
        await asyncio.gather(*(c.get(path) for c in clients))
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
        t_start = time.monotonic()
        t_measure = t_start + warmup
        t_end = t_measure + duration
        lat: list[float] = []
        errors: dict[str, int] = {}

        async def loop(client: Any) -> None:
            while True:
                t0 = time.monotonic()
                if t0 >= t_end:
                    return
                try:
                    r = await client.get(path)
                    ok = r.status_code == 200
                    err = str(r.status_code)
                except httpx.HTTPError as exc:
                    ok, err = False, type(exc).__name__
                t1 = time.monotonic()
                if t0 >= t_measure:
                    if ok:
                        lat.append(t1 - t0)
                    else:
                        errors[err] = errors.get(err, 0) + 1

        cpu0 = time.process_time()
        await asyncio.gather(*(loop(c) for c in clients))
        elapsed = time.monotonic() - t_start
        cpu = (time.process_time() - cpu0) / elapsed
        await asyncio.gather(*(c.aclose() for c in clients))
        return {"lat": lat, "errors": errors, "elapsed": time.monotonic() - t_measure,
                "cpu": cpu}

    out.put(asyncio.run(main()))


def run_render(server: Server, token: str, path: str, conns: int, procs: int, warmup: float,
               duration: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs + 1)
    out = ctx.Queue()
    per = [conns // procs + (1 if i < conns % procs else 0) for i in range(procs)]
    ps = [ctx.Process(target=render_worker, args=(server.url, path, token, n, warmup, duration,
                                                  barrier, out)) for n in per]
    for p in ps:
        p.start()
    barrier.wait()
    cpu0 = server.cpu_seconds()
    results = [out.get(timeout=duration + warmup + 120) for _ in ps]
    cpu1 = server.cpu_seconds()
    for p in ps:
        p.join()
    lat = [x for r in results for x in r["lat"]]
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    elapsed = max(r["elapsed"] for r in results)
    return {"conns": conns, "rps": len(lat) / elapsed, "n": len(lat),
            "p50": pct(lat, 50) * 1000, "p99": pct(lat, 99) * 1000, "max": max(lat) * 1000,
            "slow": sum(1 for x in lat if x > 0.1), "errors": errors,
            "server_cpu": (cpu1 - cpu0) / (elapsed + warmup),
            "client_cpu": sum(r["cpu"] for r in results)}


def run_render_ab(server: Server, token: str, path: str, conns: int, duration: float,
                  ) -> dict[str, Any] | None:
    """The same load from ApacheBench (``ab -k``, one C process) when it is installed: the
    Python load generator needs more CPU per request than the server, so on 2 cores it
    measures itself; ``ab`` leaves the server a core. Debian: apt-get install apache2-utils."""
    exe = shutil.which("ab")
    if exe is None:
        return None
    cpu0 = server.cpu_seconds()
    t0 = time.monotonic()
    proc = subprocess.run(
        [exe, "-k", "-q", "-c", str(conns), "-t", str(int(duration)), "-n", "10000000",
         "-H", f"Authorization: Bearer {token}", f"{server.url}{path}"],
        capture_output=True, text=True, timeout=duration + 60)
    elapsed = time.monotonic() - t0
    cpu1 = server.cpu_seconds()
    text = proc.stdout

    def grab(pattern: str) -> float:
        m = re.search(pattern, text)
        return float(m.group(1)) if m else float("nan")

    failed = int(grab(r"Failed requests:\s+(\d+)"))
    # ab counts a body whose length differs from the first one's as failed ("Length"): with
    # several workers each renders at its own instant (generated_at, time-decayed insight
    # scores), so those are not errors; connection, receive and exception failures are
    length = grab(r"\(Connect: \d+, Receive: \d+, Length: (\d+),")
    failed -= 0 if math.isnan(length) else int(length)
    non2xx = grab(r"Non-2xx responses:\s+(\d+)")
    errors = {k: v for k, v in (("failed", failed), ("non_2xx", 0 if math.isnan(non2xx)
                                                        else int(non2xx))) if v}
    return {"conns": conns, "rps": grab(r"Requests per second:\s+([\d.]+)"),
            "p50": grab(r"\n\s+50%\s+(\d+)"), "p99": grab(r"\n\s+99%\s+(\d+)"),
            "max": grab(r"\n\s+100%\s+(\d+)"), "errors": errors,
            "server_cpu": (cpu1 - cpu0) / elapsed}


# -- ingest load ------------------------------------------------------------------------------


def make_batch(batch: int, start: datetime) -> tuple[bytes, int]:
    """``batch`` new points of signups: 48 series × hourly steps from ``start``."""
    series = [(r, p, c) for r in REGIONS for p in PLANS for c in CHANNELS]
    parts = []
    for i in range(batch):
        r, p, c = series[i % len(series)]
        ts = (start + timedelta(hours=i // len(series))).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts.append(f'{{"kpi":"signups","ts":"{ts}","value":{(i * 7919) % 997 + 3},'
                     f'"dims":{{"region":"{r}","plan":"{p}","channel":"{c}"}}}}')
    hours = math.ceil(batch / len(series))
    return ('{"points":[' + ",".join(parts) + "]}").encode(), hours


def ingest_worker(url: str, token: str, batch: int, n_batches: int, client: int,
                  n_clients: int, duration: float, barrier: Any, out: Any) -> None:
    import httpx

    # client c takes batches c, c + n_clients, …: disjoint hours, every point new
    hours = math.ceil(batch / 48)
    base = datetime(2005, 1, 1, tzinfo=UTC)
    bodies = [make_batch(batch, base + timedelta(hours=(client + j * n_clients) * hours))[0]
              for j in range(n_batches)]

    async def main() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=url, timeout=120, headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json"}) as c:
            await c.get("/api/v1/health")
            await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
            t0 = time.monotonic()
            t_end = t0 + duration
            written = rows = sent = 0
            lat: list[float] = []
            errors: list[str] = []
            while time.monotonic() < t_end:
                body = bodies[sent % len(bodies)]
                s = time.monotonic()
                r = await c.post("/api/v1/ingest", content=body)
                lat.append(time.monotonic() - s)
                sent += 1
                if r.status_code == 200:
                    doc = r.json()
                    written += doc["written"]
                    rows += doc["rows"]
                else:
                    errors.append(f"{r.status_code} {r.text[:200]}")
            return {"written": written, "rows": rows, "requests": sent, "lat": lat,
                    "errors": errors, "elapsed": time.monotonic() - t0,
                    "bytes": len(bodies[0]), "reused": sent > len(bodies)}

    out.put(asyncio.run(main()))


def run_ingest(server: Server, token: str, batch: int, clients: int,
               duration: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(clients + 1)
    out = ctx.Queue()
    # enough distinct batches for 2× the target rate; beyond that batches are re-sent
    n_batches = max(4, math.ceil(2 * TARGET_INGEST_PPS * duration / batch / clients))
    ps = [ctx.Process(target=ingest_worker, args=(server.url, token, batch, n_batches, i,
                                                  clients, duration, barrier, out))
          for i in range(clients)]
    for p in ps:
        p.start()
    barrier.wait()
    cpu0 = server.cpu_seconds()
    results = [out.get(timeout=duration + 600) for _ in ps]
    cpu1 = server.cpu_seconds()
    for p in ps:
        p.join()
    elapsed = max(r["elapsed"] for r in results)
    lat = [x for r in results for x in r["lat"]]
    return {"written": sum(r["written"] for r in results),
            "rows": sum(r["rows"] for r in results),
            "requests": sum(r["requests"] for r in results), "elapsed": elapsed,
            "pps": sum(r["written"] for r in results) / elapsed,
            "p50": pct(lat, 50) * 1000, "p99": pct(lat, 99) * 1000,
            "errors": [e for r in results for e in r["errors"]],
            "bytes": results[0]["bytes"], "reused": any(r["reused"] for r in results),
            "server_cpu": (cpu1 - cpu0) / elapsed}


# -- WebSocket clients ------------------------------------------------------------------------


def ws_worker(url: str, token: str, dashboard: str, n: int, conn: Any) -> None:
    from websockets.asyncio.client import connect

    ws_url = url.replace("http://", "ws://") + "/api/v1/ws"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(32)
        etag0: list[str] = [""] * n
        state: dict[str, Any] = {"armed": False, "got": {}, "done": asyncio.Event()}

        async def open_one(i: int) -> Any:
            async with sem:
                ws = await connect(ws_url, max_size=None, open_timeout=120, ping_interval=None,
                                   close_timeout=2)
                await ws.send(json.dumps({"type": "auth", "token": token}))
                first = json.loads(await ws.recv())
                if first.get("type") != "ready":
                    raise RuntimeError(f"auth failed: {first}")
                await ws.send(json.dumps({"type": "subscribe", "dashboard": dashboard}))
                while True:
                    m = json.loads(await ws.recv())
                    if m.get("type") == "dashboard":
                        etag0[i] = m["data"]["etag"]
                        return ws
                    if m.get("type") == "error":
                        raise RuntimeError(f"subscribe failed: {m}")

        async def reader(i: int, ws: Any) -> None:
            async for raw in ws:
                t = time.monotonic()
                # cheap test on the head of the message; parsed after the round, off the clock
                if state["armed"] and i not in state["got"] and '"dashboard"' in raw[:40]:
                    state["got"][i] = (t, raw)
                    if len(state["got"]) == n:
                        state["done"].set()

        t0 = time.monotonic()
        socks = await asyncio.gather(*(open_one(i) for i in range(n)))
        readers = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(socks)]
        conn.send(("ready", time.monotonic() - t0))
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd[0] == "arm":
                state.update(armed=True, got={}, done=asyncio.Event())
                conn.send(("armed",))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state["done"].wait(), cmd[1])
                state["armed"] = False
                times: list[float | None] = [None] * n
                changed = 0
                for i, (t, raw) in state["got"].items():
                    times[i] = t
                    etag = json.loads(raw)["data"]["etag"]
                    changed += etag != etag0[i]
                    etag0[i] = etag
                conn.send(("round", times, changed))
            else:
                break
        for r in readers:
            r.cancel()
        await asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True)
        conn.send(("closed",))

    asyncio.run(main())


def run_ws(server: Server, token: str, dashboard: str, clients: int, procs: int, rounds: int,
           timeout: float) -> dict[str, Any]:
    import httpx

    ctx = mp.get_context("spawn")
    pipes, ps = [], []
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    for n in per:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=ws_worker, args=(server.url, token, dashboard, n, child))
        p.start()
        pipes.append(parent)
        ps.append(p)
    try:
        setup = max(pp.recv()[1] for pp in pipes)
        yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
        out_rounds = []
        with httpx.Client(base_url=server.url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            time.sleep(1.0)
            for r in range(rounds):
                for pp in pipes:
                    pp.send(("arm", timeout))
                for pp in pipes:
                    pp.recv()
                time.sleep(0.3)  # let the readers settle
                body = json.dumps({"points": [{
                    "kpi": "signups", "ts": yesterday, "value": 50_000 + 1_000 * r + 17,
                    "dims": {"region": "EU", "plan": "pro", "channel": "paid"}}]}).encode()
                t_send = time.monotonic()
                resp = http.post("/api/v1/ingest", content=body,
                                 headers={"Content-Type": "application/json"})
                t_resp = time.monotonic()
                times: list[float | None] = []
                changed = 0
                for pp in pipes:
                    _, ts, ch = pp.recv()
                    times.extend(ts)
                    changed += ch
                got = [t - t_send for t in times if t is not None]
                out_rounds.append({
                    "status": resp.status_code, "post_ms": (t_resp - t_send) * 1000,
                    "received": len(got), "changed": changed,
                    "p50": pct(got, 50) * 1000, "p99": pct(got, 99) * 1000,
                    "last": (max(got) * 1000) if len(got) == clients else float("inf"),
                    "first": min(got) * 1000 if got else float("nan"),
                    "after_resp_p50": pct([t - t_resp for t in times if t is not None],
                                          50) * 1000})
                time.sleep(0.5)
        return {"setup": setup, "rounds": out_rounds}
    finally:
        for pp in pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pp.send(("stop",))
        for p in ps:
            p.join(30)
            if p.is_alive():
                p.terminate()


# -- main -------------------------------------------------------------------------------------


def login(url: str, user: str, password: str) -> str:
    import httpx

    r = httpx.post(f"{url}/api/v1/auth/token", data={"username": user, "password": password},
                   timeout=60)
    r.raise_for_status()
    return str(r.json()["access_token"])


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=180, help="days of demo data")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load phase")
    ap.add_argument("--warmup", type=float, default=1.0, help="render warm-up seconds")
    ap.add_argument("--connections", default="32,64",
                    help="concurrent render connections (comma-separated runs)")
    ap.add_argument("--load-procs", type=int, default=1, help="render load processes")
    ap.add_argument("--batch", type=int, default=10_000, help="points per ingest request")
    ap.add_argument("--ingest-clients", type=int, default=2)
    ap.add_argument("--clients", type=int, default=500, help="WebSocket clients")
    ap.add_argument("--ws-procs", type=int, default=2, help="processes holding the clients")
    ap.add_argument("--rounds", type=int, default=5, help="ingest → WebSocket rounds")
    ap.add_argument("--ws-timeout", type=float, default=15.0,
                    help="seconds a round waits for every client")
    ap.add_argument("--tick", type=float, default=0.25,
                    help="KPIDASH_REFRESH_TICK_SECONDS of the server")
    ap.add_argument("--skip-render", action="store_true")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-ws", action="store_true")
    ap.add_argument("--postgres", nargs="?", const="", default=None, metavar="URL",
                    help="serve a PostgreSQL store: a server URL whose role may create "
                         "databases, or no URL for a throwaway server")
    ap.add_argument("--workers", default="1",
                    help="server processes (comma-separated runs; > 1 needs --postgres)")
    args = ap.parse_args()
    conns = [int(c) for c in str(args.connections).split(",") if c.strip()]
    counts = [int(w) for w in str(args.workers).split(",") if w.strip()]
    if any(w > 1 for w in counts) and args.postgres is None:
        raise SystemExit("--workers above 1 needs --postgres (a DuckDB file has one process)")

    print(f"machine: {os.cpu_count()} cores, shared by the server and the load generators "
          "(the figures are a floor for the server alone)")
    runs: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    with contextlib.ExitStack() as stack:
        pg_base = None
        if args.postgres is not None:
            sys.path.insert(0, str(HERE))
            import _pg

            pg_base = stack.enter_context(_pg.server(args.postgres))
        for n in counts:
            db = None
            if pg_base is not None:
                db = _pg.recreate_database(pg_base, f"kpidash_bench_api_{n}")
            store = "PostgreSQL" if db else "DuckDB"
            print(f"\n##### {store}, {n} worker process{'es' if n > 1 else ''}")
            runs.append((f"{store}, {n} worker{'s' if n > 1 else ''}",
                         bench_one(args, conns, db, n)))
            if pg_base is not None:
                _pg.drop_database(pg_base, f"kpidash_bench_api_{n}")
    if len(runs) > 1:
        print("\n" + f"{'measure':<34}" + "".join(f"{name:<40}" for name, _ in runs))
        for i, (measure, *_rest) in enumerate(runs[0][1]):
            print(f"{measure:<34}" + "".join(f"{rows[i][1] if i < len(rows) else '':<40}"
                                              for _, rows in runs))
    sys.stdout.flush()


def bench_one(args: Any, conns: list[int], db: str | None,
              workers: int) -> list[tuple[str, str, str, str]]:
    """Every selected phase against one server; prints its figures, returns its rows."""
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="kpidash-bench-api-") as tmp:
        server = Server(args.days, Path(tmp), args.tick, db, workers)
        rss: dict[str, float] = {}
        try:
            started = server.wait_ready()
            print(f"server: pid {server.proc.pid}, {server.url}, demo {args.days} days, ready "
                  f"in {started:.1f} s; " + "; ".join(
                      ln for ln in server.lines if ln.startswith("demo:")))
            token = login(server.url, server.user, server.password)
            import httpx

            h = {"Authorization": f"Bearer {token}"}
            demo = httpx.get(f"{server.url}/api/v1/dashboards", headers=h, timeout=30).json()[0]
            # the demo dashboard's spec with a refresh interval of an hour: the render cache's
            # time bucket does not turn over during the run (no re-render, no periodic push)
            made = httpx.post(f"{server.url}/api/v1/dashboards", headers=h, timeout=30, json={
                "name": "SaaS overview (bench)",
                "spec": {**demo["spec"], "refresh_interval": 3600}})
            made.raise_for_status()
            dashes = [made.json()]
            dash = dashes[0]["id"]
            path = f"/api/v1/dashboards/{dash}/render"
            t0 = time.monotonic()
            first = httpx.get(f"{server.url}{path}", headers=h, timeout=120)
            cold = time.monotonic() - t0
            t0 = time.monotonic()
            httpx.get(f"{server.url}{path}", headers=h, timeout=120)
            warm = time.monotonic() - t0
            print(f"dashboard {dashes[0]['name']!r}: {len(first.content):,} bytes, "
                  f"{len(first.json()['widgets'])} widgets; first render {cold * 1000:.0f} ms,"
                  f" cached {warm * 1000:.1f} ms (one request, new connection)")

            if not args.skip_render:
                print(f"\n== render: GET {path.replace(dash, '{id}')}, {args.duration:g} s "
                      f"after {args.warmup:g} s warm-up, httpx in {args.load_procs} process(es)")
                print(f"{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
                      f"{'>100ms':>8}{'server CPU':>12}{'load CPU':>10}  errors")
                for c in conns:
                    r = run_render(server, token, path, c, args.load_procs, args.warmup,
                                   args.duration)
                    print(f"{c:>6}{r['rps']:>9,.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}"
                          f"{r['max']:>9.1f}{r['slow']:>8}{r['server_cpu']:>11.0%}"
                          f"{r['client_cpu']:>10.0%}  "
                          f"{r['errors'] or '-'}")
                    rows.append((f"render, {c} connections (httpx)",
                                 f"{r['rps']:,.0f} req/s, p99 {r['p99']:.1f} ms",
                                 f"≥ {TARGET_RENDER_RPS:,.0f} req/s, p99 ≤ "
                                 f"{TARGET_RENDER_P99_MS:g} ms",
                                 verdict(r["rps"] >= TARGET_RENDER_RPS
                                         and r["p99"] <= TARGET_RENDER_P99_MS
                                         and not r["errors"])))
                ab_rows = [run_render_ab(server, token, path, c, args.duration) for c in conns]
                if ab_rows[0] is None:
                    print("(ApacheBench not installed: apt-get install apache2-utils for a "
                          "load generator that leaves the server a core)")
                else:
                    print(f"\n== render with ApacheBench (ab -k), {args.duration:g} s")
                    print(f"{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
                          f"{'server CPU':>12}  errors")
                    for r in ab_rows:
                        assert r is not None
                        print(f"{r['conns']:>6}{r['rps']:>9,.0f}{r['p50']:>9.0f}"
                              f"{r['p99']:>9.0f}{r['max']:>9.0f}{r['server_cpu']:>11.0%}  "
                              f"{r['errors'] or '-'}")
                        rows.append((f"render, {r['conns']} connections (ab)",
                                     f"{r['rps']:,.0f} req/s, p99 {r['p99']:.0f} ms",
                                     f"≥ {TARGET_RENDER_RPS:,.0f} req/s, p99 ≤ "
                                     f"{TARGET_RENDER_P99_MS:g} ms",
                                     verdict(r["rps"] >= TARGET_RENDER_RPS
                                             and r["p99"] <= TARGET_RENDER_P99_MS
                                             and not r["errors"])))

            if not args.skip_ingest:
                print(f"\n== ingest: POST /api/v1/ingest, {args.batch:,} points per request, "
                      f"{args.ingest_clients} clients, {args.duration:g} s")
                r = run_ingest(server, token, args.batch, args.ingest_clients, args.duration)
                print(f"{r['requests']} requests ({r['bytes'] / 1e6:.2f} MB each), "
                      f"{r['written']:,} points written of {r['rows']:,} in "
                      f"{r['elapsed']:.2f} s: {r['pps']:,.0f} points/s; request p50 "
                      f"{r['p50']:.0f} ms, p99 {r['p99']:.0f} ms; server CPU "
                      f"{r['server_cpu']:.0%}" + ("; some batches re-sent" if r["reused"]
                                                  else ""))
                if r["errors"]:
                    print(f"errors ({len(r['errors'])}): {r['errors'][:3]}")
                rows.append(("ingest, JSON batches", f"{r['pps']:,.0f} points/s",
                             f"≥ {TARGET_INGEST_PPS:,.0f} points/s",
                             verdict(r["pps"] >= TARGET_INGEST_PPS and not r["errors"])))

            if not args.skip_ws:
                print(f"\n== ingest → WebSocket: {args.clients} clients in {args.ws_procs} "
                      f"processes subscribed to the dashboard, {args.rounds} rounds")
                w = run_ws(server, token, dash, args.clients, args.ws_procs, args.rounds,
                           args.ws_timeout)
                print(f"{args.clients} clients connected, authenticated and subscribed in "
                      f"{w['setup']:.1f} s")
                print(f"{'round':>6}{'POST ms':>9}{'got':>6}{'new':>6}{'first':>8}{'p50':>8}"
                      f"{'p99':>8}{'last':>9}   (ms from just before the POST)")
                for i, r in enumerate(w["rounds"], 1):
                    print(f"{i:>6}{r['post_ms']:>9.1f}{r['received']:>6}{r['changed']:>6}"
                          f"{r['first']:>8.0f}{r['p50']:>8.0f}{r['p99']:>8.0f}"
                          f"{r['last']:>9.0f}")
                lasts = [r["last"] for r in w["rounds"]]
                med = statistics.median(lasts)
                print(f"time until the {args.clients}th client: median {med:.0f} ms, worst "
                      f"{max(lasts):.0f} ms over {len(lasts)} rounds")
                rows.append((f"ingest → {args.clients} WebSocket clients",
                             f"last client median {med:.0f} ms, worst {max(lasts):.0f} ms",
                             f"≤ {TARGET_WS_MS:g} ms", verdict(med <= TARGET_WS_MS)))
            rss = server.peak_rss_mib()
        finally:
            server.stop()

    print("\n" + f"{'measure':<34}{'figure':<40}{'target':<32}verdict")
    for name, fig, target, v in rows:
        print(f"{name:<34}{fig:<40}{target:<32}{v}")
    print(f"server peak RSS {rss.get('VmHWM', float('nan')):,.0f} MiB (VmHWM; "
          f"{rss.get('VmRSS', float('nan')):,.0f} MiB resident at the end; summed over its "
          f"{workers + (workers > 1)} process(es))")
    sys.stdout.flush()
    return rows


if __name__ == "__main__":
    main()
