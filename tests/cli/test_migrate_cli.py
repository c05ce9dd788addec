"""``kpidash migrate --from … --to …`` run as a user runs it (the installed command in a
subprocess): DuckDB → PostgreSQL → DuckDB with every table matching, the report table and
JSON; a non-empty target and a bad URL refused with one line (exit 1). Skipped without a
PostgreSQL server (tests/pgserver.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kpidash.store import open_store
from kpidash.store.archive import table_checksum
from kpidash.store.base import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from workspace_data import NOW, fill

EXE = shutil.which("kpidash") or str(Path(sys.executable).parent / "kpidash")


def kpidash(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPIDASH_")}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=cwd)


def sums(store: Store) -> dict[tuple[str, str], tuple[int, str]]:
    out = {("", n): (t.num_rows, table_checksum(t)) for n, t in store.export_global()}
    for w in store.workspaces():
        out |= {(w["id"], n): (t.num_rows, table_checksum(t))
                for n, t in store.export_workspace(w["id"])}
    return out


def test_migrate_to_postgresql_and_back(tmp_path: Path, pg_database: str) -> None:
    src = tmp_path / "src.duckdb"
    store = open_store(str(src))
    fill(store, "a", 1.0)
    fill(store, "b", 2.0)
    store.add_user({"id": "u1", "username": "ana", "password_hash": "h", "role": "admin",
                    "doc": {"email": "ana@example.com"}, "created_at": NOW})
    want = sums(store)
    store.close()

    r = kpidash(tmp_path, "migrate", "--from", f"duckdb:{src}", "--to", pg_database)
    assert r.returncode == 0, r.stderr
    assert "every table matches" in r.stdout and "MISMATCH" not in r.stdout
    assert "points" in r.stdout and "users" in r.stdout and "Traceback" not in r.stderr
    pg = open_store(pg_database)
    assert sums(pg) == want
    pg.close()

    back = tmp_path / "back.duckdb"
    r = kpidash(tmp_path, "migrate", "--from", pg_database, "--to", str(back), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and sorted(report["workspaces"]) == ["a", "b", "default"]
    assert all(t["ok"] and t["source_rows"] == t["target_rows"] for t in report["tables"])
    copy = open_store(str(back))
    assert sums(copy) == want
    copy.close()

    # the target now holds data: a second run is refused in one line, nothing changed
    r = kpidash(tmp_path, "migrate", "--from", f"duckdb:{src}", "--to", pg_database)
    assert r.returncode == 1
    assert r.stderr.startswith("error: the target store ") and "is not empty" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    pg = open_store(pg_database)
    assert sums(pg) == want
    pg.close()


def test_bad_urls_are_one_line_errors(tmp_path: Path) -> None:
    r = kpidash(tmp_path, "migrate", "--from", str(tmp_path / "missing.duckdb"), "--to",
                str(tmp_path / "t.duckdb"))
    assert r.returncode == 1 and "no such DuckDB database file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "missing.duckdb").exists() and not (tmp_path / "t.duckdb").exists()
    r = kpidash(tmp_path, "migrate", "--to", str(tmp_path / "t.duckdb"))
    assert r.returncode == 2 and r.stderr.startswith("usage error:") and "--from" in r.stderr
