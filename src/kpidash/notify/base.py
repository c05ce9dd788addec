"""The Notifier seam: what a notification says, what a delivery attempt reports, how to retry.

A notifier never raises for a failed delivery. It returns a :class:`DeliveryResult` that says
whether the failure is worth retrying (network errors, timeouts, HTTP 408/429/5xx, SMTP 4xx) or
not (other HTTP 4xx, SMTP 5xx, authentication and configuration problems), as Alertmanager's
notifiers do. The outbox that persists and retries deliveries builds on that flag; here
:func:`deliver_with_retry` is the in-process version of it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, wait_exponential

from kpidash.notify import formatting as fmt
from kpidash.notify.formatting import format_number, sparkline

__all__ = [  # format_number and sparkline are re-exported: they lived here first
    "MAX_LISTED_ALERTS", "AlertLine", "DeliveryResult", "Notification", "Notifier", "Severity", "Status",
    "deliver_with_retry", "format_number", "http_status_result", "smtp_code_result", "sparkline",
]


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


#: How many member alerts a rendering lists before "… and N more" (payloads keep them all).
MAX_LISTED_ALERTS = 50


@dataclass(frozen=True)
class AlertLine:
    """One member alert of a grouped notification (one slice of one rule, firing or resolved).

    ``since`` is timezone-aware: when the alert started firing, or when it resolved.
    ``acknowledged_by`` names who acknowledged a firing alert, if anyone did.
    """

    fingerprint: str
    status: Status
    severity: Severity
    slice: Mapping[str, str]
    value: float
    since: datetime
    threshold: float | None = None
    expected_range: tuple[float, float] | None = None
    acknowledged_by: str | None = None

    def __post_init__(self) -> None:
        if not self.fingerprint:
            raise ValueError("AlertLine.fingerprint identifies the alert and cannot be empty")
        if self.since.tzinfo is None:
            raise ValueError(f"AlertLine.since must be timezone-aware, got {self.since!r}")
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "slice", dict(self.slice))
        object.__setattr__(self, "value", float(self.value))
        if self.expected_range is not None:
            lo, hi = self.expected_range
            object.__setattr__(self, "expected_range", (float(lo), float(hi)))

    def slice_label(self) -> str:
        return fmt.slice_label(self.slice)

    def render(self, unit: str = "") -> str:
        """One readable line, e.g. ``[HIGH] FIRING region=EU: 41,250.5 $ (threshold 50,000 $),
        since 2024-03-01 06:30 UTC, acked by alice``."""
        value = format_number(self.value, unit)
        ref = fmt.reference_label(self.threshold, self.expected_range, unit)
        text = (f"[{self.severity.upper()}] {self.status.upper()} {self.slice_label()}: "
                f"{value}{f' ({ref})' if ref else ''}, since {fmt.since_label(self.since)}")
        if self.acknowledged_by:
            text += f", acked by {self.acknowledged_by}"
        return text

    def to_payload(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "status": self.status.value,
            "severity": self.severity.value,
            "slice": dict(self.slice),
            "value": fmt.json_number(self.value),
            "threshold": fmt.json_number(self.threshold),
            "expected_range": fmt.range_to_json(self.expected_range),
            "since": self.since.astimezone(UTC).isoformat(),
            "acknowledged_by": self.acknowledged_by,
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> AlertLine:
        return cls(
            fingerprint=p["fingerprint"], status=Status(p["status"]), severity=Severity(p["severity"]),
            slice=dict(p.get("slice") or {}), value=fmt.from_json_number(p.get("value")),
            since=datetime.fromisoformat(p["since"]), threshold=p.get("threshold"),
            expected_range=fmt.range_from_json(p.get("expected_range")),
            acknowledged_by=p.get("acknowledged_by"))


@dataclass(frozen=True)
class Notification:
    """Everything a person needs to act on an alert, without opening the dashboard.

    ``id`` is the idempotency key: the same alert transition always carries the same id, so a
    retried delivery can be de-duplicated by the receiver. ``recent`` is the last few values of the
    series, oldest first; ``expected_range`` is (low, high) for anomaly rules, ``threshold`` for
    threshold rules. ``since`` is timezone-aware.

    A grouped notification covers many alerts of one incident: ``alerts`` lists every member
    (firing first, then resolved), while the top-level fields describe the headline — most
    severe — alert. ``reason`` says why it was sent ("new", "update", "repeat") and ``summary``
    counts the members ("12 firing, 3 resolved"). Renderings list at most
    :data:`MAX_LISTED_ALERTS` members; the payload keeps them all.
    """

    id: str
    title: str
    severity: Severity
    status: Status
    kpi_id: str
    kpi_name: str
    value: float
    since: datetime
    rule_id: str
    group_key: str
    slice: Mapping[str, str] = field(default_factory=dict)
    threshold: float | None = None
    expected_range: tuple[float, float] | None = None
    recent: tuple[float, ...] = ()
    dashboard_url: str | None = None
    unit: str = ""
    alerts: tuple[AlertLine, ...] = ()
    reason: str = ""
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("Notification.id is the idempotency key and cannot be empty")
        if self.since.tzinfo is None:
            raise ValueError(f"Notification.since must be timezone-aware, got {self.since!r}")
        # Accept plain strings and lists from callers, store the canonical immutable forms.
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "slice", dict(self.slice))
        object.__setattr__(self, "recent", tuple(float(v) for v in self.recent))
        for line in self.alerts:
            if not isinstance(line, AlertLine):
                raise TypeError(f"Notification.alerts holds AlertLine objects, got {type(line).__name__}")
        # Firing first, then resolved; the caller's order is kept within each (a stable sort).
        object.__setattr__(self, "alerts", tuple(
            sorted(self.alerts, key=lambda a: a.status is not Status.FIRING)))

    # -- pieces shared by every rendering -------------------------------------------------

    @property
    def headline(self) -> str:
        text = f"[{self.severity.upper()}] {self.status.upper()}: {self.kpi_name} — {self.title}"
        return f"{text} ({self.summary})" if self.summary else text

    def slice_label(self) -> str:
        return fmt.slice_label(self.slice)

    def reference_label(self) -> str | None:
        return fmt.reference_label(self.threshold, self.expected_range, self.unit)

    def since_label(self) -> str:
        return fmt.since_label(self.since)

    def alert_lines(self, limit: int = MAX_LISTED_ALERTS) -> list[str]:
        """The member alerts, one line each, at most ``limit`` then "… and N more"."""
        lines = [a.render(self.unit) for a in self.alerts[:limit]]
        if len(self.alerts) > limit:
            lines.append(fmt.more_line(len(self.alerts) - limit))
        return lines

    def sparkline(self) -> str:
        return sparkline(self.recent)

    def fields(self) -> list[tuple[str, str]]:
        """(label, value) rows in display order; every rendering is built from these."""
        value = format_number(self.value, self.unit)
        ref = self.reference_label()
        rows = [
            ("KPI", f"{self.kpi_name} ({self.kpi_id})"),
            ("Slice", self.slice_label()),
            ("Value", f"{value} ({ref})" if ref else value),
            ("Since", self.since_label()),
        ]
        if self.recent:
            rows.append(("Recent", f"{self.sparkline()} ({len(self.recent)} points)"))
        if self.alerts:
            rows.append(("Alerts", self.summary or f"{len(self.alerts)} alert(s)"))
        if self.reason:
            rows.append(("Reason", self.reason))
        rows += [("Rule", self.rule_id), ("Group", self.group_key)]
        if self.dashboard_url:
            rows.append(("Dashboard", self.dashboard_url))
        rows.append(("Notification id", self.id))
        return rows

    def render_text(self) -> str:
        lines = [self.headline, ""]
        lines += [f"{label}: {value}" for label, value in self.fields()]
        if self.alerts:
            lines += ["", f"Alerts in this group ({len(self.alerts)}):"]
            lines += [f"  - {line}" for line in self.alert_lines()]
        return "\n".join(lines) + "\n"

    def render_html(self) -> str:
        esc = html.escape
        rows = []
        for label, value in self.fields():
            cell = esc(value)
            if label == "Dashboard":
                cell = f'<a href="{esc(value, quote=True)}">{cell}</a>'
            rows.append(f"<tr><th align=\"left\">{esc(label)}</th><td>{cell}</td></tr>")
        members = ""
        if self.alerts:
            items = "".join(f"<li>{esc(line)}</li>" for line in self.alert_lines())
            members = f"<h3>Alerts in this group ({len(self.alerts)})</h3><ul>{items}</ul>"
        return (
            "<!DOCTYPE html><html><body>"
            f"<h2>{esc(self.headline)}</h2>"
            f"<table cellpadding=\"4\">{''.join(rows)}</table>"
            f"{members}"
            "</body></html>"
        )

    def to_payload(self) -> dict[str, Any]:
        """A JSON-serialisable description (no NaN: non-finite numbers become null)."""
        return {
            "version": 1,
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "status": self.status.value,
            "kpi": {"id": self.kpi_id, "name": self.kpi_name, "unit": self.unit},
            "slice": dict(self.slice),
            "value": fmt.json_number(self.value),
            "threshold": fmt.json_number(self.threshold),
            "expected_range": fmt.range_to_json(self.expected_range),
            "since": self.since.astimezone(UTC).isoformat(),
            "recent": [fmt.json_number(v) for v in self.recent],
            "sparkline": self.sparkline(),
            "dashboard_url": self.dashboard_url,
            "rule_id": self.rule_id,
            "group_key": self.group_key,
            "reason": self.reason,
            "summary": self.summary,
            "alerts": [a.to_payload() for a in self.alerts],
            "text": self.render_text(),
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> Notification:
        """The inverse of :meth:`to_payload` (how the outbox stores a notification)."""
        return cls(
            id=p["id"], title=p["title"], severity=Severity(p["severity"]),
            status=Status(p["status"]), kpi_id=p["kpi"]["id"], kpi_name=p["kpi"]["name"],
            unit=p["kpi"].get("unit", ""), slice=dict(p.get("slice") or {}),
            value=fmt.from_json_number(p.get("value")),
            threshold=p.get("threshold"),
            expected_range=fmt.range_from_json(p.get("expected_range")),
            since=datetime.fromisoformat(p["since"]),
            recent=tuple(fmt.from_json_number(v) for v in p.get("recent") or ()),
            dashboard_url=p.get("dashboard_url"), rule_id=p["rule_id"],
            group_key=p["group_key"],
            alerts=tuple(AlertLine.from_payload(a) for a in p.get("alerts") or ()),
            reason=p.get("reason", ""), summary=p.get("summary", ""))


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery attempt. ``retryable`` is meaningful only when not ``ok``."""

    ok: bool
    retryable: bool
    detail: str
    status_code: int | None = None

    @classmethod
    def success(cls, detail: str = "delivered", status_code: int | None = None) -> DeliveryResult:
        return cls(ok=True, retryable=False, detail=detail, status_code=status_code)

    @classmethod
    def failure(cls, detail: str, *, retryable: bool, status_code: int | None = None) -> DeliveryResult:
        return cls(ok=False, retryable=retryable, detail=detail, status_code=status_code)


