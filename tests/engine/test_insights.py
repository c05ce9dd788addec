"""Insights of the demo data: the injected incidents come out with the right KPI, time and
driver; ranking is deterministic; interactions and digests feed back into the ranking."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kpidash import demo
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.schemas import validate_widget

DemoEngine = Callable[..., tuple[Engine, demo.DemoData]]  # the make_demo_engine fixture


@pytest.fixture(scope="module")
def demo_engine(tmp_path_factory: pytest.TempPathFactory,
                make_demo_engine: DemoEngine) -> tuple[Engine, demo.DemoData]:
    return make_demo_engine(tmp_path_factory.mktemp("ins") / "demo.duckdb", 400)


def incident(data: demo.DemoData, ident: str) -> dict[str, Any]:
    (inc,) = [i for i in data.manifest["incidents"] if i["id"] == ident]
    return inc


def day_after(inc: dict[str, Any], hours: int = 6) -> datetime:
    start = datetime.fromisoformat(inc["start"]).replace(tzinfo=UTC)
    return start + timedelta(days=1, hours=hours)


def test_churn_spike_is_an_unusual_change(demo_engine: tuple[Engine, demo.DemoData]) -> None:
    engine, data = demo_engine
    spike = incident(data, "churn-spike")
    engine.clock = FixedClock(day_after(spike))
    ranked = engine.insights(limit=None)
    anomalies = [r.insight for r in ranked if r.insight.type == "anomaly"]
    churn = [i for i in anomalies if i.kpi_id in ("customer_churn_rate", "churned_customers")]
    assert churn, [i.text for i in anomalies]
    assert all(i.period is not None and i.period.startswith(spike["start"]) for i in churn)
    assert "unusually high" in churn[0].text and "worth a look" in churn[0].text
    # the top five holds the spike (as a change, record or anomaly of churn)
    top = [r.insight for r in ranked[:5]]
    assert any(i.kpi_id == "customer_churn_rate" for i in top)


def test_region_only_revenue_drop_names_its_region(
        demo_engine: tuple[Engine, demo.DemoData]) -> None:
    engine, data = demo_engine
    drop = incident(data, "revenue-drop-eu")
    engine.clock = FixedClock(day_after(drop))
    ranked = engine.insights(limit=None, kpi_ids=["revenue"])
    (anomaly,) = [r.insight for r in ranked if r.insight.type == "anomaly"]
    assert anomaly.period is not None and anomaly.period.startswith(drop["start"])
    assert anomaly.facts["drivers"]["dimension"] == "region"
    assert anomaly.facts["drivers"]["top"] == "EU"
    assert "EU accounts for most of the drop" in anomaly.text
    assert anomaly.facts["actual"] < anomaly.facts["lo"]  # evidence: below the expected band


def test_same_data_and_clock_give_the_same_insights(
        demo_engine: tuple[Engine, demo.DemoData]) -> None:
    engine, _ = demo_engine
    engine.clock = FixedClock(datetime(2024, 6, 1, 6, tzinfo=UTC))
    a = [r.to_dict() for r in engine.insights(limit=None)]
    b = [r.to_dict() for r in engine.insights(limit=None)]
    assert a == b and len(a) > 30
    assert len({d["kpi_id"] for d in a[:5] if d["kpi_id"]}) == len(
        [d for d in a[:5] if d["kpi_id"]])  # diversity: one per KPI in the top five
    for d in a:  # every insight carries its evidence and every factor of its score
        assert d["facts"] and set(d["factors"]) == {
            "significance", "weight", "magnitude", "recency", "novelty", "affinity"}
        product = 1.0
        for f in d["factors"].values():
            product *= f
        assert d["score"] == pytest.approx(product)


def test_interactions_suggest_a_filter_and_shown_insights_decay(tmp_path: Path,
                                                                  make_demo_engine: DemoEngine,
                                                                  ) -> None:
    engine, _ = make_demo_engine(tmp_path / "demo.duckdb", 120)
    now = datetime(2024, 6, 20, 6, tzinfo=UTC)
    engine.clock = FixedClock(now)
    for n in range(4):
        engine.record_interaction("ana", "apply_filter", kpi_id="revenue",
                                  filters={"region": ["EU"]}, role="analyst",
                                  at=now - timedelta(days=n))
    ranked = engine.insights("ana", limit=None)
    (tip,) = [r for r in ranked if r.insight.type == "filter_usage"]
    assert "region=EU" in tip.insight.text and "Revenue" in tip.insight.text
    revenue = [r for r in ranked if r.insight.kpi_id == "revenue"]
    assert revenue and all(r.factors.affinity > 1.0 for r in revenue)
    first = engine.digest("ana", followed=["revenue"], limit=3)
    assert [r.rank for r in first.items] == [1, 2, 3]
    assert all(r.insight.kpi_id == "revenue" for r in first.items)
    again = engine.insights("ana", limit=None, kpi_ids=["revenue"])
    shown = {r.insight.key for r in first.items}
    decayed = [r for r in again if r.insight.key in shown]
    assert decayed and all(r.factors.novelty == 0.5 for r in decayed)
    assert "Your KPI digest" in first.text() and "<ol>" in first.html()


def test_dashboard_carries_a_recommendations_widget(
        demo_engine: tuple[Engine, demo.DemoData]) -> None:
    engine, _ = demo_engine
    engine.clock = FixedClock(datetime(2024, 6, 1, 6, tzinfo=UTC))
    board = engine.dashboard(recommendations=5)
    validate_widget(board)
    (rec,) = [w for w in board["widgets"] if w["type"] == "recommendations"]
    validate_widget(rec)
    assert len(rec["data"]["items"]) == 5
    assert [i["rank"] for i in rec["data"]["items"]] == [1, 2, 3, 4, 5]
