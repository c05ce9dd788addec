"""Small SQL-building helpers shared by the DuckDB store's modules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa

from kpidash.errors import StoreError


def optional_where(*clauses: tuple[str, Any]) -> tuple[str, list[Any]]:
    """`` AND <clause>`` for each (clause with one ``?``, value) whose value is given
    (not None or empty), and the parameters, in order."""
    sql, params = "", []
    for clause, value in clauses:
        if value is not None and value != "":
            sql += f" AND {clause}"
            params.append(value)
    return sql, params


def time_range_sql(column: str, start: datetime | None, end: datetime | None,
                   ) -> tuple[str, list[Any]]:
    """`` AND column >= ? AND column < ?`` for the bounds given, and their parameters."""
    return optional_where((f"{column} >= ?", start), (f"{column} < ?", end))


def conform(tables: Mapping[str, pa.Table], schemas: Mapping[str, pa.Schema],
            what: str) -> dict[str, pa.Table]:
    """Every table of ``schemas`` from ``tables`` with exactly its columns and types (a
    missing one: no rows); StoreError naming the table (``what`` says which kind) for an
    unknown table, other columns or columns of the wrong type."""
    unknown = sorted(set(tables) - set(schemas))
    if unknown:
        raise StoreError(f"unknown {what}(s) {', '.join(map(repr, unknown))}; expected some "
                         f"of {', '.join(schemas)}")
    out: dict[str, pa.Table] = {}
    for name, schema in schemas.items():
        tbl = tables.get(name)
        if tbl is None:
            out[name] = schema.empty_table()
            continue
        got, want = set(tbl.column_names), set(schema.names)
        if got != want:
            raise StoreError(f"{what} {name!r} has columns {sorted(got)}, expected "
                             f"{sorted(want)} (missing {sorted(want - got)}, extra "
                             f"{sorted(got - want)})")
        try:
            out[name] = tbl.select(schema.names).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise StoreError(f"{what} {name!r} has columns of the wrong type: {exc}") from None
    return out


def quote_literal(text: str) -> str:
    """Quote for a SQL string literal (ids are validated identifiers; belt and braces)."""
    return text.replace("'", "''")


def quote_ident(text: str) -> str:
    """Quote for inside a double-quoted SQL identifier."""
    return text.replace('"', '""')
