"""Notification channels behind one :class:`Notifier` protocol.

Build a channel from declarative config with :func:`build_notifier`::

    build_notifier({"type": "webhook", "url": "https://hooks.example.com/x", "format": "slack"})

or every channel of a YAML channels file with :func:`load_channels`. Channel types beyond the
built-in webhook, email and log come from plugins registered under the ``kpidash.notifiers``
entry-point group (see :mod:`kpidash.notify.plugins`).
"""

from __future__ import annotations

from kpidash.notify.base import (
    MAX_LISTED_ALERTS,
    AlertLine,
    DeliveryResult,
    Notification,
    Notifier,
    Severity,
    Status,
    deliver_with_retry,
    sparkline,
)
from kpidash.notify.channels import load_channels
from kpidash.notify.email import EmailConfig, EmailNotifier
from kpidash.notify.log import LogConfig, LogNotifier
from kpidash.notify.plugins import (
    GROUP,
    NotifierConfig,
    NotifierFactory,
    build_notifier,
    known_types,
    parse_notifier_config,
)
from kpidash.notify.webhook import WebhookConfig, WebhookNotifier

__all__ = [
    "GROUP",
    "MAX_LISTED_ALERTS",
    "AlertLine",
    "DeliveryResult",
    "EmailConfig",
    "EmailNotifier",
    "LogConfig",
    "LogNotifier",
    "Notification",
    "Notifier",
    "NotifierConfig",
    "NotifierFactory",
    "Severity",
    "Status",
    "WebhookConfig",
    "WebhookNotifier",
    "build_notifier",
    "deliver_with_retry",
    "known_types",
    "load_channels",
    "parse_notifier_config",
    "sparkline",
]
