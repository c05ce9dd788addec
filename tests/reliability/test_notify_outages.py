"""Notification outages (issue 10): the webhook and SMTP servers down for a while, then back.

Alerts are raised through the real engine and its outbox on a real DuckDB file; the channels
are a real HTTP receiver and a real aiosmtpd server on loopback, each stopped and restarted
on the same port. Time is a FixedClock: retries are driven by moving it past the outbox's
backoff, never by sleeping. What is checked, per (notification, channel):

* every notification is delivered, and acknowledged by the receiver exactly once (the outbox
  never sends one again after a success);
* when the answer is lost after the receiver got the message (it closes the connection, or
  answers after the client gave up) the outbox sends it again — at-least-once — with the same
  idempotency key (the webhook's ``Idempotency-Key`` header, the email's ``Message-ID``), so
  a receiver that keeps the keys it has seen processes each notification exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from counts import count
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.notify import load_channels
from kpidash.store import open_store
from loopback import HOST, free_port

CHECKED = "notifications checked"
T0 = datetime(2024, 3, 10, tzinfo=UTC)
KPIS = ("orders_eu", "orders_us", "orders_apac", "signups")
CLIENT_TIMEOUT = 0.5  # seconds: how long the channels wait for an answer in the slow cases


# -- a webhook receiver that can go down, fail, lose its answers, and come back ---------------

@dataclass
class Hook:
    """An HTTP receiver on a fixed port. ``mode``: ok (200), 503, drop (read the request,
    then close the connection without answering) or slow (answer 200 after the client's
    timeout). ``seen`` has every request's Idempotency-Key; ``acked`` those answered 200."""

    port: int
    mode: str = "ok"
    seen: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    def start(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                mode = hook.mode  # as it was when the request came
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers["Idempotency-Key"]
                hook.seen.append(key)
                hook.bodies[key] = json.loads(body)
                if mode == "drop":  # got it; the answer never leaves
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "slow":  # answers when the client has given up
                    time.sleep(CLIENT_TIMEOUT * 3)
                status = 503 if mode == "503" else 200
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                if mode == "ok":
                    hook.acked.append(key)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        # threads: a slow answer holds up no other request; allow_reuse_address: same port again
        server = ThreadingHTTPServer((HOST, self.port), Handler)
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=10)
            assert not self.thread.is_alive()
        self.server = self.thread = None


# -- an SMTP server likewise ------------------------------------------------------------------

@dataclass
class Mailbox:
    """An aiosmtpd server on a fixed port. ``mode``: ok (250), 451 (try later), drop (take
    the message, then close the connection before answering DATA) or slow (answer 250 after
    the client's timeout). ``seen`` has every message; ``acked`` those answered 250."""

    port: int
    mode: str = "ok"
    seen: list[Any] = field(default_factory=list)
    acked: list[Any] = field(default_factory=list)
    controller: Controller | None = None

    def start(self) -> None:
        box = self

        class Handler:
            async def handle_DATA(self, server: SMTP, session: Session,
                                  envelope: Envelope) -> str:
                mode = box.mode
                msg = message_from_bytes(envelope.original_content or b"", policy=policy.default)
                box.seen.append(msg)
                if mode == "451":
                    return "451 4.3.0 mailbox busy, try later"
                if mode == "drop":
                    assert server.transport is not None
                    server.transport.abort()
                    return "250 OK"
                if mode == "slow":
                    await asyncio.sleep(CLIENT_TIMEOUT * 3)
                    return "250 OK"  # too late: the client has gone
                box.acked.append(msg)
                return "250 OK"

        self.controller = Controller(Handler(), hostname=HOST, port=self.port, ready_timeout=5.0)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
        self.controller = None


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook(free_port())
    yield h
    h.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    m = Mailbox(free_port())
    yield m
    m.stop()


# -- the engine ---------------------------------------------------------------------------------

def channels(hook: Hook, mailbox: Mailbox) -> Any:
    return load_channels({"channels": {
        "ops": {"type": "webhook", "url": hook.url, "timeout": CLIENT_TIMEOUT},
        "oncall": {"type": "email", "host": HOST, "port": mailbox.port, "tls": "none",
                   "sender": "alerts@kpidash.test", "recipients": ["oncall@kpidash.test"],
                   "timeout": CLIENT_TIMEOUT}}})


def make_engine(path: Path, hook: Hook, mailbox: Mailbox) -> Engine:
    e = Engine(open_store(str(path)), FixedClock(T0))
    e.register([{"id": k, "name": k.replace("_", " ").title()} for k in KPIS])
    e.notifiers = channels(hook, mailbox)
    e.ingest([{"kpi": k, "ts": (T0 - timedelta(days=d)).isoformat(), "value": v}
              for k in KPIS for d, v in ((3, 100), (2, 100), (1, 5))])
    e.put_alert_rules([{"id": f"{k}_low", "kpi": k, "condition": {
        "kind": "threshold", "direction": "below", "bands": {"critical": 10}}} for k in KPIS])
    return e


def tick(e: Engine, after: timedelta) -> Any:
    """Move the clock on (past the outbox's next backoff) and run one alert tick."""
    assert isinstance(e.clock, FixedClock)
    e.clock.advance(after)
    return e.evaluate_alerts()


def outbox(e: Engine) -> dict[tuple[str, str], Any]:
    return {(i.notification_id, i.channel): i for i in e.store.outbox(e.workspace)}


def mail_keys(messages: list[Any]) -> list[tuple[str, str]]:
    """(notification id, Message-ID) of each message."""
    return [(str(m["X-Kpidash-Notification-Id"]), str(m["Message-ID"])) for m in messages]


