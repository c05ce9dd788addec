"""Workspace quotas: the limits, a token bucket for the ingest rate, and the decisions.

Three limits, each ``None`` for unlimited:

* ``max_kpis`` — KPI definitions a workspace may hold;
* ``max_points`` — raw points it may store;
* ``ingest_points_per_minute`` — points it may send per minute, as a token bucket of that
  capacity refilled continuously at ``ingest_points_per_minute / 60`` tokens per second: a
  full bucket lets one minute's worth through at once, an empty one refills in a minute.

A workspace's own settings may override each limit; the effective limit is the override when
set, else the server's default (:meth:`QuotaLimits.over`). Everything here is pure: time comes
in as ``now``, counts as arguments. The bucket's level is an exact :class:`~fractions.Fraction`
so that waiting the ``retry_after`` seconds it announces always suffices (no float rounding).

A refusal is a :class:`~kpidash.errors.QuotaExceeded` naming the workspace, the quota, its
limit and what the request needed, with ``retry_after`` seconds: the time until the bucket
holds enough for the rate, :data:`PERMANENT_RETRY_AFTER` for the KPI and stored-point limits
(waiting does not free anything: data must be deleted or the quota raised) and for a batch
larger than a minute's worth (it must be split).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field

from kpidash.errors import QuotaExceeded

PERMANENT_RETRY_AFTER = 3600
"""Retry-After (seconds) of a refusal that waiting does not cure (KPIs, stored points)."""
_MICROS_PER_MINUTE = 60_000_000
_RAISE = "ask a server administrator to raise the quota"


class QuotaLimits(BaseModel):
    """Limits of one workspace; ``None`` = unlimited (or, as an override, "use the server's
    default"). Unknown fields are refused; a limit is a positive integer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_kpis: int | None = Field(default=None, gt=0, strict=True,
                                 description="KPI definitions the workspace may hold")
    max_points: int | None = Field(default=None, gt=0, strict=True,
                                   description="raw points the workspace may store")
    ingest_points_per_minute: int | None = Field(
        default=None, gt=0, strict=True, description="points the workspace may send per minute")

    def over(self, defaults: QuotaLimits) -> QuotaLimits:
        """The effective limits: each of these that is set, else the one of ``defaults``."""
        return QuotaLimits(
            max_kpis=_first(self.max_kpis, defaults.max_kpis),
            max_points=_first(self.max_points, defaults.max_points),
            ingest_points_per_minute=_first(self.ingest_points_per_minute,
                                            defaults.ingest_points_per_minute))


def _first(own: int | None, default: int | None) -> int | None:
    return own if own is not None else default


@dataclass(frozen=True)
class TokenBucket:
    """``level`` tokens at instant ``at``; one token is one point. Refilled continuously at
    ``per_minute / 60`` tokens per second up to ``per_minute`` (the capacity), which the
    caller passes on every call, so a changed quota takes effect at once (a lowered one
    clamps the level)."""

    level: Fraction
    at: datetime

    @classmethod
    def full(cls, per_minute: int, now: datetime) -> TokenBucket:
        return cls(Fraction(per_minute), now)

    def refilled(self, now: datetime, per_minute: int) -> TokenBucket:
        """The bucket at ``now``. A clock that went back refills nothing (and moves ``at``
        back, so the time is not counted twice when it goes forward again)."""
        elapsed = now - self.at
        micros = max(0, (elapsed.days * 86_400 + elapsed.seconds) * 1_000_000
                     + elapsed.microseconds)
        level = min(Fraction(per_minute),
                    self.level + Fraction(micros * per_minute, _MICROS_PER_MINUTE))
        return TokenBucket(level, now)

    def taken(self, n: int) -> TokenBucket:
        """The bucket after ``n`` points went through (may go below zero only if the caller
        took more than :meth:`allows`, which :func:`check_rate` prevents)."""
        return replace(self, level=self.level - n)

    def allows(self, n: int) -> bool:
        return n <= self.level

    def seconds_until(self, n: int, per_minute: int) -> int:
        """Whole seconds (≥ 1) until the bucket holds ``n`` tokens (``n`` at most the
        capacity): ⌈(n − level) · 60 / per_minute⌉."""
        missing = Fraction(n) - self.level
        return max(1, math.ceil(missing * 60 / per_minute))

    def available(self) -> int:
        """Whole tokens in the bucket now (never negative)."""
        return max(0, math.floor(self.level))


