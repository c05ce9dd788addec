"""The Store contract for memberships (a user's role in a workspace), and migration 8 from a
version 7 database with users (every implementation, see ``store``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from workspace_data import fill

from kpidash.errors import QueryError
from kpidash.store import open_store
from kpidash.store.base import Store
from kpidash.store.duckdb import MIGRATIONS, SCHEMA_VERSION

T0 = datetime(2024, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(days=1)


def user(uid: str, username: str, role: str = "viewer") -> dict[str, Any]:
    return {"id": uid, "username": username, "password_hash": f"h-{uid}", "role": role,
            "doc": {}, "created_at": T0, "disabled": False}


def test_round_trip(store: Store) -> None:
    store.create_workspace("acme", "Acme", None, T0)
    assert store.memberships("acme") == [] and store.user_memberships("u1") == []
    store.put_membership("acme", "u2", "viewer", T0)
    store.put_membership("acme", "u1", "admin", T0)
    assert store.memberships("acme") == [
        {"user_id": "u1", "role": "admin", "created_at": T0},
        {"user_id": "u2", "role": "viewer", "created_at": T0}]
    assert store.user_memberships("u1") == [
        {"workspace_id": "acme", "name": "Acme", "role": "admin", "created_at": T0}]
    # changing a role keeps when they joined
    store.put_membership("acme", "u2", "analyst", LATER)
    assert store.memberships("acme")[1] == {"user_id": "u2", "role": "analyst",
                                            "created_at": T0}
    assert store.delete_membership("acme", "u2")
    assert not store.delete_membership("acme", "u2")
    assert [m["user_id"] for m in store.memberships("acme")] == ["u1"]


def test_scoped_by_workspace_and_user(store: Store) -> None:
    store.create_workspace("acme", "Acme", None, T0)
    store.create_workspace("beta", "Beta", None, T0)
    store.put_membership("acme", "u1", "admin", T0)
    store.put_membership("beta", "u1", "viewer", T0)
    store.put_membership("beta", "u2", "analyst", T0)
    assert [(m["workspace_id"], m["name"], m["role"]) for m in store.user_memberships("u1")] == [
        ("acme", "Acme", "admin"), ("beta", "Beta", "viewer")]
    assert [m["user_id"] for m in store.memberships("acme")] == ["u1"]
    assert store.delete_membership("beta", "u1")
    assert [m["workspace_id"] for m in store.user_memberships("u1")] == ["acme"]
    assert [m["user_id"] for m in store.memberships("beta")] == ["u2"]
    assert store.memberships("nope") == []


def test_renamed_workspaces_show_their_new_name(store: Store) -> None:
    store.create_workspace("acme", "Acme", None, T0)
    store.put_membership("acme", "u1", "admin", T0)
    store.update_workspace("acme", name="Acme Europe", now=LATER)
    assert store.user_memberships("u1")[0]["name"] == "Acme Europe"


def test_bad_rows_are_refused(store: Store) -> None:
    with pytest.raises(QueryError, match="role"):
        store.put_membership("acme", "u1", "", T0)
    with pytest.raises(QueryError, match="now"):
        store.put_membership("acme", "u1", "admin", datetime(2024, 1, 1))
    assert store.memberships("acme") == []


def test_deleting_a_workspace_deletes_its_memberships_only(store: Store) -> None:
    fill(store, "a", 1.0, data=False)
    fill(store, "b", 2.0, data=False)
    assert len(store.memberships("a")) == 2
    counts = store.delete_workspace("a")
    assert counts["memberships"] == 2
    assert store.memberships("a") == []
    assert [m["workspace_id"] for m in store.user_memberships("ana")] == ["b"]


def test_deleting_a_user_deletes_their_memberships(store: Store) -> None:
    store.add_user(user("u1", "ana"))
    store.add_user(user("u2", "bob"))
    store.create_workspace("acme", "Acme", None, T0)
    for ws in ("acme", "default"):
        store.put_membership(ws, "u1", "admin", T0)
        store.put_membership(ws, "u2", "viewer", T0)
    assert store.delete_user("u1")
    assert store.user_memberships("u1") == []
    assert [m["user_id"] for m in store.memberships("acme")] == ["u2"]
    assert [m["user_id"] for m in store.memberships("default")] == ["u2"]


def test_memberships_are_not_exported_and_do_not_block_an_import(store: Store) -> None:
    fill(store, "a", 1.0)
    tables = dict(store.export_workspace("a"))
    assert "memberships" not in tables
    store.create_workspace("copy", "Copy", None, T0)
    store.put_membership("copy", "u1", "admin", T0)  # its creator
    store.import_workspace("copy", tables, T0)
    assert store.memberships("copy") == [{"user_id": "u1", "role": "admin", "created_at": T0}]


def test_memberships_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "m.duckdb")
    s = open_store(path)
    s.put_membership("default", "u1", "analyst", T0)
    s.close()
    s = open_store(path)
    try:
        assert s.memberships("default") == [{"user_id": "u1", "role": "analyst",
                                             "created_at": T0}]
    finally:
        s.close()


def test_migrates_a_version_7_database_with_users(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "v7.duckdb"
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE kpidash_schema (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for version in range(1, 8):
        for stmt in MIGRATIONS[version]:
            con.execute(stmt)
        con.execute("INSERT INTO kpidash_schema (version) VALUES (?)", [version])
    con.execute("INSERT INTO workspaces VALUES ('default', 'Default', '{}', ?)", [T0])
    con.execute("INSERT INTO workspaces VALUES ('acme', 'Acme', '{}', ?)", [T0])
    for uid, name, role, at in (("u1", "ana", "admin", T0), ("u2", "bob", "viewer", LATER),
                                ("u3", "cy", "analyst", T0)):
        con.execute("INSERT INTO users VALUES (?, ?, 'h', ?, '{}', ?, ?, false)",
                    [uid, name, role, at, at])
    con.close()
    s = open_store(str(path))
    try:
        assert s.schema_version() == SCHEMA_VERSION >= 8
        assert s.memberships("default") == [
            {"user_id": "u1", "role": "admin", "created_at": T0},
            {"user_id": "u2", "role": "viewer", "created_at": LATER},
            {"user_id": "u3", "role": "analyst", "created_at": T0}]
        assert s.memberships("acme") == []
        assert s.workspace("acme") == {
            "id": "acme", "name": "Acme", "created_at": T0, "updated_at": T0,
            "settings": {"timezone": "UTC", "currency": "USD", "fiscal_year_start": 1,
                         "default_theme": "corporate",
                         "quotas": {"max_kpis": None, "max_points": None,
                                    "ingest_points_per_minute": None}}}
        assert s.update_workspace("acme", name="Acme 2", now=LATER)
        got = s.workspace("acme")
        assert got is not None and (got["created_at"], got["updated_at"]) == (T0, LATER)
    finally:
        s.close()
