from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpidash.core.insights import Insight, InsightType, RankOptions, rank
from kpidash.model import KPI

NOW = datetime(2024, 6, 30, tzinfo=UTC)
KPIS = {k: KPI(id=k, name=k.title()) for k in ("a", "b", "c", "d", "e", "f")}


def ins(kpi_id: str | None, sig: float = 1.0, mag: float = 1.0, *, at: datetime = NOW,
        disc: str = "") -> Insight:
    return Insight(InsightType.CHANGE, kpi_id, f"{kpi_id} {disc}", at, sig, mag,
                   discriminator=disc or f"{kpi_id}:{sig}:{mag}")


def test_score_is_the_product_of_the_factors() -> None:
    kpis = {"a": KPI(id="a", name="A", weight=2.0)}
    i = ins("a", 0.8, 0.5, at=NOW - timedelta(days=7))
    [r] = rank([i], kpis=kpis, now=NOW, views={i.key: (1, NOW)}, affinity={"a": 1.5})
    f = r.factors
    assert (f.significance, f.weight, f.magnitude) == (0.8, 2.0, 0.5)
    assert f.recency == pytest.approx(0.5)  # one half-life old
    assert f.novelty == 0.5 and f.affinity == 1.5
    # 0.8 × 2 × 0.5 × 0.5 × 0.5 × 1.5 = 0.3
    assert r.score == pytest.approx(0.3)
    assert r.rank == 1 and r.insight is i


@pytest.mark.parametrize(("age", "recency"), [
    (timedelta(0), 1.0), (timedelta(days=7), 0.5), (timedelta(days=14), 0.25),
    (timedelta(days=3.5), 2 ** -0.5), (-timedelta(days=2), 1.0),  # the future is not fresher
])
def test_recency_halves_per_half_life(age: timedelta, recency: float) -> None:
    [r] = rank([ins("a", at=NOW - age)], kpis=KPIS, now=NOW)
    assert r.factors.recency == pytest.approx(recency)


def test_recency_uses_the_half_life_option() -> None:
    opts = RankOptions(half_life=timedelta(days=1))
    [r] = rank([ins("a", at=NOW - timedelta(days=2))], kpis=KPIS, now=NOW, options=opts)
    assert r.factors.recency == pytest.approx(0.25)


@pytest.mark.parametrize(("shown", "novelty"), [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)])
def test_novelty_halves_each_time_shown(shown: int, novelty: float) -> None:
    i = ins("a")
    [r] = rank([i], kpis=KPIS, now=NOW, views={i.key: (shown, NOW)})
    assert r.factors.novelty == novelty


def test_novelty_decay_option_and_other_keys() -> None:
    i = ins("a")
    [r] = rank([i], kpis=KPIS, now=NOW, views={i.key: (2, NOW)},
               options=RankOptions(novelty_decay=0.9))
    assert r.factors.novelty == pytest.approx(0.81)
    [r] = rank([i], kpis=KPIS, now=NOW, views={"someotherkey00000": (5, NOW)})
    assert r.factors.novelty == 1.0


def test_affinity_and_weight_multiply() -> None:
    low, high = ins("a", 0.5), ins("b", 0.5)
    # equal otherwise; affinity 2 for b puts it first
    got = rank([low, high], kpis=KPIS, now=NOW, affinity={"b": 2.0})
    assert [r.insight.kpi_id for r in got] == ["b", "a"]
    assert got[0].score == pytest.approx(2 * got[1].score)
    # KPIs the ranking does not know, and insights about no KPI, weigh 1 with affinity 1
    [r] = rank([ins("zzz")], kpis={}, now=NOW, affinity={"zzz": 1.7})
    assert (r.factors.weight, r.factors.affinity) == (1.0, 1.7)
    [r] = rank([ins(None)], kpis=KPIS, now=NOW, affinity={"a": 2.0})
    assert (r.factors.weight, r.factors.affinity) == (1.0, 1.0)
    heavy = {"a": KPI(id="a", name="A", weight=3.0)}
    [r] = rank([ins("a", 0.5, 0.5)], kpis=heavy, now=NOW)
    assert r.score == pytest.approx(0.75)


