"""The Store contract for usage: recorded interactions and the insights shown to each user
(every implementation, see ``store``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kpidash.errors import QueryError
from kpidash.store import open_store
from kpidash.store.base import Store
from kpidash.store.duckdb import MIGRATIONS, SCHEMA_VERSION

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 2, 1, tzinfo=UTC)
H = timedelta(hours=1)


def act(user: str, kind: str, at: datetime, kpi_id: str | None = "revenue",
        filters: dict[str, Any] | None = None, role: str | None = "analyst") -> dict[str, Any]:
    return {"user": user, "role": role, "kind": kind, "kpi_id": kpi_id,
            "filters": filters if filters is not None else {}, "at": at}


# -- interactions -----------------------------------------------------------------------------


def test_interactions_round_trip(store: Store) -> None:
    assert store.interactions("default") == []
    store.record_interactions("default", [
        act("ana", "apply_filter", T0, filters={"region": ["EU"]}),
        act("bo", "open_dashboard", T0 + H, kpi_id=None, role=None),
    ])
    got = store.interactions("default")
    assert got == [
        {"user": "ana", "role": "analyst", "kind": "apply_filter", "kpi_id": "revenue",
         "filters": {"region": ["EU"]}, "at": T0},
        {"user": "bo", "role": None, "kind": "open_dashboard", "kpi_id": None, "filters": {},
         "at": T0 + H}]
    assert got[0]["at"].tzinfo is not None and got[0]["at"].utcoffset() == timedelta(0)


def test_filters_are_stored_canonically(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    store.record_interactions("default", [
        act("ana", "apply_filter", T0, filters={"region": ["NA", "EU", "NA"], "plan": "pro"}),
        {**act("ana", "apply_filter", T0 + H), "filters": None},
        act("ana", "view_kpi", datetime(2024, 1, 1, 3, tzinfo=paris)),  # any offset
    ])
    got = store.interactions("default")
    assert got[0]["filters"] == {"plan": ["pro"], "region": ["EU", "NA"]}
    assert list(got[0]["filters"]) == ["plan", "region"]
    assert got[1]["filters"] == {}
    assert got[2]["at"] == T0 + 2 * H
    # the stored text is the same however the set was sent
    texts = store._run(  # type: ignore[attr-defined]
        "SELECT DISTINCT filters::VARCHAR FROM interactions WHERE kind = 'apply_filter' "
        "AND filters::VARCHAR <> '{}'")
    store.record_interactions("default", [
        act("bo", "apply_filter", T0, filters={"region": ["EU", "NA"], "plan": ["pro"]})])
    assert store._run(  # type: ignore[attr-defined]
        "SELECT DISTINCT filters::VARCHAR FROM interactions WHERE kind = 'apply_filter' "
        "AND filters::VARCHAR <> '{}'") == texts
    assert texts == [('{"plan":["pro"],"region":["EU","NA"]}',)]


def test_interactions_are_oldest_first_then_in_insertion_order(store: Store) -> None:
    store.record_interactions("default", [act("ana", "view_kpi", T0 + 2 * H, "b"),
                                          act("ana", "view_kpi", T0 + H, "a"),
                                          act("ana", "view_kpi", T0 + 2 * H, "c")])
    store.record_interactions("default", [act("ana", "view_kpi", T0 + 2 * H, "d"),
                                          act("ana", "view_kpi", T0, "z")])
    store.record_interactions("default", [])
    assert [i["kpi_id"] for i in store.interactions("default")] == ["z", "a", "b", "c", "d"]


def test_interactions_filter_by_user_since_and_kinds(store: Store) -> None:
    store.record_interactions("default", [
        act("ana", "view_kpi", T0), act("bo", "view_kpi", T0 + H),
        act("ana", "apply_filter", T0 + 2 * H, filters={"region": ["EU"]}),
        act("ana", "save_filter", T0 + 3 * H, filters={"region": ["EU"]})])
    assert [i["kind"] for i in store.interactions("default", user="ana")] == [
        "view_kpi", "apply_filter", "save_filter"]
    assert [i["user"] for i in store.interactions("default", since=T0 + H)] == [
        "bo", "ana", "ana"]
    assert [i["kind"] for i in store.interactions(
        "default", user="ana", since=T0 + H, kinds=["view_kpi", "save_filter"])] == [
        "save_filter"]
    assert store.interactions("default", kinds=[]) == []
    assert store.interactions("default", user="nobody") == []


def test_bad_interactions_write_nothing(store: Store) -> None:
    store.record_interactions("default", [act("ana", "view_kpi", T0)])
    with pytest.raises(QueryError, match="timezone-aware"):
        store.record_interactions("default", [act("ana", "view_kpi", T0),
                                              act("ana", "view_kpi", datetime(2024, 1, 1))])
    with pytest.raises(QueryError, match="kind"):
        store.record_interactions("default", [act("ana", "", T0)])
    with pytest.raises(QueryError, match="user"):
        store.record_interactions("default", [{**act("ana", "view_kpi", T0), "user": None}])
    assert len(store.interactions("default")) == 1


# -- insight views ----------------------------------------------------------------------------


def test_marking_insights_counts_showings_and_keeps_the_last(store: Store) -> None:
    assert store.insight_views("default", "ana") == {}
    store.mark_insights_shown("default", "ana", ["k1", "k2"], NOW)
    store.mark_insights_shown("default", "ana", ["k2", "k2", "k3"], NOW + H)
    store.mark_insights_shown("default", "ana", [], NOW + 2 * H)
    assert store.insight_views("default", "ana") == {
        "k1": (1, NOW), "k2": (2, NOW + H), "k3": (1, NOW + H)}
    last = store.insight_views("default", "ana")["k2"][1]
    assert last.tzinfo is not None and last.utcoffset() == timedelta(0)


def test_first_shown_is_kept(store: Store) -> None:
    store.mark_insights_shown("default", "ana", ["k"], NOW)
    store.mark_insights_shown("default", "ana", ["k"], NOW + H)
    row = store._run(  # type: ignore[attr-defined]
        "SELECT epoch_us(first_shown), epoch_us(last_shown), times FROM insight_views")
    assert row == [(int(NOW.timestamp() * 1e6), int((NOW + H).timestamp() * 1e6), 2)]


def test_marking_the_same_key_twice_in_one_transaction(store: Store) -> None:
    with store.transaction():
        store.mark_insights_shown("default", "ana", ["k"], NOW)
        store.mark_insights_shown("default", "ana", ["k"], NOW + H)
    assert store.insight_views("default", "ana") == {"k": (2, NOW + H)}


def test_insight_views_are_per_user(store: Store) -> None:
    store.mark_insights_shown("default", "ana", ["k"], NOW)
    store.mark_insights_shown("default", "bo", ["k"], NOW + H)
    store.mark_insights_shown("default", "bo", ["k"], NOW + 2 * H)
    assert store.insight_views("default", "ana") == {"k": (1, NOW)}
    assert store.insight_views("default", "bo") == {"k": (2, NOW + 2 * H)}


# -- workspaces, transactions, durability -----------------------------------------------------


def fill(store: Store, ws: str = "default") -> None:
    store.record_interactions(ws, [act("ana", "view_kpi", T0),
                                   act("ana", "apply_filter", T0 + H, filters={"region": "EU"})])
    store.mark_insights_shown(ws, "ana", ["k1"], NOW)


def snapshot(store: Store, ws: str = "default") -> dict[str, Any]:
    return {"interactions": store.interactions(ws), "views": store.insight_views(ws, "ana")}


EMPTY: dict[str, Any] = {"interactions": [], "views": {}}


def test_usage_is_scoped_by_workspace(store: Store) -> None:
    store.ensure_workspace("acme")
    fill(store, "acme")
    assert snapshot(store, "default") == EMPTY
    store.mark_insights_shown("default", "ana", ["k1"], NOW + H)
    assert store.insight_views("acme", "ana") == {"k1": (1, NOW)}
    assert store.insight_views("default", "ana") == {"k1": (1, NOW + H)}
    assert len(store.interactions("acme", user="ana")) == 2


def test_failure_in_an_outer_transaction_rolls_back_usage(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        fill(store)
        assert store.interactions("default")
        raise RuntimeError("boom")
    assert snapshot(store) == EMPTY
    fill(store)
    assert snapshot(store) != EMPTY


def test_usage_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "usage.duckdb")
    s = open_store(path)
    fill(s)
    before = snapshot(s)
    s.close()
    s = open_store(path)
    try:
        assert s.schema_version() == SCHEMA_VERSION
        assert snapshot(s) == before != EMPTY
        # the sequence continues: a new row at the same time still comes after the old ones
        s.record_interactions("default", [act("ana", "save_filter", T0 + H)])
        assert [i["kind"] for i in s.interactions("default")] == [
            "view_kpi", "apply_filter", "save_filter"]
        s.mark_insights_shown("default", "ana", ["k1"], NOW + H)
        assert s.insight_views("default", "ana") == {"k1": (2, NOW + H)}
    finally:
        s.close()


def test_migrates_a_version_5_database(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "v5.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE kpidash_schema (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for version in range(1, 6):
        for stmt in MIGRATIONS[version]:
            con.execute(stmt)
        con.execute("INSERT INTO kpidash_schema (version) VALUES (?)", [version])
    con.execute("INSERT INTO workspaces VALUES ('default', 'Default', '{}', now())")
    con.execute("INSERT INTO series VALUES (1, 'default', 'sales', 'sales\x1f', "
                "TIMESTAMPTZ '2024-01-01 00:00:00+00', NULL)")
    con.execute("INSERT INTO points VALUES (1, TIMESTAMPTZ '2024-01-01 00:00:00+00', 4.0, "
                "NULL, NULL, now(), NULL)")
    con.execute("INSERT INTO alert_rules VALUES ('default', 'r1', '{\"id\": \"r1\"}', now())")
    con.close()
    s = open_store(str(path))
    try:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.read_points("default", "sales")["value"].to_pylist() == [4.0]
        assert s.alert_rules("default") == [{"id": "r1"}]
        assert snapshot(s) == EMPTY
        fill(s)
        assert snapshot(s) != EMPTY
    finally:
        s.close()
