"""Tests of the deterministic SaaS demo-data generator (kpidash.demo)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pytest

from kpidash import demo
from kpidash.errors import ConfigError

END = date(2025, 6, 30)
KEYS = ["timestamp", "kpi", "region", "plan", "channel"]
COUNT_KPIS = ["active_customers", "new_customers", "churned_customers", "leads", "conversions",
              "signups", "active_users"]
MONEY_KPIS = ["revenue", "mrr"]
SERIES_PER_KPI = {"revenue": 48, "mrr": 48, "active_customers": 48, "new_customers": 48,
                  "churned_customers": 48, "leads": 16, "conversions": 16, "signups": 48,
                  "active_users": 12}


@pytest.fixture(scope="module")
def data() -> demo.DemoData:
    return demo.generate(END)


@pytest.fixture(scope="module")
def df(data: demo.DemoData) -> pd.DataFrame:
    return data.points.to_pandas()


@pytest.fixture(
    scope="module",
    params=[(END, demo.DEMO_SEED), (date(2026, 1, 15), 7)],
    ids=["default-seed", "jan-2026-seed-7"],
)
def case(request: pytest.FixtureRequest) -> tuple[demo.DemoData, pd.DataFrame]:
    """Other windows and seeds, so incident checks do not pass by luck of one draw."""
    end, seed = request.param
    generated = demo.generate(end, seed=seed)
    return generated, generated.points.to_pandas()


@pytest.fixture(scope="module")
def clean_df(data: demo.DemoData) -> pd.DataFrame:
    first = date.fromisoformat(data.manifest["start"])
    return demo.generate_days(first, END).to_pandas()


def ts(d: date) -> pd.Timestamp:
    return pd.Timestamp(d.isoformat(), tz="UTC")


def incidents(data: demo.DemoData) -> Iterator[dict[str, Any]]:
    yield from data.manifest["incidents"]


def incident(data: demo.DemoData, incident_id: str) -> dict[str, Any]:
    (found,) = (i for i in data.manifest["incidents"] if i["id"] == incident_id)
    return found


def in_incident(frame: pd.DataFrame, inc: dict[str, Any]) -> pd.Series:
    mask = ((frame["kpi"] == inc["kpi"])
            & (frame["timestamp"] >= ts(date.fromisoformat(inc["start"])))
            & (frame["timestamp"] <= ts(date.fromisoformat(inc["end"]))))
    for dim, value in inc["dims"].items():
        mask &= frame[dim] == value
    return mask


def touched(frame: pd.DataFrame, data: demo.DemoData) -> pd.Series:
    mask = pd.Series(False, index=frame.index)
    for inc in incidents(data):
        mask |= in_incident(frame, inc)
    return mask


def keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows indexed by (timestamp, kpi, region, plan, channel), nulls as ''."""
    out = frame.copy()
    for dim in ("region", "plan", "channel"):
        out[dim] = out[dim].fillna("").astype(str)
    return out.set_index(KEYS).sort_index()


def daily(frame: pd.DataFrame, kpi: str, **dims: str) -> pd.Series:
    mask = frame["kpi"] == kpi
    for dim, value in dims.items():
        mask &= frame[dim] == value
    return frame[mask].groupby("timestamp")["value"].sum()


def ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


# --- determinism -------------------------------------------------------------------------


def test_same_arguments_give_byte_identical_output(data: demo.DemoData) -> None:
    again = demo.generate(END)
    assert ipc_bytes(again.points) == ipc_bytes(data.points)
    assert demo.manifest_json(again) == demo.manifest_json(data)


def test_other_seed_gives_other_values(data: demo.DemoData) -> None:
    other = demo.generate(END, seed=demo.DEMO_SEED + 1)
    assert other.points.num_rows == data.points.num_rows
    assert not other.points.column("value").equals(data.points.column("value"))
    assert other.manifest["seed"] == demo.DEMO_SEED + 1


def test_last_day_of_generate_equals_generate_days(data: demo.DemoData, df: pd.DataFrame) -> None:
    last = keyed(df[(df["timestamp"] == ts(END)) & ~touched(df, data)])
    alone = keyed(demo.generate_days(END, END).to_pandas())
    assert len(last) > 0
    pd.testing.assert_series_equal(last["value"], alone.loc[last.index, "value"])
    # Only the level shift covers the last day, so everything but signups is compared.
    assert set(alone.index.get_level_values("kpi")) - set(last.index.get_level_values("kpi")) \
        == {"signups"}


