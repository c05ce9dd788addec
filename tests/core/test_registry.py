from __future__ import annotations

from typing import Any

import pytest

from kpidash.core.registry import build_registry, load_registry, parse_yaml, validate_definitions
from kpidash.errors import NotFound, RegistryInvalid
from kpidash.model import KPI, KpiKind
from kpidash.packs import available_packs, load_pack

BASE = {"id": "revenue", "name": "Revenue", "aggregation": "sum"}


def codes(raw: list[Any]) -> list[str]:
    return sorted(i.code for i in validate_definitions(raw)[1].errors)


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param([{**BASE, "colour": "red"}], ["kpi.unknown_field"], id="unknown-field"),
    pytest.param([{**BASE, "weight": "heavy"}], ["kpi.field"], id="wrong-type"),
    pytest.param([{**BASE, "min_value": 10, "max_value": 1}], ["kpi.bounds"], id="min-gt-max"),
    pytest.param([{**BASE, "weight": -1}], ["kpi.weight"], id="negative-weight"),
    pytest.param([BASE, BASE], ["kpi.duplicate_id"], id="duplicate-id"),
    pytest.param([{**BASE, "id": "Bad Id"}], ["kpi.field"], id="bad-id"),
    pytest.param([{**BASE, "aggregation": "median"}], ["kpi.field"], id="unknown-aggregation"),
    pytest.param([{"id": "r", "name": "R", "kind": "ratio", "numerator": "a",
                   "denominator": "b"}], ["kpi.unknown_reference"] * 2, id="ratio-unknown-refs"),
    pytest.param([{"id": "r", "name": "R", "kind": "ratio", "numerator": "revenue"}, BASE],
                 ["kpi.ratio"], id="ratio-missing-denominator"),
    pytest.param([{"id": "d", "name": "D", "kind": "derived", "expression": "x * 2"}],
                 ["kpi.unknown_reference"], id="derived-unknown-ref"),
    pytest.param([{"id": "d", "name": "D", "kind": "derived", "expression": "__import__('os')"}],
                 ["kpi.expression"], id="derived-not-arithmetic"),
    pytest.param([{"id": "a", "name": "A", "kind": "derived", "expression": "b + 1"},
                  {"id": "b", "name": "B", "kind": "derived", "expression": "a * 2"}],
                 ["kpi.cycle"], id="cycle"),
    pytest.param([{"id": "a", "name": "A", "kind": "derived", "expression": "a + 1"}],
                 ["kpi.cycle"], id="self-cycle"),
    pytest.param([{**BASE, "dimensions": ["Region"]}], ["kpi.dimension"], id="bad-dimension"),
    pytest.param([{"id": "m", "name": "M", "aggregation": "mean"},
                  {"id": "r", "name": "R", "kind": "ratio", "numerator": "m",
                   "denominator": "m"}], ["kpi.ratio_input"] * 2, id="ratio-of-means"),
    pytest.param([{**BASE, "expression": "revenue"}], ["kpi.kind"], id="expression-on-simple"),
    pytest.param(["revenue"], ["kpi.shape"], id="not-a-mapping"),
    pytest.param([{**BASE, "forecast_model": "prophet"}], ["kpi.forecast_model"],
                 id="unknown-forecast-model"),
])
def test_each_problem_is_reported(raw: list[Any], expected: list[str]) -> None:
    assert codes(raw) == sorted(expected)


def test_every_problem_is_reported_at_once_with_location() -> None:
    raw = [{**BASE, "colour": "red", "weight": -2, "min_value": 5, "max_value": 1},
           {"id": "x", "name": "X", "kind": "derived", "expression": "nope / 2"}, BASE]
    _, report = validate_definitions(raw, source="kpis.yaml")
    assert len(report.errors) == 3  # unknown field (pydantic stops that KPI), unknown ref, dup
    with pytest.raises(RegistryInvalid) as exc:
        build_registry(raw, source="kpis.yaml")
    text = str(exc.value)
    assert "kpis.yaml" in text and "colour" in text and "nope" in text
    locs = {(i.location.item, i.location.field) for i in exc.value.report.errors}
    assert ("revenue", "colour") in locs and ("x", "expression") in locs


def test_field_errors_of_a_valid_shape_kpi_all_reported() -> None:
    raw = [{**BASE, "weight": -2, "min_value": 5, "max_value": 1}]
    assert codes(raw) == ["kpi.bounds", "kpi.weight"]


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(RegistryInvalid) as exc:
        parse_yaml("kpis:\n  - id: a\n    name: [unclosed\n", source="k.yaml")
    issue = exc.value.report.errors[0]
    assert issue.code == "yaml.syntax" and issue.location.row is not None


def test_yaml_and_python_definitions_agree() -> None:
    text = "kpis:\n  - id: revenue\n    name: Revenue\n    unit: $\n"
    from_yaml = load_registry(text)
    from_python = build_registry([KPI(id="revenue", name="Revenue", unit="$")])
    assert from_yaml.get("revenue") == from_python.get("revenue")


def test_saas_pack_is_valid_and_complete() -> None:
    reg = load_pack("saas")
    expected = {"revenue", "mrr", "arr", "active_customers", "new_customers",
                "churned_customers", "customer_churn_rate", "conversion_rate", "arpa",
                "signups", "active_users", "leads", "conversions"}
    assert expected <= set(reg.kpis)
    churn = reg.get("customer_churn_rate")
    assert churn.kind is KpiKind.RATIO and not churn.higher_is_better
    assert reg.get("arr").expression == "12 * mrr"
    assert all(k.formula for k in reg), "every pack KPI documents its formula"
    assert reg.simple_inputs("arpa") == ("mrr", "active_customers")


def test_packs_are_discovered_through_entry_points() -> None:
    assert "saas" in available_packs()
    with pytest.raises(NotFound, match="no KPI pack named"):
        load_pack("nope")


def test_unknown_kpi_lookup_names_known_ones() -> None:
    with pytest.raises(NotFound, match="revenue"):
        load_pack("saas").get("revenu")


def test_merge_replaces_and_revalidates() -> None:
    reg = load_pack("saas")
    merged = reg.merged(build_registry([{**BASE, "unit": "€"}]))
    assert merged.get("revenue").unit == "€" and len(merged) == len(reg)


@pytest.mark.parametrize(("text", "needle"), [
    pytest.param("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh",
                                                                     strict=True))
        + "kpis: [{id: lol, name: *h}]\n", "aliases", id="billion-laughs"),
    pytest.param("kpis: " + "[" * 5000 + "]" * 5000, "nested too deeply", id="deep"),
    pytest.param("kpis: [!!python/object/apply:os.system [id]]", "constructor", id="python-tag"),
])
def test_hostile_yaml_is_refused_quickly(text: str, needle: str) -> None:
    """Issue 10: YAML bombs and deep nesting are syntax-level refusals, not hangs or 500s."""
    with pytest.raises(RegistryInvalid) as info:
        parse_yaml(text, source="k.yaml")
    [issue] = info.value.report.errors
    assert issue.code == "yaml.syntax" and needle in issue.message


@pytest.mark.parametrize("field", ["min_value", "max_value", "target", "weight",
                                   "anomaly_threshold"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e308])
def test_kpi_numbers_must_be_finite_and_bounded(field: str, bad: float) -> None:
    _kpis, report = validate_definitions([{"id": "k", "name": "K", field: bad}])
    assert not report.ok and field in str(report.errors[0])
