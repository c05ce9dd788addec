"""Engines loaded with the deterministic demo (one way to build them for every engine test)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from kpidash import demo
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.packs import load_pack
from kpidash.store import open_store

DEMO_END = date(2024, 6, 30)


def _demo_engine(path: Path, days: int, clock: FixedClock | None = None,
                 ) -> tuple[Engine, demo.DemoData]:
    """An engine on a DuckDB file at ``path`` with the SaaS pack and ``days`` of demo data up
    to DEMO_END; the clock defaults to the midnight after it."""
    e = Engine(open_store(str(path)), clock or FixedClock(datetime(2024, 7, 1, tzinfo=UTC)))
    e.register(load_pack("saas"))
    data = demo.generate(DEMO_END, days=days)
    e.ingest_table(data.points, source="demo")
    return e, data


DemoEngine = Callable[..., tuple[Engine, demo.DemoData]]


@pytest.fixture(scope="session")
def make_demo_engine() -> DemoEngine:
    return _demo_engine


# Real loopback servers (HTTP receiver, aiosmtpd) shared with the notifier tests.
from loopback import http_server, smtp_server  # noqa: E402,F401
