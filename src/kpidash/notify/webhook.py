"""Generic HTTP webhook channel (JSON payload, or a Slack-compatible body) over httpx."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

from kpidash.notify.base import MAX_LISTED_ALERTS, DeliveryResult, Notification, http_status_result
from kpidash.notify.config import validate_config
from kpidash.notify.formatting import more_line

_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)
USER_AGENT = "kpidash-notify/1"
SLACK_EMOJI = {"low": ":information_source:", "medium": ":warning:", "high": ":rotating_light:",
               "critical": ":fire:"}


class WebhookConfig(BaseModel):
    """``token`` is sent as ``Authorization: Bearer …``; ``timeout`` is in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["webhook"] = "webhook"
    name: str = Field(default="webhook", min_length=1)
    url: str
    format: Literal["json", "slack"] = "json"
    headers: dict[str, str] = Field(default_factory=dict)
    token: SecretStr | None = None
    timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, v: str) -> str:
        _HTTP_URL.validate_python(v)  # raises with pydantic's own message; the string is kept as given
        return v


def slack_escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SLACK_SECTION_LIMIT = 3000  # characters of text in one section block
SLACK_LINE_LIMIT = 300  # a member line longer than this is cut


def slack_alert_sections(n: Notification, limit: int = SLACK_SECTION_LIMIT) -> list[str]:
    """The member alerts as mrkdwn texts of at most ``limit`` characters each, one per section.

    Lists at most :data:`MAX_LISTED_ALERTS` alerts (each line cut to ``SLACK_LINE_LIMIT``), then
    "… and N more"; that makes a handful of sections at most.
    """
    lines = ["• " + slack_escape(_cut(a.render(n.unit), SLACK_LINE_LIMIT))
             for a in n.alerts[:MAX_LISTED_ALERTS]]
    if len(n.alerts) > MAX_LISTED_ALERTS:
        lines.append(more_line(len(n.alerts) - MAX_LISTED_ALERTS))
    sections = [f"*Alerts in this group ({len(n.alerts)})*"]
    for line in lines:
        if len(sections[-1]) + 1 + len(line) > limit:
            sections.append(line)
        else:
            sections[-1] += "\n" + line
    return sections


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_body(n: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` is the fallback, ``blocks`` the rich layout."""
    emoji = SLACK_EMOJI[n.severity.value]
    header = f"{n.status.upper()}: {n.kpi_name} — {n.title}"[:150]  # Slack caps header text at 150
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{slack_escape(value)}"[:2000]}
        for label, value in n.fields()
        if label not in ("Dashboard", "Notification id")
    ][:10]  # Slack allows at most 10 fields per section
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} *{n.severity.upper()}*"},
         "fields": fields},
    ]
    if n.alerts:
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": text}}
                   for text in slack_alert_sections(n)]
    if n.dashboard_url:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"},
             "url": n.dashboard_url}]})
    context = slack_escape(f"rule `{n.rule_id}` · group `{n.group_key}` · id `{n.id}`")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": f"{emoji} {slack_escape(n.headline)}", "blocks": blocks}


class WebhookNotifier:
    """POSTs each notification as JSON. ``transport`` is for tests (e.g. ``httpx.MockTransport``)."""

    def __init__(self, config: WebhookConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport

    @property
    def name(self) -> str:
        return self.config.name

    def body(self, n: Notification) -> dict[str, Any]:
        return slack_body(n) if self.config.format == "slack" else n.to_payload()

    def headers(self, n: Notification) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **self.config.headers, "Idempotency-Key": n.id}
        if self.config.token is not None:
            headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"
        return headers

    def send(self, n: Notification) -> DeliveryResult:
        url = self.config.url
        # A client per send: alerts are rare, and nothing is left open between deliveries.
        try:
            with httpx.Client(transport=self._transport, timeout=self.config.timeout,
                              follow_redirects=False) as client:
                response = client.post(url, json=self.body(n), headers=self.headers(n))
        except httpx.TimeoutException as exc:
            return DeliveryResult.failure(f"timeout after {self.config.timeout}s posting to {url}: "
                                          f"{type(exc).__name__}", retryable=True)
        except httpx.TransportError as exc:
            return DeliveryResult.failure(f"network error posting to {url}: {type(exc).__name__}: {exc}",
                                          retryable=True)
        except httpx.HTTPError as exc:
            return DeliveryResult.failure(f"HTTP error posting to {url}: {type(exc).__name__}: {exc}",
                                          retryable=False)
        return http_status_result(response.status_code, response.text)


def from_config(config: Mapping[str, Any]) -> WebhookNotifier:
    """The ``kpidash.notifiers`` entry-point factory of the 'webhook' channel type."""
    return WebhookNotifier(validate_config(WebhookConfig, config, where='webhook'))
