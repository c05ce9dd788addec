"""The Store contract: every implementation runs this suite (see the ``store`` fixture)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kpidash.core.batch import CleanBatch, series_key, validate
from kpidash.core.registry import Registry, build_registry
from kpidash.errors import SchemaVersionError
from kpidash.model import Aggregation, Grain
from kpidash.store import open_store
from kpidash.store.base import AggSpec, Store
from kpidash.store.duckdb import MIGRATIONS, SCHEMA_VERSION

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 2, 1, tzinfo=UTC)
REG = build_registry([
    {"id": "sales", "name": "Sales", "dimensions": ["region", "plan"]},
    {"id": "customers", "name": "Customers", "aggregation": "last", "dimensions": ["region"]},
    {"id": "temp", "name": "Temp", "aggregation": "mean"},
])


def batch(rows: list[tuple[str, str, float, dict[str, str]]], reg: Registry = REG) -> CleanBatch:
    dims = sorted({d for *_, ds in rows for d in ds})
    t = pa.table({"timestamp": [r[1] for r in rows], "kpi": [r[0] for r in rows],
                  "value": [r[2] for r in rows],
                  **{d: [r[3].get(d) for r in rows] for d in dims}})
    b, report = validate(t, reg)
    assert b is not None, report.summary()
    return b


def day(n: int, hour: int = 0) -> str:
    return (T0 + timedelta(days=n, hours=hour)).isoformat()


def agg(store: Store, kpi: str, how: Aggregation, grain: Grain = Grain.DAY,
        ws: str = "default", **kw: object) -> dict[tuple[str, object], float]:
    rows = store.aggregate(ws, [AggSpec(kpi, how)], grain, str(kw.get("tz", "UTC")), T0,
                           T0 + timedelta(days=40), kw.get("filters", {}),  # type: ignore[arg-type]
                           kw.get("group_by"))[kpi]  # type: ignore[arg-type]
    return {(str(k)[:10], g): v for k, g, v in zip(rows.keys, rows.groups, rows.values,
                                                   strict=True)}


def test_schema_is_versioned(store: Store) -> None:
    assert store.schema_version() == SCHEMA_VERSION


def test_kpi_definitions_round_trip(store: Store) -> None:
    defs = [k.model_dump(mode="json") for k in REG]
    store.put_kpis("default", defs, NOW)
    assert [d["id"] for d in store.get_kpis("default")] == ["sales", "customers", "temp"]
    store.put_kpis("default", [{**defs[0], "unit": "$"}], NOW)
    assert store.get_kpis("default")[0]["unit"] == "$"
    assert build_registry(store.get_kpis("default")).get("sales").unit == "$"


def test_resent_points_replace_instead_of_duplicating(store: Store) -> None:
    first = store.write_points("default", batch([("sales", day(0), 1.0, {"region": "EU"}),
                                                 ("sales", day(1), 2.0, {"region": "EU"})]), NOW)
    assert (first.written, first.new_series) == (2, 1)
    again = store.write_points("default", batch([("sales", day(1), 5.0, {"region": "EU"})]), NOW)
    assert (again.written, again.replaced, again.new_series) == (1, 1, 0)
    assert store.point_count("default") == 2
    assert agg(store, "sales", Aggregation.SUM) == {("2024-01-01", None): 1.0,
                                                    ("2024-01-02", None): 5.0}


def test_last_duplicate_within_a_batch_wins(store: Store) -> None:
    store.write_points("default", batch([("sales", day(0), 1.0, {}), ("sales", day(0), 7.0, {})]),
                       NOW)
    assert store.point_count("default") == 1
    assert agg(store, "sales", Aggregation.SUM) == {("2024-01-01", None): 7.0}


def test_transaction_rolls_back_everything(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.write_points("default", batch([("sales", day(0), 1.0, {"region": "EU"})]), NOW)
        raise RuntimeError("boom")
    assert store.point_count("default") == 0 and store.series_count("default") == 0


def test_workspaces_are_isolated(store: Store) -> None:
    store.ensure_workspace("acme")
    store.write_points("default", batch([("sales", day(0), 1.0, {"region": "EU"})]), NOW)
    store.write_points("acme", batch([("sales", day(0), 100.0, {"region": "EU"})]), NOW)
    assert agg(store, "sales", Aggregation.SUM, ws="acme") == {("2024-01-01", None): 100.0}
    assert agg(store, "sales", Aggregation.SUM) == {("2024-01-01", None): 1.0}
    assert store.point_count("acme") == 1 and store.series_count("default") == 1


@pytest.mark.parametrize(("how", "expected"), [
    (Aggregation.SUM, 1 + 2 + 10 + 20), (Aggregation.MEAN, 33 / 4), (Aggregation.MIN, 1),
    (Aggregation.MAX, 20), (Aggregation.COUNT, 4),
    # last is semi-additive: last value of each series in the period, summed over series
    (Aggregation.LAST, 2 + 20),
])
def test_aggregations(store: Store, how: Aggregation, expected: float) -> None:
    store.write_points("default", batch([
        ("sales", day(0, 1), 1.0, {"region": "EU"}), ("sales", day(0, 5), 2.0, {"region": "EU"}),
        ("sales", day(0, 3), 20.0, {"region": "NA"}), ("sales", day(0, 2), 10.0, {"region": "NA"}),
    ]), NOW)
    assert agg(store, "sales", how) == {("2024-01-01", None): pytest.approx(expected)}


def test_filters_and_group_by(store: Store) -> None:
    store.write_points("default", batch([
        ("sales", day(0), 1.0, {"region": "EU", "plan": "pro"}),
        ("sales", day(0), 2.0, {"region": "EU", "plan": "free"}),
        ("sales", day(0), 4.0, {"region": "NA", "plan": "pro"}),
        ("sales", day(0), 8.0, {"plan": "pro"}),
    ]), NOW)
    assert agg(store, "sales", Aggregation.SUM, filters={"region": ["EU"]}) == {
        ("2024-01-01", None): 3.0}
    assert agg(store, "sales", Aggregation.SUM, filters={"region": ["EU", "NA"],
                                                         "plan": ["pro"]}) == {
        ("2024-01-01", None): 5.0}
    assert agg(store, "sales", Aggregation.SUM, group_by="region") == {
        ("2024-01-01", "EU"): 3.0, ("2024-01-01", "NA"): 4.0, ("2024-01-01", None): 8.0}


def test_day_grain_follows_time_zone(store: Store) -> None:
    # 23:30 UTC on Jan 1 is 00:30 on Jan 2 in Paris
    store.write_points("default", batch([("sales", "2024-01-01T23:30:00Z", 1.0, {}),
                                         ("sales", "2024-01-01T12:00:00Z", 2.0, {})]), NOW)
    assert agg(store, "sales", Aggregation.SUM, tz="Europe/Paris") == {
        ("2024-01-01", None): 2.0, ("2024-01-02", None): 1.0}
    assert agg(store, "sales", Aggregation.SUM, tz="UTC") == {("2024-01-01", None): 3.0}


def test_read_points_keeps_raw_value_of_corrections(store: Store) -> None:
    reg = build_registry([{"id": "rate", "name": "Rate", "max_value": 100,
                           "on_out_of_bounds": "clamp", "dimensions": ["region"]}])
    store.write_points("default", batch([("rate", day(0), 140.0, {"region": "EU"})], reg), NOW)
    t = store.read_points("default", "rate")
    row = t.to_pylist()[0]
    assert (row["value"], row["raw_value"], row["correction"], row["region"]) == (
        100.0, 140.0, "clamp", "EU")
    assert "clamped" in row["correction_reason"]
    assert row["series_key"] == series_key("rate", {"region": "EU"})


def test_time_range(store: Store) -> None:
    assert store.time_range("default") is None
    store.write_points("default", batch([("sales", day(3), 1.0, {}), ("temp", day(9), 1.0, {})]),
                       NOW)
    assert store.time_range("default", ["sales"]) == (T0 + timedelta(days=3),) * 2
    assert store.time_range("default") == (T0 + timedelta(days=3), T0 + timedelta(days=9))


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "new.duckdb")
    s = open_store(path)
    s._run("INSERT INTO kpidash_schema (version) VALUES (99)")  # type: ignore[attr-defined]
    s.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        open_store(path)


def test_committed_data_survives_a_killed_process(tmp_path: Path) -> None:
    """A process killed (SIGKILL) mid-write keeps what it committed and nothing else."""
    path = tmp_path / "crash.duckdb"
    script = textwrap.dedent(f"""
        import os, signal, pyarrow as pa
        from datetime import datetime, UTC
        from kpidash.core.batch import validate
        from kpidash.core.registry import build_registry
        from kpidash.store import open_store
        reg = build_registry([{{"id": "sales", "name": "Sales"}}])
        s = open_store({str(path)!r})
        def b(day):
            t = pa.table({{"timestamp": [f"2024-01-{{day:02d}}T00:00:00Z"], "kpi": ["sales"],
                          "value": [float(day)]}})
            return validate(t, reg)[0]
        now = datetime(2024, 2, 1, tzinfo=UTC)
        s.write_points("default", b(1), now)          # committed
        with s.transaction():
            s.write_points("default", b(2), now)      # never committed
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    s = open_store(str(path))
    try:
        t = s.read_points("default", "sales")
        assert t.column("value").to_pylist() == [1.0]
    finally:
        s.close()


