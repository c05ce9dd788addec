"""A throwaway PostgreSQL server for the test session (a real server, not a mock).

``PgServer.start()`` runs ``initdb`` in a temporary directory and ``pg_ctl start`` on a free
TCP port of 127.0.0.1 (trust authentication, superuser ``kpidash``, durability switched off
for speed); ``stop()`` stops it and removes the directory. PostgreSQL refuses to run as root,
so under root the directory is given to the ``postgres`` OS user (created by Debian's
package) and the binaries run through ``runuser``.

The binaries are looked up in ``$KPIDASH_PG_BINDIR``, then the newest
``/usr/lib/postgresql/*/bin`` (Debian's layout), then ``pg_ctl`` on ``PATH``;
``scripts/postgres.sh`` installs them from Debian's packages when they are missing.
``$KPIDASH_TEST_PG_URL`` (a superuser URL such as ``postgresql://me@host:5432/postgres``)
uses an existing server instead of starting one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

SUPERUSER = "kpidash"
_SETTINGS = {  # a test server: no durability, little memory, many short-lived connections
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    "max_connections": "200", "shared_buffers": "64MB", "listen_addresses": "127.0.0.1",
    "log_min_messages": "warning", "TimeZone": "UTC",
}


def find_bindir() -> Path | None:
    """The folder of PostgreSQL's server binaries (initdb, pg_ctl), or None."""
    env = os.environ.get("KPIDASH_PG_BINDIR")
    if env:
        return Path(env) if (Path(env) / "initdb").is_file() else None
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: _version_key(p.parent.parent.name))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and (Path(pg_ctl).parent / "initdb").is_file():
        return Path(pg_ctl).parent
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """One PostgreSQL server; ``url(dbname)`` gives a superuser URL for a database."""

    base_url: str = ""  # postgresql://kpidash@127.0.0.1:PORT/postgres once started
    bindir: Path | None = None
    _dir: Path | None = None
    _owned: bool = False
    _names: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def from_env_or_start(cls) -> PgServer:
        """An existing server from ``$KPIDASH_TEST_PG_URL``, or a new one started here.

        Raises RuntimeError saying why when neither is possible.
        """
        url = os.environ.get("KPIDASH_TEST_PG_URL")
        if url:
            server = cls(base_url=url)
            with server.admin():
                pass
            return server
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found: run "
                               "scripts/postgres.sh (apt-get install postgresql) or set "
                               "KPIDASH_PG_BINDIR or KPIDASH_TEST_PG_URL")
        server = cls(bindir=bindir)
        server.start()
        return server

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        assert self.bindir is not None
        run_as = self._run_as()
        self._dir = Path(tempfile.mkdtemp(prefix="kpidash-pg-"))
        data = self._dir / "data"
        if run_as is not None:
            shutil.chown(self._dir, run_as.pw_uid, run_as.pw_gid)
        self._run(run_as, [str(self.bindir / "initdb"), "-D", str(data), "-U", SUPERUSER,
                           "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            port = _free_port()
            try:
                self._pg_ctl_start(port)
            except RuntimeError:
                if attempt == 2:
                    raise
                continue
            break
        self._owned = True
        self.base_url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"

    def shut_down(self) -> None:
        """A clean fast shutdown of a server started here (sessions ended, everything
        committed kept); :meth:`start_again` brings it back (an outage test)."""
        self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")

    def start_again(self) -> None:
        """Start a server stopped by :meth:`shut_down`, on the same port and settings."""
        port = urlsplit(self.base_url).port
        assert port is not None
        self._pg_ctl_start(port)

    def _pg_ctl_start(self, port: int) -> None:
        assert self._dir is not None
        opts = " ".join(f"-c {k}={v}" for k, v in {
            **_SETTINGS, "port": str(port), "unix_socket_directories": str(self._dir)}.items())
        self._pg_ctl("-l", str(self._dir / "server.log"), "-o", opts, "-w", "-t", "60", "start")

    def _pg_ctl(self, *args: str) -> None:
        assert self.bindir is not None and self._dir is not None
        self._run(self._run_as(), [str(self.bindir / "pg_ctl"), "-D", str(self._dir / "data"),
                                   *args])

    def stop(self) -> None:
        if self._owned and self._dir is not None and self.bindir is not None:
            with contextlib.suppress(RuntimeError):
                self._run(self._run_as(), [str(self.bindir / "pg_ctl"), "-D",
                                           str(self._dir / "data"), "-m", "immediate", "-w",
                                           "stop"])
            self._owned = False
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @staticmethod
    def _run_as() -> pwd.struct_passwd | None:
        """The OS user to run the server as when we are root (PostgreSQL refuses root)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no 'postgres' OS user to run "
                               "the PostgreSQL server as") from None

    def _run(self, user: pwd.struct_passwd | None, argv: list[str]) -> None:
        if user is not None:
            argv = ["runuser", "-u", user.pw_name, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd="/")
        if done.returncode:
            log = ""
            if self._dir is not None and (self._dir / "server.log").exists():
                log = (self._dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                               f"{done.stderr.strip()}\n{log}")

    # -- databases ----------------------------------------------------------------------

    def url(self, dbname: str) -> str:
        parts = urlsplit(self.base_url)
        return urlunsplit(parts._replace(path=f"/{dbname}"))

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit superuser connection to the maintenance database."""
        return psycopg.connect(self.base_url, autocommit=True)

    def new_name(self, prefix: str = "kpidash_t") -> str:
        return f"{prefix}_{os.getpid()}_{next(self._names)}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template`` when given); returns its URL."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self.admin() as con:
            con.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


class DatabasePool:
    """Fresh databases copied from a migrated template, recycled for speed.

    ``CREATE DATABASE … TEMPLATE`` costs ~0.4 s; a database given back is emptied instead
    (partitions of points dropped, every table but ``kpidash_schema`` truncated, sequences
    restarted) and handed out again — but only if its catalog still matches the template's
    (tables, columns, defaults, functions, applied versions); otherwise it is dropped.
    """

    def __init__(self, server: PgServer, template: str) -> None:
        self.server, self.template = server, template
        self._free: list[str] = []
        with psycopg.connect(server.url(template), autocommit=True) as con:
            self._fingerprint = _fingerprint(con)

    def take(self) -> str:
        """The name of an empty, migrated database for one test."""
        if self._free:
            return self._free.pop()
        name = self.server.new_name()
        self.server.create_database(name, template=self.template)
        return name

    def give_back(self, name: str) -> None:
        try:
            with psycopg.connect(self.server.url(name), autocommit=True) as con:
                con.execute("SET lock_timeout = '2s'")
                with con.transaction():
                    _empty(con)
                reusable = _fingerprint(con) == self._fingerprint
        except psycopg.Error:
            reusable = False
        if reusable:
            self._free.append(name)
        else:
            self.server.drop_database(name)

    def close(self) -> None:
        while self._free:
            self.server.drop_database(self._free.pop())


def _empty(con: psycopg.Connection[tuple[object, ...]]) -> None:
    def names(query: str) -> list[str]:
        return [str(r[0]) for r in con.execute(query).fetchall()]

    for part in names("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = "
                      "i.inhrelid WHERE i.inhparent = to_regclass('points') "
                      "AND c.relname <> 'points_default'"):
        con.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(part)))
    tables = names("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                   "AND tablename <> 'kpidash_schema'")
    if tables:
        con.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in tables)))
    for seq in names("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"):
        con.execute(sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier(seq)))


def _fingerprint(con: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
    """What a test could have changed in a database's schema (not its rows)."""
    queries = [
        "SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace",
        "SELECT string_agg(table_name || '.' || column_name || ':' || data_type || ':' || "
        "is_nullable || ':' || coalesce(column_default, ''), ',' ORDER BY table_name, "
        "ordinal_position) FROM information_schema.columns WHERE table_schema = 'public'",
        "SELECT string_agg(proname || ':' || md5(coalesce(prosrc, '')), ',' ORDER BY proname) "
        "FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM kpidash_schema",
    ]
    return tuple(con.execute(q).fetchone() for q in queries)
