"""Replay a rule over history: when it would have fired and resolved, what it would have sent,
and — given labelled incidents — its precision, recall and mean time to detect.

The replay runs the live code (:func:`~.evaluate.evaluate`, :func:`~.state.step`,
:func:`~.group.plan`) at each instant a period of data completes, plus the instants before
the next period at which a minutely ticker would act on the same data — a pending alert's
``for`` or a recovering one's ``keep_firing_for`` running out, a group's ``group_wait``,
``group_interval`` or ``repeat_interval`` falling due — so timings and notification counts
(repeats included) match a live deployment. Silences are not replayed
(they are about the past's people, not its data); inhibition is, within the replayed rules.

Scoring against incidents (an incident is a KPI, optional dimension values and a window):

* an incident is *relevant* to a rule when its KPI is the rule's KPI or one of its inputs
  and its window overlaps the replayed range;
* an episode (pending → firing … resolved) *matches* an incident when their slices are
  compatible (no dimension with different values) and the episode was firing at some time in
  ``[incident start, incident end + slack)``, slack = ``for`` + two periods;
* precision = matching episodes / episodes; recall = relevant incidents with a matching
  episode that *started* in that window / relevant incidents; time to detect = first firing −
  incident start, averaged over detected incidents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from kpidash.core.alerts.evaluate import SliceInput, SliceKey, evaluate
from kpidash.core.alerts.group import GroupKey, GroupState, GroupTimers, plan, rule_timers
from kpidash.core.alerts.rules import AlertRule
from kpidash.core.alerts.silence import inhibited
from kpidash.core.alerts.state import AlertInstance, AlertState, fingerprint, new_instance, step
from kpidash.core.anomaly.result import Severity
from kpidash.model import KPI

F64 = npt.NDArray[np.float64]
ForecastAt = Callable[[int], F64]
"""Forecast values for the periods after period ``k`` (step 1 first)."""


@dataclass(frozen=True)
class SliceHistory:
    """The whole history of one slice at the rule's grain; ``periods`` are UTC period starts
    and ``ends`` the instant each period completes. ``severity`` holds the causal anomaly
    severity code of each period (empty when no condition needs it)."""

    slice: SliceKey
    periods: npt.NDArray[np.datetime64]
    ends: npt.NDArray[np.datetime64]
    values: F64
    severity: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))
    forecast: ForecastAt | None = None


@dataclass(frozen=True)
class Incident:
    id: str
    kpi: str
    start: datetime
    end: datetime  # exclusive
    dims: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    @classmethod
    def from_manifest(cls, item: Mapping[str, Any]) -> Incident:
        """An incident of the demo manifest (dates, end inclusive) or ISO instants."""
        def instant(text: str, inclusive_end: bool = False) -> datetime:
            ts = datetime.fromisoformat(text)
            if len(text) == 10:  # a date: the whole day
                ts = ts.replace(tzinfo=UTC) + (timedelta(days=1) if inclusive_end else
                                               timedelta(0))
            return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

        return cls(str(item["id"]), str(item["kpi"]), instant(item["start"]),
                   instant(item["end"], inclusive_end=True), dict(item.get("dims") or {}),
                   str(item.get("description", "")))


@dataclass(frozen=True)
class Episode:
    fingerprint: str
    slice: SliceKey
    fired_at: datetime
    resolved_at: datetime | None
    peak: Severity


@dataclass(frozen=True)
class Sent:
    at: datetime
    reason: str
    firing: int
    resolved: int


@dataclass
class RuleReplay:
    """Everything the replay of one rule saw."""

    rule_id: str
    kpi_id: str
    start: datetime
    end: datetime
    evaluations: int = 0
    episodes: list[Episode] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def per_week(self) -> dict[str, int]:
        """Notifications per ISO week (keyed by the week's Monday), weeks without any as 0."""
        monday = (self.start - timedelta(days=self.start.weekday())).date()
        counts = Counter((s.at - timedelta(days=s.at.weekday())).date() for s in self.sent)
        out: dict[str, int] = {}
        day = monday
        while day < self.end.date() + timedelta(days=1):
            out[day.isoformat()] = counts.get(day, 0)
            day += timedelta(days=7)
        return out


@dataclass(frozen=True)
class Score:
    relevant: int
    detected: int
    episodes: int
    true_episodes: int
    precision: float | None
    recall: float | None
    mean_time_to_detect: timedelta | None
    detections: tuple[tuple[str, timedelta], ...]  # (incident id, delay)
    missed: tuple[str, ...]


def replay(rules: Sequence[tuple[AlertRule, KPI, Sequence[SliceHistory]]], start: datetime,
           end: datetime, *, recent: int = 30) -> list[RuleReplay]:
    """Replay ``rules`` (each with its KPI and slice histories) over ``[start, end]``."""
    out = [RuleReplay(r.id, r.kpi, start, end) for r, _, _ in rules]
    instants: dict[datetime, list[tuple[int, int]]] = {}
    for ri, (_, _, slices) in enumerate(rules):
        for s in slices:
            for k, e in enumerate(s.ends):
                t = _aware(e)
                if start <= t <= end:
                    instants.setdefault(t, []).append((ri, k))
    if not instants:
        return out
    # A live minutely ticker also runs between data arrivals; the replay visits the instants
    # where it could act: a pending alert's `for` or a recovering one's keep_firing_for
    # running out, and a group's group_wait, group_interval or repeat_interval falling due.
    data_times = sorted(instants)
    instances: dict[str, AlertInstance] = {}
    groups: dict[GroupKey, GroupState] = {}
    timers = rule_timers(r for r, _, _ in rules)
    open_eps: dict[str, tuple[datetime, Severity]] = {}
    rule_of = {r.id: i for i, (r, _, _) in enumerate(rules)}
    current: dict[int, int] = {}  # rule → period index in force

    def tick(now: datetime) -> None:
        nonlocal groups
        for ri, k in current.items():
            rule, kpi, slices = rules[ri]
            inputs = [_input(s, k, recent) for s in slices if k < len(s.values)]
            evs = evaluate(rule, kpi, inputs, now)
            out[ri].evaluations += len(evs)
            for ev in evs:
                fp = fingerprint(rule.id, rule.kpi, ev.slice)
                inst = instances.get(fp)
                if inst is None and not ev.observation.met:
                    continue
                inst, moves = step(inst or new_instance(rule, ev.slice), ev.observation, now)
                instances[fp] = inst
                for mv in moves:
                    if mv.to_state is AlertState.FIRING and mv.from_state is AlertState.PENDING:
                        open_eps[fp] = (mv.at, mv.severity)
                    elif fp in open_eps and mv.to_state is AlertState.FIRING:
                        open_eps[fp] = (open_eps[fp][0], max(open_eps[fp][1], mv.severity))
                    elif fp in open_eps and mv.to_state in (AlertState.RESOLVED,
                                                            AlertState.NO_DATA, AlertState.ERROR):
                        fired, peak = open_eps.pop(fp)
                        out[ri].episodes.append(Episode(fp, inst.slice, fired, mv.at, peak))
        notes, groups = plan(instances.values(), groups, now, timers,
                             muted=inhibited(instances.values()))
        for note in notes:
            ri = rule_of[dict(note.group)["rule"]]
            out[ri].sent.append(Sent(now, str(note.reason), len(note.firing),
                                     len(note.resolved)))

    for n, t in enumerate(data_times):
        for ri, k in instants[t]:
            current[ri] = max(k, current.get(ri, -1))
        nxt = data_times[n + 1] if n + 1 < len(data_times) else end + timedelta(microseconds=1)
        now: datetime | None = t
        while now is not None:
            tick(now)
            due = [x for x in _due(instances.values(), groups, timers)
                   if now < x < nxt and x <= end]
            now = min(due) if due else None
    for fp, (fired, peak) in open_eps.items():
        inst = instances[fp]
        out[rule_of[inst.rule_id]].episodes.append(Episode(fp, inst.slice, fired, None, peak))
    for r in out:
        r.episodes.sort(key=lambda e: (e.fired_at, e.fingerprint))
    return out


def _due(instances: Iterable[AlertInstance], groups: Mapping[GroupKey, GroupState],
         timers: Mapping[GroupKey, GroupTimers]) -> list[datetime]:
    """Instants at which a ticker could next change something without new data."""
    out: list[datetime] = []
    for inst in instances:
        if inst.since is None:
            continue
        if inst.state is AlertState.PENDING:
            out.append(inst.since + inst.pending_for)
        elif inst.state is AlertState.RECOVERING:
            out.append(inst.since + inst.keep_firing_for)
    for key, g in groups.items():
        t = timers.get(key, GroupTimers())
        if g.last_sent_at is None:
            out.append(g.created_at + t.group_wait)
        else:
            out += [g.last_sent_at + t.group_interval, g.last_sent_at + t.repeat_interval]
    return out


def _aware(ts: np.datetime64) -> datetime:
    us = int(ts.astype("datetime64[us]").astype(np.int64))
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _input(s: SliceHistory, k: int, recent: int) -> SliceInput:
    lo = max(0, k + 1 - recent)
    vals = s.values[lo:k + 1]
    finite = np.flatnonzero(np.isfinite(s.values[:k + 1]))
    last = _aware(s.periods[finite[-1]]) if finite.size else None
    sev = Severity(int(s.severity[k])) if k < len(s.severity) else Severity.NONE
    fc = s.forecast(k) if s.forecast is not None else np.empty(0)
    return SliceInput(s.slice, s.periods[lo:k + 1], vals, last, sev, fc)


def score(run: RuleReplay, rule: AlertRule, inputs: Sequence[str], period: timedelta,
          incidents: Sequence[Incident]) -> Score:
    """Precision, recall and mean time to detect of ``run`` against ``incidents``.

    ``inputs``: KPI ids an incident may name to concern this rule (its KPI and inputs);
    ``period``: the rule's grain as a duration (for the slack)."""
    slack = rule.for_ + 2 * period
    relevant = [i for i in incidents if i.kpi in inputs and i.start < run.end
                and i.end > run.start]
    detections: list[tuple[str, timedelta]] = []
    missed: list[str] = []
    for inc in relevant:
        hits = [e.fired_at for e in run.episodes if _compatible(e.slice, inc.dims)
                and inc.start <= e.fired_at < inc.end + slack]
        if hits:
            detections.append((inc.id, min(hits) - inc.start))
        else:
            missed.append(inc.id)
    true_eps = sum(1 for e in run.episodes if any(
        _compatible(e.slice, i.dims) and e.fired_at < i.end + slack
        and (e.resolved_at is None or e.resolved_at > i.start) for i in relevant))
    n = len(run.episodes)
    mttd = (sum((d for _, d in detections), timedelta(0)) / len(detections)
            if detections else None)
    return Score(len(relevant), len(detections), n, true_eps,
                 true_eps / n if n else None,
                 len(detections) / len(relevant) if relevant else None, mttd,
                 tuple(detections), tuple(missed))


def _compatible(slice_: SliceKey, dims: Mapping[str, str]) -> bool:
    return all(dims.get(d, v) == v for d, v in slice_)


__all__ = ["Episode", "Incident", "RuleReplay", "Score", "Sent", "SliceHistory", "replay",
           "score"]
