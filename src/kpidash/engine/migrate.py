"""Copy a whole store into a new, empty one by URL (``kpidash migrate``): the stores are
opened here, the copy and its verification are ``kpidash.store.migrate``'s. The CLI calls
this, never a store."""

from __future__ import annotations

from contextlib import ExitStack

from kpidash.store.base import open_store
from kpidash.store.migrate import GLOBAL_SCOPE, MigrationReport, Progress, TableCheck, check_urls
from kpidash.store.migrate import migrate as copy_store

__all__ = ["GLOBAL_SCOPE", "MigrationReport", "Progress", "TableCheck", "migrate_store"]


def migrate_store(source: str, target: str, *, progress: Progress | None = None,
                  ) -> MigrationReport:
    """Open the stores at URLs ``source`` and ``target`` (DuckDB paths or ``duckdb:PATH``,
    ``postgresql://…``), copy everything into the empty target in one transaction, read it
    back and compare; both stores are closed at the end. See ``kpidash.store.migrate``."""
    check_urls(source, target)
    with ExitStack() as stack:
        src = open_store(source)
        stack.callback(src.close)
        dst = open_store(target)
        stack.callback(dst.close)
        return copy_store(src, dst, progress=progress)
