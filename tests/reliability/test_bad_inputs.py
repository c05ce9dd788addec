"""The bad-input catalogue (issue 10): every input path × every kind of bad input.

One table (tests/reliability/bad_cases.py) — JSON ingest, CSV/Parquet uploads, line protocol,
KPI definitions, alert rules (JSON and YAML), silences, query parameters, workspace imports,
and the CLI's ingest, ``kpis``, ``alerts rules``, ``query`` and ``workspaces import``. Each
row must get the expected 4xx (API, in the one error envelope) or exit code (CLI, one
readable error, no traceback) with a message containing the row's fragments (the field or
row and what was wrong), and the store must be unchanged afterwards:

* API: a digest of every row of every table of the store (each table's rows serialized and
  sorted, then hashed, in SQL) before and after each case. Nothing is excluded: with the
  tests' FixedClock a session's bookkeeping (last_seen) is rewritten with the same value, and
  a rejected request records no interaction.
* CLI: the DuckDB file (and its .wal) hashed byte for byte before and after each case.

Policies that accept the input (duplicates in a batch: the last one wins, as documented in
README "Data") are checked by their own tests below.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from api.conftest import Api, Template, assert_error, running
from clirun import invoke
from counts import count
from reliability.bad_cases import DIMS, TS, Case, Cli, Req, catalogue, point

CASES = catalogue()


@dataclass
class Catalogue:
    api: Api
    archive: bytes
    cli_db: Path
    # the stores as every case must leave them (a case that changes one fails and moves the
    # baseline, so that the next cases are judged on their own)
    api_state: dict[str, tuple[int, str]] = field(default_factory=dict)
    cli_state: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def cat(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalogue]:
    """One app for the whole catalogue (small body limits so "huge" stays cheap; the
    refresher slowed down so it cannot write between the digests), one CLI store, and an
    export of the app's workspace for the import cases."""
    root = tmp_path_factory.mktemp("bad-inputs")
    cli_db = root / "cli" / "cli.duckdb"
    cli_db.parent.mkdir()
    shutil.copy(template.path, cli_db)
    with running(template, root, max_body_bytes=1024 * 1024, max_upload_bytes=1024 * 1024,
                 refresh_tick_seconds=60) as api:
        r = api.client.get(f"/api/v1/workspaces/{api.engine.workspace}/export",
                           headers=api.auth("admin"))
        assert r.status_code == 200, r.text
        for role in ("viewer", "analyst", "admin"):
            api.token(role)  # log in once, before the first digest
        yield Catalogue(api, r.content, cli_db, digest(api), file_hashes(cli_db))


def digest(api: Api) -> dict[str, tuple[int, str]]:
    """(row count, md5 of the sorted serialized rows) of every table in the store."""
    con = api.engine.store._con  # type: ignore[attr-defined]
    with api.st.lock:
        tables = [t for (t,) in con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        out = {}
        for t in tables:
            q = ".".join(f'"{p}"' for p in t.split("."))
            out[t] = con.execute(
                f"SELECT count(*), md5(coalesce(string_agg(CAST(x AS VARCHAR), chr(10) "
                f"ORDER BY CAST(x AS VARCHAR)), '')) FROM {q} AS x").fetchone()
    return out


def file_hashes(db: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(db.parent.glob(db.name + "*"))}


def error_text(r: Any) -> str:
    """The envelope's message and every detail's location and message, as one string."""
    err = r.json()["error"]
    parts = [err["message"]]
    for d in err["details"]:
        loc = d.get("location") or {}
        where = " ".join(f"{k} {v}" for k, v in loc.items() if v is not None)
        parts.append(f"{where}: {d.get('message', '')}")
    return " | ".join(parts)


def send(cat: Catalogue, req: Req) -> Any:
    kw = {k: (v(cat.archive) if callable(v) else v) for k, v in req.kw.items()}
    headers = {**cat.api.auth(req.role), **kw.pop("headers", {})}
    return cat.api.client.request(req.method, req.url, headers=headers, **kw)


def run_cli(cat: Catalogue, cli: Cli, directory: Path, monkeypatch: pytest.MonkeyPatch,
            ) -> tuple[int, str]:
    for name, data in cli.files.items():
        (directory / name).write_bytes(data(cat.archive) if callable(data) else data)
    args = [a.replace("{dir}", str(directory)) for a in cli.args]
    r = invoke(monkeypatch, cat.cli_db, args, cwd=directory)
    return r.returncode, r.stderr + r.stdout


def missing(fragments: tuple[str, ...], text: str) -> list[str]:
    return [f for f in fragments if f.lower() not in text.lower()]


@pytest.mark.parametrize("case", CASES, ids=[c.pytest_id for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(
        cat: Catalogue, case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count("bad inputs tried")
    if isinstance(case.payload, Cli):
        code, text = run_cli(cat, case.payload, tmp_path, monkeypatch)
        before_files, cat.cli_state = cat.cli_state, file_hashes(cat.cli_db)
        assert code == case.expect, text
        assert "Traceback" not in text and "unexpected" not in text, text
        assert cat.cli_state == before_files, "the CLI store changed"
        assert not (tmp_path / "pwned.txt").exists()
    else:
        r = send(cat, case.payload)
        before, cat.api_state = cat.api_state, digest(cat.api)
        if case.expect >= 400:
            assert_error(r, case.expect)
            text = error_text(r)
        else:
            assert r.status_code == case.expect, r.text
            text = r.text
        changed = sorted(t for t in cat.api_state if cat.api_state[t] != before.get(t))
        assert not changed, f"tables changed: {changed}"
    assert not missing(case.fragments, text), f"{missing(case.fragments, text)} not in: {text}"


# -- policies that accept the input -------------------------------------------------------------


def test_duplicate_points_in_one_batch_last_one_wins(template: Template, tmp_path: Path) -> None:
    """README "Data": within one batch the last occurrence of (kpi, dims, ts) wins."""
    count("bad inputs tried", 3)
    with running(template, tmp_path) as api:
        h = api.auth("analyst")
        before = api.points()
        ts = "2024-07-01T00:00:00Z"
        r = api.client.post("/api/v1/ingest", headers=h, json={"points": [
            point(5, ts), point(6, ts), point(7, ts)]})
        assert r.status_code == 200, r.text
        assert api.points() == before + 1
        r = api.client.get("/api/v1/series/signups", headers=h, params={
            "from": ts, "to": "2024-07-02T00:00:00Z",
            "filter": [f"{k}:{v}" for k, v in DIMS.items()]})
        assert r.json()[0]["values"] == [7.0]


def test_a_traversal_upload_name_writes_nothing_outside(template: Template, tmp_path: Path,
                                                       ) -> None:
    """An upload named ../../x.csv is read from a temporary file of kpidash's own naming."""
    count("bad inputs tried")
    target = tmp_path / "evil.csv"
    (tmp_path / "app").mkdir()
    with running(template, tmp_path / "app") as api:
        name = "../" * 12 + str(target).lstrip("/")
        r = api.client.post("/api/v1/ingest/file", headers=api.auth("analyst"), files={
            "file": (name, f"timestamp,kpi,value\n{TS},signups,1\n".encode(), "text/csv")})
        assert r.status_code == 200, r.text
    assert not target.exists()
