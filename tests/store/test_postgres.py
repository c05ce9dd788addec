"""PostgreSQL-only behaviour of the PostgreSQL store (the shared contract is in the other
test modules, run on every store): partitions, the advisory-locked migration, the pool and
thread-bound transactions, the COPY path, TimescaleDB detection, the ``?`` translation, and
aggregates equal to DuckDB's on the same data."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from kpidash.core.batch import CleanBatch, validate
from kpidash.core.registry import build_registry
from kpidash.errors import NotFound
from kpidash.model import Aggregation, Grain
from kpidash.store.base import AggSpec
from kpidash.store.duckdb import DuckDBStore
from kpidash.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresStore
from kpidash.store.postgres.connection import translate
from pgserver import PgServer

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)
REG = build_registry([
    {"id": "sales", "name": "Sales", "dimensions": ["region", "plan"]},
    {"id": "customers", "name": "Customers", "aggregation": "last",
     "dimensions": ["region", "plan"]},
])


def batch(times: list[datetime], values: list[float], kpi: str = "sales",
          regions: list[str] | None = None) -> CleanBatch:
    t = pa.table({"timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
                  "kpi": [kpi] * len(times), "value": values,
                  "region": regions or ["eu"] * len(times)})
    b, report = validate(t, REG)
    assert b is not None, report.summary()
    return b


@pytest.fixture
def pg(pg_database: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_database)
    yield s
    s.close()


def partitions(store: PostgresStore) -> dict[str, int]:
    """Partition name → rows of points in it."""
    rows = store._con.execute(
        "SELECT c.relname, (SELECT count(*) FROM points p WHERE p.tableoid = c.oid) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'points'::regclass").fetchall()
    return {str(name): int(n) for name, n in rows}


# -- placeholders (no server needed) ----------------------------------------------------------

@pytest.mark.parametrize(("duck", "pg"), [
    ("SELECT ?", "SELECT %s"),
    ("a LIKE 'x%' AND b = ?", "a LIKE 'x%%' AND b = %s"),
    ("SELECT '?' , \"col?\", ?", "SELECT '?' , \"col?\", %s"),
    ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
    ("SELECT 5 % 2, ? -- what?\n, ?", "SELECT 5 %% 2, %s -- what?\n, %s"),
    ("?::TIMESTAMPTZ", "%s::TIMESTAMPTZ"),
], ids=["plain", "percent-in-literal", "quoted", "doubled-quote", "comment-and-modulo", "cast"])
def test_question_marks_become_psycopg_placeholders(duck: str, pg: str) -> None:
    assert translate(duck) == pg


# -- schema ------------------------------------------------------------------------------------

def test_timescaledb_is_detected_as_absent_here(pg: PostgresStore) -> None:
    offered = pg._con.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchall()
    assert not offered, "this machine has TimescaleDB: the test's premise changed"
    assert pg.timescale is False
    assert "points_default" in partitions(pg)


def test_two_stores_migrating_one_empty_database_at_once_migrate_it_once(
        pg_server: PgServer | str) -> None:
    if isinstance(pg_server, str):
        pytest.skip(pg_server)
    name = pg_server.new_name("kpidash_race")
    url = pg_server.create_database(name)  # empty: not from the migrated template
    try:
        barrier = threading.Barrier(3)
        stores: list[PostgresStore] = []
        errors: list[BaseException] = []

        def open_one() -> None:
            barrier.wait()
            try:
                stores.append(PostgresStore(url))
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        rows = stores[0]._con.execute("SELECT version FROM kpidash_schema").fetchall()
        assert rows == [(v,) for v in sorted(MIGRATIONS)]  # each version applied once
        assert all(s.schema_version() == SCHEMA_VERSION for s in stores)
        assert stores[0].workspaces()[0]["id"] == "default"
        for s in stores:
            s.close()
    finally:
        pg_server.drop_database(name)


# -- partitions --------------------------------------------------------------------------------

def test_writes_create_the_monthly_partitions_they_need(pg: PostgresStore) -> None:
    times = [datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)]
    pg.write_points("default", batch(times, [1.0, 2.0, 3.0]), NOW)
    assert partitions(pg) == {"points_default": 0, "points_p202312": 1, "points_p202401": 1,
                              "points_p202403": 1}  # no empty February
    pg.write_points("default", batch([datetime(2024, 1, 20, tzinfo=UTC)], [4.0]), NOW)
    assert partitions(pg)["points_p202401"] == 2
    assert pg.point_count("default") == 4


def test_rows_in_the_default_partition_move_to_their_month_when_it_is_created(
        pg: PostgresStore) -> None:
    pg.write_points("default", batch([datetime(2024, 1, 1, tzinfo=UTC)], [1.0]), NOW)
    sid = pg._con.execute("SELECT series_id FROM series").fetchall()[0][0]
    # a row that came by another way (an import writing points directly) lands in DEFAULT
    pg._con.execute("INSERT INTO points (series_id, ts, value, ingested_at) "
                    "VALUES (?, ?, 5.0, ?)", [sid, datetime(2024, 5, 5, tzinfo=UTC), NOW])
    assert partitions(pg)["points_default"] == 1
    pg.write_points("default", batch([datetime(2024, 5, 6, tzinfo=UTC)], [6.0]), NOW)
    parts = partitions(pg)
    assert parts["points_default"] == 0
    assert parts["points_p202405"] == 2


def test_a_rolled_back_write_leaves_no_partition_behind(pg: PostgresStore) -> None:
    with pytest.raises(RuntimeError), pg.transaction():
        pg.write_points("default", batch([datetime(2025, 7, 1, tzinfo=UTC)], [1.0]), NOW)
        assert "points_p202507" in partitions(pg)
        raise RuntimeError("abort")
    assert "points_p202507" not in partitions(pg)
    pg.write_points("default", batch([datetime(2025, 7, 1, tzinfo=UTC)], [1.0]), NOW)
    assert partitions(pg)["points_p202507"] == 1


# -- the COPY path -----------------------------------------------------------------------------

def test_copy_keeps_every_double_bit_for_bit_and_text_with_csv_characters(
        pg: PostgresStore) -> None:
    rng = np.random.default_rng(7)
    values = (rng.standard_normal(2000) * 10.0 ** rng.integers(-12, 17, 2000)).tolist()
    values[:3] = [1e18, -1e-300, 0.1]
    times = [T0 + timedelta(minutes=i) for i in range(len(values))]
    b = batch(times, values)
    reason = ['a "quoted", comma\nand newline', "", None] + [None] * (len(values) - 3)
    b = CleanBatch(b.kpi, b.ts, b.value, b.raw_value,
                   pa.array(["manual", "", None] + [None] * (len(values) - 3), pa.string()),
                   pa.array(reason, pa.string()), b.series_key, b.dims, b.corrected)
    stats = pg.write_points("default", b, NOW)
    assert (stats.written, stats.replaced, stats.new_series) == (len(values), 0, 1)
    got = pg.read_points("default", "sales")
    assert got["value"].to_pylist() == values
    assert got["correction_reason"].to_pylist()[:3] == reason[:3]
    assert got["correction"].to_pylist()[:3] == ["manual", "", None]
    assert got["raw_value"].null_count == len(values)


def test_read_points_has_duckdb_column_types(pg: PostgresStore, tmp_path: object) -> None:
    duck = DuckDBStore(":memory:")
    try:
        for s in (pg, duck):
            s.write_points("default", batch([T0, T0 + timedelta(days=1)], [1.0, 2.0]), NOW)
        assert pg.read_points("default", "sales").schema == \
            duck.read_points("default", "sales").schema
        assert pg.read_points("default", "nothing").schema == \
            duck.read_points("default", "nothing").schema
    finally:
        duck.close()


def test_resending_counts_replaced_points_and_keeps_spacing_exact(pg: PostgresStore) -> None:
    times = [T0 + timedelta(days=i) for i in range(5)]
    pg.write_points("default", batch(times, [1.0] * 5), NOW)
    stats = pg.write_points("default", batch([*times[3:], T0 + timedelta(hours=12)],
                                             [2.0, 2.0, 2.0]), NOW)
    assert (stats.written, stats.replaced, stats.new_series) == (3, 2, 0)
    last_ts, gap = pg._con.execute("SELECT last_ts, min_gap_us FROM series").fetchall()[0]
    assert last_ts == times[-1]
    assert gap == 12 * 3600 * 1_000_000


# -- pool and transactions ---------------------------------------------------------------------

def test_threads_share_the_pool_and_a_transaction_stays_on_its_thread(
        pg: PostgresStore) -> None:
    inside, seen_outside = threading.Event(), threading.Event()
    counts: list[int] = []

    def other_thread() -> None:
        inside.wait(10)
        counts.append(pg.point_count("default"))  # another pooled connection: not yet
        seen_outside.set()

    # the partition first: creating one in a transaction blocks readers until it ends
    pg.write_points("default", batch([T0 + timedelta(days=9)], [1.0]), NOW)
    pg.delete_kpi("default", "sales", purge=True)
    t = threading.Thread(target=other_thread)
    t.start()
    with pg.transaction():
        pg.write_points("default", batch([T0], [1.0]), NOW)
        with pg.transaction():  # nested: joins the outer one
            pg.write_points("default", batch([T0 + timedelta(days=1)], [1.0]), NOW)
        assert pg.point_count("default") == 2  # this thread sees its own writes
        inside.set()
        assert seen_outside.wait(10)
    t.join()
    assert counts == [0]
    assert pg.point_count("default") == 2


def test_many_threads_at_once_on_a_small_pool(pg_database: str) -> None:
    store = PostgresStore(pg_database, min_size=1, max_size=2)
    try:
        for k in range(3):
            store.ensure_workspace(f"ws{k}")

        def work(n: int) -> None:
            store.write_points(f"ws{n % 3}", batch([T0 + timedelta(days=n)], [float(n)]), NOW)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(store.point_count(f"ws{k}") for k in range(3)) == 12
    finally:
        store.close()


# -- aggregates equal DuckDB's ---------------------------------------------------------------

@pytest.fixture(scope="module")
def random_points() -> CleanBatch:
    rng = np.random.default_rng(11)
    n = 3000
    times = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=int(s))
             for s in rng.integers(0, 400 * 86400, n)]
    t = pa.table({"timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
                  "kpi": rng.choice(["sales", "customers"], n).tolist(),
                  "value": rng.uniform(-1e4, 1e6, n).round(4),
                  "region": rng.choice(["eu", "na", "apac"], n).tolist(),
                  "plan": rng.choice(["free", "pro", None], n).tolist()})
    b, report = validate(t, REG)
    assert b is not None, report.summary()
    return b


@pytest.fixture(scope="module")
def filled(pg_server: PgServer | str, pg_template: str, random_points: CleanBatch,
           ) -> Iterator[tuple[PostgresStore, DuckDBStore]]:
    """The same random points in a PostgreSQL and a DuckDB store (read only)."""
    assert isinstance(pg_server, PgServer)
    name = pg_server.new_name()
    pg = PostgresStore(pg_server.create_database(name, template=pg_template))
    duck = DuckDBStore(":memory:")
    for s in (pg, duck):
        s.write_points("default", random_points, NOW)
    yield pg, duck
    pg.close()
    duck.close()
    pg_server.drop_database(name)


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu"])
@pytest.mark.parametrize("grain", list(Grain))
def test_aggregates_equal_duckdbs(filled: tuple[PostgresStore, DuckDBStore], grain: Grain,
                                  tz: str) -> None:
    specs = [AggSpec("sales", a) for a in Aggregation] + [AggSpec("customers", Aggregation.LAST)]
    start, end = datetime(2024, 2, 1, tzinfo=UTC), datetime(2025, 1, 10, tzinfo=UTC)
    for group_by, filters in ((None, {}), ("region", {}), ("plan", {"region": ["eu"]})):
        for spec in specs:
            got = [s.aggregate("default", [spec], grain, tz, start, end, filters, group_by)
                   [spec.kpi_id] for s in filled]
            rows = [sorted(zip(r.keys.tolist(), r.groups.tolist(), r.values.tolist(),
                               strict=True), key=lambda x: (x[0], str(x[1])))
                    for r in got]
            assert len(rows[0]) == len(rows[1]) > 0
            for a, b in zip(*rows, strict=True):
                assert a[:2] == b[:2], (spec, group_by)
                assert a[2] == pytest.approx(b[2], rel=1e-12, abs=1e-9), (spec, group_by)


def test_all_aggregations_in_one_call_equal_one_by_one(
        filled: tuple[PostgresStore, DuckDBStore]) -> None:
    pg = filled[0]
    specs = [AggSpec("sales", Aggregation.MEAN), AggSpec("customers", Aggregation.LAST)]
    start, end = datetime(2024, 2, 1, tzinfo=UTC), datetime(2025, 1, 10, tzinfo=UTC)
    together = pg.aggregate("default", specs, Grain.WEEK, "Europe/Paris", start, end, {},
                            "region")
    for spec in specs:
        alone = pg.aggregate("default", [spec], Grain.WEEK, "Europe/Paris", start, end, {},
                             "region")[spec.kpi_id]
        assert together[spec.kpi_id].values.tolist() == alone.values.tolist()
        assert together[spec.kpi_id].keys.tolist() == alone.keys.tolist()


def test_a_wrong_database_is_one_clear_error_at_once(pg_database: str) -> None:
    from kpidash.errors import StoreError

    url = pg_database.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreError, match=r"no_such_database.*does not exist") as exc:
        PostgresStore(url, timeout=30)
    assert "\n" not in str(exc.value)
    del exc  # no traceback cycle holding the pool until exit


def test_a_bulk_load_leaves_the_planner_statistics(pg: PostgresStore) -> None:
    """After a load that creates partitions, points has statistics (ANALYZE ran): the
    planner no longer guesses one row everywhere."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    times = [start + timedelta(hours=h) for h in range(24 * 60)]
    pg.write_points("default", batch(times, [float(i) for i in range(len(times))]),
                    datetime(2024, 3, 1, tzinfo=UTC))
    (analyzed,) = pg._con.execute(
        "SELECT count(*) FROM pg_stats WHERE tablename = 'points'").fetchone()
    assert analyzed > 0


