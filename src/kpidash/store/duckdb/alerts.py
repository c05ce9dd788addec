"""Alerting state of the DuckDB store: rules, alert instances, their history and
acknowledgements, silences and notification group states.

The store is generic here: it keeps JSON documents with a few key columns and never imports
``kpidash.core.alerts``. History and acknowledgements are logs (append only, a sequence keeps
insertion order); rules, instances, silences and groups are upserted by their key.

The SQL runs on DuckDB and, through its adapter, on PostgreSQL: upserts are ``INSERT … ON
CONFLICT … DO UPDATE``, JSON read from an Arrow table is cast with ``::JSON``, deletions count
``RETURNING`` rows, and set-based writes go through :meth:`RowWrites._write`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from kpidash.errors import AlertError
from kpidash.store.duckdb.periods import from_epoch_us
from kpidash.store.duckdb.rows import RowWrites
from kpidash.store.duckdb.sql import optional_where

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


class AlertTables(RowWrites):
    """Mixed into DuckDBStore: the methods over alert_rules, alert_instances, alert_history,
    alert_acks, silences and alert_groups."""

    _con: duckdb.DuckDBPyConnection

    if TYPE_CHECKING:  # provided by DuckDBStore
        def transaction(self) -> AbstractContextManager[None]: ...

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._con.execute(sql, params).fetchall()

    # -- rules ----------------------------------------------------------------------------

    def put_alert_rules(self, workspace: str, rules: Sequence[Mapping[str, Any]],
                        now: datetime) -> None:
        """Insert or replace rule definitions (JSON-able mappings with an ``id``)."""
        with self.transaction():
            for rule in rules:
                self._rows(
                    "INSERT INTO alert_rules (workspace_id, rule_id, definition, updated_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id, rule_id) DO UPDATE SET "
                    "definition = excluded.definition, updated_at = excluded.updated_at",
                    [workspace, str(rule["id"]), _dumps(rule), now])

    def alert_rules(self, workspace: str) -> list[dict[str, Any]]:
        """Rule definitions, by id."""
        rows = self._rows("SELECT definition FROM alert_rules WHERE workspace_id = ? "
                          "ORDER BY rule_id", [workspace])
        return [json.loads(r[0]) for r in rows]

    def delete_alert_rule(self, workspace: str, rule_id: str) -> bool:
        """Delete a rule with its alert instances, their history and acknowledgements."""
        with self.transaction():
            doomed = ("SELECT fingerprint FROM alert_instances WHERE workspace_id = ? "
                      "AND rule_id = ?")
            for table in ("alert_history", "alert_acks"):
                self._rows(f"DELETE FROM {table} WHERE workspace_id = ? AND fingerprint IN "
                           f"({doomed})", [workspace, workspace, rule_id])
            self._rows("DELETE FROM alert_instances WHERE workspace_id = ? AND rule_id = ?",
                       [workspace, rule_id])
            row = self._rows("DELETE FROM alert_rules WHERE workspace_id = ? AND rule_id = ? "
                             "RETURNING rule_id", [workspace, rule_id])
        return bool(row)

    # -- alert instances (one per fingerprint) ---------------------------------------------

    def put_alert_instances(self, workspace: str, docs: Sequence[Mapping[str, Any]],
                            now: datetime) -> None:
        """Insert or replace alert documents by ``fingerprint``."""
        if not docs:
            return
        # one statement over an Arrow table (see RowWrites): a tick rewrites ~900 alerts
        rows = pa.table({
            "fp": [str(d["fingerprint"]) for d in docs],
            "rule_id": [str(d["rule_id"]) for d in docs],
            "kpi_id": [str(d["kpi_id"]) for d in docs],
            "state": [str(d["state"]) for d in docs],
            "severity": pa.array([_opt_str(d.get("severity")) for d in docs], pa.string()),
            "doc": [_dumps(d) for d in docs]})
        with self.transaction():
            self._write(
                "INSERT INTO alert_instances (workspace_id, fingerprint, rule_id, kpi_id, state, "
                "severity, doc, updated_at) SELECT ?, fp, rule_id, kpi_id, state, severity, "
                "doc::JSON, ?::TIMESTAMPTZ FROM _kp_rows ON CONFLICT (workspace_id, fingerprint) "
                "DO UPDATE SET rule_id = excluded.rule_id, kpi_id = excluded.kpi_id, "
                "state = excluded.state, severity = excluded.severity, doc = excluded.doc, "
                "updated_at = excluded.updated_at", [workspace, now], rows)

    def alert_instances(self, workspace: str, *, rule_id: str | None = None,
                        states: Sequence[str] | None = None, fingerprint: str | None = None,
                        ) -> list[dict[str, Any]]:
        """Alert documents, by fingerprint; ``states=[]`` matches none."""
        if states is not None and not states:
            return []
        where, params = optional_where(("rule_id = ?", rule_id),
                                       ("fingerprint = ?", fingerprint))
        if states:
            where += f" AND state IN ({', '.join('?' * len(states))})"
            params += [str(s) for s in states]
        rows = self._rows(f"SELECT doc FROM alert_instances WHERE workspace_id = ?{where} "
                          "ORDER BY fingerprint", [workspace, *params])
        return [json.loads(r[0]) for r in rows]

    # -- history (append only) -------------------------------------------------------------

    def add_alert_history(self, workspace: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append state transitions; a value that is NaN or infinite is stored as NULL."""
        if not rows:
            return
        table = pa.table({
            "n": pa.array(range(len(rows)), pa.int64()),
            "fp": pa.array([str(r["fingerprint"]) for r in rows], pa.string()),
            "src": pa.array([_opt_str(r.get("from_state")) for r in rows], pa.string()),
            "dst": pa.array([str(r["to_state"]) for r in rows], pa.string()),
            "ts": pa.array([r["at"] for r in rows], pa.timestamp("us", tz="UTC")),
            "sev": pa.array([_opt_str(r.get("severity")) for r in rows], pa.string()),
            "value": pa.array([_finite(r.get("value")) for r in rows], pa.float64()),
            "detail": pa.array([_opt_str(r.get("detail")) for r in rows], pa.string())})
        with self.transaction():  # one statement, in the given order (see put_alert_instances)
            self._write(
                "INSERT INTO alert_history (seq, workspace_id, fingerprint, from_state, "
                "to_state, at_ts, severity, value, detail) SELECT nextval('alert_history_seq'), "
                "?, fp, src, dst, ts, sev, value, detail FROM (SELECT * FROM _kp_rows ORDER BY n) "
                "AS r", [workspace], table)

    def alert_history(self, workspace: str, fingerprint: str | None = None,
                      since: datetime | None = None, limit: int | None = None,
                      ) -> list[dict[str, Any]]:
        """Transitions oldest first (by time, then insertion); ``limit`` keeps the latest."""
        where, params = optional_where(("fingerprint = ?", fingerprint), ("at_ts >= ?", since))
        sql = ("SELECT seq, fingerprint, from_state, to_state, epoch_us(at_ts), severity, value, "
               f"detail FROM alert_history WHERE workspace_id = ?{where} "
               "ORDER BY at_ts DESC, seq DESC")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(int(limit), 0))
        rows = self._rows(f"SELECT * FROM ({sql}) AS h ORDER BY 5, 1", [workspace, *params])
        return [{"fingerprint": fp, "from_state": a, "to_state": b, "at": from_epoch_us(at),
                 "severity": sev, "value": math.nan if v is None else float(v), "detail": det}
                for _, fp, a, b, at, sev, v, det in rows]

    # -- acknowledgements (a log) ----------------------------------------------------------

    def add_acknowledgement(self, workspace: str, fingerprint: str, by: str, at: datetime,
                            comment: str) -> None:
        """Log that ``by`` acknowledged an alert."""
        self._rows("INSERT INTO alert_acks (seq, workspace_id, fingerprint, ack_by, at_ts, "
                   "comment) VALUES (nextval('alert_ack_seq'), ?, ?, ?, ?, ?)",
                   [workspace, fingerprint, by, at, comment])

    def acknowledgements(self, workspace: str, fingerprint: str | None = None,
                         ) -> list[dict[str, Any]]:
        """Acknowledgements oldest first: fingerprint, by, at, comment."""
        where, params = optional_where(("fingerprint = ?", fingerprint))
        rows = self._rows(
            "SELECT fingerprint, ack_by, epoch_us(at_ts), comment FROM alert_acks "
            f"WHERE workspace_id = ?{where} ORDER BY at_ts, seq", [workspace, *params])
        return [{"fingerprint": fp, "by": by, "at": from_epoch_us(at), "comment": c}
                for fp, by, at, c in rows]

    # -- silences --------------------------------------------------------------------------

    def put_silence(self, workspace: str, doc: Mapping[str, Any], now: datetime) -> None:
        """Insert or replace a silence by ``id``; its first creation time is kept.

        ``start`` and ``end`` are datetimes or ISO 8601 strings with an offset; datetimes are
        stored in the document as ISO strings."""
        start, end = _when(doc["start"], "start"), _when(doc["end"], "end")
        doc = {**doc, **{k: v.isoformat() for k, v in (("start", doc["start"]),
                                                        ("end", doc["end"]))
                         if isinstance(v, datetime)}}
        self._rows(
            "INSERT INTO silences (workspace_id, silence_id, start_ts, end_ts, doc, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (workspace_id, silence_id) DO UPDATE SET start_ts = excluded.start_ts, "
            "end_ts = excluded.end_ts, doc = excluded.doc, updated_at = excluded.updated_at",
            [workspace, str(doc["id"]), start, end, _dumps(doc), now, now])

    def silences(self, workspace: str, *, active_at: datetime | None = None,
                 ) -> list[dict[str, Any]]:
        """Silence documents by start then id; with ``active_at``, those with
        start <= active_at < end."""
        where, params = optional_where(("start_ts <= ?", active_at), ("end_ts > ?", active_at))
        rows = self._rows(f"SELECT doc FROM silences WHERE workspace_id = ?{where} "
                          "ORDER BY start_ts, silence_id", [workspace, *params])
        return [json.loads(r[0]) for r in rows]

    def delete_silence(self, workspace: str, silence_id: str) -> bool:
        row = self._rows("DELETE FROM silences WHERE workspace_id = ? AND silence_id = ? "
                         "RETURNING silence_id", [workspace, silence_id])
        return bool(row)

    # -- notification groups ---------------------------------------------------------------

    def alert_groups(self, workspace: str) -> dict[str, dict[str, Any]]:
        """Group key → group state document."""
        rows = self._rows("SELECT group_key, doc FROM alert_groups WHERE workspace_id = ? "
                          "ORDER BY group_key", [workspace])
        return {str(k): json.loads(d) for k, d in rows}

    def put_alert_groups(self, workspace: str,
                         groups: Mapping[str, Mapping[str, Any] | None], now: datetime) -> None:
        """Insert or replace group states; a None value deletes that group."""
        gone = [k for k, d in groups.items() if d is None]
        kept = [(k, d) for k, d in groups.items() if d is not None]
        table = pa.table({"k": pa.array([k for k, _ in kept], pa.string()),
                          "doc": pa.array([_dumps(d) for _, d in kept], pa.string())})
        with self.transaction():  # set-based, as put_alert_instances
            if gone:
                self._rows(f"DELETE FROM alert_groups WHERE workspace_id = ? AND group_key IN "
                           f"({', '.join('?' * len(gone))})", [workspace, *gone])
            if kept:
                self._write(
                    "INSERT INTO alert_groups (workspace_id, group_key, doc, updated_at) "
                    "SELECT ?, k, doc::JSON, ?::TIMESTAMPTZ FROM _kp_rows ON CONFLICT "
                    "(workspace_id, group_key) DO UPDATE SET doc = excluded.doc, "
                    "updated_at = excluded.updated_at", [workspace, now], table)

    # -- freshness -------------------------------------------------------------------------

    def last_seen(self, workspace: str, kpi_ids: Sequence[str], by: str | None = None,
                  ) -> dict[tuple[str, str | None], datetime]:
        """Latest point time per (kpi, value of dimension ``by``); series without the
        dimension (or every series, when ``by`` is None) count under None."""
        if not kpi_ids:
            return {}
        marks = ", ".join("?" * len(kpi_ids))
        join = ("LEFT JOIN series_dims d ON d.series_id = s.series_id AND d.dim = ?"
                if by is not None else "")
        group = "d.value" if by is not None else "NULL::VARCHAR"
        params: list[Any] = ([by] if by is not None else []) + [workspace, *kpi_ids]
        rows = self._rows(
            f"SELECT s.kpi_id, {group} AS grp, epoch_us(max(s.last_ts)) FROM series s {join} "
            f"WHERE s.workspace_id = ? AND s.kpi_id IN ({marks}) AND s.last_ts IS NOT NULL "
            "GROUP BY s.kpi_id, grp", params)
        return {(str(k), None if g is None else str(g)): from_epoch_us(us) for k, g, us in rows}


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(dict(doc), sort_keys=True, allow_nan=False)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _when(value: datetime | str, name: str) -> datetime:
    """A timezone-aware datetime from a datetime or an ISO 8601 string with an offset."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None or when.utcoffset() is None:
        raise AlertError(f"silence {name} {value!r} has no UTC offset; give an ISO 8601 time "
                         "with an offset such as 2024-01-01T00:00:00+00:00")
    return when