def test_reopened_file_keeps_points(tmp_path: Path) -> None:
    path = str(tmp_path / "k.duckdb")
    s = open_store(path)
    s.write_points("default", batch([("sales", day(0), 3.0, {"region": "EU"})]), NOW)
    s.close()
    s = open_store(path)
    try:
        assert s.point_count("default") == 1 and s.schema_version() == SCHEMA_VERSION
        assert np.asarray(s.read_points("default", "sales")["value"]).tolist() == [3.0]
    finally:
        s.close()


ZONES = ["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kolkata", "Australia/Lord_Howe",
         "Pacific/Chatham", "America/Santiago"]


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("grain", [Grain.HOUR, Grain.DAY, Grain.WEEK, Grain.MONTH, Grain.YEAR])
def test_period_keys_match_the_calendar_in_every_zone(store: Store, tz: str, grain: Grain) -> None:
    """The store's bucketing equals pandas' local-calendar floor, DST changes included."""
    import pandas as pd

    from kpidash.core.aggregate import LOCAL_GRAINS, floor_key

    rng = np.random.default_rng(7)
    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    span = int((end - start).total_seconds())
    secs = np.sort(rng.integers(0, span, 400))
    ts = [start + timedelta(seconds=int(s)) for s in secs]
    t = pa.table({"timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                  "kpi": ["sales"] * len(ts), "value": [1.0] * len(ts)})
    b, _ = validate(t, REG)
    assert b is not None
    store.write_points("default", b, NOW)
    rows = store.aggregate("default", [AggSpec("sales", Aggregation.COUNT)], grain, tz, start,
                           end, {}, None)["sales"]
    got = {str(k): v for k, v in zip(rows.keys.astype("datetime64[us]"), rows.values,
                                     strict=True)}
    expected: dict[str, float] = {}
    for x in ts:
        stamp = pd.Timestamp(x)
        local = (stamp.tz_convert(tz) if grain in LOCAL_GRAINS else stamp).tz_localize(None)
        key = str(np.datetime64(floor_key(local, grain).to_datetime64(), "us"))
        expected[key] = expected.get(key, 0) + 1.0
    assert got == expected


def test_mixed_aggregations_in_one_call_do_not_leak(store: Store) -> None:
    store.write_points("default", batch([
        ("sales", day(0), 5.0, {"region": "EU"}), ("customers", day(0, 1), 10.0, {"region": "EU"}),
        ("customers", day(0, 2), 12.0, {"region": "EU"}), ("temp", day(0), 20.0, {}),
        ("temp", day(0, 3), 30.0, {})]), NOW)
    specs = [AggSpec("sales", Aggregation.SUM), AggSpec("customers", Aggregation.LAST),
             AggSpec("temp", Aggregation.MEAN)]
    rows = store.aggregate("default", specs, Grain.DAY, "UTC", T0, T0 + timedelta(days=1), {},
                           None)
    assert {k: r.values.tolist() for k, r in rows.items()} == {
        "sales": [5.0], "customers": [12.0], "temp": [25.0]}


def test_migrates_a_version_1_database_without_losing_points(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE kpidash_schema (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for stmt in MIGRATIONS[1]:
        con.execute(stmt)
    con.execute("INSERT INTO kpidash_schema (version) VALUES (1)")
    con.execute("INSERT INTO workspaces VALUES ('default', 'Default', '{}', now())")
    con.execute("INSERT INTO series VALUES (1, 'default', 'sales', 'sales\x1f')")
    con.execute("INSERT INTO points VALUES (1, TIMESTAMPTZ '2024-01-01 00:00:00+00', 4.0, "
                "NULL, NULL, now())")
    con.close()
    s = open_store(str(path))
    try:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.read_points("default", "sales")["value"].to_pylist() == [4.0]
    finally:
        s.close()


def test_corrections_keep_raw_values_and_revert(store: Store) -> None:
    store.write_points("default", batch([("sales", day(0), 10.0, {"region": "EU"}),
                                         ("sales", day(1), 900.0, {"region": "EU"}),
                                         ("sales", day(2), 12.0, {"region": "EU"})]), NOW)
    key = series_key("sales", {"region": "EU"})
    corr = pa.table({"series_key": [key, key], "ts": pa.array(
        [T0 + timedelta(days=1), T0 + timedelta(days=9)], pa.timestamp("us", tz="UTC")),
        "value": [11.0, 1.0], "method": ["hampel_seasonal"] * 2, "reason": ["spike"] * 2})
    assert store.apply_corrections("default", corr, NOW) == 1  # day 9 has no point
    # a second correction of the same point keeps the first raw value
    assert store.apply_corrections("default", corr.slice(0, 1).set_column(
        2, "value", pa.array([11.5])), NOW) == 1
    t = store.read_points("default", "sales").to_pylist()
    assert [(r["value"], r["raw_value"], r["correction"]) for r in t] == [
        (10.0, None, None), (11.5, 900.0, "hampel_seasonal"), (12.0, None, None)]
    assert agg(store, "sales", Aggregation.SUM, Grain.WEEK)[("2024-01-01", None)] == 33.5
    assert store.revert_corrections("default", "sales", NOW) == 1
    assert [r["value"] for r in store.read_points("default", "sales").to_pylist()] == [
        10.0, 900.0, 12.0]
    log = store.correction_log("default", "sales").to_pylist()
    assert [(r["action"], r["raw_value"], r["corrected_value"]) for r in log] == [
        ("apply", 900.0, 11.0), ("apply", 900.0, 11.5), ("revert", 900.0, 11.5)]


def test_annotations_round_trip(store: Store) -> None:
    from kpidash.model import Annotation

    a = store.add_annotation("default", Annotation(T0, T0 + timedelta(days=2), "launch",
                                                   kpi_id="sales"), NOW)
    b = store.add_annotation("default", Annotation(T0, T0 + timedelta(days=1), "holiday",
                                                   kind="holiday"), NOW)
    store.ensure_workspace("acme")
    store.add_annotation("acme", Annotation(T0, T0 + timedelta(days=1), "other"), NOW)
    got = store.annotations("default", "sales")
    assert [(x.id, x.label, x.kpi_id) for x in got] == [(a, "launch", "sales"),
                                                        (b, "holiday", None)]
    assert got[0].start == T0 and got[0].end == T0 + timedelta(days=2)
    assert [x.label for x in store.annotations("default", "temp")] == ["holiday"]
    assert store.delete_annotation("default", a) and not store.delete_annotation("default", a)


def test_anomalies_are_stored_once(store: Store) -> None:
    rows = pa.table({"kpi_id": ["sales"], "slice": ["region=EU"], "grain": ["day"],
                     "ts": pa.array([T0], pa.timestamp("us", tz="UTC")), "actual": [9.0],
                     "expected": [3.0], "lo": [1.0], "hi": [5.0], "score": [0.97],
                     "severity": ["high"], "kind": ["spike"], "favourable": [True]})
    assert store.put_anomalies("default", rows, NOW) == 1
    assert store.put_anomalies("default", rows, NOW + timedelta(hours=1)) == 0
    got = store.anomalies("default", "sales").to_pylist()
    assert len(got) == 1 and got[0]["severity"] == "high" and got[0]["score"] == 0.97


def test_last_stays_exact_when_series_spacing_changes(store: Store) -> None:
    """Daily stock values: at day grain each day has one point per series (aggregated as a
    sum), until a backfilled intraday point makes 'last' pick the later of two."""
    store.write_points("default", batch([
        ("customers", day(d), 10.0 + d, {"region": r}) for d in range(3) for r in ("EU", "NA")
    ]), NOW)
    assert agg(store, "customers", Aggregation.LAST) == {
        ("2024-01-01", None): 20.0, ("2024-01-02", None): 22.0, ("2024-01-03", None): 24.0}
    assert agg(store, "customers", Aggregation.LAST, Grain.WEEK) == {("2024-01-01", None): 24.0}
    # an intraday correction arrives late: day 1 now has two EU points, the later one wins
    store.write_points("default", batch([("customers", day(1, 12), 50.0, {"region": "EU"})]),
                       NOW)
    assert agg(store, "customers", Aggregation.LAST)[("2024-01-02", None)] == 50.0 + 11.0
    # appending keeps exact statistics too
    store.write_points("default", batch([("customers", day(3), 7.0, {"region": "NA"})]), NOW)
    assert agg(store, "customers", Aggregation.LAST)[("2024-01-04", None)] == 7.0
    # re-sending the same points changes nothing
    store.write_points("default", batch([("customers", day(1, 12), 50.0, {"region": "EU"})]),
                       NOW)
    assert agg(store, "customers", Aggregation.LAST)[("2024-01-02", None)] == 61.0


def test_outbox_queue_due_and_outcomes(store: Store) -> None:
    from kpidash.model import OutboxItem

    items = [OutboxItem("n1", "ops", {"id": "n1"}), OutboxItem("n1", "mail", {"id": "n1"})]
    assert store.enqueue("default", items, NOW) == 2
    assert store.enqueue("default", items, NOW) == 0
    assert [(i.notification_id, i.channel) for i in store.due("default", NOW)] == [
        ("n1", "mail"), ("n1", "ops")]
    store.record_delivery("default", items[0], "delivered", NOW)
    store.record_delivery("default", items[1], "pending", NOW, NOW + timedelta(minutes=1), "503")
    assert store.due("default", NOW) == []
    [later] = store.due("default", NOW + timedelta(minutes=1))
    assert (later.channel, later.attempts, later.last_error) == ("mail", 1, "503")
    assert [i.status for i in store.outbox("default")] == ["pending", "delivered"]
    store.ensure_workspace("acme")
    assert store.due("acme", NOW + timedelta(days=1)) == []


@pytest.mark.parametrize("how", [Aggregation.SUM, Aggregation.MEAN, Aggregation.LAST])
def test_sums_are_exact_and_the_same_every_run(store: Store, how: Aggregation) -> None:
    # doubles added in parallel in a varying order differ in the last bits run to run; the
    # store sums exactly, so the same data gives bit-identical results
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 1e6, 60_000).round(3)
    t = pa.table({"timestamp": pa.array([T0 + timedelta(seconds=i) for i in range(
                      values.size)], pa.timestamp("us", tz="UTC")),
                  "kpi": ["sales"] * values.size, "value": values,
                  "region": [f"r{i % 300}" for i in range(values.size)]})
    b, report = validate(t, REG)
    assert b is not None, report.summary()
    store.write_points("default", b, NOW)
    runs = {tuple(agg(store, "sales", how).values()) for _ in range(6)}
    assert len(runs) == 1
    if how is Aggregation.SUM:
        (total,) = runs.pop()
        assert total == pytest.approx(float(values.sum()), rel=1e-12)
