"""The alert lifecycle: a pure state machine over :class:`AlertInstance`, time injected.

::

    normal ──met──► pending ──held `for`──► firing ──cleared──► recovering ──`keep_firing_for`──► resolved
      ▲               │ not met               ▲  ▲ severity        │ met again                       │ met
      └───────────────┘                       │  └─changes─┘       └──────► firing                  ▼
                                              └───────────────────────────────────────────────── pending
    any state ──no data──► no_data        any state ──evaluation error──► error
    no_data / error ──met──► pending      no_data / error ──not met──► normal

With ``for`` = 0 an instance goes normal → pending → firing in one step (two transitions
recorded); with ``keep_firing_for`` = 0, firing → recovering → resolved likewise. Between
the firing band and the recovery value (hysteresis, ``cleared`` false) a firing alert keeps
firing and a pending one falls back to normal. A resolved instance stays resolved (keeping
its last severity and acknowledgement) until the condition is met again, which starts a new
episode in the same instance; dropping old resolved instances is the caller's choice.
:func:`step` decides what happens; :func:`transition` is the one function that changes an
instance's state and raises :class:`IllegalTransition` for a move not in :data:`ALLOWED`.
One instance exists per fingerprint (rule + KPI + slice) and is updated, not re-created.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from kpidash.core.alerts.evaluate import Evaluation, Observation, Outcome, SliceKey
from kpidash.core.alerts.rules import AlertRule
from kpidash.core.anomaly.result import Severity
from kpidash.errors import AlertError, IllegalTransition
from kpidash.model import KPI

HISTORY_LIMIT = 200
"""Transitions kept per instance (oldest dropped first)."""


class AlertState(StrEnum):
    NORMAL = "normal"
    PENDING = "pending"
    FIRING = "firing"
    RECOVERING = "recovering"
    RESOLVED = "resolved"
    NO_DATA = "no_data"
    ERROR = "error"


_S = AlertState
ALLOWED: Mapping[AlertState, frozenset[AlertState]] = {
    _S.NORMAL: frozenset({_S.PENDING, _S.NO_DATA, _S.ERROR}),
    _S.PENDING: frozenset({_S.PENDING, _S.FIRING, _S.NORMAL, _S.NO_DATA, _S.ERROR}),
    _S.FIRING: frozenset({_S.FIRING, _S.RECOVERING, _S.NO_DATA, _S.ERROR}),
    _S.RECOVERING: frozenset({_S.FIRING, _S.RESOLVED, _S.NO_DATA, _S.ERROR}),
    _S.RESOLVED: frozenset({_S.PENDING, _S.NO_DATA, _S.ERROR}),
    _S.NO_DATA: frozenset({_S.NORMAL, _S.PENDING, _S.ERROR}),
    _S.ERROR: frozenset({_S.NORMAL, _S.PENDING, _S.NO_DATA}),
}
"""Legal moves. A self-move (pending → pending, firing → firing) records a severity change."""
ACTIVE_STATES = frozenset({AlertState.FIRING, AlertState.RECOVERING})


@dataclass(frozen=True, slots=True)
class Transition:
    from_state: AlertState
    to_state: AlertState
    at: datetime
    severity: Severity
    value: float


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    by: str
    at: datetime
    comment: str = ""


@dataclass(frozen=True, slots=True)
class AlertInstance:
    """One alert: a rule on a KPI slice. ``pending_for`` / ``keep_firing_for`` come from the
    rule; ``since`` is when the current state was entered (severity changes keep it);
    ``firing_since`` is when the current episode first fired (kept through recovering)."""

    fingerprint: str
    rule_id: str
    kpi_id: str
    slice: SliceKey = ()
    pending_for: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    state: AlertState = AlertState.NORMAL
    severity: Severity = Severity.NONE
    value: float = math.nan
    threshold: float | None = None
    since: datetime | None = None
    firing_since: datetime | None = None
    updated_at: datetime | None = None
    acknowledgement: Acknowledgement | None = None
    history: tuple[Transition, ...] = ()

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def labels(self) -> dict[str, str]:
        """Labels for silences, inhibition and grouping: kpi, rule, severity and slice dims."""
        return {**dict(self.slice), "kpi": self.kpi_id, "rule": self.rule_id,
                "severity": self.severity.label}


def fingerprint(rule_id: str, kpi_id: str, slice: SliceKey | Mapping[str, str] = ()) -> str:
    """A stable 16-hex-digit id of rule + KPI + slice (order of slice dims does not matter).

    Formula: the first 16 hex digits of SHA-256 over the compact JSON
    ``[rule_id, kpi_id, [[dim, value], ...]]`` with pairs sorted — no Python ``hash``, so it
    is the same in every process; stored alerts rely on it, so never change it.
    """
    pairs = sorted((str(k), str(v)) for k, v in (slice.items() if isinstance(slice, Mapping)
                                                else slice))
    blob = json.dumps([rule_id, kpi_id, pairs], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def new_instance(rule: AlertRule, slice: SliceKey = ()) -> AlertInstance:
    return AlertInstance(fingerprint(rule.id, rule.kpi, slice), rule.id, rule.kpi, slice,
                         rule.for_, rule.keep_firing_for)


def transition(inst: AlertInstance, to: AlertState, now: datetime, obs: Observation
               ) -> tuple[AlertInstance, Transition]:
    """Move ``inst`` to ``to`` at ``now``, recording it; the only place a state changes."""
    if to not in ALLOWED[inst.state]:
        legal = ", ".join(sorted(ALLOWED[inst.state]))
        raise IllegalTransition(f"alert {inst.fingerprint} ({inst.rule_id} on {inst.kpi_id}) "
                                f"cannot go from {inst.state} to {to}; from {inst.state} it can "
                                f"go to: {legal}")
    severity = obs.severity if to in (_S.PENDING, _S.FIRING) else inst.severity
    if to in (_S.NORMAL, _S.NO_DATA, _S.ERROR):
        severity = Severity.NONE
    t = Transition(inst.state, to, now, severity, obs.value)
    changes: dict[str, object] = {"state": to, "severity": severity}
    if to is not inst.state:
        changes["since"] = now
    if to is _S.FIRING and inst.state is _S.PENDING:
        changes["firing_since"] = now
    elif to not in ACTIVE_STATES and to is not _S.RESOLVED:
        changes["firing_since"] = None
    if to is _S.PENDING and inst.state is not _S.PENDING:
        changes["acknowledgement"] = None  # a new episode needs a new acknowledgement
    history = (*inst.history, t)[-HISTORY_LIMIT:]
    return replace(inst, history=history, **changes), t  # type: ignore[arg-type]


def step(inst: AlertInstance, obs: Observation, now: datetime
         ) -> tuple[AlertInstance, list[Transition]]:
    """Advance ``inst`` by one observation at ``now``; return it and the transitions made."""
    if inst.updated_at is not None and now < inst.updated_at:
        raise AlertError(f"time went backwards for alert {inst.fingerprint}: last step at "
                         f"{inst.updated_at.isoformat()}, now {now.isoformat()}; pass a "
                         "non-decreasing now")
    moves: list[Transition] = []

    def go(to: AlertState) -> None:
        nonlocal inst
        inst, t = transition(inst, to, now, obs)
        moves.append(t)

    state = inst.state
    if obs.outcome is Outcome.NO_DATA or obs.outcome is Outcome.ERROR:
        target = _S.NO_DATA if obs.outcome is Outcome.NO_DATA else _S.ERROR
        if state is not target:
            go(target)
    elif obs.met:
        if state in (_S.NORMAL, _S.RESOLVED, _S.NO_DATA, _S.ERROR):
            go(_S.PENDING)
        elif state is _S.RECOVERING:
            go(_S.FIRING)
        elif obs.severity != inst.severity:
            go(inst.state)  # escalation or de-escalation within pending / firing
        if inst.state is _S.PENDING and inst.since is not None and \
                now - inst.since >= inst.pending_for:
            go(_S.FIRING)
    else:
        if state is _S.PENDING or (state in (_S.NO_DATA, _S.ERROR)):
            go(_S.NORMAL)
        elif state is _S.FIRING and obs.cleared:
            go(_S.RECOVERING)
        if inst.state is _S.RECOVERING and inst.since is not None and \
                now - inst.since >= inst.keep_firing_for:
            go(_S.RESOLVED)
    return replace(inst, updated_at=now, value=obs.value, threshold=obs.threshold), moves


def acknowledge(inst: AlertInstance, by: str, now: datetime, comment: str = "") -> AlertInstance:
    """Record who acknowledged a pending or active alert; it is cleared by the next episode."""
    if inst.state not in (_S.PENDING, _S.FIRING, _S.RECOVERING):
        raise IllegalTransition(f"alert {inst.fingerprint} is {inst.state}; only pending, firing "
                                "or recovering alerts can be acknowledged")
    if not by.strip():
        raise AlertError("acknowledge needs who acknowledged (a non-empty user name)")
    return replace(inst, acknowledgement=Acknowledgement(by, now, comment))


def apply(instances: Mapping[str, AlertInstance], rule: AlertRule,
          evaluations: Iterable[Evaluation], now: datetime
          ) -> tuple[dict[str, AlertInstance], list[tuple[str, Transition]]]:
    """Step every evaluated slice's instance (created on first sight, found by fingerprint).

    Returns all instances (untouched ones included) and the (fingerprint, transition) pairs.
    """
    out = dict(instances)
    moves: list[tuple[str, Transition]] = []
    for ev in evaluations:
        fp = fingerprint(rule.id, rule.kpi, ev.slice)
        inst = out.get(fp) or new_instance(rule, ev.slice)
        inst = replace(inst, pending_for=rule.for_, keep_firing_for=rule.keep_firing_for)
        inst, made = step(inst, ev.observation, now)
        out[fp] = inst
        moves.extend((fp, t) for t in made)
    return out, moves


def rank_active(instances: Iterable[AlertInstance], kpis: Mapping[str, KPI]
                ) -> list[AlertInstance]:
    """Active alerts, most urgent first: severity, KPI weight, KPI ``critical`` flag, then
    the longest firing; the fingerprint breaks ties so the order is total."""
    def key(a: AlertInstance) -> tuple[int, float, int, datetime, str]:
        kpi = kpis.get(a.kpi_id)
        started = a.firing_since or a.since or datetime.max.replace(tzinfo=None)
        if started.tzinfo is not None:
            started = started.replace(tzinfo=None) - (started.utcoffset() or timedelta(0))
        return (-int(a.severity), -(kpi.weight if kpi else 1.0),
                -int(kpi.critical if kpi else False), started, a.fingerprint)
    return sorted((a for a in instances if a.active), key=key)
