from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kpidash.core.drivers import (
    Concentration,
    Decomposition,
    MixRate,
    concentration,
    contributions,
    explained_by,
    mix_rate,
)

NAN = math.nan


def _json(obj: Decomposition | MixRate | Concentration) -> str:
    return json.dumps(obj.to_dict(), allow_nan=False)


# ---------------------------------------------------------------------------------------------
# contributions
# ---------------------------------------------------------------------------------------------

def test_contributions_eu_carries_80_percent_of_a_drop() -> None:
    #            before  after  change  share of −100   percent
    #   EU         500    420    −80       0.8          −80/500 = −16 %
    #   NA         300    270    −30       0.3          −30/300 = −10 %
    #   APAC       200    210    +10      −0.1          +10/200 =  +5 %
    #   total     1000    900   −100
    dec = contributions("region", ["EU", "NA", "APAC"], [500, 300, 200], [420, 270, 210])
    assert (dec.dimension, dec.total_before, dec.total_after, dec.total_change) == \
        ("region", 1000.0, 900.0, -100.0)
    assert [c.label for c in dec.contributions] == ["EU", "NA", "APAC"]
    eu, na, apac = dec.contributions
    assert (eu.before, eu.after, eu.change) == (500.0, 420.0, -80.0)
    assert eu.share_of_change == pytest.approx(0.8)
    assert na.share_of_change == pytest.approx(0.3)
    assert apac.share_of_change == pytest.approx(-0.1)
    assert eu.percent_change == pytest.approx(-16.0)
    assert na.percent_change == pytest.approx(-10.0)
    assert apac.percent_change == pytest.approx(5.0)
    assert [c.label for c in dec.drivers] == ["EU", "NA"]
    assert [c.label for c in dec.detractors] == ["APAC"]
    # "EU accounts for 80 % of the drop"; EU + NA carry 110 % (APAC offsets 10 %).
    assert explained_by(dec) == pytest.approx(0.8)
    assert explained_by(dec, top=2) == pytest.approx(1.1)
    assert explained_by(dec, top=10) == pytest.approx(1.1)
    assert math.fsum(c.change for c in dec.contributions) == dec.total_change


def test_contributions_nan_counts_as_zero_new_slice_has_no_percent() -> None:
    #   LATAM: no data before (NaN → 0), 50 after → change +50, percent undefined
    #   EU: 100 → 100, change 0, percent 0 %
    #   US: 40 → no data after (NaN → 0) → change −40, percent −100 %
    #   total 140 → 150, change +10: LATAM share 5.0, US share −4.0, EU share 0
    dec = contributions("region", ["US", "EU", "LATAM"], [40, 100, NAN], [NAN, 100, 50])
    assert (dec.total_before, dec.total_after, dec.total_change) == (140.0, 150.0, 10.0)
    assert [c.label for c in dec.contributions] == ["LATAM", "US", "EU"]
    latam, us, eu = dec.contributions
    assert (latam.before, latam.change, latam.percent_change) == (0.0, 50.0, None)
    assert latam.share_of_change == pytest.approx(5.0)
    assert us.after == 0.0 and us.percent_change == pytest.approx(-100.0)
    assert eu.change == 0.0 and eu.percent_change == 0.0 and eu.share_of_change == 0.0
    # EU did not move, so it is neither driver nor detractor.
    assert [c.label for c in dec.drivers] == ["LATAM"]
    assert [c.label for c in dec.detractors] == ["US"]
    d = json.loads(_json(dec))
    assert d["contributions"][0] == {"label": "LATAM", "before": 0.0, "after": 50.0, "change": 50.0,
                                     "share_of_change": 5.0, "percent_change": None}
    assert d["drivers"] == ["LATAM"] and d["detractors"] == ["US"]


def test_contributions_zero_total_change_has_no_shares_and_no_drivers() -> None:
    # A +30, B −30: the total does not move, so shares are undefined and nothing "drives" it.
    dec = contributions("plan", ["A", "B"], [10, 50], [40, 20])
    assert dec.total_change == 0.0
    assert all(c.share_of_change is None for c in dec.contributions)
    assert dec.drivers == () and dec.detractors == ()
    assert math.isnan(explained_by(dec))


def test_contributions_ties_are_ordered_by_label() -> None:
    dec = contributions("d", ["c", "a", "b"], [0, 0, 0], [5, -5, 5])
    assert [c.label for c in dec.contributions] == ["a", "b", "c"]
    assert [c.label for c in dec.drivers] == ["b", "c"]


