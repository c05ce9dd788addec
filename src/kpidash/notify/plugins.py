"""Channel types: the built-in ones and third-party ones registered through entry points.

A plugin registers a factory under the ``kpidash.notifiers`` entry-point group; the entry point's
name is the channel ``type``::

    [project.entry-points."kpidash.notifiers"]
    pagerduty = "mypackage.pager:from_config"

The factory takes the channel's config mapping (without ``type``), validates it, and returns a
:class:`~kpidash.notify.base.Notifier`; it raises :class:`~kpidash.errors.ConfigError` with a
readable message for a bad config. The built-in types (webhook, email, log) register the same way
but are always dispatched directly, and a plugin cannot replace them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from kpidash.errors import ConfigError
from kpidash.notify.base import Notifier
from kpidash.notify.config import BUILTIN_TYPES, config_error, problems_of
from kpidash.notify.email import EmailConfig, EmailNotifier
from kpidash.notify.log import LogConfig, LogNotifier
from kpidash.notify.webhook import WebhookConfig, WebhookNotifier

__all__ = ["GROUP", "NotifierConfig", "NotifierFactory", "build_notifier", "known_types",
           "notifier_problems", "parse_notifier_config", "plugin_entry_points"]

GROUP = "kpidash.notifiers"

NotifierFactory = Callable[[Mapping[str, Any]], Notifier]
NotifierConfig = Annotated[WebhookConfig | EmailConfig | LogConfig, Field(discriminator="type")]
_ADAPTER: TypeAdapter[WebhookConfig | EmailConfig | LogConfig] = TypeAdapter(NotifierConfig)


def plugin_entry_points() -> dict[str, EntryPoint]:
    """Installed third-party channel types by name (the built-in names are left out)."""
    return {ep.name: ep for ep in entry_points(group=GROUP) if ep.name not in BUILTIN_TYPES}


def known_types() -> list[str]:
    """Every channel type a config may name: the built-ins first, then plugins by name."""
    return [*BUILTIN_TYPES, *sorted(plugin_entry_points())]


def parse_notifier_config(config: Mapping[str, Any], *, where: str = "notify") -> NotifierConfig:
    """Validate a YAML-like mapping of a built-in type; raise one ConfigError listing every problem."""
    parsed, problems = _parse_builtin(config, where)
    if parsed is None:
        raise config_error(where, problems)
    return parsed


def build_notifier(config: Mapping[str, Any] | NotifierConfig, *, where: str = "notify") -> Notifier:
    """The channel a config describes; ``config["type"]`` is a built-in type or a plugin's name."""
    notifier, problems = notifier_problems(config, where=where)
    if notifier is None:
        raise config_error(where, problems)
    return notifier


def notifier_problems(config: Mapping[str, Any] | NotifierConfig, *, where: str,
                      hidden: Collection[str] = ()) -> tuple[Notifier | None, list[str]]:
    """The channel, or None and every problem line found (``hidden``: fields not to echo)."""
    if isinstance(config, WebhookConfig | EmailConfig | LogConfig):
        return _builtin(config), []
    kind = config.get("type")
    if isinstance(kind, str) and kind not in BUILTIN_TYPES:
        plugins = plugin_entry_points()
        if kind in plugins:
            return _from_plugin(plugins[kind], config, where, hidden)
        choices: Collection[str] = [*BUILTIN_TYPES, *sorted(plugins)]
    else:
        choices = BUILTIN_TYPES  # no plugin lookup needed to tell what is wrong
    parsed, problems = _parse_builtin(config, where, choices=choices, hidden=hidden)
    return (None if parsed is None else _builtin(parsed)), problems


def _parse_builtin(config: Mapping[str, Any], where: str, *, choices: Collection[str] = BUILTIN_TYPES,
                   hidden: Collection[str] = ()) -> tuple[NotifierConfig | None, list[str]]:
    try:
        return _ADAPTER.validate_python(dict(config)), []
    except ValidationError as exc:
        return None, problems_of(exc, where, tagged=True, choices=choices, hidden=hidden)


def _builtin(parsed: NotifierConfig) -> Notifier:
    if isinstance(parsed, WebhookConfig):
        return WebhookNotifier(parsed)
    if isinstance(parsed, EmailConfig):
        return EmailNotifier(parsed)
    return LogNotifier(parsed)


def _from_plugin(ep: EntryPoint, config: Mapping[str, Any], where: str,
                 hidden: Collection[str]) -> tuple[Notifier | None, list[str]]:
    origin = f"channel type {ep.name!r} ({ep.value})"
    try:
        factory = ep.load()
    except Exception as exc:  # a broken plugin is a config problem, reported with the others
        return None, [f"  {where}.type: cannot load {origin}: {type(exc).__name__}: {exc}"]
    if not callable(factory):
        return None, [f"  {where}.type: {origin} is not a factory (got {type(factory).__name__})"]
    try:
        notifier = factory({k: v for k, v in config.items() if k != "type"})
    except ConfigError as exc:
        return None, [_indent(f"{where}: {exc}")]
    except ValidationError as exc:  # a plugin that lets pydantic's error out still reads well
        return None, problems_of(exc, where, hidden=hidden)
    if not isinstance(notifier, Notifier):
        return None, [f"  {where}.type: {origin} returned {type(notifier).__name__}, not a Notifier "
                      "(it needs a 'name' and a 'send(notification)')"]
    return notifier, []


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
