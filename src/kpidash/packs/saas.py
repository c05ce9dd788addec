"""The built-in SaaS KPI pack (definitions in ``saas.yaml`` beside this file)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from kpidash.core.registry import parse_yaml


def pack() -> list[dict[str, Any]]:
    text = files("kpidash.packs").joinpath("saas.yaml").read_text(encoding="utf-8")
    return parse_yaml(text, source="saas.yaml")
