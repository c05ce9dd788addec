"""The Notifier seam: what a notification says, what a delivery attempt reports, how to retry.

A notifier never raises for a failed delivery. It returns a :class:`DeliveryResult` that says
whether the failure is worth retrying (network errors, timeouts, HTTP 408/429/5xx, SMTP 4xx) or
not (other HTTP 4xx, SMTP 5xx, authentication and configuration problems), as Alertmanager's
notifiers do. The outbox that persists and retries deliveries builds on that flag; here
:func:`deliver_with_retry` is the in-process version of it.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, wait_exponential


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


SPARK_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, scaled between the series' min and max; NaN/inf shows as a space."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    top = len(SPARK_BARS) - 1
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(" ")
        elif hi == lo:
            out.append(SPARK_BARS[top // 2])
        else:
            out.append(SPARK_BARS[round((v - lo) / (hi - lo) * top)])
    return "".join(out)


def format_number(value: float | None, unit: str = "") -> str:
    """Readable number: thousands separators for large values, 4 significant digits otherwise."""
    if value is None or not math.isfinite(value):
        text = "n/a" if value is None else str(value)
    elif abs(value) >= 1000 or float(value).is_integer():
        text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    else:
        text = f"{value:.4g}"
    return f"{text} {unit}".rstrip() if unit else text


def _json_number(value: float | None) -> float | None:
    """JSON has no NaN or infinity; they travel as null."""
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Notification:
    """Everything a person needs to act on an alert, without opening the dashboard.

    ``id`` is the idempotency key: the same alert transition always carries the same id, so a
    retried delivery can be de-duplicated by the receiver. ``recent`` is the last few values of the
    series, oldest first; ``expected_range`` is (low, high) for anomaly rules, ``threshold`` for
    threshold rules. ``since`` is timezone-aware.
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

    # -- pieces shared by every rendering -------------------------------------------------

    @property
    def headline(self) -> str:
        return f"[{self.severity.upper()}] {self.status.upper()}: {self.kpi_name} — {self.title}"

    def slice_label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.slice.items())) or "all"

    def reference_label(self) -> str | None:
        if self.threshold is not None:
            return f"threshold {format_number(self.threshold, self.unit)}"
        if self.expected_range is not None:
            lo, hi = self.expected_range
            return f"expected {format_number(lo, self.unit)} – {format_number(hi, self.unit)}"
        return None

    def since_label(self) -> str:
        return self.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

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
        rows += [("Rule", self.rule_id), ("Group", self.group_key)]
        if self.dashboard_url:
            rows.append(("Dashboard", self.dashboard_url))
        rows.append(("Notification id", self.id))
        return rows

    def render_text(self) -> str:
        lines = [self.headline, ""]
        lines += [f"{label}: {value}" for label, value in self.fields()]
        return "\n".join(lines) + "\n"

    def render_html(self) -> str:
        esc = html.escape
        rows = []
        for label, value in self.fields():
            cell = esc(value)
            if label == "Dashboard":
                cell = f'<a href="{esc(value, quote=True)}">{cell}</a>'
            rows.append(f"<tr><th align=\"left\">{esc(label)}</th><td>{cell}</td></tr>")
        return (
            "<!DOCTYPE html><html><body>"
            f"<h2>{esc(self.headline)}</h2>"
            f"<table cellpadding=\"4\">{''.join(rows)}</table>"
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
            "value": _json_number(self.value),
            "threshold": _json_number(self.threshold),
            "expected_range": (
                [_json_number(v) for v in self.expected_range] if self.expected_range else None
            ),
            "since": self.since.astimezone(UTC).isoformat(),
            "recent": [_json_number(v) for v in self.recent],
            "sparkline": self.sparkline(),
            "dashboard_url": self.dashboard_url,
            "rule_id": self.rule_id,
            "group_key": self.group_key,
            "text": self.render_text(),
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> Notification:
        """The inverse of :meth:`to_payload` (how the outbox stores a notification)."""
        rng = p.get("expected_range")
        nan = float("nan")
        return cls(
            id=p["id"], title=p["title"], severity=Severity(p["severity"]),
            status=Status(p["status"]), kpi_id=p["kpi"]["id"], kpi_name=p["kpi"]["name"],
            unit=p["kpi"].get("unit", ""), slice=dict(p.get("slice") or {}),
            value=nan if p.get("value") is None else float(p["value"]),
            threshold=p.get("threshold"),
            expected_range=(None if rng is None else (
                nan if rng[0] is None else float(rng[0]), nan if rng[1] is None else float(rng[1]))),
            since=datetime.fromisoformat(p["since"]),
            recent=tuple(nan if v is None else float(v) for v in p.get("recent") or ()),
            dashboard_url=p.get("dashboard_url"), rule_id=p["rule_id"],
            group_key=p["group_key"])


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
