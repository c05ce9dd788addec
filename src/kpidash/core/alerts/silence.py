"""Silences and inhibition: which active alerts are muted at ``now``.

A :class:`Silence` holds label matchers in the Alertmanager style (``=``, ``!=``, ``=~``,
``!~``; regexes are anchored at both ends; a missing label matches as the empty string)
over the labels of :meth:`AlertInstance.labels` — ``kpi``, ``rule``, ``severity`` and the
slice's dimensions. It is active in ``[start, end)`` and expires on its own: its state is a
function of ``now`` (:func:`silence_state`); :func:`expire` ends one early.

Inhibition: an active critical alert on a KPI slice mutes the lower-severity active alerts
of the same KPI and slice (other rules included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from kpidash.core.alerts.state import AlertInstance
from kpidash.core.anomaly.result import Severity
from kpidash.errors import AlertError, IllegalTransition


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NOT_RE = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    """``name op value``; a bad regex raises AlertError at construction."""

    name: str
    value: str
    op: MatchOp = MatchOp.EQ
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise AlertError("a silence matcher needs a label name (kpi, rule, severity or a "
                             "dimension)")
        if self.op in (MatchOp.RE, MatchOp.NOT_RE):
            try:
                rx = re.compile(rf"(?:{self.value})\Z")
            except re.error as exc:
                raise AlertError(f"matcher {self.name}{self.op}{self.value!r} is not a valid "
                                 f"regular expression: {exc}") from None
            object.__setattr__(self, "_regex", rx)

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self._regex is not None:
            hit = self._regex.match(got) is not None
            return hit if self.op is MatchOp.RE else not hit
        return (got == self.value) if self.op is MatchOp.EQ else (got != self.value)


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes matching alerts during ``[start, end)``. All matchers must match."""

    id: str
    matchers: tuple[Matcher, ...]
    start: datetime
    end: datetime
    created_by: str
    comment: str = ""

    def __post_init__(self) -> None:
        if not self.matchers:
            raise AlertError(f"silence {self.id!r} has no matchers and would mute every alert; "
                             "add at least one, e.g. kpi=revenue")
        if self.end < self.start:
            raise AlertError(f"silence {self.id!r} ends ({self.end.isoformat()}) before it "
                             f"starts ({self.start.isoformat()}); end must be later")
        if not self.created_by.strip():
            raise AlertError(f"silence {self.id!r} needs created_by (who made it)")

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


def silence_state(s: Silence, now: datetime) -> SilenceState:
    if now < s.start:
        return SilenceState.PENDING
    return SilenceState.ACTIVE if now < s.end else SilenceState.EXPIRED


def expire(s: Silence, now: datetime) -> Silence:
    """End an active silence at ``now``; a pending or expired one cannot be expired."""
    state = silence_state(s, now)
    if state is not SilenceState.ACTIVE:
        raise IllegalTransition(f"silence {s.id!r} is {state}; only an active silence can be "
                                "expired (delete a pending one instead)")
    return replace(s, end=now)


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now: datetime
                ) -> Silence | None:
    """The first active silence matching ``labels``, or None."""
    for s in silences:
        if silence_state(s, now) is SilenceState.ACTIVE and s.matches(labels):
            return s
    return None


def inhibited(instances: Iterable[AlertInstance]) -> frozenset[str]:
    """Fingerprints of active alerts muted by an active critical alert on the same KPI slice."""
    active = [a for a in instances if a.active]
    critical = {(a.kpi_id, a.slice) for a in active if a.severity is Severity.CRITICAL}
    return frozenset(a.fingerprint for a in active
                     if a.severity < Severity.CRITICAL and (a.kpi_id, a.slice) in critical)


def muted(instances: Iterable[AlertInstance], silences: Iterable[Silence], now: datetime
          ) -> frozenset[str]:
    """Fingerprints of alerts that are silenced or inhibited at ``now``."""
    items = list(instances)
    sil = list(silences)
    out = set(inhibited(items))
    out.update(a.fingerprint for a in items if silenced_by(a.labels(), sil, now) is not None)
    return frozenset(out)
