"""Crash safety: ``kpidash serve`` under continuous ingest is killed with SIGKILL at a
seeded-random moment, several rounds in a row on the same store (a DuckDB file, and a
PostgreSQL database), and after every kill:

* the store opens cleanly (a copy of the DuckDB file as the kill left it, opened directly;
  the PostgreSQL database opened by a second store) and the server restarted on it answers
  health, with no manual repair;
* every acknowledged batch (a 2xx answer came back) is there with all its points and their
  exact values;
* every batch sent but not acknowledged is wholly there or wholly absent, never in part;
* nothing else is there (no point of a batch that was never sent).

Every ingest also updates the workspace's quota state (limits set far away) in its
transaction: after each kill it still bounds the stored points from above. Background work
runs through the kills too: an alert rule fires once per round (its slice
is the round's dimension value), so every alert tick writes alert states, history and outbox
rows and delivers notifications to a webhook receiver. After the last restart every round's
alert is firing, each alert's history is one unbroken chain ending in its state, and every
round's alert was notified (at least once; a message sent again after a kill carries the
same id as its Idempotency-Key).

Clients: two threads posting JSON batches to ``/api/v1/ingest`` and one posting line
protocol to ``/api/v1/write``. Every point is identifiable: batch ``b`` holds the points at
``BASE + b × POINTS + i`` seconds (``i`` < ``POINTS``) with the value ``b × 1000 + i``.
``BASE`` is 12 hours before the start of the run's hour (the server's alert rules look at
recent data; the points are the same relative to it every run). The moment of the kill is
drawn from ``random.Random(SEED)``: after so many acknowledged batches (machine speed does
not change which), plus a short pause that lands it mid-request.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from counts import count
from kpidash.store import open_store
from loopback import HttpReceiver, eventually, free_port, http_server  # noqa: F401

EXE = shutil.which("kpidash") or str(Path(sys.executable).parent / "kpidash")
SECRET = "kpidash-crash-test-" + "0123456789" * 3
PASSWORD = "PASSWORD-crash-1"
KPI = "crash_points"
KPIS_YAML = f"""kpis:
  - id: {KPI}
    name: Crash points
    dimensions: [round, client]
