"""Tests of kpidash.core.widgets and the widget JSON Schemas."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from kpidash import schemas
from kpidash.core import widgets as w
from kpidash.errors import NotFound, ValidationFailed
from kpidash.model import KPI, Grain, Series

NAN = math.nan
SEED_KEYS = {"title", "value", "unit", "trend", "comparison", "color"}
GENERATED_AT = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def make_series(
    values: list[float], *, kpi_id: str = "revenue", group: str | None = None,
    start: str = "2024-01-01", grain: Grain = Grain.DAY, tz: str = "UTC",
    labels: bool = True,
) -> Series:
    periods = np.datetime64(start, "us") + np.arange(len(values)) * np.timedelta64(1, "D")
    lab = tuple(f"{d}T00:00:00+00:00" for d in periods.astype("datetime64[D]").astype(str))
    return Series(kpi_id=kpi_id, grain=grain, tz=tz, periods=periods.astype("datetime64[us]"),
                  values=np.asarray(values, dtype=np.float64), group=group,
                  labels=lab if labels else ())


def make_kpi(**kw: Any) -> KPI:
    fields: dict[str, Any] = {"id": "revenue", "name": "Revenue", "unit": "$"}
    fields.update(kw)
    return KPI(**fields)


def assert_plain_json(obj: Any) -> None:
    """Only str/int/float/bool/None/list/dict, no NaN/inf, anywhere."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert type(k) is str
            assert_plain_json(v)
    elif isinstance(obj, list):
        for v in obj:
            assert_plain_json(v)
    elif isinstance(obj, float):
        assert type(obj) is float and math.isfinite(obj)
    else:
        assert obj is None or type(obj) in (str, int, bool), f"{obj!r} is {type(obj)}"


# --- kpi card: shape ------------------------------------------------------------------------


def test_card_keeps_seed_shape() -> None:
    card = w.kpi_card(make_kpi(), make_series([61820.0, 64230.8]))
    assert set(card) == {"type", "schema_version", "data"}
    assert card["type"] == "kpi"
    assert card["schema_version"] == 1
    assert set(card["data"]) >= SEED_KEYS
    d = card["data"]
    assert (d["title"], d["value"], d["unit"], d["comparison"]) == ("Revenue", 64230.8, "$", None)
    assert d["trend"] == 3.9  # 100 * (64230.8 - 61820) / 61820 = 3.8997
    assert d["color"] == w.COLOR_GOOD


def test_card_extra_fields() -> None:
    kpi = make_kpi(target=70000.0, critical=True, weight=2.0)
    d = w.kpi_card(kpi, make_series([100.0, 110.0, 120.0], group="eu"))["data"]
    assert d["kpi_id"] == "revenue"
    assert d["status"] == "bad"  # 120 < 70000 target
    assert d["direction"] == "up"
    assert d["higher_is_better"] is True
    assert d["target"] == 70000.0
    assert d["period"] == "2024-01-03T00:00:00+00:00"
    assert d["previous"] == 110.0
    assert d["grain"] == "day"
    assert type(d["grain"]) is str
    assert d["group"] == "eu"
    assert d["sparkline"] == [100.0, 110.0, 120.0]
    assert d["critical"] is True
    assert d["weight"] == 2.0


