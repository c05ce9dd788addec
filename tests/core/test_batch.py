from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from kpidash.core.batch import series_key, validate
from kpidash.core.registry import Registry, build_registry
from kpidash.packs import load_pack


def table(**cols: list[Any]) -> pa.Table:
    base: dict[str, list[Any]] = {"timestamp": ["2024-01-01T00:00:00Z"], "kpi": ["revenue"],
                                  "value": [1.0]}
    base.update(cols)
    return pa.table(base)


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_pack("saas")


@pytest.mark.parametrize(("cols", "code", "fld"), [
    pytest.param({"kpi": ["nope"]}, "point.kpi", "kpi", id="unknown-kpi"),
    pytest.param({"kpi": ["arr"]}, "point.kpi", "kpi", id="derived-kpi"),
    pytest.param({"kpi": ["customer_churn_rate"]}, "point.kpi", "kpi", id="ratio-kpi"),
    pytest.param({"kpi": [None]}, "point.kpi", "kpi", id="missing-kpi"),
    pytest.param({"timestamp": ["yesterday"]}, "point.timestamp", "timestamp", id="bad-ts"),
    pytest.param({"timestamp": ["2024-13-01T00:00:00Z"]}, "point.timestamp", "timestamp",
                 id="impossible-date"),
    pytest.param({"timestamp": [None]}, "point.timestamp", "timestamp", id="missing-ts"),
    pytest.param({"timestamp": ["2024-01-01T00:00:00"]}, "point.timestamp_naive", "timestamp",
                 id="naive-ts"),
    pytest.param({"timestamp": ["2024-01-01"]}, "point.timestamp_naive", "timestamp",
                 id="naive-date"),
    pytest.param({"value": ["abc"]}, "point.value", "value", id="not-a-number"),
    pytest.param({"value": [float("nan")]}, "point.value", "value", id="nan"),
    pytest.param({"value": [float("inf")]}, "point.value", "value", id="inf"),
    pytest.param({"value": ["-inf"]}, "point.value", "value", id="inf-text"),
    pytest.param({"value": [1e308]}, "point.value", "value", id="huge"),
    pytest.param({"value": ["-2e18"]}, "point.value", "value", id="huge-text"),
    pytest.param({"value": [None]}, "point.value", "value", id="missing-value"),
    pytest.param({"value": [-5.0]}, "point.bounds", "value", id="below-min"),
    pytest.param({"color": ["red"]}, "point.dimension", "color", id="undeclared-dimension"),
    pytest.param({"region": ["E\x01U"]}, "point.dimension_value", "region", id="control-char"),
])
def test_bad_row_is_named(reg: Registry, cols: dict[str, list[Any]], code: str, fld: str) -> None:
    batch, report = validate(table(**cols), reg, source="f.csv")
    assert batch is None
    [issue] = report.errors
    assert (issue.code, issue.location.row, issue.location.field) == (code, 1, fld)
    assert issue.location.source == "f.csv"


def test_every_bad_row_reported_with_file_row_numbers(reg: Registry) -> None:
    t = pa.table({"timestamp": ["2024-01-01T00:00:00Z", "x", "2024-01-01T00:00:00Z", "y"],
                  "kpi": ["revenue", "revenue", "ghost", "revenue"],
                  "value": ["1", "2", "3", "four"]})
    batch, report = validate(t, reg, row_offset=1000)
    assert batch is None
    assert sorted((i.location.row, i.code) for i in report.errors) == [
        (1002, "point.timestamp"), (1003, "point.kpi"), (1004, "point.timestamp"),
        (1004, "point.value")]


def test_messages_say_expected_and_got(reg: Registry) -> None:
    _, report = validate(table(value=["abc"]), reg)
    assert "expected a number" in report.errors[0].message and "'abc'" in report.errors[0].message


def test_missing_columns(reg: Registry) -> None:
    batch, report = validate(pa.table({"ts": ["2024-01-01T00:00:00Z"], "value": [1.0]}), reg)
    assert batch is None and report.errors[0].code == "batch.columns"
    assert "kpi" in report.errors[0].message


