"""``kpidash serve --workers 2`` on a real PostgreSQL server: two server processes behind one
port, every request and WebSocket client served by either with the same results, exactly
one of them ticking the alerts (its notification delivered once), the WebSocket clients of
both getting every update, and the alert ticks moving to the other worker when the one
running them is killed (uvicorn starts a new worker in its place).

Also the refusals: several workers on a DuckDB file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from kpidash.api.live import LEADERSHIP_CHECK_SECONDS
from loopback import (  # noqa: F401
    HttpReceiver,
    eventually,
    free_port,
    http_server,
    wait_for_health,
)

EXE = shutil.which("kpidash") or str(Path(sys.executable).parent / "kpidash")
SECRET = "kpidash-workers-test-" + "0123456789" * 3
WAIT = 20.0


def health(base: str) -> dict[str, Any]:
    """One health answer, on a new connection (so either worker may take it)."""
    with httpx.Client(timeout=10) as c:
        doc: dict[str, Any] = c.get(f"{base}/api/v1/health").json()
        return doc


def workers(base: str, tries: int = 300) -> dict[int, bool]:
    """pid → runs the alert ticks, for every worker seen answering (new connection each)."""
    seen: dict[int, bool] = {}
    for _ in range(tries):
        w = health(base)["worker"]
        seen[w["pid"]] = w["runs_alert_ticks"]
        if len(seen) >= 2:
            break
    return seen


def alert_ticks(base: str) -> float:
    """Alert-manager ticks so far, summed over the workers (/metrics)."""
    m = re.search(r"^kpidash_alert_ticks_total (\S+)$", httpx.get(f"{base}/metrics").text,
                  re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def receive(ws: ClientConnection, until: Callable[[dict[str, Any]], bool],
            timeout: float = WAIT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no matching WebSocket message within {timeout} s")
        try:
            message: dict[str, Any] = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        if until(message):
            return message


def card(message: dict[str, Any], kpi: str) -> float:
    (w,) = [w for w in message["data"]["widgets"]
            if w["type"] == "kpi" and w["data"]["kpi_id"] == kpi]
    return float(w["data"]["value"])


@pytest.fixture
def server(tmp_path: Path, pg_database: str,
           http_server: Callable[..., HttpReceiver],  # noqa: F811
           ) -> Iterator[tuple[str, str, HttpReceiver, subprocess.Popen[str]]]:
    """``kpidash serve --demo --workers 2`` on a fresh PostgreSQL database, alerts ticking
    every second into a webhook receiver: (base URL, demo password, receiver, process)."""
    hook = http_server()
    channels = tmp_path / "channels.yaml"
    channels.write_text(f'channels:\n  hook: {{type: webhook, url: "{hook.url}"}}\n')
    env = {**os.environ, "KPIDASH_DB": pg_database, "KPIDASH_SECRET": SECRET,
           "KPIDASH_CHANNELS": str(channels), "KPIDASH_ALERT_INTERVAL_SECONDS": "1",
           "KPIDASH_REFRESH_TICK_SECONDS": "0.2"}
    port = free_port()
    proc = subprocess.Popen([EXE, "serve", "--demo", "--days", "30", "--workers", "2",
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert "2 worker processes" in first, (first, proc.stderr.read() if proc.stderr
                                               else "")
        password = re.search(r"user 'demo', password '([^']+)'", second)
        assert password, second
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, lambda: proc.poll() is None, timeout=90)
        yield base, password.group(1), hook, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover -- a hung shutdown
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_two_workers_serve_one_postgresql_store(
        server: tuple[str, str, HttpReceiver, subprocess.Popen[str]]) -> None:
    base, password, hook, proc = server
    seen = workers(base)
    assert len(seen) == 2, f"one worker answered {len(seen)} health checks alone: {seen}"
    # exactly one worker ticks the alerts
    leaders = eventually(lambda: [p for p, lead in workers(base).items() if lead] or None,
                         "a worker runs the alert ticks")
    assert len(leaders) == 1
    assert sum(workers(base).values()) <= 1

    # a login made by one worker is good on both (sessions live in the store)
    tok = httpx.post(f"{base}/api/v1/auth/token",
                     data={"username": "demo", "password": password}).json()
    auth = {"Authorization": f"Bearer {tok['access_token']}"}
    for _ in range(20):
        with httpx.Client(timeout=10) as c:
            assert c.get(f"{base}/api/v1/me", headers=auth).status_code == 200
    (board,) = httpx.get(f"{base}/api/v1/dashboards", headers=auth).json()

    # WebSocket clients on both workers, subscribed to the demo dashboard
    clients: dict[str, ClientConnection] = {}
    with contextlib.ExitStack() as opened:
        for _ in range(40):
            ws = opened.enter_context(connect(f"ws://127.0.0.1:{base.rsplit(':', 1)[1]}"
                                              "/api/v1/ws"))
            ws.send(json.dumps({"type": "auth", "token": tok["access_token"]}))
            ready = receive(ws, lambda m: m["type"] == "ready")
            if ready["worker"] in clients:
                continue
            clients[ready["worker"]] = ws
            ws.send(json.dumps({"type": "subscribe", "dashboard": board["id"]}))
            if len(clients) == 2:
                break
        assert len(clients) == 2, "every WebSocket connection went to one worker"
        before = {w: card(receive(ws, lambda m: m["type"] == "dashboard"), "signups")
                  for w, ws in clients.items()}
        assert len(set(before.values())) == 1  # both workers render the same board

        # a point ingested through either worker reaches the clients of both
        yesterday = (datetime.now(UTC) - timedelta(days=1)).replace(hour=23, minute=0,
                                                                    second=0, microsecond=0)
        r = httpx.post(f"{base}/api/v1/ingest", headers=auth, json={"points": [
            {"kpi": "signups", "ts": yesterday.isoformat(), "value": 1000,
             "dims": {"region": "EU", "plan": "pro", "channel": "paid"}}]})
        assert r.status_code == 200, r.text
        for w, ws in clients.items():
            pushed = receive(ws, lambda m, w=w: m["type"] == "dashboard"  # type: ignore[misc]
                             and card(m, "signups") != before[w])
            assert card(pushed, "signups") == before[w] + 1000

        # an alert: ticked by one worker, notified once, pushed to the clients of both
        r = httpx.post(f"{base}/api/v1/alert-rules", headers=auth, json={
            "id": "signups_spike", "kpi": "signups", "per": "region",
            "condition": {"kind": "threshold", "direction": "above",
                          "bands": {"high": 900}}, "notify": ["hook"]})
        assert r.status_code == 201, r.text
        for ws in clients.values():
            alerts = receive(ws, lambda m: m["type"] == "alerts" and any(
                a["rule_id"] == "signups_spike" and a["state"] == "firing"
                for a in m["items"]))
            assert alerts["workspace"] == "default"
        eventually(lambda: hook.requests, "the webhook is called")
        ticks = alert_ticks(base)
        eventually(lambda: alert_ticks(base) >= ticks + 3,
                   "three more alert ticks (nobody may send it again)")
        firing = [q for q in hook.requests if "signups_spike" in q.body.decode()]
        assert len(firing) == 1, [q.body[:200] for q in hook.requests]

    # the worker running the ticks dies: the other takes them over, uvicorn replaces it
    (leader,) = leaders
    os.kill(leader, signal.SIGKILL)
    takeover = eventually(
        lambda: [p for p, lead in workers(base).items() if lead and p != leader] or None,
        "another worker runs the alert ticks", timeout=LEADERSHIP_CHECK_SECONDS + WAIT)
    assert leader not in takeover
    replaced = eventually(lambda: len(set(workers(base)) - {leader}) == 2 or None,
                          "a new worker replaces the killed one", timeout=WAIT + 30)
    assert replaced and proc.poll() is None

    # /metrics, whichever worker answers, counts the requests of all of them
    text = httpx.get(f"{base}/metrics").text
    counts = [float(m) for m in re.findall(
        r'kpidash_http_requests_total\{method="GET",route="/api/v1/health",status="200"\} '
        r'([0-9.e+]+)', text)]
    assert counts and counts[0] >= 20, text[:2000]


def test_several_workers_on_a_duckdb_file_are_refused(tmp_path: Path) -> None:
    env = {**os.environ, "KPIDASH_DB": str(tmp_path / "k.duckdb"), "KPIDASH_SECRET": SECRET}
    r = subprocess.run([EXE, "serve", "--workers", "2"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "--workers 2 needs a PostgreSQL store" in r.stderr
    assert "kpidash migrate" in r.stderr
    assert not (tmp_path / "k.duckdb").exists()  # refused before the store is opened
