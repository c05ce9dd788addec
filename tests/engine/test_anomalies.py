from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from kpidash import demo
from kpidash.clock import FixedClock
from kpidash.engine import Engine

END = date(2024, 6, 30)
DemoEngine = Callable[..., tuple[Engine, demo.DemoData]]  # the make_demo_engine fixture


def test_demo_incidents_found_stored_once_and_stable(tmp_path: Path,
                                                    make_demo_engine: DemoEngine) -> None:
    clock = FixedClock(datetime(2024, 7, 1, tzinfo=UTC))
    e, data = make_demo_engine(tmp_path / "a.duckdb", 730, clock)
    spike = next(i for i in data.manifest["incidents"] if i["kind"] == "spike")
    drop = next(i for i in data.manifest["incidents"] if i["kind"] == "drop")

    churn = e.detect_anomalies("churned_customers", "day")
    days = {a["timestamp"][:10] for a in churn.found}
    assert spike["start"] in days
    assert churn.new == len(churn.found)

    by_region = e.detect_anomalies("revenue", "day", group_by="region")
    eu = {a["timestamp"][:10] for a in by_region.found if a["slice"] == "region=EU"}
    assert drop["start"] in eu
    first = [a for a in by_region.found if a["slice"] == "region=EU"]
    assert all(not a["favourable"] for a in first if a["timestamp"][:10] == drop["start"])

    # detecting again stores nothing new; a new day of data leaves earlier findings alone
    assert e.detect_anomalies("churned_customers", "day").new == 0
    e.ingest_table(demo.generate_days(END + timedelta(days=1), END + timedelta(days=1)))
    clock.advance(timedelta(days=1))
    again = e.detect_anomalies("churned_customers", "day")
    old = [a for a in again.found if a["timestamp"][:10] <= str(END)]
    assert old == churn.found
    stored = e.anomalies("churned_customers")
    assert len(stored) == len(again.found)
    assert {r["slice"] for r in e.anomalies("revenue")} >= {"region=EU"}
    e.close()


def test_the_open_period_is_not_scored(tmp_path: Path,
                                       make_demo_engine: DemoEngine) -> None:
    clock = FixedClock(datetime(2024, 6, 30, 12, tzinfo=UTC))  # the 30th is half over
    e, _ = make_demo_engine(tmp_path / "b.duckdb", 120, clock)
    found = e.detect_anomalies("signups", "day").found
    assert all(a["timestamp"][:10] < str(END) for a in found)
    e.close()
