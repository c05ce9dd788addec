"""Log channel: one structured record per notification."""

from __future__ import annotations

import logging

import pytest

from kpidash.notify import LogConfig, LogNotifier, Notification, Severity

from .conftest import make_notification


@pytest.mark.parametrize(
    ("severity", "level"),
    [(Severity.LOW, logging.INFO), (Severity.MEDIUM, logging.WARNING), (Severity.HIGH, logging.ERROR),
     (Severity.CRITICAL, logging.CRITICAL)],
    ids=lambda v: str(v),
)
def test_level_follows_severity(severity: Severity, level: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kpidash.notify")
    assert LogNotifier().send(make_notification(severity=severity)).ok
    [record] = caplog.records
    assert record.levelno == level


def test_record_is_structured(caplog: pytest.LogCaptureFixture, notification: Notification) -> None:
    caplog.set_level(logging.DEBUG, logger="audit")
    LogNotifier(LogConfig(logger="audit", level="INFO")).send(notification)
    [record] = caplog.records
    assert record.name == "audit" and record.levelno == logging.INFO
    assert record.getMessage() == notification.headline
    payload = record.__dict__["notification"]
    assert payload["id"] == "ntf-0001" and payload["slice"] == {"region": "EU", "plan": "pro"}
    assert "text" not in payload
    assert record.__dict__["notification_id"] == "ntf-0001"
    assert record.__dict__["kpi_id"] == "revenue"
