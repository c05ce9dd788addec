from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kpidash.core import aggregate as agg
from kpidash.core.trend import (
    MKMethod,
    TrendLabel,
    compare_periods,
    mann_kendall,
    seasonal_adjust,
    sen_slope,
    series_breaks,
    series_change,
    series_trend,
    trend,
    trend_breaks,
)
from kpidash.model import KPI, Grain, Series

D = np.datetime64


def utc_periods(start: str, end: str, grain: Grain, tz: str = "UTC") -> np.ndarray:
    s = datetime.fromisoformat(start).replace(tzinfo=UTC)
    e = datetime.fromisoformat(end).replace(tzinfo=UTC)
    return agg.keys_to_utc(agg.period_keys(s, e, grain, tz), grain, tz)[0]


# ---------------------------------------------------------------- period over period

def test_monthly_last_complete_period_vs_previous_and_year_ago() -> None:
    p = utc_periods("2023-01-01", "2024-04-01", Grain.MONTH)  # Jan 2023 .. Mar 2024
    v = np.arange(len(p), dtype=float) + 100.0
    v[p == D("2023-02-01", "us")] = 80.0
    # 15 March: March is not complete, so the current period is February 2024
    got = compare_periods(v, p, grain=Grain.MONTH, now=datetime(2024, 3, 15, tzinfo=UTC))
    assert got.current_period == D("2024-02-01", "us") and got.current_value == 113.0
    assert got.previous.reference_period == D("2024-01-01", "us")
    assert got.previous.absolute == 1.0 and got.previous.percent == pytest.approx(100 / 112)
    assert got.year_ago.reference_period == D("2023-02-01", "us")
    assert got.year_ago.absolute == 33.0 and got.year_ago.percent == pytest.approx(41.25)
    assert got.year_ago.direction == "up" and got.year_ago.favourable is True
    # at the first instant of April, March is complete
    got = compare_periods(v, p, grain=Grain.MONTH, now=datetime(2024, 4, 1, tzinfo=UTC))
    assert got.current_period == D("2024-03-01", "us")


@pytest.mark.parametrize(("grain", "start", "end", "current", "year_ago", "tz"), [
    (Grain.DAY, "2023-01-01", "2024-03-01", "2024-02-29", "2023-02-28", "UTC"),
    (Grain.DAY, "2023-01-01", "2024-04-01T12:00", "2024-04-01", "2023-04-01", "Europe/Paris"),
    (Grain.WEEK, "2022-12-26", "2024-01-08", "2024-01-01", "2023-01-02", "UTC"),
    (Grain.QUARTER, "2022-01-01", "2024-01-01", "2023-10-01", "2022-10-01", "UTC"),
    (Grain.YEAR, "2020-01-01", "2024-01-01", "2023-01-01", "2022-01-01", "UTC"),
    (Grain.HOUR, "2023-03-01T00:00", "2024-03-01T06:00", "2024-03-01T05:00",
     "2023-03-01T05:00", "UTC"),
], ids=["day-leap", "day-paris-dst", "week-52", "quarter", "year", "hour"])
def test_year_ago_is_found_by_calendar(grain: Grain, start: str, end: str, current: str,
                                       year_ago: str, tz: str) -> None:
    p = utc_periods(start, end, grain, tz)
    labels = agg.keys_to_utc(agg.period_keys(
        datetime.fromisoformat(start).replace(tzinfo=UTC),
        datetime.fromisoformat(end).replace(tzinfo=UTC), grain, tz), grain, tz)[1]
    v = np.linspace(1.0, 2.0, len(p))
    got = compare_periods(v, p, grain=grain, tz=tz)
    assert labels[got.current_index or 0].startswith(current)
    assert got.year_ago.reference_index is not None
    assert labels[got.year_ago.reference_index].startswith(year_ago)
    assert got.previous.reference_index == len(p) - 2


