"""Forecast engine: invariants over every model, bounds, determinism, no look-ahead, API errors."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpidash.core.forecast import MODELS, Forecast, fit_model, forecast
from kpidash.errors import QueryError

T = np.arange(120)
RNG = np.random.default_rng(7)
SERIES = {
    "weekly_season": 50 + 0.1 * T + 8 * np.sin(2 * np.pi * T / 7) + RNG.normal(0, 1, 120),
    "trend": 10 + 0.5 * T + RNG.normal(0, 2, 120),
    "random_walk": 100 + np.cumsum(RNG.normal(0, 1, 120)),
    "short": np.array([3.0, 4.0, 3.5, 5.0, 4.5, 6.0]),
}
BOUNDED = {  # (values, bounds)
    "rate_near_0": (np.clip(0.5 + RNG.normal(0, 0.4, 90), 0, None), (0.0, 100.0)),
    "rate_near_100": (np.clip(99.6 + RNG.normal(0, 0.3, 90), None, 100), (0.0, 100.0)),
    "counts_with_zeros": (RNG.poisson(0.7, 90).astype(float), (0.0, None)),
    "declining_to_0": (np.maximum(60 - 0.7 * np.arange(90) + RNG.normal(0, 1, 90), 0), (0.0, None)),
    "capped_above": (np.minimum(5 + 0.05 * np.arange(90) + RNG.normal(0, 0.2, 90), 9.0), (None, 9.0)),
}


def check_intervals(f: Forecast, h: int) -> None:
    assert f.mean.shape == (h,) and np.isfinite(f.mean).all()
    for lv in f.lower:
        assert np.all(f.lower[lv] <= f.mean) and np.all(f.mean <= f.upper[lv]), lv
    levels = sorted(f.lower)
    for a, b in pairwise(levels):
        assert np.all(f.lower[b] <= f.lower[a]) and np.all(f.upper[b] >= f.upper[a])
        assert np.sum(f.upper[b] - f.lower[b]) > np.sum(f.upper[a] - f.lower[a]) or np.allclose(
            f.upper[a], f.lower[a])


@pytest.mark.parametrize("model", MODELS)
def test_every_model_keeps_interval_invariants(model: str) -> None:
    names = list(SERIES)
    res = forecast([SERIES[n] for n in names], 10, levels=(50, 80, 95), model=model)
    for name, f in zip(names, res, strict=True):
        check_intervals(f, 10)
        assert f.fitted.shape == SERIES[name].shape, name
        assert all(0 <= c <= 1 for c in f.backtest.coverage.values() if np.isfinite(c))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", list(BOUNDED), ids=list(BOUNDED))
def test_bounded_kpis_never_leave_their_bounds(model: str, case: str) -> None:
    y, (lo, hi) = BOUNDED[case]
    f = forecast([y], 20, bounds=(lo, hi), model=model, season_length=7)[0]
    check_intervals(f, 20)
    arrays = [f.mean, *f.lower.values(), *f.upper.values(), f.fitted[np.isfinite(f.fitted)]]
    for a in arrays:
        assert lo is None or np.all(a >= lo)
        assert hi is None or np.all(a <= hi)


@pytest.mark.parametrize("model", MODELS)
def test_fit_is_deterministic(model: str) -> None:
    ys = [SERIES["weekly_season"], SERIES["trend"]]
    a, b = forecast(ys, 14, model=model), forecast(ys, 14, model=model)
    for fa, fb in zip(a, b, strict=True):
        assert fa.model == fb.model
        np.testing.assert_array_equal(fa.mean, fb.mean)
        np.testing.assert_array_equal(fa.upper[95], fb.upper[95])
        assert fa.backtest == fb.backtest


CONCRETE = [m for m in MODELS if m not in ("auto", "ets", "ensemble")]


@pytest.mark.parametrize("model", CONCRETE)
@pytest.mark.parametrize("t0", [1, 30, 90, 119])
def test_fitted_values_are_one_step_forecasts_without_look_ahead(model: str, t0: int) -> None:
    y = SERIES["weekly_season"]
    base = fit_model(y, 5, model, season_length=7)
    again = fit_model(y, 5, model, season_length=7, params=base.params)
    np.testing.assert_allclose(again.fitted, base.fitted, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(again.mean, base.mean, rtol=1e-12)
    changed = y.copy()
    changed[t0] += 1000.0
    other = fit_model(changed, 5, model, season_length=7, params=base.params)
    np.testing.assert_array_equal(other.fitted[: t0 + 1], base.fitted[: t0 + 1])
    later_can_change = t0 < 119 and not (model == "seasonal_naive" and t0 + 7 > 119)
    if later_can_change:       # the check above is not vacuous: the change does reach later fits
        assert not np.allclose(other.fitted[t0 + 1:], base.fitted[t0 + 1:], equal_nan=True)


def test_many_series_in_parallel_match_one_process() -> None:
    ys = [SERIES[n] * (1 + i / 50) for i in range(40) for n in ("weekly_season", "random_walk")]
    one = forecast(ys, 7, n_jobs=1)
    two = forecast(ys, 7, n_jobs=2)
    for a, b in zip(one, two, strict=True):
        assert (a.model, a.season_length) == (b.model, b.season_length)
        np.testing.assert_array_equal(a.mean, b.mean)
        np.testing.assert_array_equal(a.lower[80], b.lower[80])


def test_missing_values_are_filled_and_leading_ones_dropped() -> None:
    y = SERIES["trend"].copy()
    y[50:53] = np.nan
    f = forecast([np.concatenate([[np.nan] * 4, y])], 3)[0]
    assert f.fitted.shape == (120,) and np.isfinite(f.mean).all()


def test_backtest_figures_are_real_numbers() -> None:
    f = forecast([SERIES["weekly_season"]], 7, season_length=7)[0]
    bt = f.backtest
    assert bt.n_windows == 6 and bt.horizon == 7
    assert 0 < bt.mase < 5 and 0 < bt.smape < 200
    assert set(bt.coverage) == {80, 95} and all(0 <= c <= 1 for c in bt.coverage.values())
    assert bt.coverage[95] >= bt.coverage[80]
    assert f.selection.criterion == "backtest_mase"
    assert f.selection.scores[f.model] == min(v for v in f.selection.scores.values() if v == v)


def test_a_series_too_short_for_a_backtest_is_chosen_by_aicc() -> None:
    f = forecast([np.array([3.0, 4.0, 3.5, 5.0])], 3)[0]      # 4 points: nothing to hold out
    assert f.backtest.n_windows == 0 and np.isnan(f.backtest.mase)
    assert f.selection.criterion == "aicc" and f.season_length == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"horizon": 0}, "horizon must be"),
    ({"levels": (80, 100)}, "levels must be whole percentages"),
    ({"bounds": (5.0, 1.0)}, "lower < upper"),
    ({"model": "prophet"}, "unknown forecast model 'prophet'"),
    ({"n_jobs": 0}, "n_jobs must be"),
    ({"series": [[1.0, 2.0]]}, "series 0: expected at least 3 observed values, got 2"),
    ({"series": [[1.0, np.inf, 2.0, 3.0]]}, "infinite value at position 1"),
    ({"series": [[[1.0, 2.0, 3.0]]]}, "expected a 1-D array"),
    ({"series": [[1.0, -2.0, 3.0]], "bounds": (0.0, None)}, "value -2 at position 1 is outside the lower"),
], ids=["horizon", "level", "bounds", "model", "jobs", "too_short", "inf", "2d", "out_of_bounds"])
def test_bad_arguments_say_what_was_expected(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"series": [SERIES["trend"]], "horizon": 3} | kwargs
    with pytest.raises(QueryError, match=message.replace("(", r"\(")):
        forecast(**args)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=3, max_size=60),
       st.integers(1, 12), st.sampled_from(["auto", "ets", "theta", "damped"]))
def test_invariants_hold_for_arbitrary_series(values: list[float], h: int, model: str) -> None:
    f = forecast([np.array(values)], h, model=model)[0]
    check_intervals(f, h)
    assert all(np.isfinite(a).all() for a in (*f.lower.values(), *f.upper.values()))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=3, max_size=50), st.integers(1, 10))
def test_percentages_stay_in_0_100_for_arbitrary_series(values: list[float], h: int) -> None:
    f = forecast([np.array(values)], h, bounds=(0.0, 100.0))[0]
    check_intervals(f, h)
    for a in (f.mean, *f.lower.values(), *f.upper.values()):
        assert np.all((a >= 0) & (a <= 100))
