"""Validation of a batch of points in long format — every bad row reported, nothing guessed.

Input is an Arrow table with columns ``timestamp``, ``kpi``, ``value`` and one column per
dimension (``region``, ``plan`` …; null or empty where a point has no such dimension). All
checks are vectorised with pyarrow/numpy so a million-row chunk validates in well under a
second. The result is either a :class:`CleanBatch` ready to store, or a report naming each
bad row (1-based data row number, offset by ``row_offset`` for chunked files), the field,
what was expected and what came.

Checks: unknown or non-simple KPI, missing/unparseable/naive timestamp (naive is accepted
only when ``default_tz`` is given), timestamp after ``latest`` (the caller's clock plus
:data:`FUTURE_HORIZON`: a year typed 2204 for 2024, seconds sent as milliseconds),
non-numeric or non-finite value, value outside the KPI's [min_value, max_value] (handled by
the KPI's ``on_out_of_bounds`` policy), dimension not declared by the KPI, dimension value
with control characters or longer than 200 characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kpidash.core.registry import Registry
from kpidash.core.report import Report, ReportBuilder
from kpidash.model import DIM_NAME_PATTERN, MAX_ABS_VALUE, BoundsPolicy, KpiKind

REQUIRED = ("timestamp", "kpi", "value")
ALIASES = {"ts": "timestamp", "time": "timestamp", "kpi_id": "kpi"}
TS_TYPE = pa.timestamp("us", tz="UTC")
SERIES_KEY_SEP = "\x1f"
MAX_DIM_VALUE = 200
FUTURE_HORIZON = timedelta(days=366)  # how far after "now" a point may be (plans, budgets)
# An offset only counts after a time of day: "2024-01-02" ends in "-02" but is a naive date.
_AWARE_RE = r"\d{2}:\d{2}(:\d{2}([.,]\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"
_DIM_RE = re.compile(DIM_NAME_PATTERN)


@dataclass(frozen=True)
class CleanBatch:
    """Validated points, column-wise, in input order (duplicates resolved by the store).

    ``series_key`` identifies a series: ``kpi`` + SEP + sorted ``dim=value`` pairs, each
    followed by SEP. ``raw_value`` is NaN where the stored value is the value sent, else the
    value sent before a correction named in ``correction`` and explained in ``reason``.
    """

    kpi: pa.Array
    ts: pa.Array
    value: npt.NDArray[np.float64]
    raw_value: npt.NDArray[np.float64]
    correction: pa.Array
    reason: pa.Array
    series_key: pa.Array
    dims: dict[str, pa.Array]
    corrected: int

    def __len__(self) -> int:
        return len(self.value)


def series_key(kpi_id: str, dims: dict[str, str]) -> str:
    """The canonical key of one series (same as the vectorised form built in validate)."""
    body = "".join(f"{d}={dims[d]}{SERIES_KEY_SEP}" for d in sorted(dims) if dims[d] not in ("", None))
    return f"{kpi_id}{SERIES_KEY_SEP}{body}"


def normalise_columns(table: pa.Table) -> tuple[pa.Table, Report]:
    """Rename aliases, lowercase names, and check the required columns exist."""
    rb = ReportBuilder()
    names = [ALIASES.get(n.strip().lower(), n.strip().lower()) for n in table.column_names]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        rb.error("batch.columns", f"columns appear twice after normalising names: {dup}")
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        rb.error("batch.columns", f"missing column(s) {missing}; expected timestamp, kpi, value "
                 f"and one column per dimension, got {table.column_names}")
    for n in names:
        if n not in REQUIRED and not _DIM_RE.match(n):
            rb.error("batch.columns", f"column {n!r} is not a valid dimension name "
                     "(lower_snake_case)", field=n)
    return table.rename_columns(names), rb.build()


def validate(
    table: pa.Table,
    registry: Registry,
    *,
    row_offset: int = 0,
    default_tz: str | None = None,
    source: str | None = None,
    latest: datetime | None = None,
) -> tuple[CleanBatch | None, Report]:
    """Validate one batch; return (CleanBatch, report) or (None, report) when any row is bad.

    ``latest`` (timezone-aware): timestamps after it are refused; the engine passes its
    clock's now + :data:`FUTURE_HORIZON`."""
    table, col_report = normalise_columns(table)
    if not col_report.ok:
        return None, col_report
    n = table.num_rows
    rb = ReportBuilder()
    rows = np.arange(1 + row_offset, n + 1 + row_offset)
    bad = np.zeros(n, dtype=bool)

    kpi = _as_string(table.column("kpi"))
    kpi_idx, kpi_names = _encode(kpi)
    simple = {k.id for k in registry if k.kind is KpiKind.SIMPLE}
    for code_i, name in enumerate(kpi_names):
        if name in simple:
            continue
        mask = kpi_idx == code_i
        if name is None or name == "":
            msg = "expected a KPI id, got nothing"
        elif name in registry:
            kind = registry.get(name).kind
            msg = (f"KPI {name!r} is a {kind} KPI computed from "
                   f"{', '.join(registry.get(name).inputs())}; send points for those instead")
        else:
            msg = f"unknown KPI {name!r}; register it first (known: {_known(simple)})"
        _row_errors(rb, "point.kpi", msg, rows[mask], "kpi", source)
        bad |= mask
    kpi_idx = np.where(kpi_idx < 0, 0, kpi_idx)

    ts, ts_bad = _parse_timestamps(table.column("timestamp"), default_tz, rb, rows, source)
    bad |= ts_bad
    if latest is not None:
        bad |= _future(ts, ts_bad, latest, rb, rows, source)

    value, value_bad = _parse_values(table.column("value"), rb, rows, source)
    bad |= value_bad

    dim_names = sorted(c for c in table.column_names if c not in REQUIRED)
    dims: dict[str, pa.Array] = {}
    for dim in dim_names:
        col = _as_string(table.column(dim))
        col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
        present = np.asarray(pc.is_valid(col), dtype=bool)
        allowed = np.array([(nm in simple and dim in registry.get(nm).dimensions)
                            for nm in kpi_names], dtype=bool)
        not_allowed = present & ~allowed[kpi_idx] & ~bad
        for code_i in np.unique(kpi_idx[not_allowed]):
            nm = kpi_names[code_i]
            decl = registry.get(nm).dimensions if nm in simple else ()
            _row_errors(rb, "point.dimension",
                        f"KPI {nm!r} has no dimension {dim!r} (declared: {list(decl) or 'none'}); "
                        "add it to the KPI's dimensions or leave the cell empty",
                        rows[not_allowed & (kpi_idx == code_i)], dim, source)
        bad |= not_allowed
        if present.any():
            # checked once per distinct value (a column holds few): the regex over every
            # row cost ~40 ms per dimension per million rows
            enc = pc.dictionary_encode(col)
            uniq = enc.dictionary
            lengths = np.asarray(pc.fill_null(pc.utf8_length(uniq), 0))
            weird_u = (lengths > MAX_DIM_VALUE) | np.asarray(
                pc.fill_null(pc.match_substring_regex(uniq, r"[\x00-\x1f]"), False), dtype=bool)
            idx = np.asarray(pc.fill_null(enc.indices, 0).to_numpy(zero_copy_only=False),
                             dtype=np.int64)
            weird = present & weird_u[idx] if len(uniq) else np.zeros(n, dtype=bool)
            if weird.any():
                _row_errors(rb, "point.dimension_value",
                            f"expected a dimension value of at most {MAX_DIM_VALUE} printable "
                            "characters", rows[weird], dim, source)
                bad |= weird
        dims[dim] = col

    raw_value = np.full(n, np.nan)
    correction = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    corrected = 0
    for code_i, name in enumerate(kpi_names):
        if name not in simple:
            continue
        k = registry.get(name)
        if k.min_value is None and k.max_value is None:
            continue
        lo = -np.inf if k.min_value is None else k.min_value
        hi = np.inf if k.max_value is None else k.max_value
        sel = (kpi_idx == code_i) & ~bad
        out = sel & ((value < lo) | (value > hi))
        if not out.any():
            continue
        expect = f"a value in [{k.min_value}, {k.max_value}] for KPI {name!r}"
        if k.on_out_of_bounds is BoundsPolicy.REJECT:
            _row_errors(rb, "point.bounds", f"expected {expect}", rows[out], "value", source,
                        got=value[out])
            bad |= out
        elif k.on_out_of_bounds is BoundsPolicy.CLAMP:
            raw_value[out] = value[out]
            value[out] = np.clip(value[out], lo, hi)
            correction[out] = "clamp"
            reason[out] = f"outside [{k.min_value}, {k.max_value}]; clamped to the bound"
            corrected += int(out.sum())
        else:
            for r, v in zip(rows[out][:100], value[out][:100], strict=False):
                rb.warning("point.bounds", f"value {v:g} is outside {expect}; stored as sent",
                           source=source, row=int(r), field="value")

    report = rb.build()
    if bad.any() or not report.ok:
        return None, report
    key = _series_keys(kpi, dims)
    return CleanBatch(kpi=kpi, ts=ts, value=value, raw_value=raw_value,
                      correction=pa.array(correction, type=pa.string()),
                      reason=pa.array(reason, type=pa.string()), series_key=key,
                      dims=dims, corrected=corrected), report


