"""Forecast models against reference results; seasonality detection; model choice; transforms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kpidash.core.forecast import detect_season_length, fit_model, forecast
from kpidash.core.forecast.backtest import conformal_q, mase_scale
from kpidash.core.forecast.seasonality import seasonality_test
from kpidash.core.forecast.transform import make_transform

RNG = np.random.default_rng(11)
N = 96
T = np.arange(N)
SEASONAL = 200 + 0.5 * T + 20 * np.sin(2 * np.pi * T / 12) + RNG.normal(0, 2, N)
SEASONAL_PARAMS = {"alpha": 0.3, "beta": 0.3 * 0.1, "gamma": 0.2, "phi": 1.0, "l0": 198.0, "b0": 0.4,
                   **{f"s{j}": 20 * np.sin(2 * np.pi * j / 12) for j in range(12)}}


def statsmodels_hw(seasonal: str, params: dict[str, float], y: np.ndarray, h: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    ExponentialSmoothing = pytest.importorskip("statsmodels.tsa.holtwinters").ExponentialSmoothing
    init = np.array([params[f"s{j}"] for j in range(12)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # statsmodels' own deprecation chatter
        res = ExponentialSmoothing(
            y, trend="add", seasonal=seasonal, seasonal_periods=12, initialization_method="known",
            initial_level=params["l0"], initial_trend=params["b0"], initial_seasonal=init,
        ).fit(smoothing_level=params["alpha"], smoothing_trend=params["beta"] / params["alpha"],
              smoothing_seasonal=params["gamma"], optimized=False)
        return np.asarray(res.fittedvalues), np.asarray(res.forecast(h))


@pytest.mark.parametrize(("model", "seasonal", "season_shift"), [
    ("holt_winters_additive", "add", 0.0), ("holt_winters_multiplicative", "mul", 1.0)],
    ids=["additive", "multiplicative"])
def test_holt_winters_matches_statsmodels_with_the_same_fixed_parameters(
        model: str, seasonal: str, season_shift: float) -> None:
    params = dict(SEASONAL_PARAMS)
    if seasonal == "mul":        # multiplicative indices around 1
        params |= {f"s{j}": 1.0 + 0.1 * np.sin(2 * np.pi * j / 12) for j in range(12)}
    ours = fit_model(SEASONAL, 11, model, season_length=12, params=params)
    fitted, fc = statsmodels_hw(seasonal, params, SEASONAL, 11)
    np.testing.assert_allclose(ours.fitted, fitted, rtol=1e-9)
    # horizons below one season: statsmodels 0.15.0 is wrong at multiples of it (issue 9538)
    np.testing.assert_allclose(ours.mean, fc, rtol=1e-9)


def test_seasonal_naive_repeats_the_last_season_by_hand() -> None:
    y = np.array([1.0, 5, 3, 2, 6, 4, 3, 7, 5])
    f = fit_model(y, 7, "seasonal_naive", season_length=3)
    np.testing.assert_array_equal(f.mean, [3, 7, 5, 3, 7, 5, 3])
    np.testing.assert_array_equal(f.fitted[3:], y[:-3])
    assert np.isnan(f.fitted[:3]).all()


def test_naive_and_ses_by_hand() -> None:
    y = np.array([10.0, 12, 11, 13])
    np.testing.assert_array_equal(fit_model(y, 2, "naive").mean, [13, 13])
    f = fit_model(y, 2, "ses", params={"alpha": 0.5, "l0": 10.0})
    # ℓ: 10 → 10 → 11 → 11 → 12; fitted = previous level
    np.testing.assert_allclose(f.fitted, [10, 10, 11, 11])
    np.testing.assert_allclose(f.mean, [12, 12])


def test_damped_trend_forecast_flattens_by_phi() -> None:
    y = np.arange(1.0, 21.0)
    f = fit_model(y, 30, "damped", params={"alpha": 0.5, "beta": 0.1, "phi": 0.8, "l0": 0.0, "b0": 1.0})
    steps = np.diff(f.mean)
    np.testing.assert_allclose(steps[1:] / steps[:-1], 0.8, rtol=1e-9)


def test_theta_on_a_straight_line_continues_at_half_the_slope_plus_level() -> None:
    y = 5.0 + 2.0 * np.arange(60)
    f = fit_model(y, 4, "theta")
    # SES lags a trend; theta adds half the slope per step, so increments are exactly 1
    np.testing.assert_allclose(np.diff(f.mean), 1.0, rtol=1e-9)


@pytest.mark.parametrize(("name", "y", "expected"), [
    ("daily_weekly_cycle", 100 + 10 * np.tile([0, 1, 3, 2, -1, -4, -1], 30)
     + np.random.default_rng(1).normal(0, 1, 210), 7),
    ("hourly_daily_cycle", 50 + 10 * np.sin(2 * np.pi * np.arange(24 * 21) / 24)
     + np.random.default_rng(2).normal(0, 2, 24 * 21), 24),
    ("trend_plus_cycle", 0.5 * np.arange(140) + 5 * np.sin(2 * np.pi * np.arange(140) / 7)
     + np.random.default_rng(3).normal(0, 0.5, 140), 7),
    ("random_walk", np.cumsum(np.random.default_rng(4).normal(0, 1, 500)), 1),
    ("white_noise", np.random.default_rng(5).normal(0, 1, 300), 1),
    ("constant", np.full(50, 3.0), 1),
], ids=lambda v: v if isinstance(v, str) else "")
def test_season_length_is_detected(name: str, y: np.ndarray, expected: int) -> None:
    assert detect_season_length(y) == expected


def test_the_m4_seasonality_test() -> None:
    assert seasonality_test(SEASONAL, 12)
    assert not seasonality_test(np.random.default_rng(6).normal(0, 1, 200), 12)


def strong_weekly(n: int) -> np.ndarray:
    return 100 + 30 * np.tile([0, 1, 3, 2, -1, -4, -1], n // 7 + 1)[:n] + RNG.normal(0, 1, n)


def test_auto_picks_a_seasonal_model_on_strongly_seasonal_data() -> None:
    f = forecast([strong_weekly(140)], 14)[0]
    assert f.season_length == 7
    assert f.model in ("seasonal_naive", "holt_winters_additive", "holt_winters_multiplicative",
                       "theta", "ensemble")
    assert f.selection.scores[f.model] < 0.5 * f.selection.scores["naive"]
    assert f.backtest.mase < 1.0


def test_no_seasonal_model_with_fewer_than_two_seasons() -> None:
    f = forecast([strong_weekly(13)], 7, season_length=7)[0]
    assert f.season_length == 1
    assert not {"seasonal_naive", "holt_winters_additive"} & set(f.selection.scores)
    g = fit_model(strong_weekly(13), 7, "holt_winters_additive", season_length=7)
    assert (g.model, g.season_length) == ("damped", 1)


def test_ets_chooses_by_information_criterion() -> None:
    f = forecast([SEASONAL], 12, season_length=12, model="ets")[0]
    assert f.selection.criterion == "aicc"
    assert f.model == min(f.selection.aicc, key=f.selection.aicc.__getitem__)
    assert f.model.startswith("holt_winters")


def test_intervals_cover_about_nominal_on_gaussian_noise() -> None:
    rng = np.random.default_rng(9)
    ys = [rng.normal(100, 5, 160) for _ in range(60)]
    res = forecast([y[:150] for y in ys], 10, model="ses")
    inside = np.mean([np.mean((y[150:] >= f.lower[80]) & (y[150:] <= f.upper[80]))
                      for y, f in zip(ys, res, strict=True)])
    assert 0.7 <= inside <= 0.9
    assert 0.7 <= np.mean([f.backtest.coverage[80] for f in res]) <= 0.9


def test_conformal_quantile_rank_and_gaussian_fallback() -> None:
    r = np.arange(1.0, 20.0)[None, :]                   # N = 19: rank ⌈20·0.95⌉ = 19, ⌈20·0.8⌉ = 16
    q = conformal_q(r, (80, 95), np.array([1.0]))
    np.testing.assert_allclose(q[0], [16.0, 19.0])
    q = conformal_q(np.array([[1.0, 2.0]]), (80, 95), np.array([1.0]))
    np.testing.assert_allclose(q[0], [1.2815515655446004, 1.959963984540054])
    # 50 %: the 2nd of 2 errors; 95 %: too few errors, and z·σ = 0.196 would be narrower than
    # the 50 % interval, so it is widened by the Gaussian ratio z_95 / z_50 instead
    q = conformal_q(np.array([[1.0, 2.0]]), (50, 95), np.array([0.1]))
    np.testing.assert_allclose(q[0], [2.0, 2.0 * 1.959963984540054 / 0.6744897501960817])


def test_mase_scale_uses_the_seasonal_difference() -> None:
    y = np.array([[1.0, 2, 4, 7, 11, 16]])
    np.testing.assert_allclose(mase_scale(y, np.array([0]), np.array([6]), 2), [np.mean([3, 5, 7, 9])])


@pytest.mark.parametrize(("bounds", "y"), [
    ((0.0, None), np.array([0.0, 1.0, 5.0])), ((None, 10.0), np.array([10.0, 9.0, 2.0])),
    ((0.0, 100.0), np.array([0.0, 50.0, 100.0])), ((None, None), np.array([-3.0, 0.0, 3.0]))],
    ids=["log_lower", "log_upper", "logit", "identity"])
def test_transform_round_trips_inside_the_bounds(bounds: tuple[float | None, float | None],
                                                 y: np.ndarray) -> None:
    tr = make_transform(y, *bounds)
    z = tr.forward(y)
    assert np.isfinite(z).all()
    back = tr.inverse(z)
    inside = (y > (bounds[0] if bounds[0] is not None else -np.inf)) & (
        y < (bounds[1] if bounds[1] is not None else np.inf))
    np.testing.assert_allclose(back[inside], y[inside], rtol=1e-12)
    extreme = tr.inverse(np.array([-1e6, 1e6]))
    assert np.isfinite(extreme).all()
    assert bounds[0] is None or np.all(extreme >= bounds[0])
    assert bounds[1] is None or np.all(extreme <= bounds[1])
