"""Workspace archives move between engines with nothing lost: a workspace exported from DuckDB
imports into PostgreSQL and back (and one filled on PostgreSQL into DuckDB) with the same row
counts and the same checksums per table — what ``kpidash migrate`` relies on (issue 9).
Skipped when no PostgreSQL server can be started (see tests/pgserver.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from workspace_data import fill

from kpidash import demo
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.errors import StoreError
from kpidash.packs import load_pack
from kpidash.store import open_store
from kpidash.store.archive import read_archive, table_checksum, write_archive
from kpidash.store.base import Store

IMPORTED = datetime(2024, 8, 1, tzinfo=UTC)


@pytest.fixture
def pg(pg_database: str) -> Iterator[Store]:
    from kpidash.store.postgres import PostgresStore

    s = PostgresStore(pg_database)
    yield s
    s.close()


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "src.duckdb"))
    yield s
    s.close()


def sums(store: Store, ws: str) -> dict[str, tuple[int, str]]:
    """Rows and checksum of every exported table of ``ws``."""
    return {name: (t.num_rows, table_checksum(t)) for name, t in store.export_workspace(ws)}


def manifest_sums(manifest: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {name: (e["rows"], e["sha256"]) for name, e in manifest["tables"].items()}


def test_duckdb_to_postgresql_and_back(duck: Store, pg: Store, tmp_path: Path) -> None:
    fill(duck, "a", 1.0)
    fill(duck, "noise", 2.0)  # another workspace of the same store stays out of the archive
    first = write_archive(duck, "a", tmp_path / "a.zip")
    assert all(rows for rows, _ in manifest_sums(first).values()), first["tables"]
    fill(pg, "existing", 3.0)  # ids taken on the target: the import renumbers
    counts = read_archive(pg, tmp_path / "a.zip", "b", now=IMPORTED)
    assert counts == {n: rows for n, (rows, _) in manifest_sums(first).items()}
    assert sums(pg, "b") == manifest_sums(first)
    assert pg.get_kpis("b") == duck.get_kpis("a")  # insertion order kept (ord)

    second = write_archive(pg, "b", tmp_path / "b.zip")
    assert manifest_sums(second) == manifest_sums(first)
    read_archive(duck, tmp_path / "b.zip", "c", now=IMPORTED)
    assert sums(duck, "c") == manifest_sums(first)


def test_postgresql_to_duckdb_and_back(duck: Store, pg: Store) -> None:
    fill(pg, "a", 2.0)
    fill(pg, "noise", 1.0)
    tables = dict(pg.export_workspace("a"))
    want = {n: (t.num_rows, table_checksum(t)) for n, t in tables.items()}
    assert all(rows for rows, _ in want.values()), want
    fill(duck, "existing", 3.0)
    duck.import_workspace("b", tables, IMPORTED)
    assert sums(duck, "b") == want
    assert duck.get_kpis("b") == pg.get_kpis("a")
    pg.import_workspace("c", dict(duck.export_workspace("b")), IMPORTED)
    assert sums(pg, "c") == want


def test_both_engines_export_the_same_schemas(duck: Store, pg: Store) -> None:
    assert pg.export_schemas() == duck.export_schemas()  # type: ignore[attr-defined]


def test_a_failed_import_into_postgresql_leaves_nothing(duck: Store, pg: Store) -> None:
    fill(duck, "a", 1.0)
    tables = dict(duck.export_workspace("a"))
    pts = tables["points"]
    keys = pts["series_key"].to_pylist()
    keys[-1] = "nope\x1f"
    tables["points"] = pts.set_column(pts.column_names.index("series_key"), "series_key",
                                      pa.array(keys))
    with pytest.raises(StoreError, match=r"table 'points'.*1 of its"):
        pg.import_workspace("b", tables, IMPORTED)
    assert pg.workspace("b") is None
    assert pg.point_count("b") == 0
    # and the store still works on the connection the import used
    pg.import_workspace("b", dict(duck.export_workspace("a")), IMPORTED)
    assert sums(pg, "b") == sums(duck, "a")


def test_months_of_demo_data_land_in_their_partitions(duck: Store, pg: Store,
                                                      tmp_path: Path) -> None:
    """Engine-ingested data over several months: every point in its month's partition of
    PostgreSQL's points (none in points_default), the same checksums and the same reads."""
    engine = Engine(duck, FixedClock(datetime(2024, 7, 1, tzinfo=UTC)), workspace="a")
    engine.register(load_pack("saas"))
    engine.ingest_table(demo.generate(date(2024, 6, 30), days=120).points, source="demo")
    manifest = write_archive(duck, "a", tmp_path / "a.zip")
    read_archive(pg, tmp_path / "a.zip", "b", now=IMPORTED)
    assert sums(pg, "b") == manifest_sums(manifest)
    con = pg._con  # type: ignore[attr-defined]
    parts = dict(con.execute("SELECT tableoid::regclass::text, count(*) FROM points "
                             "GROUP BY 1").fetchall())
    assert parts.get("points_default", 0) == 0 and len(parts) >= 4, parts
    assert sum(parts.values()) == duck.point_count("a") > 1000
    assert (pg.read_points("b", "revenue").to_pylist()
            == duck.read_points("a", "revenue").to_pylist())
