"""Usage of the DuckDB store: recorded user interactions and the insights each user was shown.

Interactions are a log (append only; a sequence keeps insertion order) with filters kept as
canonical JSON — sorted dimensions, sorted distinct values — so the same filter set is the
same text however it was sent. Insight views are one row per (user, insight key), upserted.
Both writes are one statement over an Arrow table (:meth:`RowWrites._write`: DuckDB's
replacement scan, arrays on PostgreSQL); the SQL runs on both engines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from kpidash.errors import QueryError
from kpidash.store.duckdb.periods import from_epoch_us
from kpidash.store.duckdb.rows import RowWrites
from kpidash.store.duckdb.sql import optional_where

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


class UsageTables(RowWrites):
    """Mixed into DuckDBStore: the methods over interactions and insight_views."""

    _con: duckdb.DuckDBPyConnection

    if TYPE_CHECKING:  # provided by DuckDBStore
        def transaction(self) -> AbstractContextManager[None]: ...

    # -- interactions (a log) --------------------------------------------------------------

    def record_interactions(self, workspace: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append interactions (user, role, kind, kpi_id, filters, at), in the given order."""
        if not rows:
            return
        table = pa.table({
            "n": pa.array(range(len(rows)), pa.int64()),
            "user_id": pa.array([_text(r.get("user"), "user") for r in rows], pa.string()),
            "role": pa.array([_opt_str(r.get("role")) for r in rows], pa.string()),
            "kind": pa.array([_text(r.get("kind"), "kind") for r in rows], pa.string()),
            "kpi_id": pa.array([_opt_str(r.get("kpi_id")) for r in rows], pa.string()),
            "filters": pa.array([filters_json(r.get("filters")) for r in rows], pa.string()),
            "at_ts": pa.array([_aware(r.get("at")) for r in rows],
                              pa.timestamp("us", tz="UTC"))})
        with self.transaction():
            self._write(
                "INSERT INTO interactions (seq, workspace_id, user_id, role, kind, kpi_id, "
                "filters, at_ts) SELECT nextval('interaction_seq'), ?, user_id, role, kind, "
                "kpi_id, filters::JSON, at_ts FROM (SELECT * FROM _kp_rows ORDER BY n) AS r",
                [workspace], table)

    def interactions(self, workspace: str, *, user: str | None = None,
                     since: datetime | None = None, kinds: Sequence[str] | None = None,
                     ) -> list[dict[str, Any]]:
        """Interactions oldest first (by time, then insertion); ``kinds=[]`` matches none."""
        if kinds is not None and not kinds:
            return []
        where, params = optional_where(("user_id = ?", user), ("at_ts >= ?", since))
        if kinds:
            where += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params += [str(k) for k in kinds]
        rows = self._con.execute(
            "SELECT user_id, role, kind, kpi_id, filters, epoch_us(at_ts) FROM interactions "
            f"WHERE workspace_id = ?{where} ORDER BY at_ts, seq", [workspace, *params],
        ).fetchall()
        return [{"user": u, "role": role, "kind": kind, "kpi_id": kpi, "filters": json.loads(f),
                 "at": from_epoch_us(at)} for u, role, kind, kpi, f, at in rows]

    # -- insight views ---------------------------------------------------------------------

    def mark_insights_shown(self, workspace: str, user: str, keys: Sequence[str],
                            now: datetime) -> None:
        """Count one showing of each key (a key repeated in ``keys`` counts once)."""
        uniq = sorted({str(k) for k in keys})
        if not uniq:
            return
        with self.transaction():
            self._write(
                "INSERT INTO insight_views (workspace_id, user_id, insight_key, first_shown, "
                "last_shown, times) SELECT ?, ?, k, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, 1 "
                "FROM _kp_rows ON CONFLICT (workspace_id, user_id, insight_key) DO UPDATE SET "
                "last_shown = excluded.last_shown, times = insight_views.times + 1",
                [workspace, user, _aware(now), _aware(now)],
                pa.table({"k": pa.array(uniq, pa.string())}))

    def insight_views(self, workspace: str, user: str) -> dict[str, tuple[int, datetime]]:
        """Insight key → (times shown, last shown) for one user."""
        rows = self._con.execute(
            "SELECT insight_key, times, epoch_us(last_shown) FROM insight_views "
            "WHERE workspace_id = ? AND user_id = ? ORDER BY insight_key",
            [workspace, user]).fetchall()
        return {str(k): (int(n), from_epoch_us(us)) for k, n, us in rows}


def filters_json(filters: Mapping[str, Any] | None) -> str:
    """Canonical JSON of a filter set: sorted dimensions, each with its sorted distinct values
    (a single string counts as one value)."""
    out: dict[str, list[str]] = {}
    for dim, values in (filters or {}).items():
        vals = [values] if isinstance(values, str) else list(values)
        out[str(dim)] = sorted({str(v) for v in vals})
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise QueryError(f"an interaction needs a non-empty {name}, got {value!r}")
    return value


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise QueryError(f"interaction times must be timezone-aware datetimes, got {value!r}")
    return value
