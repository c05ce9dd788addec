"""InfluxDB line protocol → a long table of kpidash points (pure: no I/O, no clock reads).

So that existing agents and client libraries (Telegraf, influxdb-client …) can push to
kpidash's ``/write``-compatible endpoint. One point per line::

    measurement[,tag_key=tag_value…] field_key=field_value[,field_key=field_value…] [timestamp]

Syntax, as in the InfluxDB line protocol reference:

* Sections are separated by one space (more are tolerated, as is trailing whitespace and a
  ``\\r`` before the newline). Blank lines and lines whose first non-blank character is ``#``
  are skipped.
* Escapes: a backslash before a comma or a space in the measurement, and before a comma, an
  equals sign or a space in tag keys, tag values and field keys, makes that character part of
  the name; two contiguous backslashes stand for one. Any other backslash is literal. String
  field values are double-quoted; inside them ``\\"`` is a quote and ``\\\\`` a backslash.
* Field values: float (``1``, ``-1.5``, ``1e9``), integer (``1i``), unsigned (``1u``),
  boolean (``t``/``T``/``true``/``True``/``TRUE``, ``f``/``F``/``false``/``False``/``FALSE``)
  or string (``"…"``). NaN and infinities are not numbers in line protocol.
* Timestamp: a signed integer in the request's precision (``ns`` by default; see
  :func:`precision_of`), within InfluxDB's range (the int64 nanosecond range). Without one the
  point gets ``now``. kpidash stores microseconds: finer digits are dropped (floored).

Mapping to points (long format, as :func:`kpidash.core.batch.validate` expects):

* ``mapping="measurement"`` (default): the field named ``value`` is the point of KPI
  ``<measurement>``; every other field is a point of KPI ``<measurement>_<field>``.
* ``mapping="field"``: every field is a point of KPI ``<measurement>_<field>``.
* Tags become dimension columns (one string column per tag key seen, null where a line has no
  such tag). Tag keys must be dimension names (lower_snake_case, not ``timestamp``/``kpi``/
  ``value`` or their aliases).
* Booleans become 1.0/0.0, integers and unsigned integers floats. String fields cannot be KPI
  values and are rejected.

Every problem is reported at once: the report's ``row`` is the 1-based line number, ``field``
the element (``measurement``, ``timestamp``, the tag or field key) and the message says what
was expected and what came. Any error rejects the whole text: the table is then ``None``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import pyarrow as pa

from kpidash.core.batch import ALIASES, REQUIRED, TS_TYPE
from kpidash.core.report import Report, ReportBuilder
from kpidash.errors import ValidationFailed
from kpidash.model import DIM_NAME_PATTERN

Mapping = Literal["measurement", "field"]

MAX_LINE_LENGTH: Final = 64 * 1024
"""Longest accepted line, in characters; a longer line is an error (nothing is guessed)."""

PRECISIONS: Final[dict[str, int]] = {
    "ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
    "m": 60_000_000_000, "h": 3_600_000_000_000,
}
"""Canonical precision → nanoseconds per unit."""

PRECISION_ALIASES: Final[dict[str, str]] = {
    "n": "ns", "u": "us", "µ": "us", "µs": "us", "μs": "us",
}
"""Spellings used by InfluxDB v1's ``precision`` query parameter (``n``, ``u``)."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_RESERVED_TAGS: Final = frozenset(REQUIRED) | frozenset(ALIASES)
_DIM_RE: Final = re.compile(DIM_NAME_PATTERN)

# Unrolled, possessive patterns: linear time even on a 64 KiB line that does not match.
_MEAS = r"[^\\ ,]*+(?:\\.[^\\ ,]*+)*+"
_KEY = r"[^\\ ,=]*+(?:\\.[^\\ ,=]*+)*+"
_STR = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_BARE = r'[^ ,"=\\]*+'
_FVAL = rf"(?:{_STR}|{_BARE})"
_LINE_RE: Final = re.compile(
    rf"({_MEAS})((?:,{_KEY}={_KEY})*+) ++({_KEY}={_FVAL}(?:,{_KEY}={_FVAL})*+)(?: ++([^ ]++))? *+")