# --- trend and comparison, by hand ----------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected_trend"),
    [
        pytest.param([100.0, 110.0], 10.0, id="up-10pct"),
        pytest.param([200.0, 150.0], -25.0, id="down-25pct"),
        pytest.param([3.0, 4.0], 33.3, id="rounded-1-decimal"),
        pytest.param([-50.0, -25.0], 50.0, id="negative-prev-uses-abs"),
        pytest.param([-50.0, -75.0], -50.0, id="negative-prev-falls"),
        pytest.param([0.0, 10.0], None, id="prev-zero-null"),
        pytest.param([NAN, 10.0], None, id="prev-missing-null"),
        pytest.param([10.0], None, id="no-previous-period"),
        pytest.param([7.0, 7.0], 0.0, id="unchanged"),
    ],
)
def test_trend(values: list[float], expected_trend: float | None) -> None:
    assert w.kpi_card(make_kpi(), make_series(values))["data"]["trend"] == expected_trend


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [
        pytest.param(110.0, 100.0, 10.0, id="above-target"),
        pytest.param(90.0, 100.0, -10.0, id="below-target"),
        pytest.param(2.0, 3.0, -33.3, id="rounded-1-decimal"),
        pytest.param(-5.0, -10.0, 50.0, id="negative-target-uses-abs"),
        pytest.param(5.0, 0.0, None, id="target-zero-null"),
        pytest.param(5.0, None, None, id="no-target-null"),
    ],
)
def test_comparison(value: float, target: float | None, expected: float | None) -> None:
    card = w.kpi_card(make_kpi(target=target), make_series([value]))
    assert card["data"]["comparison"] == expected


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        pytest.param(64230.8049, 64230.8, id="large-2-decimals"),
        pytest.param(1.23456, 1.23, id="one-2-decimals"),
        pytest.param(0.0312345, 0.0312, id="small-4-decimals"),
        pytest.param(-0.000001, 0.0, id="tiny-negative-no-minus-zero"),
        pytest.param(-12.345678, -12.35, id="negative"),
    ],
)
def test_value_rounding(raw: float, shown: float) -> None:
    value = w.kpi_card(make_kpi(), make_series([raw]))["data"]["value"]
    assert value == shown
    assert math.copysign(1.0, value) == math.copysign(1.0, shown)


# --- status and colour ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kpi_kw", "values", "status", "direction"),
    [
        pytest.param({}, [100.0, 110.0], "good", "up", id="revenue-rises-good"),
        pytest.param({}, [100.0, 90.0], "bad", "down", id="revenue-falls-bad"),
        pytest.param({"id": "churn", "name": "Churn", "higher_is_better": False},
                     [2.0, 2.5], "bad", "up", id="churn-rises-bad"),
        pytest.param({"id": "churn", "name": "Churn", "higher_is_better": False},
                     [2.5, 2.0], "good", "down", id="churn-falls-good"),
        pytest.param({}, [1000.0, 1004.0], "neutral", "flat", id="small-move-neutral"),
        pytest.param({"target": 900.0}, [1000.0, 1001.0], "good", "flat",
                     id="small-move-with-target-met-good"),
        pytest.param({}, [NAN, 10.0], "neutral", None, id="no-trend-neutral"),
        pytest.param({}, [0.0, 10.0], "neutral", None, id="prev-zero-neutral"),
        pytest.param({"target": 100.0}, [120.0, 110.0], "good", "down",
                     id="target-met-higher-better-good-despite-fall"),
        pytest.param({"target": 100.0}, [80.0, 90.0], "bad", "up",
                     id="target-missed-higher-better-bad-despite-rise"),
        pytest.param({"target": 100.0}, [90.0, 100.0], "good", "up", id="target-exactly-met"),
        pytest.param({"id": "churn", "name": "Churn", "higher_is_better": False,
                      "target": 3.0}, [2.0, 2.5], "good", "up",
                     id="target-lower-better-under-good"),
        pytest.param({"id": "churn", "name": "Churn", "higher_is_better": False,
                      "target": 3.0}, [4.0, 3.5], "bad", "down",
                     id="target-lower-better-over-bad"),
        pytest.param({"target": 100.0}, [NAN, NAN], "neutral", None,
                     id="target-without-value-neutral"),
    ],
)
def test_status_and_color(
    kpi_kw: dict[str, Any], values: list[float], status: str, direction: str | None,
) -> None:
    kpi = make_kpi(**kpi_kw)
    d = w.kpi_card(kpi, make_series(values, kpi_id=kpi.id))["data"]
    assert d["status"] == status
    assert d["direction"] == direction
    assert d["color"] == {"good": "#00b894", "bad": "#d63031", "neutral": "#636e72"}[status]


