"""The bad-input catalogue of tests/reliability/test_bad_inputs.py: one row per bad input.

Each row is a :class:`Case` — (id, input path, payload, expected status or exit code, the
fragments the error must contain). The payload is a :class:`Req` (an HTTP request to the API,
sent with a role's token) or a :class:`Cli` (a ``kpidash`` command line, with the files it reads
written into the case's own directory first; ``{dir}`` in an argument is that directory).

Where a category of the issue does not apply to a path, the generator says why in a comment.
Every payload is a constant or derived from one (no randomness): same rows, same order, every
run.

Where the categories of the issue do not apply (and so have no rows):

* naive timestamps — line protocol (an integer epoch has no zone), definitions and rules (no
  timestamps); query instants are covered (API: refused; the CLI documents naive = UTC);
* NaN/±inf/1e308 — line protocol only as text (no typed NaN exists there); query parameters
  other than ``horizon``/``limit`` take no numbers;
* invalid UTF-8 — Parquet (binary; pyarrow refuses to write invalid UTF-8 into a string
  column, and the reader validates it); in URLs it is percent-encoded (%FF) and decoded
  with replacement characters, so those rows expect the error of an unknown name;
* deep nesting — CSV, Parquet and line protocol are flat;
* YAML bombs and tags — only where YAML is read: alert rules (API with a YAML content type,
  backtests, CLI) and KPI files (CLI); the API takes KPI definitions as JSON only;
* huge batches — the API's body limits (413); the CLI streams files of any size in chunks by
  design (README "Data"), so a big file is not bad input there;
* duplicate points — not an error: within a batch the last one wins (README "Data"), tested
  by test_duplicate_points_in_one_batch_last_one_wins; duplicate ids and columns are rows;
* path traversal — only where a file name comes from outside: uploads, workspace archives
  (member names, manifest entries, ids) and CLI file arguments.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TS = "2024-06-30T12:00:00Z"
TS_NS = 1_719_748_800 * 10**9  # TS in line protocol's default precision (ns)
DIMS = {"region": "EU", "plan": "pro", "channel": "paid"}
NEST = 100_000  # levels of the deeply nested JSON documents
Archive = Callable[[bytes], bytes]  # a payload made from the catalogue store's export


@dataclass(frozen=True)
class Req:
    """``client.request(method, url, **kw)`` with the token of ``role``; a callable
    ``kw["content"]`` is an :data:`Archive` function."""

    method: str
    url: str
    kw: Mapping[str, Any] = field(default_factory=dict)
    role: str = "analyst"


@dataclass(frozen=True)
class Cli:
    """``kpidash *args`` on the catalogue's CLI store, after writing ``files`` (name → bytes,
    or an :data:`Archive` function) into the case's directory."""

    args: tuple[str, ...]
    files: Mapping[str, bytes | Archive] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    id: str
    path: str  # the input path: "json ingest", "csv upload", "cli ingest", …
    payload: Req | Cli
    expect: int  # HTTP status, or the CLI's exit code
    fragments: tuple[str, ...]  # each must occur (case-insensitive) in the error text

    @property
    def pytest_id(self) -> str:
        return f"{self.path.replace(' ', '-')}:{self.id}"


# -- payload builders ---------------------------------------------------------------------------


def point(value: Any = 1, ts: Any = TS, kpi: Any = "signups", dims: Any = None,
          **extra: Any) -> dict[str, Any]:
    return {"kpi": kpi, "ts": ts, "value": value, "dims": DIMS if dims is None else dims, **extra}


def good_point() -> dict[str, Any]:
    return point(3, "2024-06-29T12:00:00Z")


def json_body(*points: Any) -> bytes:
    """A batch whose first point is good (so a partial write would show) and then ``points``;
    Python's json writes NaN/Infinity literals, which json.loads reads back as floats."""
    return json.dumps({"points": [good_point(), *points]}).encode()


def csv_body(rows: list[dict[str, Any]], header: tuple[str, ...] | None = None) -> bytes:
    """Long-format CSV, a good first data row, then ``rows`` (values written as given)."""
    cols = header or ("timestamp", "kpi", "value", "region", "plan", "channel")
    good = {"timestamp": "2024-06-29T12:00:00Z", "kpi": "signups", "value": "3", **DIMS}
    lines = [",".join(cols)]
    for r in [good, *rows]:
        lines.append(",".join(str(r.get(c, "")) for c in cols))
    return ("\n".join(lines) + "\n").encode()


def csv_row(value: Any = "1", ts: Any = TS, kpi: Any = "signups", **dims: str) -> dict[str, Any]:
    return {"timestamp": ts, "kpi": kpi, "value": value, **DIMS, **dims}


