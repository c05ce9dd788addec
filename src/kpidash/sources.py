"""Readers that turn input files and JSON payloads into Arrow tables in long format.

Files are read in chunks so a file larger than memory streams through: CSV with pyarrow's
streaming reader (every column read as text, so a bad cell is reported by row instead of
stopping the read), Parquet by row groups/batches, JSON as one batch. Each chunk comes with
the 0-based index of its first row, so errors name the row in the whole file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kpidash.core.report import ReportBuilder
from kpidash.errors import BatchRejected, ConfigError, InputError, bad_byte

FORMATS = ("csv", "parquet", "json")
_CSV_BLOCK = 16 << 20


@dataclass(frozen=True)
class Chunk:
    table: pa.Table
    row_offset: int
    progress: int  # units done after this chunk (rows, or bytes for CSV)


def detect_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".csv", "csv"), (".csv.gz", "csv"), (".tsv", "csv"), (".tsv.gz", "csv"),
                        (".parquet", "parquet"), (".pq", "parquet"),
                        (".json", "json"), (".jsonl", "json"), (".ndjson", "json")):
        if name.endswith(suffix):
            return fmt
    raise ConfigError(f"cannot tell the format of {path.name!r} from its name; pass --format "
                      f"with one of {', '.join(FORMATS)}")


def progress_total(path: Path, fmt: str) -> int:
    """Units of progress for a file: rows for Parquet, bytes for CSV/JSON."""
    if fmt == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    return path.stat().st_size


def read_chunks(path: Path, fmt: str, chunk_rows: int) -> Iterator[Chunk]:
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    if fmt == "csv":
        yield from _csv_chunks(path)
    elif fmt == "parquet":
        yield from _parquet_chunks(path, chunk_rows)
    elif fmt == "json":
        table = points_from_json(path.read_bytes(), source=path.name)  # bytes: UTF-8 checked
        yield Chunk(table, 0, path.stat().st_size)
    else:
        raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _csv_chunks(path: Path) -> Iterator[Chunk]:
    gz = path.name.lower().endswith(".gz")
    with pa.input_stream(str(path), compression="gzip" if gz else None) as head:
        first = head.read(1 << 16).split(b"\n", 1)[0]
    try:
        header = first.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:  # the data rows are checked by Arrow (_not_utf8)
        raise InputError(f"{path.name}: not valid UTF-8 text (the header row, "
                         f"{bad_byte(exc)}); save the file "
                         "as UTF-8 CSV with a header row timestamp,kpi,value[,dimension…]"
                         ) from None
    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    names = [h.strip() for h in header.split(delimiter)]
    if not header:
        raise ConfigError(f"{path.name}: the file is empty; expected a header row "
                          "timestamp,kpi,value[,dimension…]")
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                   strings_can_be_null=True, quoted_strings_can_be_null=False,
                                   null_values=[""])  # "NaN" is a value, reported as such
    # Progress is the position in the file on disk (compressed bytes for .gz), read from
    # the raw stream under the reader, so the bar is exact rather than estimated.
    raw = pa.OSFile(str(path), "rb")
    stream = pa.CompressedInputStream(raw, "gzip") if gz else raw
    try:
        reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK),
                                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                                convert_options=convert)
    except pa.ArrowInvalid as exc:
        raw.close()
        _not_utf8(path, exc, 0)
        raise ConfigError(f"{path.name}: cannot read as CSV: {exc}") from None
    offset = 0
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                _not_utf8(path, exc, offset)
                raise ConfigError(f"{path.name}: malformed CSV after data row {offset}: {exc}") \
                    from None
            table = pa.Table.from_batches([batch])
            yield Chunk(table, offset, raw.tell())
            offset += table.num_rows
    finally:
        raw.close()


def _not_utf8(path: Path, exc: pa.ArrowInvalid, offset: int) -> None:
    """Arrow's "invalid UTF8 data" as the error a user can act on (raised), else nothing."""
    if "invalid UTF8" in str(exc):
        where = str(exc).split(":", 1)[0]  # "In CSV column #3"
        raise InputError(f"{path.name}: not valid UTF-8 text ({where.lower()}, after data row "
                         f"{offset}); save the file as UTF-8") from None


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError(f"{path.name}: not a readable Parquet file: {exc}") from None
    offset = 0
    for batch in pf.iter_batches(batch_size=chunk_rows):
        table = pa.Table.from_batches([batch])
        offset += table.num_rows
        yield Chunk(table, offset - table.num_rows, offset)


