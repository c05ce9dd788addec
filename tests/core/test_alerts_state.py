from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpidash.core.alerts import (
    ALLOWED,
    AlertError,
    AlertInstance,
    AlertRule,
    AlertState,
    Evaluation,
    IllegalTransition,
    Observation,
    Outcome,
    Severity,
    acknowledge,
    apply,
    fingerprint,
    new_instance,
    rank_active,
    step,
    transition,
)
from kpidash.core.alerts.state import HISTORY_LIMIT
from kpidash.model import KPI

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
S = AlertState
RULE = AlertRule.model_validate({
    "id": "r", "kpi": "revenue", "for": "10m", "keep_firing_for": "5m",
    "condition": {"kind": "threshold", "direction": "above", "bands": {"high": 6, "critical": 8},
                  "recovery": 4}})

HIGH = Observation(Outcome.MET, Severity.HIGH, 7.0, 6.0, cleared=False)
CRIT = Observation(Outcome.MET, Severity.CRITICAL, 9.0, 8.0, cleared=False)
HOLD = Observation(Outcome.NOT_MET, Severity.NONE, 5.0, 6.0, cleared=False)  # hysteresis zone
CLEAR = Observation(Outcome.NOT_MET, Severity.NONE, 3.0, 6.0, cleared=True)
NODATA = Observation(Outcome.NO_DATA)
ERR = Observation(Outcome.ERROR)


def run(obs: list[tuple[int, Observation]], inst: AlertInstance | None = None
        ) -> tuple[AlertInstance, list[AlertState]]:
    """Step through (minute, observation) pairs; return the instance and state after each."""
    inst = inst or new_instance(RULE)
    states = []
    for minute, o in obs:
        inst, _ = step(inst, o, T0 + timedelta(minutes=minute))
        states.append(inst.state)
    return inst, states


@pytest.mark.parametrize(("obs", "expected"), [
    pytest.param([(0, CLEAR)], [S.NORMAL], id="stays-normal"),
    pytest.param([(0, HIGH), (5, HIGH), (10, HIGH)], [S.PENDING, S.PENDING, S.FIRING],
                 id="fires-after-for"),
    pytest.param([(0, HIGH), (9, HIGH)], [S.PENDING, S.PENDING], id="not-before-for"),
    pytest.param([(0, HIGH), (5, CLEAR), (10, HIGH)], [S.PENDING, S.NORMAL, S.PENDING],
                 id="pending-reset-when-condition-breaks"),
    pytest.param([(0, HIGH), (5, HOLD)], [S.PENDING, S.NORMAL],
                 id="pending-needs-the-firing-band"),
    pytest.param([(0, HIGH), (10, HIGH), (11, HOLD), (20, HOLD)],
                 [S.PENDING, S.FIRING, S.FIRING, S.FIRING], id="hysteresis-keeps-firing"),
    pytest.param([(0, HIGH), (10, HIGH), (11, CLEAR), (15, CLEAR), (16, CLEAR)],
                 [S.PENDING, S.FIRING, S.RECOVERING, S.RECOVERING, S.RESOLVED],
                 id="keep-firing-for-then-resolved"),
    pytest.param([(0, HIGH), (10, HIGH), (11, CLEAR), (13, HIGH)],
                 [S.PENDING, S.FIRING, S.RECOVERING, S.FIRING], id="recovering-back-to-firing"),
    pytest.param([(0, HIGH), (10, HIGH), (11, CLEAR), (12, HOLD), (16, HOLD)],
                 [S.PENDING, S.FIRING, S.RECOVERING, S.RECOVERING, S.RESOLVED],
                 id="hysteresis-zone-does-not-refire"),
    pytest.param([(0, HIGH), (10, HIGH), (11, CLEAR), (16, CLEAR), (20, CLEAR), (30, HIGH)],
                 [S.PENDING, S.FIRING, S.RECOVERING, S.RESOLVED, S.RESOLVED, S.PENDING],
                 id="resolved-then-new-episode"),
    pytest.param([(0, HIGH), (10, HIGH), (11, NODATA), (12, NODATA), (13, CLEAR)],
                 [S.PENDING, S.FIRING, S.NO_DATA, S.NO_DATA, S.NORMAL], id="no-data"),
    pytest.param([(0, ERR), (1, HIGH)], [S.ERROR, S.PENDING], id="error-then-met"),
    pytest.param([(0, NODATA), (1, ERR), (2, NODATA)], [S.NO_DATA, S.ERROR, S.NO_DATA],
                 id="no-data-error-alternate"),
])
def test_lifecycle(obs: list[tuple[int, Observation]], expected: list[AlertState]) -> None:
    assert run(obs)[1] == expected


