"""Workspace archives: export to one file, import elsewhere under another id with nothing lost
(counts, checksums, query results), refusals that name the table, and all-or-nothing."""

from __future__ import annotations

import json
import random
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from workspace_data import NOW, fill, raw_snapshot

from kpidash import demo
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.errors import Conflict, SchemaVersionError, StoreError
from kpidash.packs import load_pack
from kpidash.store import open_store
from kpidash.store.archive import read_archive, read_manifest, table_checksum, write_archive
from kpidash.store.base import Store

CLOCK = FixedClock(datetime(2024, 7, 1, tzinfo=UTC))
IMPORTED = datetime(2024, 8, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    """A store with a demo-loaded workspace 'client-a' (engine ingest, plus alerting state,
    annotations, usage and dashboards through the store) and its archive."""
    tmp = tmp_path_factory.mktemp("archive")
    store = open_store(str(tmp / "src.duckdb"))
    store.create_workspace("client-a", "Client A", {"currency": "EUR",
                                                    "timezone": "Europe/Paris"}, NOW)
    engine = Engine(store, CLOCK, workspace="client-a")
    engine.register(load_pack("saas"))
    engine.ingest_table(demo.generate(date(2024, 6, 30), days=120).points, source="demo")
    fill(store, "client-a", 1.0, data=False)
    first = store.read_points("client-a", "revenue").slice(0, 2)
    store.apply_corrections("client-a", pa.table({
        "series_key": first["series_key"], "ts": first["ts"], "value": [1.0, 2.0],
        "method": ["manual", "manual"], "reason": ["typo", None]}), NOW)
    fill(store, "noise", 5.0)  # another workspace in the same store stays out of the archive
    path = tmp / "client-a.kpidash.zip"
    write_archive(store, "client-a", path)
    yield store, path
    store.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Store]:
    """Another server's store, already holding a workspace (so ids must be renumbered)."""
    s = open_store(str(tmp_path / "dst.duckdb"))
    fill(s, "existing", 3.0)
    yield s
    s.close()


def exported(store: Store, ws: str) -> dict[str, pa.Table]:
    return dict(store.export_workspace(ws))


def test_manifest_lists_every_table_with_counts_and_checksums(
        archived: tuple[Store, Path]) -> None:
    store, path = archived
    m = read_manifest(path)
    assert m["schema_version"] == store.schema_version()
    assert m["workspace"]["id"] == "client-a" and m["workspace"]["settings"]["currency"] == "EUR"
    tables = exported(store, "client-a")
    assert set(m["tables"]) == set(tables)
    for name, table in tables.items():
        assert m["tables"][name]["rows"] == table.num_rows, name
        assert m["tables"][name]["sha256"] == table_checksum(table), name
    assert m["tables"]["points"]["rows"] == store.point_count("client-a") > 1000
    assert all(e["rows"] > 0 for e in m["tables"].values()), m["tables"]


def test_round_trip_into_another_store_under_another_id(archived: tuple[Store, Path],
                                                        target: Store) -> None:
    src, path = archived
    existing = raw_snapshot(target, "existing")
    counts = read_archive(target, path, "client-b", now=IMPORTED)
    m = read_manifest(path)
    assert counts == {n: e["rows"] for n, e in m["tables"].items()}
    # the same content, table by table
    for name, table in exported(target, "client-b").items():
        assert table.num_rows == m["tables"][name]["rows"], name
        assert table_checksum(table) == m["tables"][name]["sha256"], name
    assert raw_snapshot(target, "existing") == existing
    got = target.workspace("client-b")
    assert got is not None and got["name"] == "Client A" and got["created_at"] == IMPORTED
    assert got["settings"] == src.workspace("client-a")["settings"]  # type: ignore[index]
    # the same answers
    a = Engine(src, CLOCK, workspace="client-a", timezone="Europe/Paris")
    b = Engine(target, CLOCK, workspace="client-b", timezone="Europe/Paris")
    assert [k.id for k in a.registry] == [k.id for k in b.registry]
    for kpi, grain, group_by in [("revenue", "day", None), ("mrr", "month", "plan"),
                                 ("customer_churn_rate", "week", None),
                                 ("revenue", "quarter", "region")]:
        sa, sb = a.query(kpi, grain, group_by=group_by), b.query(kpi, grain, group_by=group_by)
        assert [s.group for s in sa] == [s.group for s in sb]
        for x, y in zip(sa, sb, strict=True):
            np.testing.assert_array_equal(x.periods, y.periods)
            np.testing.assert_array_equal(x.values, y.values)
    for read in (lambda s, w: s.alert_history(w), lambda s, w: s.interactions(w),
                 lambda s, w: s.acknowledgements(w), lambda s, w: s.dashboards(w),
                 lambda s, w: s.silences(w), lambda s, w: s.alert_groups(w),
                 lambda s, w: s.outbox(w), lambda s, w: s.insight_views(w, "ana"),
                 lambda s, w: s.correction_log(w).to_pylist(),
                 lambda s, w: s.anomalies(w).to_pylist(),
                 lambda s, w: s.read_points(w, "revenue").to_pylist(),
                 lambda s, w: [(x.label, x.start, x.kpi_id) for x in s.annotations(w)]):
        assert read(src, "client-a") == read(target, "client-b")