def test_neutral_band_boundary() -> None:
    # exactly 0.5 % is outside the neutral band; just below it is inside
    assert w.kpi_status(None, 0.5, target=None, higher_is_better=True) == "good"
    assert w.kpi_status(None, 0.4999, target=None, higher_is_better=True) == "neutral"
    assert w.kpi_status(None, -0.5, target=None, higher_is_better=True) == "bad"


# --- missing data ---------------------------------------------------------------------------


def test_default_current_is_last_period_with_data() -> None:
    d = w.kpi_card(make_kpi(), make_series([100.0, 120.0, NAN, NAN]))["data"]
    assert d["value"] == 120.0
    assert d["previous"] == 100.0
    assert d["trend"] == 20.0
    assert d["period"] == "2024-01-02T00:00:00+00:00"
    assert d["sparkline"] == [100.0, 120.0]


def test_missing_previous_gives_null_trend() -> None:
    d = w.kpi_card(make_kpi(), make_series([100.0, NAN, 130.0]))["data"]
    assert d["value"] == 130.0
    assert d["previous"] is None
    assert d["trend"] is None
    assert d["status"] == "neutral"
    assert d["sparkline"] == [100.0, None, 130.0]


@pytest.mark.parametrize(
    "values", [pytest.param([NAN, NAN, NAN], id="all-nan"), pytest.param([], id="empty")])
def test_no_data_gives_null_value(values: list[float]) -> None:
    card = w.kpi_card(make_kpi(target=10.0), make_series(values))
    d = card["data"]
    assert (d["value"], d["trend"], d["comparison"]) == (None, None, None)
    assert d["status"] == "neutral"
    assert d["color"] == w.COLOR_NEUTRAL
    json.dumps(card, allow_nan=False)
    schemas.validate_widget(card)


def test_infinite_value_is_null() -> None:
    d = w.kpi_card(make_kpi(), make_series([10.0, math.inf]), current_index=-1)["data"]
    assert d["value"] is None
    assert d["trend"] is None
    assert d["sparkline"] == [10.0, None]


def test_explicit_current_index() -> None:
    s = make_series([100.0, 110.0, 121.0, 50.0])
    d = w.kpi_card(make_kpi(), s, current_index=2)["data"]
    assert (d["value"], d["previous"], d["trend"]) == (121.0, 110.0, 10.0)
    assert d["period"] == "2024-01-03T00:00:00+00:00"
    assert d["sparkline"] == [100.0, 110.0, 121.0]  # no look-ahead past the current period
    assert w.kpi_card(make_kpi(), s, current_index=-2)["data"] == d
    d0 = w.kpi_card(make_kpi(), s, current_index=0)["data"]
    assert (d0["value"], d0["previous"], d0["trend"]) == (100.0, None, None)


def test_explicit_current_index_on_missing_period() -> None:
    d = w.kpi_card(make_kpi(), make_series([1.0, 2.0, NAN]), current_index=2)["data"]
    assert (d["value"], d["previous"], d["trend"]) == (None, 2.0, None)


@pytest.mark.parametrize("index", [pytest.param(3, id="past-end"), pytest.param(-4, id="before")])
def test_current_index_out_of_range(index: int) -> None:
    with pytest.raises(IndexError, match="out of range"):
        w.kpi_card(make_kpi(), make_series([1.0, 2.0, 3.0]), current_index=index)


def test_sparkline_is_last_30() -> None:
    values = [float(i) for i in range(1, 41)]
    d = w.kpi_card(make_kpi(), make_series(values))["data"]
    assert d["sparkline"] == values[-30:]


def test_series_of_other_kpi_rejected() -> None:
    with pytest.raises(ValueError, match="'mrr'"):
        w.kpi_card(make_kpi(), make_series([1.0], kpi_id="mrr"))


def test_labels_fall_back_to_utc_periods() -> None:
    d = w.kpi_card(make_kpi(), make_series([1.0, 2.0], labels=False))["data"]
    assert d["period"] == "2024-01-02T00:00:00Z"


