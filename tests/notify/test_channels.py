"""The channels file: named channels from YAML, every problem at once, secrets from the environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kpidash.errors import ConfigError
from kpidash.notify import (
    EmailNotifier,
    LogNotifier,
    Notification,
    WebhookNotifier,
    load_channels,
)

from .conftest import HOST, PLUGIN_MODULE, HttpReceiver, SmtpReceiver

Register = Callable[[dict[str, str]], None]


def problems(err: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [line.strip() for line in str(err.value).splitlines()[1:]]


def test_happy_path_delivers_through_every_channel(
        http_server: Callable[..., HttpReceiver], smtp_server: Callable[..., SmtpReceiver],
        caplog: pytest.LogCaptureFixture, notification: Notification,
        monkeypatch: pytest.MonkeyPatch) -> None:
    http, smtp = http_server(), smtp_server()
    monkeypatch.setenv("KPIDASH_TEST_HOOK_TOKEN", "tok-from-env")
    text = f"""
channels:
  ops: {{type: webhook, url: "{http.url}", format: slack, token: "${{KPIDASH_TEST_HOOK_TOKEN}}"}}
  oncall:
    type: email
    host: {HOST}
    port: {smtp.port}
    tls: none
    sender: kpidash@example.com
    recipients: [oncall@example.com, cto@example.com]
  audit: {{type: log, name: audit-trail, logger: kpidash.notify}}
"""
    channels = load_channels(text, source="channels.yaml")

    assert list(channels) == ["ops", "oncall", "audit"]
    assert isinstance(channels["ops"], WebhookNotifier) and isinstance(channels["oncall"], EmailNotifier)
    assert isinstance(channels["audit"], LogNotifier)
    assert [c.name for c in channels.values()] == ["ops", "oncall", "audit-trail"]  # key unless named
    for channel in channels.values():
        assert channel.send(notification).ok
    assert http.requests[0].headers["authorization"] == "Bearer tok-from-env"
    assert set(http.requests[0].json()) == {"text", "blocks"}
    assert smtp.envelopes[0].rcpt_tos == ["oncall@example.com", "cto@example.com"]
    assert [r.name for r in caplog.records] == ["kpidash.notify"]


def test_a_mapping_and_plugins_work_too(plugin: Register, http_server: Callable[..., HttpReceiver],
                                        notification: Notification) -> None:
    plugin({"pager": f"{PLUGIN_MODULE}:from_config"})
    rx = http_server()
    key = "0123456789abcdef0123456789abcdef"
    config = {"type": "pager", "url": rx.url, "routing_key": "${KEY}"}
    channels = load_channels({"channels": {"night": config}}, env={"KEY": key})
    assert channels["night"].send(notification).ok
    assert rx.requests[0].json()["routing_key"] == key


def test_an_empty_channels_mapping_is_no_channels() -> None:
    assert load_channels("channels: {}\n") == {}


def test_every_problem_is_reported_at_once_naming_the_channel() -> None:
    text = """
channels:
  ops: {type: webhook, url: "ftp://hooks.example.com", format: teams}
  oncall: {type: email, host: "", sender: nobody, recipients: []}
  Bad Name: {type: log}
  audit: {type: log, level: LOUD}
  pager: {type: pagerduty}
  empty:
  listed: [type, log]
