from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kpidash.core.correlate import (
    LagCorrelation,
    Relation,
    benjamini_hochberg,
    cross_correlation,
    prepare,
    relations,
)


def _by_lag(rows: list[LagCorrelation]) -> dict[int, LagCorrelation]:
    return {c.lag: c for c in rows}


# ---------------------------------------------------------------- prepare

def test_prepare_first_difference_keeps_length_and_propagates_nan() -> None:
    out = prepare([1.0, 2.0, np.nan, 4.0, 7.0])
    np.testing.assert_array_equal(out, [np.nan, 1.0, np.nan, np.nan, 3.0])


def test_prepare_seasonal_difference_matches_formula() -> None:
    y = np.array([3.0, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    m = 3
    out = prepare(y, season_length=m)
    assert out.shape == y.shape
    assert np.isnan(out[: m + 1]).all()
    for t in range(m + 1, y.size):
        assert out[t] == pytest.approx(y[t] - y[t - 1] - (y[t - m] - y[t - m - 1]))


def test_prepare_season_length_one_is_plain_difference() -> None:
    y = np.arange(6.0) ** 2
    np.testing.assert_array_equal(prepare(y, 1), prepare(y))


# ---------------------------------------------------------------- cross_correlation

def test_hand_computed_pearson_small_example() -> None:
    x = [1.0, 2, 3, 4, 5]
    y = [2.0, 4, 5, 4, 5]
    c = _by_lag(cross_correlation(x, y, max_lag=1))
    # lag 0: Σdxdy = 6, Σdx² = 10, Σdy² = 6
    assert c[0].r == pytest.approx(6 / math.sqrt(60))
    assert c[0].n == 5
    # lag +1 pairs x[t] with y[t+1]: (1,4) (2,5) (3,4) (4,5) → 1/√5
    assert c[1].r == pytest.approx(1 / math.sqrt(5))
    assert c[1].n == 4
    # lag −1 pairs x[t] with y[t−1]: (2,2) (3,4) (4,5) (5,4)
    assert c[-1].r == pytest.approx(3.5 / math.sqrt(5 * 4.75))
    assert c[-1].r == pytest.approx(np.corrcoef([2, 3, 4, 5], [2, 4, 5, 4])[0, 1])
    assert [row.lag for row in cross_correlation(x, y, max_lag=1)] == [-1, 0, 1]


def test_p_values_match_pearsonr_for_white_noise() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=300)
    y = 0.1 * x + rng.normal(size=300)
    rows = cross_correlation(x, y, max_lag=3)
    for c in rows:
        lag = c.lag
        xs, ys = (x[: x.size - lag], y[lag:]) if lag >= 0 else (x[-lag:], y[: y.size + lag])
        ref = stats.pearsonr(xs, ys)
        assert c.n == xs.size
        assert c.r == pytest.approx(ref.statistic, abs=1e-12)
        # Fisher z vs the exact t-test, Bartlett factor near 1: loose agreement only.
        assert c.p_value == pytest.approx(ref.pvalue, rel=0.1, abs=0.01)
    assert min(c.p_value for c in rows) < 0.01  # the comparison covers a small p too


def test_autocorrelated_series_get_larger_p_values_than_naive() -> None:
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(size=200))
    y = np.cumsum(rng.normal(size=200)) + 0.3 * x
    c = _by_lag(cross_correlation(x, y, max_lag=0))[0]
    naive = stats.pearsonr(x, y).pvalue
    assert c.p_value > naive


def test_gaps_reduce_n() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=100)
    y = x + 0.5 * rng.normal(size=100)
    x[[5, 6, 7]] = np.nan
    y[[7, 50]] = np.nan
    c = _by_lag(cross_correlation(x, y, max_lag=2))
    assert c[0].n == 100 - 4  # positions 5, 6, 7, 50
    ok = np.isfinite(x) & np.isfinite(y)
    assert c[0].r == pytest.approx(np.corrcoef(x[ok], y[ok])[0, 1])
    assert c[1].n < 99


def test_undefined_correlation_is_nan() -> None:
    c = _by_lag(cross_correlation([1.0, 1, 1, 1, 1], [1.0, 2, 3, 4, 5], max_lag=1))
    assert math.isnan(c[0].r) and math.isnan(c[0].p_value)
    assert c[0].to_dict()["r"] is None


def test_cross_correlation_rejects_different_shapes() -> None:
    with pytest.raises(ValueError, match="same length"):
        cross_correlation([1.0, 2, 3], [1.0, 2], max_lag=1)
    with pytest.raises(ValueError, match="max_lag"):
        cross_correlation([1.0, 2, 3], [1.0, 2, 3], max_lag=-1)


# ---------------------------------------------------------------- Benjamini–Hochberg

def test_benjamini_hochberg_matches_scipy_and_skips_nan() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=50) ** 3
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p))
    with_nan = np.append(p, np.nan)
    q = benjamini_hochberg(with_nan)
    assert math.isnan(q[-1])
    np.testing.assert_allclose(q[:-1], stats.false_discovery_control(p))


