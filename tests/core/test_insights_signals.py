from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from kpidash.core.drivers import contributions
from kpidash.core.insights import InsightType
from kpidash.core.insights.signals import (
    MIN_RECORD_HISTORY,
    anomaly_insight,
    record_insight,
    trend_insights,
)
from kpidash.core.insights.wording import rate
from kpidash.core.trend import series_breaks, series_trend
from kpidash.model import KPI, Grain, Series

REVENUE = KPI(id="revenue", name="Revenue", unit="$")
CHURN = KPI(id="churn", name="Churn", unit="%", higher_is_better=False)


def daily(values: np.ndarray | list[float], start: str = "2024-01-01",
          kpi_id: str = "revenue") -> Series:
    p = np.datetime64(start, "us") + np.arange(len(values)) * np.timedelta64(1, "D")
    labels = tuple(f"{d}T00:00:00+00:00" for d in p.astype("datetime64[D]").astype(str))
    return Series(kpi_id, Grain.DAY, "UTC", p, np.asarray(values, dtype=np.float64), None,
                  labels)


# ---------------------------------------------------------------- trends

def test_rising_series_gives_a_trend_insight() -> None:
    rng = np.random.default_rng(7)
    s = daily(100 + 2 * np.arange(60) + rng.normal(0, 3, 60))  # 1 Jan … 29 Feb 2024
    t = series_trend(s, REVENUE)
    got = trend_insights(REVENUE, s, t, 60, series_breaks(s, REVENUE))
    assert len(got) == 1
    ins = got[0]
    assert ins.type is InsightType.TREND and ins.discriminator == "day:trend"
    assert t.slope_pct is not None and t.p_value is not None
    total = t.slope_pct / 100 * 60  # ≈ 1.29 % a day × 60 ≈ 77 %
    assert ins.text == (f"Revenue has been rising over the last 60 days, about "
                        f"+{t.slope_pct:.2g}% per day ({round(100 * total)}% over the period)"
                        " — good news")
    assert ins.text.startswith("Revenue has been rising over the last 60 days, about +1.3% "
                               "per day")
    assert ins.significance == pytest.approx(1 - t.p_value)
    assert ins.magnitude == pytest.approx(math.tanh(total / 0.10))
    assert ins.at == datetime(2024, 3, 1, tzinfo=UTC)  # the end of the last day
    assert ins.period == "2024-02-29T00:00:00+00:00"
    assert ins.facts["window_periods"] == 60 and ins.facts["label"] == "rising"


def test_a_rising_churn_trend_is_worth_a_look() -> None:
    rng = np.random.default_rng(7)
    s = daily(100 + 2 * np.arange(60) + rng.normal(0, 3, 60), kpi_id="churn")
    got = trend_insights(CHURN, s, series_trend(s, CHURN), 60, series_breaks(s, CHURN))
    assert got[0].text.endswith(" — worth a look")


def test_noise_gives_no_trend_insight() -> None:
    rng = np.random.default_rng(11)
    s = daily(100 + rng.normal(0, 3, 60))
    t = series_trend(s, REVENUE)
    assert str(t.label) == "no significant trend"
    assert trend_insights(REVENUE, s, t, 60, series_breaks(s, REVENUE)) == []


def test_a_recent_change_of_course_is_reported() -> None:
    # flat at 100 for 95 days, then +2 a day for 25 days (1 Jan … 29 Apr 2024); the default
    # horizon is a quarter of the 120-day window: breaks from day 90 on
    rng = np.random.default_rng(3)
    y = np.r_[np.full(95, 100.0), 100 + 2 * np.arange(1, 26)] + rng.normal(0, 1, 120)
    s = daily(y)
    b = series_breaks(s, REVENUE, season_length=0)
    brk = b.significant[0]
    assert 92 <= brk.index <= 96
    got = [i for i in trend_insights(REVENUE, s, series_trend(s, REVENUE), 120, b)
           if i.discriminator == "day:break"]
    assert len(got) == 1
    ins = got[0]
    level = float(np.median(y))
    label = s.labels[brk.index]
    assert ins.period == label
    assert ins.text.startswith("Revenue changed course on ")
    assert (f": from {rate(100 * brk.slope_before / level)} to "
            f"{rate(100 * brk.slope_after / level)} per day") in ins.text
    assert ins.text.endswith(" — good news")
    assert ins.significance == pytest.approx(1 - brk.p_value)
    # a quarter of the window (30 days) at the new slope, relative to the level
    change = (brk.slope_after - brk.slope_before) * 30 + brk.jump
    assert ins.magnitude == pytest.approx(math.tanh(change / level / 0.10))
    # an old break (outside the last 10 periods) is not news
    old = [i for i in trend_insights(REVENUE, s, series_trend(s, REVENUE), 120, b,
                                     recent_breaks=10) if i.discriminator == "day:break"]
    assert old == []


def test_empty_series_gives_nothing() -> None:
    s = daily([])
    t = series_trend(daily([1.0, 2.0, 3.0]), REVENUE)
    b = series_breaks(daily([1.0, 2.0, 3.0]), REVENUE)
    assert trend_insights(REVENUE, s, t, 3, b) == []


# ---------------------------------------------------------------- records