def check_exactly_once(e: Engine, hook: Hook, mailbox: Mailbox, ids: set[str]) -> None:
    """Each of ``ids`` is delivered on both channels, acknowledged once, and seen under one
    stable key per notification."""
    items = outbox(e)
    assert {i.status for (n, _), i in items.items() if n in ids} == {"delivered"}, items
    # the webhook: the key is the notification id; acknowledged exactly once each
    assert Counter(k for k in hook.acked if k in ids) == Counter(ids), hook.acked
    assert {k for k in hook.seen if k in ids} == ids
    for key in ids:
        assert hook.bodies[key]["id"] == key
    # email: one acknowledged message per notification, one Message-ID for all its attempts
    acked = [k for k in mail_keys(mailbox.acked) if k[0] in ids]
    assert Counter(n for n, _ in acked) == Counter(ids), acked
    seen = [k for k in mail_keys(mailbox.seen) if k[0] in ids]
    by_id: dict[str, set[str]] = {}
    for n, mid in seen:
        by_id.setdefault(n, set()).add(mid)
    assert all(len(mids) == 1 for mids in by_id.values()), by_id
    assert len({next(iter(m)) for m in by_id.values()}) == len(ids)  # one per notification
    count(CHECKED, 2 * len(ids))


def test_down_then_failing_then_back_delivers_every_notification_once(
        tmp_path: Path, hook: Hook, mailbox: Mailbox) -> None:
    e = make_engine(tmp_path / "o.duckdb", hook, mailbox)
    try:
        # both receivers down (connection refused): everything is queued and retried
        r = e.evaluate_alerts()
        assert r.queued == 2 * len(KPIS)
        assert r.delivery is not None and r.delivery.retrying == 2 * len(KPIS)
        ids = {n for n, _ in outbox(e)}
        assert len(ids) == len(KPIS)
        r = tick(e, timedelta(seconds=31))
        assert r.delivery is not None and r.delivery.retrying == 2 * len(KPIS)

        # the webhook comes back answering 503, the mail server answering 451
        hook.mode, mailbox.mode = "503", "451"
        hook.start()
        mailbox.start()
        r = tick(e, timedelta(minutes=2))
        assert r.delivery is not None and r.delivery.retrying == 2 * len(KPIS)
        assert len(hook.seen) == len(mailbox.seen) == len(KPIS) and not hook.acked

        # down again for a while (a restart of both)
        hook.stop()
        mailbox.stop()
        r = tick(e, timedelta(minutes=5))
        assert r.delivery is not None and r.delivery.retrying == 2 * len(KPIS)

        # back for good, on the same ports
        hook.mode, mailbox.mode = "ok", "ok"
        hook.start()
        mailbox.start()
        r = tick(e, timedelta(minutes=10))
        assert r.delivery is not None and r.delivery.delivered == 2 * len(KPIS)
        for _ in range(3):  # later ticks send nothing again
            r = tick(e, timedelta(hours=1))
            assert r.delivery is None or r.delivery.delivered == 0
        check_exactly_once(e, hook, mailbox, ids)
        assert all(i.attempts == 5 for i in outbox(e).values()), outbox(e)
    finally:
        e.close()


def test_a_restarted_engine_resumes_the_retries(tmp_path: Path, hook: Hook,
                                                mailbox: Mailbox) -> None:
    """The process stops during the outage: the queue is in the store, nothing is lost."""
    path = tmp_path / "o.duckdb"
    e = make_engine(path, hook, mailbox)
    r = e.evaluate_alerts()
    assert r.delivery is not None and r.delivery.retrying == 2 * len(KPIS)
    ids = {n for n, _ in outbox(e)}
    e.close()
    hook.start()
    mailbox.start()
    e = Engine(open_store(str(path)), FixedClock(T0 + timedelta(minutes=1)))
    try:
        e.notifiers = channels(hook, mailbox)
        report = e.deliver(e.notifiers)
        assert report.delivered == 2 * len(KPIS)
        assert e.deliver(e.notifiers).delivered == 0
        check_exactly_once(e, hook, mailbox, ids)
    finally:
        e.close()


@pytest.mark.parametrize("lost", ["drop", "slow"])
def test_a_lost_answer_is_resent_with_the_same_idempotency_key(
        tmp_path: Path, hook: Hook, mailbox: Mailbox, lost: str) -> None:
    """The receiver got the message but the sender never learnt it: the outbox sends it
    again (at least once), under the same key, and a receiver that drops keys it has seen
    processes each notification exactly once."""
    hook.start()
    mailbox.start()
    e = make_engine(tmp_path / "o.duckdb", hook, mailbox)
    try:
        hook.mode = mailbox.mode = lost
        r = e.evaluate_alerts()
        assert r.delivery is not None and r.delivery.retrying == 2 * len(KPIS), r.delivery
        ids = {n for n, _ in outbox(e)}
        assert sorted(hook.seen) == sorted(ids) and not hook.acked
        assert sorted(n for n, _ in mail_keys(mailbox.seen)) == sorted(ids)
        assert all(i.attempts == 1 and i.last_error for i in outbox(e).values())

        hook.mode = mailbox.mode = "ok"
        r = tick(e, timedelta(seconds=31))
        assert r.delivery is not None and r.delivery.delivered == 2 * len(KPIS)
        # the receiver saw each twice, under one key each time
        assert Counter(hook.seen) == Counter({n: 2 for n in ids})
        assert Counter(n for n, _ in mail_keys(mailbox.seen)) == Counter({n: 2 for n in ids})
        check_exactly_once(e, hook, mailbox, ids)
        processed = {k for k in hook.seen}  # a receiver de-duplicating by Idempotency-Key
        assert processed == ids
    finally:
        e.close()
