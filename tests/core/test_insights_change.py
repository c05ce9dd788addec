from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from kpidash.core.drivers import concentration, contributions, mix_rate
from kpidash.core.insights import InsightType
from kpidash.core.insights.change import (
    MIN_HISTORY,
    change_insights,
    concentration_insight,
    drivers_insight,
    judge,
    period_end,
)
from kpidash.model import KPI, Grain, Series

REVENUE = KPI(id="revenue", name="Revenue", unit="$")
CHURN = KPI(id="churn", name="Churn", unit="%", higher_is_better=False)
SQRT2 = math.sqrt(2.0)


def series(values: list[float], starts: list[str] | None = None, *, grain: Grain = Grain.DAY,
           start: str = "2024-06-03", step_days: int = 1, kpi_id: str = "revenue") -> Series:
    """Periods from explicit ISO dates, or ``start`` + i × ``step_days``."""
    if starts is None:
        p = np.datetime64(start, "us") + np.arange(len(values)) * np.timedelta64(step_days, "D")
    else:
        p = np.array([np.datetime64(s, "us") for s in starts])
    labels = tuple(f"{d}T00:00:00+00:00" for d in p.astype("datetime64[D]").astype(str))
    return Series(kpi_id, grain, "UTC", p.astype("datetime64[us]"),
                  np.asarray(values, dtype=np.float64), None, labels)


def month_starts(first_year: int, n: int, months_per_step: int = 1) -> list[str]:
    out = []
    for i in range(n):
        m = i * months_per_step
        out.append(f"{first_year + m // 12}-{m % 12 + 1:02d}-01")
    return out


# A daily history that starts on Monday 3 June 2024. Each day is compared with the same
# weekday a week before (lag 7):
#   idx  day         value   vs idx   move
#   0-6  3-9 Jun     1000
#   7    Mon 10 Jun  1010    0        +0.01
#   8    Tue 11 Jun  1020    1        +0.02
#   9    Wed 12 Jun  1030    2        +0.03
#   10   Thu 13 Jun   990    3        −0.01
#   11   Fri 14 Jun  1000    4         0
#   12   Sat 15 Jun  1020    5        +0.02
#   13   Sun 16 Jun  1010    6        +0.01
#   14   Mon 17 Jun  1010    7 (1010)  0
#   15   Tue 18 Jun   999.6  8 (1020) −0.02   ← the last complete day at 19 Jun 12:00
#   16   Wed 19 Jun     5    9 (1030)         ← still running at 19 Jun 12:00
# past moves (idx 7-14): −.01 0 0 .01 .01 .02 .02 .03 → median 0.01
# |move − median|:        .02 .01 .01 0 0 .01 .01 .02 → MAD 0.01, spread 1.4826 × 0.01
# z = (−0.02 − 0.01) / 0.014826 = −2.0235; significance = erf(2.0235/√2) ≈ 0.957
DAILY = [1000.0] * 7 + [1010, 1020, 1030, 990, 1000, 1020, 1010, 1010, 999.6, 5]
NOON_19 = datetime(2024, 6, 19, 12, tzinfo=UTC)


def test_daily_change_vs_same_weekday_a_week_before() -> None:
    got = change_insights(REVENUE, series(DAILY), NOON_19)
    assert len(got) == 1  # a daily series is compared with a week before only
    ins = got[0]
    assert ins.type is InsightType.CHANGE and ins.kpi_id == "revenue"
    assert ins.text == ("Revenue fell 2.0% on Tue 18 Jun 2024 vs the same day a week before, "
                        "to $999.6 — worth a look")
    z = (-0.02 - 0.01) / (1.4826 * 0.01)
    assert ins.significance == pytest.approx(math.erf(abs(z) / SQRT2))
    assert ins.significance == pytest.approx(0.957, abs=1e-3)
    # unusual part = −0.02 − 0.01 = −0.03 → tanh(0.03 / 0.10)
    assert ins.magnitude == pytest.approx(math.tanh(0.3))
    f = ins.facts
    assert f["value"] == 999.6 and f["reference"] == "week_ago"
    assert f["reference_value"] == 1020.0
    assert f["change"] == pytest.approx(-20.4)
    assert f["change_pct"] == pytest.approx(-2.0)
    assert f["favourable"] is False and f["past_moves"] == 8
    assert f["typical_move_pct"] == pytest.approx(1.0)
    assert f["unusual_part_pct"] == pytest.approx(-3.0)
    assert f["grain"] == "day" and f["period"] == "2024-06-18T00:00:00+00:00"
    # about the instant the day ended; identified by its period and comparison
    assert ins.at == datetime(2024, 6, 19, tzinfo=UTC)
    assert ins.period == "2024-06-18T00:00:00+00:00"
    assert ins.discriminator == "day:week_ago"


