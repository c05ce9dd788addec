"""The Store contract for ingest tokens (write-only credentials of one workspace), and
migration 9 from a version 8 database (every implementation, see ``store``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from workspace_data import fill

from kpidash.errors import Conflict, QueryError
from kpidash.store import open_store
from kpidash.store.base import Store
from kpidash.store.duckdb import MIGRATIONS, SCHEMA_VERSION
from kpidash.store.duckdb.workspaces import MEMBER_TABLES

T0 = datetime(2024, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)


def token(tid: str, name: str = "telegraf", *, hash_: str | None = None,
          expires: datetime | None = None, at: datetime = T0) -> dict[str, Any]:
    return {"id": tid, "name": name, "token_hash": hash_ or f"h-{tid}", "created_by": "u1",
            "created_at": at, "expires_at": expires}


def listed(tid: str, name: str = "telegraf", ws: str = "acme", *, at: datetime = T0,
           **extra: Any) -> dict[str, Any]:
    return {"workspace": ws, "id": tid, "name": name, "created_by": "u1", "created_at": at,
            "last_used_at": None, "revoked_at": None, "expires_at": None, **extra}


@pytest.fixture
def acme(store: Store) -> Store:
    store.create_workspace("acme", "Acme", None, T0)
    store.create_workspace("beta", "Beta", None, T0)
    return store


def test_round_trip_without_hashes(acme: Store) -> None:
    assert acme.ingest_tokens("acme") == []
    month = LATER + timedelta(days=30)
    acme.add_ingest_token("acme", token("t2", "batch", at=LATER, expires=month))
    acme.add_ingest_token("acme", token("t1"))
    got = acme.ingest_tokens("acme")
    assert got == [listed("t1"), listed("t2", "batch", at=LATER, expires_at=month)]
    assert all("token_hash" not in t for t in got)
    assert acme.ingest_token_by_hash("h-t2") == got[1]
    assert acme.ingest_token_by_hash("h-nope") is None


def test_lookup_by_hash_names_the_workspace(acme: Store) -> None:
    acme.add_ingest_token("acme", token("t1", hash_="h-a"))
    acme.add_ingest_token("beta", token("t1", "beta's", hash_="h-b"))
    a, b = acme.ingest_token_by_hash("h-a"), acme.ingest_token_by_hash("h-b")
    assert a is not None and b is not None
    assert (a["workspace"], a["name"]) == ("acme", "telegraf")
    assert (b["workspace"], b["name"]) == ("beta", "beta's")
    assert [t["name"] for t in acme.ingest_tokens("beta")] == ["beta's"]


def test_touch_and_revoke_are_scoped_and_revocation_keeps_its_first_time(acme: Store) -> None:
    acme.add_ingest_token("acme", token("t1", hash_="h-a"))
    acme.add_ingest_token("beta", token("t1", hash_="h-b"))
    acme.touch_ingest_token("acme", "t1", LATER)
    assert acme.revoke_ingest_token("acme", "t1", LATER)
    assert acme.revoke_ingest_token("acme", "t1", LATER + timedelta(days=1))  # found, kept
    assert not acme.revoke_ingest_token("acme", "nope", LATER)
    assert acme.ingest_tokens("acme") == [listed("t1", last_used_at=LATER, revoked_at=LATER)]
    assert acme.ingest_tokens("beta") == [listed("t1", ws="beta")]


def test_ids_and_secrets_are_unique(acme: Store) -> None:
    acme.add_ingest_token("acme", token("t1", hash_="h-a"))
    with pytest.raises(Conflict, match="t1"):
        acme.add_ingest_token("acme", token("t1", hash_="h-other"))
    with pytest.raises(Conflict):
        acme.add_ingest_token("beta", token("t9", hash_="h-a"))
    assert len(acme.ingest_tokens("acme")) == 1 and acme.ingest_tokens("beta") == []


@pytest.mark.parametrize(("field", "value"), [
    ("name", ""), ("token_hash", None), ("created_by", 7),
    ("created_at", datetime(2024, 1, 1)), ("expires_at", "2025-01-01")])
def test_bad_rows_are_refused_naming_the_field(acme: Store, field: str, value: Any) -> None:
    with pytest.raises(QueryError, match=field):
        acme.add_ingest_token("acme", {**token("t1"), field: value})
    assert acme.ingest_tokens("acme") == []


def test_deleted_with_the_workspace_and_never_exported(acme: Store) -> None:
    assert "ingest_tokens" in MEMBER_TABLES
    fill(acme, "acme", 1.0, data=False)
    acme.add_ingest_token("beta", token("t1", hash_="h-b"))
    assert "ingest_tokens" not in dict(acme.export_workspace("acme"))
    assert acme.delete_workspace("acme")["ingest_tokens"] == 1
    assert acme.ingest_tokens("acme") == [] and acme.ingest_token_by_hash("h-acme-t1") is None
    assert acme.ingest_token_by_hash("h-b") is not None


def test_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "tokens.duckdb")
    s = open_store(path)
    s.add_ingest_token("default", token("t1"))
    s.touch_ingest_token("default", "t1", LATER)
    before = s.ingest_tokens("default")
    s.close()
    s = open_store(path)
    try:
        assert s.ingest_tokens("default") == before
    finally:
        s.close()


def test_migrates_a_version_8_database(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "v8.duckdb"
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE kpidash_schema (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for version in range(1, 9):
        for stmt in MIGRATIONS[version]:
            con.execute(stmt)
        con.execute("INSERT INTO kpidash_schema (version) VALUES (?)", [version])
    con.execute("INSERT INTO workspaces VALUES ('default', 'Default', '{}', ?, ?)", [T0, T0])
    con.close()
    s = open_store(str(path))
    try:
        assert s.schema_version() == SCHEMA_VERSION >= 9
        assert s.ingest_tokens("default") == []
        s.add_ingest_token("default", token("t1"))
        assert s.ingest_tokens("default") == [listed("t1", ws="default")]
    finally:
        s.close()
