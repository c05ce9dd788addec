"""Notifier plugins: channel types registered under the ``kpidash.notifiers`` entry-point group."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pytest

from kpidash.errors import ConfigError
from kpidash.notify import (
    GROUP,
    EmailNotifier,
    LogNotifier,
    Notification,
    Notifier,
    WebhookNotifier,
    build_notifier,
    known_types,
)

from .conftest import PLUGIN_MODULE, HttpReceiver

Register = Callable[[dict[str, str]], None]
PAGER = {"pager": f"{PLUGIN_MODULE}:from_config"}
KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("kind", "config", "cls"),
    [("webhook", {"url": "https://hooks.example.com/x"}, WebhookNotifier),
     ("email", {"host": "h", "from_addr": "a@example.com", "to": ["b@example.com"]}, EmailNotifier),
     ("log", {}, LogNotifier)],
)
def test_built_ins_register_through_the_same_entry_points(kind: str, config: dict[str, Any],
                                                         cls: type) -> None:
    [ep] = [ep for ep in entry_points(group=GROUP) if ep.name == kind]
    assert ep.value == f"kpidash.notify.{kind}:from_config"
    factory = ep.load()
    assert isinstance(factory(config), cls)
    assert isinstance(factory({"type": kind, **config}), cls)


def test_built_in_factories_report_bad_config_readably() -> None:
    [ep] = [ep for ep in entry_points(group=GROUP) if ep.name == "webhook"]
    with pytest.raises(ConfigError) as err:
        ep.load()({"url": "ftp://x", "token": ["s3cr3t"]})
    message = str(err.value)
    assert "webhook.url:" in message and "webhook.token:" in message and "s3cr3t" not in message


def test_build_notifier_dispatches_to_a_plugin(plugin: Register, http_server: Callable[..., HttpReceiver],
                                               notification: Notification) -> None:
    plugin(PAGER)
    rx = http_server()
    notifier = build_notifier({"type": "pager", "name": "night-pager", "url": rx.url, "routing_key": KEY})
    assert isinstance(notifier, Notifier) and notifier.name == "night-pager"
    assert type(notifier).__module__ == PLUGIN_MODULE

    assert notifier.send(notification).ok
    assert rx.requests[0].json() == {"routing_key": KEY, "summary": notification.headline,
                                     "dedup_key": "ntf-0001"}


def test_plugin_config_errors_name_the_channel(plugin: Register) -> None:
    plugin(PAGER)
    with pytest.raises(ConfigError) as err:
        build_notifier({"type": "pager", "url": "nope", "routing_key": "short", "colour": 1},
                       where="alerts.pager")
    message = str(err.value)
    assert message.startswith("notifier config 'alerts.pager' has 1 problem(s):")
    assert "alerts.pager: pager channel: url: expected an http(s) URL" in message
    assert "routing_key: expected the 32-character integration key" in message
    assert "unknown keys ['colour']" in message  # the plugin never sees 'type'


def test_unknown_type_lists_built_ins_and_plugins(plugin: Register) -> None:
    plugin(PAGER | {"teams": f"{PLUGIN_MODULE}:from_config"})
    assert known_types() == ["webhook", "email", "log", "pager", "teams"]
    with pytest.raises(ConfigError) as err:
        build_notifier({"type": "sms", "token": "s3cr3t"})
    message = str(err.value)
    assert "expected 'type' to be one of 'webhook', 'email', 'log', 'pager', 'teams' (got 'sms')" in message
    assert "s3cr3t" not in message


def test_without_plugins_only_built_ins_are_known() -> None:
    assert known_types() == ["webhook", "email", "log"]


def test_a_plugin_cannot_replace_a_built_in(plugin: Register) -> None:
    plugin({"webhook": f"{PLUGIN_MODULE}:not_a_notifier"})
    assert isinstance(build_notifier({"type": "webhook", "url": "https://x.example"}), WebhookNotifier)
    assert known_types() == ["webhook", "email", "log"]


@pytest.mark.parametrize(
    ("target", "words"),
    [("kpidash_no_such_module:factory", "cannot load channel type 'bad' (kpidash_no_such_module:factory): "
      "ModuleNotFoundError"),
     (f"{PLUGIN_MODULE}:not_a_notifier", "returned object, not a Notifier"),
     (f"{PLUGIN_MODULE}:NOT_CALLABLE", "is not a factory (got int)")],
    ids=["missing-module", "returns-junk", "not-callable"],
)
def test_broken_plugins_are_config_errors(plugin: Register, target: str, words: str) -> None:
    plugin({"bad": target})
    with pytest.raises(ConfigError, match=r"notify\.type: ") as err:
        build_notifier({"type": "bad"})
    assert words in str(err.value)


def test_pydantic_errors_from_a_plugin_read_well_and_hide_secrets(plugin: Register) -> None:
    plugin({"strict": f"{PLUGIN_MODULE}:strict"})
    with pytest.raises(ConfigError) as err:
        build_notifier({"type": "strict", "token": 123456789, "retries": "many"}, where="channels.x")
    message = str(err.value)
    assert "2 problem(s)" in message
    assert "channels.x.token:" in message and "123456789" not in message
    assert "channels.x.retries:" in message and "(got 'many')" in message
