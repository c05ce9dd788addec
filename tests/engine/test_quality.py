from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from kpidash import demo
from kpidash.engine import Engine
from kpidash.errors import QueryError

END = date(2024, 6, 30)
DemoEngine = Callable[..., tuple[Engine, demo.DemoData]]  # the make_demo_engine fixture


@pytest.fixture(scope="module")
def demo_engine(tmp_path_factory: pytest.TempPathFactory,
                make_demo_engine: DemoEngine) -> Engine:
    path = tmp_path_factory.mktemp("q") / "q.duckdb"
    e, data = make_demo_engine(path, 730)
    e.manifest = data.manifest  # type: ignore[attr-defined]
    return e


def test_quality_finds_the_demo_outliers_and_only_them(demo_engine: Engine) -> None:
    q = demo_engine.quality("revenue")
    found = {(tuple(sorted(s.dims.items())), str(c.ts)[:10]) for s in q.series
             for c in s.result.corrections}
    manifest = demo_engine.manifest  # type: ignore[attr-defined]
    expected = {(tuple(sorted(i["dims"].items())), i["start"]) for i in manifest["incidents"]
                if i["kind"] == "outlier"}
    assert found == expected
    d = q.to_dict()
    assert d["series"] == 48 and d["completeness_pct"] == 100.0
    assert d["issue_counts"] == {"quality.outlier": 3}


def test_quality_reports_the_demo_gap(demo_engine: Engine) -> None:
    d = demo_engine.quality("active_users").to_dict()
    assert d["issue_counts"].get("quality.gap") == 12  # one gap in each of the 12 series
    assert d["completeness_pct"] < 100


def test_apply_keeps_raw_values_revert_restores(tmp_path: Path,
                                                make_demo_engine: DemoEngine) -> None:
    e, _ = make_demo_engine(tmp_path / "c.duckdb", 400)
    before = e.query("revenue", "month")[0].values.copy()
    n = e.apply_corrections("revenue")
    assert n >= 2
    corrected = e.corrections("revenue").to_pylist()
    assert len(corrected) == n
    assert all(r["raw_value"] > 5 * r["value"] and r["correction"] == "hampel_seasonal"
               for r in corrected)
    after = e.query("revenue", "month")[0].values
    assert np.nansum(after) < np.nansum(before)
    # re-running proposes the same corrections from the raw values: nothing stacks
    assert e.quality("revenue").to_dict()["corrections"] == {"proposed": n, "stored": n}
    assert e.revert_corrections("revenue") == n
    np.testing.assert_allclose(e.query("revenue", "month")[0].values, before)
    actions = [r["action"] for r in e.correction_history("revenue").to_pylist()]
    assert actions == ["apply"] * n + ["revert"] * n
    e.close()


def test_points_inside_an_annotation_are_never_corrected(
        tmp_path: Path, make_demo_engine: DemoEngine) -> None:
    e, data = make_demo_engine(tmp_path / "a.duckdb", 400)
    outlier = next(i for i in data.manifest["incidents"] if i["kind"] == "outlier")
    start = datetime.fromisoformat(outlier["start"]).replace(tzinfo=UTC)
    e.annotate("Big deal closed", start, start + timedelta(days=1), kpi_id="revenue")
    q = e.quality("revenue")
    days = {str(c.ts)[:10] for s in q.series for c in s.result.corrections}
    assert outlier["start"] not in days
    e.close()


def test_quality_needs_a_simple_kpi(demo_engine: Engine) -> None:
    with pytest.raises(QueryError, match="computed from churned_customers"):
        demo_engine.quality("customer_churn_rate")