def test_daily_drop_of_churn_is_good_news() -> None:
    ins = change_insights(CHURN, series(DAILY, kpi_id="churn"), NOON_19)[0]
    assert ins.text == ("Churn fell 2.0% on Tue 18 Jun 2024 vs the same day a week before, "
                        "to 999.6% — good news")
    assert ins.facts["favourable"] is True


def test_only_complete_periods_are_used() -> None:
    # at 19 Jun 12:00 the 19th is still running (value 5): the 18th is reported
    assert change_insights(REVENUE, series(DAILY), NOON_19)[0].period == "2024-06-18T00:00:00+00:00"
    # once the 19th has ended it is the current day: 5 vs 1030 on Wed 12 Jun
    ins = change_insights(REVENUE, series(DAILY), datetime(2024, 6, 20, tzinfo=UTC))[0]
    assert ins.period == "2024-06-19T00:00:00+00:00"
    assert ins.facts["change_pct"] == pytest.approx(100 * (5 - 1030) / 1030)
    # before the first day has ended nothing is complete
    assert change_insights(REVENUE, series(DAILY), datetime(2024, 6, 3, 12, tzinfo=UTC)) == []


def test_short_history_is_neutral_and_uses_the_whole_move() -> None:
    # 15 days: Mon 17 Jun (1111) vs Mon 10 Jun (1010) = +0.10; only 7 past moves (< 8)
    v = [*DAILY[:14], 1111.0]
    ins = change_insights(REVENUE, series(v), datetime(2024, 6, 18, tzinfo=UTC))[0]
    assert ins.facts["past_moves"] == MIN_HISTORY - 1
    assert ins.significance == 0.5
    assert ins.magnitude == pytest.approx(math.tanh(1.0))  # tanh(0.10 / 0.10)
    assert ins.facts["unusual_part_pct"] == pytest.approx(10.0)
    assert ins.text.startswith("Revenue rose 10% on Mon 17 Jun 2024 vs the same day")
    assert ins.text.endswith("to $1,111 — good news")


def test_tiny_moves_say_nothing() -> None:
    # +0.4 % vs the same weekday (1020 → 1024.08) is below the 0.5 % floor
    v = [*DAILY[:15], 1024.08]
    assert change_insights(REVENUE, series(v), datetime(2024, 6, 19, tzinfo=UTC)) == []
    # +0.6 % is reported
    v = [*DAILY[:15], 1026.12]
    assert len(change_insights(REVENUE, series(v), datetime(2024, 6, 19, tzinfo=UTC))) == 1


def test_no_reference_no_insight() -> None:
    # the same weekday a week before is missing, or zero
    v = list(DAILY[:16])
    v[8] = math.nan
    assert change_insights(REVENUE, series(v), NOON_19) == []
    v[8] = 0.0
    assert change_insights(REVENUE, series(v), NOON_19) == []
    # the current day is missing
    v = list(DAILY[:16])
    v[15] = math.nan
    assert change_insights(REVENUE, series(v), NOON_19) == []
    # fewer than 8 days: nothing to compare with
    assert change_insights(REVENUE, series(DAILY[:7]), NOON_19) == []


