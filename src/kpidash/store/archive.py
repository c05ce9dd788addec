"""Workspace archives: one file holding everything a workspace owns, to move it between servers.

An archive is a zip with ``manifest.json`` and one Parquet file per exported table
(``tables/<name>.parquet``, see ``Store.export_workspace``). The manifest records the
kpidash version, the store schema version, the workspace record, and per table its row count
and the SHA-256 of its canonical content (:func:`table_checksum`), so an import proves that
nothing was lost or changed on the way. Works on any :class:`~kpidash.store.base.Store`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kpidash import __version__
from kpidash.clock import SystemClock
from kpidash.errors import NotFound, SchemaVersionError, StoreError
from kpidash.store.base import Store

FORMAT = "kpidash-workspace"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def table_checksum(table: pa.Table) -> str:
    """SHA-256 (hex) of a table's content, independent of row and column order.

    Columns are taken by name; values are normalised (integers to int64, timestamps to UTC
    epoch microseconds, booleans to int8); rows are sorted by every column; then each column's
    name, kind, null mask and values (strings as lengths + UTF-8 bytes) are hashed.
    """
    cols = sorted(table.column_names)
    kinds: dict[str, str] = {}
    canon: dict[str, pa.ChunkedArray] = {}
    for c in cols:
        kinds[c], canon[c] = _canonical(c, table[c])
    ct = pa.table(canon) if cols else pa.table({})
    if ct.num_rows and cols:
        ct = ct.sort_by([(c, "ascending") for c in cols])
    h = hashlib.sha256(f"rows={table.num_rows};columns={len(cols)}\n".encode())
    for c in cols:
        arr = ct[c].combine_chunks()
        h.update(f"{c}:{kinds[c]}\n".encode())
        h.update(np.asarray(pc.is_null(arr, nan_is_null=False).to_numpy(zero_copy_only=False),
                            dtype=np.uint8).tobytes())
        if kinds[c] == "string":
            s = pc.fill_null(arr, "").cast(pa.large_string())
            offsets = np.frombuffer(s.buffers()[1], dtype=np.int64)[s.offset:s.offset + len(s) + 1]
            data = s.buffers()[2]
            h.update(np.diff(offsets).astype("<i8").tobytes())
            if data is not None and len(offsets):
                h.update(data.to_pybytes()[offsets[0]:offsets[-1]])
        else:
            zero = 0.0 if kinds[c] == "float" else 0
            values = pc.fill_null(arr, zero).to_numpy(zero_copy_only=False)
            h.update(np.asarray(values, dtype="<f8" if kinds[c] == "float" else "<i8").tobytes())
    return h.hexdigest()


def _canonical(name: str, col: pa.ChunkedArray) -> tuple[str, pa.ChunkedArray]:
    t = col.type
    if pa.types.is_timestamp(t):
        return "timestamp", pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64())
    if pa.types.is_boolean(t):
        return "bool", pc.cast(col, pa.int8())
    if pa.types.is_integer(t):
        return "int", pc.cast(col, pa.int64())
    if pa.types.is_floating(t):
        return "float", pc.cast(col, pa.float64())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string", pc.cast(col, pa.large_string())
    if pa.types.is_null(t):
        return "string", pc.cast(col, pa.large_string())
    raise StoreError(f"cannot checksum column {name!r} of type {t}")


def write_archive(store: Store, workspace: str, path: str | Path) -> dict[str, Any]:
    """Write one workspace to an archive file at ``path``; returns the manifest."""
    record = store.workspace(workspace)
    if record is None:
        raise NotFound(f"workspace {workspace!r} does not exist; nothing to export")
    tables: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, table in store.export_workspace(workspace):
            buf = io.BytesIO()
            pq.write_table(table, buf, compression="zstd")
            member = f"tables/{name}.parquet"
            zf.writestr(member, buf.getvalue())
            tables[name] = {"file": member, "rows": table.num_rows,
                            "sha256": table_checksum(table)}
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kpidash_version": __version__,
            "schema_version": store.schema_version(),
            "workspace": {**record, "created_at": record["created_at"].isoformat(),
                          "updated_at": record["updated_at"].isoformat()},
            "tables": tables}
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of an archive file (checked to be one)."""
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read(MANIFEST))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is not a kpidash workspace archive: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path} is not a kpidash workspace archive (no {FORMAT} manifest)")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise StoreError(f"{path} has archive format {manifest['format_version']}, newer than "
                         f"this kpidash reads ({FORMAT_VERSION}); upgrade kpidash")
    return manifest


def read_archive(store: Store, path: str | Path, workspace: str | None = None, *,
                 now: datetime | None = None) -> dict[str, int]:
    """Import an archive into ``workspace`` (default: the archived id), which must be new or
    empty; every table's count and checksum are verified first. Returns rows per table."""
    manifest = read_manifest(path)
    schema = int(manifest.get("schema_version", 0))
    if schema > store.schema_version():
        raise SchemaVersionError(
            f"{path} was written with store schema version {schema}, newer than this store's "
            f"({store.schema_version()}); upgrade kpidash before importing it")
    entries: dict[str, dict[str, Any]] = manifest.get("tables") or {}
    tables: dict[str, pa.Table] = {}
    with zipfile.ZipFile(path) as zf:
        members = {n for n in zf.namelist() if n != MANIFEST}
        extra = sorted(members - {str(e.get("file")) for e in entries.values()})
        if extra:
            raise StoreError(f"{path} holds file(s) the manifest does not list: "
                             f"{', '.join(extra)}")
        for name, entry in entries.items():
            try:
                table = pq.read_table(io.BytesIO(zf.read(str(entry["file"]))))
            except (KeyError, OSError, pa.ArrowInvalid) as exc:
                raise StoreError(f"table {name!r} cannot be read from {path}: {exc}") from None
            if table.num_rows != entry.get("rows"):
                raise StoreError(f"table {name!r} holds {table.num_rows} rows, the manifest "
                                 f"says {entry.get('rows')}; the archive is damaged")
            if table_checksum(table) != entry.get("sha256"):
                raise StoreError(f"table {name!r} does not match its checksum in the manifest; "
                                 "the archive is damaged or was changed")
            tables[name] = table
    if now is None:
        now = SystemClock().now()
    return store.import_workspace(workspace or str(manifest["workspace"]["id"]), tables, now)
