"""PostgreSQL restarted under load: ``kpidash serve`` on a PostgreSQL server of its own
(started for this test: the session's shared server is not touched) takes continuous JSON
ingest while PostgreSQL is stopped (``pg_ctl stop -m fast``), stays down a few seconds and is
started again on the same port. Checked:

* during the outage every answer is the error envelope with 503 and a ``Retry-After`` (never
  a 500), within the clients' timeout (no hang);
* afterwards the same server process (same pid, no restart of its own) recovers by itself:
  health OK, ingest and queries succeed;
* no acknowledged point is lost, and a batch refused during the outage is wholly stored or
  not at all;
* the store's coordination reconnects: the process takes the alert-tick leadership (its
  advisory-lock session died with the server) back, the alert ticks go on, and its LISTEN
  connection is back (a KPI defined and announced by another process reaches it).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from counts import count
from kpidash.store import open_store
from loopback import eventually
from pgserver import PgServer, find_bindir
from reliability.test_crash import (
    ACKED,
    BASE,
    Ledger,
    check_points,
    json_body,
    read_store,
    served_total,
    setup_store,
)

DOWN_SECONDS = 3.0  # how long PostgreSQL stays stopped
SEED = 1234
CLIENTS = ("json-1", "json-2")
TIMEOUT = 30.0  # the clients' timeout: an answer must come within it, outage or not
MAX_BATCHES = 20_000  # per client (a bound)


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL server for this test alone (it is stopped and started again)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (scripts/postgres.sh installs them)")
    server = PgServer(bindir=bindir)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"cannot start a PostgreSQL server: {exc}")
    yield server
    server.stop()


@dataclass
class Answers:
    """What the clients got, by kind."""

    ok: int = 0
    unavailable: int = 0  # 503 with the envelope and Retry-After
    wrong: list[str] = field(default_factory=list)  # anything else (a 500, no envelope, …)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str) -> None:
        with self.lock:
            if what == "ok":
                self.ok += 1
            elif what == "503":
                self.unavailable += 1
            else:
                self.wrong.append(what)


def judge(r: httpx.Response) -> str:
    """"ok", "503" (the right refusal) or a description of what is wrong with the answer."""
    if r.is_success:
        return "ok"
    what = f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}"
    if r.status_code != 503:
        return what
    try:
        err = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        return what + " (not the error envelope)"
    if set(err) != {"code", "message", "status", "details"} or err["status"] != 503:
        return what + " (not the error envelope)"
    retry = r.headers.get("retry-after", "")
    if not retry.isdigit() or int(retry) < 1:
        return what + f" (Retry-After {retry!r})"
    return "503"


def ingest(base: str, token: str, client: str, ledger: Ledger, answers: Answers,
           stop: threading.Event) -> None:
    """Post batches until ``stop``: an acknowledged batch is recorded, a 503 is waited out
    (a short pause) and the next batch sent."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=TIMEOUT) as c:
        for _ in range(MAX_BATCHES):
            if stop.is_set():
                return
            b = ledger.next(("r1", client))
            try:
                r = c.post("/api/v1/ingest", json=json_body(b, "r1", client))
            except httpx.HTTPError as exc:  # no answer within the timeout, or none at all
                answers.add(f"batch {b}: {type(exc).__name__} {exc}")
                return
            verdict = judge(r)
            answers.add(verdict)
            if verdict == "ok":
                ledger.state[b] = ACKED
            elif verdict == "503":
                time.sleep(0.05)
            else:
                return


def health(base: str) -> tuple[int, dict[str, Any]]:
    with httpx.Client(timeout=TIMEOUT) as c:
        r = c.get(f"{base}/api/v1/health")
    return r.status_code, (r.json() if r.headers.get("content-type", "").startswith(
        "application/json") else {})


def alert_ticks(base: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=TIMEOUT).text.splitlines():
        if line.startswith("kpidash_alert_ticks_total "):
            return float(line.split()[1])
    return 0.0