def points_from_json(payload: str | bytes | Mapping[str, Any] | list[Any],
                     source: str = "json") -> pa.Table:
    """A JSON batch → long table. Accepts ``{"points": [...]}`` or a bare list of points.

    A point is ``{"kpi": id, "ts": ISO-8601 (or "timestamp"), "value": number,
    "dims": {dimension: value}}``; shape errors name the point (row = 1-based index).
    """
    rb = ReportBuilder()
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            rb.error("json.syntax", f"not valid JSON: {exc.msg}", source=source, row=exc.lineno)
            raise BatchRejected("batch rejected", rb.build()) from None
        except UnicodeDecodeError as exc:
            rb.error("json.encoding", f"not valid UTF-8: {bad_byte(exc)}", source=source)
            raise BatchRejected("batch rejected", rb.build()) from None
        except RecursionError:
            rb.error("json.depth", "the JSON is nested too deeply to read; a batch is "
                     '{"points": [{"kpi": …, "ts": …, "value": …, "dims": {…}}, …]}',
                     source=source)
            raise BatchRejected("batch rejected", rb.build()) from None
    items: Any = payload.get("points") if isinstance(payload, Mapping) else payload
    if not isinstance(items, list):
        rb.error("json.shape", "expected a list of points or an object with a 'points' list, "
                 f"got {type(items).__name__}", source=source)
        raise BatchRejected("batch rejected", rb.build())
    ts: list[Any] = []
    kpi: list[Any] = []
    value: list[Any] = []
    dims: dict[str, list[Any]] = {}
    for i, item in enumerate(items):
        row = i + 1
        if not isinstance(item, Mapping):
            rb.error("json.shape", f"expected an object, got {type(item).__name__}",
                     source=source, row=row)
            continue
        unknown = set(item) - {"kpi", "kpi_id", "ts", "timestamp", "value", "dims"}
        if unknown:
            rb.error("json.shape", f"unknown field(s) {sorted(unknown)}; expected kpi, ts, value, "
                     "dims", source=source, row=row)
        d = item.get("dims") or {}
        if not isinstance(d, Mapping):
            rb.error("json.shape", "dims must be an object of dimension → string value, got "
                     f"a {json_type(d)}", source=source, row=row, field="dims")
            d = {}
        bad_dims = [k for k, v in d.items() if not isinstance(v, str)]
        if bad_dims:
            rb.error("json.shape", "dims must be an object of dimension → string value; "
                     + ", ".join(f"{k!r} is a {json_type(d[k])}" for k in bad_dims[:10]),
                     source=source, row=row, field="dims")
            d = {}
        v = item.get("value")
        if isinstance(v, bool) or not (v is None or isinstance(v, int | float | str)):
            rb.error("point.value", f"expected a number, got {v!r}", source=source, row=row,
                     field="value")
            v = None
        for name in d:
            dims.setdefault(name, [None] * len(ts))
        for name, col in dims.items():
            col.append(d.get(name))
        ts.append(_text(item.get("ts", item.get("timestamp"))))
        kpi.append(_text(item.get("kpi", item.get("kpi_id"))))
        value.append(None if v is None else str(v))
    report = rb.build()
    if not report.ok:
        raise BatchRejected("batch rejected", report)
    cols: dict[str, pa.Array] = {"timestamp": pa.array(ts, pa.string()),
                                 "kpi": pa.array(kpi, pa.string()),
                                 "value": pa.array(value, pa.string())}
    for name, col in dims.items():
        cols[name] = pa.array(col, pa.string())
    return pa.table(cols)


def json_type(v: Any) -> str:
    """The JSON name of a parsed value's type (object, array, string, …), for messages."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)


def _text(v: Any) -> str | None:
    return None if v is None else str(v)
