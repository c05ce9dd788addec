"""``store/migrate.py``: a whole store copied between DuckDB and PostgreSQL with nothing lost —
every workspace and the server-wide tables, counts and checksums compared, the same reads
through the Store API; a non-empty target refused; a failure mid-import leaves the target
empty. Cases on PostgreSQL are skipped when no server can be started (tests/pgserver.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from workspace_data import NOW, T0, catalog, fill

from kpidash.core.aggregate import AggRows
from kpidash.errors import Conflict, SchemaVersionError, StoreError
from kpidash.model import DEFAULT_WORKSPACE, Aggregation, Annotation, Grain
from kpidash.store import open_store
from kpidash.store.archive import table_checksum
from kpidash.store.base import AggSpec, Store
from kpidash.store.duckdb.schema import SCHEMA_VERSION
from kpidash.store.duckdb.server_tables import SERVER_TABLE_NAMES
from kpidash.store.duckdb.workspaces import (
    GLOBAL_TABLES,
    MEMBER_TABLES,
    STATE_TABLES,
    TABLE_NAMES,
)
from kpidash.store.migrate import GLOBAL_SCOPE, check_urls, migrate

LATER = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    return pg_database


@pytest.fixture
def duck_url(tmp_path: Path) -> str:
    return f"duckdb:{tmp_path / 'other.duckdb'}"


Opener = Callable[[str], Store]


@pytest.fixture
def opened() -> Iterator[Opener]:
    stores: list[Store] = []

    def open_(url: str) -> Store:
        stores.append(open_store(url))
        return stores[-1]

    yield open_
    for s in stores:
        s.close()


def populate(store: Store) -> None:
    """Two workspaces (and the default one) in every owned table, plus users, sessions,
    login failures, memberships and ingest tokens."""
    fill(store, "a", 1.0)
    fill(store, "b", 2.0)
    fill(store, DEFAULT_WORKSPACE, 3.0, data=False)
    store.update_workspace("a", name="Renamed A", now=LATER)
    for n, name in enumerate(("ana", "bob")):
        store.add_user({"id": f"u{n}", "username": name, "password_hash": f"hash-{name}",
                        "role": "admin" if n == 0 else "viewer",
                        "doc": {"email": f"{name}@example.com", "tags": ["x", n]},
                        "created_at": T0 + timedelta(hours=n), "disabled": n == 1})
        store.add_session({"id": f"s{n}", "user_id": f"u{n}", "family_id": f"f{n}",
                           "refresh_hash": f"rh{n}", "created_at": NOW, "last_seen": NOW,
                           "expires_at": LATER, "user_agent": "pytest", "address": "127.0.0.1",
                           "rotated_from": None})
    store.add_session({"id": "s2", "user_id": "u0", "family_id": "f0", "refresh_hash": "rh2",
                       "created_at": NOW, "last_seen": NOW + timedelta(minutes=5),
                       "expires_at": LATER, "rotated_from": "s0"})
    store.revoke_sessions(NOW, family_id="f1")
    store.add_login_failures(["bob", "10.0.0.1"], NOW)
    store.add_login_failures(["bob"], NOW)  # the same key and time twice: both kept
    store.revoke_ingest_token("b", "t1", NOW)


def snapshot(store: Store) -> dict[str, Any]:
    """What the Store API reads of everything ``populate`` wrote (ids that an import
    renumbers left out)."""
    out: dict[str, Any] = {"workspaces": store.workspaces(), "users": store.users()}
    for ws in ("a", "b", DEFAULT_WORKSPACE):
        start, end = T0 - timedelta(days=1), T0 + timedelta(days=30)
        specs = [AggSpec("sales", Aggregation.SUM), AggSpec("temp", Aggregation.MEAN)]
        out[ws] = {
            "kpis": store.get_kpis(ws),
            "points": store.read_points(ws, "sales").to_pylist(),
            "day": _rows(store.aggregate(ws, specs, Grain.DAY, "UTC", start, end, {}, None)),
            "week_by_region": _rows(store.aggregate(ws, specs, Grain.WEEK,
                                                    "Europe/Paris", start,
                                                    end, {"region": ["EU", "APAC"]}, "region")),
            "counts": (store.point_count(ws), store.series_count(ws), store.time_range(ws)),
            "corrections": store.correction_log(ws).to_pylist(),
            "annotations": [(a.start, a.end, a.label, a.kpi_id)
                            for a in store.annotations(ws)],
            "anomalies": store.anomalies(ws).to_pylist(),
            "outbox": store.outbox(ws),
            "rules": store.alert_rules(ws), "alerts": store.alert_instances(ws),
            "history": store.alert_history(ws), "acks": store.acknowledgements(ws),
            "silences": store.silences(ws), "groups": store.alert_groups(ws),
            "interactions": store.interactions(ws),
            "views": store.insight_views(ws, "ana"),
            "dashboards": store.dashboards(ws),
            "shared": store.dashboards(ws, visible_to="bob"),
            "members": store.memberships(ws), "tokens": store.ingest_tokens(ws),
        }
    out["accounts"] = {
        "user_memberships": [store.user_memberships(u) for u in ("ana", "bob", "u0")],
        "sessions": [store.sessions(u) for u in ("u0", "u1")],
        "session_rows": [store.session_row(token_id=t) for t in ("s0", "s1", "s2")],
        "failures": store.login_failures(["bob", "10.0.0.1"], T0),
        "token": store.ingest_token_by_hash("h-b-t1"),
    }
    return out


def _rows(result: dict[str, AggRows]) -> dict[str, Any]:
    """Aggregates as sorted (period, group, value) rows (the store gives no row order)."""
    return {k: sorted(zip(v.keys.tolist(), v.groups.tolist(), v.values.tolist(), strict=True),
                      key=repr) for k, v in result.items()}


def checks_by_table(report: Any) -> dict[tuple[str, str], tuple[int, str]]:
    return {(c.scope, c.table): (c.target_rows, c.target_sha256) for c in report.tables}


def every_table(store: Store) -> dict[tuple[str, str], tuple[int, str]]:
    out = {(GLOBAL_SCOPE, n): (t.num_rows, table_checksum(t)) for n, t in store.export_global()}
    for w in store.workspaces():
        out |= {(w["id"], n): (t.num_rows, table_checksum(t))
                for n, t in store.export_workspace(w["id"])}
    return out


# -- what is copied -------------------------------------------------------------------------


def test_every_table_of_the_schema_is_copied(opened: Opener, tmp_path: Path) -> None:
    """The workspace export and the server tables together cover the whole catalog (the
    schema version table and a running server's state aside): a new table must be
    classified before migrate forgets it."""
    store = opened(str(tmp_path / "s.duckdb"))
    assert set(SERVER_TABLE_NAMES) == (GLOBAL_TABLES - {"kpidash_schema"}) | set(
        MEMBER_TABLES) | {"workspaces"}
    assert set(catalog(store)) == (set(TABLE_NAMES) | set(SERVER_TABLE_NAMES)
                                   | {"kpidash_schema"} | set(STATE_TABLES))


def test_server_tables_export_the_same_schemas_on_both_engines(opened: Opener, tmp_path: Path,
                                                              pg_url: str) -> None:
    duck, pg = opened(str(tmp_path / "s.duckdb")), opened(pg_url)
    assert pg.global_schemas() == duck.global_schemas()  # type: ignore[attr-defined]


@pytest.mark.parametrize("direction", ["duckdb-to-postgresql", "postgresql-to-duckdb",
                                       "duckdb-to-duckdb"])
def test_a_whole_store_is_copied_with_nothing_lost(direction: str, opened: Opener,
                                                  tmp_path: Path, request: pytest.FixtureRequest,
                                                  ) -> None:
    here = f"duckdb:{tmp_path / 'here.duckdb'}"
    pg = "pg_url" if "postgresql" in direction else "duck_url"
    there = request.getfixturevalue(pg)
    src_url, dst_url = (there, here) if direction.startswith("postgresql") else (here, there)
    source, target = opened(src_url), opened(dst_url)
    populate(source)
    before = snapshot(source)
    progress: list[tuple[str, int, int]] = []

    report = migrate(source, target, progress=lambda *a: progress.append(a))

    assert report.ok, report.mismatches
    assert set(report.workspaces) == {"a", "b", DEFAULT_WORKSPACE}
    assert checks_by_table(report) == every_table(source) == every_table(target)
    assert all(c.source_rows for c in report.tables if c.scope != DEFAULT_WORKSPACE
               and c.table not in ("series", "series_dims", "points", "kpis",
                                   "correction_log")), report.tables
    after = snapshot(target)
    for key in before:
        if isinstance(before[key], dict):
            for part in before[key]:
                assert after[key][part] == before[key][part], (key, part)
    assert after == before
    phases = [p for p, *_ in progress]
    assert phases.count("copy") == 4 and phases[-1] == "verify"
    assert progress[-1][1] == progress[-1][2] == len(report.tables)
    # the copy works on as a store: ids drawn after the import do not collide
    target.add_annotation("a", Annotation(T0, T0, "after"), LATER)
    assert len({a.id for a in target.annotations("a")}) == 3


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["workspace", "default-data", "user", "membership"])
def test_a_non_empty_target_is_refused_and_left_alone(what: str, opened: Opener,
                                                      tmp_path: Path, pg_url: str) -> None:
    source, target = opened(str(tmp_path / "s.duckdb")), opened(pg_url)
    populate(source)
    if what == "workspace":
        target.create_workspace("zz", "ZZ", None, NOW)
    elif what == "default-data":
        target.put_kpis(DEFAULT_WORKSPACE, [{"id": "x", "name": "X"}], NOW)
    elif what == "user":
        target.add_user({"id": "u9", "username": "zed", "password_hash": "h", "role": "viewer",
                         "doc": {}, "created_at": NOW})
    else:
        target.put_membership(DEFAULT_WORKSPACE, "zed", "viewer", NOW)
    before = every_table(target)
    with pytest.raises(Conflict, match=r"^the target store .* is not empty \(it holds .*\); "
                                       r"migrate into a new database$"):
        migrate(source, target)
    assert every_table(target) == before


def test_different_schema_versions_are_refused(opened: Opener, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    source, target = opened(str(tmp_path / "s.duckdb")), opened(str(tmp_path / "t.duckdb"))
    monkeypatch.setattr(source, "schema_version", lambda: 8)
    with pytest.raises(SchemaVersionError, match=r"schema versions differ: source .* at 8, "
                                                 rf"target .* at {SCHEMA_VERSION}"):
        migrate(source, target)


@pytest.mark.parametrize("src,dst,message", [
    ("{d}/a.duckdb", "duckdb:{d}/a.duckdb", "name the same store"),
    (":memory:", "{d}/t.duckdb", "--from :memory: is an in-memory store"),
    ("{d}/a.duckdb", "duckdb::memory:", "--to duckdb::memory: is an in-memory store"),
    ("{d}/missing.duckdb", "{d}/t.duckdb", "no such DuckDB database file"),
    ("postgresql://u@h/db", "postgres://u@h/db", "name the same store"),
])
def test_urls_that_cannot_make_a_migration_are_refused(src: str, dst: str, message: str,
                                                       tmp_path: Path) -> None:
    (tmp_path / "a.duckdb").write_bytes(b"")
    with pytest.raises(StoreError, match=message):
        check_urls(src.format(d=tmp_path), dst.format(d=tmp_path))


# -- all or nothing --------------------------------------------------------------------------


@pytest.mark.parametrize("target_kind", ["postgresql", "duckdb"])
@pytest.mark.parametrize("fail_at", ["second-workspace", "server-tables"])
def test_a_failure_mid_import_leaves_the_target_empty(target_kind: str, fail_at: str,
                                                      opened: Opener, tmp_path: Path,
                                                      request: pytest.FixtureRequest,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    source = opened(str(tmp_path / "s.duckdb"))
    target = opened(request.getfixturevalue("pg_url" if target_kind == "postgresql"
                                            else "duck_url"))
    populate(source)
    empty = every_table(target)
    real_import, real_global = target.import_workspace, target.import_global
    imported: list[str] = []

    def import_workspace(ws: str, tables: dict[str, pa.Table], now: datetime) -> dict[str, int]:
        if fail_at == "second-workspace" and imported:
            raise StoreError("injected failure")
        imported.append(ws)
        return real_import(ws, tables, now)

    def import_global(tables: dict[str, pa.Table]) -> dict[str, int]:
        counts = real_global(tables)
        raise StoreError(f"injected failure after {sum(counts.values())} rows")

    monkeypatch.setattr(target, "import_workspace", import_workspace)
    if fail_at == "server-tables":
        monkeypatch.setattr(target, "import_global", import_global)
    with pytest.raises(StoreError, match="injected failure"):
        migrate(source, target)
    assert imported
    monkeypatch.undo()
    assert every_table(target) == empty
    assert [w["id"] for w in target.workspaces()] == [DEFAULT_WORKSPACE]
    assert target.users() == [] and target.point_count("a") == 0
    report = migrate(source, target)  # and the target still takes the whole copy
    assert report.ok and every_table(target) == every_table(source)


def test_import_global_refuses_rows_that_do_not_fit(opened: Opener, tmp_path: Path) -> None:
    source, target = opened(str(tmp_path / "s.duckdb")), opened(str(tmp_path / "t.duckdb"))
    populate(source)
    tables = dict(source.export_global())
    with pytest.raises(StoreError, match=r"server table 'users' has columns"):
        target.import_global({**tables, "users": tables["users"].drop_columns(["role"])})
    with pytest.raises(StoreError, match=r"unknown server table\(s\) 'nope'"):
        target.import_global({**tables, "nope": pa.table({"x": [1]})})
    target.import_global(tables)
    with pytest.raises(Conflict, match=r"^the store already holds users, sessions, "
                                       r"login_failures, memberships, ingest_tokens;"):
        target.import_global(tables)