def test_zero_for_and_keep_firing_for_take_one_step_each_with_both_transitions() -> None:
    inst = replace(new_instance(RULE), pending_for=timedelta(0), keep_firing_for=timedelta(0))
    inst, moves = step(inst, HIGH, T0)
    assert [(t.from_state, t.to_state) for t in moves] == [(S.NORMAL, S.PENDING),
                                                           (S.PENDING, S.FIRING)]
    inst, moves = step(inst, CLEAR, T0 + timedelta(minutes=1))
    assert [(t.from_state, t.to_state) for t in moves] == [(S.FIRING, S.RECOVERING),
                                                           (S.RECOVERING, S.RESOLVED)]
    assert inst.state is S.RESOLVED and inst.severity is Severity.HIGH


def test_history_records_from_to_at_severity_value() -> None:
    inst, _ = run([(0, HIGH), (10, HIGH), (11, CLEAR), (16, CLEAR)])
    assert [(t.from_state, t.to_state, t.at, t.severity, t.value) for t in inst.history] == [
        (S.NORMAL, S.PENDING, T0, Severity.HIGH, 7.0),
        (S.PENDING, S.FIRING, T0 + timedelta(minutes=10), Severity.HIGH, 7.0),
        (S.FIRING, S.RECOVERING, T0 + timedelta(minutes=11), Severity.HIGH, 3.0),
        (S.RECOVERING, S.RESOLVED, T0 + timedelta(minutes=16), Severity.HIGH, 3.0),
    ]


def test_severity_escalates_and_deescalates_within_one_instance() -> None:
    inst, _ = run([(0, HIGH), (10, HIGH)])
    fp, fired_at = inst.fingerprint, inst.firing_since
    inst, moves = step(inst, CRIT, T0 + timedelta(minutes=11))
    assert [(t.from_state, t.to_state, t.severity) for t in moves] == [
        (S.FIRING, S.FIRING, Severity.CRITICAL)]
    inst, moves = step(inst, CRIT, T0 + timedelta(minutes=12))
    assert moves == []  # unchanged severity records nothing
    inst, moves = step(inst, HIGH, T0 + timedelta(minutes=13))
    assert [t.severity for t in moves] == [Severity.HIGH]
    assert (inst.fingerprint, inst.firing_since, inst.state) == (fp, fired_at, S.FIRING)
    assert inst.since == T0 + timedelta(minutes=10)  # severity changes keep the state's start


def test_escalation_while_pending_keeps_the_for_timer() -> None:
    inst, states = run([(0, HIGH), (5, CRIT), (10, CRIT)])
    assert states == [S.PENDING, S.PENDING, S.FIRING]
    assert inst.severity is Severity.CRITICAL


ALL_PAIRS = [(a, b) for a in AlertState for b in AlertState]


@pytest.mark.parametrize(("src", "dst"), [pytest.param(a, b, id=f"{a}-to-{b}")
                                          for a, b in ALL_PAIRS if b in ALLOWED[a]])
def test_legal_transitions(src: AlertState, dst: AlertState) -> None:
    inst = replace(new_instance(RULE), state=src)
    moved, t = transition(inst, dst, T0, HIGH)
    assert moved.state is dst and (t.from_state, t.to_state, t.at) == (src, dst, T0)
    assert moved.history[-1] == t


@pytest.mark.parametrize(("src", "dst"), [pytest.param(a, b, id=f"{a}-to-{b}")
                                          for a, b in ALL_PAIRS if b not in ALLOWED[a]])
def test_illegal_transitions_raise(src: AlertState, dst: AlertState) -> None:
    inst = replace(new_instance(RULE), state=src)
    with pytest.raises(IllegalTransition, match=f"cannot go from {src} to {dst}"):
        transition(inst, dst, T0, HIGH)


def test_history_is_capped_keeping_the_newest() -> None:
    inst, _ = run([(0, HIGH), (10, HIGH)])
    for minute in range(11, 311):
        inst, _ = step(inst, CRIT if minute % 2 else HIGH, T0 + timedelta(minutes=minute))
    assert len(inst.history) == HISTORY_LIMIT
    assert inst.history[-1].at == T0 + timedelta(minutes=310)


def test_time_going_backwards_raises() -> None:
    inst, _ = step(new_instance(RULE), HIGH, T0)
    with pytest.raises(AlertError, match="time went backwards"):
        step(inst, HIGH, T0 - timedelta(seconds=1))