def test_generate_equals_generate_days_outside_incidents(
    data: demo.DemoData, df: pd.DataFrame, clean_df: pd.DataFrame
) -> None:
    mask = touched(df, data)
    untouched = keyed(df[~mask])
    clean = keyed(clean_df)
    pd.testing.assert_series_equal(untouched["value"], clean.loc[untouched.index, "value"])


def test_incidents_change_exactly_their_cells_by_their_magnitude(
    data: demo.DemoData, df: pd.DataFrame, clean_df: pd.DataFrame
) -> None:
    clean = keyed(clean_df)
    for inc in incidents(data):
        if inc["kind"] == "gap":
            continue
        hit = keyed(df[in_incident(df, inc)])
        assert len(hit) > 0, inc["id"]
        expected = clean.loc[hit.index, "value"] * inc["magnitude"]
        digits = 2 if inc["kpi"] in MONEY_KPIS else 0
        np.testing.assert_array_equal(hit["value"].to_numpy(), expected.round(digits).to_numpy())


@pytest.mark.parametrize(
    ("first", "last", "sub_first", "sub_last"),
    [
        (date(2024, 1, 1), date(2024, 3, 31), date(2024, 2, 10), date(2024, 2, 20)),
        (date(2023, 12, 20), date(2024, 1, 10), date(2024, 1, 1), date(2024, 1, 1)),
        (date(2030, 5, 1), date(2030, 5, 14), date(2030, 5, 14), date(2030, 5, 14)),
    ],
    ids=["sub-range-in-2024", "new-year-crossing", "far-future-single-day"],
)
def test_generate_days_does_not_depend_on_the_window(
    first: date, last: date, sub_first: date, sub_last: date
) -> None:
    big = demo.generate_days(first, last).to_pandas()
    small = demo.generate_days(sub_first, sub_last).to_pandas()
    window = big[(big["timestamp"] >= ts(sub_first)) & (big["timestamp"] <= ts(sub_last))]
    pd.testing.assert_series_equal(keyed(window)["value"], keyed(small)["value"])


def test_shorter_window_agrees_outside_incidents(data: demo.DemoData, df: pd.DataFrame) -> None:
    short = demo.generate(END, days=200)
    sdf = short.points.to_pandas()
    a = keyed(df[~touched(df, data) & ~touched(df, short)])
    b = keyed(sdf[~touched(sdf, data) & ~touched(sdf, short)])
    common = a.index.intersection(b.index)
    assert len(common) == len(b)
    pd.testing.assert_series_equal(a.loc[common, "value"], b.loc[common, "value"])


# --- schema and shape --------------------------------------------------------------------


def test_schema(data: demo.DemoData) -> None:
    schema = data.points.schema
    assert schema.names == ["timestamp", "kpi", "value", "region", "plan", "channel"]
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert schema.field("value").type == pa.float64()
    for name in ("kpi", "region", "plan", "channel"):
        assert schema.field(name).type == pa.string(), name
    assert demo.generate_days(END, END).schema == schema


def test_row_count_and_window(data: demo.DemoData, df: pd.DataFrame) -> None:
    assert data.points.num_rows == 332 * 730 - 5 * 12 == data.manifest["rows"]
    assert df["timestamp"].min() == ts(END - timedelta(days=729))
    assert df["timestamp"].max() == ts(END)
    assert (df["timestamp"].dt.hour == 0).all()
    assert data.manifest["start"] == (END - timedelta(days=729)).isoformat()
    assert data.manifest["days"] == 730


@pytest.mark.parametrize(("kpi", "series"), SERIES_PER_KPI.items(), ids=list(SERIES_PER_KPI))
def test_series_and_null_dimensions(df: pd.DataFrame, kpi: str, series: int) -> None:
    rows = df[df["kpi"] == kpi]
    dims = demo.KPI_DIMENSIONS[kpi]
    for dim in ("region", "plan", "channel"):
        assert rows[dim].notna().all() if dim in dims else rows[dim].isna().all(), dim
    assert len(rows.groupby(list(dims)).size()) == series
    assert rows.groupby("timestamp").size().max() == series