def parquet_body(columns: dict[str, pa.Array]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def parquet_values(bad: Any, kind: pa.DataType) -> bytes:
    """A Parquet file of two points (a good one, then ``bad``) with a value column of ``kind``."""
    good: Any = 3.0 if pa.types.is_floating(kind) else "3"
    return parquet_body({
        "timestamp": pa.array(["2024-06-29T12:00:00Z", TS]),
        "kpi": pa.array(["signups", "signups"]),
        "value": pa.array([good, bad], kind),
        "region": pa.array(["EU", "EU"])})


def parquet_rows(ts: Any = TS, kpi: str = "signups", ts_type: pa.DataType | None = None,
                 **dims: Any) -> bytes:
    good_ts: Any = "2024-06-29T12:00:00Z"
    if ts_type is not None and not pa.types.is_string(ts_type):
        good_ts = datetime(2024, 6, 29, 12, tzinfo=UTC if ts_type.tz else None)
    cols: dict[str, pa.Array] = {
        "timestamp": pa.array([good_ts, ts], ts_type),
        "kpi": pa.array(["signups", kpi]),
        "value": pa.array([3.0, 1.0])}
    for d, v in {"region": "EU", **dims}.items():
        cols[d] = pa.array(["EU" if d == "region" else None, v], pa.string())
    return parquet_body(cols)


def lp(*lines: str) -> bytes:
    """Line protocol: a good first line, then ``lines``."""
    return "\n".join([f"signups,region=EU value=3 {TS_NS - 86_400 * 10**9}", *lines]).encode()


def nested(levels: int = NEST) -> bytes:
    return b"[" * levels + b"]" * levels


def nested_object(key: str, levels: int = NEST) -> bytes:
    """``{"key": [[[…]]]}`` — the nesting where a field is expected."""
    return b'{"' + key.encode() + b'": ' + nested(levels) + b"}"


# billion laughs: 9 levels of 10 aliases each — 10**9 "lol"s if expanded
YAML_BOMB = "a: &a [" + ", ".join(['"lol"'] * 10) + "]\n" + "".join(
    f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
YAML_TAGS = {
    "python-object-apply": "!!python/object/apply:os.system ['echo pwned > pwned.txt']\n",
    "python-name": "- !!python/name:os.system\n",
    "python-object-new": "kpis:\n  - !!python/object/new:os.system [echo pwned]\n",
    "custom-tag": "kpis:\n  - !include /etc/passwd\n",
}
SQL = ("region'; DROP TABLE points; --", 'region" OR 1=1 --', "region;DELETE FROM kpis",
       "re`gion`")
TRAVERSAL = ("../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "evil\x00.exe")


# -- the bad numbers × every ingest format ------------------------------------------------------
# (name, JSON value, CSV cell, Parquet (value, type), line protocol field, fragments)
BAD_NUMBERS: list[tuple[str, Any, str, tuple[Any, pa.DataType], str, tuple[str, ...]]] = [
    ("nan", math.nan, "NaN", (math.nan, pa.float64()), "NaN", ("finite",)),
    ("inf", math.inf, "inf", (math.inf, pa.float64()), "inf", ("finite",)),
    ("-inf", -math.inf, "-Infinity", (-math.inf, pa.float64()), "-Infinity", ("finite",)),
    ("1e308", 1e308, "1e308", (1e308, pa.float64()), "1e308", ("within",)),
    ("-1e308", -1e308, "-1e308", (-1e308, pa.float64()), "-1e308", ("within",)),
    ("text", "abc", "abc", ("abc", pa.string()), '"abc"', ("number", "abc")),
    ("null", None, "", (None, pa.float64()), "", ("number", "nothing")),
]


def bad_numbers() -> Iterator[Case]:
    for name, j, c, (pv, pt), lpv, frags in BAD_NUMBERS:
        where = ("row 2", "value", *frags)
        yield Case(name, "json ingest", Req("POST", "/api/v1/ingest",
                                            {"content": json_body(point(j))}), 422, where)
        if isinstance(j, float):  # the same number sent as a JSON string
            yield Case(name + "-as-string", "json ingest", Req("POST", "/api/v1/ingest", {
                "content": json_body(point(c))}), 422, where)
        yield Case(name, "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
            "content": csv_body([csv_row(c)])}), 422, where)
        yield Case(name, "parquet upload", Req("POST", "/api/v1/ingest/file?format=parquet", {
            "content": parquet_values(pv, pt)}), 422, where)
        if lpv:  # an empty field value is a syntax error in line protocol, not a null
            yield Case(name, "line protocol", Req("POST", "/api/v1/write", {
                "content": lp(f"signups,region=EU value={lpv} {TS_NS}")}), 422, ("row 2", "value"))
        yield Case(name, "cli ingest csv", Cli(("ingest", "{dir}/p.csv"),
                                               {"p.csv": csv_body([csv_row(c)])}), 1, where)
        yield Case(name, "cli ingest json", Cli(("ingest", "{dir}/p.json"),
                                                {"p.json": json_body(point(j))}), 1, where)
        yield Case(name, "cli ingest parquet", Cli(("ingest", "{dir}/p.parquet"), {
            "p.parquet": parquet_values(pv, pt)}), 1, where)
    # wrong JSON types of a value: only JSON can carry them (CSV and line protocol are text,
    # a Parquet column has one type — "text" above is its wrong type)
    for name, v in (("bool", True), ("list", [1]), ("object", {"v": 1})):
        yield Case(name, "json ingest", Req("POST", "/api/v1/ingest", {
            "content": json_body(point(v))}), 422, ("row 2", "value", "expected a number"))
    yield Case("list", "cli ingest json", Cli(("ingest", "{dir}/p.json"), {
        "p.json": json_body(point([1]))}), 1, ("row 2", "value", "expected a number"))


# -- timestamps: naive, far future, unparseable, missing -----------------------------------------
BAD_TIMES: list[tuple[str, Any, tuple[str, ...]]] = [
    ("naive", "2024-06-30T12:00:00", ("time zone",)),
    ("naive-date", "2024-06-30", ("time zone",)),
    ("year-9999", "9999-12-31T00:00:00Z", ("after",)),
    ("year-2100", "2100-01-01T00:00:00+02:00", ("after",)),
    ("next-decade", "2034-07-01T00:00:00Z", ("after",)),
    ("year-10000", "+10000-01-01T00:00:00Z", ("ISO 8601",)),
    ("garbage", "yesterday", ("ISO 8601", "yesterday")),
    ("month-13", "2024-13-01T00:00:00Z", ("ISO 8601",)),
    ("missing", None, ("timestamp", "nothing")),
]


def bad_times() -> Iterator[Case]:
    for name, ts, frags in BAD_TIMES:
        where = ("row 2", "timestamp", *frags)
        yield Case(name, "json ingest", Req("POST", "/api/v1/ingest", {
            "content": json_body(point(1, ts))}), 422, where)
        yield Case(name, "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
            "content": csv_body([csv_row("1", ts or "")])}), 422, where)
        yield Case(name, "cli ingest csv", Cli(("ingest", "{dir}/p.csv"), {
            "p.csv": csv_body([csv_row("1", ts or "")])}), 1, where)
    # Parquet carries typed timestamps: a naive timestamp column, and a far-future aware one
    yield Case("naive-typed", "parquet upload", Req("POST", "/api/v1/ingest/file?format=parquet", {
        "content": parquet_rows(datetime(2024, 6, 30, 12), ts_type=pa.timestamp("us"))}), 422,
        ("row 1", "timestamp", "time zone"))
    yield Case("year-9999-typed", "parquet upload", Req(
        "POST", "/api/v1/ingest/file?format=parquet", {"content": parquet_rows(
            datetime(9999, 12, 31, tzinfo=UTC), ts_type=pa.timestamp("us", "UTC"))}), 422,
        ("row 2", "timestamp", "after"))
    # line protocol timestamps are integers: no naive form; far future and out of range
    for name, stamp, frags in (("year-2100", 4_102_444_800 * 10**9, ("row 2", "after")),
                               ("beyond-int64", 10**20, ("row 2", "timestamp")),
                               ("not-integer", "12.5", ("row 2", "timestamp"))):
        yield Case(name, "line protocol", Req("POST", "/api/v1/write", {
            "content": lp(f"signups,region=EU value=1 {stamp}")}), 422, frags)


# -- unknown KPIs and dimensions, dimension names with SQL -----------------------------------------