# -- a workspace deleted by one process while another writes into it ---------------------------


def test_a_workspace_deletion_waits_for_a_write_in_flight_and_takes_its_points(
        pg: PostgresStore, pg_database: str) -> None:
    """Two processes (two stores): one writes points into a workspace inside a transaction,
    the other deletes the workspace meanwhile. The deletion waits for the write to commit
    and then deletes its points too; a write after the deletion is refused. No points are
    left for a workspace that no longer exists."""
    pg.create_workspace("acme", "Acme", None, NOW)
    other = PostgresStore(pg_database)
    written, release, deleted = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with pg.transaction():
                pg.write_points("acme", batch([T0, T0 + timedelta(days=1)], [1.0, 2.0]), NOW)
                written.set()
                release.wait(10)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def delete() -> None:
        other.delete_workspace("acme")
        deleted.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert written.wait(10)
        deleter = threading.Thread(target=delete)
        deleter.start()
        assert not deleted.wait(0.5), "the deletion did not wait for the write in flight"
        release.set()
        writer.join(10)
        deleter.join(10)
        assert deleted.is_set() and errors == []
        assert pg.workspace("acme") is None
        assert pg.point_count("acme") == 0 and pg.series_count("acme") == 0
        with pytest.raises(NotFound, match="no workspace 'acme'"):
            pg.write_points("acme", batch([T0], [3.0]), NOW)
        assert pg.point_count("acme") == 0
    finally:
        release.set()
        other.close()