def test_contributions_empty_dimension() -> None:
    dec = contributions("d", [], [], [])
    assert dec.contributions == () and dec.total_change == 0.0


def test_contributions_errors_are_named() -> None:
    with pytest.raises(ValueError, match=r"before must have shape \(2,\)"):
        contributions("d", ["a", "b"], [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"labels must be unique, but \['a'\]"):
        contributions("d", ["a", "a"], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="after contains an infinite value"):
        contributions("d", ["a"], [1], [math.inf])
    with pytest.raises(ValueError, match="top must be at least 1"):
        explained_by(contributions("d", ["a"], [1], [2]), top=0)


positive = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.tuples(st.lists(positive, min_size=n, max_size=n),
                        st.lists(positive, min_size=n, max_size=n))))
def test_contributions_sum_to_total_change(data: tuple[list[float], list[float]]) -> None:
    before, after = data
    labels = [f"s{i}" for i in range(len(before))]
    dec = contributions("d", labels, before, after)
    scale = max([1.0, *before, *after])
    assert math.isclose(math.fsum(c.change for c in dec.contributions), dec.total_change,
                        rel_tol=1e-12, abs_tol=1e-12 * scale)
    assert dec.total_change == pytest.approx(sum(after) - sum(before), abs=1e-9 * scale)
    mags = [abs(c.change) for c in dec.contributions]
    assert mags == sorted(mags, reverse=True)
    assert set(dec.drivers).isdisjoint(dec.detractors)
    if abs(dec.total_change) > 1e-6 * scale:  # shares are ill-conditioned near a zero total
        assert math.fsum(c.share_of_change or 0.0 for c in dec.contributions) == \
            pytest.approx(1.0, abs=1e-6)
    _json(dec)


# ---------------------------------------------------------------------------------------------
# mix_rate
# ---------------------------------------------------------------------------------------------

def test_mix_rate_pure_mix_and_pure_rate_segments() -> None:
    # conversion = orders / visits
    #              visits  orders  weight  rate  │  visits  orders  weight  rate
    #   mobile       100      10     0.5   0.10  │    300      30    0.75   0.10   (rate same, weight up)
    #   desktop      100       0     0.5   0.00  │    100      20    0.25   0.20   (rate up from 0)
    #   R0 = 10/200 = 0.05                       │  R1 = 50/400 = 0.125      change = 0.075
    # mobile : mix = (0.75 − 0.5)·0.10 = 0.025   rate = 0.75·(0.10 − 0.10) = 0    → pure mix
    # desktop: mix = (0.25 − 0.5)·0.00 = 0       rate = 0.25·(0.20 − 0.00) = 0.05 → pure rate
    mr = mix_rate("device", ["mobile", "desktop"], [10, 0], [100, 100], [30, 20], [300, 100])
    assert mr.rate_before == pytest.approx(0.05)
    assert mr.rate_after == pytest.approx(0.125)
    assert mr.change == pytest.approx(0.075)
    assert mr.mix_effect == pytest.approx(0.025)
    assert mr.rate_effect == pytest.approx(0.05)
    desktop, mobile = mr.segments
    assert desktop.label == "desktop" and mobile.label == "mobile"
    assert (mobile.weight_before, mobile.weight_after) == (0.5, 0.75)
    assert mobile.rate_before == pytest.approx(0.1) and mobile.rate_after == pytest.approx(0.1)
    assert mobile.mix == pytest.approx(0.025) and mobile.rate == pytest.approx(0.0)
    assert desktop.mix == pytest.approx(0.0) and desktop.rate == pytest.approx(0.05)
    assert desktop.total == pytest.approx(0.05)


def test_mix_rate_textbook_with_scale_percent() -> None:
    #        num/den before  rate  w0  │ num/den after  rate  w1
    #   A       30/100        30 %  .5  │    60/150      40 %  .75
    #   B       10/100        10 %  .5  │     5/50       10 %  .25
    #   R0 = 100·40/200 = 20 %          │ R1 = 100·65/200 = 32.5 %     change = 12.5 points
    # A: mix = .25·30 = 7.5   rate = .75·10 = 7.5   total 15
    # B: mix = −.25·10 = −2.5 rate = .25·0  = 0     total −2.5
    # mix effect 5 + rate effect 7.5 = 12.5
    mr = mix_rate("plan", ["B", "A"], [10, 30], [100, 100], [5, 60], [50, 150], scale=100)
    assert mr.rate_before == pytest.approx(20.0) and mr.rate_after == pytest.approx(32.5)
    assert mr.change == pytest.approx(12.5)
    assert mr.mix_effect == pytest.approx(5.0) and mr.rate_effect == pytest.approx(7.5)
    a, b = mr.segments
    assert a.label == "A" and [a.mix, a.rate, a.total] == pytest.approx([7.5, 7.5, 15.0])
    assert b.label == "B" and [b.mix, b.rate, b.total] == pytest.approx([-2.5, 0.0, -2.5])