@pytest.mark.parametrize(("cur", "ref", "hib", "flat_pct", "absolute", "percent", "direction",
                          "favourable"), [
    (110.0, 100.0, True, 0.0, 10.0, 10.0, "up", True),
    (110.0, 100.0, False, 0.0, 10.0, 10.0, "up", False),
    (90.0, 100.0, False, 0.0, -10.0, -10.0, "down", True),
    (100.5, 100.0, True, 1.0, 0.5, 0.5, "flat", None),
    (5.0, 0.0, True, 0.0, 5.0, None, "up", True),
    (0.0, 0.0, True, 0.0, 0.0, None, "flat", None),
    (-50.0, -100.0, True, 0.0, 50.0, 50.0, "up", True),
    (np.nan, 100.0, True, 0.0, None, None, None, None),
    (100.0, np.nan, True, 0.0, None, None, None, None),
], ids=["up-good", "up-bad", "down-good", "within-flat-band", "from-zero", "zero-zero",
        "negative-reference", "current-missing", "reference-missing"])
def test_change_fields(cur: float, ref: float, hib: bool, flat_pct: float,
                       absolute: float | None, percent: float | None, direction: str | None,
                       favourable: bool | None) -> None:
    got = compare_periods([ref, cur], grain=Grain.DAY, higher_is_better=hib,
                          flat_pct=flat_pct).previous
    assert got.absolute == (None if absolute is None else pytest.approx(absolute))
    assert got.percent == (None if percent is None else pytest.approx(percent))
    assert (got.direction, got.favourable) == (direction, favourable)
    assert got.reference_value == (None if np.isnan(ref) else ref)


@pytest.mark.parametrize(("grain", "n", "year_ago"), [
    (Grain.MONTH, 13, 0), (Grain.QUARTER, 5, 0), (Grain.WEEK, 53, 0), (Grain.MONTH, 12, None),
    (Grain.DAY, 400, None),
], ids=["month", "quarter", "week", "month-too-short", "day-needs-calendar"])
def test_positional_year_ago_without_periods(grain: Grain, n: int, year_ago: int | None) -> None:
    got = compare_periods(np.ones(n), grain=grain)
    assert got.current_index == n - 1 and got.year_ago.reference_index == year_ago


def test_nothing_complete_and_missing_reference_period() -> None:
    p = utc_periods("2024-01-01", "2024-03-01", Grain.MONTH)
    got = compare_periods([1.0, 2.0], p, grain=Grain.MONTH,
                          now=datetime(2024, 1, 20, tzinfo=UTC))
    assert got.current_index is None and got.previous.absolute is None
    got = compare_periods([1.0, 2.0], p, grain=Grain.MONTH)
    assert got.year_ago.reference_index is None and got.year_ago.percent is None
    # a hole in the periods is not papered over by the neighbouring position
    got = compare_periods([1.0, 2.0], np.array([p[0], D("2024-03-01", "us")]),
                          grain=Grain.MONTH)
    assert got.previous.reference_index is None
    assert got.to_dict()["previous"]["absolute"] is None


def test_series_change_uses_kpi_direction() -> None:
    p = utc_periods("2024-01-01", "2024-01-04", Grain.DAY)
    s = Series("churn", Grain.DAY, "UTC", p, np.array([5.0, 4.0, 3.0]))
    got = series_change(s, KPI(id="churn", name="Churn", higher_is_better=False))
    assert got.previous.direction == "down" and got.previous.favourable is True
    assert got.to_dict()["current_period"] == "2024-01-03T00:00:00Z"


# ---------------------------------------------------------------- Mann-Kendall and Sen

def test_mann_kendall_matches_hand_computation() -> None:
    # pairs: +4 from 1, +1 from 3, +2 from 2, 0 from the tied 4s → S = 7; one tie group of 2
    got = mann_kendall([1.0, 3.0, 2.0, 4.0, 4.0])
    var = (5 * 4 * 15 - 2 * 1 * 9) / 18
    z = (7 - 1) / math.sqrt(var)
    assert got.s == 7.0 and got.var_s == pytest.approx(var)
    assert got.z == pytest.approx(z)
    assert got.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    # Sen: median of 10 pairwise slopes {-1, 0, 1/3, .5, .5, .75, 1, 1, 2, 2} = 0.625
    assert sen_slope([1.0, 3.0, 2.0, 4.0, 4.0]).slope == 0.625


