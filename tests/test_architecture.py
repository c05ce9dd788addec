"""Layering rules from ARCHITECTURE.md, checked on the source text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "kpidash"
OUTER = ("kpidash.store", "kpidash.engine", "kpidash.cli", "kpidash.api", "kpidash.notify",
         "kpidash.scheduler", "kpidash.demo", "kpidash.sources", "duckdb")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("path", sorted((SRC / "core").rglob("*.py")), ids=lambda p: p.name)
def test_core_is_pure(path: Path) -> None:
    bad = {m for m in imports(path) if m.startswith(OUTER)}
    assert not bad, f"{path.name} imports outer layers {bad}"
    text = path.read_text(encoding="utf-8")
    assert "datetime.now(" not in text and "time.time(" not in text


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_only_the_clock_reads_the_time(path: Path) -> None:
    if path.name == "clock.py":
        return
    text = path.read_text(encoding="utf-8")
    assert "datetime.now(" not in text and "utcnow(" not in text


@pytest.mark.parametrize("path", sorted((SRC / "cli").rglob("*.py")), ids=lambda p: p.name)
def test_cli_never_imports_a_store(path: Path) -> None:
    assert not {m for m in imports(path) if m.startswith("kpidash.store")}