_TAG_RE: Final = re.compile(rf",({_KEY})=({_KEY})")
_FIELD_RE: Final = re.compile(rf"({_KEY})=({_FVAL})")
_FLOAT_RE: Final = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_INT_RE: Final = re.compile(r"[-+]?\d+")
_UINT_RE: Final = re.compile(r"\+?\d+")
_BOOLS: Final[dict[str, float]] = {
    **dict.fromkeys(("t", "T", "true", "True", "TRUE"), 1.0),
    **dict.fromkeys(("f", "F", "false", "False", "FALSE"), 0.0),
}
_FLOAT_END: Final = frozenset("0123456789.")
_UNESC_MEAS: Final = re.compile(r"\\([, \\])")
_UNESC_KEY: Final = re.compile(r"\\([,= \\])")
_UNESC_STR: Final = re.compile(r'\\(["\\])')


def precision_of(value: str) -> str:
    """The canonical precision (``ns``, ``us``, ``ms``, ``s``, ``m``, ``h``) for a ``precision``
    query parameter; accepts InfluxDB v1's ``n`` and ``u`` and any letter case.

    Raises :class:`~kpidash.errors.ValidationFailed` (code ``lineprotocol.precision``)
    naming the accepted values.
    """
    key = value.strip().lower()
    key = PRECISION_ALIASES.get(key, key)
    if key in PRECISIONS:
        return key
    rb = ReportBuilder(item_kind="parameter")
    rb.error("lineprotocol.precision",
             f"expected a timestamp precision, one of {', '.join(PRECISIONS)} (or n, u), "
             f"got {value!r}", field="precision")
    raise ValidationFailed("invalid precision", rb.build())


def _describe(line: str, i: int) -> str:
    return "end of line" if i >= len(line) else repr(line[i:i + 20])


def _scan(line: str, i: int, stops: str) -> int:
    """Index of the first unescaped character of ``stops`` from ``i`` (or ``len(line)``)."""
    n = len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in stops:
            return i
        i += 1
    return n


def _diagnose(line: str) -> tuple[str, str]:
    """(field, message) for a line the fast pattern did not accept: the first problem, with
    what was expected and what came."""
    n = len(line)
    i = _scan(line, 0, " ,")
    while i < n and line[i] == ",":
        j = _scan(line, i + 1, " ,=")
        key = line[i + 1:j]
        if j >= n or line[j] != "=":
            return (key or "tags", f"expected tag_key=tag_value after ',', got "
                    f"{_describe(line, i + 1)}; escape a literal comma, space or '=' with '\\'")
        k = _scan(line, j + 1, " ,=")
        if k < n and line[k] == "=":
            return key, (f"expected ',' or a space after the value of tag {key!r}, got '='; "
                         "escape a literal '=' as '\\='")
        i = k
    if i >= n:
        return "fields", ("expected a space and at least one field (key=value) after the "
                          "measurement and tags, got end of line")
    while i < n and line[i] == " ":
        i += 1
    key = "fields"
    while True:
        j = _scan(line, i, " ,=")
        key = line[i:j] or "fields"
        if j >= n or line[j] != "=":
            return key, f"expected field_key=field_value, got {_describe(line, i)}"
        i = j + 1
        if i < n and line[i] == '"':
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            if j >= n:
                return key, (f"expected a closing double quote for the string value of field "
                             f"{key!r}, got end of line; escape quotes inside as '\\\"'")
            i = j + 1
        else:
            j = i
            while j < n and line[j] not in " ,":
                if line[j] in '"=\\':
                    return key, (f"expected a number, boolean or double-quoted string as the "
                                 f"value of field {key!r}, got {line[i:j + 1]!r}…")
                j += 1
            i = j
        if i < n and line[i] == ",":
            i += 1
            continue
        break
    if i < n and line[i] != " ":
        return key, f"expected ',' or a space after the value of field {key!r}, got {_describe(line, i)}"
    rest = line[i:].strip()
    return "timestamp", f"expected at most one timestamp at the end of the line, got {rest!r}"