@runtime_checkable
class Notifier(Protocol):
    """A delivery channel. ``send`` returns a result for every delivery failure; it never raises one."""

    @property
    def name(self) -> str: ...

    def send(self, n: Notification) -> DeliveryResult: ...


RETRYABLE_HTTP = frozenset({408, 425, 429})


def http_status_result(status: int, body: str = "") -> DeliveryResult:
    """Classify an HTTP response: 2xx ok; 408/425/429 and 5xx retryable; everything else not."""
    snippet = body.strip().replace("\n", " ")[:200]
    detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if 200 <= status < 300:
        return DeliveryResult.success(detail, status)
    retryable = status in RETRYABLE_HTTP or status >= 500
    return DeliveryResult.failure(detail, retryable=retryable, status_code=status)


def smtp_code_result(code: int, message: str) -> DeliveryResult:
    """Classify an SMTP reply: 4xx transient (retryable), 5xx permanent (not)."""
    detail = f"SMTP {code}: {message}"
    return DeliveryResult.failure(detail, retryable=400 <= code < 500, status_code=code)


def deliver_with_retry(
    notifier: Notifier,
    n: Notification,
    *,
    attempts: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    """Send ``n``, retrying retryable failures with exponential backoff; return the last result.

    Waits ``base_delay * 2**k`` seconds (capped at ``max_delay``) before retry ``k + 1``. A
    non-retryable failure stops at once. Exceptions (bugs, not delivery failures) propagate.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")

    def last_result(state: RetryCallState) -> DeliveryResult:
        assert state.outcome is not None
        result: DeliveryResult = state.outcome.result()
        return result

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=base_delay, min=0, max=max_delay),
        retry=retry_if_result(lambda r: not r.ok and r.retryable),
        sleep=sleep,
        retry_error_callback=last_result,
        reraise=True,
    )
    result: DeliveryResult = retrying(notifier.send, n)
    return result
