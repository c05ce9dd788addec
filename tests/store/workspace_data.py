"""Workspace test data: ``fill`` puts rows of one workspace into every table a workspace owns,
with the same ids in every workspace and values that differ by ``k``; ``raw_snapshot`` reads
back every row of a workspace straight from the catalog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pyarrow as pa

from kpidash.core.batch import CleanBatch, series_key, validate
from kpidash.core.quota import QuotaState, TokenBucket
from kpidash.core.registry import build_registry
from kpidash.model import Annotation, OutboxItem
from kpidash.store.base import Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 2, 1, tzinfo=UTC)
REG = build_registry([
    {"id": "sales", "name": "Sales", "dimensions": ["region"]},
    {"id": "temp", "name": "Temp", "aggregation": "mean"},
])
EU = series_key("sales", {"region": "EU"})


def batch(rows: list[tuple[str, datetime, float, dict[str, str]]]) -> CleanBatch:
    dims = sorted({d for *_, ds in rows for d in ds})
    t = pa.table({"timestamp": [r[1].isoformat() for r in rows], "kpi": [r[0] for r in rows],
                  "value": [r[2] for r in rows],
                  **{d: [r[3].get(d) for r in rows] for d in dims}})
    b, report = validate(t, REG)
    assert b is not None, report.summary()
    return b


def fill(store: Store, ws: str, k: float, *, data: bool = True) -> None:
    """Rows of ``ws`` in every owned table; values scaled by ``k`` and ``4 + int(k)`` days of
    points, and a third region when ``k`` > 1 (so counts and time ranges differ too); the
    workspace is created unless it exists."""
    if store.workspace(ws) is None:
        store.create_workspace(ws, f"Workspace {ws}", {"fiscal_year_start": int(k)}, NOW)
    if data:
        fill_data(store, ws, k)
    fill_state(store, ws, k)


def fill_data(store: Store, ws: str, k: float) -> None:
    """KPI definitions, points and a correction."""
    regions = ("EU", "NA", "APAC") if k > 1 else ("EU", "NA")
    store.put_kpis(ws, [{**d, "description": f"k={k}"} for d in REG.to_dicts()], NOW)
    store.write_points(ws, batch(
        [("sales", T0 + timedelta(days=i), k * (i + 1), {"region": r})
         for i in range(4 + int(k)) for r in regions]
        + [("temp", T0 + timedelta(days=i), k + i, {}) for i in range(4 + int(k))]), NOW)
    store.apply_corrections(ws, pa.table({
        "series_key": [EU], "ts": pa.array([T0 + timedelta(days=2)], pa.timestamp("us", tz="UTC")),
        "value": [k * 2.5], "method": ["hampel"], "reason": [f"spike {k}"]}), NOW)


def fill_state(store: Store, ws: str, k: float) -> None:
    """Annotations, anomalies, outbox, alerting state, usage, dashboards, memberships, an
    ingest token and quota state."""
    store.add_annotation(ws, Annotation(T0, T0 + timedelta(days=1), f"launch {k}",
                                        kpi_id="sales"), NOW)
    store.add_annotation(ws, Annotation(T0 + timedelta(days=3), T0 + timedelta(days=4),
                                        f"holiday {k}"), NOW)
    store.put_anomalies(ws, pa.table({
        "kpi_id": ["sales"], "slice": ["region=EU"], "grain": ["day"],
        "ts": pa.array([T0 + timedelta(days=2)], pa.timestamp("us", tz="UTC")),
        "actual": [9.0 * k], "expected": [3.0], "lo": [1.0], "hi": [5.0], "score": [0.9],
        "severity": ["high"], "kind": ["spike"], "favourable": [True]}), NOW)
    store.enqueue(ws, [OutboxItem("n1", "log", {"k": k}), OutboxItem("n2", "webhook", {"k": k})],
                  NOW)
    store.record_delivery(ws, OutboxItem("n1", "log", {}), "delivered", NOW)
    store.put_alert_rules(ws, [{"id": "r1", "kpi": "sales", "value": k},
                               {"id": "r2", "kpi": "temp", "value": k}], NOW)
    store.put_alert_instances(ws, [
        {"fingerprint": "fp1", "rule_id": "r1", "kpi_id": "sales", "state": "firing",
         "severity": "high", "k": k},
        {"fingerprint": "fp2", "rule_id": "r2", "kpi_id": "temp", "state": "pending",
         "severity": "low", "k": k}], NOW)
    store.add_alert_history(ws, [
        {"fingerprint": "fp1", "from_state": None, "to_state": "pending", "at": T0,
         "severity": "high", "value": k, "detail": "first"},
        {"fingerprint": "fp1", "from_state": "pending", "to_state": "firing", "at": T0,
         "severity": "high", "value": k, "detail": "same instant, inserted second"}])
    store.add_acknowledgement(ws, "fp1", "ana", NOW, f"on it {k}")
    store.add_acknowledgement(ws, "fp1", "bob", NOW, f"me too {k}")
    store.put_silence(ws, {"id": "s1", "start": T0, "end": NOW, "comment": f"k={k}"}, NOW)
    store.put_alert_groups(ws, {"g1": {"k": k}, "g2": {"k": -k}}, NOW)
    store.record_interactions(ws, [
        {"user": "ana", "role": "viewer", "kind": "view", "kpi_id": "sales",
         "filters": {"region": ["EU"]}, "at": T0},
        {"user": "ana", "role": "viewer", "kind": f"filter{int(k)}", "kpi_id": None,
         "filters": {}, "at": T0}])
    store.mark_insights_shown(ws, "ana", ["i1", f"i{k}"], NOW)
    for n in (1, 2):
        store.put_dashboard(ws, {"id": f"d{n}", "owner_id": "ana", "name": f"Board {n} {k}",
                                 "spec": {"k": k}, "shared_with": ["bob"],
                                 "created_at": NOW, "updated_at": NOW})
    store.put_membership(ws, "ana", "admin", NOW)
    store.put_membership(ws, "bob", "viewer" if k > 1 else "analyst", NOW)
    store.add_ingest_token(ws, {"id": "t1", "name": f"telegraf {k}", "token_hash": f"h-{ws}-t1",
                                "created_by": "ana", "created_at": NOW, "expires_at": None})
    store.put_quota_state(ws, QuotaState(TokenBucket(Fraction(int(k * 100), 3), NOW), int(k)))


def catalog(store: Store) -> dict[str, list[str]]:
    """Table name → column names, from the catalog (DuckDB's or PostgreSQL's; the partitions
    of PostgreSQL's ``points`` are not tables of their own)."""
    con = store._con  # type: ignore[attr-defined]
    rows = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                       "WHERE table_schema = current_schema() AND table_name NOT IN ("
                       "SELECT relname FROM pg_catalog.pg_class WHERE relispartition) "
                       "ORDER BY table_name, ordinal_position").fetchall()
    out: dict[str, list[str]] = {}
    for t, c in rows:
        out.setdefault(t, []).append(c)
    return out


def raw_snapshot(store: Store, ws: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``ws`` in every table holding a workspace_id (or a series_id of one of
    its series, or its record), all columns, sorted — found from the catalog."""
    con = store._con  # type: ignore[attr-defined]
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, cols in catalog(store).items():
        if "workspace_id" in cols:
            where = "workspace_id = ?"
        elif "series_id" in cols:
            where = "series_id IN (SELECT series_id FROM series WHERE workspace_id = ?)"
        elif table == "workspaces":
            where = "id = ?"
        else:
            continue
        rows = con.execute(f"SELECT * FROM {table} WHERE {where}", [ws]).fetchall()
        out[table] = sorted(rows, key=repr)
    return out
