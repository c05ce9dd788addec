"""JSON Schemas (draft 2020-12) of the JSON that kpidash publishes, and their loader.

Each schema lives in ``<name>.schema.json`` next to this module and has the ``$id``
``https://kpidash.dev/schemas/<name>.schema.json``; references between them (the dashboard's
widgets) are relative and resolved through a :class:`referencing.Registry` holding every
schema here, so nothing is fetched over the network.

``validate_widget`` picks the schema by the object's ``type`` (``kpi`` → ``widget-kpi``,
``line`` → ``widget-line``, ``portfolio`` → ``widget-portfolio``, ``dashboard`` →
``dashboard``) and raises
:class:`~kpidash.errors.ValidationFailed` whose report lists every schema error, each located
by a JSON path such as ``$.widgets[2].data.color``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from functools import cache
from importlib.resources import files
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from kpidash.core.report import ReportBuilder
from kpidash.errors import NotFound, ValidationFailed

SCHEMA_VERSION: Final = 1
"""Version of the widget and dashboard shapes described by these schemas."""

SCHEMA_BASE_URI: Final = "https://kpidash.dev/schemas/"
_SUFFIX: Final = ".schema.json"

WIDGET_SCHEMAS: Final[dict[str, str]] = {
    "kpi": "widget-kpi",
    "line": "widget-line",
    "recommendations": "widget-recommendations",
    "portfolio": "widget-portfolio",
    "dashboard": "dashboard",
}
"""Widget ``type`` → schema name."""


def schema_names() -> list[str]:
    """Names of the bundled schemas (file names without ``.schema.json``), sorted."""
    return sorted(
        p.name.removesuffix(_SUFFIX)
        for p in files(__name__).iterdir()
        if p.is_file() and p.name.endswith(_SUFFIX)
    )


def _normalise(name: str) -> str:
    return name.removesuffix(_SUFFIX)


@cache
def _raw(name: str) -> dict[str, Any]:
    known = schema_names()
    if name not in known:
        raise NotFound(
            f"unknown schema {name!r}; known schemas: {', '.join(known)} "
            "(pass the name without '.schema.json')"
        )
    schema: dict[str, Any] = json.loads(
        files(__name__).joinpath(name + _SUFFIX).read_text(encoding="utf-8"))
    return schema


def load_schema(name: str) -> dict[str, Any]:
    """The schema called ``name`` (e.g. ``"widget-kpi"``) as a fresh dict.

    Raises :class:`~kpidash.errors.NotFound` for an unknown name.
    """
    return copy.deepcopy(_raw(_normalise(name)))


@cache
def _registry() -> Registry[Any]:
    resources = [(s["$id"], Resource.from_contents(s)) for s in map(_raw, schema_names())]
    return Registry().with_resources(resources)


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        _raw(name), registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _json_path(error: ValidationError) -> str:
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _is_type_mismatch(error: ValidationError) -> bool:
    return error.validator == "const" and list(error.relative_path) == ["type"]


def _refined(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    """Replace a ``oneOf`` failure by the errors of the branch the instance's ``type`` picks.

    A widget inside a dashboard fails ``oneOf`` as a whole; what helps is the kpi (or line)
    schema's own complaints about it, located at the widget's fields.
    """
    for error in errors:
        if error.validator != "oneOf" or not error.context:
            yield error
            continue
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        matching = [subs for subs in branches.values() if not any(map(_is_type_mismatch, subs))]
        if len(matching) == 1:
            yield from _refined(matching[0])
        else:
            yield error


def _message(error: ValidationError) -> str:
    # the only oneOf in these schemas is the dashboard's choice of widget schema
    if error.validator == "oneOf":
        # a portfolio spans workspaces: never inside one workspace's dashboard
        kinds = ", ".join(sorted(k for k in WIDGET_SCHEMAS if k not in ("dashboard",
                                                                       "portfolio")))
        got = error.instance.get("type") if isinstance(error.instance, dict) else error.instance
        return f"expected a widget of type {kinds}; got type {got!r}"
    return str(error.message)


def validate_widget(obj: Any) -> None:
    """Check a widget or dashboard dict against the schema its ``type`` names.

    Raises :class:`~kpidash.errors.ValidationFailed` carrying a report with one error per
    schema violation (code ``schema.<keyword>``, e.g. ``schema.required``, located by schema
    file and JSON path), or a single ``widget.type`` / ``widget.shape`` error when the object
    has no known type.
    """
    rb = ReportBuilder()
    if not isinstance(obj, dict):
        rb.error("widget.shape", f"expected a JSON object (dict); got {type(obj).__name__}",
                 field="$")
        raise ValidationFailed("widget is invalid", rb.build())
    kind = obj.get("type")
    name = WIDGET_SCHEMAS.get(kind) if isinstance(kind, str) else None
    if name is None:
        rb.error("widget.type",
                 f"expected 'type' to be one of {', '.join(sorted(WIDGET_SCHEMAS))}; "
                 f"got {kind!r}", field="$.type")
        raise ValidationFailed("widget is invalid", rb.build())
    errors = sorted(_refined(_validator(name).iter_errors(obj)),
                    key=lambda e: (_json_path(e), e.message))
    for error in errors:
        rb.error(f"schema.{error.validator}", _message(error), source=name + _SUFFIX,
                 field=_json_path(error))
    report = rb.build()
    if not report.ok:
        raise ValidationFailed(f"{kind} widget does not match schema {name!r}", report)


__all__ = [
    "SCHEMA_BASE_URI",
    "SCHEMA_VERSION",
    "WIDGET_SCHEMAS",
    "load_schema",
    "schema_names",
    "validate_widget",
]
