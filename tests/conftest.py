"""Shared fixtures: a fixed clock, the SaaS registry, stores and engines on real DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kpidash.clock import FixedClock
from kpidash.core.registry import Registry
from kpidash.engine import Engine
from kpidash.packs import load_pack
from kpidash.store import open_store
from kpidash.store.base import Store

NOW = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(scope="session")
def saas() -> Registry:
    return load_pack("saas")


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every Store implementation the contract suite must pass (DuckDB in memory and on disk)."""
    url = ":memory:" if request.param == "memory" else str(tmp_path / "kpidash.duckdb")
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def engine(tmp_path: Path, clock: FixedClock, saas: Registry) -> Iterator[Engine]:
    e = Engine(open_store(str(tmp_path / "engine.duckdb")), clock)
    e.register(saas)
    yield e
    e.close()
