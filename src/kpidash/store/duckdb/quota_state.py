"""Quota state in the store: what the servers sharing it remember of a workspace's quotas
between requests (:class:`~kpidash.core.quota.QuotaState`: the ingest token bucket and an
upper bound of the stored points), one ``quota_state`` row per workspace.

It lives in the store, not in a server's memory, so that several server processes on one
PostgreSQL database enforce one bucket per workspace, not one each. The bucket's level is
an exact fraction, kept as its text (``"1200"``, ``"-7/3"``). Read with ``lock=True`` inside
a transaction, the row stays locked until the transaction ends (PostgreSQL's ``SELECT … FOR
UPDATE``; DuckDB has one process, whose store lock already serialises): concurrent ingests
of one workspace take turns between reading the bucket and writing it back.

The SQL runs on both engines; PostgreSQL sets :attr:`QuotaStateTable._FOR_UPDATE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from kpidash.core.quota import QuotaState, TokenBucket


class QuotaStateTable:
    """Mixed into the stores: needs ``_run``."""

    _FOR_UPDATE = ""
    """Appended to the read when the row must stay locked (PostgreSQL: `` FOR UPDATE``)."""

    if TYPE_CHECKING:  # provided by the store
        def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[Any]: ...

    def quota_state(self, workspace: str, *, lock: bool = False) -> QuotaState:
        """The workspace's quota state (an empty one when none is stored); ``lock``: keep
        its row locked until the current transaction ends."""
        suffix = ""
        if lock and self._FOR_UPDATE:
            # a row to lock: the first ingest of a workspace creates it
            self._run("INSERT INTO quota_state (workspace_id) VALUES (?) ON CONFLICT DO NOTHING",
                      [workspace])
            suffix = self._FOR_UPDATE
        rows = self._run("SELECT bucket_level, bucket_at, stored FROM quota_state "
                         f"WHERE workspace_id = ?{suffix}", [workspace])
        if not rows:
            return QuotaState()
        level, at, stored = rows[0]
        bucket = None if level is None or at is None else TokenBucket(Fraction(level), at)
        return QuotaState(bucket, None if stored is None else int(stored))

    def put_quota_state(self, workspace: str, state: QuotaState) -> None:
        """Store the workspace's quota state (replacing the previous one)."""
        bucket = state.bucket
        level: str | None = None if bucket is None else str(bucket.level)
        at: datetime | None = None if bucket is None else bucket.at
        self._run("INSERT INTO quota_state (workspace_id, bucket_level, bucket_at, stored) "
                  "VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id) DO UPDATE SET "
                  "bucket_level = excluded.bucket_level, bucket_at = excluded.bucket_at, "
                  "stored = excluded.stored", [workspace, level, at, state.stored])
