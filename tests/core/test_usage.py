"""Affinity factors and filter-usage suggestions from hand-made interaction lists."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kpidash.core.insights.model import InsightType
from kpidash.core.usage import (
    affinity,
    canonical_filters,
    filter_affinity,
    filters_json,
    suggestions,
)

NOW = datetime(2024, 3, 1, tzinfo=UTC)
D = timedelta(days=1)


def act(user: str, kind: str, kpi_id: str | None = "revenue", *, ago: timedelta = D,
        filters: dict[str, Any] | None = None, role: str | None = "analyst") -> dict[str, Any]:
    return {"user": user, "role": role, "kind": kind, "kpi_id": kpi_id,
            "filters": filters or {}, "at": NOW - ago}


def view(user: str, kpi_id: str, ago: timedelta = D, role: str | None = "analyst",
         ) -> dict[str, Any]:
    return act(user, "view_kpi", kpi_id, ago=ago, role=role)


def applied(user: str, kpi_id: str, filters: dict[str, Any], ago: timedelta = D,
            ) -> dict[str, Any]:
    return act(user, "apply_filter", kpi_id, ago=ago, filters=filters)


# -- canonical filters ------------------------------------------------------------------------


def test_canonical_filters_sort_dimensions_and_values() -> None:
    assert canonical_filters({"region": ["NA", "EU", "NA"], "plan": "pro"}) == {
        "plan": ["pro"], "region": ["EU", "NA"]}
    assert list(canonical_filters({"z": ["1"], "a": ["2"]})) == ["a", "z"]
    assert filters_json({"region": ["NA", "EU"]}) == filters_json({"region": ("EU", "NA")}) == (
        '{"region":["EU","NA"]}')
    assert filters_json(None) == "{}"


# -- affinity ---------------------------------------------------------------------------------


def test_affinity_is_one_plus_the_share_when_all_at_now() -> None:
    rows = [view("ana", "a", timedelta(0)), view("ana", "a", timedelta(0)),
            applied("ana", "b", {"region": ["EU"]}, timedelta(0))]
    assert affinity(rows, "ana", now=NOW) == pytest.approx({"a": 1 + 2 / 3, "b": 1 + 1 / 3})


def test_affinity_weighs_by_recency_with_the_half_life() -> None:
    # a view one half-life ago weighs half of one now: shares 2/3 and 1/3
    rows = [view("ana", "a", timedelta(0)), view("ana", "b", timedelta(days=14))]
    assert affinity(rows, "ana", now=NOW) == pytest.approx({"a": 1 + 2 / 3, "b": 1 + 1 / 3})
    got = affinity(rows, "ana", now=NOW, half_life=timedelta(days=7))  # two half-lives
    assert got == pytest.approx({"a": 1 + 4 / 5, "b": 1 + 1 / 5})


def test_affinity_only_counts_the_user_views_and_filters() -> None:
    rows = [view("ana", "a"), view("bo", "b"),
            act("ana", "open_dashboard", None), act("ana", "export", "c"),
            {**view("ana", "future"), "at": NOW + D}]
    assert affinity(rows, "ana", now=NOW) == {"a": 2.0}
    assert affinity(rows, "cy", now=NOW) == {}
    assert affinity([], "ana", now=NOW) == {}


def test_affinity_factors_stay_in_one_to_two() -> None:
    rng = random.Random(7)
    rows = [view("ana", rng.choice("abcde"), timedelta(hours=rng.randrange(2000)))
            for _ in range(200)]
    got = affinity(rows, "ana", now=NOW)
    assert all(1.0 <= f <= 2.0 for f in got.values())
    assert sum(got.values()) == pytest.approx(len(got) + 1)


def test_filter_affinity_per_dimension_value() -> None:
    rows = [applied("ana", "a", {"region": ["EU"]}, timedelta(0)),
            applied("ana", "a", {"region": ["EU", "NA"], "plan": ["pro"]}, timedelta(0)),
            view("ana", "a", timedelta(0)),  # no filters: not counted
            applied("bo", "a", {"region": ["APAC"]}, timedelta(0))]
    assert filter_affinity(rows, "ana", now=NOW) == pytest.approx({
        ("plan", "pro"): 1.5, ("region", "EU"): 2.0, ("region", "NA"): 1.5})
    old = [applied("ana", "a", {"region": ["EU"]}, timedelta(0)),
           applied("ana", "a", {"region": ["NA"]}, timedelta(days=14))]
    assert filter_affinity(old, "ana", now=NOW) == pytest.approx({
        ("region", "EU"): 1 + 2 / 3, ("region", "NA"): 1 + 1 / 3})


def test_affinity_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="half_life"):
        affinity([], "ana", now=NOW, half_life=timedelta(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        affinity([], "ana", now=datetime(2024, 3, 1))


# -- suggestions: save a filter ---------------------------------------------------------------


EU = {"region": ["EU"]}


def test_repeated_filter_suggests_saving_it_as_default() -> None:
    rows = [applied("ana", "revenue", EU, timedelta(days=d)) for d in (1, 3, 5, 6)]
    rows.append(applied("ana", "revenue", {"region": "NA"}, timedelta(days=2)))
    [ins] = suggestions(rows, "ana", now=NOW, names={"revenue": "Revenue"})
    assert ins.type is InsightType.FILTER_USAGE and ins.kpi_id == "revenue"
    assert ins.text == ("Save region=EU as your default filter for Revenue: you applied it 4 "
                        "times in the last 14 days.")
    assert ins.significance == pytest.approx(1 - 0.5 ** 2)
    assert ins.magnitude == pytest.approx(0.4)
    assert ins.at == NOW - D
    assert ins.discriminator == '{"region":["EU"]}'
    assert ins.facts == {"suggestion": "save_filter", "uses": 4,
                         "first_use": (NOW - 6 * D).isoformat(),
                         "last_use": (NOW - D).isoformat(), "filters": EU, "window_days": 14.0}


def test_filter_sets_are_compared_canonically_and_multi_value_sets_read_plainly() -> None:
    rows = [applied("ana", "revenue", {"region": ["NA", "EU"], "plan": "pro"}),
            applied("ana", "revenue", {"plan": ["pro"], "region": ["EU", "NA"]}),
            applied("ana", "revenue", {"region": ["EU", "NA", "EU"], "plan": ["pro"]})]
    [ins] = suggestions(rows, "ana", now=NOW)
    assert ins.text.startswith("Save plan=pro and region=EU or NA as your default filter for "
                               "revenue:")
    assert ins.facts["uses"] == 3 and ins.significance == pytest.approx(0.5)


def test_filter_suggestion_needs_min_uses_inside_the_window() -> None:
    rows = [applied("ana", "revenue", EU, timedelta(days=d)) for d in (1, 2, 20)]
    assert suggestions(rows, "ana", now=NOW) == []
    assert len(suggestions(rows, "ana", now=NOW, window=timedelta(days=30))) == 1
    assert len(suggestions(rows, "ana", now=NOW, min_uses=2)) == 1
    # uses by someone else or of other kinds do not count
    rows += [applied("bo", "revenue", EU), act("ana", "view_kpi", filters=EU),
             act("ana", "save_filter", filters=EU)]
    assert suggestions(rows, "ana", now=NOW) == []


def test_already_saved_default_suppresses_the_suggestion() -> None:
    rows = [applied("ana", "revenue", EU, timedelta(days=d)) for d in (1, 2, 3)]
    assert suggestions(rows, "ana", now=NOW, saved={"revenue": {"region": ["EU"]}}) == []
    # a different saved set, or one saved for another KPI, does not
    assert len(suggestions(rows, "ana", now=NOW, saved={"revenue": {"region": ["NA"]}})) == 1
    assert len(suggestions(rows, "ana", now=NOW, saved={"mrr": EU})) == 1


def test_significance_and_magnitude_grow_with_uses() -> None:
    rows = [applied("ana", "revenue", EU, timedelta(hours=h)) for h in range(1, 13)]
    [ins] = suggestions(rows, "ana", now=NOW)
    assert ins.significance == pytest.approx(1 - 0.5 ** 10) and ins.magnitude == 1.0


# -- suggestions: peers watch a KPI -----------------------------------------------------------


def test_peers_with_the_same_role_suggest_a_kpi() -> None:
    rows = [view("ana", "revenue"), view("bo", "churn", 2 * D), view("bo", "churn", D),
            view("cy", "churn", 3 * D), view("dee", "churn", D, role="sales"),
            view("bo", "revenue")]
    [ins] = suggestions(rows, "ana", now=NOW, names={"churn": "Churn Rate"})
    assert ins.kpi_id == "churn"
    assert ins.text == ("Analysts also watch Churn Rate: 2 other analysts viewed it 3 times in "
                        "the last 14 days.")
    assert ins.significance == pytest.approx(2 / 3) and ins.magnitude == pytest.approx(0.4)
    assert ins.at == NOW - D
    assert ins.facts == {"suggestion": "peers_watch", "role": "analyst", "watchers": 2,
                         "views": 3, "last_view": (NOW - D).isoformat(), "window_days": 14.0}


def test_peer_suggestion_needs_two_watchers_in_the_window_and_a_kpi_the_user_skipped() -> None:
    rows = [view("ana", "revenue"), view("bo", "churn"), view("bo", "churn"),
            view("cy", "churn", 30 * D)]
    assert suggestions(rows, "ana", now=NOW) == []
    rows.append(view("cy", "churn"))
    assert [i.kpi_id for i in suggestions(rows, "ana", now=NOW)] == ["churn"]
    # viewed by the user in the window: nothing to suggest; viewed only long ago: suggested
    assert suggestions([*rows, view("ana", "churn", 2 * D)], "ana", now=NOW) == []
    assert len(suggestions([*rows, view("ana", "churn", 20 * D)], "ana", now=NOW)) == 1


def test_role_comes_from_the_latest_interaction_or_the_argument() -> None:
    peers = [view("bo", "churn", role="sales"), view("cy", "churn", role="sales"),
             view("dee", "mrr"), view("eve", "mrr")]
    rows = [view("ana", "revenue", 5 * D, role="analyst"),
            view("ana", "revenue", 2 * D, role="sales"),
            act("ana", "open_dashboard", None, role=None), *peers]
    assert [i.kpi_id for i in suggestions(rows, "ana", now=NOW)] == ["churn"]
    assert [i.kpi_id for i in suggestions(rows, "ana", now=NOW, role="analyst")] == ["mrr"]
    # a user without any role gets no peer suggestions
    assert suggestions([view("ana", "revenue", role=None), *peers], "ana", now=NOW) == []


def test_plural_roles_read_plainly() -> None:
    rows = [view("bo", "churn", role="Company Secretary"),
            view("cy", "churn", role="Company Secretary")]
    [ins] = suggestions(rows, "ana", now=NOW, role="Company Secretary")
    assert ins.text.startswith("Company secretaries also watch churn: 2 other company "
                               "secretaries viewed it 2 times")


# -- ordering and determinism -----------------------------------------------------------------


def test_suggestions_are_ordered_and_deterministic() -> None:
    rows = [*(applied("ana", "revenue", EU, timedelta(hours=h)) for h in range(1, 4)),
            *(applied("ana", "mrr", {"plan": ["pro"]}, timedelta(hours=h)) for h in range(1, 4)),
            *(applied("ana", "arpu", EU, timedelta(hours=h)) for h in range(1, 6)),
            view("bo", "churn"), view("cy", "churn"), view("dee", "churn")]
    got = suggestions(rows, "ana", now=NOW)
    assert [(i.kpi_id, round(i.significance, 4)) for i in got] == [
        ("arpu", 0.875), ("churn", 0.75), ("mrr", 0.5), ("revenue", 0.5)]
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        again = suggestions(shuffled, "ana", now=NOW)
        assert [i.to_dict() for i in again] == [i.to_dict() for i in got]
    assert len({i.key for i in got}) == len(got)


def test_suggestion_keys_are_stable_per_filter_set() -> None:
    a = suggestions([applied("ana", "revenue", EU, timedelta(hours=h)) for h in (1, 2, 3)],
                    "ana", now=NOW)
    b = suggestions([applied("ana", "revenue", EU, timedelta(days=d)) for d in (1, 2, 3, 4)],
                    "ana", now=NOW + D)
    c = suggestions([applied("ana", "revenue", {"region": ["NA"]}, timedelta(hours=h))
                     for h in (1, 2, 3)], "ana", now=NOW)
    assert a[0].key == b[0].key != c[0].key


def test_suggestions_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_uses"):
        suggestions([], "ana", now=NOW, min_uses=0)
    with pytest.raises(ValueError, match="window"):
        suggestions([], "ana", now=NOW, window=timedelta(0))