def test_only_simple_pack_kpis_are_generated(data: demo.DemoData, df: pd.DataFrame) -> None:
    assert set(df["kpi"]) == set(data.manifest["kpis"]) == set(SERIES_PER_KPI)
    assert not {"arr", "arpa", "customer_churn_rate", "conversion_rate"} & set(df["kpi"])


# --- plausibility ------------------------------------------------------------------------


def test_values_are_finite_and_non_negative(df: pd.DataFrame) -> None:
    values = df["value"].to_numpy()
    assert np.isfinite(values).all()
    assert (values >= 0).all()


@pytest.mark.parametrize("kpi", COUNT_KPIS)
def test_counts_are_whole_numbers(df: pd.DataFrame, kpi: str) -> None:
    values = df.loc[df["kpi"] == kpi, "value"].to_numpy()
    np.testing.assert_array_equal(values, np.rint(values))


@pytest.mark.parametrize("kpi", MONEY_KPIS)
def test_money_is_in_cents(df: pd.DataFrame, kpi: str) -> None:
    values = df.loc[df["kpi"] == kpi, "value"].to_numpy()
    np.testing.assert_allclose(values * 100, np.rint(values * 100), atol=1e-6)


def test_conversions_never_exceed_leads_and_rate_is_plausible(df: pd.DataFrame) -> None:
    k = keyed(df)
    leads = k.xs("leads", level="kpi")["value"]
    conversions = k.xs("conversions", level="kpi")["value"]
    assert leads.index.equals(conversions.index)
    assert (conversions <= leads).all()
    assert 0.05 <= conversions.sum() / leads.sum() <= 0.15


@pytest.mark.parametrize("kpi", ["mrr", "revenue", "active_customers", "new_customers",
                                 "churned_customers"])
def test_free_plan_pays_nothing(df: pd.DataFrame, kpi: str) -> None:
    values = df.loc[(df["kpi"] == kpi) & (df["plan"] == "free"), "value"]
    assert len(values) > 0
    assert (values == 0).all()


@pytest.mark.parametrize("kpi", ["signups", "active_users"])
def test_free_plan_has_users(df: pd.DataFrame, kpi: str) -> None:
    assert daily(df, kpi, plan="free").min() > 0


@pytest.mark.parametrize(("plan", "price"), [("pro", 49.0), ("enterprise", 990.0)])
def test_arpa_is_close_to_the_plan_price(df: pd.DataFrame, plan: str, price: float) -> None:
    mrr = daily(df, "mrr", plan=plan)
    active = daily(df, "active_customers", plan=plan)
    arpa = mrr / active
    assert ((arpa - price).abs() / price < 0.01).all()


def test_customer_stock_is_consistent_with_flows() -> None:
    clean = demo.generate_days(date(2024, 3, 1), date(2024, 8, 31)).to_pandas()
    k = keyed(clean)["value"].unstack("kpi")
    k = k[k["active_customers"].notna()].sort_index()
    by_series = k.groupby(level=["region", "plan", "channel"])
    delta = by_series["active_customers"].diff()
    flow = k["new_customers"] - k["churned_customers"]
    np.testing.assert_array_equal(delta.dropna().to_numpy(), flow[delta.notna()].to_numpy())
    assert (k["churned_customers"] <= k["active_customers"]).all()


def test_customers_grow_a_few_percent_per_month(df: pd.DataFrame) -> None:
    active = daily(df, "active_customers")
    monthly = (active.iloc[-1] / active.iloc[0]) ** (30.4375 / (len(active) - 1)) - 1
    assert 0.01 <= monthly <= 0.06
    paying = df[(df["kpi"] == "active_customers") & (df["timestamp"] == ts(END))]
    pro = paying.loc[paying["plan"] == "pro", "value"].sum()
    enterprise = paying.loc[paying["plan"] == "enterprise", "value"].sum()
    assert pro > 5 * enterprise > 0


def test_daily_churn_is_a_fraction_of_a_percent(clean_df: pd.DataFrame) -> None:
    churn = daily(clean_df, "churned_customers").sum()
    active = daily(clean_df, "active_customers").sum()
    assert 0.001 <= churn / active <= 0.003