extras: true
"""
    with pytest.raises(ConfigError) as err:
        load_channels(text, source="ops/channels.yaml")
    found = problems(err)
    assert str(err.value).startswith(f"channels file ops/channels.yaml has {len(found)} problem(s):")
    expected_prefixes = [
        "extras: unknown key", "channels.ops.url:", "channels.ops.format:", "channels.oncall.host:",
        "channels.oncall.sender: expected an email address", "channels.oncall.recipients:",
        "channels.Bad Name: a channel name is lower-case", "channels.audit.level:",
        "channels.pager.type: expected 'type' to be one of 'webhook', 'email', 'log' (got 'pagerduty')",
        "channels.empty: expected a mapping with at least a 'type', got nothing",
        "channels.listed: expected a mapping with at least a 'type', got list",
    ]
    assert len(found) == len(expected_prefixes)
    for prefix in expected_prefixes:
        assert any(p.startswith(prefix) for p in found), (prefix, found)


@pytest.mark.parametrize("name", ["ops", "on-call", "team_2", "9am"])
def test_good_channel_names(name: str) -> None:
    assert list(load_channels({"channels": {name: {"type": "log"}}})) == [name]


@pytest.mark.parametrize("name", ["Ops", "-ops", "_ops", "on call", "ops!", "", 7])
def test_bad_channel_names(name: Any) -> None:
    with pytest.raises(ConfigError, match="a channel name is lower-case letters"):
        load_channels({"channels": {name: {"type": "log"}}})


@pytest.mark.parametrize(
    ("text", "words"),
    [("channels: [ops, audit\n", "not valid YAML at line"), ("", "got an empty file"),
     ("- ops\n", "expected a mapping with a 'channels' key, got list"),
     ("channels:\n", "channels: expected a mapping of channel name to its config, got nothing")],
    ids=["syntax", "empty", "list", "null-channels"],
)
def test_malformed_files(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match="channels file <yaml>") as err:
        load_channels(text)
    assert words in str(err.value)


def test_env_substitution_in_nested_strings_only(http_server: Callable[..., HttpReceiver],
                                                 notification: Notification) -> None:
    rx = http_server()
    port = rx.url.split(":")[2].split("/")[0]
    channels = load_channels({"channels": {"ops": {
        "type": "webhook", "url": f"http://{HOST}:${{HOOK_PORT}}/hook",
        "headers": {"X-Team": "${TEAM}", "X-Literal": "$${TEAM} costs $5"}, "timeout": 2}}},
        env={"HOOK_PORT": port, "TEAM": "growth"})
    assert channels["ops"].send(notification).ok
    headers = rx.requests[0].headers
    assert headers["x-team"] == "growth" and headers["x-literal"] == "${TEAM} costs $5"


def test_a_missing_env_var_names_channel_field_and_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_channels({"channels": {
            "oncall": {"type": "email", "host": "smtp.example.com", "from_addr": "a@example.com",
                       "to": ["${ONCALL_ADDRESS}"], "username": "alerts", "password": "${SMTP_PASSWORD}"},
            "ops": {"type": "webhook", "url": "https://x.example", "headers": {"X-Key": "${1BAD}"}}}},
            env={})
    assert problems(err) == [
        "channels.oncall.to[0]: environment variable ONCALL_ADDRESS is not set "
        "(referenced as ${ONCALL_ADDRESS})",
        "channels.oncall.password: environment variable SMTP_PASSWORD is not set "
        "(referenced as ${SMTP_PASSWORD})",
        "channels.ops.headers.X-Key: '${1BAD}' is not a valid environment variable reference",
    ]


def test_values_from_the_environment_are_never_echoed(plugin: Register) -> None:
    plugin({"pager": f"{PLUGIN_MODULE}:from_config", "strict": f"{PLUGIN_MODULE}:strict"})
    secret = "hunter2-very-secret"
    with pytest.raises(ConfigError) as err:
        load_channels({"channels": {
            "ops": {"type": "webhook", "url": "ftp://${SECRET}", "token": "${SECRET}",
                    "timeout": "${SECRET}"},
            "oncall": {"type": "email", "host": "h", "from_addr": "${SECRET}", "to": ["b@example.com"]},
            "strict": {"type": "strict", "token": "${SECRET}", "retries": "${SECRET}"},
            "pager": {"type": "pager", "url": "${SECRET}", "routing_key": "x"}}},
            env={"SECRET": secret})
    message = str(err.value)
    assert secret not in message
    for where in ("ops.url", "ops.timeout", "oncall.from_addr", "strict.retries", "pager"):
        assert f"channels.{where}:" in message, where
    assert "${SECRET}" in message  # the reference is shown instead of the value