def test_record_high() -> None:
    # 39 days between 100 and 138, then 150 on the 40th (9 Feb 2024)
    s = daily([100.0 + i for i in range(39)] + [150.0])
    ins = record_insight(REVENUE, s)
    assert ins is not None and ins.type is InsightType.RECORD
    assert ins.text == ("Revenue reached its highest level in 40 days on Fri 9 Feb 2024: $150 "
                        "(previous high $138) — good news")
    assert ins.significance == pytest.approx(1 - 1 / 40)
    assert ins.magnitude == pytest.approx(math.tanh((150 - 138) / 138 / 0.05))
    assert ins.facts == {"value": 150.0, "previous_record": 138.0, "kind": "high",
                         "window_periods": 40, "period": "2024-02-09T00:00:00+00:00"}
    assert ins.discriminator == "day:high"
    assert ins.at == datetime(2024, 2, 10, tzinfo=UTC)


def test_record_low_of_churn_is_good_news() -> None:
    s = daily([5.0 + 0.01 * i for i in range(35)] + [4.0], kpi_id="churn")
    ins = record_insight(CHURN, s)
    assert ins is not None
    assert ins.text == ("Churn reached its lowest level in 36 days on Mon 5 Feb 2024: 4% "
                        "(previous low 5%) — good news")
    assert ins.facts["kind"] == "low" and ins.discriminator == "day:low"


def test_record_high_of_churn_is_worth_a_look() -> None:
    s = daily([5.0] * 35 + [6.0], kpi_id="churn")
    ins = record_insight(CHURN, s)
    assert ins is not None and ins.text.endswith("(previous high 5%) — worth a look")


def test_no_record() -> None:
    # inside the range
    assert record_insight(REVENUE, daily([100.0 + i for i in range(39)] + [120.0])) is None
    # equal to the old high is not a record
    assert record_insight(REVENUE, daily([100.0 + i for i in range(39)] + [138.0])) is None
    # too little history: 29 past days
    short = [100.0 + i for i in range(MIN_RECORD_HISTORY - 1)] + [500.0]
    assert record_insight(REVENUE, daily(short)) is None
    # 30 past days is enough
    assert record_insight(REVENUE, daily([*short[:-1], 100.0 + 29, 500.0])) is not None
    # the last period is missing
    assert record_insight(REVENUE, daily([100.0 + i for i in range(39)] + [math.nan])) is None
    assert record_insight(REVENUE, daily([math.nan] * 40)) is None


def test_record_counts_only_finite_history_within_the_window() -> None:
    # 400 days: an old peak of 1000 on day 0 is outside the 365-day window
    v = [1000.0] + [100.0] * 398 + [200.0]
    ins = record_insight(REVENUE, daily(v))
    assert ins is not None
    assert ins.facts["window_periods"] == 365 and ins.facts["previous_record"] == 100.0
    # gaps do not count as history
    v = [100.0] * 20 + [math.nan] * 20 + [200.0]
    assert record_insight(REVENUE, daily(v)) is None


# ---------------------------------------------------------------- anomalies

ANOMALY = {"actual": 150.0, "expected": 100.0, "lo": 80.0, "hi": 120.0, "score": 0.9,
           "severity": "critical", "kind": "spike", "favourable": True}
AT = datetime(2024, 6, 30, tzinfo=UTC)


def test_anomaly_insight_text_with_expected_range() -> None:
    ins = anomaly_insight(REVENUE, ANOMALY, Grain.DAY, AT, label="2024-06-29T00:00:00+00:00")
    assert ins.type is InsightType.ANOMALY
    assert ins.text == ("Revenue was unusually high on Sat 29 Jun 2024: $150 vs $80–$120 "
                        "expected (critical spike) — good news")
    assert ins.significance == 0.9
    assert ins.magnitude == pytest.approx(math.tanh(5.0))  # +50 %
    assert ins.facts == {**ANOMALY, "period": "2024-06-29T00:00:00+00:00"}
    assert ins.discriminator == "day:anomaly" and ins.at == AT


def test_anomaly_insight_low_churn_and_drivers_clause() -> None:
    a = {"actual": 2.0, "expected": 5.0, "lo": 4.0, "hi": 6.0, "score": 1.7,
         "severity": "warning", "kind": "dip"}
    d = contributions("region", ["EU", "US"], [3.0, 2.0], [0.5, 1.5])  # EU −2.5 of −3
    ins = anomaly_insight(CHURN, a, Grain.DAY, AT, label="2024-06-29",
                          slice_=(("plan", "pro"),), drivers=d)
    assert ins.text == ("Churn was unusually low on Sat 29 Jun 2024: 2% vs 4%–6% expected "
                        "(warning dip); EU accounts for most of the drop — good news")
    assert ins.significance == 1.0  # a score above 1 is clipped
    assert ins.facts["drivers"]["top"] == "EU"
    assert ins.facts["drivers"]["top_share"] == pytest.approx(2.5 / 3)
    assert ins.facts["favourable"] is None and ins.slice == (("plan", "pro"),)


def test_anomaly_without_score_is_neutral() -> None:
    a = {k: v for k, v in ANOMALY.items() if k != "score"}
    ins = anomaly_insight(REVENUE, a, Grain.DAY, AT, label="2024-06-29")
    assert ins.significance == 0.5 and ins.facts["score"] is None