def _known(ids: set[str]) -> str:
    shown = sorted(ids)
    return ", ".join(shown[:12]) + (" …" if len(shown) > 12 else "") if shown else "none"


def _row_errors(rb: ReportBuilder, code: str, message: str, rows: npt.NDArray[np.int64],
                field: str, source: str | None, got: Sequence[object] | None = None) -> None:
    for i, r in enumerate(rows):
        msg = message if got is None else f"{message}, got {got[i]!r}"
        rb.error(code, msg, source=source, row=int(r), field=field)


def _as_string(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return pc.cast(arr, pa.string())


def _encode(arr: pa.Array) -> tuple[npt.NDArray[np.int64], list[str | None]]:
    """Dictionary-encode: (codes, distinct values); nulls get their own code."""
    enc = pc.dictionary_encode(arr, null_encoding="encode")
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, enc.dictionary.to_pylist()


def _parse_timestamps(col: pa.ChunkedArray, default_tz: str | None, rb: ReportBuilder,
                      rows: npt.NDArray[np.int64], source: str | None,
                      ) -> tuple[pa.Array, npt.NDArray[np.bool_]]:
    arr = col.combine_chunks()
    n = len(arr)
    null = np.asarray(pc.is_null(arr), dtype=bool)
    naive_hint = ("timestamp has no time zone; add an offset such as 'Z' or '+02:00', or set "
                  "a default input time zone (KPIDASH_INPUT_TIMEZONE / --input-tz)")
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        if pa.types.is_date(arr.type):
            arr = pc.cast(arr, pa.timestamp("us"))
        if arr.type.tz is None:
            if default_tz is None:
                valid = ~null
                _row_errors(rb, "point.timestamp_naive", naive_hint, rows[valid], "timestamp", source)
                bad = null | valid
                _null_errors(rb, rows[null], source)
                return pa.nulls(n, TS_TYPE), bad
            arr = pc.assume_timezone(pc.cast(arr, pa.timestamp("us")), default_tz,
                                     ambiguous="earliest", nonexistent="latest")
        ts = pc.cast(arr, TS_TYPE)
        _null_errors(rb, rows[null], source)
        return ts, null
    text = pc.utf8_trim_whitespace(_as_string(arr))
    aware = np.asarray(pc.fill_null(pc.match_substring_regex(text, _AWARE_RE), False), dtype=bool)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    bad = null.copy()
    _null_errors(rb, rows[null], source)
    aware_i = np.flatnonzero(aware & ~null)
    naive_i = np.flatnonzero(~aware & ~null)
    if len(aware_i):
        parsed, failed = _cast_strings(text.take(pa.array(aware_i)), TS_TYPE)
        out[aware_i] = parsed
        _bad_ts(rb, rows[aware_i[failed]], text.take(pa.array(aware_i[failed])), source)
        bad[aware_i[failed]] = True
    if len(naive_i):
        parsed, failed = _cast_strings(text.take(pa.array(naive_i)), pa.timestamp("us"))
        if default_tz is None:
            ok = ~failed
            _row_errors(rb, "point.timestamp_naive", naive_hint, rows[naive_i[ok]], "timestamp",
                        source)
            bad[naive_i] = True
        else:
            local = pa.array(parsed, type=pa.timestamp("us"))
            utc = pc.assume_timezone(local, default_tz, ambiguous="earliest",
                                     nonexistent="latest")
            out[naive_i] = np.asarray(pc.cast(utc, pa.int64()).to_numpy(zero_copy_only=False),
                                      dtype="datetime64[us]")
            bad[naive_i[failed]] = True
        _bad_ts(rb, rows[naive_i[failed]], text.take(pa.array(naive_i[failed])), source)
    return pa.array(out.astype("int64"), type=pa.int64()).cast(TS_TYPE), bad


def _future(ts: pa.Array, ts_bad: npt.NDArray[np.bool_], latest: datetime, rb: ReportBuilder,
            rows: npt.NDArray[np.int64], source: str | None) -> npt.NDArray[np.bool_]:
    """Rows whose (valid) timestamp is after ``latest``, reported."""
    limit = int((latest.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC))
                // timedelta(microseconds=1))
    micros = np.asarray(pc.fill_null(pc.cast(ts, pa.int64()), 0).to_numpy(zero_copy_only=False),
                        dtype=np.int64)
    future = ~ts_bad & (micros > limit)
    if future.any():
        shown = latest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        got = [v.isoformat().replace("+00:00", "Z") for v in ts.filter(pa.array(future)).to_pylist()]
        _row_errors(rb, "point.timestamp_future",
                    f"expected a timestamp no later than {shown} ({FUTURE_HORIZON.days} days "
                    "after the server's clock)", rows[future], "timestamp", source, got=got)
    return future


def _null_errors(rb: ReportBuilder, rows: npt.NDArray[np.int64], source: str | None) -> None:
    _row_errors(rb, "point.timestamp", "expected an ISO 8601 timestamp, got nothing", rows,
                "timestamp", source)


def _bad_ts(rb: ReportBuilder, rows: npt.NDArray[np.int64], text: pa.Array,
            source: str | None) -> None:
    _row_errors(rb, "point.timestamp", "expected an ISO 8601 timestamp such as "
                "'2024-05-01T12:00:00Z'", rows, "timestamp", source, got=text.to_pylist())


def _cast_strings(text: pa.Array, target: pa.DataType,
                  ) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.bool_]]:
    """Cast ISO strings with Arrow (fast path); on failure find the bad rows with pandas."""
    try:
        ts = pc.cast(text, target)
        vals = np.asarray(pc.cast(ts, pa.int64()).to_numpy(zero_copy_only=False))
        return vals.astype("datetime64[us]"), np.zeros(len(text), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    ser = pd.to_datetime(pd.Series(text.to_pylist(), dtype="string"), errors="coerce",
                         format="ISO8601", utc=target.tz is not None)
    failed = ser.isna().to_numpy()
    if target.tz is not None:
        ser = ser.dt.tz_convert("UTC").dt.tz_localize(None)
    vals = ser.to_numpy(dtype="datetime64[us]")
    return vals, failed


def _parse_values(col: pa.ChunkedArray, rb: ReportBuilder, rows: npt.NDArray[np.int64],
                  source: str | None) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    arr = col.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    null = np.asarray(pc.is_null(arr), dtype=bool)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(
            arr.type):
        values = np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False),
                            dtype=np.float64).copy()
        not_number = np.zeros(len(arr), dtype=bool)
    else:
        text = pc.utf8_trim_whitespace(_as_string(arr))
        try:
            values = np.asarray(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False),
                                dtype=np.float64).copy()
            not_number = np.zeros(len(arr), dtype=bool)
        except pa.ArrowInvalid:
            conv = pd.to_numeric(pd.Series(text.to_pylist(), dtype=object), errors="coerce")
            values = conv.to_numpy(dtype=np.float64, na_value=np.nan).copy()
            not_number = np.isnan(values) & ~null
            lowered = pd.Series(text.to_pylist(), dtype=object).str.lower()
            not_number &= ~lowered.isin(["nan", "inf", "-inf", "+inf", "infinity", "-infinity"]
                                        ).to_numpy()
    values[null] = np.nan
    _row_errors(rb, "point.value", "expected a number, got nothing", rows[null], "value", source)
    if not_number.any():
        text_vals = _as_string(arr).filter(pa.array(not_number)).to_pylist()
        _row_errors(rb, "point.value", "expected a number", rows[not_number], "value", source,
                    got=text_vals)
    nonfinite = ~np.isfinite(values) & ~null & ~not_number
    if nonfinite.any():
        _row_errors(rb, "point.value", "expected a finite number", rows[nonfinite], "value",
                    source, got=[float(v) for v in values[nonfinite]])
    with np.errstate(invalid="ignore"):
        huge = np.isfinite(values) & (np.abs(values) > MAX_ABS_VALUE)
    if huge.any():
        _row_errors(rb, "point.value", f"expected a number within ±{MAX_ABS_VALUE:.0e}",
                    rows[huge], "value", source, got=[float(v) for v in values[huge]])
    return values, null | not_number | nonfinite | huge