def test_seasonal_mann_kendall_matches_hand_computation() -> None:
    got = mann_kendall([1.0, 10.0, 2.0, 20.0, 3.0, 30.0], method="seasonal", season_length=2)
    var = 2 * (3 * 2 * 11 / 18)
    assert got.s == 6.0 and got.var_s == pytest.approx(var)
    assert got.z == pytest.approx(5 / math.sqrt(var))
    # within-season slopes per period (2 periods apart): (.5, .5, .5) and (5, 5, 5)
    assert sen_slope([1.0, 10.0, 2.0, 20.0, 3.0, 30.0], season_length=2).slope == 2.75


def test_hamed_rao_factor_matches_formula_with_statsmodels_acf() -> None:
    from statsmodels.tsa.stattools import acf

    rng = np.random.default_rng(7)
    x = np.zeros(80)
    for i in range(1, 80):
        x[i] = 0.7 * x[i - 1] + rng.normal()
    n = 80
    b = np.median([(x[j] - x[i]) / (j - i) for i in range(n) for j in range(i + 1, n)])
    rho = acf(stats.rankdata(x - b * np.arange(n)), nlags=3, adjusted=False)[1:]
    k = np.arange(1, 4)
    keep = np.abs(rho) > stats.norm.ppf(0.975) / math.sqrt(n)
    factor = 1 + 2 / (n * (n - 1) * (n - 2)) * np.sum(
        ((n - k) * (n - k - 1) * (n - k - 2) * rho)[keep])
    got = mann_kendall(x, method="hamed_rao")
    assert got.variance_factor == pytest.approx(factor) and factor > 1.5
    assert got.var_s == pytest.approx(mann_kendall(x).var_s * factor)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-20, 20), min_size=3, max_size=40))
def test_sen_slope_matches_scipy_theilslopes(ys: list[int]) -> None:
    y = np.array(ys, dtype=float)
    x = np.arange(len(y), dtype=float)
    ref = stats.theilslopes(y, x, alpha=0.95, method="joint")
    got = sen_slope(y)
    assert (got.slope, got.low, got.high) == pytest.approx(
        (ref.slope, ref.low_slope, ref.high_slope))
    assert got.intercept == pytest.approx(ref.intercept)
    assert got.low <= got.slope <= got.high


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=40),
       st.floats(0.01, 100), st.floats(-1e3, 1e3))
def test_mann_kendall_invariants(ys: list[float], scale: float, shift: float) -> None:
    y = np.array(ys)
    base = mann_kendall(y)
    # ranks only: a positive affine map leaves the test unchanged; negation flips S
    moved = mann_kendall(y * scale + shift)
    flipped = mann_kendall(-y)
    assert abs(base.s) <= len(y) * (len(y) - 1) / 2
    if np.unique(y * scale + shift).size == np.unique(y).size:
        assert moved.s == base.s and moved.p_value == pytest.approx(base.p_value)
    assert flipped.s == -base.s and flipped.p_value == pytest.approx(base.p_value)
    assert 0.0 <= base.p_value <= 1.0


def _ramp(slope: float, noise: float, n: int = 80, seed: int = 0) -> np.ndarray:
    return 100 + slope * np.arange(n) + np.random.default_rng(seed).normal(0, noise, n)