# ---------------------------------------------------------------- relations

def _leader_follower(n: int = 240, shift: int = 7, noise: float = 0.5,
                     seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.normal(size=n + shift))
    tickets = base[shift:]
    churn = base[:n] + noise * rng.normal(size=n)  # churn[t] = tickets[t − shift] + noise
    other = np.cumsum(rng.normal(size=n))
    return {"churn": churn, "tickets": tickets, "other": other}


def test_shifted_copy_found_with_lag_and_leader() -> None:
    found = relations(_leader_follower())
    assert len(found) == 1
    rel = found[0]
    assert isinstance(rel, Relation)
    assert (rel.leader, rel.follower, rel.lag) == ("tickets", "churn", 7)
    assert (rel.a, rel.b) == ("churn", "tickets")  # input order
    # Differenced: Δchurn = Δtickets(t−7) + Δnoise; var(Δnoise) = 2·0.5² → r = 1/√1.5.
    assert rel.r == pytest.approx(1 / math.sqrt(1.5), abs=0.08)
    assert rel.significant and rel.q_value <= 0.05 and rel.p_value <= rel.q_value
    assert rel.tests == 3 * (2 * 14 + 1)
    assert rel.describe("days") == f"tickets leads churn by 7 days (r = {rel.r:.2f})"
    d = rel.to_dict()
    assert d["leader"] == "tickets" and d["lag"] == 7


def test_negative_lag_is_normalised_whichever_order() -> None:
    data = _leader_follower()
    flipped = {"tickets": data["tickets"], "churn": data["churn"]}
    rel = relations(flipped)[0]
    assert (rel.a, rel.b) == ("tickets", "churn")
    assert (rel.leader, rel.follower, rel.lag) == ("tickets", "churn", 7)


def test_random_walks_with_common_trend_are_not_related() -> None:
    rng = np.random.default_rng(2024)
    t = np.arange(200.0)
    x = 0.5 * t + np.cumsum(rng.normal(size=200))
    y = 0.5 * t + np.cumsum(rng.normal(size=200))
    raw = _by_lag(cross_correlation(x, y, max_lag=0))[0]
    assert raw.r > 0.9  # the trap: raw levels look strongly related
    assert relations({"x": x, "y": y}) == []


def test_same_weekly_pattern_not_related_with_season_length() -> None:
    rng = np.random.default_rng(7)
    n = 210
    week = np.array([10.0, 12, 13, 12, 11, 4, 3])
    pattern = np.tile(week, n // 7)
    a = 100 + pattern + rng.normal(size=n)
    b = 50 + 2 * pattern + rng.normal(size=n)
    # Without seasonal differencing the shared week dominates.
    assert relations({"a": a, "b": b}) != []
    assert relations({"a": a, "b": b}, season_length=7) == []


def _noise_walks(seed: int, count: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"s{i:02d}": np.cumsum(rng.normal(size=200)) for i in range(count)}


def test_no_false_discoveries_among_40_noise_series() -> None:
    # 780 pairs × 29 lags = 22620 tests; without BH about 1100 would pass p ≤ 0.05.
    assert relations(_noise_walks(0), alpha=0.05) == []


def test_false_discoveries_are_rare_across_seeds() -> None:
    # Under the complete null BH bounds P(any discovery) near alpha: a few of 20 at most.
    hits = sum(bool(relations(_noise_walks(seed))) for seed in range(20))
    assert hits <= 2


def test_min_thresholds_apply() -> None:
    data = _leader_follower()
    assert relations(data, min_n=1000) == []
    assert relations(data, min_abs_r=0.99) == []


def test_gaps_reduce_relation_n() -> None:
    full = relations(_leader_follower())[0]
    data = _leader_follower()
    data["churn"][[20, 60, 100]] = np.nan  # each gap removes two differences
    gapped = relations(data)[0]
    assert gapped.lag == 7
    assert gapped.n == full.n - 6


def test_deterministic_order() -> None:
    rng = np.random.default_rng(9)
    base = rng.normal(size=(3, 230)).cumsum(axis=1)
    data = {
        "b": base[0][:200], "a": base[0][3:203] + 0.3 * rng.normal(size=200),
        "d": base[1][:200], "c": base[1][5:205] + 0.3 * rng.normal(size=200),
        "e": base[2][:200],
    }
    first = [r.to_dict() for r in relations(data)]
    second = [r.to_dict() for r in relations(data)]
    assert first == second
    assert len(first) == 2
    keys = [(r["q_value"], -abs(r["r"])) for r in first]
    assert keys == sorted(keys)


def test_different_lengths_raise_naming_series() -> None:
    with pytest.raises(ValueError, match=r"'mrr': 10.*'churn': 9"):
        relations({"mrr": np.arange(10.0), "churn": np.arange(9.0)})


def test_fewer_than_two_series_give_nothing() -> None:
    assert relations({}) == []
    assert relations({"only": np.arange(50.0)}) == []