@dataclass
class QuotaState:
    """What a server remembers of one workspace's quotas between requests: its ingest
    bucket (None until the rate is first limited) and ``stored``, an upper bound of its
    stored points (None: count them again). Mutable; the caller serialises access."""

    bucket: TokenBucket | None = None
    stored: int | None = None

    def bucket_at(self, now: datetime, per_minute: int) -> TokenBucket:
        """The bucket refilled to ``now`` (full the first time), remembered."""
        self.bucket = (TokenBucket.full(per_minute, now) if self.bucket is None
                       else self.bucket.refilled(now, per_minute))
        return self.bucket


def check_rate(workspace: str, bucket: TokenBucket, n: int | None, per_minute: int) -> None:
    """QuotaExceeded unless a request of ``n`` points fits in ``bucket`` (already refilled to
    now). ``n`` None: a request whose points are counted only as it is read (an uploaded
    file) needs at least one. A request larger than the capacity can never fit, however long
    it waits: it is told to split itself, with the :data:`PERMANENT_RETRY_AFTER` of a refusal
    that waiting does not cure (a client that retries the same batch must not hammer)."""
    need = 1 if n is None else n
    if bucket.allows(need):
        return
    quota = f"ingest_points_per_minute quota of {per_minute:,} points"
    if need > per_minute:
        wait = bucket.seconds_until(per_minute, per_minute)
        raise QuotaExceeded(
            f"workspace {workspace!r} is over its {quota}: this request carries {need:,} "
            f"points, more than a minute allows; nothing was written. Split it into batches "
            f"of at most {per_minute:,} points (the first may be sent in {wait} s), or {_RAISE}",
            retry_after=PERMANENT_RETRY_AFTER, workspace=workspace,
            quota="ingest_points_per_minute", limit=per_minute, needed=need)
    wait = bucket.seconds_until(need, per_minute)
    carries = (f"this request carries {need:,} points" if n is not None
               else "this upload's points are counted as it is read")
    raise QuotaExceeded(
        f"workspace {workspace!r} is over its {quota}: {carries} and "
        f"{bucket.available():,} may be sent now; nothing was written. Retry in {wait} s "
        f"(Retry-After), send smaller batches, or {_RAISE}",
        retry_after=wait, workspace=workspace, quota="ingest_points_per_minute",
        limit=per_minute, needed=need)


def check_points(workspace: str, stored: int, after: int, limit: int, rows: int) -> None:
    """QuotaExceeded when a request of ``rows`` points would leave the workspace storing
    ``after`` points (it stores ``stored`` now) and that is over ``limit``."""
    if after <= limit:
        return
    raise QuotaExceeded(
        f"workspace {workspace!r} would exceed its max_points quota of {limit:,} stored "
        f"points: it stores {stored:,} and this request of {rows:,} points would bring it to "
        f"{after:,}; nothing was written. Delete data (DELETE /kpis/{{kpi_id}}?purge=true) "
        f"or {_RAISE}",
        retry_after=PERMANENT_RETRY_AFTER, workspace=workspace, quota="max_points",
        limit=limit, needed=after)


def check_kpis(workspace: str, existing: Collection[str], requested: Collection[str],
               limit: int) -> None:
    """QuotaExceeded when adding the ``requested`` KPI ids to the ``existing`` ones would
    make more than ``limit`` definitions (replacing an existing KPI is always allowed)."""
    new = sorted(set(requested) - set(existing))
    after = len(existing) + len(new)
    if after <= limit or not new:
        return
    shown = ", ".join(new[:5]) + (f" and {len(new) - 5} more" if len(new) > 5 else "")
    raise QuotaExceeded(
        f"workspace {workspace!r} would exceed its max_kpis quota of {limit:,} KPI "
        f"definitions: it has {len(existing):,} and this request adds {len(new):,} new "
        f"({shown}); nothing was stored. Delete KPIs (DELETE /kpis/{{kpi_id}}) or {_RAISE}",
        retry_after=PERMANENT_RETRY_AFTER, workspace=workspace, quota="max_kpis",
        limit=limit, needed=after)


__all__ = ["PERMANENT_RETRY_AFTER", "QuotaLimits", "QuotaState", "TokenBucket", "check_kpis",
           "check_points", "check_rate"]
