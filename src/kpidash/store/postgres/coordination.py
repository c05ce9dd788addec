"""Messages and leadership between processes sharing one PostgreSQL database (see
:mod:`kpidash.store.coordination` for the contract).

* ``publish`` is ``SELECT pg_notify(channel, message)`` on the calling thread's transaction
  connection when there is one (delivered at COMMIT, dropped at ROLLBACK), else on a pooled
  autocommit connection (delivered at once).
* ``listen`` runs one thread with a dedicated connection that ``LISTEN``\\ s and waits on
  psycopg's ``notifies()``. A lost connection is re-established with growing pauses (0.2 s
  doubling up to 5 s) and then reported to the callback as ``None``: notifications sent
  while nobody listened are gone, whatever they invalidated must be dropped.
* ``leadership`` holds a session-level advisory lock (``pg_try_advisory_lock``) on a
  dedicated connection; the server releases it when that session ends, so a killed holder
  frees it at once and one whose network is cut frees it when TCP keepalive gives up
  (~25 s with the settings below).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from kpidash.store.coordination import Leadership, Listener, OnMessage, check_message

log = logging.getLogger("kpidash.store.postgres")
CHANNEL = "kpidash"
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3}
_MAX_PAUSE = 5.0


def lock_key(name: str) -> int:
    """The advisory lock key (a signed bigint) of a leadership name: the first 8 bytes of
    SHA-256("kpidash:" + name), the same in every process and version."""
    digest = hashlib.sha256(f"kpidash:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PgListener:
    """A thread listening on :data:`CHANNEL` (see the module docstring)."""

    def __init__(self, conninfo: str, on_message: OnMessage, *, connect_timeout: int) -> None:
        self._conninfo = make_conninfo(conninfo, **KEEPALIVE)
        self._on_message = on_message
        self._timeout = connect_timeout
        self._stop = threading.Event()
        # connected before listen() returns: a message published after it is never missed
        self._con: psycopg.Connection[Any] | None = self._connect()
        self._thread = threading.Thread(target=self._loop, name="kpidash-listener",
                                        daemon=True)
        self._thread.start()

    def _connect(self) -> psycopg.Connection[Any]:
        con = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=self._timeout)
        con.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        return con

    def _loop(self) -> None:
        pause = 0.2
        while not self._stop.is_set():
            con = self._con
            if con is None:
                try:
                    con = self._con = self._connect()
                except psycopg.Error as exc:
                    log.warning("listener cannot reconnect to PostgreSQL (next try in %.1f s): "
                                "%s", pause, " ".join(str(exc).split()))
                    self._stop.wait(pause)
                    pause = min(_MAX_PAUSE, pause * 2)
                    continue
                pause = 0.2
                self._deliver(None)
            try:
                for note in con.notifies(timeout=0.5):
                    self._deliver(note.payload)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    break
                log.warning("listener lost its PostgreSQL connection: %s",
                            " ".join(str(exc).split()))
                self._discard()

    def _deliver(self, message: str | None) -> None:
        if self._stop.is_set():
            return
        try:
            self._on_message(message)
        except Exception:  # one bad handler call must not end the listening
            log.exception("store message handler failed")

    def _discard(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(psycopg.Error):  # already broken
                con.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        self._discard()


class PgLeadership:
    """A session advisory lock on a connection of its own (see the module docstring)."""

    def __init__(self, conninfo: str, name: str, *, connect_timeout: int) -> None:
        self._conninfo = make_conninfo(conninfo, **KEEPALIVE)
        self.key = lock_key(name)
        self._timeout = connect_timeout
        self._con: psycopg.Connection[Any] | None = None
        self._held = False
        self._mutex = threading.Lock()

    def acquire(self) -> bool:
        with self._mutex:
            try:
                if self._con is None or self._con.closed:
                    self._held = False
                    self._con = psycopg.connect(self._conninfo, autocommit=True,
                                                connect_timeout=self._timeout)
                if self._held:  # still ours while the session lives
                    self._con.execute("SELECT 1")
                    return True
                row = self._con.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()
                self._held = bool(row and row[0])
                return self._held
            except psycopg.Error as exc:
                if self._held:
                    log.warning("leadership lost with the PostgreSQL connection: %s",
                                " ".join(str(exc).split()))
                self._drop()
                return False

    def _drop(self) -> None:
        con, self._con, self._held = self._con, None, False
        if con is not None:
            with contextlib.suppress(psycopg.Error):
                con.close()

    def release(self) -> None:
        with self._mutex:
            if self._con is not None and self._held:
                with contextlib.suppress(psycopg.Error):  # closing the session releases it too
                    self._con.execute("SELECT pg_advisory_unlock(%s)", [self.key])
            self._drop()


class PgCoordination:
    """Mixed into PostgresStore: needs ``_conninfo``, ``_connect_timeout``, ``_run`` and
    ``_coordinators`` (an empty set, filled with the listeners and leaderships made from the
    store: closed with it)."""

    shared = True
    _conninfo: str
    _connect_timeout: int
    _coordinators: set[PgListener | PgLeadership]

    if TYPE_CHECKING:  # provided by PostgresStore
        def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[Any]: ...

    def publish(self, message: str) -> None:
        check_message(message)
        self._run("SELECT pg_notify(?, ?)", [CHANNEL, message])

    def listen(self, on_message: OnMessage) -> Listener:
        listener = PgListener(self._conninfo, on_message, connect_timeout=self._connect_timeout)
        self._coordinators.add(listener)
        return listener

    def leadership(self, name: str) -> Leadership:
        lead = PgLeadership(self._conninfo, name, connect_timeout=self._connect_timeout)
        self._coordinators.add(lead)
        return lead

    def _close_coordination(self) -> None:
        """Stop the listeners and give up the leaderships made from this store."""
        for part in list(self._coordinators):
            if isinstance(part, PgListener):
                part.close()
            else:
                part.release()
