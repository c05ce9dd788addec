"""The Store contract for accounts: users, sessions (refresh-token families), failed logins
and dashboards (every implementation, see ``store``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kpidash.errors import Conflict, QueryError
from kpidash.store import open_store
from kpidash.store.base import Store
from kpidash.store.duckdb import MIGRATIONS, SCHEMA_VERSION

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)


def user(uid: str = "u1", username: str = "ana", role: str = "viewer",
         **extra: Any) -> dict[str, Any]:
    return {"id": uid, "username": username, "password_hash": f"hash-{uid}", "role": role,
            "doc": {"display_name": username.title(), "followed": ["mrr"]}, "created_at": T0,
            "disabled": False, **extra}


def token_row(rid: str, family: str, uid: str = "u1", at: datetime = T0,
              rotated_from: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "family_id": family, "user_id": uid, "refresh_hash": f"h-{rid}",
            "created_at": at, "last_seen": at, "expires_at": T0 + 30 * DAY,
            "user_agent": "curl", "address": "10.0.0.1", "rotated_from": rotated_from,
            **extra}


def board(bid: str, owner: str = "u1", name: str = "Board", shared: list[str] | None = None,
          ) -> dict[str, Any]:
    return {"id": bid, "owner_id": owner, "name": name, "spec": {"kpis": ["mrr"]},
            "shared_with": shared or [], "created_at": T0, "updated_at": T0}


# -- users ------------------------------------------------------------------------------------


def test_users_round_trip(store: Store) -> None:
    assert store.users() == [] and store.user("u1") is None
    store.add_user(user())
    got = store.user("u1")
    assert got == {"id": "u1", "username": "ana", "password_hash": "hash-u1", "role": "viewer",
                   "doc": {"display_name": "Ana", "followed": ["mrr"]}, "created_at": T0,
                   "updated_at": T0, "disabled": False}
    assert got["created_at"].utcoffset() == timedelta(0)
    assert store.user_by_name("ana") == got
    assert store.user_by_name("ANA") is None
    store.add_user(user("u2", "bo"))
    store.add_user(user("u0", "zed"))
    assert [u["username"] for u in store.users()] == ["ana", "bo", "zed"]


@pytest.mark.parametrize(("row", "match"), [
    (user("u9", "ana"), "username 'ana'"),
    (user("u1", "other"), "id 'u1'"),
], ids=["same-username", "same-id"])
def test_taken_usernames_and_ids_conflict(store: Store, row: dict[str, Any], match: str) -> None:
    store.add_user(user())
    with pytest.raises(Conflict, match=match):
        store.add_user(row)
    assert len(store.users()) == 1


def test_bad_user_rows_are_refused(store: Store) -> None:
    with pytest.raises(QueryError, match="created_at"):
        store.add_user(user(created_at=datetime(2024, 1, 1)))
    with pytest.raises(QueryError, match="username"):
        store.add_user(user(username=""))
    assert store.users() == []


def test_update_user(store: Store) -> None:
    store.add_user(user())
    assert store.update_user("u1", {"role": "admin", "disabled": True,
                                    "doc": {"theme": "dark"}, "password_hash": "new"}, T0 + H)
    got = store.user("u1")
    assert got is not None
    assert (got["role"], got["disabled"], got["doc"], got["password_hash"]) == (
        "admin", True, {"theme": "dark"}, "new")
    assert (got["created_at"], got["updated_at"]) == (T0, T0 + H)
    assert not store.update_user("nobody", {"role": "admin"}, T0)
    with pytest.raises(QueryError, match="username"):
        store.update_user("u1", {"username": "x"}, T0)


def test_delete_user_takes_sessions_and_owned_dashboards(store: Store) -> None:
    store.ensure_workspace("acme")
    store.add_user(user())
    store.add_user(user("u2", "bo"))
    store.add_session(token_row("s1", "s1"))
    store.add_session(token_row("s2", "s2", uid="u2"))
    store.put_dashboard("default", board("d1", owner="u1"))
    store.put_dashboard("acme", board("d2", owner="u1"))
    store.put_dashboard("default", board("d3", owner="u2", shared=["u1", "u3"]))
    assert store.delete_user("u1")
    assert not store.delete_user("u1")
    assert store.user("u1") is None and store.sessions("u1") == []
    assert store.session_row(token_id="s1") is None
    assert [d["id"] for d in store.dashboards("default")] == ["d3"]
    assert store.dashboards("acme") == []
    d3 = store.dashboard("default", "d3")
    assert d3 is not None and d3["shared_with"] == ["u3"]
    assert [s["id"] for s in store.sessions("u2")] == ["s2"]


# -- sessions ---------------------------------------------------------------------------------


def test_session_round_trip(store: Store) -> None:
    assert store.add_session(token_row("s1", "s1"))
    row = store.session_row(refresh_hash="h-s1")
    assert row == {"id": "s1", "family_id": "s1", "user_id": "u1", "refresh_hash": "h-s1",
                   "created_at": T0, "last_seen": T0, "expires_at": T0 + 30 * DAY,
                   "revoked_at": None, "user_agent": "curl", "address": "10.0.0.1",
                   "rotated_from": None, "current": True}
    assert store.session_row(token_id="s1") == row
    assert store.session_row(refresh_hash="nope") is None
    with pytest.raises(QueryError):
        store.session_row()
    fam = store.session("s1")
    assert fam == {**row, "token_id": "s1"}


def test_rotation_keeps_the_chain_and_moves_the_current_row(store: Store) -> None:
    store.add_session(token_row("s1", "s1"))
    assert store.add_session(token_row("t2", "s1", at=T0 + H, rotated_from="s1",
                                       address="10.0.0.2"))
    old, new = store.session_row(token_id="s1"), store.session_row(refresh_hash="h-t2")
    assert old is not None and new is not None
    assert (old["current"], new["current"], new["rotated_from"]) == (False, True, "s1")
    # last_seen is family-wide
    assert old["last_seen"] == new["last_seen"] == T0 + H
    fam = store.session("s1")
    assert fam is not None
    assert (fam["id"], fam["token_id"], fam["created_at"], fam["refresh_hash"],
            fam["address"]) == ("s1", "t2", T0, "h-t2", "10.0.0.2")
    # a rotated-out row cannot be rotated again, nor can a revoked one
    assert not store.add_session(token_row("t3", "s1", at=T0 + 2 * H, rotated_from="s1"))
    assert store.session_row(token_id="t3") is None
    store.revoke_sessions(T0 + 2 * H, family_id="s1")
    assert not store.add_session(token_row("t4", "s1", at=T0 + 3 * H, rotated_from="t2"))
    assert not store.add_session(token_row("t5", "s1", rotated_from="missing"))
    assert [s["id"] for s in store.sessions("u1")] == ["s1"]


def test_sessions_newest_login_first_touch_and_revoke(store: Store) -> None:
    store.add_session(token_row("a", "a", at=T0))
    store.add_session(token_row("b", "b", at=T0 + DAY))
    store.add_session(token_row("a2", "a", at=T0 + 2 * DAY, rotated_from="a"))
    store.add_session(token_row("c", "c", uid="u2", at=T0 + 3 * DAY))
    assert [(s["id"], s["created_at"]) for s in store.sessions("u1")] == [
        ("b", T0 + DAY), ("a", T0)]
    store.touch_session("b", T0 + 4 * DAY)
    fam = store.session("b")
    assert fam is not None and fam["last_seen"] == T0 + 4 * DAY
    assert store.revoke_sessions(T0 + 5 * DAY, family_id="a") == 1
    assert store.revoke_sessions(T0 + 6 * DAY, user_id="u1") == 1  # only b was left
    assert store.revoke_sessions(T0 + 6 * DAY, user_id="u1") == 0
    revoked = {s["id"]: s["revoked_at"] for s in store.sessions("u1")}
    assert revoked == {"a": T0 + 5 * DAY, "b": T0 + 6 * DAY}
    old = store.session_row(token_id="a")
    assert old is not None and old["revoked_at"] == T0 + 5 * DAY  # family-wide
    fam_c = store.session("c")
    assert fam_c is not None and fam_c["revoked_at"] is None
    with pytest.raises(QueryError):
        store.revoke_sessions(T0)


def test_refresh_hashes_are_unique(store: Store) -> None:
    store.add_session(token_row("a", "a"))
    with pytest.raises(Conflict, match="refresh hash already exists"):
        store.add_session({**token_row("b", "b"), "refresh_hash": "h-a"})
    assert store.session("b") is None


# -- login failures ---------------------------------------------------------------------------


def test_login_failures(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    store.add_login_failures(["user:ana", "addr:1"], T0)
    store.add_login_failures(["user:ana"], datetime(2024, 1, 1, 2, tzinfo=paris))  # T0 + 1h
    store.add_login_failures([], T0)
    assert store.login_failures(["user:ana", "addr:1", "user:bo"], T0) == {
        "user:ana": [T0, T0 + H], "addr:1": [T0], "user:bo": []}
    assert store.login_failures(["user:ana"], T0 + H) == {"user:ana": [T0 + H]}
    assert store.login_failures([], T0) == {}
    assert store.clear_login_failures(before=T0 + H) == 2
    assert store.login_failures(["user:ana", "addr:1"], T0) == {
        "user:ana": [T0 + H], "addr:1": []}
    store.add_login_failures(["addr:1"], T0)
    assert store.clear_login_failures(["user:ana"]) == 1
    assert store.clear_login_failures([]) == 0
    assert store.login_failures(["user:ana", "addr:1"], T0) == {"user:ana": [], "addr:1": [T0]}
    with pytest.raises(QueryError, match="timezone-aware"):
        store.add_login_failures(["x"], datetime(2024, 1, 1))


# -- dashboards -------------------------------------------------------------------------------


def test_dashboards_round_trip_and_visibility(store: Store) -> None:
    store.put_dashboard("default", board("d2", owner="u1", name="Beta"))
    store.put_dashboard("default", board("d1", owner="u2", name="Alpha", shared=["u1"]))
    store.put_dashboard("default", board("d3", owner="u2", name="Alpha"))
    got = store.dashboard("default", "d1")
    assert got == {"id": "d1", "owner_id": "u2", "name": "Alpha", "spec": {"kpis": ["mrr"]},
                   "shared_with": ["u1"], "created_at": T0, "updated_at": T0}
    assert [d["id"] for d in store.dashboards("default")] == ["d1", "d3", "d2"]
    assert [d["id"] for d in store.dashboards("default", visible_to="u1")] == ["d1", "d2"]
    assert [d["id"] for d in store.dashboards("default", visible_to="u3")] == []
    # replace by id
    store.put_dashboard("default", {**board("d2", name="Gamma"), "updated_at": T0 + H})
    d2 = store.dashboard("default", "d2")
    assert d2 is not None and (d2["name"], d2["updated_at"]) == ("Gamma", T0 + H)
    assert store.delete_dashboard("default", "d2")
    assert not store.delete_dashboard("default", "d2")
    assert store.dashboard("default", "d2") is None


def test_dashboards_are_scoped_by_workspace(store: Store) -> None:
    store.ensure_workspace("acme")
    store.put_dashboard("acme", board("d1"))
    assert store.dashboards("default") == [] and store.dashboard("default", "d1") is None
    assert not store.delete_dashboard("default", "d1")
    store.put_dashboard("default", board("d1", name="Other"))
    d = store.dashboard("acme", "d1")
    assert d is not None and d["name"] == "Board"


# -- transactions, durability, migration ------------------------------------------------------


def fill(store: Store) -> None:
    store.add_user(user())
    store.add_session(token_row("s1", "s1"))
    store.add_session(token_row("t2", "s1", at=T0 + H, rotated_from="s1"))
    store.add_login_failures(["user:ana"], T0)
    store.put_dashboard("default", board("d1", shared=["u2"]))


def snapshot(store: Store) -> dict[str, Any]:
    return {"users": store.users(), "sessions": store.sessions("u1"),
            "rows": [store.session_row(token_id=t) for t in ("s1", "t2")],
            "failures": store.login_failures(["user:ana"], T0 - DAY),
            "dashboards": store.dashboards("default")}


EMPTY = {"users": [], "sessions": [], "rows": [None, None], "failures": {"user:ana": []},
         "dashboards": []}


def test_failure_in_an_outer_transaction_rolls_back_accounts(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        fill(store)
        assert store.users()
        raise RuntimeError("boom")
    assert snapshot(store) == EMPTY


def test_accounts_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "accounts.duckdb")
    s = open_store(path)
    fill(s)
    before = snapshot(s)
    s.close()
    s = open_store(path)
    try:
        assert s.schema_version() == SCHEMA_VERSION
        assert snapshot(s) == before != EMPTY
        assert before["rows"][0]["current"] is False and before["rows"][1]["current"] is True
        with pytest.raises(Conflict):
            s.add_user(user("u9", "ana"))
    finally:
        s.close()


def test_migrates_a_version_6_database(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "v6.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE kpidash_schema (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for version in range(1, 7):
        for stmt in MIGRATIONS[version]:
            con.execute(stmt)
        con.execute("INSERT INTO kpidash_schema (version) VALUES (?)", [version])
    con.execute("INSERT INTO workspaces VALUES ('default', 'Default', '{}', now())")
    con.execute("INSERT INTO alert_rules VALUES ('default', 'r1', '{\"id\": \"r1\"}', now())")
    con.execute("INSERT INTO insight_views VALUES ('default', 'ana', 'k1', "
                "TIMESTAMPTZ '2024-01-01 00:00:00+00', TIMESTAMPTZ '2024-01-01 00:00:00+00', 3)")
    con.close()
    s = open_store(str(path))
    try:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.alert_rules("default") == [{"id": "r1"}]
        assert s.insight_views("default", "ana") == {"k1": (3, T0)}
        assert snapshot(s) == EMPTY
        fill(s)
        assert snapshot(s) != EMPTY
    finally:
        s.close()
