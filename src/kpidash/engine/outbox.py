"""Durable delivery: every notification goes through the store's outbox.

``deliver_due`` sends what is due, records each outcome in the store before moving on, and
schedules retryable failures with exponential backoff. A crash between sending and recording
can at worst repeat one delivery, and the notification id travels as the receiver's
idempotency key; an item recorded as delivered is never sent again, and nothing queued is
lost across a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from kpidash.model import OutboxItem
from kpidash.notify.base import Notification, Notifier
from kpidash.store.base import Store


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int
    retrying: int
    failed: int


def backoff(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """Wait before attempt ``attempts + 1``: base × 2^(attempts − 1), at most ``cap``."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def deliver_due(store: Store, workspace: str, notifiers: Mapping[str, Notifier], now: datetime,
                *, max_attempts: int = 8, base_delay: timedelta = timedelta(seconds=30),
                max_delay: timedelta = timedelta(hours=1), limit: int = 100) -> DeliveryReport:
    delivered = retrying = failed = 0
    for item in store.due(workspace, now, limit):
        notifier = notifiers.get(item.channel)
        if notifier is None:
            store.record_delivery(workspace, item, "failed", now,
                                  error=f"no notification channel named {item.channel!r}")
            failed += 1
            continue
        try:
            result = notifier.send(Notification.from_payload(item.payload))
            ok, retryable, detail = result.ok, result.retryable, result.detail
        except Exception as exc:  # a channel bug must not lose the message
            ok, retryable, detail = False, True, f"{type(exc).__name__}: {exc}"
        attempts = item.attempts + 1
        if ok:
            store.record_delivery(workspace, item, "delivered", now)
            delivered += 1
        elif retryable and attempts < max_attempts:
            store.record_delivery(workspace, item, "pending", now,
                                  now + backoff(attempts, base_delay, max_delay), detail)
            retrying += 1
        else:
            store.record_delivery(workspace, item, "failed", now, error=detail)
            failed += 1
    return DeliveryReport(delivered, retrying, failed)


def queue(notifications: list[Notification], channels: list[str]) -> list[OutboxItem]:
    """Outbox items: every notification on every channel."""
    return [OutboxItem(n.id, c, n.to_payload()) for n in notifications for c in channels]
