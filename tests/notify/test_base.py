"""Notification rendering, sparkline and result classification helpers."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from kpidash.notify import Severity, Status, sparkline
from kpidash.notify.base import format_number, http_status_result, smtp_code_result

from .conftest import make_notification


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], ""),
        ([1, 2, 3, 4, 5, 6, 7, 8], "▁▂▃▄▅▆▇█"),
        ([5, 5, 5], "▄▄▄"),
        ([0, math.nan, 10], "▁ █"),
        ([math.nan], " "),
        ([10, 0], "█▁"),
    ],
    ids=["empty", "ramp", "flat", "gap", "all-nan", "down"],
)
def test_sparkline(values: list[float], expected: str) -> None:
    assert sparkline(values) == expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [(64230.8, "$", "64,230.8 $"), (1200.0, "", "1,200"), (0.12345, "%", "0.1235 %"), (None, "", "n/a"),
     (math.nan, "", "nan"), (3.0, "", "3")],
)
def test_format_number(value: float | None, unit: str, expected: str) -> None:
    assert format_number(value, unit) == expected


def test_notification_normalises_inputs() -> None:
    n = make_notification(severity="high", status="resolved", recent=[1, 2], slice={"b": "2", "a": "1"})
    assert n.severity is Severity.HIGH and n.status is Status.RESOLVED
    assert n.recent == (1.0, 2.0)
    assert n.slice_label() == "a=1, b=2"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [({"since": datetime(2024, 3, 1)}, "timezone-aware"), ({"id": ""}, "idempotency key"),
     ({"severity": "urgent"}, "urgent")],
    ids=["naive-since", "empty-id", "bad-severity"],
)
def test_notification_rejects_bad_inputs(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_notification(**overrides)


def test_whole_slice_and_no_reference() -> None:
    text = make_notification(slice={}, threshold=None, dashboard_url=None).render_text()
    assert "Slice: all" in text and "Value: 41,250.5 $\n" in text and "Dashboard" not in text


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [(200, True, False), (204, True, False), (302, False, False), (400, False, False),
     (404, False, False), (408, False, True), (425, False, True), (429, False, True),
     (500, False, True), (599, False, True)],
    ids=lambda v: str(v),
)
def test_http_status_result(status: int, ok: bool, retryable: bool) -> None:
    result = http_status_result(status, "body\ntext")
    assert (result.ok, result.retryable, result.status_code) == (ok, retryable, status)
    assert result.detail == f"HTTP {status}: body text"


@pytest.mark.parametrize(("code", "retryable"), [(421, True), (451, True), (550, False), (554, False)])
def test_smtp_code_result(code: int, retryable: bool) -> None:
    result = smtp_code_result(code, "why")
    assert not result.ok and result.retryable is retryable and result.detail == f"SMTP {code}: why"
