from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from kpidash.core.alerts import (
    AlertInstance,
    AlertState,
    GroupKey,
    GroupState,
    GroupTimers,
    Notification,
    Reason,
    Severity,
    fingerprint,
    plan,
)

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
TIMERS = GroupTimers(group_wait=timedelta(seconds=30), group_interval=timedelta(minutes=5),
                     repeat_interval=timedelta(hours=4))
KEY: GroupKey = (("rule", "drop"), ("kpi", "revenue"))


def alert(i: int, state: AlertState = AlertState.FIRING, sev: Severity = Severity.HIGH,
          rule: str = "drop") -> AlertInstance:
    sl = (("region", f"r{i:02d}"),)
    return AlertInstance(fingerprint(rule, "revenue", sl), rule, "revenue", sl, state=state,
                         severity=sev)


class Planner:
    """Carries group states between calls, as the engine will."""

    def __init__(self, timers: GroupTimers = TIMERS) -> None:
        self.states: dict[GroupKey, GroupState] = {}
        self.timers = timers

    def at(self, seconds: float, alerts: list[AlertInstance],
           muted: frozenset[str] = frozenset(), acked: frozenset[str] = frozenset(),
           ) -> list[Notification]:
        notes, self.states = plan(alerts, self.states, T0 + timedelta(seconds=seconds),
                                  self.timers, muted=muted, acknowledged=acked)
        return notes


def test_sixty_slices_firing_together_send_one_notification() -> None:
    p = Planner()
    alerts = [alert(i) for i in range(60)]
    assert p.at(0, alerts) == []  # group_wait
    assert p.at(10, alerts) == []
    (note,) = p.at(30, alerts)
    assert note.group == KEY and note.reason is Reason.NEW
    assert len(note.firing) == 60 and note.resolved == ()
    assert p.at(60, alerts) == []
    assert p.at(600, alerts) == []  # nothing changed: no update


def test_repeat_after_repeat_interval() -> None:
    p = Planner()
    alerts = [alert(i) for i in range(3)]
    p.at(0, alerts)
    p.at(30, alerts)
    assert p.at(30 + 4 * 3600 - 1, alerts) == []
    (note,) = p.at(30 + 4 * 3600, alerts)
    assert note.reason is Reason.REPEAT and len(note.firing) == 3
    assert p.at(30 + 4 * 3600 + 60, alerts) == []


def test_acknowledged_alerts_are_not_repeated_but_changes_are_announced() -> None:
    p = Planner()
    alerts = [alert(i) for i in range(2)]
    p.at(0, alerts)
    p.at(30, alerts)
    acked = frozenset(a.fingerprint for a in alerts)
    assert p.at(30 + 5 * 3600, alerts, acked=acked) == []  # everyone acknowledged: no reminder
    # one not acknowledged: the reminder goes again
    assert [n.reason for n in p.at(30 + 5 * 3600, alerts, acked=acked - {alerts[0].fingerprint})
            ] == [Reason.REPEAT]
    escalated = [replace(alerts[0], severity=Severity.CRITICAL), alerts[1]]
    (note,) = p.at(30 + 6 * 3600, escalated, acked=acked)
    assert note.reason is Reason.UPDATE


def test_resolved_message_then_group_is_dropped() -> None:
    p = Planner()
    alerts = [alert(i) for i in range(3)]
    p.at(0, alerts)
    p.at(30, alerts)
    done = [replace(a, state=AlertState.RESOLVED) for a in alerts]
    assert p.at(60, done) == []  # group_interval since the last message not yet over
    (note,) = p.at(330, done)
    assert note.reason is Reason.UPDATE and note.firing == () and len(note.resolved) == 3
    assert p.states == {}
    assert p.at(400, done) == []  # said once


def test_new_slice_and_escalation_send_an_update_within_the_same_group() -> None:
    p = Planner()
    p.at(0, [alert(0)])
    p.at(30, [alert(0)])
    (note,) = p.at(330, [alert(0), alert(1)])
    assert note.reason is Reason.UPDATE and len(note.firing) == 2
    escalated = [alert(0, sev=Severity.CRITICAL), alert(1)]
    assert p.at(400, escalated) == []
    (note,) = p.at(630, escalated)
    assert note.firing[0].severity is Severity.CRITICAL  # most severe first


def test_partial_resolution_lists_both() -> None:
    p = Planner()
    p.at(0, [alert(0), alert(1)])
    p.at(30, [alert(0), alert(1)])
    (note,) = p.at(330, [alert(0), alert(1, AlertState.RESOLVED)])
    assert [a.slice for a in note.firing] == [(("region", "r00"),)]
    assert [a.slice for a in note.resolved] == [(("region", "r01"),)]


def test_resolved_inside_group_wait_sends_nothing() -> None:
    p = Planner()
    p.at(0, [alert(0)])
    assert p.at(30, [alert(0, AlertState.RESOLVED)]) == []
    assert p.states == {}


def test_groups_by_rule_and_kpi() -> None:
    p = Planner(GroupTimers(group_wait=timedelta(0)))
    notes = p.at(0, [alert(0), alert(1, rule="spike"), alert(2), alert(3, rule="spike")])
    assert sorted((n.group, len(n.firing)) for n in notes) == [
        ((("rule", "drop"), ("kpi", "revenue")), 2), ((("rule", "spike"), ("kpi", "revenue")), 2)]


def test_muted_alerts_are_not_sent_nor_announced_resolved() -> None:
    p = Planner()
    alerts = [alert(0), alert(1)]
    p.at(0, alerts, muted=frozenset({alerts[1].fingerprint}))
    (note,) = p.at(30, alerts, muted=frozenset({alerts[1].fingerprint}))
    assert len(note.firing) == 1
    # alert 0 is silenced after being sent: no resolved message, no repeat
    assert p.at(400, alerts, muted=frozenset({a.fingerprint for a in alerts})) == []


def test_pending_alerts_do_not_notify_and_per_group_timers_apply() -> None:
    slow = GroupTimers(group_wait=timedelta(minutes=10))
    notes, states = plan([alert(0, AlertState.PENDING)], {}, T0, {KEY: slow})
    assert notes == [] and states == {}
    notes, states = plan([alert(0)], {}, T0, {KEY: slow})
    assert notes == [] and KEY in states
    notes, _ = plan([alert(0)], states, T0 + timedelta(minutes=10), {KEY: slow})
    assert [n.reason for n in notes] == [Reason.NEW]
