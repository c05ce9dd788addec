"""Notification grouping: a pure planner deciding which messages to send at ``now``.

Alerts are grouped by label values (``rule`` and ``kpi`` by default), so sixty slices of one
incident make one message. Per group, as in Alertmanager:

* the first message goes ``group_wait`` after the group first had a firing alert (so slices
  that fire together arrive together);
* later, at most every ``group_interval``, a message goes when the group changed since the
  last one — an alert started firing, resolved, or changed severity;
* with no change, the firing alerts are repeated every ``repeat_interval`` — unless every
  one of them has been acknowledged (someone is on it; changes are still announced);
* a resolved alert is announced once, only if it was in an earlier message; when nothing in
  the group fires any more after that, the group's state is dropped.

Muted alerts (silenced or inhibited: :func:`kpidash.core.alerts.silence.muted`) are left out
of messages, as if not firing; an announced alert that becomes muted is not reported resolved
for that — only when its instance actually resolves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from kpidash.core.alerts.rules import AlertRule
from kpidash.core.alerts.state import AlertInstance, AlertState

GroupKey = tuple[tuple[str, str], ...]
DEFAULT_GROUP_BY = ("rule", "kpi")


@dataclass(frozen=True, slots=True)
class GroupTimers:
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class GroupState:
    """What was last sent for a group: when, and which fingerprints at which severity."""

    key: GroupKey
    created_at: datetime
    last_sent_at: datetime | None = None
    notified: frozenset[tuple[str, int]] = frozenset()


class Reason(StrEnum):
    NEW = "new"          # the group's first message
    UPDATE = "update"    # alerts started firing, resolved or changed severity
    REPEAT = "repeat"    # nothing changed; reminder after repeat_interval


@dataclass(frozen=True, slots=True)
class Notification:
    group: GroupKey
    reason: Reason
    firing: tuple[AlertInstance, ...]
    resolved: tuple[AlertInstance, ...]


def rule_timers(rules: Iterable[AlertRule]) -> dict[GroupKey, GroupTimers]:
    """Each rule's timers under its group key (grouping by the default rule + KPI)."""
    return {(("rule", r.id), ("kpi", r.kpi)): GroupTimers(r.group_wait, r.group_interval,
                                                         r.repeat_interval) for r in rules}


def group_key(inst: AlertInstance, group_by: Iterable[str] = DEFAULT_GROUP_BY) -> GroupKey:
    labels = inst.labels()
    return tuple((name, labels.get(name, "")) for name in group_by)


def plan(instances: Iterable[AlertInstance], states: Mapping[GroupKey, GroupState], now: datetime,
         timers: GroupTimers | Mapping[GroupKey, GroupTimers] = GroupTimers(),
         group_by: Iterable[str] = DEFAULT_GROUP_BY, muted: frozenset[str] = frozenset(),
         acknowledged: frozenset[str] = frozenset(),
         ) -> tuple[list[Notification], dict[GroupKey, GroupState]]:
    """Notifications to send now and every group's new state (absent = group finished).

    ``timers`` is one :class:`GroupTimers` for all groups, or one per group key (groups not
    in the mapping use the defaults).
    """
    by = tuple(group_by)
    groups: dict[GroupKey, list[AlertInstance]] = defaultdict(list)
    for inst in instances:
        groups[group_key(inst, by)].append(inst)
    for key in states:
        groups.setdefault(key, [])
    out: list[Notification] = []
    new_states: dict[GroupKey, GroupState] = {}
    for key in sorted(groups):
        t = timers if isinstance(timers, GroupTimers) else timers.get(key, GroupTimers())
        note, st = _plan_group(key, groups[key], states.get(key), now, t, muted, acknowledged)
        if note is not None:
            out.append(note)
        if st is not None:
            new_states[key] = st
    return out, new_states


def _plan_group(key: GroupKey, members: list[AlertInstance], st: GroupState | None,
                now: datetime, t: GroupTimers, muted: frozenset[str], acknowledged: frozenset[str],
                ) -> tuple[Notification | None, GroupState | None]:
    firing = sorted((a for a in members if a.active and a.fingerprint not in muted),
                    key=lambda a: (-int(a.severity), a.fingerprint))
    current = frozenset((a.fingerprint, int(a.severity)) for a in firing)
    if st is None:
        if not firing:
            return None, None
        st = GroupState(key, created_at=now)
    told = {fp for fp, _ in st.notified}
    firing_fps = {fp for fp, _ in current}
    resolved = tuple(sorted((a for a in members if a.fingerprint in told
                             and a.fingerprint not in firing_fps
                             and a.state in (AlertState.RESOLVED, AlertState.NORMAL)),
                            key=lambda a: a.fingerprint))
    resolved_fps = {a.fingerprint for a in resolved}
    # Told-but-muted (or vanished) alerts stay "told" without a resolved message.
    still_told = frozenset((fp, sev) for fp, sev in st.notified
                           if fp not in firing_fps and fp not in resolved_fps)
    if st.last_sent_at is None:
        if not firing:
            return None, None  # everything resolved inside group_wait: nothing to say
        if now - st.created_at < t.group_wait:
            return None, st
        reason: Reason | None = Reason.NEW
    else:
        since = now - st.last_sent_at
        changed = bool(resolved) or not current <= st.notified
        if changed and since >= t.group_interval:
            reason = Reason.UPDATE
        elif since >= t.repeat_interval and any(
                a.fingerprint not in acknowledged for a in firing):
            reason = Reason.REPEAT
        else:
            reason = None
    if reason is None:
        return None, st
    note = Notification(key, reason, tuple(firing), resolved)
    if not firing and not still_told:
        return note, None
    return note, GroupState(key, st.created_at, now, current | still_told)
