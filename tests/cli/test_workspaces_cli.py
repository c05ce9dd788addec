"""``kpidash workspaces …`` on the store of KPIDASH_DB: create, list, export, import into
another store, delete. Commands run through the console-script entry point (``main``, so
errors are the one-line messages a user sees) in this process, to keep the test fast; one
runs as the installed command in a subprocess."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clirun import Result, invoke
from kpidash.store import open_store
from kpidash.store.archive import table_checksum

EXE = shutil.which("kpidash") or str(Path(sys.executable).parent / "kpidash")
CSV = "timestamp,kpi,value,region,plan\n" + "".join(
    f"2024-06-{d:02d}T00:00:00Z,signups,{d * 3 + (r == 'NA')},{r},pro\n"
    for d in range(1, 21) for r in ("EU", "NA"))


Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``run(db, *args, stdin=None)``: ``kpidash *args`` with KPIDASH_DB=db, in tmp_path."""
    monkeypatch.chdir(tmp_path)

    def call(db: Path, *args: str, stdin: str | None = None) -> Result:
        return invoke(monkeypatch, db, args, stdin=stdin)

    return call


def ok(r: Result) -> str:
    assert r.returncode == 0, r.stderr
    return r.stdout


def one_line_error(r: Result, *words: str) -> None:
    assert r.returncode == 1 and r.stderr.startswith("error: "), (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    for word in words:
        assert word in r.stderr, r.stderr


def test_create_list_export_import_delete(tmp_path: Path, run: Run) -> None:
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    (tmp_path / "p.csv").write_text(CSV, encoding="utf-8")
    ok(run(a, "ingest", "p.csv", "--pack", "saas"))
    ok(run(a, "annotations", "add", "Launch", "--from", "2024-06-05",
           "--to", "2024-06-06", "--kpi", "signups"))
    line = ok(run(a, "workspaces", "create", "acme", "--name", "Acme", "--timezone",
                  "Europe/Paris", "--currency", "EUR", "--fiscal-year-start", "4"))
    assert line == "workspace 'acme' (Acme) created: Europe/Paris, EUR, fiscal year from " \
                   "month 4\n"
    listed = json.loads(ok(run(a, "workspaces", "list", "--json")))
    assert [(w["id"], w["settings"]["currency"], w["kpis"]) for w in listed] == [
        ("acme", "EUR", 0), ("default", "USD", 13)]
    assert "Europe/Paris" in ok(run(a, "workspaces", "list"))

    archive = tmp_path / "default.kpidash.zip"
    line = ok(run(a, "workspaces", "export", "default", archive.name))
    assert line.startswith("exported workspace 'default' (") and "40 " not in line[:20]
    assert "memberships and credentials are not exported" in line
    assert sorted(p.name for p in tmp_path.glob("*.kpidash.zip*")) == [archive.name]
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["tables"]["points"]["rows"] == 40
    assert manifest["tables"]["annotations"]["rows"] == 1
    one_line_error(run(a, "workspaces", "export", "default", archive.name), "exists",
                   "--force")
    ok(run(a, "workspaces", "export", "default", archive.name, "--force"))
    one_line_error(run(a, "workspaces", "export", "nope", "x.zip"), "no workspace 'nope'")
    assert not (tmp_path / "x.zip").exists()

    # another store: a user to administer the import
    ok(run(b, "users", "create", "alice", "--role", "admin", "--password-stdin",
           stdin="a long enough password\n"))
    line = ok(run(b, "workspaces", "import", archive.name, "--as", "copy", "--name",
                  "Copy of default", "--admin", "alice"))
    assert line.startswith(f"imported workspace 'copy' (Copy of default) from {archive.name}:")
    assert "checksums matched" in line and "alice is its admin" in line
    one_line_error(run(b, "workspaces", "import", archive.name, "--as", "copy"),
                   "'copy' already exists", "--as")
    one_line_error(run(b, "workspaces", "import", archive.name, "--as", "x", "--admin", "bob"),
                   "no user named 'bob'")
    store = open_store(str(b))
    try:
        got = {n: (t.num_rows, table_checksum(t)) for n, t in store.export_workspace("copy")}
        want = {n: (t["rows"], t["sha256"]) for n, t in manifest["tables"].items()}
        assert {n for n in want if got[n] != want[n]} == {"workspaces"}  # the new name
        alice = store.user_by_name("alice")
        assert alice is not None
        assert [(m["user_id"], m["role"]) for m in store.memberships("copy")] == \
            [(alice["id"], "admin")]
        assert store.workspace("x") is None
    finally:
        store.close()

    one_line_error(run(b, "workspaces", "delete", "copy"), "--yes")
    rows = sum(t["rows"] for t in manifest["tables"].values())  # - record + alice's membership
    assert ok(run(b, "workspaces", "delete", "copy", "--yes")) == \
        f"deleted workspace 'copy' and {rows} rows it held\n"
    one_line_error(run(b, "workspaces", "delete", "copy", "--yes"), "no workspace 'copy'")
    one_line_error(run(b, "workspaces", "delete", "default", "--yes"), "cannot be deleted")


def test_a_damaged_archive_is_refused_naming_the_table(tmp_path: Path, run: Run) -> None:
    db = tmp_path / "a.duckdb"
    (tmp_path / "p.csv").write_text(CSV, encoding="utf-8")
    ok(run(db, "ingest", "p.csv", "--pack", "saas"))
    ok(run(db, "workspaces", "export", "default", "good.zip"))
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(tmp_path / "good.zip") as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "tables/points.parquet":
                buf = io.BytesIO()
                pq.write_table(pq.read_table(io.BytesIO(body)).slice(1), buf)
                body = buf.getvalue()
            dst.writestr(item, body)
    one_line_error(run(db, "workspaces", "import", "damaged.zip", "--as", "copy"),
                   "damaged.zip was refused", "table 'points'", "nothing was imported")
    one_line_error(run(db, "workspaces", "import", "p.csv", "--as", "copy"),
                   "p.csv is not a kpidash workspace archive")
    one_line_error(run(db, "workspaces", "import", "missing.zip"), "no such file")
    r = run(db, "workspaces", "create", "Bad Id")
    assert r.returncode == 1 and "field 'id'" in r.stderr
    assert [w["id"] for w in json.loads(ok(run(db, "workspaces", "list", "--json")))] == \
        ["default"]


def test_the_installed_command(tmp_path: Path) -> None:
    env = {**os.environ, "KPIDASH_DB": str(tmp_path / "a.duckdb")}
    for args in (["workspaces", "create", "acme", "--currency", "EUR"],
                 ["workspaces", "export", "acme", "acme.zip"]):
        r = subprocess.run([EXE, *args], capture_output=True, text=True, env=env,
                           timeout=120, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    r = subprocess.run([EXE, "workspaces", "import", "acme.zip"], capture_output=True,
                       text=True, env=env, timeout=120, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr == "error: workspace 'acme' already exists; import " \
        "under another id (the API's ?id=, the CLI's --as)\n"