def _number(raw: str) -> float | None:
    """A non-string field value as float (booleans 1/0); None when it is not valid."""
    last = raw[-1:]
    if last in _FLOAT_END:
        try:
            f = float(raw)  # float() also takes "nan", "1_0", "١" …: checked below
        except ValueError:
            return None
        return f if f - f == 0 and raw.isascii() and "_" not in raw else None
    if last == "i" and _INT_RE.fullmatch(raw, 0, len(raw) - 1):
        v = int(raw[:-1])
        return float(v) if _INT64_MIN <= v <= _INT64_MAX else None
    if last == "u" and _UINT_RE.fullmatch(raw, 0, len(raw) - 1):
        v = int(raw[:-1])
        return float(v) if v <= _UINT64_MAX else None
    return _BOOLS.get(raw)


def _bad_value_message(key: str, raw: str) -> str:
    last = raw[-1:]
    if last == "i" and _INT_RE.fullmatch(raw, 0, len(raw) - 1):
        return f"expected an integer in the int64 range for field {key!r}, got {raw!r}"
    if last == "u" and _UINT_RE.fullmatch(raw, 0, len(raw) - 1):
        return f"expected an unsigned integer in the uint64 range for field {key!r}, got {raw!r}"
    if _FLOAT_RE.fullmatch(raw):
        return f"expected a finite float in the float64 range for field {key!r}, got {raw!r}"
    return (f"expected a field value (float such as 1.5, integer 1i, unsigned 1u, boolean t/f "
            f"or a double-quoted string) for field {key!r}, got {raw!r}")


