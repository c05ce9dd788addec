"""The Notifier contract, run on every channel: deliver → ok; receiver down → retryable, no raise."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from kpidash.notify import (
    DeliveryResult,
    EmailConfig,
    EmailNotifier,
    LogNotifier,
    Notification,
    Notifier,
    WebhookConfig,
    WebhookNotifier,
)

from .conftest import HOST, HttpReceiver, SmtpReceiver


@dataclass
class Channel:
    notifier: Notifier
    delivered: Callable[[], int]  # how many notifications the receiving side has seen


def webhook_up(http_server: Callable[..., HttpReceiver], smtp_server: object,
               caplog: pytest.LogCaptureFixture) -> Channel:
    rx = http_server()
    return Channel(WebhookNotifier(WebhookConfig(url=rx.url, timeout=2)), lambda: len(rx.requests))


def email_up(http_server: object, smtp_server: Callable[..., SmtpReceiver],
             caplog: pytest.LogCaptureFixture) -> Channel:
    rx = smtp_server()
    cfg = EmailConfig(host=HOST, port=rx.port, tls="none", from_addr="kpidash@example.com",
                      to=["ops@example.com"], timeout=2)
    return Channel(EmailNotifier(cfg), lambda: len(rx.envelopes))


def log_up(http_server: object, smtp_server: object, caplog: pytest.LogCaptureFixture) -> Channel:
    caplog.set_level(logging.DEBUG, logger="kpidash.notify")
    return Channel(LogNotifier(), lambda: len([r for r in caplog.records if r.name == "kpidash.notify"]))


UP = {"webhook": webhook_up, "email": email_up, "log": log_up}

DOWN: dict[str, Callable[[int, float], Notifier]] = {
    "webhook": lambda port, timeout: WebhookNotifier(
        WebhookConfig(url=f"http://{HOST}:{port}/hook", timeout=timeout)),
    "email": lambda port, timeout: EmailNotifier(
        EmailConfig(host=HOST, port=port, tls="none", timeout=timeout,
                    from_addr="kpidash@example.com", to=["ops@example.com"])),
}


@pytest.mark.parametrize("kind", UP)
def test_send_delivers_and_reports_ok(kind: str, http_server: Callable[..., HttpReceiver],
                                      smtp_server: Callable[..., SmtpReceiver],
                                      caplog: pytest.LogCaptureFixture, notification: Notification) -> None:
    channel = UP[kind](http_server, smtp_server, caplog)
    assert isinstance(channel.notifier, Notifier)
    assert channel.notifier.name == kind

    result = channel.notifier.send(notification)

    assert isinstance(result, DeliveryResult)
    assert result.ok and not result.retryable, result
    assert channel.delivered() == 1


@pytest.mark.parametrize("kind", DOWN)
def test_receiver_down_is_a_retryable_failure_not_an_exception(
        kind: str, closed_port: int, notification: Notification) -> None:
    result = DOWN[kind](closed_port, 2.0).send(notification)

    assert not result.ok and result.retryable, result
    assert "network error" in result.detail
    assert result.status_code is None


@pytest.mark.parametrize("kind", DOWN)
def test_receiver_that_never_answers_times_out_retryably(
        kind: str, silent_port: int, notification: Notification) -> None:
    result = DOWN[kind](silent_port, 0.3).send(notification)

    assert not result.ok and result.retryable, result
