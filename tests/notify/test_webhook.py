"""Webhook channel against a real HTTP server on loopback; mocks only to inject failures."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from kpidash.notify import Notification, WebhookConfig, WebhookNotifier, deliver_with_retry

from .conftest import HttpReceiver, make_notification

HttpFactory = Callable[..., HttpReceiver]


def test_json_payload_and_headers(http_server: HttpFactory, notification: Notification) -> None:
    rx = http_server()
    cfg = WebhookConfig(url=rx.url, headers={"X-Team": "growth"}, token=SecretStr("tok-123"))
    result = WebhookNotifier(cfg).send(notification)

    assert result.ok and result.status_code == 200
    [req] = rx.requests
    assert req.path == "/hook"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["idempotency-key"] == "ntf-0001"
    assert req.headers["x-team"] == "growth"
    assert req.headers["authorization"] == "Bearer tok-123"
    body = req.json()
    assert body["id"] == "ntf-0001"
    assert body["severity"] == "critical" and body["status"] == "firing"
    assert body["kpi"] == {"id": "revenue", "name": "Revenue", "unit": "$"}
    assert body["slice"] == {"region": "EU", "plan": "pro"}
    assert body["value"] == 41250.5 and body["threshold"] == 50000.0
    assert body["since"] == "2024-03-01T06:30:00+00:00"
    assert body["recent"] == [52000.0, 51500.0, 50100.0, 47000.0, 41250.5]
    assert body["sparkline"] == "██▇▅▁"
    assert body["rule_id"] == "revenue-floor" and body["group_key"] == "revenue/region=EU"
    assert body["dashboard_url"].startswith("http://dash.example/")


def test_configured_headers_cannot_override_the_idempotency_key(
        http_server: HttpFactory, notification: Notification) -> None:
    rx = http_server()
    WebhookNotifier(WebhookConfig(url=rx.url, headers={"Idempotency-Key": "fixed"})).send(notification)
    assert rx.requests[0].headers["idempotency-key"] == "ntf-0001"


def test_non_finite_values_travel_as_null(http_server: HttpFactory) -> None:
    rx = http_server()
    n = make_notification(value=float("nan"), recent=(1.0, float("inf")))
    assert WebhookNotifier(WebhookConfig(url=rx.url)).send(n).ok
    body = rx.requests[0].json()  # json.loads would accept NaN; check it was not sent
    assert b"NaN" not in rx.requests[0].body and b"Infinity" not in rx.requests[0].body
    assert body["value"] is None and body["recent"] == [1.0, None]


def test_slack_format(http_server: HttpFactory, notification: Notification) -> None:
    rx = http_server()
    assert WebhookNotifier(WebhookConfig(url=rx.url, format="slack")).send(notification).ok

    body = rx.requests[0].json()
    assert set(body) == {"text", "blocks"}
    assert "CRITICAL" in body["text"] and "Revenue" in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "actions", "context"]
    header = body["blocks"][0]["text"]
    assert header["type"] == "plain_text" and len(header["text"]) <= 150
    fields = body["blocks"][1]["fields"]
    assert len(fields) <= 10 and all(f["type"] == "mrkdwn" for f in fields)
    joined = "\n".join(f["text"] for f in fields)
    assert "region=EU" in joined and "threshold 50,000 $" in joined and "██▇▅▁" in joined
    assert body["blocks"][2]["elements"][0]["url"] == notification.dashboard_url
    assert rx.requests[0].headers["idempotency-key"] == "ntf-0001"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (404, False), (408, True), (429, True),
     (500, True), (502, True), (503, True)],
    ids=lambda v: str(v),
)
def test_http_status_classification(status: int, retryable: bool, http_server: HttpFactory,
                                    notification: Notification) -> None:
    rx = http_server(statuses=[status])
    result = WebhookNotifier(WebhookConfig(url=rx.url)).send(notification)
    assert not result.ok
    assert result.retryable is retryable
    assert result.status_code == status
    assert f"HTTP {status}" in result.detail


def test_retries_until_the_server_recovers(http_server: HttpFactory,
                                           notification: Notification) -> None:
    rx = http_server(statuses=[503, 503])
    sleeps: list[float] = []
    result = deliver_with_retry(WebhookNotifier(WebhookConfig(url=rx.url)), notification,
                                attempts=5, base_delay=0.5, sleep=sleeps.append)
    assert result.ok
    assert len(rx.requests) == 3
    assert sleeps == [0.5, 1.0]
    # every attempt carries the same idempotency key, so the receiver can de-duplicate
    assert {r.headers["idempotency-key"] for r in rx.requests} == {"ntf-0001"}


def test_retry_gives_up_after_attempts_and_returns_the_last_failure(
        http_server: HttpFactory, notification: Notification) -> None:
    rx = http_server(statuses=[503] * 10)
    sleeps: list[float] = []
    result = deliver_with_retry(WebhookNotifier(WebhookConfig(url=rx.url)), notification,
                                attempts=3, base_delay=1.0, max_delay=1.5, sleep=sleeps.append)
    assert not result.ok and result.retryable and result.status_code == 503
    assert len(rx.requests) == 3
    assert sleeps == [1.0, 1.5]


def test_non_retryable_failure_is_not_retried(http_server: HttpFactory,
                                              notification: Notification) -> None:
    rx = http_server(statuses=[400, 400])
    sleeps: list[float] = []
    result = deliver_with_retry(WebhookNotifier(WebhookConfig(url=rx.url)), notification,
                                attempts=5, sleep=sleeps.append)
    assert not result.ok and not result.retryable and result.status_code == 400
    assert len(rx.requests) == 1 and sleeps == []


def test_closed_port_is_retried_then_reported(closed_port: int, notification: Notification) -> None:
    sleeps: list[float] = []
    notifier = WebhookNotifier(WebhookConfig(url=f"http://127.0.0.1:{closed_port}/hook", timeout=2))
    result = deliver_with_retry(notifier, notification, attempts=2, base_delay=0.1, sleep=sleeps.append)
    assert not result.ok and result.retryable and "network error" in result.detail
    assert sleeps == [0.1]


def _raising(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("exc", "retryable", "words"),
    [
        (httpx.ReadTimeout("slow"), True, "timeout"),
        (httpx.ConnectTimeout("slow"), True, "timeout"),
        (httpx.RemoteProtocolError("garbled"), True, "network error"),
        (httpx.TooManyRedirects("loop"), False, "HTTP error"),
    ],
    ids=["read-timeout", "connect-timeout", "protocol-error", "redirect-loop"],
)
def test_transport_failures_are_classified(exc: Exception, retryable: bool, words: str,
                                           notification: Notification) -> None:
    notifier = WebhookNotifier(WebhookConfig(url="http://hooks.invalid/x"), transport=_raising(exc))
    result = notifier.send(notification)
    assert not result.ok and result.retryable is retryable and words in result.detail


def test_redirect_is_not_followed_and_not_retried(notification: Notification) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(302, headers={"Location": "http://elsewhere/"}))
    notifier = WebhookNotifier(WebhookConfig(url="http://hooks.invalid/x"), transport=transport)
    result = notifier.send(notification)
    assert not result.ok and not result.retryable and result.status_code == 302


def test_exceptions_that_are_bugs_propagate_through_retry(notification: Notification) -> None:
    class Broken:
        name = "broken"

        def send(self, n: Notification) -> object:
            raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        deliver_with_retry(Broken(), notification, sleep=lambda s: None)  # type: ignore[arg-type]


def test_attempts_must_be_positive(notification: Notification) -> None:
    with pytest.raises(ValueError, match="attempts"):
        deliver_with_retry(WebhookNotifier(WebhookConfig(url="http://x.invalid/")), notification, attempts=0)


def test_slack_text_is_escaped(http_server: HttpFactory) -> None:
    rx = http_server()
    n = make_notification(title="<!channel> A&B", slice={"team": "<@U123>"})
    assert WebhookNotifier(WebhookConfig(url=rx.url, format="slack")).send(n).ok
    body = rx.requests[0].json()
    assert "&lt;!channel&gt; A&amp;B" in body["text"] and "<!channel>" not in body["text"]
    assert "<@U123>" not in "".join(f["text"] for f in body["blocks"][1]["fields"])