@pytest.mark.parametrize(("x", "label"), [
    (_ramp(0.5, 2.0), TrendLabel.RISING),
    (_ramp(-0.5, 2.0), TrendLabel.FALLING),
    (_ramp(0.0, 2.0), TrendLabel.NONE),
    (np.full(30, 7.0), TrendLabel.NONE),
    (np.array([1.0, 2.0]), TrendLabel.NONE),
], ids=["rising", "falling", "noise", "constant", "too-short"])
def test_trend_labels(x: np.ndarray, label: TrendLabel) -> None:
    got = trend(x)
    assert got.label is label
    if got.slope is not None:
        assert got.slope_low is not None and got.slope_high is not None
        assert got.slope_low <= got.slope <= got.slope_high
    if label is not TrendLabel.NONE:
        assert got.p_value is not None and got.p_value < 0.05 and got.slope is not None
        assert got.slope == pytest.approx(0.5 * np.sign(got.slope), abs=0.05)
        assert got.slope_pct == pytest.approx(100 * got.slope / abs(np.median(x)))


def test_too_short_gives_no_numbers_and_gaps_keep_period_units() -> None:
    short = trend([1.0, np.nan, 2.0])
    assert short.p_value is None and short.slope is None and short.n == 2
    x = 2.0 * np.arange(20)
    x[[3, 4, 10]] = np.nan
    got = trend(x)
    assert got.slope == 2.0 and got.n == 17 and got.label is TrendLabel.RISING


def _false_claim_rate(make: object, reps: int, **kw: object) -> float:
    rng = np.random.default_rng(12345)
    claims = sum(trend(make(rng), **kw).label is not TrendLabel.NONE  # type: ignore[operator,arg-type]
                 for _ in range(reps))
    return claims / reps


WEEK = 20 * np.sin(2 * np.pi * np.arange(84) / 7) + 30 * (np.arange(84) % 7 == 5)


@pytest.mark.parametrize(("make", "kw"), [
    (lambda r: r.normal(size=60), {}),
    (lambda r: r.normal(size=60), {"method": "hamed_rao"}),
    (lambda r: r.normal(size=60), {"method": "prewhiten"}),
    (lambda r: 100 + WEEK + r.normal(0, 5, 84), {"season_length": 7}),
    (lambda r: 100 + WEEK + r.standard_t(3, 84), {"season_length": 7}),
], ids=["white", "white-hamed-rao", "white-prewhiten", "weekly-seasonal", "weekly-heavy-tail"])
def test_noise_rarely_produces_trend_claims(make: object, kw: dict[str, object]) -> None:
    rate = _false_claim_rate(make, 400, **kw)
    assert 0.01 <= rate <= 0.09  # alpha = 0.05; 400 draws give a standard error near 0.011


def _ar1(rng: np.random.Generator, phi: float = 0.6, n: int = 100) -> np.ndarray:
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def test_autocorrelation_corrections_cut_false_claims() -> None:
    plain = _false_claim_rate(_ar1, 300, method="original")
    for method in ("hamed_rao", "prewhiten"):
        assert _false_claim_rate(_ar1, 300, method=method) < min(0.12, plain / 2)
    assert plain > 0.2  # the uncorrected test is fooled by persistence


def test_power_a_modest_trend_is_found() -> None:
    rng = np.random.default_rng(3)
    found = sum(trend(0.03 * np.arange(100) + rng.normal(size=100)).label is TrendLabel.RISING
                for _ in range(100))
    assert found >= 90


def test_auto_method_and_seasonal_slope() -> None:
    x = 100 + WEEK + 0.5 * np.arange(84)
    got = trend(x, season_length=7)
    assert got.method is MKMethod.SEASONAL and got.slope == pytest.approx(0.5)
    assert trend(x[:10], season_length=7).method is MKMethod.ORIGINAL
    with pytest.raises(ValueError, match="season_length"):
        mann_kendall(x, method="seasonal")
    assert got.to_dict()["label"] == "rising"


def test_series_trend_uses_grain_season() -> None:
    p = utc_periods("2024-01-01", "2024-03-25", Grain.DAY)
    s = Series("mrr", Grain.DAY, "UTC", p, 100 + WEEK + 0.5 * np.arange(84))
    got = series_trend(s, KPI(id="mrr", name="MRR"))
    assert got.method is MKMethod.SEASONAL and got.label is TrendLabel.RISING


