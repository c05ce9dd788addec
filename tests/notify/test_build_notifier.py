"""build_notifier: declarative config in, a channel out; every problem reported at once."""

from __future__ import annotations

from typing import Any

import pytest

from kpidash.errors import ConfigError
from kpidash.notify import (
    EmailConfig,
    EmailNotifier,
    LogNotifier,
    Notifier,
    WebhookConfig,
    WebhookNotifier,
    build_notifier,
)


@pytest.mark.parametrize(
    ("config", "cls"),
    [
        ({"type": "webhook", "url": "https://hooks.example.com/x", "format": "slack"}, WebhookNotifier),
        ({"type": "email", "host": "smtp.example.com", "from_addr": "a@example.com", "to": ["b@example.com"],
          "username": "u", "password": "p"}, EmailNotifier),
        ({"type": "log"}, LogNotifier),
        ({"type": "log", "name": "audit", "logger": "audit.alerts", "level": "INFO"}, LogNotifier),
    ],
    ids=["webhook", "email", "log", "log-custom"],
)
def test_builds_each_channel(config: dict[str, Any], cls: type) -> None:
    notifier = build_notifier(config)
    assert isinstance(notifier, cls) and isinstance(notifier, Notifier)
    assert notifier.name == config.get("name", config["type"])


def test_accepts_an_already_parsed_config() -> None:
    cfg = WebhookConfig(url="https://hooks.example.com/x")
    assert isinstance(build_notifier(cfg), WebhookNotifier)


def test_email_defaults_are_safe() -> None:
    cfg = EmailConfig(host="smtp.example.com", from_addr="a@example.com", to=["b@example.com"])
    assert cfg.tls == "starttls" and cfg.port == 587 and cfg.password is None


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        build_notifier({"type": "email", "host": "", "port": 70000, "from_addr": "nobody",
                        "to": [], "tls": "maybe", "colour": "red"}, where="alerts.channels[0]")
    message = str(err.value)
    assert "alerts.channels[0]" in message
    for where in ("host", "port", "from_addr", "to", "tls", "colour"):
        assert f"alerts.channels[0].{where}:" in message, where
    assert "expected an email address" in message
    assert "70000" in message  # says what came


def test_unknown_or_missing_type_names_the_choices() -> None:
    for config in ({"type": "pager"}, {"url": "https://x.example"}):
        with pytest.raises(ConfigError, match="'webhook', 'email', 'log'"):
            build_notifier(config)


@pytest.mark.parametrize(
    "config",
    [
        {"type": "email", "host": "h", "from_addr": "a@example.com", "to": ["b@example.com"],
         "username": "u", "password": 12345678},
        {"type": "webhook", "url": "https://x.example", "token": ["s3cr3t-token"]},
    ],
    ids=["password", "token"],
)
def test_secrets_are_never_echoed_in_errors(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        build_notifier(config)
    assert "12345678" not in str(err.value) and "s3cr3t" not in str(err.value)


def test_login_needs_username_and_password_together() -> None:
    with pytest.raises(ConfigError, match="username and password go together") as err:
        build_notifier({"type": "email", "host": "h", "from_addr": "a@example.com", "to": ["b@example.com"],
                        "password": "hunter2-secret"})
    assert "hunter2" not in str(err.value)


def test_unknown_type_says_what_came_without_echoing_the_mapping() -> None:
    with pytest.raises(ConfigError) as err:
        build_notifier({"type": "pager", "token": "s3cr3t"})
    assert "(got 'pager')" in str(err.value) and "s3cr3t" not in str(err.value)


def test_secrets_are_hidden_in_repr() -> None:
    cfg = WebhookConfig(url="https://x.example", token="s3cr3t")  # type: ignore[arg-type]
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(cfg.model_dump())


def test_bad_webhook_values() -> None:
    with pytest.raises(ConfigError) as err:
        build_notifier({"type": "webhook", "url": "ftp://x", "format": "teams", "timeout": 0})
    message = str(err.value)
    assert "3 problem(s)" in message
    assert ".url:" in message and ".format:" in message and ".timeout:" in message