# --- JSON ------------------------------------------------------------------------------------


def test_card_round_trips_as_plain_json() -> None:
    kpi = make_kpi(target=100.0)
    s = make_series([np.float64(1.5), NAN, 3.25, math.inf, 99.999])
    card = w.kpi_card(kpi, s)
    assert_plain_json(card)
    assert json.loads(json.dumps(card, allow_nan=False)) == card


# --- line chart ------------------------------------------------------------------------------


def test_line_chart_keeps_gaps_and_one_trace_per_series() -> None:
    kpi = make_kpi()
    eu = make_series([1.0, NAN, 3.0], group="eu")
    us = make_series([NAN, 5.0, 6.0], group="us")
    chart = w.line_chart(kpi, [eu, us])
    assert set(chart) == {"type", "schema_version", "data"}
    assert chart["type"] == "line"
    data = chart["data"]
    assert (data["kpi_id"], data["title"], data["unit"], data["grain"]) == (
        "revenue", "Revenue", "$", "day")
    traces = data["figure"]["data"]
    assert len(traces) == 2
    assert [t["name"] for t in traces] == ["eu", "us"]
    assert traces[0]["y"] == [1.0, None, 3.0]
    assert traces[1]["y"] == [None, 5.0, 6.0]
    assert traces[0]["x"] == list(eu.labels)
    assert all(t["connectgaps"] is False and t["type"] == "scatter" for t in traces)
    layout = data["figure"]["layout"]
    assert layout["title"]["text"] == "Revenue"
    assert layout["yaxis"]["title"]["text"] == "$"
    assert "template" not in layout
    assert_plain_json(chart)
    assert len(json.dumps(chart, allow_nan=False)) < 2000  # no template bloat
    schemas.validate_widget(chart)


def test_line_chart_ungrouped_series_named_after_kpi_and_custom_title() -> None:
    chart = w.line_chart(make_kpi(), [make_series([1.0, 2.0])], title="Revenue, daily")
    assert chart["data"]["title"] == "Revenue, daily"
    assert chart["data"]["figure"]["layout"]["title"]["text"] == "Revenue, daily"
    assert chart["data"]["figure"]["data"][0]["name"] == "Revenue"


def test_line_chart_empty_is_valid() -> None:
    chart = w.line_chart(make_kpi(), [])
    assert chart["data"]["figure"]["data"] == []
    assert chart["data"]["grain"] is None
    schemas.validate_widget(chart)


def test_line_chart_rejects_mixed_grains() -> None:
    with pytest.raises(ValueError, match="grain"):
        w.line_chart(make_kpi(), [make_series([1.0]), make_series([1.0], grain=Grain.WEEK)])


# --- dashboard -------------------------------------------------------------------------------


def test_dashboard_shape_and_validates() -> None:
    kpi = make_kpi(target=50.0)
    s = make_series([40.0, NAN, 60.0])
    cards = [w.kpi_card(kpi, s)]
    charts = [w.line_chart(kpi, [s])]
    plus2 = timezone(timedelta(hours=2))
    board = w.dashboard(cards, charts, title="Overview",
                        generated_at=datetime(2024, 5, 1, 14, 30, tzinfo=plus2),
                        grain=Grain.DAY, tz="Europe/Berlin")
    assert board["type"] == "dashboard"
    assert board["schema_version"] == 1
    assert board["generated_at"] == "2024-05-01T12:30:00Z"
    assert board["grain"] == "day"
    assert type(board["grain"]) is str
    assert board["widgets"] == [*cards, *charts]
    assert_plain_json(board)
    json.dumps(board, allow_nan=False)
    schemas.validate_widget(board)


def test_dashboard_rejects_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        w.dashboard([], [], title="x", generated_at=datetime(2024, 5, 1), grain="day", tz="UTC")


# --- schemas ---------------------------------------------------------------------------------


def test_schema_version_is_one_constant() -> None:
    assert w.SCHEMA_VERSION == schemas.SCHEMA_VERSION == 1


