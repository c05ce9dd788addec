"""Channel config validation: pydantic errors turned into one readable ConfigError.

Every problem is reported at once, each as ``where.field: what is wrong (got …)``. Secrets
(``password``, ``token``), whole mappings and values the caller marks as hidden (e.g. ones that
came from the environment) are never echoed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kpidash.errors import ConfigError

SECRET_FIELDS = frozenset({"password", "token"})
BUILTIN_TYPES = ("webhook", "email", "log")

M = TypeVar("M", bound=BaseModel)


def quoted(names: Collection[str]) -> str:
    return ", ".join(repr(n) for n in names)


def describe_error(error: Mapping[str, Any], where: str, *, tagged: bool = False,
                   choices: Collection[str] = BUILTIN_TYPES,
                   hidden: Collection[str] = ()) -> str:
    """One problem line. ``tagged``: the error comes from the channel-type union, whose first
    location part is the type tag; ``hidden``: top-level fields whose values must not be shown."""
    parts = [str(p) for p in error["loc"]]
    message = str(error["msg"])
    value = error.get("input")
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        parts, message = ["type"], f"expected 'type' to be one of {quoted(choices)}"
        value = error.get("ctx", {}).get("tag")
        if value is None:
            message += "; no 'type' was given"
    elif tagged:
        parts = parts[1:]  # the first part is the union tag ("email"), already known
    message = message.removeprefix("Value error, ")
    path = ".".join([where, *parts])
    # Never echo secrets, nor whole mappings (a model-level error's input holds every field).
    hidden_here = bool((SECRET_FIELDS | set(hidden)) & set(parts))
    hidden_here = (hidden_here or value is None or isinstance(value, Mapping)
                   or error["type"] == "missing")
    shown = "" if hidden_here or "got " in message else f" (got {value!r})"
    return f"  {path}: {message}{shown}"


def problems_of(exc: ValidationError, where: str, **kwargs: Any) -> list[str]:
    return [describe_error(e, where, **kwargs) for e in exc.errors(include_url=False)]


def config_error(where: str, problems: list[str]) -> ConfigError:
    return ConfigError(f"notifier config {where!r} has {len(problems)} problem(s):\n" + "\n".join(problems))


def validate_config(model: type[M], config: Mapping[str, Any], *, where: str) -> M:
    """``model`` validated from ``config``; one ConfigError listing every problem otherwise."""
    try:
        return model.model_validate(dict(config))
    except ValidationError as exc:
        raise config_error(where, problems_of(exc, where)) from None