def _rewrite(path: Path, out: Path, *, manifest: Any = None,
             table: tuple[str, pa.Table] | None = None) -> Path:
    """A copy of an archive with its manifest and/or one table replaced."""
    import io

    import pyarrow.parquet as pq

    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "manifest.json" and manifest is not None:
                data = json.dumps(manifest).encode()
            if table is not None and item == f"tables/{table[0]}.parquet":
                buf = io.BytesIO()
                pq.write_table(table[1], buf)
                data = buf.getvalue()
            zout.writestr(item, data)
    return out


def _changed_points(src: Store) -> pa.Table:
    pts = exported(src, "client-a")["points"]
    values = pts["value"].to_numpy().copy()
    values[7] += 1.0
    return pts.set_column(pts.column_names.index("value"), "value", pa.array(values))


@pytest.mark.parametrize("damage", ["value", "rows", "missing_row", "schema", "extra_file"])
def test_a_damaged_or_newer_archive_is_refused(archived: tuple[Store, Path], target: Store,
                                               tmp_path: Path, damage: str) -> None:
    src, path = archived
    m = read_manifest(path)
    bad = tmp_path / "bad.zip"
    if damage == "value":
        _rewrite(path, bad, table=("points", _changed_points(src)))
        err, match = StoreError, "table 'points' does not match its checksum"
    elif damage == "rows":
        m["tables"]["alert_history"]["rows"] += 1
        _rewrite(path, bad, manifest=m)
        err, match = StoreError, "table 'alert_history' holds"
    elif damage == "missing_row":
        _rewrite(path, bad, table=("interactions", exported(src, "client-a")["interactions"]
                                   .slice(1)))
        err, match = StoreError, "table 'interactions'"
    elif damage == "schema":
        m["schema_version"] += 1
        _rewrite(path, bad, manifest=m)
        err, match = SchemaVersionError, "newer"
    else:
        _rewrite(path, bad)
        with zipfile.ZipFile(bad, "a") as z:
            z.writestr("tables/extra.parquet", b"")
        err, match = StoreError, "extra.parquet"
    before = target.workspaces()
    with pytest.raises(err, match=match):
        read_archive(target, bad, "client-b", now=IMPORTED)
    assert target.workspaces() == before and not any(raw_snapshot(target, "client-b").values())


def test_import_is_all_or_nothing(archived: tuple[Store, Path], target: Store) -> None:
    src, _ = archived
    tables = exported(src, "client-a")
    pts = tables["points"]
    keys = pts["series_key"].to_pylist()
    keys[-1] = "nope\x1f"
    tables["points"] = pts.set_column(0, "series_key", pa.array(keys))
    with pytest.raises(StoreError, match=r"table 'points'.*1 of its"):
        target.import_workspace("client-b", tables, IMPORTED)
    assert target.workspace("client-b") is None
    assert not any(raw_snapshot(target, "client-b").values())


def test_import_refuses_a_workspace_holding_data_and_fills_an_empty_one(
        archived: tuple[Store, Path], target: Store) -> None:
    src, path = archived
    existing = raw_snapshot(target, "existing")
    with pytest.raises(Conflict, match="existing"):
        read_archive(target, path, "existing", now=IMPORTED)
    assert raw_snapshot(target, "existing") == existing
    # the default workspace of a fresh store is empty: an archive can move into it
    read_archive(target, path, "default", now=IMPORTED)
    assert target.point_count("default") == src.point_count("client-a")
    assert target.workspace("default")["name"] == "Client A"  # type: ignore[index]


@pytest.mark.parametrize(("change", "match"), [
    ({"extra": pa.table({"x": [1]})}, "unknown table"),
    ({"kpis": pa.table({"kpi_id": ["a"]})}, "table 'kpis' has columns"),
    ({"workspaces": pa.table({"name": ["A", "B"], "settings": ["{}", "{}"]})},
     "exactly one row"),
])
def test_import_checks_tables(archived: tuple[Store, Path], target: Store,
                              change: dict[str, pa.Table], match: str) -> None:
    tables = {**exported(archived[0], "client-a"), **change}
    with pytest.raises(StoreError, match=match):
        target.import_workspace("client-b", tables, IMPORTED)
    assert target.workspace("client-b") is None


def test_checksum_ignores_row_and_column_order_but_not_content() -> None:
    t = pa.table({"a": [1, 2, 2, None], "b": ["x", None, "", "y"],
                  "ts": pa.array([0, 1, 2, 3], pa.timestamp("us", tz="UTC")),
                  "f": [0.5, float("nan"), 1.0, None], "ok": [True, False, None, True]})
    order = list(range(t.num_rows))
    random.Random(1).shuffle(order)
    shuffled = t.take(pa.array(order)).select(["ok", "f", "ts", "b", "a"])
    assert table_checksum(shuffled) == table_checksum(t)
    assert table_checksum(t.slice(0, 3)) != table_checksum(t)
    b = t["b"].to_pylist()
    assert table_checksum(t.set_column(1, "b", pa.array([b[0], "", "", b[3]]))) \
        != table_checksum(t)  # null is not ""
    assert table_checksum(t.rename_columns(["a", "c", "ts", "f", "ok"])) != table_checksum(t)