# ---------------------------------------------------------------- trend-change points

def _piecewise(n: int, at: int, before: float, after: float, noise: float, seed: int,
               season: np.ndarray | None = None) -> np.ndarray:
    t = np.arange(n, dtype=float)
    y = 50 + np.where(t < at, before * t, before * at + after * (t - at))
    y += np.random.default_rng(seed).normal(0, noise, n)
    return y + (season[t.astype(int) % len(season)] if season is not None else 0)


@pytest.mark.parametrize(("y", "at", "before", "after", "season"), [
    (_piecewise(200, 120, 0.5, -0.3, 3.0, 1), 120, 0.5, -0.3, None),
    (_piecewise(150, 60, 0.0, 1.0, 2.0, 2), 60, 0.0, 1.0, None),
    (_piecewise(364, 250, 0.2, 0.8, 4.0, 3, WEEK[:7]), 250, 0.2, 0.8, 7),
], ids=["up-then-down", "flat-then-up", "weekly-seasonal"])
def test_break_in_piecewise_linear_data_is_found(y: np.ndarray, at: int, before: float,
                                                  after: float, season: int | None) -> None:
    got = trend_breaks(y, season_length=season)
    assert len(got.breaks) == 1
    b = got.breaks[0]
    assert abs(b.index - at) <= 5 and b.significant and b.p_value < 1e-6
    assert b.slope_before == pytest.approx(before, abs=0.1)
    assert b.slope_after == pytest.approx(after, abs=0.1)
    assert got.bic < got.bic_without_breaks
    assert got.seasonally_adjusted is (season is not None)


def test_noise_free_breaks_are_exact_and_two_breaks_are_found() -> None:
    t = np.arange(120, dtype=float)
    y = np.where(t < 40, t, np.where(t < 90, 40 + 3 * (t - 40), 190 - (t - 90)))
    got = trend_breaks(y)
    assert [b.index for b in got.breaks] == [40, 90]
    assert got.slopes == pytest.approx((1.0, 3.0, -1.0))
    assert np.allclose(got.fitted, y)


@pytest.mark.parametrize("seed", range(8))
def test_straight_line_with_noise_has_no_breaks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    assert trend_breaks(10 + 0.4 * np.arange(200) + rng.normal(0, 5, 200)).breaks == ()
    seasonal = 100 + WEEK[np.arange(210) % 7] + 0.2 * np.arange(210) + rng.normal(0, 3, 210)
    assert trend_breaks(seasonal, season_length=7).breaks == ()


def test_level_shift_with_jumps_and_missing_values() -> None:
    y = _piecewise(160, 100, 0.2, 0.2, 1.0, 4)
    y[100:] += 25
    y[[5, 50, 130]] = np.nan
    got = trend_breaks(y, jumps=True)
    assert len(got.breaks) == 1 and abs(got.breaks[0].index - 100) <= 2
    assert got.breaks[0].jump == pytest.approx(25, abs=2)
    assert np.isnan(got.fitted[[5, 50, 130]]).all() and got.fitted.shape == y.shape


def test_seasonal_adjust_removes_a_pure_season() -> None:
    y = 10 + np.tile([0.0, 5.0, -3.0, 1.0, 8.0, -6.0, -5.0], 6)
    adj = seasonal_adjust(y, 7)
    assert np.ptp(adj) < 1e-9


def test_series_breaks_labels_periods() -> None:
    y = _piecewise(200, 120, 0.5, -0.3, 1.0, 5)
    p = utc_periods("2024-01-01", "2024-07-19", Grain.DAY)
    got = series_breaks(Series("x", Grain.DAY, "UTC", p, y), KPI(id="x", name="X"),
                        season_length=0)
    assert got.breaks[0].period == p[got.breaks[0].index]
    assert got.to_dict()["breaks"][0]["period"].startswith("2024-04-")