def _series_keys(kpi: pa.Array, dims: dict[str, pa.Array]) -> pa.Array:
    """The series key of every row (see :class:`CleanBatch`).

    A batch holds few distinct series (thousands in a million rows), so the keys are built
    once per distinct (kpi, dims…) combination and expanded with ``take``: joining strings on
    every row was half of the validation time of a million-row chunk.
    """
    n = len(kpi)
    if n == 0:
        return _join_keys(kpi, dims)
    combo = np.zeros(n, dtype=np.int64)
    card = 1
    for col in [kpi, *(dims[d] for d in sorted(dims))]:
        enc = pc.dictionary_encode(col, null_encoding="encode")
        codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        size = max(1, len(enc.dictionary))
        if card * size >= 2**62:  # keep the mixed code in int64: re-number what we have
            combo = pd.factorize(combo)[0].astype(np.int64)
            card = int(combo.max()) + 1
        combo = combo * size + codes
        card *= size
    inverse, uniq = pd.factorize(combo)
    first = np.empty(len(uniq), dtype=np.int64)
    first[inverse] = np.arange(n)  # any row of a combination will do: they share the key
    pick = pa.array(first)
    keys = _join_keys(kpi.take(pick), {d: c.take(pick) for d, c in dims.items()})
    return keys.take(pa.array(inverse))


def _join_keys(kpi: pa.Array, dims: dict[str, pa.Array]) -> pa.Array:
    pieces: list[pa.Array] = [pc.binary_join_element_wise(kpi, "", SERIES_KEY_SEP)]
    for dim in sorted(dims):
        pair = pc.binary_join_element_wise(pa.scalar(dim), dims[dim], "=")
        pieces.append(pc.coalesce(pc.binary_join_element_wise(pair, "", SERIES_KEY_SEP), ""))
    if len(pieces) == 1:
        return pieces[0]
    return pc.binary_join_element_wise(*pieces, "")
