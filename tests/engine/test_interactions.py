"""Recording user interactions through the engine (real DuckDB file, SaaS pack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.errors import NotFound, QueryError
from kpidash.packs import load_pack
from kpidash.store import open_store

NOW = datetime(2024, 3, 1, tzinfo=UTC)


def test_records_with_the_clock_and_reads_back_oldest_first(engine: Engine,
                                                            clock: FixedClock) -> None:
    engine.record_interaction("ana", "open_dashboard", role="analyst")
    clock.advance(timedelta(minutes=5))
    engine.record_interaction("ana", "apply_filter", kpi_id="revenue",
                              filters={"region": ["NA", "EU"], "plan": "pro"}, role="analyst")
    engine.record_interaction("bo", "view_kpi", kpi_id="customer_churn_rate",
                              at=NOW - timedelta(hours=1))
    got = engine.interactions()
    assert [(i["user"], i["kind"]) for i in got] == [
        ("bo", "view_kpi"), ("ana", "open_dashboard"), ("ana", "apply_filter")]
    assert got[1] == {"user": "ana", "role": "analyst", "kind": "open_dashboard",
                      "kpi_id": None, "filters": {}, "at": NOW}
    assert got[2]["filters"] == {"plan": ["pro"], "region": ["EU", "NA"]}
    assert got[2]["at"] == NOW + timedelta(minutes=5)
    assert [i["kind"] for i in engine.interactions(user="ana")] == [
        "open_dashboard", "apply_filter"]
    assert [i["user"] for i in engine.interactions(since=NOW)] == ["ana", "ana"]


def test_unknown_kpi_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match="unknown KPI 'nope'"):
        engine.record_interaction("ana", "view_kpi", kpi_id="nope")
    assert engine.interactions() == []


def test_filters_must_use_dimensions_of_the_kpi(engine: Engine) -> None:
    with pytest.raises(QueryError, match="has no dimension 'plan'"):
        engine.record_interaction("ana", "apply_filter", kpi_id="leads",
                                  filters={"plan": ["pro"]})
    # a ratio KPI is checked through its inputs, as a query is
    with pytest.raises(QueryError, match="no dimension 'plan'"):
        engine.record_interaction("ana", "apply_filter", kpi_id="conversion_rate",
                                  filters={"plan": "pro"})
    engine.record_interaction("ana", "apply_filter", kpi_id="conversion_rate",
                              filters={"region": "EU"})
    # without a KPI, some KPI must have the dimension
    engine.record_interaction("ana", "open_dashboard", filters={"plan": "pro"})
    with pytest.raises(QueryError, match="no KPI has dimension 'colour'"):
        engine.record_interaction("ana", "open_dashboard", filters={"colour": "red"})
    assert len(engine.interactions()) == 2


@pytest.mark.parametrize(("user", "kind", "filters", "message"), [
    ("ana", "", None, "needs a kind"),
    ("ana", "  ", None, "needs a kind"),
    ("", "view_kpi", None, "needs the user"),
    ("ana", "apply_filter", {"region": []}, "one or more non-empty"),
    ("ana", "apply_filter", {"region": [""]}, "one or more non-empty"),
])
def test_bad_interactions_are_refused(engine: Engine, user: str, kind: str,
                                      filters: dict[str, list[str]] | None,
                                      message: str) -> None:
    with pytest.raises(QueryError, match=message):
        engine.record_interaction(user, kind, kpi_id="revenue", filters=filters)
    assert engine.interactions() == []


def test_naive_time_is_refused(engine: Engine) -> None:
    with pytest.raises(QueryError, match="timezone-aware"):
        engine.record_interaction("ana", "view_kpi", kpi_id="revenue", at=datetime(2024, 3, 1))


def test_interactions_survive_a_restart_and_stay_in_their_workspace(tmp_path: Path,
                                                                   clock: FixedClock) -> None:
    path = str(tmp_path / "usage.duckdb")
    e = Engine(open_store(path), clock)
    e.register(load_pack("saas"))
    e.record_interaction("ana", "view_kpi", kpi_id="mrr", role="analyst")
    e.close()
    e = Engine(open_store(path), clock)
    try:
        assert [(i["user"], i["kpi_id"], i["at"]) for i in e.interactions()] == [
            ("ana", "mrr", NOW)]
    finally:
        e.close()
    other = Engine(open_store(path), clock, workspace="acme")
    try:
        assert other.interactions() == []
    finally:
        other.close()
