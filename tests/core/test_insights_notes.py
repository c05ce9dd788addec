from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kpidash.core.correlate import Relation
from kpidash.core.insights import InsightType
from kpidash.core.insights.notes import correlation_insight, quality_insights
from kpidash.model import KPI

REVENUE = KPI(id="revenue", name="Revenue", unit="$")
NOW = datetime(2024, 6, 30, 12, tzinfo=UTC)


# ---------------------------------------------------------------- data quality

def test_nothing_to_say_about_clean_data() -> None:
    assert quality_insights(REVENUE, NOW) == []
    # fresh data: 1 day old when a point is expected daily
    assert quality_insights(REVENUE, NOW, last_point=NOW - timedelta(days=1),
                            expected_every=timedelta(days=1)) == []
    # exactly twice the interval is not yet stale
    assert quality_insights(REVENUE, NOW, last_point=NOW - timedelta(days=2),
                            expected_every=timedelta(days=1)) == []


def test_corrections() -> None:
    [ins] = quality_insights(REVENUE, NOW, corrections=3)
    assert ins.type is InsightType.DATA_QUALITY and ins.discriminator == "corrections"
    assert ins.text == ("3 values of Revenue were corrected in the last 7 days (raw values kept; "
                        "see its corrections)")
    assert ins.significance == 1.0 and ins.magnitude == pytest.approx(0.3)  # 3 / 10
    assert ins.facts == {"corrections": 3, "window_days": 7}
    assert ins.at == NOW and ins.period is None
    [one] = quality_insights(REVENUE, NOW, corrections=1, correction_window=timedelta(days=3))
    assert one.text.startswith("1 value of Revenue was corrected in the last 3 days")
    [many] = quality_insights(REVENUE, NOW, corrections=25)
    assert many.magnitude == 1.0


def test_gaps() -> None:
    [ins] = quality_insights(REVENUE, NOW, gaps=6, gap_window=30)
    assert ins.text == ("Revenue has no data for 6 of the last 30 periods; figures over those "
                        "periods are incomplete")
    assert ins.magnitude == pytest.approx(0.6)  # 6 / 30 × 3
    assert ins.discriminator == "gaps"
    [worse] = quality_insights(REVENUE, NOW, gaps=15, gap_window=30)
    assert worse.magnitude == 1.0


def test_stale() -> None:
    last = datetime(2024, 6, 27, 12, tzinfo=UTC)  # 3 days before NOW
    [ins] = quality_insights(REVENUE, NOW, last_point=last, expected_every=timedelta(days=1))
    assert ins.text == ("Revenue has had no new data for 3.0 days (last point 2024-06-27 12:00 "
                        "UTC); its latest figures may be stale")
    assert ins.magnitude == pytest.approx(math.log2(3) / 4)  # 3 × late
    assert ins.facts == {"last_point": "2024-06-27T12:00:00+00:00", "age_hours": 72.0,
                         "expected_every_hours": 24.0}
    assert ins.discriminator == "stale"


def test_stale_time_is_written_in_utc() -> None:
    # the same instant given in UTC+2 reads 12:00 UTC, not 14:00
    last = datetime(2024, 6, 27, 14, tzinfo=timezone(timedelta(hours=2)))
    [ins] = quality_insights(REVENUE, NOW, last_point=last, expected_every=timedelta(days=1))
    assert "(last point 2024-06-27 12:00 UTC)" in ins.text


def test_all_three_at_once_have_distinct_keys() -> None:
    got = quality_insights(REVENUE, NOW, corrections=2, gaps=1,
                           last_point=NOW - timedelta(days=30), expected_every=timedelta(days=1))
    assert [i.discriminator for i in got] == ["corrections", "gaps", "stale"]
    assert len({i.key for i in got}) == 3
    assert got[2].magnitude == 1.0  # 30 × late: log2(30) / 4 > 1


# ---------------------------------------------------------------- correlation

KPIS = {"tickets": KPI(id="tickets", name="Support Tickets"),
        "churn": KPI(id="churn", name="Churn", higher_is_better=False)}


def relation(**kw: object) -> Relation:
    fields: dict[str, object] = {"a": "tickets", "b": "churn", "leader": "tickets",
                                 "follower": "churn", "lag": 14, "r": 0.62, "n": 200,
                                 "p_value": 0.001, "q_value": 0.01, "tests": 10,
                                 "significant": True}
    fields.update(kw)
    return Relation(**fields)  # type: ignore[arg-type]


def test_correlation_leader() -> None:
    ins = correlation_insight(relation(), KPIS, "day", NOW)
    assert ins.type is InsightType.CORRELATION
    assert ins.text == ("Support Tickets leads Churn by 14 days (r = 0.62) — consider tracking "
                        "them together")
    assert ins.kpi_id == "churn"  # about the follower
    assert ins.significance == pytest.approx(0.99)  # 1 − q
    assert ins.magnitude == pytest.approx(0.62 ** 2)
    assert ins.discriminator == "tickets>churn:14"
    assert ins.facts["r"] == 0.62 and ins.facts["lag"] == 14


def test_correlation_inverse_singular_and_unknown_names() -> None:
    ins = correlation_insight(relation(r=-0.5, lag=1), KPIS, "week", NOW)
    assert ins.text == ("Support Tickets inversely leads Churn by 1 week (r = -0.50) — consider "
                        "tracking them together")
    assert ins.magnitude == pytest.approx(0.25)
    ins = correlation_insight(relation(leader="x", follower="y", a="x", b="y"), {}, "day", NOW)
    assert ins.text.startswith("x leads y by 14 days")


def test_correlation_same_day() -> None:
    ins = correlation_insight(relation(lag=0, r=0.8), KPIS, "day", NOW)
    assert ins.text == "Support Tickets and Churn move with each other day to day (r = 0.80)"
    ins = correlation_insight(relation(lag=0, r=-0.8), KPIS, "day", NOW)
    assert ins.text == "Support Tickets and Churn move against each other day to day (r = -0.80)"
    assert ins.discriminator == "tickets>churn:0"


def test_correlation_same_period_uses_the_unit() -> None:
    ins = correlation_insight(relation(lag=0, r=0.8), KPIS, "week", NOW)
    assert ins.text == "Support Tickets and Churn move with each other week to week (r = 0.80)"