def test_naive_accepted_with_default_zone(reg: Registry) -> None:
    batch, report = validate(table(timestamp=["2024-07-01T12:00:00"]), reg,
                             default_tz="Europe/Paris")
    assert report.ok and batch is not None
    assert batch.ts[0].as_py().isoformat() == "2024-07-01T10:00:00+00:00"


@pytest.mark.parametrize(("text", "utc"), [
    ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00+00:00"),
    ("2024-01-01T01:30:00+01:30", "2024-01-01T00:00:00+00:00"),
    ("2024-01-01 05:00:00-0500", "2024-01-01T10:00:00+00:00"),
    ("2024-01-01T00:00:00.250Z", "2024-01-01T00:00:00.250000+00:00"),
])
def test_offsets_are_converted_to_utc(reg: Registry, text: str, utc: str) -> None:
    batch, report = validate(table(timestamp=[text]), reg)
    assert report.ok and batch is not None
    assert batch.ts[0].as_py().isoformat() == utc


def test_timestamp_typed_columns(reg: Registry) -> None:
    aware = pa.array([0], pa.timestamp("s", tz="Asia/Tokyo"))
    batch, report = validate(table(timestamp=aware), reg)  # type: ignore[arg-type]
    assert report.ok and batch is not None
    naive = pa.array([0], pa.timestamp("s"))
    batch, report = validate(table(timestamp=naive), reg)  # type: ignore[arg-type]
    assert batch is None and report.errors[0].code == "point.timestamp_naive"


@pytest.mark.parametrize(("policy", "ok", "stored", "raw"), [
    ("reject", False, None, None),
    ("clamp", True, 100.0, 140.0),
    ("accept", True, 140.0, None),
])
def test_bounds_policy(policy: str, ok: bool, stored: float | None, raw: float | None) -> None:
    reg = build_registry([{"id": "rate", "name": "Rate", "min_value": 0, "max_value": 100,
                           "on_out_of_bounds": policy}])
    batch, report = validate(table(kpi=["rate"], value=[140.0]), reg)
    assert report.ok is ok
    if ok:
        assert batch is not None and batch.value[0] == stored
        if raw is None:
            assert np.isnan(batch.raw_value[0])
        else:
            assert batch.raw_value[0] == raw and batch.correction[0].as_py() == "clamp"
    if policy == "accept":
        assert report.warnings[0].code == "point.bounds"


def test_series_key_matches_scalar_form(reg: Registry) -> None:
    t = table(region=["EU"], plan=["pro"], channel=[""])
    batch, _report = validate(t, reg)
    assert batch is not None
    assert batch.series_key[0].as_py() == series_key("revenue", {"region": "EU", "plan": "pro"})


def test_report_caps_issue_objects_but_counts_all(reg: Registry) -> None:
    n = 5000
    t = pa.table({"timestamp": ["2024-01-01T00:00:00Z"] * n, "kpi": ["ghost"] * n,
                  "value": [1.0] * n})
    _, report = validate(t, reg)
    assert len(report.issues) == 1000 and report.error_count == n


def test_timestamps_after_latest_are_refused(reg: Registry) -> None:
    """Issue 10: a year typed 9999 (or 2204 for 2024) is refused, naming the limit."""
    from datetime import UTC, datetime

    latest = datetime(2024, 7, 1, tzinfo=UTC)
    t = table(timestamp=["2024-06-30T00:00:00Z", "9999-12-31T00:00:00Z", "2024-07-02T00:00:00Z"],
              kpi=["revenue"] * 3, value=[1.0] * 3)
    batch, report = validate(t, reg, latest=latest)
    assert batch is None
    assert [(i.code, i.location.row) for i in report.errors] == [
        ("point.timestamp_future", 2), ("point.timestamp_future", 3)]
    assert "no later than 2024-07-01T00:00:00Z" in report.errors[0].message
    assert "9999-12-31T00:00:00Z" in report.errors[0].message
    ok, _ = validate(t.slice(0, 1), reg, latest=latest)
    assert ok is not None