def test_week_grain_compares_with_the_week_before_only() -> None:
    # 60 weeks from Mon 1 Jan 2024 rising by 1 a week, the last one +10 % (ref 158 → 173.8)
    v = [100.0 + i for i in range(59)] + [173.8]
    s = series(v, grain=Grain.WEEK, start="2024-01-01", step_days=7)
    # week 59 starts on 2024-01-01 + 413 days = Mon 17 Feb 2025; complete at 24 Feb 2025
    got = change_insights(REVENUE, s, datetime(2025, 2, 24, tzinfo=UTC))
    assert [i.discriminator for i in got] == ["week:previous"]  # no year-ago for weeks
    ins = got[0]
    assert ins.text == ("Revenue rose 10% in the week of 17 Feb 2025 vs the week before, "
                        "to $173.8 — good news")
    assert ins.facts["change_pct"] == pytest.approx(10.0)
    # past moves 1/(100+t), t = 0..57, all below 1 %: the 10 % jump stands out
    assert ins.facts["past_moves"] == 58
    assert ins.significance > 0.999


def test_month_grain_adds_year_ago() -> None:
    # Jan 2022 … Jan 2024: 100, 101, …, 123, then 150
    v = [100.0 + i for i in range(24)] + [150.0]
    s = series(v, month_starts(2022, 25), grain=Grain.MONTH)
    got = change_insights(REVENUE, s, datetime(2024, 2, 1, tzinfo=UTC))
    assert [i.discriminator for i in got] == ["month:previous", "month:year_ago"]
    prev, yoy = got
    # vs Dec 2023 (123): +27/123 = 21.95 %
    assert prev.text == ("Revenue rose 22% in January 2024 vs the month before, to $150 "
                         "— good news")
    assert prev.facts["change_pct"] == pytest.approx(100 * 27 / 123)
    # vs Jan 2023 (112): +38/112 = 33.9 %
    assert yoy.text == "Revenue rose 34% in January 2024 vs a year earlier, to $150 — good news"
    assert yoy.facts["reference_value"] == 112.0
    # past yearly moves 12/(88+t), t = 12..23 → 12/100 … 12/111; 12 of them, median the
    # mean of the 6th and 7th: (12/106 + 12/105) / 2; yearly moves use a 0.25 scale
    typical = (12 / 106 + 12 / 105) / 2
    assert yoy.facts["past_moves"] == 12
    assert yoy.facts["typical_move_pct"] == pytest.approx(100 * typical)
    assert yoy.magnitude == pytest.approx(math.tanh((38 / 112 - typical) / 0.25))
    assert prev.key != yoy.key


def test_quarter_grain_adds_year_ago() -> None:
    v = [100.0 + i for i in range(8)] + [130.0]
    s = series(v, month_starts(2022, 9, 3), grain=Grain.QUARTER)  # Q1 2022 … Q1 2024
    got = change_insights(REVENUE, s, datetime(2024, 4, 1, tzinfo=UTC))
    assert [i.discriminator for i in got] == ["quarter:previous", "quarter:year_ago"]
    assert got[0].text.startswith("Revenue rose 21% in Q1 2024 vs the quarter before")  # 23/107
    assert got[1].text.startswith("Revenue rose 25% in Q1 2024 vs a year earlier")  # 26/104


def test_year_grain_is_told_once() -> None:
    # for yearly data the year before *is* a year ago: one sentence, not two
    s = series([100.0, 110.0, 121.0, 150.0], [f"{y}-01-01" for y in range(2021, 2025)],
               grain=Grain.YEAR)
    got = change_insights(REVENUE, s, datetime(2025, 1, 1, tzinfo=UTC))
    assert len(got) == 1
    assert got[0].text == "Revenue rose 24% in 2024 vs the year before, to $150 — good news"


# ---------------------------------------------------------------- judge

def test_judge_robust_z_by_hand() -> None:
    h = np.array([0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08])
    # median 0.04; |h − 0.04| = .04 .03 .02 .01 0 .01 .02 .03 .04 → MAD 0.02
    sig, unusual, n = judge(h, 0.10)
    z = (0.10 - 0.04) / (1.4826 * 0.02)  # 2.0235
    assert n == 9 and unusual == pytest.approx(0.06)
    assert sig == pytest.approx(math.erf(z / SQRT2))


