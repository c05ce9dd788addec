"""Workspace records and complete deletion (every implementation, see ``store``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from workspace_data import NOW, T0, batch, catalog, fill, raw_snapshot

from kpidash.errors import Conflict, NotFound, ValidationFailed
from kpidash.store.base import Store
from kpidash.store.duckdb.workspaces import (
    GLOBAL_TABLES,
    MEMBER_TABLES,
    STATE_TABLES,
    TABLE_NAMES,
)

DEFAULTS = {"timezone": "UTC", "currency": "USD", "fiscal_year_start": 1,
            "default_theme": "corporate",
            "quotas": {"max_kpis": None, "max_points": None, "ingest_points_per_minute": None}}


def test_create_read_list(store: Store) -> None:
    store.create_workspace("acme", "Acme Inc.", {"currency": "EUR"}, NOW)
    store.create_workspace("beta", "Beta", None, NOW)
    assert store.workspace("acme") == {"id": "acme", "name": "Acme Inc.",
                                       "settings": {**DEFAULTS, "currency": "EUR"},
                                       "created_at": NOW, "updated_at": NOW}
    assert store.workspace("nope") is None
    assert [w["id"] for w in store.workspaces()] == ["acme", "beta", "default"]
    assert store.workspace("default")["settings"] == DEFAULTS  # type: ignore[index]


def test_create_refuses_a_taken_id_bad_ids_and_bad_settings(store: Store) -> None:
    store.create_workspace("acme", "Acme", None, NOW)
    with pytest.raises(Conflict, match="acme"):
        store.create_workspace("acme", "Other", None, NOW)
    with pytest.raises(ValidationFailed):
        store.create_workspace("Acme!", "Acme", None, NOW)
    with pytest.raises(ValidationFailed) as exc:
        store.create_workspace("beta", "Beta", {"timezone": "Nowhere/Land"}, NOW)
    assert exc.value.report.errors[0].location.field == "timezone"
    # the traceback holds this frame, which holds exc: a cycle that kept the store's DuckDB
    # connection alive until interpreter exit (nanobind then reported "leaked instances")
    del exc
    assert [w["id"] for w in store.workspaces()] == ["acme", "default"]


def test_update_renames_and_merges_settings(store: Store) -> None:
    store.create_workspace("acme", "Acme", {"currency": "EUR"}, NOW)
    later = NOW + timedelta(days=1)
    assert store.update_workspace("acme", settings={"fiscal_year_start": 4}, now=later)
    assert store.update_workspace("acme", name="Acme Europe", now=later)
    got = store.workspace("acme")
    assert got is not None and got["name"] == "Acme Europe"
    assert got["created_at"] == NOW and got["updated_at"] == later
    assert got["settings"] == {**DEFAULTS, "currency": "EUR", "fiscal_year_start": 4}
    assert not store.update_workspace("nope", name="x", now=later)
    with pytest.raises(ValidationFailed):
        store.update_workspace("acme", settings={"default_theme": "neon"}, now=later)
    assert store.workspace("acme") == got  # nothing half-applied


def test_owned_tables_cover_the_catalog(store: Store) -> None:
    """Every table with a workspace_id or series_id column is deleted, exported and imported
    with its workspace (or, for memberships and server state, deleted only); every other
    table is declared global. A new table fails here until it is classified in
    store/duckdb/workspaces.py."""
    tables = catalog(store)
    scoped = {t for t, cols in tables.items() if {"workspace_id", "series_id"} & set(cols)}
    deleted_only = set(MEMBER_TABLES) | set(STATE_TABLES)
    assert scoped | {"workspaces"} == set(TABLE_NAMES) | deleted_only
    assert not set(TABLE_NAMES) & deleted_only
    assert not set(MEMBER_TABLES) & set(STATE_TABLES)
    assert set(tables) == set(TABLE_NAMES) | deleted_only | GLOBAL_TABLES


def test_delete_removes_every_row_of_the_workspace(store: Store) -> None:
    fill(store, "a", 1.0)
    fill(store, "b", 2.0)
    before = raw_snapshot(store, "a")
    assert all(before.values()), [t for t, rows in before.items() if not rows]  # all filled
    counts = store.delete_workspace("a")
    assert counts == {t: len(rows) for t, rows in before.items()}
    assert not any(raw_snapshot(store, "a").values())
    assert store.workspace("a") is None
    assert store.delete_workspace("a") == dict.fromkeys(counts, 0)


def test_points_are_never_written_into_a_workspace_that_does_not_exist(store: Store) -> None:
    fill(store, "a", 1.0)
    store.delete_workspace("a")
    for ws in ("a", "never-made"):
        with pytest.raises(NotFound, match=f"no workspace '{ws}'"):
            store.write_points(ws, batch([("sales", T0, 1.0, {"region": "EU"})]), NOW)
        assert store.point_count(ws) == 0 and store.series_count(ws) == 0


def test_delete_leaves_other_workspaces_byte_for_byte(store: Store) -> None:
    fill(store, "a", 1.0)
    fill(store, "b", 2.0)
    b_before = raw_snapshot(store, "b")
    store.delete_workspace("a")
    assert raw_snapshot(store, "b") == b_before


def test_delete_is_all_or_nothing(store: Store) -> None:
    fill(store, "a", 1.0)
    before = raw_snapshot(store, "a")
    with pytest.raises(RuntimeError), store.transaction():
        store.delete_workspace("a")
        raise RuntimeError("boom")
    assert raw_snapshot(store, "a") == before