@pytest.mark.parametrize("kpi", ["leads", "signups", "revenue", "active_users"])
def test_weekdays_are_busier_than_weekends(clean_df: pd.DataFrame, kpi: str) -> None:
    series = daily(clean_df, kpi)
    weekend = series.index.day_of_week >= 5
    assert series[~weekend].mean() > 1.1 * series[weekend].mean()


@pytest.mark.parametrize("kpi", ["leads", "signups"])
def test_december_holidays_dip(kpi: str) -> None:
    clean = demo.generate_days(date(2024, 11, 4), date(2025, 1, 12)).to_pandas()
    series = daily(clean, kpi)
    holidays = series[(series.index >= ts(date(2024, 12, 23)))
                      & (series.index <= ts(date(2024, 12, 29)))]
    november = series[(series.index >= ts(date(2024, 11, 4)))
                      & (series.index <= ts(date(2024, 12, 1)))]
    assert holidays.mean() < 0.9 * november.mean()


# --- incidents ---------------------------------------------------------------------------


def test_manifest_lists_every_required_incident(data: demo.DemoData) -> None:
    kinds = {i["id"]: i["kind"] for i in incidents(data)}
    assert kinds == {
        "churn-spike": "spike", "revenue-drop-eu": "drop", "signups-level-shift": "level_shift",
        "revenue-outlier-1": "outlier", "revenue-outlier-2": "outlier",
        "revenue-outlier-3": "outlier", "active-users-gap": "gap",
    }
    first, last = date.fromisoformat(data.manifest["start"]), END
    for inc in incidents(data):
        assert set(inc) == {"id", "kind", "kpi", "start", "end", "dims", "magnitude",
                            "description"}
        start, end = date.fromisoformat(inc["start"]), date.fromisoformat(inc["end"])
        assert first <= start <= end <= last, inc["id"]
        assert inc["kpi"] in data.manifest["kpis"]
        assert set(inc["dims"]) <= set(demo.KPI_DIMENSIONS[inc["kpi"]])
        assert (inc["magnitude"] is None) == (inc["kind"] == "gap")
        assert inc["description"].endswith(".") and inc["description"].count(". ") == 0


def test_churn_spike_is_visible(case: tuple[demo.DemoData, pd.DataFrame]) -> None:
    data, df = case
    inc = incident(data, "churn-spike")
    start, end = date.fromisoformat(inc["start"]), date.fromisoformat(inc["end"])
    assert (end - start).days + 1 == 3 and inc["magnitude"] == 4.0 and inc["dims"] == {}
    churn = daily(df, "churned_customers")
    spike = churn[(churn.index >= ts(start)) & (churn.index <= ts(end))]
    before = churn[(churn.index >= ts(start - timedelta(days=14))) & (churn.index < ts(start))]
    assert len(spike) == 3 and len(before) == 14
    assert spike.mean() >= 3 * before.mean()
    assert spike.min() >= 2 * before.max()


def test_revenue_drop_hits_eu_only(case: tuple[demo.DemoData, pd.DataFrame]) -> None:
    data, df = case
    inc = incident(data, "revenue-drop-eu")
    assert inc["dims"] == {"region": "EU"}
    start, end = date.fromisoformat(inc["start"]), date.fromisoformat(inc["end"])
    assert (end - start).days + 1 == 10

    def ratio(region: str) -> float:
        s = daily(df, "revenue", region=region)
        during = s[(s.index >= ts(start)) & (s.index <= ts(end))]
        before = s[(s.index >= ts(start - timedelta(days=14))) & (s.index < ts(start))]
        return float(during.mean() / before.mean())

    assert ratio("EU") < 0.7
    for region in ("NA", "APAC", "LATAM"):
        assert 0.9 < ratio(region) < 1.1, region


def test_signups_level_shift_is_visible(case: tuple[demo.DemoData, pd.DataFrame]) -> None:
    data, df = case
    inc = incident(data, "signups-level-shift")
    start = date.fromisoformat(inc["start"])
    assert inc["end"] == data.manifest["end"] and inc["dims"] == {}
    signups = daily(df, "signups")
    after = signups[signups.index >= ts(start)]
    before = signups[(signups.index < ts(start))
                     & (signups.index >= ts(start - timedelta(days=len(after))))]
    assert after.mean() >= 1.25 * before.mean()


