"""Grouped notifications: one message carries every alert of an incident, in every channel."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kpidash.notify import (
    MAX_LISTED_ALERTS,
    AlertLine,
    EmailConfig,
    EmailNotifier,
    LogNotifier,
    Notification,
    Severity,
    Status,
    WebhookConfig,
    WebhookNotifier,
)
from kpidash.notify.email import subject

from .conftest import HOST, HttpReceiver, SmtpReceiver, make_notification

T0 = datetime(2024, 3, 1, 6, 30, tzinfo=UTC)


def line(i: int, **overrides: Any) -> AlertLine:
    fields: dict[str, Any] = {
        "fingerprint": f"fp-{i:03d}", "status": Status.FIRING, "severity": Severity.HIGH,
        "slice": {"region": f"R{i:03d}"}, "value": 40000.0 + i, "since": T0 + timedelta(minutes=i),
        "threshold": 50000.0,
    }
    return AlertLine(**(fields | overrides))


def group(firing: int, resolved: int = 0, **overrides: Any) -> Notification:
    alerts = [line(i) for i in range(firing)]
    alerts += [line(firing + i, status=Status.RESOLVED, severity=Severity.MEDIUM, value=51000.0)
               for i in range(resolved)]
    fields: dict[str, Any] = {"alerts": alerts, "reason": "update",
                              "summary": f"{firing} firing, {resolved} resolved"}
    return make_notification(**(fields | overrides))


INCIDENT = (
    line(0, severity=Severity.CRITICAL, slice={"region": "EU"}, value=41250.5),
    line(1, slice={"region": "US"}, threshold=None, expected_range=(45000.0, 55000.0),
         acknowledged_by="alice"),
    line(2, status=Status.RESOLVED, severity=Severity.LOW, slice={}, value=52000.0),
)


@pytest.fixture
def incident() -> Notification:
    # given resolved-first on purpose: the notification puts firing alerts first
    return make_notification(alerts=(INCIDENT[2], INCIDENT[0], INCIDENT[1]), reason="new",
                             summary="2 firing, 1 resolved")


EU_LINE = "[CRITICAL] FIRING region=EU: 41,250.5 $ (threshold 50,000 $), since 2024-03-01 06:30 UTC"
US_LINE = ("[HIGH] FIRING region=US: 40,001 $ (expected 45,000 $ – 55,000 $), since 2024-03-01 06:31 UTC, "
           "acked by alice")
ALL_LINE = "[LOW] RESOLVED all: 52,000 $ (threshold 50,000 $), since 2024-03-01 06:32 UTC"


# -- the model ----------------------------------------------------------------------------------


def test_alert_line_normalises_and_renders() -> None:
    a = AlertLine(fingerprint="x", status="resolved", severity="low",  # type: ignore[arg-type]
                  slice={"b": "2", "a": "1"}, value=3, since=T0, expected_range=(1, 5))  # type: ignore[arg-type]
    assert a.status is Status.RESOLVED and a.severity is Severity.LOW
    assert a.value == 3.0 and a.expected_range == (1.0, 5.0)
    assert a.render("%") == "[LOW] RESOLVED a=1, b=2: 3 % (expected 1 % – 5 %), since 2024-03-01 06:30 UTC"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [({"since": datetime(2024, 3, 1)}, "timezone-aware"), ({"fingerprint": ""}, "fingerprint"),
     ({"status": "open"}, "open")],
    ids=["naive-since", "empty-fingerprint", "bad-status"],
)
def test_alert_line_rejects_bad_inputs(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        line(0, **overrides)


def test_members_are_listed_firing_first(incident: Notification) -> None:
    assert [a.fingerprint for a in incident.alerts] == ["fp-000", "fp-001", "fp-002"]
    assert incident.alert_lines() == [EU_LINE, US_LINE, ALL_LINE]


def test_alerts_must_be_alert_lines() -> None:
    with pytest.raises(TypeError, match="AlertLine"):
        make_notification(alerts=({"fingerprint": "x"},))


def test_a_notification_without_members_renders_as_before(notification: Notification) -> None:
    assert notification.alerts == () and notification.reason == "" and notification.summary == ""
    assert "Alerts" not in notification.render_text() and "<ul>" not in notification.render_html()
    payload = notification.to_payload()
    assert payload["alerts"] == [] and payload["reason"] == "" and payload["summary"] == ""


# -- payload round trip -------------------------------------------------------------------------


def through_json(payload: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(payload, allow_nan=False))  # JSON has no NaN
    return loaded


def test_round_trip_is_exact(incident: Notification) -> None:
    payload = through_json(incident.to_payload())
    back = Notification.from_payload(payload)
    assert back == incident
    assert back.to_payload() == payload
    assert payload["reason"] == "new" and payload["summary"] == "2 firing, 1 resolved"
    assert payload["alerts"][1] == {
        "fingerprint": "fp-001", "status": "firing", "severity": "high", "slice": {"region": "US"},
        "value": 40001.0, "threshold": None, "expected_range": [45000.0, 55000.0],
        "since": "2024-03-01T06:31:00+00:00", "acknowledged_by": "alice"}


def test_round_trip_carries_non_finite_numbers_as_null_then_nan() -> None:
    n = make_notification(alerts=(line(0, value=math.nan, expected_range=(math.nan, 1.0), threshold=None),))
    payload = through_json(n.to_payload())
    assert payload["alerts"][0]["value"] is None and payload["alerts"][0]["expected_range"] == [None, 1.0]
    [member] = Notification.from_payload(payload).alerts
    assert math.isnan(member.value) and member.expected_range is not None
    assert math.isnan(member.expected_range[0]) and member.expected_range[1] == 1.0
    assert Notification.from_payload(payload).to_payload() == payload


def test_payloads_written_before_grouping_still_load(notification: Notification) -> None:
    old = notification.to_payload()
    for key in ("alerts", "reason", "summary"):
        del old[key]
    assert Notification.from_payload(old) == notification


# -- text and HTML ------------------------------------------------------------------------------


def test_text_lists_every_member(incident: Notification) -> None:
    text = incident.render_text()
    assert incident.headline == ("[CRITICAL] FIRING: Revenue — Revenue below threshold "
                                 "(2 firing, 1 resolved)")
    assert text.startswith(incident.headline + "\n")
    assert "Alerts: 2 firing, 1 resolved\nReason: new\n" in text
    assert f"Alerts in this group (3):\n  - {EU_LINE}\n  - {US_LINE}\n  - {ALL_LINE}\n" in text


def test_html_lists_every_member_escaped() -> None:
    n = make_notification(alerts=(line(0, slice={"team": "<b>A&B</b>"}, acknowledged_by="<eve>"),))
    rich = n.render_html()
    assert "<li>[HIGH] FIRING team=&lt;b&gt;A&amp;B&lt;/b&gt;: 40,000 $" in rich
    assert "acked by &lt;eve&gt;</li>" in rich and "<b>A&B</b>" not in rich


def test_renderings_cap_the_list_but_the_payload_keeps_everything() -> None:
    n = group(60, 5)
    text = n.render_text()
    listed = [t for t in text.splitlines() if t.startswith("  - ")]
    assert len(listed) == MAX_LISTED_ALERTS + 1 == 51
    assert listed[-1] == "  - … and 15 more"
    assert "Alerts in this group (65):" in text
    assert n.render_html().count("<li>") == 51 and "<li>… and 15 more</li>" in n.render_html()
    payload = n.to_payload()
    assert len(payload["alerts"]) == 65
    assert [a["status"] for a in payload["alerts"]] == ["firing"] * 60 + ["resolved"] * 5
    assert len(Notification.from_payload(through_json(payload)).alerts) == 65


def test_exactly_fifty_members_need_no_more_line() -> None:
    assert "more" not in "".join(group(50).alert_lines())


# -- every channel, through real servers --------------------------------------------------------


def test_webhook_json_carries_the_group(http_server: Callable[..., HttpReceiver],
                                        incident: Notification) -> None:
    rx = http_server()
    assert WebhookNotifier(WebhookConfig(url=rx.url)).send(incident).ok
    body = rx.requests[0].json()
    assert [a["fingerprint"] for a in body["alerts"]] == ["fp-000", "fp-001", "fp-002"]
    assert body["alerts"][1]["acknowledged_by"] == "alice"
    assert body["reason"] == "new" and body["summary"] == "2 firing, 1 resolved"
    assert EU_LINE in body["text"] and US_LINE in body["text"] and ALL_LINE in body["text"]
    assert Notification.from_payload(body) == incident


def test_slack_lists_the_members(http_server: Callable[..., HttpReceiver], incident: Notification) -> None:
    rx = http_server()
    assert WebhookNotifier(WebhookConfig(url=rx.url, format="slack")).send(incident).ok
    body = rx.requests[0].json()
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "actions", "context"]
    assert "(2 firing, 1 resolved)" in body["text"]
    members = body["blocks"][2]["text"]
    assert members["type"] == "mrkdwn"
    assert members["text"].splitlines() == ["*Alerts in this group (3)*", f"• {EU_LINE}", f"• {US_LINE}",
                                            f"• {ALL_LINE}"]
    fields = "\n".join(f["text"] for f in body["blocks"][1]["fields"])
    assert "2 firing, 1 resolved" in fields and "new" in fields


def _section_texts(body: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]


@pytest.mark.parametrize(("firing", "label_length", "sections"), [(60, 5, 2), (200, 120, 4), (20, 5, 1)],
                         ids=["count-cap", "size-cap", "no-cap"])
def test_slack_stays_within_its_limits(http_server: Callable[..., HttpReceiver], firing: int,
                                       label_length: int, sections: int) -> None:
    rx = http_server()
    alerts = [line(i, slice={"region": f"{i:03d}" + "x" * label_length}) for i in range(firing)]
    n = make_notification(alerts=alerts, summary=f"{firing} firing")
    assert WebhookNotifier(WebhookConfig(url=rx.url, format="slack")).send(n).ok
    body = rx.requests[0].json()
    texts = _section_texts(body)
    assert all(len(t) <= 3000 for t in texts)
    assert len(body["blocks"]) <= 50  # Slack's cap on blocks per message
    members = "\n".join(texts[1:]).splitlines()
    assert len(texts) == 1 + sections and members[0] == f"*Alerts in this group ({firing})*"
    bullets = [m for m in members if m.startswith("• ")]
    assert len(bullets) == min(firing, 50)
    assert bullets[0].startswith("• [HIGH] FIRING region=000")
    if firing > 50:
        assert members[-1] == f"… and {firing - 50} more"
    else:
        assert "more" not in members[-1]


def test_slack_cuts_one_huge_member_line(http_server: Callable[..., HttpReceiver]) -> None:
    rx = http_server()
    n = make_notification(alerts=[line(0, slice={"k": "v" * 5000}), line(1)])
    assert WebhookNotifier(WebhookConfig(url=rx.url, format="slack")).send(n).ok
    members = rx.requests[0].json()["blocks"][2]["text"]["text"].splitlines()
    assert len(members) == 3 and members[1].endswith("…") and len(members[1]) <= 302
    assert members[2].startswith("• [HIGH] FIRING region=R001")


def test_email_shows_the_members(smtp_server: Callable[..., SmtpReceiver], incident: Notification) -> None:
    rx = smtp_server()
    cfg = EmailConfig(host=HOST, port=rx.port, tls="none", timeout=2, from_addr="kpidash@example.com",
                      to=["ops@example.com"])
    assert EmailNotifier(cfg).send(incident).ok
    [msg] = rx.messages()
    assert msg["Subject"] == ("[kpidash] [CRITICAL] FIRING: Revenue — Revenue below threshold "
                              "(2 firing, 1 resolved)")
    assert subject(incident) == msg["Subject"]
    plain, rich = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and rich is not None
    for expected in (EU_LINE, US_LINE, ALL_LINE):
        assert f"  - {expected}" in plain.get_content()
    assert "<li>[HIGH] FIRING region=US:" in rich.get_content()
    assert "acked by alice</li>" in rich.get_content()


def test_email_caps_the_list(smtp_server: Callable[..., SmtpReceiver]) -> None:
    rx = smtp_server()
    cfg = EmailConfig(host=HOST, port=rx.port, tls="none", timeout=2, from_addr="kpidash@example.com",
                      to=["ops@example.com"])
    assert EmailNotifier(cfg).send(group(70, 3)).ok
    plain = rx.messages()[0].get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert text.count("\n  - [") == 50 and "  - … and 23 more" in text


def test_log_record_lists_the_members(caplog: pytest.LogCaptureFixture, incident: Notification) -> None:
    caplog.set_level(logging.DEBUG, logger="kpidash.notify")
    assert LogNotifier().send(incident).ok
    [record] = caplog.records
    assert record.getMessage().splitlines() == [incident.headline, f"  - {EU_LINE}", f"  - {US_LINE}",
                                                f"  - {ALL_LINE}"]
    payload = record.__dict__["notification"]
    assert len(payload["alerts"]) == 3 and payload["summary"] == "2 firing, 1 resolved"


def test_log_caps_the_list_but_the_record_keeps_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kpidash.notify")
    LogNotifier().send(group(55))
    [record] = caplog.records
    assert len(record.getMessage().splitlines()) == 1 + 50 + 1
    assert len(record.__dict__["notification"]["alerts"]) == 55