def test_mix_rate_new_and_vanished_segments_are_pure_mix() -> None:
    #        before num/den  rate  w0  │ after num/den  rate   w1
    #   A        10/100       .1   .5  │    20/100       .2    .5
    #   B        30/100       .3   .5  │   NaN/NaN     (.3)    0     vanished: r1 := r0
    #   C         0/0        (.4)   0  │    40/100       .4    .5    new:      r0 := r1
    #   D       NaN/NaN        –    0  │   NaN/NaN        –     0    absent in both
    #   R0 = 40/200 = .2               │ R1 = 60/200 = .3            change = .1
    # A: mix 0,             rate .5·(.2 − .1) = .05
    # B: mix (0 − .5)·.3 = −.15, rate 0
    # C: mix (.5 − 0)·.4 = .2,   rate 0
    # D: 0, 0
    mr = mix_rate("region", ["A", "B", "C", "D"], [10, 30, 0, NAN], [100, 100, 0, NAN],
                  [20, NAN, 40, NAN], [100, NAN, 100, NAN])
    assert mr.change == pytest.approx(0.1)
    assert mr.mix_effect == pytest.approx(0.05) and mr.rate_effect == pytest.approx(0.05)
    assert [s.label for s in mr.segments] == ["C", "B", "A", "D"]
    c, b, a, d = mr.segments
    assert (c.weight_before, c.weight_after, c.rate_before) == (0.0, 0.5, None)
    assert c.rate_after == pytest.approx(0.4)
    assert c.mix == pytest.approx(0.2) and c.rate == 0.0
    assert (b.weight_after, b.rate_after) == (0.0, None)
    assert b.mix == pytest.approx(-0.15) and b.rate == 0.0
    assert a.mix == pytest.approx(0.0) and a.rate == pytest.approx(0.05)
    assert (d.rate_before, d.rate_after, d.mix, d.rate, d.total) == (None, None, 0.0, 0.0, 0.0)
    seg = json.loads(_json(mr))["segments"][0]
    assert seg["label"] == "C" and seg["rate_before"] is None


def test_mix_rate_errors_are_named() -> None:
    with pytest.raises(ValueError, match=r"total denominator is 0 in period\(s\) before and after"):
        mix_rate("d", ["a"], [0], [0], [NAN], [NAN])
    with pytest.raises(ValueError, match=r"total denominator is 0 in period\(s\) before of"):
        mix_rate("d", ["a"], [0], [0], [1], [10])
    with pytest.raises(ValueError, match=r"den_after must not be negative, but it is for \['b'\]"):
        mix_rate("d", ["a", "b"], [1, 1], [2, 2], [1, 1], [2, -2])
    with pytest.raises(ValueError, match=r"num_before is non-zero where den_before is 0 or missing "
                                         r"\(for \['a'\]\)"):
        mix_rate("d", ["a", "b"], [3, 1], [0, 2], [1, 1], [2, 2])
    with pytest.raises(ValueError, match=r"num_after is NaN where den_after is positive"):
        mix_rate("d", ["a"], [1], [2], [NAN], [2])
    with pytest.raises(ValueError, match=r"num_after must have shape \(2,\)"):
        mix_rate("d", ["a", "b"], [1, 1], [2, 2], [1], [2, 2])
    with pytest.raises(ValueError, match="scale must be a finite number"):
        mix_rate("d", ["a"], [1], [2], [1], [2], scale=math.nan)


den_value = st.one_of(st.floats(min_value=0.01, max_value=1e5), st.just(NAN), st.just(0.0))
num_value = st.floats(min_value=0.0, max_value=1e5)


