"""KPI packs: named sets of KPI definitions, discovered through entry points.

A pack is a callable registered under the ``kpidash.kpi_packs`` entry-point group that returns
a list of KPI definition mappings. The built-in SaaS pack registers itself the same way a
third-party package would (see ``pyproject.toml``)::

    [project.entry-points."kpidash.kpi_packs"]
    mypack = "mypackage.kpis:pack"
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from kpidash.core.registry import Registry, build_registry
from kpidash.errors import NotFound

GROUP = "kpidash.kpi_packs"


def available_packs() -> dict[str, Callable[[], list[dict[str, Any]]]]:
    """Installed packs by name."""
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}


def load_pack(name: str) -> Registry:
    packs = available_packs()
    if name not in packs:
        raise NotFound(f"no KPI pack named {name!r}; installed packs: {', '.join(sorted(packs))}")
    return build_registry(packs[name](), source=f"pack {name}")
