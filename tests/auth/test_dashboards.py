"""Dashboard names and specs (the sharing rules are in test_service)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpidash.auth import check_name, check_spec
from kpidash.errors import InputError

FULL = {"kpis": ["mrr", "churn"],
        "layout": [{"id": "mrr", "x": 0, "y": 0, "w": 6, "h": 4}],
        "filters": {"region": ["EU"]}, "range": {"last": "30d"}, "grain": "week",
        "refresh_interval": 30, "theme": None}


def test_a_full_spec_is_kept() -> None:
    assert check_spec(FULL) == FULL
    assert check_spec({}) == {}


@pytest.mark.parametrize("rng", [{"last": "15min"}, {"last": "12mo"}, {"last": "1y"},
                                 {"from": "2024-01-01T00:00:00+00:00",
                                  "to": "2024-02-01T00:00:00+01:00"}], ids=str)
def test_good_ranges(rng: dict[str, str]) -> None:
    assert check_spec({"range": rng}) == {"range": rng}


@pytest.mark.parametrize(("spec", "match"), [
    ([], "spec must be an object"),
    ({"kpis": [], "colour": 1, "zoom": 2}, "unknown spec key.*colour, zoom"),
    ({"kpis": "mrr"}, "spec.kpis must be a list"),
    ({"layout": [{"id": "a", "x": 0, "y": 0, "w": 0, "h": 1}]}, r"spec.layout\[0\].w .* ≥ 1"),
    ({"layout": [{"id": "a", "x": -1, "y": 0, "w": 1, "h": 1}]}, r"spec.layout\[0\].x .* ≥ 0"),
    ({"layout": [{"id": "a", "x": 0, "y": 0, "w": 1, "h": 1.5}]}, r"spec.layout\[0\].h"),
    ({"layout": [{"id": "a", "x": True, "y": 0, "w": 1, "h": 1}]}, r"spec.layout\[0\].x"),
    ({"layout": [{"id": "a", "x": 0, "y": 0, "w": 1}]}, r"spec.layout\[0\] must have exactly"),
    ({"layout": [{"id": "", "x": 0, "y": 0, "w": 1, "h": 1}]}, r"spec.layout\[0\].id"),
    ({"layout": {"id": "a"}}, "spec.layout must be a list"),
    ({"filters": {"region": "EU"}}, "spec.filters.region must be a list"),
    ({"range": {"last": "30"}}, "spec.range.last"),
    ({"range": {"last": "0d"}}, "spec.range.last"),
    ({"range": {"from": "2024-01-01", "to": "2024-02-01T00:00:00+00:00"}},
     "spec.range.from must be an ISO 8601 time with a UTC offset"),
    ({"range": {"from": "2024-02-01T00:00:00+00:00", "to": "2024-01-01T00:00:00+00:00"}},
     "from must be before"),
    ({"range": {"last": "30d", "from": "x"}}, "spec.range must be"),
    ({"grain": "fortnight"}, "spec.grain must be one of minute, hour"),
    ({"refresh_interval": 1}, "spec.refresh_interval"),
    ({"theme": "neon"}, "spec.theme must be one of .* or null"),
], ids=lambda v: str(v)[:30])
def test_bad_specs_name_the_key(spec: Any, match: str) -> None:
    with pytest.raises(InputError, match=match):
        check_spec(spec)


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, None])
def test_bad_names(name: Any) -> None:
    with pytest.raises(InputError, match="name must be 1–100 characters"):
        check_name(name)


def test_names_are_trimmed() -> None:
    assert check_name("  Sales  ") == "Sales" and check_name("x" * 100) == "x" * 100


cells = st.fixed_dictionaries({"id": st.text(min_size=1, max_size=5),
                               "x": st.integers(0, 50), "y": st.integers(0, 50),
                               "w": st.integers(1, 12), "h": st.integers(1, 12)})


@given(st.lists(cells, max_size=5), st.lists(st.text(min_size=1, max_size=8), max_size=5))
def test_valid_specs_are_fixed_points(layout: list[dict[str, Any]], kpis: list[str]) -> None:
    spec = check_spec({"layout": layout, "kpis": kpis})
    assert check_spec(spec) == spec == {"layout": layout, "kpis": kpis}
