from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from kpidash import demo
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.packs import load_pack
from kpidash.store import open_store

END = date(2024, 6, 30)


def test_demo_incidents_found_stored_once_and_stable(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2024, 7, 1, tzinfo=UTC))
    e = Engine(open_store(str(tmp_path / "a.duckdb")), clock)
    e.register(load_pack("saas"))
    data = demo.generate(END, days=730)
    e.ingest_table(data.points)
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


def test_the_open_period_is_not_scored(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2024, 6, 30, 12, tzinfo=UTC))  # the 30th is half over
    e = Engine(open_store(str(tmp_path / "b.duckdb")), clock)
    e.register(load_pack("saas"))
    e.ingest_table(demo.generate(END, days=120).points)
    found = e.detect_anomalies("signups", "day").found
    assert all(a["timestamp"][:10] < str(END) for a in found)
    e.close()