class _Parser:
    """One parse: the report, the columns collected so far and the caches of tag sets."""

    def __init__(self, *, mult: int, precision: str, now_us: int, by_field: bool,
                 source: str | None) -> None:
        self.rb = ReportBuilder(item_kind="line")
        self.mult = mult
        self.precision = precision
        self.now_us = now_us
        self.by_field = by_field
        self.source = source
        self.ok = True
        self.ts: list[int] = []
        self.kpi: list[str] = []
        self.value: list[float] = []
        self.head_of_row: list[int] = []
        # measurement+tags text → (head id, measurement); heads[id] = the head's tags
        self.head_ids: dict[str, tuple[int, str]] = {}
        self.heads: list[dict[str, str]] = []
        self.good_tag_keys: set[str] = set()

    def error(self, code: str, message: str, lineno: int, field: str | None = None) -> None:
        self.rb.error(code, message, source=self.source, row=lineno, field=field)
        if self.ok:
            self.ok = False
            # a rejected text writes nothing: stop collecting, keep checking for the report
            self.ts, self.kpi, self.value, self.head_of_row = [], [], [], []

    def head(self, meas: str, tagset: str, lineno: int) -> tuple[int, str] | None:
        """Parse and cache a measurement + tag set; None (reported) when it is invalid."""
        good = True
        if "\\" in meas:
            meas = _UNESC_MEAS.sub(r"\1", meas)
        if not meas:
            self.error("lineprotocol.measurement", "expected a measurement name at the start "
                       "of the line, got nothing", lineno, "measurement")
            good = False
        tags: dict[str, str] = {}
        if tagset:
            if "\\" in tagset:
                pairs = [(_UNESC_KEY.sub(r"\1", k), _UNESC_KEY.sub(r"\1", v))
                         for k, v in _TAG_RE.findall(tagset)]
            else:
                pairs = [(k, v) for k, _, v in (p.partition("=") for p in tagset[1:].split(","))]
            for k, v in pairs:
                if k not in self.good_tag_keys:
                    if not _DIM_RE.match(k) or k in _RESERVED_TAGS:
                        why = ("is reserved for the point's own columns" if k in _RESERVED_TAGS
                               else "is not a dimension name")
                        self.error("lineprotocol.tag_key",
                                   f"expected a lower_snake_case dimension name as tag key (not "
                                   f"timestamp, kpi or value), got {k!r}, which {why}",
                                   lineno, k or "tags")
                        good = False
                        continue
                    self.good_tag_keys.add(k)
                if not v:
                    self.error("lineprotocol.tag", f"expected a value for tag {k!r}, got nothing",
                               lineno, k)
                    good = False
                elif k in tags:
                    self.error("lineprotocol.duplicate", f"expected each tag once per line, got "
                               f"tag {k!r} twice", lineno, k)
                    good = False
                tags[k] = v
        if not good:
            return None
        self.heads.append(tags)
        return len(self.heads) - 1, meas

    def timestamp(self, raw: str | None, lineno: int) -> int | None:
        if raw is None:
            return self.now_us
        if _INT_RE.fullmatch(raw):
            ns = int(raw) * self.mult
            if _INT64_MIN < ns < _INT64_MAX:
                return ns // 1000
            self.error("lineprotocol.timestamp", "expected a timestamp between 1677-09-21 and "
                       f"2262-04-11 (int64 nanoseconds), got {raw!r} in precision "
                       f"{self.precision!r}", lineno, "timestamp")
            return None
        self.error("lineprotocol.timestamp", "expected an integer Unix timestamp in precision "
                   f"{self.precision!r}, got {raw!r}", lineno, "timestamp")
        return None

    def fields(self, fieldset: str, meas: str, lineno: int) -> list[tuple[str, float]] | None:
        """The (KPI id, value) pairs of one field set; None (reported) when any is invalid."""
        by_field = self.by_field
        if '"' in fieldset or "\\" in fieldset:
            pairs = [(_UNESC_KEY.sub(r"\1", k) if "\\" in k else k, v)
                     for k, v in _FIELD_RE.findall(fieldset)]
        else:
            pairs = [(k, v) for k, _, v in (f.partition("=") for f in fieldset.split(","))]
        out: list[tuple[str, float]] = []
        good = True
        for key, raw in pairs:
            val = _number(raw) if raw[:1] != '"' else None
            if val is not None and key:
                out.append((meas if key == "value" and not by_field else f"{meas}_{key}", val))
                continue
            good = False
            if not key:
                self.error("lineprotocol.field", f"expected a field key before '={raw}', got "
                           "nothing", lineno, "fields")
            elif raw[:1] == '"':
                body = raw[1:-1]
                text = _UNESC_STR.sub(r"\1", body) if "\\" in body else body
                kpi = meas if key == "value" and not by_field else f"{meas}_{key}"
                shown = text if len(text) <= 40 else text[:40] + "…"
                self.error("lineprotocol.field_type",
                           f"expected a numeric or boolean value for KPI {kpi!r}, got the string "
                           f"{shown!r}; KPI values are numbers", lineno, key)
            else:
                self.error("lineprotocol.field", _bad_value_message(key, raw), lineno, key)
        if len(pairs) > 1:
            keys = [k for k, _ in pairs]
            if len(set(keys)) < len(keys):
                dup = sorted({k for k in keys if keys.count(k) > 1})
                self.error("lineprotocol.duplicate", f"expected each field once per line, got "
                           f"field(s) {dup} more than once", lineno, dup[0] or "fields")
                good = False
        return out if good else None

    def line(self, line: str, lineno: int) -> None:
        m = _LINE_RE.fullmatch(line)
        if m is None:
            fld, msg = _diagnose(line)
            self.error("lineprotocol.syntax", msg, lineno, fld)
            return
        head_text = line[:m.end(2)]
        head = self.head_ids.get(head_text)
        if head is None:
            head = self.head(m.group(1), m.group(2), lineno)
            if head is not None:
                self.head_ids[head_text] = head
        fieldset, ts_raw = m.group(3, 4)
        ts = self.timestamp(ts_raw, lineno)
        meas = head[1] if head else _UNESC_MEAS.sub(r"\1", m.group(1))
        points = self.fields(fieldset, meas, lineno)
        if self.ok and head is not None and ts is not None and points is not None:
            n = len(points)
            for kpi, val in points:
                self.kpi.append(kpi)
                self.value.append(val)
            self.ts.extend([ts] * n)
            self.head_of_row.extend([head[0]] * n)

    def table(self) -> pa.Table:
        columns: dict[str, pa.Array] = {
            "timestamp": pa.array(self.ts, type=pa.int64()).cast(TS_TYPE),
            "kpi": pa.array(self.kpi, type=pa.string()),
            "value": pa.array(self.value, type=pa.float64()),
        }
        keys = sorted({k for h in self.heads for k in h})
        if keys:
            rows = pa.array(self.head_of_row, type=pa.int64())
            for k in keys:
                per_head = pa.array([h.get(k) for h in self.heads], type=pa.string())
                columns[k] = per_head.take(rows)
        return pa.table(columns)