"""
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
RULE = {"id": "crash_alert", "kpi": KPI, "grain": "hour", "per": "round", "notify": ["hook"],
        "condition": {"kind": "threshold", "direction": "above", "bands": {"high": 0}},
        "group_interval": 1, "repeat_interval": 86400}
POINTS = 25  # per batch
ROUNDS = 3
SEED = 1234
MAX_BATCHES = 5_000  # per client and round (a bound; the kill comes long before)
ROUND_SECONDS = 60.0  # longest a round's ingest may run before the kill (a bound)
CLIENTS = ("json-1", "json-2", "lp")


# -- the server ---------------------------------------------------------------------------


@dataclass
class Server:
    """``kpidash serve`` in its own process group, its output in files."""

    env: dict[str, str]
    logs: Path
    proc: subprocess.Popen[bytes] | None = None
    base: str = ""
    starts: int = 0

    def start(self) -> None:
        port = free_port()
        self.starts += 1
        out = (self.logs / f"serve-{self.starts}.log").open("wb")
        with out:
            self.proc = subprocess.Popen([EXE, "serve", "--port", str(port)], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.base = f"http://127.0.0.1:{port}"
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = httpx.get(f"{self.base}/api/v1/health", timeout=5)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server restarted on the crashed store did not answer health "
                            f"(exit code {self.proc.poll()}):\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        path = self.logs / f"serve-{self.starts}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL to the whole process group (the server and any child of it)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """A clean stop (SIGTERM); returns the exit code (negative: the signal's number)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover -- a hung shutdown
            self.kill()
            return -9

    def token(self) -> str:
        r = httpx.post(f"{self.base}/api/v1/auth/token",
                       data={"username": "adam", "password": PASSWORD}, timeout=30)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def setup_store(tmp_path: Path, db: str, hook: str | None = None) -> Server:
    """The KPI file, an admin user in the store, and the server's environment (with
    ``hook``, a webhook channel ``hook`` posting there)."""
    kpis = tmp_path / "kpis.yaml"
    kpis.write_text(KPIS_YAML)
    env = {**os.environ, "KPIDASH_DB": db, "KPIDASH_SECRET": SECRET,
           "KPIDASH_KPIS": str(kpis), "KPIDASH_REFRESH_TICK_SECONDS": "0.2",
           "KPIDASH_ALERT_INTERVAL_SECONDS": "1",
           # quotas far away: every ingest also reads and writes the workspace's quota state
           # (its token bucket and stored-points bound) in the batch's transaction
           "KPIDASH_QUOTA_MAX_POINTS": "100000000",
           "KPIDASH_QUOTA_INGEST_POINTS_PER_MINUTE": "100000000"}
    if hook is not None:
        channels = tmp_path / "channels.yaml"
        channels.write_text(f'channels:\n  hook: {{type: webhook, url: "{hook}"}}\n')
        env["KPIDASH_CHANNELS"] = str(channels)
    done = subprocess.run([EXE, "users", "create", "adam", "--role", "admin",
                           "--password-stdin"], input=PASSWORD + "\n", env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    logs = tmp_path / "logs"
    logs.mkdir()
    return Server(env, logs)


# -- the clients ----------------------------------------------------------------------------


ACKED, SENT = "acked", "sent"


@dataclass
class Ledger:
    """What each batch number became: sent (no answer, or an error) or acknowledged."""

    state: dict[int, str] = field(default_factory=dict)
    dims: dict[int, tuple[str, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    numbers: Iterator[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, dims: tuple[str, str]) -> int:
        with self.lock:
            b = next(self.numbers)
            self.state[b], self.dims[b] = SENT, dims
            return b

    def acked(self) -> int:
        return sum(1 for s in self.state.values() if s == ACKED)


def ts_of(b: int, i: int) -> datetime:
    return BASE + timedelta(seconds=b * POINTS + i)


def value_of(b: int, i: int) -> int:
    return b * 1000 + i


def json_body(b: int, rnd: str, client: str) -> dict[str, Any]:
    return {"points": [{"kpi": KPI, "ts": ts_of(b, i).isoformat(), "value": value_of(b, i),
                        "dims": {"round": rnd, "client": client}} for i in range(POINTS)]}


def line_body(b: int, rnd: str, client: str) -> str:
    return "".join(f"{KPI},round={rnd},client={client} value={value_of(b, i)} "
                   f"{int(ts_of(b, i).timestamp())}\n" for i in range(POINTS))


def ingest(base: str, token: str, client: str, rnd: str, ledger: Ledger,
           stop: threading.Event) -> None:
    """Post batches until the server is gone (or ``stop``), recording every answer."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as c:
        for _ in range(MAX_BATCHES):
            if stop.is_set():
                return
            b = ledger.next((rnd, client))
            try:
                if client == "lp":
                    r = c.post("/api/v1/write", params={"precision": "s"},
                               content=line_body(b, rnd, client))
                else:
                    r = c.post("/api/v1/ingest", json=json_body(b, rnd, client))
            except httpx.HTTPError:  # the server died under the request: not acknowledged
                return
            if r.is_success:
                ledger.state[b] = ACKED
            else:  # the server was up and refused: not a crash, a bug
                ledger.errors.append(f"batch {b} ({client}): {r.status_code} {r.text[:300]}")
                return


# -- the check --------------------------------------------------------------------------------


def check_points(table: Any, ledger: Ledger) -> int:
    """Every acknowledged batch whole with exact values, every other batch whole or absent,
    nothing unknown; batches found whole become acknowledged (they must stay). Returns how
    many points were checked."""
    ts = table.column("ts").to_pylist()
    values = table.column("value").to_pylist()
    raw = table.column("raw_value").to_pylist()
    rounds = table.column("round").to_pylist()
    clients = table.column("client").to_pylist()
    found: dict[int, dict[int, float]] = {}
    problems: list[str] = []
    for t, v, r, rnd, client in zip(ts, values, raw, rounds, clients, strict=True):
        b, i = divmod(int((t - BASE).total_seconds()), POINTS)
        found.setdefault(b, {})[i] = v
        if b not in ledger.state:
            problems.append(f"a point of batch {b}, which was never sent, is stored")
        elif (rnd, client) != ledger.dims[b]:
            problems.append(f"batch {b}: stored in series {(rnd, client)}, sent as "
                            f"{ledger.dims[b]}")
        if v != value_of(b, i) or r not in (None, v):
            problems.append(f"batch {b} point {i}: value {v!r} (raw {r!r}), sent "
                            f"{value_of(b, i)}")
    for b, state in sorted(ledger.state.items()):
        n = len(found.get(b, {}))
        if state == ACKED and n != POINTS:
            problems.append(f"acknowledged batch {b} has {n} of its {POINTS} points")
        elif state == SENT and n not in (0, POINTS):
            problems.append(f"unacknowledged batch {b} is partly stored: {n} of {POINTS} "
                            "points")
        elif n == POINTS:
            ledger.state[b] = ACKED  # stored whole: must stay so from now on
    assert not problems, f"{len(problems)} problems, the first: " + "\n".join(problems[:20])
    return len(ts)


def read_store(db: str) -> Any:
    """The crash KPI's points, read by a store opened directly (it must open cleanly); the
    workspace's quota state must still bound its stored points from above (else a later
    ingest could pass the limit)."""
    store = open_store(db)
    try:
        bound = store.quota_state("default").stored
        stored = store.point_count("default", None)
        assert bound is None or bound >= stored, f"quota bound {bound} < {stored} points"
        return store.read_points("default", KPI)
    finally:
        store.close()


def snapshot(path: Path, into: Path) -> str:
    """A copy of a DuckDB file and its WAL as the kill left them (the server restarts on
    the original; the copy is opened here)."""
    into.mkdir()
    for f in (path, path.with_name(path.name + ".wal")):
        if f.exists():
            shutil.copy2(f, into / f.name)
    return str(into / path.name)


# -- the test ---------------------------------------------------------------------------------


def crash_round(server: Server, ledger: Ledger, rnd: int, rng: random.Random) -> None:
    """Ingest from every client, SIGKILL the server at the drawn moment, wait for the
    clients to notice."""
    token = server.token()
    kill_after = ledger.acked() + rng.randint(5, 60)  # acknowledged batches, all clients
    pause = rng.uniform(0.0, 0.03)
    stop = threading.Event()
    threads = [threading.Thread(target=ingest, args=(server.base, token, c, f"r{rnd}", ledger,
                                                     stop), name=f"crash-{c}", daemon=True)
               for c in CLIENTS]
    for t in threads:
        t.start()
    deadline = time.monotonic() + ROUND_SECONDS
    while (ledger.acked() < kill_after and not ledger.errors
           and any(t.is_alive() for t in threads) and time.monotonic() < deadline):
        time.sleep(0.002)
    time.sleep(pause)
    server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), f"client {t.name} did not stop"
    assert not ledger.errors, "the server refused batches before the kill:\n" + \
        "\n".join(ledger.errors[:5]) + f"\n{server.output()}"
    assert ledger.acked() >= kill_after, "the clients stopped before the kill"


def served_total(base: str, token: str) -> float:
    """The sum of every stored point of the crash KPI, as the server's series query says."""
    r = httpx.get(f"{base}/api/v1/series/{KPI}", headers={"Authorization": f"Bearer {token}"},
                  params={"grain": "year", "from": (BASE - timedelta(days=1)).isoformat(),
                          "to": (BASE + timedelta(days=2)).isoformat()}, timeout=60)
    assert r.status_code == 200, r.text
    return float(sum(v for s in r.json() for v in s["values"] if v is not None))


def check_alerts(base: str, token: str, hook: HttpReceiver) -> None:
    """Every round's alert firing, each history one chain ending in its alert's state, and
    every round's alert notified (a message sent again carries the same id)."""
    auth = {"Authorization": f"Bearer {token}"}
    rounds = {f"r{n}" for n in range(1, ROUNDS + 1)}

    def firing() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = httpx.get(f"{base}/api/v1/alerts", headers=auth,
                                                timeout=60).json()
        got = {a["slice"]["round"] for a in items if a["state"] == "firing"}
        return items if got == rounds else None

    alerts = eventually(firing, "every round's alert fires", timeout=60)
    for a in alerts:
        doc = httpx.get(f"{base}/api/v1/alerts/{a['fingerprint']}", headers=auth,
                        timeout=60).json()
        moves = [(h["from"], h["to"]) for h in doc["history"]]
        assert moves and moves[0][0] == "normal" and moves[-1][1] == doc["state"], moves
        assert all(x[1] == y[0] for x, y in itertools.pairwise(moves)), moves

    def notified() -> set[str] | None:
        seen: set[str] = set()
        for q in list(hook.requests):
            body = q.json()
            assert q.headers.get("idempotency-key") == body["id"]
            slices = [body.get("slice") or {}, *(a.get("slice") or {}
                                                  for a in body.get("alerts", []))]
            seen |= {str(s["round"]) for s in slices if "round" in s}
        return seen if seen >= rounds else None

    eventually(notified, "every round's alert is notified", timeout=60)


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_sigkill_under_ingest_loses_no_acknowledged_point(
        engine: str, tmp_path: Path, request: pytest.FixtureRequest,
        http_server: Callable[..., HttpReceiver]) -> None:  # noqa: F811
    if engine == "postgres":
        db = request.getfixturevalue("pg_database")
        path = None
    else:
        path = tmp_path / "crash.duckdb"
        db = str(path)
    hook = http_server()
    server = setup_store(tmp_path, db, hook.url)
    rng = random.Random(SEED)
    ledger = Ledger()
    try:
        server.start()
        r = httpx.post(f"{server.base}/api/v1/alert-rules", json=RULE, timeout=60,
                       headers={"Authorization": f"Bearer {server.token()}"})
        assert r.status_code == 201, r.text
        for rnd in range(1, ROUNDS + 1):
            crash_round(server, ledger, rnd, rng)
            # the store as the kill left it opens cleanly and holds the acknowledged batches
            count("points checked", check_points(
                read_store(db if path is None else snapshot(path, tmp_path / f"kill-{rnd}")),
                ledger))
            server.start()  # … and the server starts on it, answering health
            count("crash rounds survived")
        # the restarted server serves all of it (its sum is the stored points'), and the
        # alert work the kills interrupted is whole
        token = server.token()
        served = served_total(server.base, token)
        check_alerts(server.base, token, hook)
        # uvicorn re-raises the SIGTERM after its graceful shutdown
        assert server.stop() in (0, -signal.SIGTERM), server.output()
        table = read_store(db)
        count("points checked", check_points(table, ledger))
        assert served == sum(table.column("value").to_pylist())
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


def test_the_check_finds_lost_partial_foreign_and_changed_points() -> None:
    """The check above on made-up tables: it must fail on each kind of damage."""
    import pyarrow as pa

    def table(points: list[tuple[int, int, float]]) -> pa.Table:
        return pa.table({"ts": [ts_of(b, i) for b, i, _ in points],
                         "value": [v for _, _, v in points],
                         "raw_value": [None] * len(points),
                         "round": ["r1"] * len(points), "client": ["json-1"] * len(points)})

    def ledger(states: dict[int, str]) -> Ledger:
        led = Ledger()
        for b, state in states.items():
            led.state[b], led.dims[b] = state, ("r1", "json-1")
        return led

    whole = [(b, i, float(value_of(b, i))) for b in (0, 1) for i in range(POINTS)]
    assert check_points(table(whole), ledger({0: ACKED, 1: SENT})) == 2 * POINTS
    damaged = {
        "acknowledged batch 1 has 0 of": (whole[:POINTS], {0: ACKED, 1: ACKED}),
        "unacknowledged batch 1 is partly stored": (whole[:-1], {0: ACKED, 1: SENT}),
        "batch 1, which was never sent": (whole, {0: ACKED}),
        "batch 0 point 3: value": ([*whole[:3], (0, 3, 1.5), *whole[4:]], {0: ACKED, 1: ACKED}),
    }
    for expected, (points, states) in damaged.items():
        with pytest.raises(AssertionError, match=expected):
            check_points(table(points), ledger(states))
