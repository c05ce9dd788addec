"""PostgreSQL side of the ingest and query benchmarks: a server, databases, a store, figures.

``--postgres URL`` names an existing server: a ``postgresql://`` URL whose role may create
databases; the benchmarks create their own databases on it (``kpidash_bench_<N>`` for the
Parquet-built store that ``query.py`` reuses, ``kpidash_bench_csv_<N>`` dropped after the CSV
run) and never touch the URL's database otherwise. ``--postgres`` without a URL starts a
throwaway server for the run with ``tests/pgserver.py``'s ``PgServer`` (imported by path:
the benchmarks are not a package and ``src`` holds no test helpers) and stops it at the end.

The throwaway server keeps PostgreSQL's durability defaults (fsync, synchronous_commit and
full_page_writes on: DuckDB's commit is durable too), unlike the test server's, and gets
``shared_buffers`` and ``max_wal_size`` large enough for a bulk load; :func:`settings`
reports what a server runs with so the figures say it.

Peak RSS of a PostgreSQL run is the client's (the Python process: Arrow batches, COPY
buffers) plus, reported apart, the largest VmHWM among the server backends that served the
run's database (readable when the server runs on this machine and we may read /proc; it
includes the shared buffers the backend touched).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent

# Overrides of tests/pgserver.py's test settings for a throwaway benchmark server.
BENCH_SETTINGS = {
    "fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
    "shared_buffers": "256MB", "max_wal_size": "4GB", "checkpoint_timeout": "15min",
}
SHOWN = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
         "work_mem", "max_wal_size", "jit", "max_parallel_workers_per_gather")


def _pgserver() -> ModuleType:
    name = "kpidash_bench_pgserver"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "pgserver.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {ROOT / 'tests' / 'pgserver.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    """The URL of a PostgreSQL server: ``url`` itself, or a throwaway server's (stopped on
    exit) when ``url`` is empty or None."""
    if url:
        yield url
        return
    pgserver = _pgserver()
    bindir = pgserver.find_bindir()
    if bindir is None:
        raise SystemExit("--postgres without a URL needs PostgreSQL's server binaries "
                         "(initdb, pg_ctl): run scripts/postgres.sh or pass a URL")
    srv = pgserver.PgServer(bindir=bindir)
    try:
        with mock.patch.dict(pgserver._SETTINGS, BENCH_SETTINGS):
            srv.start()
        yield srv.base_url
    finally:
        srv.stop()


def db_url(base_url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(base_url)._replace(path=f"/{dbname}"))


def bench_db(points: int, fmt: str = "parquet") -> str:
    """The database a run builds: the Parquet one is kept for query.py."""
    return f"kpidash_bench_{points}" if fmt == "parquet" else f"kpidash_bench_{fmt}_{points}"


def _admin(base_url: str) -> Any:
    import psycopg

    return psycopg.connect(base_url, autocommit=True)


def recreate_database(base_url: str, dbname: str) -> str:
    """Drop ``dbname`` if present, create it empty; returns its URL."""
    from psycopg import sql

    with _admin(base_url) as con:
        con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(dbname)))
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return db_url(base_url, dbname)


def drop_database(base_url: str, dbname: str) -> None:
    from psycopg import sql

    with _admin(base_url) as con:
        con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(dbname)))


def database_exists(base_url: str, dbname: str) -> bool:
    with _admin(base_url) as con:
        return con.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                           [dbname]).fetchone() is not None


def vacuum_analyze(url: str) -> None:
    """VACUUM (ANALYZE) the whole database: statistics and visibility map up to date."""
    with _admin(url) as con:
        con.execute("VACUUM (ANALYZE)")


def open_pg_store(url: str) -> Any:
    """``open_store(url)`` once it accepts PostgreSQL URLs, else ``PostgresStore(url)``."""
    from kpidash.errors import ConfigError
    from kpidash.store.base import open_store

    try:
        return open_store(url)
    except ConfigError:
        from kpidash.store.postgres import PostgresStore

        return PostgresStore(url)


def settings(url: str) -> dict[str, str]:
    """The server settings that matter for the figures (see ``SHOWN``)."""
    with _admin(url) as con:
        rows = con.execute("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
                           [list(SHOWN)]).fetchall()
    out = {name: _with_unit(setting, unit) for name, setting, unit in rows}
    return {k: out[k] for k in SHOWN if k in out}


def _with_unit(setting: str, unit: str | None) -> str:
    if unit == "8kB" and setting.isdigit():
        return _with_unit(str(int(setting) * 8), "kB")
    if unit in ("kB", "MB") and setting.isdigit():
        kib = int(setting) * (1 if unit == "kB" else 1024)
        for size, name in ((1024 * 1024, "GB"), (1024, "MB")):
            if kib >= size and kib % size == 0:
                return f"{kib // size}{name}"
        return f"{kib}kB"
    return setting + (unit or "")


def describe(url: str) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings(url).items())


def backend_peak_mib(url: str) -> float | None:
    """The largest VmHWM (MiB) among the server backends connected to ``url``'s database,
    or None when they cannot be read (remote server, no permission)."""
    with _admin(url) as con:
        pids = [int(r[0]) for r in con.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()").fetchall()]
    peaks = []
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks) if peaks else None


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