def bad_names() -> Iterator[Case]:
    unknown_kpi = ("row 2", "kpi", "unknown KPI 'nope'")
    unknown_dim = ("row 2", "no dimension 'colour'")
    yield Case("unknown-kpi", "json ingest", Req("POST", "/api/v1/ingest", {
        "content": json_body(point(kpi="nope"))}), 422, unknown_kpi)
    yield Case("derived-kpi", "json ingest", Req("POST", "/api/v1/ingest", {
        "content": json_body(point(kpi="arr", dims={}))}), 422, ("row 2", "derived"))
    yield Case("unknown-dim", "json ingest", Req("POST", "/api/v1/ingest", {
        "content": json_body(point(dims={**DIMS, "colour": "red"}))}), 422, unknown_dim)
    yield Case("unknown-kpi", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
        "content": csv_body([csv_row(kpi="nope")])}), 422, unknown_kpi)
    yield Case("unknown-dim", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
        "content": csv_body([csv_row(colour="red")],
                            ("timestamp", "kpi", "value", "region", "colour"))}), 422,
        unknown_dim)
    yield Case("unknown-kpi", "parquet upload", Req("POST", "/api/v1/ingest/file?format=parquet", {
        "content": parquet_rows(kpi="nope")}), 422, unknown_kpi)
    yield Case("unknown-dim", "parquet upload", Req("POST", "/api/v1/ingest/file?format=parquet", {
        "content": parquet_rows(colour="red")}), 422, unknown_dim)
    yield Case("unknown-kpi", "line protocol", Req("POST", "/api/v1/write", {
        "content": lp(f"nope,region=EU value=1 {TS_NS}")}), 422, unknown_kpi)
    yield Case("unknown-dim", "line protocol", Req("POST", "/api/v1/write", {
        "content": lp(f"signups,colour=red value=1 {TS_NS}")}), 422, unknown_dim)
    yield Case("unknown-kpi", "cli ingest csv", Cli(("ingest", "{dir}/p.csv"), {
        "p.csv": csv_body([csv_row(kpi="nope")])}), 1, unknown_kpi)
    yield Case("unknown-dim", "cli ingest json", Cli(("ingest", "{dir}/p.json"), {
        "p.json": json_body(point(dims={**DIMS, "colour": "red"}))}), 1, unknown_dim)
    for i, name in enumerate(SQL):
        frags = ("dimension name",)
        yield Case(f"sql-dim-name-{i}", "json ingest", Req("POST", "/api/v1/ingest", {
            "content": json_body(point(dims={name: "EU"}))}), 422, frags)
        yield Case(f"sql-dim-name-{i}", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
            "content": csv_body([], ("timestamp", "kpi", "value", f'"{name}"' if "," in name
                                     else name))}), 422, frags)
        yield Case(f"sql-dim-name-{i}", "parquet upload", Req(
            "POST", "/api/v1/ingest/file?format=parquet", {"content": parquet_rows(
                **{name: "EU"})}), 422, frags)
        tag = name.replace(" ", "\\ ").replace(",", "\\,").replace("=", "\\=")
        yield Case(f"sql-dim-name-{i}", "line protocol", Req("POST", "/api/v1/write", {
            "content": lp(f"signups,{tag}=EU value=1 {TS_NS}")}), 422, ("row 2",))
        yield Case(f"sql-kpi-{i}", "json ingest", Req("POST", "/api/v1/ingest", {
            "content": json_body(point(kpi=name))}), 422, ("row 2", "unknown KPI"))
    yield Case("sql-dim-name", "cli ingest csv", Cli(("ingest", "{dir}/p.csv"), {
        "p.csv": csv_body([], ("timestamp", "kpi", "value", SQL[0]))}), 1, ("dimension name",))
    yield Case("control-chars-in-dim-value", "json ingest", Req("POST", "/api/v1/ingest", {
        "content": json_body(point(dims={**DIMS, "region": "E\x00U"}))}), 422,
        ("row 2", "region", "printable"))
    yield Case("dim-value-too-long", "json ingest", Req("POST", "/api/v1/ingest", {
        "content": json_body(point(dims={**DIMS, "region": "E" * 10_000}))}), 422,
        ("row 2", "region", "200"))


# -- wrong shapes and types of a JSON batch -----------------------------------------------------


def bad_shapes() -> Iterator[Case]:
    shapes: list[tuple[str, Any, tuple[str, ...]]] = [
        ("points-object", {"points": {"kpi": "signups"}}, ("list of points", "dict")),
        ("points-string", {"points": "signups"}, ("list of points", "str")),
        ("points-null", {"points": None}, ("list of points",)),
        ("bare-number", 5, ("list of points",)),
        ("point-is-list", {"points": [good_point(), [1, 2]]}, ("row 2", "expected an object")),
        ("unknown-field", {"points": [good_point(), point(colour="red")]},
         ("row 2", "unknown field", "colour")),
        ("kpi-number", {"points": [good_point(), point(kpi=7)]}, ("row 2", "kpi")),
        ("kpi-null", {"points": [good_point(), point(kpi=None)]}, ("row 2", "kpi", "nothing")),
        ("ts-number", {"points": [good_point(), point(ts=1719748800)]}, ("row 2", "timestamp")),
        ("dims-list", {"points": [good_point(), point(dims=["EU"])]}, ("row 2", "dims", "array")),
        ("dim-value-number", {"points": [good_point(), point(dims={"region": 5})]},
         ("row 2", "dims", "region")),
        ("dim-value-null", {"points": [good_point(), point(dims={"region": None})]},
         ("row 2", "dims", "region")),
    ]
    for name, body, frags in shapes:
        yield Case(name, "json ingest", Req("POST", "/api/v1/ingest", {
            "content": json.dumps(body).encode()}), 422, frags)
    yield Case("not-json", "json ingest", Req("POST", "/api/v1/ingest", {
        "content": b'{"points": [}'}), 422, ("JSON",))
    # CSV/Parquet: the shape is the columns
    yield Case("missing-value-column", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
        "content": b"timestamp,kpi\n2024-06-30T12:00:00Z,signups\n"}), 422,
        ("missing column", "value"))
    yield Case("duplicate-column", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
        "content": b"timestamp,kpi,value,ts\n2024-06-30T12:00:00Z,signups,1,x\n"}), 422,
        ("twice", "timestamp"))
    yield Case("ragged-row", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
        "content": b"timestamp,kpi,value\n2024-06-30T12:00:00Z,signups,1,EU,extra\n"}), 400,
        ("expected 3 columns", "got 5"))
    yield Case("not-parquet", "parquet upload", Req("POST", "/api/v1/ingest/file?format=parquet", {
        "content": b"PAR1 this is not parquet PAR1"}), 400, ("not a readable parquet",))
    yield Case("bad-format", "file upload", Req("POST", "/api/v1/ingest/file?format=xml", {
        "content": b"<x/>"}), 422, ("format",))
    yield Case("string-field", "line protocol", Req("POST", "/api/v1/write", {
        "content": lp(f'signups,region=EU value="12" {TS_NS}')}), 422, ("row 2", "string"))
    yield Case("no-field", "line protocol", Req("POST", "/api/v1/write", {
        "content": lp(f"signups,region=EU {TS_NS}")}), 422, ("row 2",))
    yield Case("bad-precision", "line protocol", Req("POST", "/api/v1/write?precision=days", {
        "content": lp()}), 422, ("precision", "days"))
    yield Case("bad-mapping", "line protocol", Req("POST", "/api/v1/write?mapping=sql", {
        "content": lp()}), 422, ("mapping",))


