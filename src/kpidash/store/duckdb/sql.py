"""Small SQL-building helpers shared by the DuckDB store's modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any


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
