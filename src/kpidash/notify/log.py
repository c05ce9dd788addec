"""Log channel: one structured record per notification through Python logging."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kpidash.notify.base import DeliveryResult, Notification, Severity
from kpidash.notify.config import validate_config

LEVEL_BY_SEVERITY = {
    Severity.LOW: logging.INFO,
    Severity.MEDIUM: logging.WARNING,
    Severity.HIGH: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}


class LogConfig(BaseModel):
    """``level`` fixes the log level; by default it follows the notification's severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["log"] = "log"
    name: str = Field(default="log", min_length=1)
    logger: str = Field(default="kpidash.notify", min_length=1)
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None


class LogNotifier:
    """The record's message is the headline, then one line per member alert of a grouped
    notification (at most 50); ``record.notification`` holds the full payload."""

    def __init__(self, config: LogConfig | None = None) -> None:
        self.config = config or LogConfig()
        self._logger = logging.getLogger(self.config.logger)

    @property
    def name(self) -> str:
        return self.config.name

    def send(self, n: Notification) -> DeliveryResult:
        level = (logging.getLevelNamesMapping()[self.config.level] if self.config.level
                 else LEVEL_BY_SEVERITY[n.severity])
        payload = n.to_payload()
        del payload["text"]  # the message already says it; handlers format the rest
        message = "\n".join([n.headline, *(f"  - {line}" for line in n.alert_lines())])
        self._logger.log(level, "%s", message, extra={
            "notification": payload,
            "notification_id": n.id,
            "kpi_id": n.kpi_id,
            "severity": n.severity.value,
            "alert_status": n.status.value,
        })
        return DeliveryResult.success(f"logged to {self.config.logger!r}")


def from_config(config: Mapping[str, Any]) -> LogNotifier:
    """The ``kpidash.notifiers`` entry-point factory of the 'log' channel type."""
    return LogNotifier(validate_config(LogConfig, config, where='log'))