def test_schema_names_and_loading() -> None:
    assert schemas.schema_names() == ["dashboard", "widget-kpi", "widget-line",
                                      "widget-portfolio", "widget-recommendations"]
    for name in schemas.schema_names():
        schema = schemas.load_schema(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://kpidash.dev/schemas/{name}.schema.json"
    # callers get a copy: mutating it must not change later loads
    schemas.load_schema("widget-kpi")["required"].clear()
    assert schemas.load_schema("widget-kpi")["required"] == ["type", "schema_version", "data"]
    with pytest.raises(NotFound, match="widget-kpi"):
        schemas.load_schema("widget-pie")


def test_seed_example_data_validates() -> None:
    seed = {"type": "kpi", "schema_version": 1,
            "data": {"title": "Revenue", "value": 64230.8, "unit": "$", "trend": 3.9,
                     "comparison": None, "color": "#00b894"}}
    schemas.validate_widget(seed)


@pytest.mark.parametrize(
    ("mutate", "codes", "field"),
    [
        pytest.param(lambda c: c["data"].update(color="green"), {"schema.pattern"},
                     "$.data.color", id="bad-color"),
        pytest.param(lambda c: c["data"].pop("trend"), {"schema.required"}, "$.data",
                     id="missing-seed-field"),
        pytest.param(lambda c: c["data"].update(value="64k"), {"schema.type"}, "$.data.value",
                     id="value-not-number"),
        pytest.param(lambda c: c.update(schema_version=2), {"schema.const"},
                     "$.schema_version", id="wrong-version"),
        pytest.param(lambda c: c.update(type="pie"), {"widget.type"}, "$.type",
                     id="unknown-type"),
    ],
)
def test_broken_card_fails_validation(mutate: Any, codes: set[str], field: str) -> None:
    card = w.kpi_card(make_kpi(), make_series([1.0, 2.0]))
    mutate(card)
    with pytest.raises(ValidationFailed) as exc:
        schemas.validate_widget(card)
    report = exc.value.report
    assert not report.ok
    assert set(report.codes()) == codes
    assert [i.location.field for i in report.issues] == [field]


def test_every_error_is_reported() -> None:
    card = w.kpi_card(make_kpi(), make_series([1.0, 2.0]))
    card["data"].update(color="red", trend="up", comparison=[])
    with pytest.raises(ValidationFailed) as exc:
        schemas.validate_widget(card)
    fields = sorted(i.location.field or "" for i in exc.value.report.issues)
    assert fields == ["$.data.color", "$.data.comparison", "$.data.trend"]


def test_broken_widget_inside_dashboard_is_located() -> None:
    kpi = make_kpi()
    s = make_series([1.0, 2.0])
    card = w.kpi_card(kpi, s)
    card["data"]["color"] = "#GGGGGG"
    board = w.dashboard([w.kpi_card(kpi, s), card], [w.line_chart(kpi, [s])], title="t",
                        generated_at=GENERATED_AT, grain="day", tz="UTC")
    with pytest.raises(ValidationFailed) as exc:
        schemas.validate_widget(board)
    issues = exc.value.report.issues
    assert [(i.code, i.location.field) for i in issues] == [
        ("schema.pattern", "$.widgets[1].data.color")]


def test_unknown_widget_inside_dashboard() -> None:
    board = w.dashboard([{"type": "pie", "schema_version": 1, "data": {}}], [], title="t",
                        generated_at=GENERATED_AT, grain="day", tz="UTC")
    with pytest.raises(ValidationFailed) as exc:
        schemas.validate_widget(board)
    (issue,) = exc.value.report.issues
    assert issue.code == "schema.oneOf"
    assert issue.location.field == "$.widgets[0]"
    assert "'pie'" in issue.message


def test_not_a_dict_fails_validation() -> None:
    with pytest.raises(ValidationFailed) as exc:
        schemas.validate_widget(["kpi"])
    assert set(exc.value.report.codes()) == {"widget.shape"}
