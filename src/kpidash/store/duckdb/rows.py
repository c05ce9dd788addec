"""Set-based writes from an Arrow table: the one dialect hook of the alert, usage and audit
mixins.

A write of many rows is one statement that reads them as the relation ``_kp_rows`` (a tick
rewriting ~900 alert instances took 2.0–2.6 s row by row on DuckDB, 20–50 ms as one
statement). DuckDB reads the local Arrow table by name (its replacement scan);
:class:`kpidash.store.postgres.alerts.PgRowWrites` overrides :meth:`RowWrites._write` to bind
the columns as arrays instead, so the SQL around ``_kp_rows`` is shared by both engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa


class RowWrites:
    """Mixed into the stores through the alert, usage and audit mixins."""

    _con: Any  # duckdb.DuckDBPyConnection here; the PostgreSQL store's adapter there

    def _write(self, sql: str, params: Sequence[Any], rows: pa.Table | None = None) -> int:
        """Run one INSERT, UPDATE or DELETE (which reads ``rows``, when given, as the relation
        ``_kp_rows``, by its column names) and return how many rows it wrote."""
        _kp_rows = rows  # read by name by DuckDB's replacement scan
        res = self._con.execute(sql, list(params)).fetchall()
        return int(res[0][0]) if res else 0