@pytest.mark.parametrize("n", [1, 2, 3], ids=lambda n: f"revenue-outlier-{n}")
def test_outlier_is_visible(case: tuple[demo.DemoData, pd.DataFrame], n: int) -> None:
    data, df = case
    inc = incident(data, f"revenue-outlier-{n}")
    assert inc["start"] == inc["end"] and set(inc["dims"]) == {"region", "plan", "channel"}
    series = daily(df, "revenue", **inc["dims"])
    point = series[ts(date.fromisoformat(inc["start"]))]
    assert point >= 5 * series.median() > 0


def test_outliers_are_on_different_dates_and_series(data: demo.DemoData) -> None:
    outliers = [i for i in incidents(data) if i["kind"] == "outlier"]
    assert len({i["start"] for i in outliers}) == 3
    assert len({tuple(sorted(i["dims"].items())) for i in outliers}) == 3


def test_gap_removes_active_users_rows(case: tuple[demo.DemoData, pd.DataFrame]) -> None:
    data, df = case
    inc = incident(data, "active-users-gap")
    start, end = date.fromisoformat(inc["start"]), date.fromisoformat(inc["end"])
    assert (end - start).days + 1 == 5
    per_day = df[df["kpi"] == "active_users"].groupby("timestamp").size()
    gap_days = [start + timedelta(days=i) for i in range(5)]
    assert all(ts(d) not in per_day.index for d in gap_days)
    assert per_day[ts(start - timedelta(days=1))] == 12
    assert per_day[ts(end + timedelta(days=1))] == 12
    # Other KPIs still have their rows on the gap days.
    assert (df[df["timestamp"] == ts(start)].groupby("kpi").size() > 0).sum() == 8


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (1, set()),
        (34, set()),
        (35, {"churn-spike"}),
        (60, {"churn-spike", "revenue-drop-eu"}),
        (134, {"churn-spike", "revenue-drop-eu", "revenue-outlier-1", "revenue-outlier-2"}),
        (135, {"churn-spike", "revenue-drop-eu", "revenue-outlier-1", "revenue-outlier-2",
               "signups-level-shift"}),
        (215, {"churn-spike", "revenue-drop-eu", "revenue-outlier-1", "revenue-outlier-2",
               "signups-level-shift", "active-users-gap"}),
        (248, {"churn-spike", "revenue-drop-eu", "revenue-outlier-1", "revenue-outlier-2",
               "revenue-outlier-3", "signups-level-shift", "active-users-gap"}),
    ],
    ids=["1-day", "34-days", "35-days", "60-days", "134-days", "135-days", "215-days",
         "248-days"],
)
def test_small_windows_skip_incidents_that_do_not_fit(days: int, expected: set[str]) -> None:
    small = demo.generate(END, days=days)
    assert {i["id"] for i in small.manifest["incidents"]} == expected
    assert small.manifest["days"] == days == small.points.column("timestamp").unique().__len__()
    gap = 60 if "active-users-gap" in expected else 0
    assert small.points.num_rows == small.manifest["rows"] == 332 * days - gap


# --- manifest and arguments --------------------------------------------------------------


def test_manifest_json_is_valid_sorted_and_complete(data: demo.DemoData) -> None:
    text = demo.manifest_json(data)
    parsed = json.loads(text)
    assert parsed == data.manifest
    assert text == json.dumps(parsed, sort_keys=True, indent=2)
    required = {"seed", "start", "end", "days", "kpis", "dimensions", "rows", "incidents"}
    assert required <= set(parsed)
    assert parsed["seed"] == demo.DEMO_SEED
    assert parsed["end"] == END.isoformat()
    assert parsed["dimensions"] == {"region": list(demo.REGIONS), "plan": list(demo.PLANS),
                                    "channel": list(demo.CHANNELS)}


@pytest.mark.parametrize(
    "call",
    [
        lambda: demo.generate(END, days=0),
        lambda: demo.generate(END, days=-5),
        lambda: demo.generate(END, seed=-1),
        lambda: demo.generate_days(END, END - timedelta(days=1)),
        lambda: demo.generate(datetime(2025, 6, 30, tzinfo=UTC)),
    ],
    ids=["zero-days", "negative-days", "negative-seed", "last-before-first", "datetime-not-date"],
)
def test_bad_arguments_raise_config_error(call: Any) -> None:
    with pytest.raises(ConfigError):
        call()