def parse(
    text: str,
    *,
    precision: str = "ns",
    now: datetime,
    mapping: str = "measurement",
    source: str | None = None,
    max_line_length: int = MAX_LINE_LENGTH,
) -> tuple[pa.Table | None, Report]:
    """Parse line protocol into a points table; ``(None, report)`` when any line is bad.

    The table has ``timestamp`` (``timestamp[us, tz=UTC]``), ``kpi`` (string), ``value``
    (float64) and one string column per tag key seen (sorted by name; null where a line has
    no such tag), one row per KPI value in line order then field order. ``now`` (timezone-
    aware) stamps lines without a timestamp. ``precision`` is any value :func:`precision_of`
    accepts. Raises ValueError for an unknown ``mapping`` or a naive ``now``, and
    :class:`~kpidash.errors.ValidationFailed` for an unknown precision.
    """
    if mapping not in ("measurement", "field"):
        raise ValueError(f"mapping must be 'measurement' or 'field', got {mapping!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}; pass clock.now()")
    canonical = precision_of(precision)
    p = _Parser(mult=PRECISIONS[canonical], precision=canonical, now_us=(now - _EPOCH) // _US,
                by_field=mapping == "field", source=source)
    heads = p.head_ids
    by_field = p.by_field
    mult = p.mult
    now_us = p.now_us
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if len(line) > max_line_length:
            p.error("lineprotocol.line_too_long", f"expected a line of at most "
                    f"{max_line_length} characters, got {len(line)}", lineno)
            continue
        first = line[0]
        if first == "#":
            continue
        if first in " \t\r" or line[-1] == "\r":
            line = line.strip(" \t\r")
            if not line or line[0] == "#":
                continue
        # Fast path for the common line (no escapes, no strings, a known tag set, valid
        # numbers); anything else goes through the full parser, which reports problems.
        if "\\" in line or '"' in line:
            p.line(line, lineno)
            continue
        parts = line.split(" ")
        if len(parts) == 3:
            head_text, fieldset, ts_raw = parts
            if ts_raw.isdigit() and ts_raw.isascii() and (ns := int(ts_raw) * mult) < _INT64_MAX:
                ts = ns // 1000
            else:
                p.line(line, lineno)
                continue
        elif len(parts) == 2:
            head_text, fieldset = parts
            ts = now_us
        else:
            p.line(line, lineno)
            continue
        head = heads.get(head_text)
        if head is None:
            p.line(line, lineno)
            continue
        meas = head[1]
        kpis: list[str] = []
        vals: list[float] = []
        for f in fieldset.split(","):
            key, eq, raw = f.partition("=")
            val = _number(raw)
            if val is None or not key or not eq or "=" in raw:
                break
            kpis.append(meas if key == "value" and not by_field else f"{meas}_{key}")
            vals.append(val)
        else:
            if len(kpis) == 1 or len(set(kpis)) == len(kpis):
                if p.ok:
                    n = len(vals)
                    p.kpi.extend(kpis)
                    p.value.extend(vals)
                    p.ts.extend([ts] * n)
                    p.head_of_row.extend([head[0]] * n)
                continue
        p.line(line, lineno)
    report = p.rb.build()
    if not p.ok or not report.ok:
        return None, report
    return p.table(), report


def _benchmark(n: int = 100_000) -> None:  # pragma: no cover - run by hand
    import time

    text = "\n".join(
        f"saas,region=r{i % 7},plan=p{i % 3} value={i * 0.5},users={i}i {1714564800000000000 + i}"
        for i in range(n))
    now = datetime(2024, 5, 1, tzinfo=UTC)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        table, report = parse(text, now=now)
        best = min(best, time.perf_counter() - t0)
    assert table is not None and report.ok
    print(f"{n} lines ({table.num_rows} points, {len(text) / 1e6:.1f} MB): best of 5 "
          f"{best * 1000:.0f} ms")


if __name__ == "__main__":  # pragma: no cover
    _benchmark()
