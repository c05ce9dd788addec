"""The interaction and insight methods of :class:`kpidash.engine.Engine` (what users looked
at, ranked insights, digests), mixed into it; the work is in :mod:`kpidash.engine.insights`
and :mod:`kpidash.core.insights`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kpidash.core import aggregate as agg
from kpidash.errors import QueryError
from kpidash.model import Grain

if TYPE_CHECKING:
    from kpidash.clock import Clock
    from kpidash.core.insights import Digest, Ranked
    from kpidash.core.registry import Registry
    from kpidash.store.base import Store


class InsightsMixin:
    """Needs ``store``, ``clock``, ``workspace``, ``timezone`` and ``_registry`` from the
    engine."""

    if TYPE_CHECKING:
        store: Store
        clock: Clock
        workspace: str
        timezone: str
        _registry: Registry

    # -- interactions ----------------------------------------------------------------------

    def record_interaction(self, user: str, kind: str, *, kpi_id: str | None = None,
                           filters: Mapping[str, str | Sequence[str]] | None = None,
                           role: str | None = None, at: datetime | None = None) -> None:
        """Record what a user did (``view_kpi``, ``apply_filter``, ``save_filter``,
        ``open_dashboard`` …) at ``at`` (now by default); insights learn from it."""
        if not isinstance(user, str) or not user.strip():
            raise QueryError("an interaction needs the user who did it")
        if not isinstance(kind, str) or not kind.strip():
            raise QueryError("an interaction needs a kind, such as 'view_kpi' or "
                             "'apply_filter'")
        at = at or self.clock.now()
        if at.tzinfo is None or at.utcoffset() is None:
            raise QueryError(f"interaction time must be timezone-aware, got {at.isoformat()}")
        flt = {d: [v] if isinstance(v, str) else list(v) for d, v in (filters or {}).items()}
        for d, values in flt.items():
            if not values or not all(isinstance(v, str) and v for v in values):
                raise QueryError(f"filter {d!r} needs one or more non-empty text values, got "
                                 f"{values!r}")
        if kpi_id is not None:
            self._registry.get(kpi_id)  # NotFound names the known KPIs
            agg.check_dimensions(agg.Query(kpi_id, Grain.DAY, at, at + timedelta(days=1),
                                           self.timezone, {d: tuple(v) for d, v in flt.items()}),
                                 self._registry)
        else:
            known = {d for k in self._registry for d in k.dimensions}
            unknown = sorted(set(flt) - known)
            if unknown:
                raise QueryError(f"no KPI has dimension {', '.join(map(repr, unknown))}; "
                                 f"available: {sorted(known) or 'none'}")
        self.store.record_interactions(self.workspace, [{
            "user": user, "role": role, "kind": kind, "kpi_id": kpi_id, "filters": flt,
            "at": at}])

    def interactions(self, user: str | None = None, since: datetime | None = None,
                     ) -> list[dict[str, Any]]:
        """Recorded interactions (user, role, kind, kpi_id, filters, at), oldest first."""
        return self.store.interactions(self.workspace, user=user, since=since)

    # -- insights --------------------------------------------------------------------------

    def insights(self, user: str | None = None, *, limit: int | None = 20,
                 diverse: bool = True, kpi_ids: Sequence[str] | None = None,
                 types: Sequence[str] | None = None, mark_shown: bool = False,
                 ) -> list[Ranked]:
        """Ranked insights at the clock's now (see :mod:`kpidash.engine.insights`).

        With ``user`` the ranking uses their affinity (views, filters) and novelty (what they
        were shown: ``mark_shown`` records this list as shown); ``diverse`` keeps one insight
        per KPI in the top five.
        """
        from kpidash.engine import insights as insights_

        return insights_.ranked(self, self.clock.now(), user=user, kpi_ids=kpi_ids,
                                types=types, limit=limit, diverse=diverse,
                                mark_shown=mark_shown)

    def digest(self, user: str, *, followed: Sequence[str] = (), limit: int = 10,
               mark_shown: bool = True) -> Digest:
        """The user's digest of ``followed`` KPIs (all when empty): JSON, text and HTML."""
        from kpidash.core.insights import build_digest

        for kpi_id in followed:
            self._registry.get(kpi_id)
        ranked = self.insights(user, limit=None, kpi_ids=list(followed) or None)
        digest = build_digest(ranked, user=user, followed=followed, now=self.clock.now(),
                              limit=limit)
        if mark_shown and digest.items:
            self.store.mark_insights_shown(self.workspace, user,
                                           [r.insight.key for r in digest.items],
                                           self.clock.now())
        return digest

