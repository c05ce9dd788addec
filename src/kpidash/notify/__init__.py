"""Notification channels behind one :class:`Notifier` protocol.

Build a channel from declarative config with :func:`build_notifier`::

    build_notifier({"type": "webhook", "url": "https://hooks.example.com/x", "format": "slack"})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from kpidash.errors import ConfigError
from kpidash.notify.base import (
    DeliveryResult,
    Notification,
    Notifier,
    Severity,
    Status,
    deliver_with_retry,
    sparkline,
)
from kpidash.notify.email import EmailConfig, EmailNotifier
from kpidash.notify.log import LogConfig, LogNotifier
from kpidash.notify.webhook import WebhookConfig, WebhookNotifier

__all__ = [
    "DeliveryResult",
    "EmailConfig",
    "EmailNotifier",
    "LogConfig",
    "LogNotifier",
    "Notification",
    "Notifier",
    "NotifierConfig",
    "Severity",
    "Status",
    "WebhookConfig",
    "WebhookNotifier",
    "build_notifier",
    "deliver_with_retry",
    "parse_notifier_config",
    "sparkline",
]

NotifierConfig = Annotated[WebhookConfig | EmailConfig | LogConfig, Field(discriminator="type")]
_ADAPTER: TypeAdapter[WebhookConfig | EmailConfig | LogConfig] = TypeAdapter(NotifierConfig)
_SECRET_FIELDS = frozenset({"password", "token"})


def _describe(error: Mapping[str, Any], where: str) -> str:
    parts = [str(p) for p in error["loc"]]
    message = str(error["msg"])
    value = error.get("input")
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        parts, message = ["type"], "expected 'type' to be one of 'webhook', 'email', 'log'"
        value = error.get("ctx", {}).get("tag")
        if value is None:
            message += "; no 'type' was given"
    else:
        parts = parts[1:]  # the first part is the union tag ("email"), already known
    message = message.removeprefix("Value error, ")
    path = ".".join([where, *parts])
    # Never echo secrets, nor whole mappings (a model-level error's input holds every field).
    hidden = (bool(_SECRET_FIELDS & set(parts)) or value is None or isinstance(value, Mapping)
              or error["type"] == "missing")
    shown = "" if hidden or "got " in message else f" (got {value!r})"
    return f"  {path}: {message}{shown}"


def parse_notifier_config(config: Mapping[str, Any], *, where: str = "notify") -> NotifierConfig:
    """Validate a YAML-like mapping; raise one ConfigError listing every problem found."""
    try:
        return _ADAPTER.validate_python(dict(config))
    except ValidationError as exc:
        problems = [_describe(e, where) for e in exc.errors(include_url=False)]
        raise ConfigError(
            f"notifier config {where!r} has {len(problems)} problem(s):\n" + "\n".join(problems)
        ) from None


def build_notifier(config: Mapping[str, Any] | NotifierConfig, *, where: str = "notify") -> Notifier:
    """The channel a config describes; ``config["type"]`` is "webhook", "email" or "log"."""
    parsed = config if isinstance(config, WebhookConfig | EmailConfig | LogConfig) else (
        parse_notifier_config(config, where=where))
    if isinstance(parsed, WebhookConfig):
        return WebhookNotifier(parsed)
    if isinstance(parsed, EmailConfig):
        return EmailNotifier(parsed)
    return LogNotifier(parsed)
