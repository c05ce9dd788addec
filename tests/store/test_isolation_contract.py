"""Workspace isolation, for every Store method (every implementation, see ``store``).

Two workspaces hold the same KPI ids, series keys, rule and alert fingerprints, silences,
outbox items, interactions and dashboards, with different values. For every read method of
the Store protocol there is a case below (a new method without one fails
``test_every_protocol_method_has_a_case``):

* reading workspace A of a store holding A and B gives what a store holding only A gives, and
  the same for B — so nothing of the other workspace comes through — and A's and B's
  answers differ, so the cases can tell them apart;
* after any write to A, and after a battery of every write, B reads the same and its rows
  are unchanged byte for byte; deleting A leaves B byte for byte as it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from workspace_data import EU, NOW, T0, batch, fill, raw_snapshot

from kpidash.core.aggregate import AggRows
from kpidash.core.quota import QuotaState
from kpidash.model import Aggregation, Annotation, Grain, OutboxItem
from kpidash.store import open_store
from kpidash.store.base import AggSpec, Store

A, B = "alpha", "beta"
KA, KB = 1.0, 2.0
END = T0 + timedelta(days=30)


def norm(x: Any) -> Any:
    """Comparable plain data; annotation ids (a store-wide sequence) are dropped."""
    if isinstance(x, Annotation):
        return {f.name: getattr(x, f.name) for f in dataclasses.fields(x) if f.name != "id"}
    if isinstance(x, pa.Table):
        return x.to_pylist()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: norm(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {k: norm(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [norm(v) for v in x]
    if isinstance(x, Iterator):
        return [norm(v) for v in x]
    return x


def rows(result: dict[str, AggRows]) -> dict[str, list[tuple[Any, ...]]]:
    """Aggregated rows in a stable order (the store returns groups in any order)."""
    return {k: sorted(zip(r.keys.tolist(), r.groups.tolist(), r.values.tolist(), strict=True),
                      key=repr) for k, r in result.items()}


Read = Callable[[Store, str], Any]
READS: dict[str, list[Read]] = {
    "get_kpis": [lambda s, w: s.get_kpis(w)],
    "read_points": [lambda s, w: s.read_points(w, "sales"),
                    lambda s, w: s.read_points(w, "temp", T0 + timedelta(days=1), END)],
    "aggregate": [
        lambda s, w: rows(s.aggregate(w, [AggSpec("sales", Aggregation.SUM),
                                          AggSpec("temp", Aggregation.MEAN)],
                                      Grain.DAY, "UTC", T0, END, {}, None)),
        lambda s, w: rows(s.aggregate(w, [AggSpec("sales", Aggregation.LAST)], Grain.WEEK,
                                      "UTC", T0, END, {"region": ["EU", "NA"]}, "region"))],
    "correction_log": [lambda s, w: s.correction_log(w), lambda s, w: s.correction_log(w, "sales")],
    "annotations": [lambda s, w: s.annotations(w), lambda s, w: s.annotations(w, "sales")],
    "anomalies": [lambda s, w: s.anomalies(w), lambda s, w: s.anomalies(w, "sales", T0)],
    "due": [lambda s, w: s.due(w, NOW)],
    "outbox": [lambda s, w: s.outbox(w), lambda s, w: s.outbox(w, "delivered")],
    "alert_rules": [lambda s, w: s.alert_rules(w)],
    "alert_instances": [lambda s, w: s.alert_instances(w),
                        lambda s, w: s.alert_instances(w, fingerprint="fp1"),
                        lambda s, w: s.alert_instances(w, rule_id="r2", states=["pending"])],
    "alert_history": [lambda s, w: s.alert_history(w), lambda s, w: s.alert_history(w, "fp1")],
    "acknowledgements": [lambda s, w: s.acknowledgements(w),
                         lambda s, w: s.acknowledgements(w, "fp1")],
    "silences": [lambda s, w: s.silences(w),
                 lambda s, w: s.silences(w, active_at=T0 + timedelta(days=1))],
    "alert_groups": [lambda s, w: s.alert_groups(w)],
    "interactions": [lambda s, w: s.interactions(w), lambda s, w: s.interactions(w, user="ana")],
    "insight_views": [lambda s, w: s.insight_views(w, "ana")],
    "dashboard": [lambda s, w: s.dashboard(w, "d1")],
    "dashboards": [lambda s, w: s.dashboards(w), lambda s, w: s.dashboards(w, visible_to="bob")],
    "last_seen": [lambda s, w: s.last_seen(w, ["sales", "temp"]),
                  lambda s, w: s.last_seen(w, ["sales"], by="region")],
    "point_count": [lambda s, w: s.point_count(w), lambda s, w: s.point_count(w, "temp")],
    "series_count": [lambda s, w: s.series_count(w), lambda s, w: s.series_count(w, "sales")],
    "time_range": [lambda s, w: s.time_range(w), lambda s, w: s.time_range(w, ["temp"])],
    "workspace": [lambda s, w: s.workspace(w)],
    "memberships": [lambda s, w: s.memberships(w)],
    "ingest_tokens": [lambda s, w: s.ingest_tokens(w)],
    "quota_state": [lambda s, w: s.quota_state(w), lambda s, w: s.quota_state(w, lock=True)],
    "export_workspace": [lambda s, w: s.export_workspace(w)],
}


def _import_again(s: Store, w: str) -> None:
    tables = dict(s.export_workspace(w))
    s.delete_workspace(w)
    s.import_workspace(w, tables, NOW)


Write = Callable[[Store, str], Any]
WRITES: dict[str, Write] = {
    "ensure_workspace": lambda s, w: s.ensure_workspace(w + "-2"),
    "create_workspace": lambda s, w: s.create_workspace(w + "-3", "Three", None, NOW),
    "update_workspace": lambda s, w: s.update_workspace(
        w, name="Renamed", settings={"currency": "JPY"}, now=NOW),
    "put_kpis": lambda s, w: s.put_kpis(w, [{"id": "sales", "name": "Changed"}], NOW),
    "delete_kpi": lambda s, w: s.delete_kpi(w, "sales", purge=True),
    "write_points": lambda s, w: s.write_points(w, batch(
        [("sales", T0 + timedelta(days=d), -1.0, {"region": "EU"}) for d in range(8)]), NOW),
    "apply_corrections": lambda s, w: s.apply_corrections(w, pa.table({
        "series_key": [EU, EU], "ts": pa.array([T0, T0 + timedelta(days=1)],
                                               pa.timestamp("us", tz="UTC")),
        "value": [0.5, 0.5], "method": ["manual"] * 2, "reason": ["test"] * 2}), NOW),
    "revert_corrections": lambda s, w: s.revert_corrections(w, "sales", NOW),
    "add_annotation": lambda s, w: s.add_annotation(w, Annotation(T0, END, "new"), NOW),
    "delete_annotation": lambda s, w: s.delete_annotation(w, s.annotations(w)[0].id),
    "put_anomalies": lambda s, w: s.put_anomalies(w, pa.table({
        "kpi_id": ["sales"], "slice": ["region=EU"], "grain": ["day"],
        "ts": pa.array([T0 + timedelta(days=3)], pa.timestamp("us", tz="UTC")),
        "actual": [1.0], "expected": [3.0], "lo": [2.0], "hi": [4.0], "score": [0.5],
        "severity": ["low"], "kind": ["dip"], "favourable": [False]}), NOW),
    "enqueue": lambda s, w: s.enqueue(w, [OutboxItem("n3", "log", {})], NOW),
    "record_delivery": lambda s, w: s.record_delivery(
        w, OutboxItem("n2", "webhook", {}), "failed", NOW, error="gone"),
    "put_alert_rules": lambda s, w: s.put_alert_rules(w, [{"id": "r1", "changed": True}], NOW),
    "delete_alert_rule": lambda s, w: s.delete_alert_rule(w, "r1"),
    "put_alert_instances": lambda s, w: s.put_alert_instances(w, [
        {"fingerprint": "fp1", "rule_id": "r1", "kpi_id": "sales", "state": "resolved"}], NOW),
    "add_alert_history": lambda s, w: s.add_alert_history(w, [
        {"fingerprint": "fp1", "from_state": "firing", "to_state": "resolved", "at": NOW}]),
    "add_acknowledgement": lambda s, w: s.add_acknowledgement(w, "fp1", "cy", NOW, "x"),
    "put_silence": lambda s, w: s.put_silence(w, {"id": "s1", "start": T0, "end": END}, NOW),
    "delete_silence": lambda s, w: s.delete_silence(w, "s1"),
    "put_alert_groups": lambda s, w: s.put_alert_groups(w, {"g1": None, "g3": {"x": 1}}, NOW),
    "record_interactions": lambda s, w: s.record_interactions(w, [
        {"user": "ana", "kind": "view", "kpi_id": "temp", "at": NOW}]),
    "mark_insights_shown": lambda s, w: s.mark_insights_shown(w, "ana", ["i1", "i9"], NOW),
    "put_dashboard": lambda s, w: s.put_dashboard(w, {
        "id": "d1", "owner_id": "bob", "name": "Mine now", "spec": {}, "shared_with": [],
        "created_at": NOW, "updated_at": NOW}),
    "delete_dashboard": lambda s, w: s.delete_dashboard(w, "d2"),
    "put_membership": lambda s, w: s.put_membership(w, "bob", "admin", NOW),
    "delete_membership": lambda s, w: s.delete_membership(w, "ana"),
    "add_ingest_token": lambda s, w: s.add_ingest_token(w, {
        "id": "t2", "name": "batch", "token_hash": f"h-{w}-t2", "created_by": "bob",
        "created_at": NOW, "expires_at": END}),
    "touch_ingest_token": lambda s, w: s.touch_ingest_token(w, "t1", NOW),
    "revoke_ingest_token": lambda s, w: s.revoke_ingest_token(w, "t1", NOW),
    "put_quota_state": lambda s, w: s.put_quota_state(w, QuotaState(None, 123)),
    "import_workspace": _import_again,
    "delete_workspace": lambda s, w: s.delete_workspace(w),
}

# Server-wide methods: no workspace to cross (accounts are global; a user's memberships span
# workspaces by design — test_memberships.py checks they are kept per workspace; an ingest
# token is found by its secret alone, which names its workspace — test_ingest_tokens.py).
GLOBAL = {"close", "transaction", "schema_version", "workspaces", "add_user", "user",
          "user_by_name", "users", "update_user", "delete_user", "add_session", "session_row",
          "session", "sessions", "touch_session", "revoke_sessions", "add_login_failures",
          "login_failures", "clear_login_failures", "user_memberships", "ingest_token_by_hash",
          "export_global", "import_global",
          # messages and leadership are between the processes of one server, not per workspace
          "publish", "listen", "leadership"}


def protocol_methods() -> set[str]:
    return {n for n, v in vars(Store).items() if callable(v) and not n.startswith("_")}


def test_every_protocol_method_has_a_case() -> None:
    methods = protocol_methods()
    assert not set(READS) & set(WRITES) and not (set(READS) | set(WRITES)) & GLOBAL
    missing = methods - set(READS) - set(WRITES) - GLOBAL
    assert not missing, f"Store methods without an isolation case: {sorted(missing)}"
    assert set(READS) | set(WRITES) | GLOBAL == methods  # and no case for a removed method


CASES = {f"{name}[{i}]": read for name, cases in READS.items() for i, read in enumerate(cases)}


def reads(store: Store, ws: str) -> dict[str, Any]:
    return {case: norm(read(store, ws)) for case, read in CASES.items()}


@pytest.fixture
def both(store: Store) -> Store:
    fill(store, A, KA)
    fill(store, B, KB)
    return store


@pytest.fixture(scope="module", params=["memory", "file"])
def both_read_only(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """``both`` shared by the read cases (reads change nothing), on either store."""
    url = (":memory:" if request.param == "memory"
           else str(tmp_path_factory.mktemp("iso") / "kpidash.duckdb"))
    s = open_store(url)
    fill(s, A, KA)
    fill(s, B, KB)
    yield s
    s.close()


@pytest.fixture(scope="module")
def alone() -> Iterator[dict[str, dict[str, Any]]]:
    """What every read case gives on stores holding one workspace only."""
    out = {}
    for ws, k in ((A, KA), (B, KB)):
        s = open_store(":memory:")
        fill(s, ws, k)
        out[ws] = reads(s, ws)
        s.close()
    yield out


@pytest.mark.parametrize("case", sorted(CASES))
def test_reads_see_only_their_workspace(both_read_only: Store,
                                        alone: dict[str, dict[str, Any]], case: str) -> None:
    both = both_read_only
    got_a, got_b = norm(CASES[case](both, A)), norm(CASES[case](both, B))
    assert got_a == alone[A][case]
    assert got_b == alone[B][case]
    assert got_a != got_b, "the case cannot tell the two workspaces apart"


@pytest.mark.parametrize("method", sorted(WRITES))
def test_a_write_to_one_workspace_leaves_the_other_unchanged(both: Store, method: str) -> None:
    b_reads, b_rows = reads(both, B), raw_snapshot(both, B)
    a_before = (raw_snapshot(both, A), norm(both.workspaces()))
    WRITES[method](both, A)
    assert (raw_snapshot(both, A), norm(both.workspaces())) != a_before, "the write did nothing"
    assert raw_snapshot(both, B) == b_rows
    assert reads(both, B) == b_reads


def test_a_battery_of_writes_leaves_the_other_workspace_unchanged(both: Store) -> None:
    b_reads, b_rows = reads(both, B), raw_snapshot(both, B)
    for name, write in WRITES.items():
        if name != "delete_workspace":
            write(both, A)
    assert raw_snapshot(both, B) == b_rows
    assert reads(both, B) == b_reads
    both.delete_workspace(A)
    assert raw_snapshot(both, B) == b_rows
    assert reads(both, B) == b_reads
    assert not any(raw_snapshot(both, A).values())