@st.composite
def ratio_inputs(draw: st.DrawFn) -> tuple[list[float], ...]:
    n = draw(st.integers(min_value=1, max_value=10))
    out = []
    for _ in range(2):
        den = draw(st.lists(den_value, min_size=n, max_size=n))
        num = [draw(num_value) if d > 0 else draw(st.sampled_from([0.0, NAN])) for d in den]
        out += [num, den]
    return tuple(out)


@settings(max_examples=300, deadline=None)
@given(ratio_inputs(), st.sampled_from([1.0, 100.0]))
def test_mix_plus_rate_equals_change(data: tuple[list[float], ...], scale: float) -> None:
    nb, db, na, da = data
    assume(np.nansum(db) > 0 and np.nansum(da) > 0)
    labels = [f"s{i}" for i in range(len(nb))]
    mr = mix_rate("d", labels, nb, db, na, da, scale=scale)
    tol = 1e-9 * max(1.0, abs(mr.rate_before), abs(mr.rate_after),
                     *(abs(s.rate_before or 0) + abs(s.rate_after or 0) for s in mr.segments))
    assert math.isclose(mr.mix_effect + mr.rate_effect, mr.change, abs_tol=tol)
    assert math.isclose(math.fsum(s.total for s in mr.segments), mr.change, abs_tol=tol)
    assert math.isclose(sum(s.weight_before for s in mr.segments), 1.0, abs_tol=1e-9)
    assert math.isclose(sum(s.weight_after for s in mr.segments), 1.0, abs_tol=1e-9)
    for s in mr.segments:
        if s.rate_before is None or s.rate_after is None:  # new/vanished/absent: pure mix
            assert s.rate == 0.0
    totals = [abs(s.total) for s in mr.segments]
    assert totals == sorted(totals, reverse=True)
    _json(mr)


# ---------------------------------------------------------------------------------------------
# concentration
# ---------------------------------------------------------------------------------------------

def test_concentration_hand_computed() -> None:
    # shares 50/100 = .5, 30/100 = .3, 20/100 = .2;  HHI = .25 + .09 + .04 = .38
    c = concentration("channel", ["paid", "organic", "email"], [30, 50, 20])
    assert (c.top_label, c.top_share, c.total) == ("organic", 0.5, 100.0)
    assert c.hhi == pytest.approx(0.38)
    assert [(s.label, s.share) for s in c.shares] == [("organic", 0.5), ("paid", 0.3),
                                                      ("email", 0.2)]
    assert c.concentrated()  # 0.5 ≥ 0.5
    assert not c.concentrated(0.6)
    d = json.loads(_json(c))
    assert d["top_label"] == "organic" and d["shares"][0] == {"label": "organic", "value": 50.0,
                                                              "share": 0.5}


def test_concentration_bounds_and_ties() -> None:
    # four equal slices: HHI = 4·(1/4)² = 1/4 = 1/n (lowest); top is the first label
    even = concentration("d", ["d", "b", "c", "a"], [25, 25, 25, 25])
    assert even.hhi == pytest.approx(0.25) and even.top_label == "a"
    assert not even.concentrated()
    # one slice holds everything (NaN = no data = 0): HHI = 1 (highest)
    one = concentration("d", ["a", "b", "c"], [0, 7, NAN])
    assert (one.top_label, one.top_share, one.hhi) == ("b", 1.0, 1.0)


def test_concentration_errors_are_named() -> None:
    with pytest.raises(ValueError, match=r"non-negative values.*negative values for \['b'\]"):
        concentration("d", ["a", "b"], [1, -1])
    with pytest.raises(ValueError, match=r"needs a positive total.*sums to 0"):
        concentration("d", ["a", "b"], [0, NAN])
    with pytest.raises(ValueError, match="needs a positive total"):
        concentration("d", [], [])
    with pytest.raises(ValueError, match="threshold must be a share between 0 and 1"):
        concentration("d", ["a"], [1]).concentrated(50)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=20))
def test_concentration_hhi_bounds(values: list[float]) -> None:
    assume(sum(values) > 0)
    c = concentration("d", [f"s{i}" for i in range(len(values))], values)
    n = len(values)
    assert 1.0 / n - 1e-12 <= c.hhi <= 1.0 + 1e-12
    assert math.isclose(math.fsum(s.share for s in c.shares), 1.0, abs_tol=1e-12)
    shares = [s.share for s in c.shares]
    assert shares == sorted(shares, reverse=True)
    assert c.top_share == shares[0] >= 1.0 / n - 1e-12
    _json(c)
