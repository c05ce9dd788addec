from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpidash.core.insights import Factors, Insight, InsightType, Ranked, magnitude_of, significance_of
from kpidash.core.insights.model import json_safe, slice_label

AT = datetime(2024, 6, 30, tzinfo=UTC)


def make(**kw: object) -> Insight:
    fields: dict[str, object] = {"type": InsightType.CHANGE, "kpi_id": "revenue",
                                 "text": "Revenue rose", "at": AT, "significance": 0.9,
                                 "magnitude": 0.5, "slice": (("region", "EU"),),
                                 "period": "2024-06-29T00:00:00+00:00",
                                 "discriminator": "day:week_ago"}
    fields.update(kw)
    return Insight(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- key

def test_key_is_16_hex_digits_and_stable() -> None:
    a, b = make(), make()
    assert a.key == b.key and len(a.key) == 16
    int(a.key, 16)  # hex


def test_key_ignores_text_time_factors_and_facts() -> None:
    base = make().key
    assert make(text="other words").key == base
    assert make(at=AT + timedelta(days=3)).key == base
    assert make(significance=0.1, magnitude=0.2).key == base
    assert make(facts={"value": 1.0}).key == base


@pytest.mark.parametrize("change", [
    {"type": InsightType.TREND},
    {"kpi_id": "churn"},
    {"kpi_id": None},
    {"slice": ()},
    {"slice": (("region", "US"),)},
    {"slice": (("country", "EU"),)},
    {"period": "2024-06-30T00:00:00+00:00"},
    {"period": None},
    {"discriminator": "day:previous"},
], ids=["type", "kpi", "kpi-none", "no-slice", "slice-value", "slice-dim", "period",
        "period-none", "discriminator"])
def test_key_changes_with_identity_fields(change: dict[str, object]) -> None:
    assert make(**change).key != make().key


# ---------------------------------------------------------------- validation and facts

@pytest.mark.parametrize("field", ["significance", "magnitude"])
@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan])
def test_factors_outside_unit_interval_raise(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        make(**{field: value})


def test_bounds_zero_and_one_are_allowed() -> None:
    make(significance=0.0, magnitude=1.0)
    make(significance=1.0, magnitude=0.0)


def test_naive_at_raises() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make(at=datetime(2024, 6, 30))


def test_facts_are_json_safe() -> None:
    ins = make(facts={
        "nan": math.nan, "inf": -math.inf, "np_nan": np.float64("nan"),
        "np_float": np.float64(1.5), "np_int": np.int64(3), "np_bool": np.bool_(True),
        "when": datetime(2024, 6, 29, 12, tzinfo=UTC), "pair": (1, math.nan),
        "nested": {"x": np.float32(0.25), 7: "seven"}, "text": "ok", "none": None,
        "array": np.array([1.0, np.nan]),
    })
    f = ins.facts
    assert f["nan"] is None and f["inf"] is None and f["np_nan"] is None
    assert f["np_float"] == 1.5 and type(f["np_float"]) is float
    assert f["np_int"] == 3 and type(f["np_int"]) is int
    assert f["np_bool"] is True
    assert f["when"] == "2024-06-29T12:00:00+00:00"
    assert f["pair"] == [1, None]
    assert f["nested"] == {"x": 0.25, "7": "seven"}
    assert f["array"] == [1.0, None]
    # strict JSON (no NaN) round-trips
    assert json.loads(json.dumps(ins.to_dict(), allow_nan=False))["facts"] == dict(f)


def test_json_safe_leaves_plain_values() -> None:
    assert json_safe({"a": [1, "b", None, True]}) == {"a": [1, "b", None, True]}


def test_to_dict_shape() -> None:
    d = make(facts={"value": 1.0}).to_dict()
    assert d == {"key": make().key, "type": "change", "kpi_id": "revenue",
                 "slice": {"region": "EU"}, "period": "2024-06-29T00:00:00+00:00",
                 "text": "Revenue rose", "at": "2024-06-30T00:00:00+00:00",
                 "facts": {"value": 1.0}, "significance": 0.9, "magnitude": 0.5}


def test_non_utc_at_is_kept_as_given() -> None:
    cet = timezone(timedelta(hours=2))
    assert make(at=datetime(2024, 6, 30, 2, tzinfo=cet)).to_dict()["at"] == \
        "2024-06-30T02:00:00+02:00"


def test_slice_label() -> None:
    assert slice_label((("region", "EU"), ("plan", "pro"))) == "region=EU, plan=pro"
    assert slice_label(()) == ""


# ---------------------------------------------------------------- factors

def test_factors_score_is_the_product() -> None:
    f = Factors(significance=0.9, weight=2.0, magnitude=0.5, recency=0.25, novelty=0.5,
                affinity=1.5)
    # 0.9 × 2 × 0.5 × 0.25 × 0.5 × 1.5 = 0.16875
    assert f.score == pytest.approx(0.16875)
    assert f.to_dict() == {"significance": 0.9, "weight": 2.0, "magnitude": 0.5,
                           "recency": 0.25, "novelty": 0.5, "affinity": 1.5}
    r = Ranked(make(), f, 3)
    assert r.score == f.score
    d = r.to_dict()
    assert d["rank"] == 3 and d["score"] == pytest.approx(0.16875)
    assert d["factors"] == f.to_dict() and d["key"] == make().key


@given(st.lists(st.floats(0, 2, allow_nan=False), min_size=6, max_size=6))
def test_factors_score_is_zero_when_any_factor_is(xs: list[float]) -> None:
    f = Factors(*xs)
    assert f.score == pytest.approx(math.prod(xs))
    assert Factors(0.0, *xs[1:]).score == 0.0


# ---------------------------------------------------------------- magnitude, significance

@pytest.mark.parametrize(("rel", "expected"), [
    (0.10, math.tanh(1.0)),   # 0.7616
    (-0.10, math.tanh(1.0)),  # sign does not matter
    (0.05, math.tanh(0.5)),   # 0.4621
    (0.02, math.tanh(0.2)),   # 0.1974
    (0.30, math.tanh(3.0)),   # 0.9951
    (0.0, 0.0),
    (math.inf, 1.0),
    (math.nan, 1.0),
])
def test_magnitude_of(rel: float, expected: float) -> None:
    assert magnitude_of(rel) == pytest.approx(expected)


def test_magnitude_of_scale() -> None:
    assert magnitude_of(0.25, scale=0.25) == pytest.approx(math.tanh(1.0))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_magnitude_in_unit_interval(x: float) -> None:
    assert 0.0 <= magnitude_of(x) <= 1.0


@pytest.mark.parametrize(("p", "expected"), [
    (0.0, 1.0), (0.05, 0.95), (1.0, 0.0), (None, 0.0), (math.nan, 0.0), (1.5, 0.0), (-0.5, 1.0),
])
def test_significance_of(p: float | None, expected: float) -> None:
    assert significance_of(p) == pytest.approx(expected)