# -- empty and huge batches ---------------------------------------------------------------------
HUGE = 2 * 1024 * 1024  # bytes; the catalogue's app allows 1 MiB bodies and 1 MiB uploads


def empty_and_huge() -> Iterator[Case]:
    empty = ("empty",)
    yield Case("empty-list", "json ingest", Req("POST", "/api/v1/ingest", {
        "content": b'{"points": []}'}), 400, empty)
    yield Case("empty-body", "json ingest", Req("POST", "/api/v1/ingest", {"content": b""}),
               422, ("JSON",))
    yield Case("empty-file", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
        "content": b""}), 400, empty)
    yield Case("header-only", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
        "content": b"timestamp,kpi,value\n"}), 400, empty)
    yield Case("empty-file", "parquet upload", Req("POST", "/api/v1/ingest/file?format=parquet", {
        "content": b""}), 400, ("parquet",))
    yield Case("no-rows", "parquet upload", Req("POST", "/api/v1/ingest/file?format=parquet", {
        "content": parquet_body({"timestamp": pa.array([], pa.string()),
                                 "kpi": pa.array([], pa.string()),
                                 "value": pa.array([], pa.float64())})}), 400, empty)
    yield Case("empty-body", "line protocol", Req("POST", "/api/v1/write", {"content": b""}),
               400, empty)
    yield Case("comments-only", "line protocol", Req("POST", "/api/v1/write", {
        "content": b"# nothing\n\n"}), 400, empty)
    yield Case("empty-file", "cli ingest csv", Cli(("ingest", "{dir}/p.csv"), {"p.csv": b""}), 1,
               empty)
    yield Case("empty-list", "cli ingest json", Cli(("ingest", "{dir}/p.json"), {
        "p.json": b'{"points": []}'}), 1, empty)
    yield Case("empty-list", "kpi definitions", Req("POST", "/api/v1/kpis", {"content": b"[]"}),
               400, empty)
    yield Case("empty-list", "alert rules json", Req("POST", "/api/v1/alert-rules", {
        "content": b"[]"}), 400, empty)
    yield Case("empty-yaml", "alert rules yaml", Req("POST", "/api/v1/alert-rules", {
        "content": b"", "headers": {"content-type": "application/yaml"}}), 400, empty)
    big = json_body(*[point(1, f"2024-06-{1 + i % 28:02d}T00:00:00Z") for i in range(25_000)])
    assert len(big) > HUGE
    yield Case("huge", "json ingest", Req("POST", "/api/v1/ingest", {"content": big}), 413,
               ("limit",))
    yield Case("huge", "line protocol", Req("POST", "/api/v1/write", {"content": b"#" * HUGE}),
               413, ("limit",))
    yield Case("huge", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
        "content": b"x" * HUGE}), 413, ("limit",))
    yield Case("huge", "kpi definitions", Req("POST", "/api/v1/kpis", {
        "content": b" " * HUGE}), 413, ("limit",))
    yield Case("huge", "alert rules yaml", Req("POST", "/api/v1/alert-rules", {
        "content": b"#" * HUGE, "headers": {"content-type": "application/yaml"}}), 413,
        ("limit",))
    yield Case("huge", "workspace import", Req("POST", "/api/v1/workspaces/import", {
        "content": b"x" * HUGE}, role="admin"), 413, ("limit",))


# -- invalid UTF-8 and deeply nested JSON ---------------------------------------------------------
# Parquet is binary with its own string validation (pyarrow refuses to write invalid UTF-8 in a
# string column), so invalid UTF-8 is tried on the text paths only.
BAD_UTF8 = b'{"points": [{"kpi": "sign\xffups", "ts": "2024-06-30T12:00:00Z", "value": 1}]}'
RULE = {"id": "signups_high", "kpi": "signups", "per": "region",
        "condition": {"kind": "threshold", "direction": "above", "bands": {"high": 100_000}}}
RULE_YAML = ("rules:\n  - id: signups_high\n    kpi: signups\n    condition: {kind: threshold, "
             "direction: above, bands: {high: 100000}}\n")
KPI = {"id": "nps", "name": "Net promoter score", "unit": "pts", "dimensions": ["region"]}
KPI_YAML = "kpis:\n  - {id: nps, name: Net promoter score, dimensions: [region]}\n"
YAML = {"content-type": "application/yaml"}