def test_acknowledge() -> None:
    inst, _ = run([(0, HIGH), (10, HIGH)])
    acked = acknowledge(inst, "ana", T0 + timedelta(minutes=11), "looking")
    assert acked.acknowledgement is not None and acked.acknowledgement.by == "ana"
    acked, _ = run([(11, CLEAR), (16, CLEAR)], acked)
    assert acked.acknowledgement is not None  # kept on the resolved episode
    acked, _ = step(acked, HIGH, T0 + timedelta(minutes=30))
    assert acked.acknowledgement is None  # a new episode needs a new acknowledgement
    with pytest.raises(IllegalTransition, match="only pending, firing or recovering"):
        acknowledge(new_instance(RULE), "ana", T0)
    with pytest.raises(AlertError, match="who acknowledged"):
        acknowledge(inst, " ", T0)


def test_fingerprint_is_pinned_and_ignores_dim_order() -> None:
    fp = fingerprint("r", "revenue", {"region": "eu", "plan": "pro"})
    assert fp == fingerprint("r", "revenue", {"plan": "pro", "region": "eu"})
    assert fp == fingerprint("r", "revenue", (("plan", "pro"), ("region", "eu")))
    assert fp == "412a3b72b5b347c4"  # stable across processes and releases: never change it
    assert len({fp, fingerprint("r", "revenue"), fingerprint("r2", "revenue", {"region": "eu"}),
                fingerprint("r", "revenue", {"region": "eu"})}) == 4


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=4))
def test_fingerprint_depends_only_on_content(dims: dict[str, str]) -> None:
    reordered = dict(reversed(list(dims.items())))
    assert fingerprint("r", "k", dims) == fingerprint("r", "k", reordered)
    assert fingerprint("r", "k", dims) != fingerprint("r", "k2", dims)


def test_apply_keeps_one_instance_per_fingerprint() -> None:
    evs = [Evaluation("r", "revenue", (("region", r),), HIGH) for r in ("eu", "us")]
    book, moves = apply({}, RULE, evs, T0)
    assert len(book) == 2 and len(moves) == 2
    for minute in (5, 10, 11):
        book, moves = apply(book, RULE, evs, T0 + timedelta(minutes=minute))
    assert len(book) == 2
    assert {i.state for i in book.values()} == {S.FIRING}
    assert all(len(i.history) == 2 for i in book.values())  # updated, not re-created
    book, _ = apply(book, RULE, evs[:1], T0 + timedelta(minutes=12))
    assert len(book) == 2  # an instance not evaluated this time is left as it was


def test_rank_active() -> None:
    kpis = {"a": KPI(id="a", name="A", weight=1.0), "b": KPI(id="b", name="B", weight=3.0),
            "c": KPI(id="c", name="C", weight=3.0, critical=True)}

    def alert(kpi: str, sev: Severity, minutes: int, state: S = S.FIRING) -> AlertInstance:
        return AlertInstance(fingerprint("r", kpi, {"m": str(minutes)}), "r", kpi, state=state,
                             severity=sev, firing_since=T0 + timedelta(minutes=minutes))

    alerts = [alert("a", Severity.HIGH, 0), alert("b", Severity.HIGH, 0),
              alert("c", Severity.HIGH, 0), alert("a", Severity.CRITICAL, 30),
              alert("b", Severity.HIGH, -10, S.RECOVERING), alert("a", Severity.LOW, 0, S.PENDING)]
    ranked = rank_active(alerts, kpis)
    assert [(a.kpi_id, a.severity, a.firing_since) for a in ranked] == [
        ("a", Severity.CRITICAL, T0 + timedelta(minutes=30)),
        ("c", Severity.HIGH, T0),
        ("b", Severity.HIGH, T0 - timedelta(minutes=10)),
        ("b", Severity.HIGH, T0),
        ("a", Severity.HIGH, T0),
    ]


OBS = st.sampled_from([HIGH, CRIT, HOLD, CLEAR, NODATA, ERR])


@given(st.lists(st.tuples(st.integers(0, 20), OBS), max_size=40))
def test_any_observation_sequence_gives_a_consistent_history(
        seq: list[tuple[int, Observation]]) -> None:
    inst = new_instance(RULE)
    now = T0
    for gap, obs in seq:
        now += timedelta(minutes=gap)
        inst, _ = step(inst, obs, now)
        if inst.state in (S.PENDING, S.FIRING):
            assert inst.severity is not Severity.NONE
        assert (inst.firing_since is not None) == (inst.state in (S.FIRING, S.RECOVERING)) or \
            inst.state is S.RESOLVED
    hist = inst.history
    assert all(t.to_state in ALLOWED[t.from_state] for t in hist)
    assert all(a.to_state is b.from_state for a, b in pairwise(hist))
    assert all(a.at <= b.at for a, b in pairwise(hist))
    assert (hist[-1].to_state if hist else S.NORMAL) is inst.state
    assert math.isnan(inst.value) or isinstance(inst.value, float)
