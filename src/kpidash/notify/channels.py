"""The channels file: named notification channels declared in YAML.

::

    channels:
      ops:    {type: webhook, url: "https://hooks.slack.com/services/${SLACK_PATH}", format: slack}
      oncall: {type: email, host: smtp.example.com, port: 25, tls: none,
               sender: kpidash@example.com, recipients: [oncall@example.com]}
      audit:  {type: log}

``${NAME}`` in a string value is replaced by the environment variable NAME, so passwords and
tokens stay out of the file (``$${NAME}`` is a literal ``${NAME}``). Every problem in the file is
reported at once, in one ConfigError that names the channel and field; secrets and values taken
from the environment are never echoed. A built-in channel's ``name`` defaults to its key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from kpidash.errors import ConfigError
from kpidash.notify.base import Notifier
from kpidash.notify.config import BUILTIN_TYPES
from kpidash.notify.plugins import notifier_problems

CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
ENV_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REDACT_MIN_LENGTH = 6
_TOP_LEVEL = frozenset({"channels"})


def load_channels(text_or_mapping: str | Mapping[str, Any], source: str = "<yaml>", *,
                  env: Mapping[str, str] | None = None) -> dict[str, Notifier]:
    """Channels by name from a channels file (YAML text, or the mapping it parses to).

    ``env`` is where ``${NAME}`` references are looked up (default: ``os.environ``).
    """
    doc = _parse(text_or_mapping, source) if isinstance(text_or_mapping, str) else text_or_mapping
    problems: list[str] = []
    channels: dict[str, Notifier] = {}
    if not isinstance(doc, Mapping) or "channels" not in doc:
        got = "an empty file" if doc is None else type(doc).__name__
        problems.append(f"  expected a mapping with a 'channels' key, got {got}")
    else:
        problems += [f"  {key}: unknown key; a channels file has only 'channels'"
                     for key in doc if key not in _TOP_LEVEL]
        declared = doc["channels"]
        if not isinstance(declared, Mapping):
            got = "nothing" if declared is None else type(declared).__name__
            problems.append(f"  channels: expected a mapping of channel name to its config, got {got}")
            declared = {}
        for name, config in declared.items():
            notifier = _channel(name, config, env if env is not None else os.environ, problems)
            if notifier is not None:
                channels[str(name)] = notifier
    if problems:
        raise ConfigError(f"channels file {source} has {len(problems)} problem(s):\n" + "\n".join(problems))
    return channels


def _parse(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"channels file {source} is not valid YAML{where}: "
                          f"{getattr(exc, 'problem', None) or exc}") from None


def _channel(name: Any, config: Any, env: Mapping[str, str], problems: list[str]) -> Notifier | None:
    where = f"channels.{name}"
    if not isinstance(name, str) or not CHANNEL_NAME.match(name):
        problems.append(f"  {where}: a channel name is lower-case letters, digits, '-' and '_', "
                        f"starting with a letter or digit (got {name!r})")
        return None
    if not isinstance(config, Mapping):
        got = "nothing" if config is None else type(config).__name__
        problems.append(f"  {where}: expected a mapping with at least a 'type', got {got}")
        return None
    from_env: dict[str, str] = {}  # value -> reference, to keep environment values out of messages
    unresolved: list[str] = []
    resolved = {key: _substitute(value, f"{where}.{key}", env, from_env, unresolved)
                for key, value in config.items()}
    if unresolved:
        problems += unresolved
        return None
    if resolved.get("type") in BUILTIN_TYPES:
        resolved.setdefault("name", name)
    hidden = [str(key) for key, value in config.items() if _mentions_env(value)]
    notifier, found = notifier_problems(resolved, where=where, hidden=hidden)
    problems += [_redact(line, from_env) for line in found]
    return notifier


def _substitute(value: Any, where: str, env: Mapping[str, str], from_env: dict[str, str],
                unresolved: list[str]) -> Any:
    """``value`` with ``${NAME}`` replaced in every string inside it."""
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            escaped, ref = match.group(1), match.group(2)
            if escaped:
                return "${" + ref + "}"
            if not ENV_NAME.match(ref):
                unresolved.append(f"  {where}: '${{{ref}}}' is not a valid environment variable reference")
                return ""
            if ref not in env:
                unresolved.append(f"  {where}: environment variable {ref} is not set "
                                  f"(referenced as ${{{ref}}})")
                return ""
            found = env[ref]
            if found:
                from_env[found] = "${" + ref + "}"
            return found

        return ENV_REFERENCE.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, f"{where}.{k}", env, from_env, unresolved) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{where}[{i}]", env, from_env, unresolved) for i, v in enumerate(value)]
    return value


def _mentions_env(value: Any) -> bool:
    if isinstance(value, str):
        return any(not m.group(1) for m in ENV_REFERENCE.finditer(value))
    if isinstance(value, Mapping):
        return any(_mentions_env(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_env(v) for v in value)
    return False


def _redact(line: str, from_env: Mapping[str, str]) -> str:
    """Show ``${NAME}`` instead of any environment value a message (e.g. a plugin's) repeats."""
    for value in sorted(from_env, key=len, reverse=True):
        if len(value) >= REDACT_MIN_LENGTH:  # shorter ones ("25", "json") would garble the text
            line = line.replace(value, from_env[value])
    return line
