"""Shared fixtures: a fixed clock, the SaaS registry, stores (real DuckDB, real PostgreSQL)
and engines on real DuckDB."""

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
from pgserver import PgServer

NOW = datetime(2024, 3, 1, tzinfo=UTC)

# Store contract tests that fail on PostgreSQL only, until their methods are ported (issue 9):
# "path::test" (path under tests/; every postgres case of it) or such a node id with its
# parameters → the method(s) not ported yet.
# They run as xfail(strict=True) on the "postgres" param: remove a line when it passes.
PG_PENDING: dict[str, str] = {
    "store/test_alerts_contract.py::test_last_seen_per_kpi_and_per_dimension": "write_points",
    "store/test_contract.py::test_aggregations": "write_points",
    "store/test_contract.py::test_corrections_keep_raw_values_and_revert": "write_points",
    "store/test_contract.py::test_day_grain_follows_time_zone": "write_points",
    "store/test_contract.py::test_filters_and_group_by": "write_points",
    "store/test_contract.py::test_last_duplicate_within_a_batch_wins": "write_points",
    "store/test_contract.py::test_last_stays_exact_when_series_spacing_changes": "write_points",
    "store/test_contract.py::test_mixed_aggregations_in_one_call_do_not_leak": "write_points",
    "store/test_contract.py::test_period_keys_match_the_calendar_in_every_zone": "write_points",
    "store/test_contract.py::test_read_points_keeps_raw_value_of_corrections": "write_points",
    "store/test_contract.py::test_resent_points_replace_instead_of_duplicating": "write_points",
    "store/test_contract.py::test_sums_are_exact_and_the_same_every_run": "write_points",
    "store/test_contract.py::test_time_range": "time_range",
    "store/test_contract.py::test_transaction_rolls_back_everything": "write_points",
    "store/test_contract.py::test_workspaces_are_isolated": "write_points",
    "store/test_isolation_contract.py::test_a_battery_of_writes_leaves_the_other_workspace_unchanged": "write_points",  # noqa: E501
    "store/test_isolation_contract.py::test_a_write_to_one_workspace_leaves_the_other_unchanged": "write_points",  # noqa: E501
    "store/test_memberships.py::test_memberships_are_not_exported_and_do_not_block_an_import": "write_points",
    "store/test_usage_contract.py::test_filters_are_stored_canonically": "record_interactions (JSON text)",
    "store/test_workspaces.py::test_delete_is_all_or_nothing": "write_points",
    "store/test_workspaces.py::test_delete_leaves_other_workspaces_byte_for_byte": "write_points",
    "store/test_workspaces.py::test_delete_removes_every_row_of_the_workspace": "write_points",
}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(scope="session")
def saas() -> Registry:
    return load_pack("saas")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("store") != "postgres":
            continue
        node = item.nodeid.removeprefix("tests/")
        pending = PG_PENDING.get(node) or PG_PENDING.get(node.split("[")[0])
        if pending:
            item.add_marker(pytest.mark.xfail(
                strict=True, reason=f"postgres: {pending} not ported yet"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | str]:
    """A PostgreSQL server for the session (tests/pgserver.py), or why there is none."""
    try:
        server = PgServer.from_env_or_start()
    except RuntimeError as exc:
        yield str(exc)
        return
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer | str) -> Iterator[str]:
    """A migrated database that each postgres test's database is copied from (fast)."""
    if isinstance(pg_server, str):
        pytest.skip(f"no PostgreSQL server: {pg_server}")
    from kpidash.store.postgres import PostgresStore

    name = pg_server.new_name("kpidash_template")
    PostgresStore(pg_server.create_database(name)).close()
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def pg_database(pg_server: PgServer | str, pg_template: str) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database, dropped after the test."""
    assert isinstance(pg_server, PgServer)
    name = pg_server.new_name()
    yield pg_server.create_database(name, template=pg_template)
    pg_server.drop_database(name)


@pytest.fixture(params=["memory", "file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every Store implementation the contract suite must pass: DuckDB in memory and on
    disk, and PostgreSQL (a fresh database on the session's server; skipped without one)."""
    if request.param == "postgres":
        from kpidash.store.postgres import PostgresStore

        s: Store = PostgresStore(request.getfixturevalue("pg_database"))
    else:
        s = open_store(":memory:" if request.param == "memory"
                       else str(tmp_path / "kpidash.duckdb"))
    yield s
    s.close()


@pytest.fixture
def engine(tmp_path: Path, clock: FixedClock, saas: Registry) -> Iterator[Engine]:
    e = Engine(open_store(str(tmp_path / "engine.duckdb")), clock)
    e.register(saas)
    yield e
    e.close()