def bad_encoding_and_nesting() -> Iterator[Case]:
    utf8 = ("UTF-8",)
    yield Case("invalid-utf8", "json ingest", Req("POST", "/api/v1/ingest", {
        "content": BAD_UTF8}), 422, utf8)
    yield Case("invalid-utf8", "csv upload", Req("POST", "/api/v1/ingest/file?format=csv", {
        "content": csv_body([csv_row(region="E\xff")]).replace(b"E\xc3\xbf", b"E\xff")}), 400,
        utf8)
    yield Case("invalid-utf8", "line protocol", Req("POST", "/api/v1/write", {
        "content": lp(f"signups,region=E\xff value=1 {TS_NS}").replace(b"E\xc3\xbf", b"E\xff")}),
        400, utf8)
    yield Case("invalid-utf8", "kpi definitions", Req("POST", "/api/v1/kpis", {
        "content": json.dumps(KPI).encode().replace(b"Net", b"N\xfft")}), 400, utf8)
    yield Case("invalid-utf8", "kpi validate", Req("POST", "/api/v1/kpis/validate", {
        "content": json.dumps(KPI).encode().replace(b"Net", b"N\xfft")}), 400, utf8)
    yield Case("invalid-utf8", "alert rules json", Req("POST", "/api/v1/alert-rules", {
        "content": json.dumps(RULE).encode().replace(b"signups_high", b"signups_\xff")}), 400,
        utf8)
    yield Case("invalid-utf8", "alert rules yaml", Req("POST", "/api/v1/alert-rules", {
        "content": RULE_YAML.encode() + b"    description: caf\xe9\n", "headers": YAML}), 400,
        utf8)
    yield Case("invalid-utf8", "silences", Req("POST", "/api/v1/silences", {
        "content": b'{"matchers": ["kpi=sign\xffups"], "duration": "1h"}',
        "headers": {"content-type": "application/json"}}), 400, utf8)
    yield Case("invalid-utf8", "cli ingest csv", Cli(("ingest", "{dir}/p.csv"), {
        "p.csv": csv_body([csv_row(region="E\xff")]).replace(b"E\xc3\xbf", b"E\xff")}), 1, utf8)
    yield Case("invalid-utf8", "cli ingest json", Cli(("ingest", "{dir}/p.json"), {
        "p.json": BAD_UTF8}), 1, utf8)
    yield Case("invalid-utf8", "cli kpis validate", Cli(("kpis", "validate", "{dir}/k.yaml"), {
        "k.yaml": KPI_YAML.encode().replace(b"Net", b"N\xfft")}), 1, utf8)
    yield Case("invalid-utf8", "cli kpis load", Cli(("kpis", "load", "{dir}/k.yaml"), {
        "k.yaml": KPI_YAML.encode().replace(b"Net", b"N\xfft")}), 1, utf8)
    yield Case("invalid-utf8", "cli rules load", Cli(("alerts", "rules", "load", "{dir}/r.yaml"), {
        "r.yaml": RULE_YAML.encode() + b"    description: caf\xe9\n"}), 1, utf8)

    deep = ("nest",)
    for name, body in (("array", nested()), ("points", nested_object("points"))):
        yield Case(f"deep-{name}", "json ingest", Req("POST", "/api/v1/ingest", {
            "content": body}), 422, deep)
        yield Case(f"deep-{name}", "cli ingest json", Cli(("ingest", "{dir}/p.json"), {
            "p.json": body}), 1, deep)
    yield Case("deep-value", "json ingest", Req("POST", "/api/v1/ingest", {
        "content": b'{"points": [{"kpi": "signups", "ts": "2024-06-30T12:00:00Z", "value": '
                   + nested() + b"}]}"}), 422, deep)
    yield Case("deep-kpis", "kpi definitions", Req("POST", "/api/v1/kpis", {
        "content": nested_object("kpis")}), 400, deep)
    yield Case("deep", "kpi definitions put", Req("PUT", "/api/v1/kpis/nps", {
        "content": nested()}), 400, deep)
    yield Case("deep", "kpi validate", Req("POST", "/api/v1/kpis/validate", {
        "content": nested()}), 400, deep)
    yield Case("deep-rules", "alert rules json", Req("POST", "/api/v1/alert-rules", {
        "content": nested_object("rules")}), 400, deep)
    yield Case("deep", "alert rules put", Req("PUT", "/api/v1/alert-rules/a", {
        "content": nested()}), 400, deep)
    yield Case("deep-yaml", "alert rules yaml", Req("POST", "/api/v1/alert-rules", {
        "content": b"rules: " + b"[" * 10_000 + b"]" * 10_000, "headers": YAML}), 422, ("nest",))
    for route, body in (("silences", nested_object("matchers")),
                        ("alert-rules/backtest", nested_object("rules")),
                        ("dashboards", nested_object("spec"))):
        yield Case("deep", route.replace("/", " "), Req("POST", f"/api/v1/{route}", {
            "content": body, "headers": {"content-type": "application/json"}}), 400, deep)
    yield Case("deep", "workspace create", Req("POST", "/api/v1/workspaces", {
        "content": nested_object("settings"), "headers": {"content-type": "application/json"}},
        role="admin"), 400, deep)
    yield Case("deep-yaml", "cli kpis validate", Cli(("kpis", "validate", "{dir}/k.yaml"), {
        "k.yaml": b"kpis: " + b"[" * 10_000 + b"]" * 10_000}), 1, ("nest",))


# -- YAML bombs and tags: refused by safe loading, quickly -------------------------------------


def bad_yaml() -> Iterator[Case]:
    bomb_rules = "rules:\n  - id: lol\n    kpi: signups\n    description: *i\n" \
                 "    condition: {kind: threshold, direction: above, bands: {high: 1}}\n"
    bomb_kpis = "kpis:\n  - {id: lol, name: *i}\n"
    bombs = {"rules": YAML_BOMB + bomb_rules, "kpis": YAML_BOMB + bomb_kpis,
             "bare": YAML_BOMB}
    yield Case("bomb", "alert rules yaml", Req("POST", "/api/v1/alert-rules", {
        "content": bombs["rules"].encode(), "headers": YAML}), 422, ("alias",))
    yield Case("bomb-bare", "alert rules yaml", Req("POST", "/api/v1/alert-rules", {
        "content": bombs["bare"].encode(), "headers": YAML}), 422, ("alias",))
    yield Case("bomb", "alert backtest yaml", Req("POST", "/api/v1/alert-rules/backtest", {
        "json": {"rules": bombs["rules"], "from": "2024-06-01T00:00:00Z",
                 "to": "2024-06-30T00:00:00Z"}}), 422, ("alias",))
    yield Case("bomb", "cli kpis validate", Cli(("kpis", "validate", "{dir}/k.yaml"), {
        "k.yaml": bombs["kpis"].encode()}), 1, ("alias",))
    yield Case("bomb", "cli kpis load", Cli(("kpis", "load", "{dir}/k.yaml"), {
        "k.yaml": bombs["kpis"].encode()}), 1, ("alias",))
    yield Case("bomb", "cli rules load", Cli(("alerts", "rules", "load", "{dir}/r.yaml"), {
        "r.yaml": bombs["rules"].encode()}), 1, ("alias",))
    yield Case("bomb", "cli rules check", Cli(("alerts", "rules", "load", "--check",
                                               "{dir}/r.yaml"), {
        "r.yaml": bombs["rules"].encode()}), 1, ("alias",))
    for name, text in YAML_TAGS.items():
        frags = ("tag",)
        yield Case(f"tag-{name}", "alert rules yaml", Req("POST", "/api/v1/alert-rules", {
            "content": text.encode(), "headers": YAML}), 422, frags)
        yield Case(f"tag-{name}", "cli kpis validate", Cli(("kpis", "validate", "{dir}/k.yaml"), {
            "k.yaml": text.encode()}), 1, frags)
        yield Case(f"tag-{name}", "cli kpis load", Cli(("kpis", "load", "{dir}/k.yaml"), {
            "k.yaml": text.encode()}), 1, frags)
        yield Case(f"tag-{name}", "cli rules load", Cli(("alerts", "rules", "load",
                                                         "{dir}/r.yaml"), {
            "r.yaml": text.encode()}), 1, frags)
    yield Case("tag", "alert backtest yaml", Req("POST", "/api/v1/alert-rules/backtest", {
        "json": {"rules": YAML_TAGS["python-object-apply"], "from": "2024-06-01T00:00:00Z",
                 "to": "2024-06-30T00:00:00Z"}}), 422, ("tag",))


# -- KPI definitions and alert rules (JSON through the API, YAML through the CLI) -----------------


