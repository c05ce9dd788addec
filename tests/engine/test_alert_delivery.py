"""Alerts delivered through real channels on loopback: a webhook receiver and an SMTP server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kpidash import demo
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.notify import load_channels
from kpidash.store import open_store
from loopback import HttpReceiver, SmtpReceiver

DemoEngine = Callable[..., tuple[Engine, demo.DemoData]]  # the make_demo_engine fixture

CHURN_RULE = """
rules:
  - id: churn_spike
    kpi: customer_churn_rate
    description: Customer churn rate is far above normal
    condition: {kind: threshold, direction: above, bands: {high: 0.5, critical: 0.8},
                recovery: 0.35}
    repeat_interval: 1w
"""


def channels(hook: HttpReceiver, smtp: SmtpReceiver) -> str:
    return f"""
channels:
  ops: {{type: webhook, url: "{hook.url}", timeout: 5}}
  oncall: {{type: email, host: 127.0.0.1, port: {smtp.port}, tls: none,
           sender: alerts@kpidash.test, recipients: [oncall@kpidash.test]}}
"""


def test_demo_churn_spike_fires_one_critical_alert_delivered_once(
        tmp_path: Path, make_demo_engine: DemoEngine,
        http_server: Callable[..., HttpReceiver], smtp_server: Callable[..., SmtpReceiver],
) -> None:
    engine, data = make_demo_engine(tmp_path / "demo.duckdb", 120)
    (spike,) = [i for i in data.manifest["incidents"] if i["id"] == "churn-spike"]
    hook, smtp = http_server(), smtp_server()
    engine.notifiers = load_channels(channels(hook, smtp))
    engine.dashboard_url = "http://127.0.0.1:8000"
    engine.put_alert_rules(CHURN_RULE)
    start = datetime.fromisoformat(spike["start"]).replace(tzinfo=UTC)
    for n in range(-5, 10):  # a daily tick just after midnight, around the incident
        engine.clock = FixedClock(start + timedelta(days=n, minutes=5))
        engine.evaluate_alerts()
    bodies = [r.json() for r in hook.requests]
    firing = [b for b in bodies if b["status"] == "firing"]
    assert len(firing) == 1, bodies
    assert firing[0]["severity"] == "critical"
    assert firing[0]["kpi"]["id"] == "customer_churn_rate"
    assert firing[0]["since"].startswith(
        (start + timedelta(days=1)).date().isoformat())  # the first complete day of it
    assert firing[0]["dashboard_url"].startswith("http://127.0.0.1:8000/?kpi=")
    assert len(firing[0]["recent"]) > 5 and firing[0]["threshold"] == 0.8
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    keys = [r.headers["idempotency-key"] for r in hook.requests]
    assert len(set(keys)) == len(keys)
    mails = smtp.messages()
    assert len(mails) == 2
    assert "CRITICAL" in str(mails[0]["Subject"]) and "Churn" in str(mails[0]["Subject"])
    body = mails[0].get_body(("plain",))
    assert body is not None and "threshold 0.8" in body.get_content()
    assert [a.state.value for a in engine.alerts()] == ["resolved"]


def test_a_down_webhook_is_retried_after_a_restart_and_delivers_once(
        tmp_path: Path, http_server: Callable[..., HttpReceiver],
) -> None:
    hook = http_server(statuses=[503, 503])
    path = tmp_path / "a.duckdb"
    t0 = datetime(2024, 3, 10, tzinfo=UTC)

    def open_engine(at: datetime) -> Engine:
        e = Engine(open_store(str(path)), FixedClock(at))
        e.register([{"id": "orders", "name": "Orders"}])
        e.notifiers = load_channels({"channels": {"ops": {"type": "webhook", "url": hook.url}}})
        return e

    e = open_engine(t0)
    e.ingest([{"kpi": "orders", "ts": (t0 - timedelta(days=d)).isoformat(), "value": v}
              for d, v in ((3, 100), (2, 100), (1, 5))])
    e.put_alert_rules([{"id": "orders_low", "kpi": "orders", "condition": {
        "kind": "threshold", "direction": "below", "bands": {"critical": 10}}}])
    r = e.evaluate_alerts()
    assert (r.queued, r.delivery.retrying if r.delivery else None) == (1, 1)
    e.close()  # the process stops with the message still queued

    for minutes in (1, 5, 20):  # restarted later: the retries are due again
        e = open_engine(t0 + timedelta(minutes=minutes))
        e.evaluate_alerts()
        e.close()
    assert len(hook.requests) == 3  # two 503s, then delivered
    assert len({r.headers["idempotency-key"] for r in hook.requests}) == 1
    e = open_engine(t0 + timedelta(hours=2))
    e.evaluate_alerts()
    assert len(hook.requests) == 3  # delivered once, never again
    assert [i.status for i in e.store.outbox(e.workspace)] == ["delivered"]
