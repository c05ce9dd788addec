"""Durable delivery through the outbox, against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.notify import WebhookConfig, WebhookNotifier
from kpidash.notify.base import Notification
from kpidash.store import open_store

NOW = datetime(2024, 7, 1, tzinfo=UTC)


class Receiver:
    """A webhook endpoint that answers 503 to the first ``fail`` requests."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.bodies: list[dict[str, object]] = []
        self.keys: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(503)
                else:
                    receiver.bodies.append(json.loads(body))
                    receiver.keys.append(self.headers["Idempotency-Key"])
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
    r.thread.join(timeout=5)


def note(i: int) -> Notification:
    return Notification(id=f"alert-{i}", title="Churn Rate above 8 %", severity="critical",
                        status="firing", kpi_id="customer_churn_rate", kpi_name="Churn Rate",
                        value=9.1, since=NOW - timedelta(hours=2), rule_id="churn-high",
                        group_key="churn-high/customer_churn_rate", slice={"region": "EU"},
                        threshold=8.0, recent=(6.0, 7.5, 9.1), unit="%")


def test_retries_survive_a_restart_and_nothing_is_sent_twice(tmp_path: Path,
                                                            receiver: Receiver) -> None:
    path = str(tmp_path / "o.duckdb")
    clock = FixedClock(NOW)
    hooks = {"ops": WebhookNotifier(WebhookConfig(url=receiver.url, timeout=5))}
    e = Engine(open_store(path), clock)
    assert e.notify([note(1)], ["ops"]) == 1
    assert e.notify([note(1)], ["ops"]) == 0  # queued once
    first = e.deliver(hooks, base_delay=timedelta(seconds=30))
    assert (first.delivered, first.retrying, first.failed) == (0, 1, 0)
    assert e.deliver(hooks).retrying == 0  # not due yet: backoff
    e.close()

    clock.advance(timedelta(minutes=5))
    e = Engine(open_store(path), clock)  # a restart: the queue is in the store
    assert e.deliver(hooks).retrying == 1  # second 503
    clock.advance(timedelta(minutes=5))
    assert e.deliver(hooks).delivered == 1
    clock.advance(timedelta(hours=2))
    assert e.deliver(hooks) == type(first)(0, 0, 0)  # delivered once, never again
    assert receiver.keys == ["alert-1"]
    assert receiver.bodies[0]["kpi"] == {"id": "customer_churn_rate", "name": "Churn Rate",
                                          "unit": "%"}
    [item] = e.store.outbox(e.workspace)
    assert (item.status, item.attempts) == ("delivered", 3)
    e.close()


def test_unknown_channel_and_non_retryable_errors_fail_without_retry(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    e = Engine(open_store(str(tmp_path / "f.duckdb")), clock)
    e.notify([note(2)], ["nowhere"])
    report = e.deliver({})
    assert (report.delivered, report.retrying, report.failed) == (0, 0, 1)
    [item] = e.store.outbox(e.workspace, "failed")
    assert "no notification channel named 'nowhere'" in (item.last_error or "")
    e.close()


def test_notification_payload_round_trip() -> None:
    n = note(3)
    assert Notification.from_payload(n.to_payload()) == n