def test_postgresql_restarted_under_ingest(own_pg: PgServer, tmp_path: Path) -> None:
    url = own_pg.create_database("kpidash_outage")
    server = setup_store(tmp_path, url)
    rng = random.Random(SEED)
    ledger, answers, stop = Ledger(), Answers(), threading.Event()
    threads: list[threading.Thread] = []
    try:
        server.start()
        assert server.proc is not None
        status, doc = health(server.base)
        assert status == 200 and doc["worker"]["pid"] == server.proc.pid
        eventually(lambda: health(server.base)[1]["worker"]["runs_alert_ticks"],
                   "the server runs the alert ticks")
        token = server.token()
        threads = [threading.Thread(target=ingest, args=(server.base, token, c, ledger,
                                                         answers, stop), daemon=True,
                                    name=f"outage-{c}") for c in CLIENTS]
        for t in threads:
            t.start()
        before = rng.randint(10, 40)
        eventually(lambda: ledger.acked() >= before or answers.wrong,
                   f"{before} batches acknowledged before the outage")
        assert not answers.wrong, answers.wrong[:5]

        own_pg.shut_down()  # -- the outage --------------------------------------------------
        down = time.monotonic()
        outage_health = []
        while time.monotonic() - down < DOWN_SECONDS:
            status, _ = health(server.base)
            outage_health.append(status)
            time.sleep(0.2)
        own_pg.start_again()
        unavailable = answers.unavailable
        assert unavailable > 0, "no ingest was refused while PostgreSQL was down"
        assert outage_health and set(outage_health) <= {503}, outage_health

        # -- recovery by itself: the same process answers, ingest and queries succeed ------
        eventually(lambda: health(server.base)[0] == 200, "health is OK again", timeout=60)
        status, doc = health(server.base)
        assert doc["worker"]["pid"] == server.proc.pid and server.proc.poll() is None
        acked = ledger.acked()
        eventually(lambda: ledger.acked() >= acked + 20 or answers.wrong,
                   "ingest is acknowledged again", timeout=60)
        stop.set()
        for t in threads:
            t.join(timeout=TIMEOUT + 10)
            assert not t.is_alive(), f"client {t.name} did not stop"
        assert not answers.wrong, f"{len(answers.wrong)} wrong answers, the first: " + \
            "\n".join(answers.wrong[:5]) + f"\n{server.output()}"
        token = server.token()
        auth = {"Authorization": f"Bearer {token}"}
        served = served_total(server.base, token)

        # -- the leadership's advisory lock died with the session: it is taken back --------
        eventually(lambda: health(server.base)[1]["worker"]["runs_alert_ticks"],
                   "the server runs the alert ticks again", timeout=60)
        ticks = alert_ticks(server.base)
        eventually(lambda: alert_ticks(server.base) >= ticks + 2, "the alert ticks go on",
                   timeout=60)

        # -- its LISTEN connection is back: another process's change reaches it --------------
        # a KPI defined by a second process sharing the database, announced as a worker
        # would: only a listener that reconnected (it resyncs, and hears the message) loads it
        other = open_store(url)
        try:
            other.put_kpis("default", [{"id": "after_outage", "name": "After outage"}], BASE)

            def heard() -> bool:
                other.publish(json.dumps({"v": 1, "node": "reliability-test", "kind": "kpis",
                                          "ws": "default", "kpis": ["after_outage"]}))
                kpis = httpx.get(f"{server.base}/api/v1/kpis", headers=auth, timeout=TIMEOUT)
                return "after_outage" in {k["id"] for k in kpis.json()}

            eventually(heard, "the server hears another process after the outage",
                       timeout=60, pause=0.5)
        finally:
            other.close()

        # -- no acknowledged point lost, no partial batch ----------------------------------
        table = read_store(url)
        count("points checked", check_points(table, ledger))
        assert served == sum(table.column("value").to_pylist())
        assert server.proc.poll() is None
        count("postgres restarts survived")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=TIMEOUT + 10)
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
