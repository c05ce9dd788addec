"""Copy a whole store into another, empty one — DuckDB to PostgreSQL or back (``kpidash migrate``).

What is copied: every workspace through ``export_workspace``/``import_workspace`` (the tables
of a workspace archive, see ``store/archive.py``), then the server-wide tables through
``export_global``/``import_global`` (workspace records with their times, users, sessions,
login failures, memberships, ingest tokens — ids kept). All of it is imported in ONE
transaction of the target: a failure leaves the target as it was. Workspaces are exported one
at a time, so memory holds one workspace's tables, not the store's.

Then every table is read back from the target and compared with what was read from the
source: row counts and order-independent checksums (:func:`~kpidash.store.archive.table_checksum`).
Store-wide sequence numbers (annotation ids, alert history and interaction sequence numbers,
series ids) are renumbered by the import in their original order, as for an archive; the
checksums compare their ranks.

The target must be empty: the ``default`` workspace that every store creates on open, holding
nothing, and no other workspace, user, session or token. Both stores must be at the same
schema version. Nothing here knows an engine: it works on any two :class:`Store`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from kpidash.errors import Conflict, SchemaVersionError, StoreError
from kpidash.model import DEFAULT_WORKSPACE
from kpidash.store.archive import table_checksum
from kpidash.store.base import Store, redact_url

GLOBAL_SCOPE = "(server)"
"""The scope of the server-wide tables in a report (workspace ids never hold parentheses)."""

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phase "copy" or "verify"; units are tables."""


@dataclass(frozen=True)
class TableCheck:
    """One table as read from the source and read back from the target."""

    scope: str  # a workspace id, or GLOBAL_SCOPE
    table: str
    source_rows: int
    source_sha256: str
    target_rows: int = -1
    target_sha256: str = ""

    @property
    def ok(self) -> bool:
        return (self.source_rows == self.target_rows
                and self.source_sha256 == self.target_sha256)


@dataclass(frozen=True)
class MigrationReport:
    """What was copied; ``source`` and ``target`` are the stores' URLs without password."""

    source: str
    target: str
    schema_version: int
    workspaces: tuple[str, ...]
    tables: tuple[TableCheck, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.source_rows for t in self.tables)

    @property
    def mismatches(self) -> list[TableCheck]:
        return [t for t in self.tables if not t.ok]


def check_urls(source: str, target: str) -> None:
    """Refuse URLs that cannot make a migration: the same store twice, an in-memory store,
    a DuckDB source file that does not exist (opening it would create an empty one)."""
    if _canonical_url(source) == _canonical_url(target):
        raise StoreError(f"--from and --to name the same store ({redact_url(source)}); give a new, empty "
                         "target")
    for url, which in ((source, "--from"), (target, "--to")):
        if _duck_path(url) == ":memory:":
            raise StoreError(f"{which} {url} is an in-memory store; give a file path or a "
                             "postgresql:// URL")
    src = _duck_path(source)
    if src is not None and not Path(src).expanduser().is_file():
        raise StoreError(f"--from {source}: no such DuckDB database file")


def _duck_path(url: str) -> str | None:
    if url.startswith(("postgresql:", "postgres:")):
        return None
    return url.removeprefix("duckdb:")


def _canonical_url(url: str) -> str:
    path = _duck_path(url)
    if path is None:
        return "postgresql:" + url.split(":", 1)[1]
    return path if path == ":memory:" else str(Path(path).expanduser().resolve())


def check_target_empty(target: Store) -> None:
    """Conflict (one line saying what it holds) unless ``target`` holds nothing but the empty
    ``default`` workspace."""
    held: list[str] = []
    others = sorted(w["id"] for w in target.workspaces() if w["id"] != DEFAULT_WORKSPACE)
    if others:
        held.append(f"workspace(s) {', '.join(others[:5])}{' …' if len(others) > 5 else ''}")
    if target.workspace(DEFAULT_WORKSPACE) is not None:
        rows = sum(t.num_rows for name, t in target.export_workspace(DEFAULT_WORKSPACE)
                   if name != "workspaces")
        if rows:
            held.append(f"{rows} row(s) in workspace {DEFAULT_WORKSPACE!r}")
    for name, t in target.export_global():
        if name != "workspaces" and t.num_rows:
            held.append(f"{t.num_rows} {name.replace('_', ' ')}")
    if held:
        raise Conflict(f"the target store {redact_url(target.url)} is not empty (it holds "
                       f"{', '.join(held)}); migrate into a new database")


def migrate(source: Store, target: Store, *, progress: Progress | None = None,
            ) -> MigrationReport:
    """Copy every workspace and the server-wide tables of ``source`` into the empty
    ``target`` in one transaction, then read every table back and compare it with the source.

    Raises SchemaVersionError when the stores' schema versions differ, Conflict when the
    target is not empty, and whatever the import raises (the target then holds nothing of
    it). The report says, per table, rows and whether the checksums match.
    """
    version = source.schema_version()
    if target.schema_version() != version:
        raise SchemaVersionError(
            f"schema versions differ: source {redact_url(source.url)} is at {version}, target "
            f"{redact_url(target.url)} at {target.schema_version()}; open both with the same "
            "kpidash version (it migrates them) before copying")
    check_target_empty(target)
    report = progress or _no_progress
    records = source.workspaces()
    ids = tuple(w["id"] for w in records)
    server = dict(source.export_global())
    copied: list[TableCheck] = []
    total = 0
    with target.transaction():
        for record in records:
            tables = dict(source.export_workspace(record["id"]))
            total = total or len(tables) * len(records) + len(server)  # the same tables each
            copied += _checks(record["id"], tables.items())
            target.import_workspace(record["id"], tables, record["updated_at"])
            del tables  # one workspace in memory at a time
            report("copy", len(copied), total)
        copied += _checks(GLOBAL_SCOPE, server.items())
        target.import_global(server)
        report("copy", len(copied), len(copied))
    return MigrationReport(redact_url(source.url), redact_url(target.url), version, ids,
                           tuple(verify(target, copied, progress=report)))


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


def _checks(scope: str, tables: Iterable[tuple[str, pa.Table]]) -> list[TableCheck]:
    return [TableCheck(scope, name, t.num_rows, table_checksum(t)) for name, t in tables]


def verify(target: Store, expected: list[TableCheck], *, progress: Progress | None = None,
           ) -> list[TableCheck]:
    """Read back every table of ``expected`` from ``target``; the checks with the target's
    rows and checksums filled in (-1 rows: the table is missing from the target)."""
    got: dict[tuple[str, str], tuple[int, str]] = {}
    done = 0
    for scope in dict.fromkeys(c.scope for c in expected):
        if scope == GLOBAL_SCOPE:
            tables = list(target.export_global())
        elif target.workspace(scope) is None:
            tables = []
        else:
            tables = list(target.export_workspace(scope))
        for name, t in tables:
            got[scope, name] = (t.num_rows, table_checksum(t))
        done += sum(1 for c in expected if c.scope == scope)
        if progress is not None:
            progress("verify", done, len(expected))
    return [TableCheck(c.scope, c.table, c.source_rows, c.source_sha256,
                       *got.get((c.scope, c.table), (-1, ""))) for c in expected]
