"""Alerts, usage and audit on PostgreSQL: ``PostgresAlertsDialect``, the dialect hook of those
areas.

NOTE for ``PostgresStore``: list ``PostgresAlertsDialect`` among its bases *before* the shared
mixins (``AlertTables``, ``UsageTables``, ``AuditTables``), so that its ``_write`` wins in
the MRO.

Rules, alert instances, history, acknowledgements, silences, group states, interactions,
insight views, corrections, annotations and anomalies run the shared SQL of
``store/duckdb/{alerts,usage,audit}.py`` through the connection adapter. The one thing that
differs is :meth:`~kpidash.store.duckdb.rows.RowWrites._write`, a set-based write that reads
an Arrow table as the relation ``_kp_rows``: DuckDB scans the local table by name; here the
table's columns are bound as typed arrays and ``_kp_rows`` is a CTE over their ``unnest``
(one statement, one round trip, whatever the row count)::

    WITH _kp_rows ("fp", "doc", …) AS (SELECT * FROM unnest(?::text[], ?::text[], …)) <sql>

``unnest`` of several arrays yields their elements side by side in order, so a statement
that numbers rows from a sequence in the order of an ``n`` column numbers them the same way
as DuckDB. The row count is PostgreSQL's (an ``ON CONFLICT DO NOTHING`` insert counts only
the rows it inserted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from kpidash.store.postgres.connection import PgConnection, arrow_to_pg_type

__all__ = ["PostgresAlertsDialect", "rows_cte"]


class PostgresAlertsDialect:
    """Mixed into PostgresStore before the shared alert, usage and audit mixins."""

    _con: PgConnection

    def _write(self, sql: str, params: Sequence[Any], rows: pa.Table | None = None) -> int:
        """Run one INSERT, UPDATE or DELETE (which reads ``rows``, when given, as the relation
        ``_kp_rows``, by its column names) and return how many rows it wrote."""
        args = list(params)
        if rows is not None:
            cte, arrays = rows_cte(rows)
            sql, args = cte + sql, [*arrays, *args]
        res = self._con.execute(sql, args).fetchall()
        return int(res[0][0]) if res else 0


def rows_cte(rows: pa.Table, name: str = "_kp_rows") -> tuple[str, list[list[Any]]]:
    """``WITH <name> (<columns>) AS (SELECT * FROM unnest(?::<type>[], …)) `` for an Arrow
    table, and its columns as Python lists (the parameters of the ``?``, in order)."""
    if rows.num_columns == 0:
        raise ValueError("a table of rows needs at least one column")
    cols = ", ".join(_ident(f.name) for f in rows.schema)
    arrays = ", ".join(f"?::{arrow_to_pg_type(f.type)}[]" for f in rows.schema)
    values = [_values(rows.column(i)) for i in range(rows.num_columns)]
    return f"WITH {_ident(name)} ({cols}) AS (SELECT * FROM unnest({arrays})) ", values


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _values(col: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    values: list[Any] = col.to_pylist()
    return values
