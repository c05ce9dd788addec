"""The portfolio view's pure part: ranking rows of one KPI across workspaces, change %,
currencies, and the widget (checked against its JSON Schema)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpidash import schemas
from kpidash.core.portfolio import (
    MissingKpi,
    PortfolioRow,
    RankBy,
    WorkspaceInfo,
    currency_of,
    portfolio_widget,
    rank,
)
from kpidash.errors import ValidationFailed

INSIGHT = {"rank": 1, "key": "0123456789abcdef", "type": "change", "kpi_id": "mrr",
           "slice": {}, "period": "2024-06-01T00:00:00+00:00", "text": "MRR rose 10%.",
           "at": "2024-07-01T00:00:00+00:00", "facts": {"current": 110.0, "previous": 100.0},
           "significance": 0.9, "magnitude": 0.7, "score": 0.5,
           "factors": {"significance": 0.9, "weight": 1.0, "magnitude": 0.7, "recency": 1.0,
                       "novelty": 1.0, "affinity": 1.0}}


def ws(wid: str, currency: str = "USD") -> WorkspaceInfo:
    return WorkspaceInfo(wid, wid.title(), currency, "UTC")


def row(wid: str, value: float | None, previous: float | None = None, *, kpi: str = "mrr",
        unit: str = "$", hib: bool = True, currency: str = "USD",
        **extra: Any) -> PortfolioRow:
    return PortfolioRow(workspace=ws(wid, currency), kpi_id=kpi, title=kpi.upper(), unit=unit,
                        higher_is_better=hib, tz="UTC", period="2024-06-01T00:00:00+00:00",
                        value=value, previous=previous, **extra)


def order(r: Any) -> list[tuple[str, int | None]]:
    return [(x.workspace.id, p) for x, p in zip(r.rows, r.ranks, strict=True)]


# --- ranking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("hib", "rank_by", "expected"), [
    pytest.param(True, "value", ["b", "c", "a"], id="value-higher-is-better-highest-first"),
    pytest.param(False, "value", ["a", "c", "b"], id="value-lower-is-better-lowest-first"),
    # changes: a +100 %, b -50 %, c +10 %
    pytest.param(True, "change", ["a", "c", "b"], id="change-higher-is-better-most-growth"),
    pytest.param(False, "change", ["b", "c", "a"], id="change-lower-is-better-most-decline"),
])
def test_rank_direction(hib: bool, rank_by: str, expected: list[str]) -> None:
    rows = [row("a", 2.0, 1.0, hib=hib), row("b", 50.0, 100.0, hib=hib),
            row("c", 11.0, 10.0, hib=hib)]
    r = rank(rows, rank_by)
    assert r.ranked and not r.notes
    assert order(r) == [(w, i + 1) for i, w in enumerate(expected)]


def test_churn_ranks_lowest_first() -> None:
    rows = [row("acme", 0.05, kpi="churn_rate", unit="%", hib=False),
            row("beta", 0.02, kpi="churn_rate", unit="%", hib=False),
            row("zeta", 0.09, kpi="churn_rate", unit="%", hib=False)]
    assert order(rank(rows)) == [("beta", 1), ("acme", 2), ("zeta", 3)]
    assert rank(rows).currency is None  # a percentage is not money


@pytest.mark.parametrize("permutation", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)],
                         ids=str)
def test_ties_go_to_the_lower_workspace_id_whatever_the_input_order(
        permutation: tuple[int, ...]) -> None:
    rows = [row("d", 5.0), row("b", 5.0), row("c", 7.0), row("a", 5.0)]
    r = rank([rows[i] for i in permutation])
    assert order(r) == [("c", 1), ("a", 2), ("b", 3), ("d", 4)]


def test_rows_that_cannot_be_compared_come_last_without_a_rank() -> None:
    rows = [row("z", 3.0, 1.0), row("y", None, 1.0), row("x", 4.0, 0.0), row("w", None)]
    assert order(rank(rows, "value")) == [("x", 1), ("z", 2), ("w", None), ("y", None)]
    # change: x has previous 0 (no percentage), y and w have no value
    assert order(rank(rows, "change")) == [("z", 1), ("w", None), ("x", None), ("y", None)]


def test_non_finite_numbers_are_missing() -> None:
    r = row("a", math.nan, math.inf, sparkline=(1.0, math.nan, -math.inf), target=math.nan)
    assert (r.value, r.previous, r.target, r.sparkline) == (None, None, None, (1.0, None, None))
    assert r.change is None


@pytest.mark.parametrize(("value", "previous", "change"), [
    (110.0, 100.0, 10.0), (90.0, 100.0, -10.0), (-5.0, -10.0, 50.0), (1.0, 3.0, -66.7),
    (5.0, 0.0, None), (None, 1.0, None), (1.0, None, None),
], ids=["up", "down", "negative-base", "rounded", "from-zero", "no-value", "no-previous"])
def test_change_percent(value: float | None, previous: float | None,
                        change: float | None) -> None:
    w = portfolio_widget("mrr", [row("a", value, previous)], grain="month")
    assert w["data"]["rows"][0]["change"] == change


# --- currencies and units -------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "workspace", "expected"), [
    ("$", "EUR", "EUR"), ("€", "EUR", "EUR"), ("currency", "GBP", "GBP"),
    ("USD", "EUR", "USD"), ("%", "USD", None), ("", "USD", None), ("users", "USD", None),
    ("NPS", "USD", None),
], ids=lambda v: repr(v))
def test_currency_of(unit: str, workspace: str, expected: str | None) -> None:
    assert currency_of(unit, workspace) == expected


def test_mixed_currencies_refuse_a_ranking_by_value_and_say_why() -> None:
    rows = [row("a", 100.0, 90.0, currency="USD"), row("b", 80.0, 100.0, currency="EUR"),
            row("c", 10.0, 5.0, currency="USD")]
    r = rank(rows, "value")
    assert not r.ranked and r.mixed_currency and r.currency is None
    assert order(r) == [("a", None), ("b", None), ("c", None)]
    (note,) = r.notes
    assert "different currencies (EUR, USD)" in note and "rank_by=change" in note


def test_mixed_currencies_still_rank_by_change_with_a_note() -> None:
    rows = [row("a", 100.0, 90.0, currency="USD"), row("b", 80.0, 100.0, currency="EUR"),
            row("c", 10.0, 5.0, currency="USD")]
    r = rank(rows, RankBy.CHANGE)
    assert r.ranked and r.mixed_currency and r.currency is None
    assert order(r) == [("c", 1), ("a", 2), ("b", 3)]
    assert "not comparable as amounts" in r.notes[0]


def test_one_currency_is_the_portfolio_currency() -> None:
    r = rank([row("a", 1.0, currency="EUR"), row("b", 2.0, currency="EUR")])
    assert (r.ranked, r.mixed_currency, r.currency) == (True, False, "EUR")


def test_different_units_refuse_a_ranking_by_value() -> None:
    rows = [row("a", 5.0, 4.0, unit="%", kpi="churn_rate", hib=False),
            row("b", 0.05, 0.04, unit="ratio", kpi="churn_rate", hib=False)]
    r = rank(rows, "value")
    assert not r.ranked and "different units" in r.notes[0]
    assert rank(rows, "change").ranked


def test_disagreeing_directions_refuse_any_ranking() -> None:
    rows = [row("a", 5.0, 4.0, hib=True), row("b", 3.0, 4.0, hib=False)]
    for by in RankBy:
        r = rank(rows, by)
        assert not r.ranked and "disagree" in r.notes[0] and "lower in b" in r.notes[0]


# --- the widget ------------------------------------------------------------------------------


def test_widget_shape_validates_and_is_plain_json() -> None:
    rows = [row("acme", 1234.5678, 1000.0, sparkline=(900.0, None, 1000.0, 1234.5678),
                insight=INSIGHT, target=2000.0),
            row("beta", 0.123456, 0.1)]
    missing = [MissingKpi(ws("zulu"), "mrr"), MissingKpi(ws("alpha"), "mrr")]
    w = portfolio_widget("mrr", rows, missing, grain="month", rank_by="value")
    schemas.validate_widget(w)
    json.dumps(w, allow_nan=False)
    assert (w["type"], w["schema_version"]) == ("portfolio", 1)
    d = w["data"]
    assert {k: d[k] for k in ("kpi_id", "title", "unit", "higher_is_better", "grain", "rank_by",
                              "ranked", "currency", "mixed_currency", "notes")} == {
        "kpi_id": "mrr", "title": "MRR", "unit": "$", "higher_is_better": True,
        "grain": "month", "rank_by": "value", "ranked": True, "currency": "USD",
        "mixed_currency": False, "notes": []}
    first = d["rows"][0]
    assert first == {
        "rank": 1, "workspace": "acme", "workspace_name": "Acme", "currency": "USD",
        "tz": "UTC", "title": "MRR", "unit": "$", "higher_is_better": True, "target": 2000.0,
        "period": "2024-06-01T00:00:00+00:00", "value": 1234.57, "previous": 1000.0,
        "change": 23.5, "direction": "up", "status": "bad", "color": "#d63031",
        "sparkline": [900.0, None, 1000.0, 1234.57], "insight": INSIGHT}
    assert d["rows"][1]["value"] == 0.1235 and d["rows"][1]["status"] == "good"
    assert d["rows"][1]["insight"] is None
    assert d["missing"] == [
        {"workspace": "alpha", "workspace_name": "Alpha",
         "reason": "KPI 'mrr' is not defined in workspace 'alpha'"},
        {"workspace": "zulu", "workspace_name": "Zulu",
         "reason": "KPI 'mrr' is not defined in workspace 'zulu'"}]


def test_widget_without_rows_and_with_disagreeing_rows() -> None:
    empty = portfolio_widget("mrr", [], [MissingKpi(ws("a"), "mrr")], grain="day")
    schemas.validate_widget(empty)
    assert (empty["data"]["title"], empty["data"]["unit"], empty["data"]["rows"]) == (
        "mrr", None, [])
    mixed = portfolio_widget("mrr", [row("a", 1.0, unit="$"), row("b", 2.0, unit="%",
                                                                  hib=False)], grain="day")
    schemas.validate_widget(mixed)
    assert (mixed["data"]["unit"], mixed["data"]["higher_is_better"]) == (None, None)
    assert [r["rank"] for r in mixed["data"]["rows"]] == [None, None]


def test_schema_refuses_a_broken_widget() -> None:
    w = portfolio_widget("mrr", [row("a", 1.0)], grain="month")
    w["data"]["rows"][0]["rank"] = 0
    del w["data"]["missing"]
    with pytest.raises(ValidationFailed) as err:
        schemas.validate_widget(w)
    fields = {i.location.field for i in err.value.report.issues}
    assert fields == {"$.data", "$.data.rows[0].rank"}


@pytest.mark.parametrize(("call", "message"), [
    (lambda: portfolio_widget("mrr", [row("a", 1.0, kpi="arr")], grain="day"),
     "is for KPI 'arr', not 'mrr'"),
    (lambda: portfolio_widget("mrr", [row("a", 1.0)], [MissingKpi(ws("a"), "mrr")],
                              grain="day"), "appears twice"),
    (lambda: portfolio_widget("mrr", [], grain="fortnight"), "grain must be one of"),
    (lambda: rank([], "best"), "rank_by must be one of value, change"),
    (lambda: row("a", 1.0, sparkline=(1.0,) * 31), "at most 30 periods"),
], ids=["other-kpi", "duplicate-workspace", "bad-grain", "bad-rank-by", "long-sparkline"])
def test_bad_input_is_refused_with_a_clear_message(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# --- properties ------------------------------------------------------------------------------

values = st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False))


@given(st.lists(st.tuples(values, values), min_size=0, max_size=8),
       st.booleans(), st.sampled_from(list(RankBy)), st.randoms(use_true_random=False))
def test_ranking_is_a_deterministic_ordered_permutation(
        pairs: list[tuple[float | None, float | None]], hib: bool, by: RankBy,
        rnd: Any) -> None:
    rows = [row(f"w{i:02d}", v, p, hib=hib) for i, (v, p) in enumerate(pairs)]
    r = rank(rows, by)
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert rank(shuffled, by) == r  # input order never matters
    assert sorted(x.workspace.id for x in r.rows) == [x.workspace.id for x in rows]
    ranked = [x for x, p in zip(r.rows, r.ranks, strict=True) if p is not None]
    assert [p for p in r.ranks if p is not None] == list(range(1, len(ranked) + 1))
    keys = [x.value if by is RankBy.VALUE else x.change for x in ranked]
    assert all(k is not None for k in keys)
    better = [k if hib else -k for k in keys if k is not None]
    assert better == sorted(better, reverse=True)
    unranked = [x for x, p in zip(r.rows, r.ranks, strict=True) if p is None]
    assert [x.workspace.id for x in unranked] == sorted(x.workspace.id for x in unranked)