def test_judge_falls_back_to_std_then_to_equality() -> None:
    # MAD is 0 (most moves equal), the standard deviation takes over
    h = np.array([0.01] * 7 + [0.05, -0.03])
    sig, _, _ = judge(h, 0.05)
    assert sig == pytest.approx(math.erf((0.05 - 0.01) / float(np.std(h)) / SQRT2))
    # every past move equal: any other move is certain, the same move is not news
    flat = np.full(9, 0.01)
    assert judge(flat, 0.02)[0] == 1.0
    assert judge(flat, 0.01)[0] == 0.0
    # NaN moves do not count towards the history
    assert judge(np.r_[np.full(7, 0.01), np.nan, np.nan], 0.5) == (0.5, 0.5, 7)


def test_period_end() -> None:
    s = series([1.0, 2.0, 3.0], grain=Grain.WEEK, start="2024-01-01", step_days=7)
    assert period_end(s, 0) == datetime(2024, 1, 8, tzinfo=UTC)
    assert period_end(s, 2) == datetime(2024, 1, 22, tzinfo=UTC)  # one step on
    one = series([1.0], start="2024-01-01")
    assert period_end(one, 0) == datetime(2024, 1, 2, tzinfo=UTC)


# ---------------------------------------------------------------- drivers

# Weekly revenue by region (kpidash.core.drivers.contributions):
#            before  after  change  share of −100
#   EU         500    420    −80       0.8
#   NA         300    270    −30       0.3
#   APAC       200    210    +10      −0.1
#   total     1000    900   −100      (−10 %)
EU_DROP = contributions("region", ["EU", "NA", "APAC"], [500, 300, 200], [420, 270, 210])
WEEKS = [1000.0] * 9 + [900.0]  # ten weeks from Mon 1 Jan 2024, the last −10 %
AFTER_WEEKS = datetime(2024, 3, 11, tzinfo=UTC)


def test_change_with_a_dominant_driver_names_it() -> None:
    s = series(WEEKS, grain=Grain.WEEK, start="2024-01-01", step_days=7)
    ins = change_insights(REVENUE, s, AFTER_WEEKS, drivers=EU_DROP)[0]
    assert ins.text == ("Revenue fell 10% in the week of 4 Mar 2024 vs the week before, to $900"
                        "; EU accounts for most of the drop — worth a look")
    assert ins.facts["drivers"] == {"dimension": "region", "top": "EU", "top_share": 0.8}


def test_change_with_spread_drivers_names_none() -> None:
    # EU −40 of −100 (0.4) is not most of it
    spread = contributions("region", ["EU", "NA", "APAC"], [500, 300, 200], [460, 270, 170])
    s = series(WEEKS, grain=Grain.WEEK, start="2024-01-01", step_days=7)
    ins = change_insights(REVENUE, s, AFTER_WEEKS, drivers=spread)[0]
    assert "accounts for" not in ins.text
    assert ins.facts["drivers"]["top_share"] == pytest.approx(0.4)


def test_change_driver_clause_for_a_rise_and_for_mix_rate() -> None:
    rise = contributions("plan", ["pro", "free"], [600, 400], [700, 410])
    s = series([1000.0] * 9 + [1110.0], grain=Grain.WEEK, start="2024-01-01", step_days=7)
    ins = change_insights(REVENUE, s, AFTER_WEEKS, drivers=rise)[0]
    assert "; pro accounts for most of the rise — good news" in ins.text
    mr = mix_rate("region", ["EU", "US"], [10, 10], [100, 100], [5, 10], [100, 100], scale=100)
    ins = change_insights(REVENUE, s, AFTER_WEEKS, drivers=mr)[0]
    assert "; mostly from rates within each region (EU most)" in ins.text


def test_drivers_insight_for_contributions() -> None:
    ins = drivers_insight(REVENUE, Grain.WEEK, "2024-03-04T00:00:00+00:00", AFTER_WEEKS,
                          EU_DROP, 0.9)
    assert ins is not None and ins.type is InsightType.DRIVERS
    assert ins.text == ("Revenue fell $100 in the week of 4 Mar 2024; by region: "
                        "EU −$80 (80%), NA −$30 (30%); against the move: APAC +$10")
    assert ins.significance == 0.9
    assert ins.magnitude == pytest.approx(math.tanh(1.0))  # −100 / 1000 = −10 %
    assert ins.discriminator == "week:region:contributions"
    assert ins.facts["drivers"] == ["EU", "NA"] and ins.facts["detractors"] == ["APAC"]


