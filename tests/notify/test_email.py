"""Email channel against a real aiosmtpd server on loopback; mocks only to inject failures."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest

from kpidash.clock import FixedClock
from kpidash.notify import EmailConfig, EmailNotifier, Notification, deliver_with_retry
from kpidash.notify.email import subject

from .conftest import HOST, PASSWORD, USER, Certificate, SmtpReceiver, make_notification

SmtpFactory = Callable[..., SmtpReceiver]


def config(port: int, **overrides: Any) -> EmailConfig:
    fields: dict[str, Any] = {"host": HOST, "port": port, "tls": "none", "timeout": 2,
                              "from_addr": "kpidash@example.com",
                              "to": ["ops@example.com", "cfo@example.com"]}
    return EmailConfig(**(fields | overrides))


def test_message_reaches_the_server_with_subject_body_and_headers(
        smtp_server: SmtpFactory, notification: Notification) -> None:
    rx = smtp_server()
    clock = FixedClock(datetime(2024, 3, 1, 7, 0, tzinfo=UTC))
    result = EmailNotifier(config(rx.port), clock=clock).send(notification)

    assert result.ok and result.status_code == 250
    [env] = rx.envelopes
    assert env.mail_from == "kpidash@example.com"
    assert env.rcpt_tos == ["ops@example.com", "cfo@example.com"]
    [msg] = rx.messages()
    assert msg["Subject"] == "[kpidash] [CRITICAL] FIRING: Revenue — Revenue below threshold"
    assert msg["From"] == "kpidash@example.com"
    assert msg["To"] == "ops@example.com, cfo@example.com"
    assert msg["Date"] == "Fri, 01 Mar 2024 07:00:00 +0000"
    assert msg["Message-ID"].endswith("@example.com>")
    assert msg["X-Kpidash-Notification-Id"] == "ntf-0001"
    assert msg["X-Kpidash-Severity"] == "critical"
    assert msg.get_content_type() == "multipart/alternative"

    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content()
    for expected in ("Revenue (revenue)", "plan=pro, region=EU", "41,250.5 $ (threshold 50,000 $)",
                     "2024-03-01 06:30 UTC", "██▇▅▁ (5 points)", "revenue-floor", "revenue/region=EU",
                     "http://dash.example/kpi/revenue?region=EU", "ntf-0001"):
        assert expected in plain
    rich = html.get_content()
    assert '<a href="http://dash.example/kpi/revenue?region=EU">' in rich
    assert "██▇▅▁" in rich and "<table" in rich


def test_html_escapes_untrusted_text(smtp_server: SmtpFactory) -> None:
    rx = smtp_server()
    n = make_notification(title="<script>alert(1)</script>", slice={"region": "A&B"})
    assert EmailNotifier(config(rx.port)).send(n).ok
    html = rx.messages()[0].get_body(("html",))
    assert html is not None
    rich = html.get_content()
    assert "<script>" not in rich and "&lt;script&gt;" in rich and "region=A&amp;B" in rich


def test_resolved_and_range_rendering() -> None:
    n = make_notification(status="resolved", severity="low", threshold=None, expected_range=(90.0, 110.0),
                          unit="", value=101.0, recent=())
    assert subject(n) == "[kpidash] [LOW] RESOLVED: Revenue — Revenue below threshold"
    text = n.render_text()
    assert "Value: 101 (expected 90 – 110)" in text and "Recent" not in text


def test_login_succeeds_with_the_right_password(smtp_server: SmtpFactory,
                                                notification: Notification) -> None:
    rx = smtp_server(auth=True)
    result = EmailNotifier(config(rx.port, username=USER, password=PASSWORD)).send(notification)
    assert result.ok, result
    assert len(rx.envelopes) == 1


def test_wrong_password_is_not_retryable(smtp_server: SmtpFactory,
                                         notification: Notification) -> None:
    rx = smtp_server(auth=True)
    sleeps: list[float] = []
    result = deliver_with_retry(EmailNotifier(config(rx.port, username=USER, password="wrong")),
                                notification, attempts=3, sleep=sleeps.append)
    assert not result.ok and not result.retryable and result.status_code == 535
    assert "login" in result.detail and "wrong" not in result.detail
    assert sleeps == [] and rx.envelopes == []


def test_starttls_against_a_server_without_it_is_not_retryable(
        smtp_server: SmtpFactory, notification: Notification) -> None:
    rx = smtp_server()
    result = EmailNotifier(config(rx.port, tls="starttls")).send(notification)
    assert not result.ok and not result.retryable
    assert "tls='starttls'" in result.detail


@pytest.mark.parametrize(
    ("reply", "retryable", "code"),
    [("451 4.3.0 try again later", True, 451), ("452 4.3.1 out of storage", True, 452),
     ("550 5.7.1 rejected as spam", False, 550), ("554 5.0.0 transaction failed", False, 554)],
    ids=["451", "452", "550", "554"],
)
def test_smtp_reply_classification(reply: str, retryable: bool, code: int,
                                   smtp_server: SmtpFactory, notification: Notification) -> None:
    rx = smtp_server(reply=reply)
    result = EmailNotifier(config(rx.port)).send(notification)
    assert not result.ok and result.retryable is retryable and result.status_code == code
    assert reply.split(" ", 1)[1] in result.detail


def test_temporary_smtp_failure_is_retried(smtp_server: SmtpFactory,
                                           notification: Notification) -> None:
    rx = smtp_server(reply="451 4.3.0 try again later")
    sleeps: list[float] = []
    result = deliver_with_retry(EmailNotifier(config(rx.port)), notification, attempts=3, base_delay=2,
                                sleep=sleeps.append)
    assert not result.ok and result.retryable and sleeps == [2, 4]


def _refuse(recipients: dict[str, tuple[int, bytes]]) -> smtplib.SMTPRecipientsRefused:
    return smtplib.SMTPRecipientsRefused(recipients)


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (smtplib.SMTPServerDisconnected("gone"), True),
        (_refuse({"ops@example.com": (450, b"mailbox busy")}), True),
        (_refuse({"ops@example.com": (550, b"no such user")}), False),
        (smtplib.SMTPSenderRefused(553, b"sender not allowed", "kpidash@example.com"), False),
        (TimeoutError("timed out"), True),
    ],
    ids=["disconnected", "rcpt-4xx", "rcpt-5xx", "sender-5xx", "timeout"],
)
def test_injected_failures_are_classified(exc: Exception, retryable: bool, smtp_server: SmtpFactory,
                                          notification: Notification) -> None:
    rx = smtp_server()
    with mock.patch.object(smtplib.SMTP, "send_message", side_effect=exc):
        result = EmailNotifier(config(rx.port)).send(notification)
    assert not result.ok and result.retryable is retryable, result


def test_partial_refusal_counts_as_delivered(smtp_server: SmtpFactory,
                                             notification: Notification) -> None:
    rx = smtp_server()
    refused = {"cfo@example.com": (550, b"no such user")}
    with mock.patch.object(smtplib.SMTP, "send_message", return_value=refused):
        result = EmailNotifier(config(rx.port)).send(notification)
    # retrying would send a duplicate to the recipient who did get it
    assert result.ok and "1 of 2" in result.detail and "cfo@example.com" in result.detail


def test_starttls_then_login(smtp_server: SmtpFactory, certificate: Certificate,
                             notification: Notification) -> None:
    rx = smtp_server(auth=True, starttls=certificate.server_context())
    notifier = EmailNotifier(config(rx.port, tls="starttls", username=USER, password=PASSWORD),
                             ssl_context=certificate.client_context())
    result = notifier.send(notification)
    assert result.ok, result
    assert len(rx.envelopes) == 1


def test_implicit_tls(smtp_server: SmtpFactory, certificate: Certificate, notification: Notification) -> None:
    rx = smtp_server(implicit_tls=certificate.server_context())
    notifier = EmailNotifier(config(rx.port, tls="ssl"), ssl_context=certificate.client_context())
    assert notifier.send(notification).ok
    assert len(rx.envelopes) == 1


def test_untrusted_certificate_is_not_retryable(smtp_server: SmtpFactory, certificate: Certificate,
                                                notification: Notification) -> None:
    rx = smtp_server(starttls=certificate.server_context())
    result = EmailNotifier(config(rx.port, tls="starttls")).send(notification)  # system trust store only
    assert not result.ok and not result.retryable and "certificate" in result.detail
    assert rx.envelopes == []