def test_order_is_by_score_then_key_whatever_the_input_order() -> None:
    items = [ins("a", 0.9, disc="x1"), ins("b", 0.9, disc="x2"), ins("c", 0.9, disc="x3"),
             ins("d", 0.5)]
    tied = sorted(items[:3], key=lambda i: i.key)
    expected = [i.key for i in tied] + [items[3].key]
    for perm in itertools.permutations(items):
        got = rank(perm, kpis=KPIS, now=NOW)
        assert [r.insight.key for r in got] == expected
        assert [r.rank for r in got] == [1, 2, 3, 4]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([None, "a", "b", "c"]),
                          st.floats(0, 1), st.floats(0, 1)), max_size=12, unique=True),
       st.booleans(), st.randoms(use_true_random=False))
def test_rank_is_a_deterministic_permutation(specs: list[tuple[str | None, float, float]],
                                             diverse: bool, rnd: object) -> None:
    items = [ins(k, s, m) for k, s, m in specs]
    opts = RankOptions(diverse=diverse)
    got = rank(items, kpis=KPIS, now=NOW, options=opts)
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    again = rank(shuffled, kpis=KPIS, now=NOW, options=opts)
    assert [r.insight.key for r in got] == [r.insight.key for r in again]
    assert sorted(r.insight.key for r in got) == sorted(i.key for i in items)
    assert [r.rank for r in got] == list(range(1, len(items) + 1))
    if not diverse:
        scores = [r.score for r in got]
        assert scores == sorted(scores, reverse=True)
    else:
        # the first places hold one insight per KPI, as many as there are KPIs (and
        # insights about no KPI), up to five
        h = min(5, sum(k is None for k, _, _ in specs) + len({k for k, _, _ in specs} - {None}))
        head = [r.insight.kpi_id for r in got[:h] if r.insight.kpi_id is not None]
        assert len(head) == len(set(head))


def test_diversity_keeps_one_insight_per_kpi_in_the_top_five() -> None:
    # a has the three best insights; b … f one each, below all of a's
    items = [ins("a", 0.99), ins("a", 0.98), ins("a", 0.97), ins("b", 0.9), ins("c", 0.8),
             ins("d", 0.7), ins("e", 0.6), ins("f", 0.5)]
    got = rank(items, kpis=KPIS, now=NOW)
    # the top five: a's best, then b … e; a's others wait, then f (all by score)
    assert [(r.insight.kpi_id, r.insight.significance) for r in got] == [
        ("a", 0.99), ("b", 0.9), ("c", 0.8), ("d", 0.7), ("e", 0.6),
        ("a", 0.98), ("a", 0.97), ("f", 0.5)]
    # without diversity: pure score order
    plain = rank(items, kpis=KPIS, now=NOW, options=RankOptions(diverse=False))
    assert [r.insight.significance for r in plain] == sorted(
        (i.significance for i in items), reverse=True)


def test_diversity_with_fewer_kpis_than_places() -> None:
    items = [ins("a", 0.9), ins("a", 0.8), ins("b", 0.7), ins("b", 0.6)]
    got = rank(items, kpis=KPIS, now=NOW)
    assert [(r.insight.kpi_id, r.insight.significance) for r in got] == [
        ("a", 0.9), ("b", 0.7), ("a", 0.8), ("b", 0.6)]


def test_insights_about_no_kpi_never_collide() -> None:
    items = [ins(None, 0.9, disc="n1"), ins(None, 0.8, disc="n2"), ins(None, 0.7, disc="n3"),
             ins("a", 0.6), ins("a", 0.5)]
    got = rank(items, kpis=KPIS, now=NOW)
    assert [r.insight.significance for r in got] == [0.9, 0.8, 0.7, 0.6, 0.5]


def test_top_option() -> None:
    items = [ins("a", 0.9), ins("a", 0.8), ins("b", 0.7)]
    got = rank(items, kpis=KPIS, now=NOW, options=RankOptions(top=1))
    # only the first place is diversified
    assert [r.insight.significance for r in got] == [0.9, 0.8, 0.7]


def test_limit() -> None:
    items = [ins("a", 0.9), ins("a", 0.8), ins("b", 0.7), ins("c", 0.6)]
    got = rank(items, kpis=KPIS, now=NOW, limit=2)
    assert [(r.insight.kpi_id, r.rank) for r in got] == [("a", 1), ("b", 2)]
    assert rank(items, kpis=KPIS, now=NOW, limit=0) == []
    assert rank([], kpis=KPIS, now=NOW) == []
