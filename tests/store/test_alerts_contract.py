"""The Store contract for alerting state: rules, alert instances, history, acknowledgements,
silences, notification groups and data freshness (every implementation, see ``store``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from kpidash.core.batch import CleanBatch, validate
from kpidash.core.registry import build_registry
from kpidash.errors import AlertError
from kpidash.store import open_store
from kpidash.store.base import Store
from kpidash.store.duckdb import MIGRATIONS, SCHEMA_VERSION

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 2, 1, tzinfo=UTC)
REG = build_registry([
    {"id": "sales", "name": "Sales", "dimensions": ["region"]},
    {"id": "temp", "name": "Temp", "aggregation": "mean"},
])


def batch(rows: list[tuple[str, datetime, float, dict[str, str]]]) -> CleanBatch:
    dims = sorted({d for *_, ds in rows for d in ds})
    t = pa.table({"timestamp": [r[1].isoformat() for r in rows], "kpi": [r[0] for r in rows],
                  "value": [r[2] for r in rows],
                  **{d: [r[3].get(d) for r in rows] for d in dims}})
    b, report = validate(t, REG)
    assert b is not None, report.summary()
    return b


def rule(rule_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "kpi": "sales", "kind": "threshold", "op": ">", "value": 10.0,
            "labels": {"team": "growth"}, **extra}


def alert(fp: str, rule_id: str = "r1", state: str = "firing", **extra: Any) -> dict[str, Any]:
    return {"fingerprint": fp, "rule_id": rule_id, "kpi_id": "sales", "state": state,
            "severity": "high", "since": T0.isoformat(), "labels": {"region": "EU"}, **extra}


def hist(fp: str, to_state: str, at: datetime, value: float = 1.0,
         **extra: Any) -> dict[str, Any]:
    return {"fingerprint": fp, "from_state": "pending", "to_state": to_state, "at": at,
            "severity": "high", "value": value, **extra}


def silence(sid: str, start: datetime | str, end: datetime | str) -> dict[str, Any]:
    return {"id": sid, "start": start if isinstance(start, str) else start.isoformat(),
            "end": end if isinstance(end, str) else end.isoformat(),
            "matchers": [{"label": "region", "value": "EU"}], "by": "ana", "comment": "deploy"}


# -- rules ------------------------------------------------------------------------------------


def test_rules_round_trip_upsert_and_order(store: Store) -> None:
    assert store.alert_rules("default") == []
    store.put_alert_rules("default", [rule("r2"), rule("r1")], NOW)
    assert [r["id"] for r in store.alert_rules("default")] == ["r1", "r2"]
    store.put_alert_rules("default", [rule("r1", value=20.0)], NOW + timedelta(hours=1))
    got = store.alert_rules("default")
    assert got == [rule("r1", value=20.0), rule("r2")]


def test_deleting_a_rule_deletes_its_alerts_history_and_acknowledgements(store: Store) -> None:
    store.put_alert_rules("default", [rule("r1"), rule("r2")], NOW)
    store.put_alert_instances("default", [alert("a", "r1"), alert("b", "r2")], NOW)
    store.add_alert_history("default", [hist("a", "firing", T0), hist("b", "firing", T0)])
    store.add_acknowledgement("default", "a", "ana", T0, "looking")
    store.add_acknowledgement("default", "b", "bo", T0, "mine")
    assert store.delete_alert_rule("default", "r1") is True
    assert [r["id"] for r in store.alert_rules("default")] == ["r2"]
    assert [a["fingerprint"] for a in store.alert_instances("default")] == ["b"]
    assert [h["fingerprint"] for h in store.alert_history("default")] == ["b"]
    assert [a["fingerprint"] for a in store.acknowledgements("default")] == ["b"]
    assert store.delete_alert_rule("default", "r1") is False


# -- alert instances --------------------------------------------------------------------------


def test_alert_instances_upsert_by_fingerprint_and_filter(store: Store) -> None:
    store.put_alert_instances("default", [alert("fp2", "r1", "pending"), alert("fp1", "r1"),
                                          alert("fp3", "r2", "resolved")], NOW)
    assert [a["fingerprint"] for a in store.alert_instances("default")] == ["fp1", "fp2", "fp3"]
    store.put_alert_instances("default", [alert("fp2", "r1", "firing", note="escalated")],
                              NOW + timedelta(minutes=5))
    [fp2] = store.alert_instances("default", fingerprint="fp2")
    assert fp2 == alert("fp2", "r1", "firing", note="escalated")
    assert [a["fingerprint"] for a in store.alert_instances("default", rule_id="r1")] == [
        "fp1", "fp2"]
    assert [a["fingerprint"] for a in store.alert_instances(
        "default", states=["firing", "resolved"])] == ["fp1", "fp2", "fp3"]
    assert [a["fingerprint"] for a in store.alert_instances(
        "default", rule_id="r2", states=["resolved"])] == ["fp3"]
    assert store.alert_instances("default", states=[]) == []
    assert store.alert_instances("default", fingerprint="nope") == []


def test_same_alert_upserted_twice_in_one_transaction(store: Store) -> None:
    with store.transaction():
        store.put_alert_instances("default", [alert("a", state="pending")], NOW)
        store.put_alert_instances("default", [alert("a", state="firing")], NOW)
        store.put_alert_rules("default", [rule("r1")], NOW)
        store.put_alert_rules("default", [rule("r1", value=3.0)], NOW)
        store.put_silence("default", silence("s", T0, T0 + timedelta(hours=1)), NOW)
        store.put_silence("default", silence("s", T0, T0 + timedelta(hours=2)), NOW)
        store.put_alert_groups("default", {"g": {"n": 1}}, NOW)
        store.put_alert_groups("default", {"g": {"n": 2}}, NOW)
    assert [a["state"] for a in store.alert_instances("default")] == ["firing"]
    assert store.alert_rules("default")[0]["value"] == 3.0
    assert [s["end"] for s in store.silences("default")] == [
        (T0 + timedelta(hours=2)).isoformat()]
    assert store.alert_groups("default") == {"g": {"n": 2}}


# -- history ----------------------------------------------------------------------------------


def test_history_is_ordered_by_time_then_insertion(store: Store) -> None:
    t1, t2 = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    store.add_alert_history("default", [hist("a", "firing", t2, 12.0),
                                        hist("a", "pending", t1, 11.0, detail="above 10")])
    store.add_alert_history("default", [hist("a", "resolved", t2, 9.0), hist("b", "firing", t1)])
    got = store.alert_history("default", "a")
    assert [(h["to_state"], h["at"], h["value"]) for h in got] == [
        ("pending", t1, 11.0), ("firing", t2, 12.0), ("resolved", t2, 9.0)]
    assert got[0] == {"fingerprint": "a", "from_state": "pending", "to_state": "pending",
                      "at": t1, "severity": "high", "value": 11.0, "detail": "above 10"}
    assert got[1]["detail"] is None
    assert got[0]["at"].tzinfo is not None and got[0]["at"].utcoffset() == timedelta(0)
    assert len(store.alert_history("default")) == 4


def test_history_since_and_limit_keep_the_latest_rows_oldest_first(store: Store) -> None:
    rows = [hist("a", f"s{i}", T0 + timedelta(minutes=i)) for i in range(6)]
    store.add_alert_history("default", rows)
    assert [h["to_state"] for h in store.alert_history("default", "a", limit=2)] == ["s4", "s5"]
    since = T0 + timedelta(minutes=2)
    assert [h["to_state"] for h in store.alert_history("default", since=since)] == [
        "s2", "s3", "s4", "s5"]
    assert [h["to_state"] for h in store.alert_history("default", since=since, limit=3)] == [
        "s3", "s4", "s5"]
    assert store.alert_history("default", limit=0) == []


def test_history_non_finite_values_come_back_as_nan(store: Store) -> None:
    store.add_alert_history("default", [hist("a", "firing", T0, math.nan),
                                        hist("a", "firing", T0, math.inf),
                                        hist("a", "firing", T0, -math.inf)])
    store.add_alert_history("default", [])
    values = [h["value"] for h in store.alert_history("default")]
    assert len(values) == 3 and all(math.isnan(v) for v in values)


# -- acknowledgements -------------------------------------------------------------------------


def test_acknowledgements_are_a_log(store: Store) -> None:
    t1 = T0 + timedelta(hours=1)
    store.add_acknowledgement("default", "a", "ana", t1, "again")
    store.add_acknowledgement("default", "a", "bo", T0, "first")
    store.add_acknowledgement("default", "b", "ana", T0, "")
    assert store.acknowledgements("default", "a") == [
        {"fingerprint": "a", "by": "bo", "at": T0, "comment": "first"},
        {"fingerprint": "a", "by": "ana", "at": t1, "comment": "again"}]
    assert [(a["fingerprint"], a["by"]) for a in store.acknowledgements("default")] == [
        ("a", "bo"), ("b", "ana"), ("a", "ana")]


# -- silences ---------------------------------------------------------------------------------


def test_silences_upsert_order_and_active_window(store: Store) -> None:
    t1, t2, t3 = (T0 + timedelta(hours=h) for h in (1, 2, 3))
    store.put_silence("default", silence("s2", T0, t2), NOW)
    store.put_silence("default", silence("s1", T0, t1), NOW)
    # ISO strings with any offset and datetimes are both accepted
    store.put_silence("default", {**silence("s3", t1, t3), "start": "2024-01-01T02:00:00+01:00",
                                  "end": t3}, NOW)
    assert [s["id"] for s in store.silences("default")] == ["s1", "s2", "s3"]
    assert store.silences("default")[2]["end"] == t3.isoformat()  # datetimes kept as ISO text
    assert [s["id"] for s in store.silences("default", active_at=T0)] == ["s1", "s2"]
    assert [s["id"] for s in store.silences("default", active_at=t1)] == ["s2", "s3"]  # end excl.
    assert store.silences("default", active_at=t3) == []
    # extend s1: the document is replaced, the window follows it
    store.put_silence("default", {**silence("s1", T0, t3), "comment": "longer"}, NOW)
    [s1] = [s for s in store.silences("default", active_at=t2) if s["id"] == "s1"]
    assert s1["comment"] == "longer"
    assert store.delete_silence("default", "s1") is True
    assert store.delete_silence("default", "s1") is False
    assert [s["id"] for s in store.silences("default")] == ["s2", "s3"]


def test_silence_keeps_its_creation_time(store: Store) -> None:
    store.put_silence("default", silence("s", T0, T0 + timedelta(hours=1)), NOW)
    store.put_silence("default", silence("s", T0, T0 + timedelta(hours=2)),
                      NOW + timedelta(days=1))
    row = store._run(  # type: ignore[attr-defined]
        "SELECT epoch_us(created_at), epoch_us(updated_at) FROM silences")
    assert row == [(int(NOW.timestamp() * 1e6), int((NOW + timedelta(days=1)).timestamp() * 1e6))]


def test_silence_without_offset_is_refused(store: Store) -> None:
    with pytest.raises(AlertError, match="offset"):
        store.put_silence("default", silence("s", "2024-01-01T00:00:00", T0), NOW)
    assert store.silences("default") == []


# -- notification groups ----------------------------------------------------------------------


def test_alert_groups_upsert_and_delete(store: Store) -> None:
    assert store.alert_groups("default") == {}
    a = {"last_sent": T0.isoformat(), "fingerprints": ["x", "y"]}
    b = {"last_sent": None, "fingerprints": []}
    store.put_alert_groups("default", {"team=growth": a, "team=ops": b}, NOW)
    assert store.alert_groups("default") == {"team=growth": a, "team=ops": b}
    store.put_alert_groups("default", {"team=growth": {**a, "fingerprints": ["x"]},
                                       "team=ops": None, "team=absent": None}, NOW)
    assert store.alert_groups("default") == {"team=growth": {**a, "fingerprints": ["x"]}}


# -- freshness --------------------------------------------------------------------------------


def test_last_seen_per_kpi_and_per_dimension(store: Store) -> None:
    store.write_points("default", batch([
        ("sales", T0, 1.0, {"region": "EU"}), ("sales", T0 + timedelta(hours=5), 1.0,
                                               {"region": "EU"}),
        ("sales", T0 + timedelta(hours=3), 1.0, {"region": "NA"}),
        ("sales", T0 + timedelta(hours=1), 1.0, {}), ("temp", T0 + timedelta(hours=2), 1.0, {}),
    ]), NOW)
    h = timedelta(hours=1)
    assert store.last_seen("default", ["sales", "temp", "none"]) == {
        ("sales", None): T0 + 5 * h, ("temp", None): T0 + 2 * h}
    assert store.last_seen("default", ["sales", "temp"], by="region") == {
        ("sales", "EU"): T0 + 5 * h, ("sales", "NA"): T0 + 3 * h, ("sales", None): T0 + h,
        ("temp", None): T0 + 2 * h}
    assert store.last_seen("default", []) == {}
    # a later write moves it
    store.write_points("default", batch([("sales", T0 + 9 * h, 1.0, {"region": "NA"})]), NOW)
    assert store.last_seen("default", ["sales"], by="region")[("sales", "NA")] == T0 + 9 * h
    store.ensure_workspace("acme")
    assert store.last_seen("acme", ["sales"]) == {}


# -- transactions and workspaces --------------------------------------------------------------


def fill(store: Store, ws: str = "default") -> None:
    store.put_alert_rules(ws, [rule("r1")], NOW)
    store.put_alert_instances(ws, [alert("a")], NOW)
    store.add_alert_history(ws, [hist("a", "firing", T0, math.nan, detail="d")])
    store.add_acknowledgement(ws, "a", "ana", T0, "mine")
    store.put_silence(ws, silence("s1", T0, T0 + timedelta(days=1)), NOW)
    store.put_alert_groups(ws, {"g": {"fingerprints": ["a"]}}, NOW)


def snapshot(store: Store, ws: str = "default") -> dict[str, Any]:
    hist_rows = store.alert_history(ws)
    for h in hist_rows:
        h["value"] = None if math.isnan(h["value"]) else h["value"]
    return {"rules": store.alert_rules(ws), "alerts": store.alert_instances(ws),
            "history": hist_rows, "acks": store.acknowledgements(ws),
            "silences": store.silences(ws), "groups": store.alert_groups(ws)}


EMPTY = {"rules": [], "alerts": [], "history": [], "acks": [], "silences": [], "groups": {}}


def test_failure_in_an_outer_transaction_rolls_back_alert_rows(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        fill(store)
        assert store.alert_instances("default")  # visible inside the transaction
        raise RuntimeError("boom")
    assert snapshot(store) == EMPTY
    # and the store still works afterwards
    fill(store)
    assert snapshot(store) != EMPTY


def test_alert_state_is_scoped_by_workspace(store: Store) -> None:
    store.ensure_workspace("acme")
    fill(store, "acme")
    assert snapshot(store, "default") == EMPTY
    assert store.delete_alert_rule("default", "r1") is False
    assert store.delete_silence("default", "s1") is False
    store.put_alert_groups("default", {"g": None}, NOW)
    assert snapshot(store, "acme")["groups"] == {"g": {"fingerprints": ["a"]}}


# -- durability and migration -----------------------------------------------------------------


def test_alert_state_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "alerts.duckdb")
    s = open_store(path)
    fill(s)
    s.write_points("default", batch([("sales", T0, 1.0, {"region": "EU"})]), NOW)
    before = snapshot(s)
    s.close()
    s = open_store(path)
    try:
        assert s.schema_version() == SCHEMA_VERSION
        assert snapshot(s) == before != EMPTY
        assert s.last_seen("default", ["sales"], by="region") == {("sales", "EU"): T0}
        # sequences continue after a restart: new rows still come after the old ones
        s.add_alert_history("default", [hist("a", "resolved", T0)])
        s.add_acknowledgement("default", "a", "bo", T0, "later")
        assert [h["to_state"] for h in s.alert_history("default")] == ["firing", "resolved"]
        assert [a["by"] for a in s.acknowledgements("default")] == ["ana", "bo"]
    finally:
        s.close()


def test_migrates_a_version_4_database(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "v4.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE kpidash_schema (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for version in range(1, 5):
        for stmt in MIGRATIONS[version]:
            con.execute(stmt)
        con.execute("INSERT INTO kpidash_schema (version) VALUES (?)", [version])
    con.execute("INSERT INTO workspaces VALUES ('default', 'Default', '{}', now())")
    con.execute("INSERT INTO series VALUES (1, 'default', 'sales', 'sales\x1f', "
                "TIMESTAMPTZ '2024-01-01 00:00:00+00', NULL)")
    con.execute("INSERT INTO points VALUES (1, TIMESTAMPTZ '2024-01-01 00:00:00+00', 4.0, "
                "NULL, NULL, now(), NULL)")
    con.execute("INSERT INTO outbox (workspace_id, notification_id, channel, payload, status, "
                "next_attempt_at, created_at) VALUES ('default', 'n1', 'ops', '{}', 'pending', "
                "now(), now())")
    con.close()
    s = open_store(str(path))
    try:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.read_points("default", "sales")["value"].to_pylist() == [4.0]
        assert [i.notification_id for i in s.outbox("default")] == ["n1"]
        assert snapshot(s) == EMPTY
        assert s.last_seen("default", ["sales"]) == {("sales", None): T0}
        fill(s)
        assert snapshot(s) != EMPTY
    finally:
        s.close()
