"""``kpidash serve --demo --clients N``: demo client workspaces client-1 … client-N, each with
its own settings, data and dashboard, the demo user an admin of all of them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from kpidash.cli.serve import DEMO_CLIENTS, MAX_CLIENTS, _load_clients, _load_demo
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.errors import InputError
from kpidash.settings import Settings
from kpidash.store import open_store
from kpidash.store.archive import table_checksum
from loopback import free_port, wait_for_health

EXE = shutil.which("kpidash") or str(Path(sys.executable).parent / "kpidash")
NOW = datetime(2024, 7, 1, 6, tzinfo=UTC)
DAYS = 45


def load(path: Path, clients: int) -> tuple[Engine, list[str]]:
    cfg = Settings(db=str(path), mode="demo", secret=SecretStr("s" * 48))
    engine = Engine(open_store(str(path)), FixedClock(NOW))
    _load_demo(engine, cfg, DAYS)
    return engine, _load_clients(engine, cfg, DAYS, clients)


def revenue(engine: Engine, ws: str) -> float:
    scoped = Engine(engine.store, engine.clock, workspace=ws)
    (series,) = scoped.query("revenue", grain="month")
    return float(sum(v for v in series.values if v is not None))


def fingerprint(engine: Engine, ws: str) -> dict[str, str]:
    return {n: table_checksum(t) for n, t in engine.store.export_workspace(ws)
            if n in ("kpis", "series", "points")}


def test_client_workspaces_differ_and_the_demo_user_administers_them(tmp_path: Path) -> None:
    engine, lines = load(tmp_path / "a.duckdb", 3)
    store = engine.store
    try:
        assert [w["id"] for w in store.workspaces()] == ["client-1", "client-2", "client-3",
                                                         "default"]
        assert len(lines) == 3
        user = store.user_by_name("demo")
        assert user is not None
        seen_zones, totals, tops = set(), set(), set()
        for i, (client, line) in enumerate(zip(DEMO_CLIENTS, lines, strict=False), start=1):
            ws = f"client-{i}"
            record = store.workspace(ws)
            assert record is not None
            assert record["name"] == f"Client {i} ({client.company})"
            assert line.startswith(f"demo client workspace {ws}: {record['name']}")
            seen_zones.add((record["settings"]["timezone"], record["settings"]["currency"]))
            assert len(store.get_kpis(ws)) == len(store.get_kpis("default")) == 13
            assert [(m["user_id"], m["role"]) for m in store.memberships(ws)] == \
                [(user["id"], "admin")]
            (board,) = store.dashboards(ws, visible_to=user["id"])
            assert board["name"] == f"{client.company} overview" and board["id"] in line
            totals.add(round(revenue(engine, ws)))
            scoped = Engine(store, engine.clock, workspace=ws,
                            timezone=record["settings"]["timezone"])
            tops.add(tuple(r.insight.text for r in scoped.insights(limit=3)))
        assert len(seen_zones) == 3
        totals.add(round(revenue(engine, "default")))
        assert len(totals) == 4  # every workspace its own numbers …
        assert len(tops) == 3  # … and its own insights
        # counts stay whole numbers after scaling; conversions never exceed leads
        points = dict(store.export_workspace("client-2"))["points"].to_pydict()
        keys = points["series_key"]
        for key, value in zip(keys, points["value"], strict=True):
            if key.startswith(("signups", "leads", "conversions", "active_customers")):
                assert value == int(value), (key, value)
        # idempotent: a second start adds nothing
        before = {f"client-{i}": fingerprint(engine, f"client-{i}") for i in (1, 2, 3)}
        assert _load_clients(engine, Settings(db=":memory:", mode="demo",
                                              secret=SecretStr("s" * 48)), DAYS, 3)
        assert {ws: fingerprint(engine, ws) for ws in before} == before
        assert len(store.dashboards("client-1")) == 1
    finally:
        engine.close()


def test_same_input_same_workspaces(tmp_path: Path) -> None:
    a, _ = load(tmp_path / "a.duckdb", 2)
    b, _ = load(tmp_path / "b.duckdb", 2)
    try:
        for ws in ("client-1", "client-2"):
            assert fingerprint(a, ws) == fingerprint(b, ws)
        assert fingerprint(a, "client-1") != fingerprint(a, "client-2")
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("n", [-1, MAX_CLIENTS + 1])
def test_the_number_of_clients_is_checked(tmp_path: Path, n: int) -> None:
    engine = Engine(open_store(str(tmp_path / "c.duckdb")), FixedClock(NOW))
    try:
        with pytest.raises(InputError, match=f"between 0 and {MAX_CLIENTS}"):
            _load_clients(engine, Settings(db=":memory:"), DAYS, n)
    finally:
        engine.close()
    assert MAX_CLIENTS == 20


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KPIDASH_DB": str(tmp_path / "srv.duckdb")}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("args, words", [
    (["serve", "--demo", "--clients", "21"], ["error: --clients", "between 0 and 20, got 21"]),
    (["serve", "--demo", "--clients", "-1"], ["error: --clients", "got -1"]),
    (["serve", "--clients", "2"], ["error: --clients", "needs --demo"]),
], ids=["too-many", "negative", "without-demo"])
def test_bad_client_counts_are_one_line_errors(tmp_path: Path, args: list[str],
                                               words: list[str]) -> None:
    r = run(tmp_path, *args)
    assert r.returncode in (1, 2) and r.stderr.count("\n") == 1, r.stderr
    for word in words:
        assert word in r.stderr, r.stderr
    assert not (tmp_path / "srv.duckdb").exists()  # refused before the store is opened


def test_serve_demo_with_clients(tmp_path: Path) -> None:
    env = {**os.environ, "KPIDASH_DB": str(tmp_path / "srv.duckdb")}
    env.pop("KPIDASH_SECRET", None)
    port = free_port()
    proc = subprocess.Popen([EXE, "serve", "--demo", "--days", "35", "--clients", "2",
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        password = re.search(r"user 'demo', password '([^']+)'", lines[1])
        assert password, lines
        assert lines[2].startswith("demo client workspace client-1: Client 1 (Acme Retail), "
                                   "America/New_York, USD"), lines
        assert lines[3].startswith("demo client workspace client-2: Client 2 (Nordlicht GmbH)"
                                   ", Europe/Berlin, EUR"), lines
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, lambda: proc.poll() is None, timeout=60)
        tok = httpx.post(f"{base}/api/v1/auth/token",
                         data={"username": "demo", "password": password.group(1)}).json()
        auth = {"Authorization": f"Bearer {tok['access_token']}"}
        spaces: list[dict[str, Any]] = httpx.get(f"{base}/api/v1/workspaces",
                                                 headers=auth).json()
        assert [(w["id"], w["role"]) for w in spaces] == [
            ("client-1", "admin"), ("client-2", "admin"), ("default", "admin")]
        (board,) = httpx.get(f"{base}/api/v1/workspaces/client-2/dashboards",
                             headers=auth).json()
        rendered = httpx.get(f"{base}/api/v1/workspaces/client-2/dashboards/{board['id']}"
                             "/render", headers=auth, timeout=60).json()
        assert [w["type"] for w in rendered["widgets"]][:4] == ["kpi"] * 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