def bad_definitions() -> Iterator[Case]:
    kpis: list[tuple[str, Any, tuple[str, ...]]] = [
        ("no-name", {"id": "nps"}, ("name",)),
        ("id-sql", {**KPI, "id": "nps'; DROP TABLE kpis; --"}, ("id",)),
        ("id-traversal", {**KPI, "id": "../../etc/passwd"}, ("id",)),
        ("dimension-sql", {**KPI, "dimensions": [SQL[0]]}, ("dimensions",)),
        ("dimension-quote", {**KPI, "dimensions": [SQL[1]]}, ("dimensions",)),
        ("min-nan", {**KPI, "min_value": math.nan}, ("min_value", "finite")),
        ("max-inf", {**KPI, "max_value": math.inf}, ("max_value", "finite")),
        ("target-1e308", {**KPI, "target": 1e308}, ("target",)),
        ("weight-nan", {**KPI, "weight": math.nan}, ("weight",)),
        ("threshold-inf", {**KPI, "anomaly_threshold": math.inf}, ("anomaly_threshold",)),
        ("name-list", {**KPI, "name": ["a"]}, ("name",)),
        ("unknown-field", {**KPI, "colour": "red"}, ("colour",)),
        ("aggregation-sql", {**KPI, "aggregation": "sum); DROP TABLE points; --"},
         ("aggregation",)),
        ("duplicate-id", [KPI, {**KPI, "name": "Again"}], ("already used",)),
        ("ratio-unknown", {"id": "r", "name": "R", "kind": "ratio", "numerator": "nope",
                           "denominator": "signups"}, ("nope",)),
        ("derived-eval", {"id": "d", "name": "D", "kind": "derived",
                          "expression": "__import__('os').system('id')"}, ("expression",)),
        ("null", None, ("KPI definition",)),
        ("number", 7, ("KPI definition",)),
    ]
    for name, body, frags in kpis:
        content = json.dumps(body).encode()
        yield Case(name, "kpi definitions", Req("POST", "/api/v1/kpis", {"content": content}),
                   422 if isinstance(body, dict | list) else 400, frags)
    yield Case("id-differs", "kpi definitions put", Req("PUT", "/api/v1/kpis/nps", {
        "json": {**KPI, "id": "other"}}), 400, ("differs",))
    yield Case("path-id-sql", "kpi definitions put", Req("PUT", "/api/v1/kpis/x';--", {
        "json": {"name": "X"}}), 422, ("id",))
    yield Case("min-nan", "kpi validate", Req("POST", "/api/v1/kpis/validate", {
        "content": json.dumps({**KPI, "min_value": math.nan}).encode()}), 200, ("finite",))
    yield Case("dimension-sql", "cli kpis load", Cli(("kpis", "load", "{dir}/k.yaml"), {
        "k.yaml": f"kpis:\n  - {{id: nps, name: N, dimensions: [\"{SQL[0]}\"]}}\n".encode()}),
        1, ("dimensions",))
    yield Case("min-nan", "cli kpis load", Cli(("kpis", "load", "{dir}/k.yaml"), {
        "k.yaml": b"kpis:\n  - {id: nps, name: N, min_value: .nan}\n"}), 1, ("finite",))
    yield Case("weight-inf", "cli kpis validate", Cli(("kpis", "validate", "{dir}/k.yaml"), {
        "k.yaml": b"kpis:\n  - {id: nps, name: N, weight: .inf}\n"}), 1, ("weight",))
    yield Case("not-a-list", "cli kpis load", Cli(("kpis", "load", "{dir}/k.yaml"), {
        "k.yaml": b"just a string\n"}), 1, ("expected a list",))
    yield Case("traversal-file", "cli kpis load", Cli(("kpis", "load", "{dir}/../../../etc/no"),
                                                      {}), 1, ("no such file",))

    cond = RULE["condition"]
    rules: list[tuple[str, Any, tuple[str, ...]]] = [
        ("unknown-kpi", {**RULE, "kpi": "nope"}, ("nope",)),
        ("unknown-dim", {**RULE, "per": "colour"}, ("colour",)),
        ("per-sql", {**RULE, "per": SQL[0]}, ("per",)),
        ("filter-dim-sql", {**RULE, "filters": {SQL[1]: "EU"}}, ("filters",)),
        ("filter-unknown-dim", {**RULE, "filters": {"colour": "red"}}, ("colour",)),
        ("band-nan", {**RULE, "condition": {**cond, "bands": {"high": math.nan}}}, ("finite",)),
        ("band-inf", {**RULE, "condition": {**cond, "bands": {"high": math.inf}}}, ("finite",)),
        ("band-text", {**RULE, "condition": {**cond, "bands": {"high": "lots"}}}, ("high",)),
        ("id-sql", {**RULE, "id": "a'; DROP TABLE alert_rules; --"}, ("id",)),
        ("kind-unknown", {**RULE, "condition": {**cond, "kind": "sql"}}, ("kind",)),
        ("for-negative", {**RULE, "for": "-5m"}, ("for",)),
        ("notify-traversal", {**RULE, "notify": ["../../etc/passwd"]}, ("notify",)),
        ("duplicate-id", {"rules": [RULE, RULE]}, ("already used",)),
    ]
    for name, body, frags in rules:
        yield Case(name, "alert rules json", Req("POST", "/api/v1/alert-rules", {
            "content": json.dumps(body).encode()}), 422, frags)
    yield Case("unknown-kpi", "cli rules load", Cli(("alerts", "rules", "load", "{dir}/r.yaml"), {
        "r.yaml": RULE_YAML.replace("kpi: signups", "kpi: nope").encode()}), 1, ("nope",))
    yield Case("band-nan", "cli rules load", Cli(("alerts", "rules", "load", "{dir}/r.yaml"), {
        "r.yaml": RULE_YAML.replace("100000", ".nan").encode()}), 1, ("finite",))
    yield Case("per-sql", "cli rules load", Cli(("alerts", "rules", "load", "{dir}/r.yaml"), {
        "r.yaml": (RULE_YAML + f"    per: [\"{SQL[0]}\"]\n").encode()}), 1, ("per",))
    yield Case("not-yaml", "alert rules yaml", Req("POST", "/api/v1/alert-rules", {
        "content": b"rules: [", "headers": YAML}), 422, ("not valid YAML",))
    yield Case("backtest-naive", "alert backtest", Req("POST", "/api/v1/alert-rules/backtest", {
        "json": {"rules": [RULE], "from": "2024-06-01", "to": "2024-06-30T00:00:00Z"}}), 400,
        ("from", "UTC offset"))
    yield Case("backtest-far", "alert backtest", Req("POST", "/api/v1/alert-rules/backtest", {
        "json": {"rules": [RULE], "from": "0001-01-01T00:00:00Z",
                 "to": "9999-12-31T00:00:00Z"}}), 400, ("start", "supported range"))
    yield Case("silence-sql", "silences", Req("POST", "/api/v1/silences", {
        "json": {"matchers": [f"{SQL[0]}=EU"], "duration": "1h"}}), 400, ("matcher",))
    yield Case("silence-duration-inf", "silences", Req("POST", "/api/v1/silences", {
        "json": {"matchers": ["kpi=signups"], "duration": "1e308h"}}), 400, ("duration",))
    yield Case("silence-naive", "silences", Req("POST", "/api/v1/silences", {
        "json": {"matchers": ["kpi=signups"], "start": "2024-07-01T00:00:00",
                 "end": "2024-07-02T00:00:00Z"}}), 400, ("start", "UTC offset"))


