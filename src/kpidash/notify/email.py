"""Email channel over SMTP (smtplib): plain text with an HTML alternative."""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from kpidash.clock import Clock, SystemClock
from kpidash.notify.base import DeliveryResult, Notification, smtp_code_result
from kpidash.notify.config import validate_config


def _check_address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        raise ValueError(f"expected an email address like ops@example.com, got {value!r}")
    return value


class EmailConfig(BaseModel):
    """``tls``: "starttls" (upgrade after connecting), "ssl" (implicit TLS, port 465) or "none".

    ``sender`` and ``recipients`` are accepted as other names for ``from_addr`` and ``to``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["email"] = "email"
    name: str = Field(default="email", min_length=1)
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_addr: str = Field(validation_alias=AliasChoices("from_addr", "sender"))
    to: list[str] = Field(min_length=1, validation_alias=AliasChoices("to", "recipients"))
    subject_prefix: str = "[kpidash]"
    timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("from_addr")
    @classmethod
    def _from_is_address(cls, v: str) -> str:
        return _check_address(v)

    @field_validator("to")
    @classmethod
    def _to_are_addresses(cls, v: list[str]) -> list[str]:
        return [_check_address(a) for a in v]

    @model_validator(mode="after")
    def _login_needs_both(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both to log in, or neither")
        return self


_MSGID_SAFE = re.compile(r"[A-Za-z0-9._-]{1,100}")


def message_id(n: Notification, domain: str) -> str:
    """The Message-ID of a notification's email: the same for every attempt of it, so a
    re-sent message (the answer to DATA was lost, and the outbox retried) is recognisably the
    same one — mail systems and clients drop duplicates by this header. The notification id
    is used as it is when it is a safe atom, else its SHA-256."""
    local = n.id if _MSGID_SAFE.fullmatch(n.id) else hashlib.sha256(n.id.encode()).hexdigest()
    return f"<kpidash.{local}@{domain}>"


def subject(n: Notification, prefix: str = "[kpidash]") -> str:
    return f"{prefix} {n.headline}".strip()


class EmailNotifier:
    """Sends one message per notification to every address in ``config.to``."""

    def __init__(self, config: EmailConfig, *, clock: Clock | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self._clock = clock or SystemClock()
        self._ssl_context = ssl_context

    @property
    def name(self) -> str:
        return self.config.name

    def message(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = subject(n, self.config.subject_prefix)
        msg["From"] = self.config.from_addr
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = format_datetime(self._clock.now())
        msg["Message-ID"] = message_id(n, self.config.from_addr.rpartition("@")[2])
        msg["X-Kpidash-Notification-Id"] = n.id
        msg["X-Kpidash-Severity"] = n.severity.value
        msg["X-Kpidash-Status"] = n.status.value
        msg.set_content(n.render_text())
        msg.add_alternative(n.render_html(), subtype="html")
        return msg

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        context = self._ssl_context or ssl.create_default_context()
        if cfg.tls == "ssl":
            return smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        try:
            if cfg.tls == "starttls":
                smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, n: Notification) -> DeliveryResult:
        cfg = self.config
        where = f"{cfg.host}:{cfg.port}"
        try:
            with self._connect() as smtp:
                if cfg.username is not None and cfg.password is not None:
                    smtp.login(cfg.username, cfg.password.get_secret_value())
                refused = smtp.send_message(self.message(n))
        except smtplib.SMTPAuthenticationError as exc:
            reason = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            return DeliveryResult.failure(f"SMTP login to {where} failed: {reason}",
                                          retryable=False, status_code=exc.smtp_code)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {code} {_text(m)}" for rcpt, (code, m) in exc.recipients.items())
            return DeliveryResult.failure(f"all recipients refused by {where}: {detail}",
                                          retryable=all(400 <= c < 500 for c in codes),
                                          status_code=max(codes) if codes else None)
        except smtplib.SMTPResponseException as exc:
            return smtp_code_result(exc.smtp_code, _text(exc.smtp_error))
        except smtplib.SMTPNotSupportedError as exc:
            return DeliveryResult.failure(f"{where} does not support what the config asks "
                                          f"(tls={cfg.tls!r}, login): {exc}", retryable=False)
        except smtplib.SMTPServerDisconnected as exc:
            return DeliveryResult.failure(f"{where} disconnected: {exc}", retryable=True)
        except ssl.SSLCertVerificationError as exc:
            return DeliveryResult.failure(f"TLS certificate of {where} rejected: {exc}", retryable=False)
        except smtplib.SMTPException as exc:
            return DeliveryResult.failure(f"SMTP error with {where}: {type(exc).__name__}: {exc}",
                                          retryable=True)
        except OSError as exc:  # refused, unreachable, DNS, timeouts (TimeoutError is an OSError)
            return DeliveryResult.failure(f"network error reaching {where}: {type(exc).__name__}: {exc}",
                                          retryable=True)
        if refused:
            # Some recipients got it: a retry duplicates it for them, so report it delivered.
            names = ", ".join(f"{r} ({code})" for r, (code, _) in refused.items())
            return DeliveryResult.success(f"delivered to {len(cfg.to) - len(refused)} of "
                                          f"{len(cfg.to)} recipients; refused: {names}", 250)
        return DeliveryResult.success(f"delivered to {len(cfg.to)} recipient(s) via {where}", 250)


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def from_config(config: Mapping[str, Any]) -> EmailNotifier:
    """The ``kpidash.notifiers`` entry-point factory of the 'email' channel type."""
    return EmailNotifier(validate_config(EmailConfig, config, where='email'))
