from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpidash import demo
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.errors import BatchRejected, QueryError
from kpidash.model import Point
from kpidash.schemas import validate_widget
from kpidash.store import open_store

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CSV = """timestamp,kpi,value,region,plan,channel
2024-01-01T00:00:00Z,revenue,100,EU,pro,paid
2024-01-01T00:00:00Z,revenue,50,NA,pro,paid
2024-01-02T00:00:00Z,revenue,120,EU,pro,paid
2024-01-03T00:00:00Z,leads,10,EU,,paid
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_ingest_and_query(engine: Engine, tmp_path: Path) -> None:
    res = engine.ingest_file(write(tmp_path, "p.csv", CSV))
    assert (res.rows, res.written, res.new_series) == (4, 4, 3)
    [s] = engine.query("revenue", "day", T0, T0 + timedelta(days=3))
    assert s.values[:2].tolist() == [150.0, 120.0]
    assert np.isnan(s.values[2]), "a period without data is explicit (NaN), not dropped or 0"
    assert s.labels == ("2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00",
                        "2024-01-03T00:00:00+00:00")


def test_reingesting_a_file_is_idempotent(engine: Engine, tmp_path: Path) -> None:
    f = write(tmp_path, "p.csv", CSV)
    engine.ingest_file(f)
    before = engine.store.point_count(engine.workspace)
    engine.ingest_file(f)
    assert engine.store.point_count(engine.workspace) == before == 4
    [s] = engine.query("revenue", "week", T0, T0 + timedelta(days=3))
    assert s.values.tolist() == [270.0]


def test_one_bad_row_rejects_the_whole_file(engine: Engine, tmp_path: Path) -> None:
    bad = CSV + "2024-01-04T00:00:00Z,revenue,oops,EU,pro,paid\n2024-01-05,revenue,1,EU,pro,paid\n"
    with pytest.raises(BatchRejected) as exc:
        engine.ingest_file(write(tmp_path, "bad.csv", bad))
    rows = sorted((i.location.row, i.location.field) for i in exc.value.report.errors)
    assert rows == [(5, "value"), (6, "timestamp")]
    assert engine.store.point_count(engine.workspace) == 0
    assert engine.store.series_count(engine.workspace) == 0


def test_bad_chunk_after_good_chunks_writes_nothing(tmp_path: Path, clock: FixedClock,
                                                    saas: object) -> None:
    e = Engine(open_store(str(tmp_path / "c.duckdb")), clock, chunk_rows=1000)
    e.register(saas)  # type: ignore[arg-type]
    n = 3500
    ts = [(T0 + timedelta(hours=i)).isoformat() for i in range(n)]
    values = [1.0] * n
    kpis = ["revenue"] * n
    kpis[-1] = "ghost"  # the last chunk is bad
    pq.write_table(pa.table({"timestamp": ts, "kpi": kpis, "value": values}),
                   tmp_path / "p.parquet", row_group_size=1000)
    with pytest.raises(BatchRejected) as exc:
        e.ingest_file(tmp_path / "p.parquet")
    assert [i.location.row for i in exc.value.report.errors] == [n]
    assert e.store.point_count(e.workspace) == 0
    e.close()


def test_parquet_and_json_paths(engine: Engine, tmp_path: Path) -> None:
    t = pa.table({"ts": pa.array([T0, T0 + timedelta(days=1)], pa.timestamp("us", tz="UTC")),
                  "kpi": ["signups", "signups"], "value": [3, 4], "region": ["EU", "EU"]})
    pq.write_table(t, tmp_path / "s.parquet")
    assert engine.ingest_file(tmp_path / "s.parquet").written == 2
    payload = {"points": [{"kpi": "signups", "ts": "2024-01-03T00:00:00Z", "value": 5,
                           "dims": {"region": "EU"}}]}
    assert engine.ingest_json(json.dumps(payload)).written == 1
    f = write(tmp_path, "s.json", json.dumps(payload))
    assert engine.ingest_file(f).written == 1  # same point again: replaced
    [s] = engine.query("signups", "day", T0, T0 + timedelta(days=3), filters={"region": "EU"})
    assert s.values.tolist() == [3.0, 4.0, 5.0]


@pytest.mark.parametrize(("payload", "code"), [
    pytest.param("{not json", "json.syntax", id="syntax"),
    pytest.param('{"points": 3}', "json.shape", id="not-a-list"),
    pytest.param('[{"kpi": "revenue", "ts": "2024-01-01T00:00:00Z", "value": true}]',
                 "point.value", id="bool-value"),
    pytest.param('[{"kpi": "revenue", "ts": "2024-01-01T00:00:00Z", "value": 1, "dims": [1]}]',
                 "json.shape", id="dims-not-object"),
    pytest.param('[{"kpi": "revenue", "when": "x", "value": 1}]', "json.shape", id="unknown"),
])
def test_json_shape_errors(engine: Engine, payload: str, code: str) -> None:
    with pytest.raises(BatchRejected) as exc:
        engine.ingest_json(payload)
    assert exc.value.report.errors[0].code == code
    assert engine.store.point_count(engine.workspace) == 0


def test_python_points(engine: Engine) -> None:
    res = engine.ingest([Point("mrr", T0, 1000.0, {"region": "EU", "plan": "pro"}),
                         Point("mrr", T0 + timedelta(days=1), 1100.0, {"region": "EU", "plan": "pro"})])
    assert res.written == 2
    [arr] = engine.query("arr", "month", T0, T0 + timedelta(days=2))
    assert arr.values.tolist() == [12 * 1100.0]  # derived from MRR's last value in the month


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["NA", "EU", "APAC"]), st.integers(0, 6),
                          st.integers(0, 40), st.integers(1, 200)), min_size=1, max_size=25))
def test_ratio_matches_hand_computation_through_the_store(
        engine: Engine, rows: list[tuple[str, int, int, int]]) -> None:
    """Conversion rate per week = 100·Σconversions/Σleads over every day and region in it."""
    engine.store._run("DELETE FROM points")  # type: ignore[attr-defined]
    pts = []
    for region, d, conv, leads in rows:
        ts = T0 + timedelta(days=d)
        pts += [Point("conversions", ts, float(min(conv, leads)), {"region": region}),
                Point("leads", ts, float(leads), {"region": region})]
    engine.ingest(pts)
    # the last sent value of a (series, day) wins, as the store does
    last: dict[tuple[str, int], tuple[float, float]] = {}
    for region, d, conv, leads in rows:
        last[(region, d)] = (float(min(conv, leads)), float(leads))
    expected = 100 * sum(c for c, _ in last.values()) / sum(n for _, n in last.values())
    [s] = engine.query("conversion_rate", "week", T0, T0 + timedelta(days=7))
    assert s.values[0] == pytest.approx(expected)


def test_ratio_is_not_mean_of_ratios(engine: Engine) -> None:
    engine.ingest([Point("conversions", T0, 1.0, {"region": "EU"}),
                   Point("leads", T0, 10.0, {"region": "EU"}),
                   Point("conversions", T0, 30.0, {"region": "NA"}),
                   Point("leads", T0, 100.0, {"region": "NA"})])
    [s] = engine.query("conversion_rate", "day", T0, T0 + timedelta(days=1))
    assert s.values[0] == pytest.approx(100 * 31 / 110)  # 28.18 %, not (10 % + 30 %) / 2
    by = {x.group: x.values[0] for x in engine.query("conversion_rate", "day", T0,
                                                      T0 + timedelta(days=1), group_by="region")}
    assert by == {"EU": pytest.approx(10.0), "NA": pytest.approx(30.0)}


def test_grains_and_time_zones(engine: Engine) -> None:
    engine.ingest([Point("signups", T0 + timedelta(hours=h), 1.0, {}) for h in range(0, 24 * 40)])
    for grain, n_first in [("hour", 1), ("day", 24), ("week", 24 * 7), ("month", 24 * 31)]:
        s = engine.query("signups", grain, T0, T0 + timedelta(days=40))[0]
        assert s.values[0] == n_first, grain
        assert np.nansum(s.values) == 24 * 40
    tokyo = engine.query("signups", "day", T0, T0 + timedelta(days=2), tz="Asia/Tokyo")[0]
    # Tokyo's Jan 1 starts 9 h before UTC's: 15 h of the range fall in it
    assert tokyo.labels[0] == "2024-01-01T00:00:00+09:00" and tokyo.values[0] == 15


def test_query_errors_are_clear(engine: Engine) -> None:
    engine.ingest([Point("leads", T0, 1.0, {"region": "EU"})])
    with pytest.raises(QueryError, match="no dimension 'plan'"):
        engine.query("conversion_rate", "day", group_by="plan")
    with pytest.raises(QueryError, match="unknown grain"):
        engine.query("leads", "fortnight")


def test_demo_dashboard_widgets_validate(tmp_path: Path) -> None:
    end = date(2024, 6, 30)
    clock = FixedClock(datetime(2024, 7, 1, tzinfo=UTC))
    e = Engine(open_store(str(tmp_path / "demo.duckdb")), clock)
    from kpidash.packs import load_pack

    e.register(load_pack("saas"))
    data = demo.generate(end, days=400)
    e.ingest_table(data.points, source="demo")
    board = e.dashboard(charts=[("revenue", "region"), ("customer_churn_rate", None)])
    validate_widget(board)
    json.dumps(board, allow_nan=False)
    cards = {w["data"]["kpi_id"]: w for w in board["widgets"] if w["type"] == "kpi"}
    assert set(cards) == set(e.registry.kpis)
    rev = cards["revenue"]["data"]
    assert rev["period"] == "2024-06-30T00:00:00+00:00"
    [s] = e.query("revenue", "day", datetime(2024, 6, 29, tzinfo=UTC), clock.now())
    assert rev["value"] == pytest.approx(round(s.values[1], 2))
    assert rev["trend"] == pytest.approx(round(100 * (s.values[1] - s.values[0]) / s.values[0], 1))
    # the injected EU-only revenue drop is visible in EU and not in NA
    drop = next(i for i in data.manifest["incidents"] if i["kpi"] == "revenue" and
                i["kind"] == "drop")
    start = datetime.fromisoformat(drop["start"]).replace(tzinfo=UTC)
    by = {x.group: x for x in e.query("revenue", "day", start - timedelta(days=14),
                                      start + timedelta(days=5), group_by="region")}
    assert np.nanmean(by["EU"].values[14:]) < 0.7 * np.nanmean(by["EU"].values[:14])
    assert np.nanmean(by["NA"].values[14:]) > 0.8 * np.nanmean(by["NA"].values[:14])
    e.close()


def test_registry_persists_across_restarts(tmp_path: Path, clock: FixedClock) -> None:
    from kpidash.packs import load_pack

    path = str(tmp_path / "r.duckdb")
    e = Engine(open_store(path), clock)
    e.register(load_pack("saas"))
    e.close()
    e2 = Engine(open_store(path), clock)
    assert e2.registry.get("arr").expression == "12 * mrr"
    e2.close()


def test_gzipped_csv_and_progress_reaches_the_file_size(engine: Engine, tmp_path: Path) -> None:
    import gzip

    f = tmp_path / "p.csv.gz"
    f.write_bytes(gzip.compress(CSV.encode()))
    seen: list[tuple[int, int | None]] = []
    res = engine.ingest_file(f, progress=lambda done, total: seen.append((done, total)))
    assert res.written == 4
    assert seen[-1] == (f.stat().st_size, f.stat().st_size)


def test_delete_kpi_keeps_or_purges_data_and_refuses_while_used(tmp_path: Path) -> None:
    from kpidash.errors import Conflict, NotFound

    e = Engine(open_store(str(tmp_path / "d.duckdb")), FixedClock(datetime(2024, 3, 1,
                                                                            tzinfo=UTC)))
    e.register([{"id": "a", "name": "A"}, {"id": "b", "name": "B"},
                {"id": "r", "name": "R", "kind": "ratio", "numerator": "a", "denominator": "b"}])
    e.ingest([{"kpi": "a", "ts": "2024-02-01T00:00:00Z", "value": 1},
              {"kpi": "b", "ts": "2024-02-01T00:00:00Z", "value": 2}])
    with pytest.raises(Conflict, match="input of r"):
        e.delete_kpi("a")
    e.delete_kpi("r")
    e.delete_kpi("a")  # definition gone, points kept
    assert "a" not in e.registry and e.store.point_count(e.workspace, "a") == 1
    e.delete_kpi("b", purge=True)
    assert e.store.point_count(e.workspace, "b") == 0
    with pytest.raises(NotFound):
        e.delete_kpi("b")
    e.close()
    again = Engine(open_store(str(tmp_path / "d.duckdb")))
    assert [k.id for k in again.registry] == []


def test_dashboard_charts_carry_forecast_band_and_anomaly_markers(tmp_path: Path) -> None:
    from kpidash.core.themes import apply, get_theme
    from kpidash.packs import load_pack

    e = Engine(open_store(str(tmp_path / "a.duckdb")), FixedClock(datetime(2024, 7, 1,
                                                                           tzinfo=UTC)))
    e.register(load_pack("saas"))
    e.ingest_table(demo.generate(date(2024, 6, 30), days=200).points, source="demo")
    board = e.dashboard(["revenue"], charts=[("revenue", None), ("revenue", "region")],
                        periods=90, annotate=True)
    validate_widget(board)
    whole, by_region = board["widgets"][1:]
    roles = [(t.get("meta") or {}).get("kpidash") for t in whole["data"]["figure"]["data"]]
    assert roles[-3:] == ["band_low", "band_high", "forecast"]
    fc = whole["data"]["forecast"]
    assert len(fc["periods"]) == 28 and fc["periods"][0] > whole["data"]["figure"]["data"][0][
        "x"][-1]  # the forecast starts after the data
    assert all(lo <= m <= hi for lo, m, hi in zip(fc["lower"], fc["mean"], fc["upper"],
                                                  strict=True))
    # the demo's EU-only revenue drop (days 45..36 before the end) is marked on the EU line
    eu = [a for a in by_region["data"]["anomalies"] if a["series"] == "EU"]
    assert any("2024-05-16" <= a["period"][:10] <= "2024-05-25" for a in eu)
    assert "forecast" not in by_region["data"]  # grouped charts: markers only
    dark = apply(board, get_theme("dark"))
    validate_widget(dark)
    traces = dark["widgets"][1]["data"]["figure"]["data"]
    assert traces[-1]["line"]["color"] == traces[0]["line"]["color"]  # forecast follows series