# -- query parameters of the read routes (and the CLI's query options) ----------------------------
# A filter VALUE is data: an injection string there must answer like any value nobody sent (an
# empty slice), so those rows expect 200 and an answer; a dimension NAME must be refused. The
# value rows use /trends: a successful /series records the viewer's interaction (bookkeeping
# that is right to write), which the "store unchanged" check would rightly see.


def bad_queries() -> Iterator[Case]:
    q: list[tuple[str, str, int, tuple[str, ...]]] = [
        ("unknown-kpi", "/series/nope", 404, ("unknown KPI", "nope")),
        ("kpi-sql", "/series/signups';DROP TABLE points;--", 404, ("unknown KPI",)),
        ("bad-grain", "/series/signups?grain=fortnight", 400, ("grain", "fortnight")),
        ("from-naive", "/series/signups?from=2024-06-01T00:00:00", 400, ("from", "UTC offset")),
        ("from-garbage", "/series/signups?from=yesterday", 400, ("from", "yesterday")),
        ("from-year-99999", "/series/signups?from=99999-01-01T00:00:00Z", 400, ("from",)),
        ("range-far-future", "/series/signups?from=2024-06-01T00:00:00Z&to=9999-12-31T00:00:00Z",
         400, ("end", "supported range")),
        ("range-too-many-periods", "/series/signups?from=2024-06-01T00:00:00Z&"
                                   "to=2261-01-01T00:00:00Z&grain=minute", 400, ("periods",)),
        ("range-reversed", "/series/signups?from=2024-06-30T00:00:00Z&to=2024-06-01T00:00:00Z",
         400, ("must be after start",)),
        ("tz-unknown", "/series/signups?tz=Mars/Olympus", 400, ("Mars/Olympus",)),
        ("tz-traversal", "/series/signups?tz=../../../../etc/passwd", 400, ("time zone",)),
        ("tz-absolute", "/series/signups?tz=/etc/localtime", 400, ("time zone",)),
        ("filter-no-colon", "/series/signups?filter=EU", 400, ("dim:value", "EU")),
        ("filter-unknown-dim", "/series/signups?filter=colour:red", 400, ("colour",)),
        ("filter-dim-sql", f"/series/signups?filter={SQL[0]}:EU", 400, ("dimension",)),
        ("filter-dim-quote", f"/series/signups?filter={SQL[1]}:EU", 400, ("dimension",)),
        ("by-unknown", "/series/signups?by=colour", 400, ("colour",)),
        ("by-sql", f"/series/signups?by={SQL[0]}", 400, ("dimension",)),
        ("by-quote", f"/series/signups?by={SQL[1]}", 400, ("dimension",)),
        ("forecast-horizon-0", "/forecast/signups?horizon=0", 422, ("horizon",)),
        ("forecast-horizon-huge", "/forecast/signups?horizon=1e308", 422, ("horizon",)),
        ("forecast-horizon-nan", "/forecast/signups?horizon=NaN", 422, ("horizon",)),
        ("forecast-horizon-2000", "/forecast/signups?horizon=2000", 422, ("horizon",)),
        ("forecast-by-sql", f"/forecast/signups?by={SQL[0]}", 400, ("dimension",)),
        ("forecast-filter-sql", f"/forecast/signups?filter={SQL[2]}:x", 400, ("dimension",)),
        ("trends-filter-sql", f"/trends/signups?filter={SQL[3]}:x", 400, ("dimension",)),
        ("trends-grain", "/trends/signups?grain=';--", 400, ("grain",)),
        ("anomalies-unknown", "/anomalies?kpi=nope", 404, ("nope",)),
        ("anomalies-since-naive", "/anomalies?since=2024-06-01", 400, ("since", "UTC offset")),
        ("anomalies-since-bad", "/anomalies?since=0x7fffffff", 400, ("since",)),
        ("quality-unknown", "/quality/nope", 404, ("nope",)),
        ("alerts-state", "/alerts?state=firing'--", 400, ("state",)),
        ("render-theme", "/render?theme=../../etc/passwd", 404, ("unknown theme",)),
        ("render-grain", "/render?grain=eon", 400, ("grain",)),
        ("insights-limit", "/insights?limit=-1", 422, ("limit",)),
        ("digest-format", "/digest?format=pdf", 422, ("format",)),
        ("path-invalid-utf8", "/series/%FF%FE", 404, ("unknown KPI",)),
        ("filter-dim-invalid-utf8", "/series/signups?filter=%FF:EU", 400, ("dimension",)),
        ("from-invalid-utf8", "/series/signups?from=2024-06-01T00:00:00%FF", 400, ("from",)),
    ]
    for name, url, status, frags in q:
        yield Case(name, "query", Req("GET", "/api/v1" + url, role="viewer"), status, frags)
    yield Case("detect-by-sql", "query", Req("POST", f"/api/v1/anomalies/detect/signups?by={SQL[0]}"),
               400, ("dimension",))
    for i, value in enumerate(("EU' OR '1'='1", "EU\"; DROP TABLE points; --", "%", "*")):
        # legitimately a value: answered (nothing matches it), the store untouched
        yield Case(f"filter-value-sql-{i}", "query", Req(
            "GET", f"/api/v1/trends/signups?filter=region:{value}", role="viewer"), 200, ("[",))
    yield Case("filter-dim-sql", "cli query", Cli(("query", "signups", "--filter", f"{SQL[0]}=EU")),
               1, ("dimension",))
    yield Case("by-sql", "cli query", Cli(("query", "signups", "--by", SQL[1])), 1, ("dimension",))
    yield Case("from-garbage", "cli query", Cli(("query", "signups", "--from", "yesterday")), 1,
               ("--from", "yesterday"))
    yield Case("unknown-kpi", "cli query", Cli(("query", "nope")), 1, ("unknown KPI 'nope'",))
    yield Case("bad-grain", "cli query", Cli(("query", "signups", "--grain", "eon")), 1,
               ("grain",))
    yield Case("filter-dim-sql", "cli trend", Cli(("trend", "signups", "--filter", f"{SQL[0]}=EU")),
               1, ("dimension",))


# -- file names: path traversal in uploads and workspace imports ------------------------------------


