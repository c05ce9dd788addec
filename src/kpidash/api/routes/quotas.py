"""Quotas per workspace: enforced where KPIs and points come in, and shown to members.

The effective limits of a workspace (:func:`limits_of`) are its settings' ``quotas`` over the
server's defaults (``KPIDASH_QUOTA_*``). The routes that add KPI definitions call
:func:`register`, those that ingest points :func:`ingest`; both run under the lock
(``st.run``), so that the check and the write are one step for the workspace — two requests
cannot both pass a check that only one of them fits. A refusal raises
:class:`~kpidash.errors.QuotaExceeded` (429 with Retry-After), writes nothing and takes no
ingest tokens; only the workspace over its quota is refused, every other keeps its own
bucket and counts.

What is remembered between requests — the ingest bucket and an upper bound of the stored
points — is the workspace's quota state in the store (``Engine.quota_state``), read and
written back in the request's transaction with its row locked: several server processes on
one PostgreSQL store enforce one bucket and one count per workspace, not one each.

Stored points are counted from the store the first time and whenever a request might not
fit; between counts the server keeps an upper bound (the count plus every point written
since), so that a workspace far from its limit is not counted on every batch. The limit is
on the points *stored after* the request: a batch that would pass it by its row count is
written in a transaction, the workspace's points counted again, and the transaction rolled
back if they are over (a batch that only replaces stored points still fits). An uploaded
file's rows are known only once it is read: it is always written that way, and rolled back
when it carried more points than the ingest bucket holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from kpidash.api.deps import Shared, User
from kpidash.api.state import WorkspaceState
from kpidash.core.quota import QuotaLimits, check_kpis, check_points, check_rate
from kpidash.errors import NotFound

if TYPE_CHECKING:
    from kpidash.core.registry import Registry
    from kpidash.model import IngestResult

router = APIRouter(prefix="/api/v1", tags=["workspaces"])


def server_defaults(st: WorkspaceState) -> QuotaLimits:
    s = st.settings
    return QuotaLimits(max_kpis=s.quota_max_kpis, max_points=s.quota_max_points,
                       ingest_points_per_minute=s.quota_ingest_points_per_minute)


def limits_of(st: WorkspaceState) -> QuotaLimits:
    """The workspace's effective quotas: its own where set, else the server's."""
    return st.options.quotas.over(server_defaults(st))


def register(st: WorkspaceState, items: Sequence[Any]) -> Registry:
    """``st.engine.register(items)`` unless the new KPI ids would take the workspace past
    its ``max_kpis`` (QuotaExceeded; replacing a KPI it has is always allowed). Under the
    lock."""
    limit = limits_of(st).max_kpis
    if limit is not None:
        requested = [i["id"] for i in items
                     if isinstance(i, Mapping) and isinstance(i.get("id"), str)]
        check_kpis(st.workspace, [k.id for k in st.engine.registry], requested, limit)
    return st.engine.register(items)


def ingest(st: WorkspaceState, rows: int | None,
           write: Callable[[], IngestResult]) -> IngestResult:
    """``write()`` (an engine ingest of this workspace) within its quotas; under the lock.

    ``rows`` is the request's point count when it is known before writing (JSON, line
    protocol), None for an upload (counted as it is read). See the module's docstring.
    """
    limits = limits_of(st)
    engine, ws = st.engine, st.workspace
    rate, max_points = limits.ingest_points_per_minute, limits.max_points
    if rate is None and max_points is None:
        return write()
    # one transaction holding the workspace's quota row: workers of one server sharing a
    # PostgreSQL store take turns between reading the bucket and writing it back
    with engine.transaction():
        quota = engine.quota_state(lock=True)
        bucket = None
        if rate is not None:
            bucket = quota.bucket_at(st.clock.now(), rate)
            check_rate(ws, bucket, rows, rate)
        stored = 0
        recount = rows is None
        if max_points is not None:
            if quota.stored is None or rows is None or quota.stored + rows > max_points:
                quota.stored = engine.stored_points()
            stored = quota.stored
            recount = rows is None or stored + rows > max_points
        after = stored
        # an exception from here on rolls every write back
        result = write()
        if recount:
            if rate is not None and bucket is not None and rows is None:
                check_rate(ws, bucket, result.rows, rate)
            if max_points is not None:
                after = engine.stored_points()
                check_points(ws, stored, after, max_points, result.rows)
        # accepted: the points went through the bucket and are stored
        if bucket is not None:
            quota.bucket = bucket.taken(result.rows)
        if max_points is None:
            quota.stored = None  # not kept while unlimited: counted afresh once a limit is set
        elif recount:
            quota.stored = after
        else:
            quota.stored = stored + result.written  # ≥ the true count (written includes replaced)
        engine.put_quota_state(quota)
    return result


def usage_of(st: WorkspaceState) -> dict[str, Any]:
    """The workspace's quotas (effective, the server's defaults, its own overrides) and its
    usage now: KPI definitions, stored points, and the points it may ingest at once. Under
    the lock."""
    limits = limits_of(st)
    engine = st.engine
    points = engine.stored_points()
    rate = limits.ingest_points_per_minute
    available = (engine.quota_state().bucket_at(st.clock.now(), rate).available()
                 if rate is not None else None)
    return {"workspace": st.workspace,
            "quotas": limits.model_dump(),
            "server_defaults": server_defaults(st).model_dump(),
            "workspace_overrides": st.options.quotas.model_dump(),
            "usage": {"kpis": len(list(engine.registry)), "points": points,
                      "ingest_points_available": available}}


@router.get("/workspaces/{workspace}/usage",
            summary="A workspace's quotas and how much of them it uses (members)")
async def usage(st: Shared, me: User, workspace: str) -> dict[str, Any]:
    role = await st.cached(st.accounts.role_in, me.user_id, workspace)
    if role is None:
        raise NotFound(f"no workspace {workspace!r}")
    scope = await st.scoped(workspace)
    return await scope.run(usage_of, scope)


__all__ = ["ingest", "limits_of", "register", "router", "usage_of"]