def test_drivers_insight_for_a_percent_kpi_speaks_in_points() -> None:
    d = contributions("region", ["EU", "US"], [2.0, 3.0], [2.5, 3.0])
    for unit in ("%", "percent", "pct"):
        kpi = KPI(id="share", name="Share", unit=unit)
        ins = drivers_insight(kpi, Grain.WEEK, "2024-03-04", AFTER_WEEKS, d, 0.5)
        assert ins is not None
        assert ins.text.startswith("Share rose 0.5 pts in the week of 4 Mar 2024; by region: "
                                   "EU +0.5 pts")


def test_drivers_insight_for_mix_rate() -> None:
    # conversion (%) by region:  before EU 10/100 = 10 %, US 10/100 = 10 %  → 10 %
    #                             after  EU  5/100 =  5 %, US 10/100 = 10 % → 7.5 %
    # weights do not move: mix 0; rate EU = 0.5 × (5 − 10) = −2.5, US 0
    mr = mix_rate("region", ["EU", "US"], [10, 10], [100, 100], [5, 10], [100, 100], scale=100)
    kpi = KPI(id="conversion", name="Conversion", unit="%")
    ins = drivers_insight(kpi, Grain.WEEK, "2024-03-04", AFTER_WEEKS, mr, 0.8)
    assert ins is not None
    assert ins.text == ("Conversion moved −2.5 pts in the week of 4 Mar 2024 by region: "
                        "−2.5 pts from rates within each region, 0 pts from the mix between "
                        "them (EU −2.5 pts, US 0 pts)")
    assert ins.magnitude == pytest.approx(math.tanh(2.5))  # −2.5 / 10 = −25 %
    assert ins.discriminator == "week:region:mix_rate"


def test_drivers_insight_none_without_a_change() -> None:
    flat = contributions("region", ["EU", "US"], [1, 2], [1, 2])
    assert drivers_insight(REVENUE, Grain.WEEK, "2024-03-04", AFTER_WEEKS, flat, 1.0) is None
    mr = mix_rate("region", ["EU"], [1], [2], [1], [2])
    assert drivers_insight(REVENUE, Grain.WEEK, "2024-03-04", AFTER_WEEKS, mr, 1.0) is None


# ---------------------------------------------------------------- concentration

def test_concentration_insight_threshold() -> None:
    # shares 600/1000 = 0.6, 0.3, 0.1; even split 1/3 → significance (0.6 − 1/3)/(2/3) = 0.4
    c = concentration("region", ["EU", "US", "APAC"], [600, 300, 100])
    ins = concentration_insight(REVENUE, Grain.MONTH, "2024-06-01", AFTER_WEEKS, c)
    assert ins is not None and ins.type is InsightType.CONCENTRATION
    assert ins.text == ("EU carries 60% of Revenue in June 2024 (by region); the rest is spread "
                        "over 2 other values")
    assert ins.significance == pytest.approx(0.4)
    assert ins.magnitude == pytest.approx(0.3)
    assert ins.discriminator == "month:region"
    # 0.45 stays below the default 0.5 but passes a 0.4 threshold
    c = concentration("region", ["EU", "US", "APAC"], [450, 350, 200])
    assert concentration_insight(REVENUE, Grain.MONTH, "2024-06-01", AFTER_WEEKS, c) is None
    ins = concentration_insight(REVENUE, Grain.MONTH, "2024-06-01", AFTER_WEEKS, c, 0.4)
    assert ins is not None and ins.text.endswith("2 other values")


def test_concentration_of_two_values_is_singular() -> None:
    c = concentration("plan", ["pro", "free"], [900, 100])
    ins = concentration_insight(REVENUE, Grain.MONTH, "2024-06-01", AFTER_WEEKS, c)
    assert ins is not None and ins.text.endswith("over 1 other value")
    assert ins.significance == pytest.approx(0.8)  # (0.9 − 0.5) / 0.5