def multipart(name: str, content: bytes) -> dict[str, Any]:
    return {"files": {"file": (name, content, "application/octet-stream")}}


def bad_file_names() -> Iterator[Case]:
    """Import payloads are functions of ``archive``, a real export of the catalogue store's
    workspace (made by the test module), to tamper with."""
    import zipfile

    # The upload's name only picks the format (the file is read from a temporary file named
    # by kpidash): a name without a known suffix is refused; with one, the bad row is what is
    # refused (test_a_traversal_upload_name_writes_nothing_outside: a good file is stored, and
    # nothing is written where the name points).
    for i, name in enumerate(TRAVERSAL):
        yield Case(f"traversal-{i}", "file upload", Req("POST", "/api/v1/ingest/file",
                                                         multipart(name, csv_body([]))), 400,
                   ("cannot tell the format",))
        yield Case(f"traversal-{i}-csv", "file upload", Req("POST", "/api/v1/ingest/file",
                                                             multipart(name + ".csv", csv_body([
                                                                 csv_row("NaN")]))), 422,
                   ("row 2", "finite"))

    def tampered(extra: dict[str, bytes], manifest: Any = None) -> Archive:
        return partial(_tamper, extra, manifest)

    def _tamper(extra: dict[str, bytes], manifest: Any, archive: bytes) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(archive))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for info in src.infolist():
                data = src.read(info.filename)
                if info.filename == "manifest.json" and manifest is not None:
                    data = json.dumps(manifest(json.loads(data))).encode()
                zf.writestr(info.filename, data)
            for n, data in extra.items():
                zf.writestr(zipfile.ZipInfo(n), data)
        return buf.getvalue()

    imports: list[tuple[str, Archive, tuple[str, ...]]] = [
        ("extra-traversal-member", tampered({"../../etc/passwd": b"x"}), ("../../etc/passwd",)),
        ("extra-absolute-member", tampered({"/etc/passwd": b"x"}), ("etc/passwd",)),
        ("manifest-file-traversal", tampered({}, lambda m: {**m, "tables": {
            **m["tables"], "points": {**m["tables"]["points"], "file": "../../etc/passwd"}}}),
         ("points",)),
        ("manifest-table-sql", tampered({}, lambda m: {**m, "tables": {
            **{k: v for k, v in m["tables"].items() if k != "points"},
            "points\"; DROP TABLE points; --": m["tables"]["points"]}}), ("table",)),
        ("manifest-workspace-traversal", tampered({}, lambda m: {
            **m, "workspace": {**m["workspace"], "id": "../../etc"}}), ("workspace id",)),
        ("not-a-zip", lambda _: b"PK\x03\x04 garbage", ("not a kpidash workspace archive",)),
    ]
    for name, body, frags in imports:
        # no ?id= for the manifest's own id to be the one used
        own_id = "manifest-workspace" in name  # no ?id=: the manifest's id is the one used
        url = "/api/v1/workspaces/import" + ("" if own_id else "?id=imported")
        yield Case(name, "workspace import", Req("POST", url, {"content": body}, role="admin"),
                   422 if own_id else 400, frags)
    yield Case("id-traversal", "workspace import", Req(
        "POST", "/api/v1/workspaces/import?id=../../etc", {"content": tampered({})}, role="admin"), 422,
        ("id",))
    yield Case("multipart-traversal-name", "workspace import", Req(
        "POST", "/api/v1/workspaces/import?id=imported",
        multipart("../../etc/passwd", b"PK\x03\x04 garbage"), role="admin"), 400,
        ("../../etc/passwd",))
    yield Case("extra-traversal-member", "cli workspaces import", Cli((
        "workspaces", "import", "{dir}/a.zip", "--as", "imported"), {
        "a.zip": tampered({"../../etc/passwd": b"x"})}), 1, ("../../etc/passwd",))
    yield Case("as-traversal", "cli workspaces import", Cli((
        "workspaces", "import", "{dir}/a.zip", "--as", "../../etc"), {"a.zip": tampered({})}), 1,
        ("workspace",))


# -- the smaller JSON inputs: interactions, profile, dashboards -----------------------------------


def bad_small_bodies() -> Iterator[Case]:
    rows: list[tuple[str, str, str, Any, int, tuple[str, ...]]] = [
        ("unknown-kpi", "interactions", "/api/v1/interactions",
         {"kind": "view_kpi", "kpi_id": "nope"}, 404, ("nope",)),
        ("filter-dim-sql", "interactions", "/api/v1/interactions",
         {"kind": "apply_filter", "kpi_id": "signups", "filters": {SQL[0]: ["EU"]}}, 400,
         ("dimension",)),
        ("filter-value-null", "interactions", "/api/v1/interactions",
         {"kind": "apply_filter", "kpi_id": "signups", "filters": {"region": [None]}}, 422,
         ("filters.region.0",)),
        ("kind-unknown", "interactions", "/api/v1/interactions", {"kind": "drop_table"}, 422,
         ("kind",)),
        ("unknown-kpi", "dashboards", "/api/v1/dashboards",
         {"name": "D", "spec": {"kpis": ["nope"]}}, 404, ("nope",)),
        ("kpis-sql", "dashboards", "/api/v1/dashboards",
         {"name": "D", "spec": {"kpis": ["signups'; DROP TABLE dashboards; --"]}}, 404,
         ("unknown KPI",)),
        ("name-null", "dashboards", "/api/v1/dashboards", {"name": None}, 422, ("name",)),
    ]
    for name, path, url, body, status, frags in rows:
        yield Case(name, path, Req("POST", url, {"json": body}, role="viewer"), status, frags)
    patches: list[tuple[str, Any, int, tuple[str, ...]]] = [
        ("timezone-traversal", {"timezone": "../../../etc/passwd"}, 400, ("time zone",)),
        ("followed-unknown", {"followed": ["nope"]}, 404, ("nope",)),
        ("saved-filter-dim-sql", {"saved_filters": {"signups": {SQL[0]: ["EU"]}}}, 400,
         ("dimension",)),
        ("refresh-huge", {"refresh_interval": 10**30}, 422, ("refresh_interval",)),
        ("theme-unknown", {"theme": "../../etc"}, 422, ("theme",)),
    ]
    for name, body, status, frags in patches:
        yield Case(name, "profile", Req("PATCH", "/api/v1/me", {"json": body}, role="viewer"),
                   status, frags)


def catalogue() -> list[Case]:
    cases = [*bad_numbers(), *bad_times(), *bad_names(), *bad_shapes(), *empty_and_huge(),
             *bad_encoding_and_nesting(), *bad_yaml(), *bad_definitions(), *bad_queries(),
             *bad_file_names(), *bad_small_bodies()]
    ids = [c.pytest_id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    assert not dup, f"catalogue ids appear twice: {dup}"
    return cases
