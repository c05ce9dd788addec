"""KPI definitions, ingestion (JSON batch, CSV/Parquet upload, InfluxDB line protocol) and
queries (series, forecasts, anomalies, data quality, trends)."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request, Response

from kpidash.api.deps import Analyst, Ingester, State, Viewer, ingester
from kpidash.api.errors import PayloadTooLarge as TooLarge
from kpidash.api.routes import quotas
from kpidash.errors import InputError, QueryError, bad_byte
from kpidash.model import KPI_ID_PATTERN, Aggregation, KpiKind
from kpidash.sources import json_type

router = APIRouter(tags=["data"])
# the paths InfluxDB clients use; ?db= (1.x) or ?bucket= (2.x) names the workspace, and the
# caller must be a member of it (or present an ingest token of it; without ?db=/?bucket= the
# token's workspace is meant) before anything else is looked at (deps.workspace_of)
compat = APIRouter(tags=["data"], dependencies=[Depends(ingester)])

Filters = Annotated[list[str] | None, Query(
    alias="filter", description="dim:value (repeat; the same dim twice = either value)")]


# The bodies of the routes that read the raw request (size limits, several formats, every
# problem reported at once), documented for clients and for schemathesis (the API fuzzing of
# tests/reliability); the handlers check them, these schemas only describe them.
KPI_DEFINITION = {"type": "object", "required": ["id", "name"], "description": (
    "A KPI definition (see GET /api/v1/kpis for complete ones)"), "properties": {
    "id": {"type": "string", "pattern": KPI_ID_PATTERN}, "name": {"type": "string"},
    "unit": {"type": "string"}, "kind": {"enum": [str(k) for k in KpiKind]},
    "aggregation": {"enum": [str(a) for a in Aggregation]},
    "numerator": {"type": "string"}, "denominator": {"type": "string"},
    "expression": {"type": "string"}, "min_value": {"type": "number"},
    "max_value": {"type": "number"}, "target": {"type": "number"},
    "dimensions": {"type": "array", "items": {"type": "string"}}}}
KPI_DEFINITIONS_BODY = {"required": True, "content": {"application/json": {"schema": {
    "anyOf": [KPI_DEFINITION, {"type": "array", "items": KPI_DEFINITION},
              {"type": "object", "required": ["kpis"],
               "properties": {"kpis": {"type": "array", "items": KPI_DEFINITION}}}]}}}}
KPI_DEFINITION_BODY = {"required": True, "content": {"application/json": {
    "schema": KPI_DEFINITION}}}
POINT = {"type": "object", "required": ["kpi", "ts", "value"], "properties": {
    "kpi": {"type": "string", "description": "a KPI id"},
    "ts": {"type": "string", "description": "ISO 8601 with a UTC offset"},
    "value": {"type": ["number", "string", "null"]},
    "dims": {"type": "object", "additionalProperties": {"type": "string"}}}}
POINTS_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["points"],
    "properties": {"points": {"type": "array", "items": POINT}}}}}}
FILE_BODY = {"required": True, "content": {
    "text/csv": {"schema": {"type": "string", "description": (
        "a header row timestamp,kpi,value[,dimension…], then one point per row")}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}}}}}}
LINE_PROTOCOL_BODY = {"required": True, "content": {"text/plain": {"schema": {
    "type": "string", "description": "InfluxDB line protocol, one point per line"}}}}


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body is {int(declared):,} bytes; the limit is {limit:,} "
                       "(KPIDASH_MAX_BODY_BYTES / KPIDASH_MAX_UPLOAD_BYTES)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is over the limit of {limit:,} bytes "
                           "(KPIDASH_MAX_BODY_BYTES / KPIDASH_MAX_UPLOAD_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


def filters_of(values: list[str] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in values or []:
        if ":" not in f:
            raise QueryError(f"filter expects dim:value, got {f!r}")
        d, v = f.split(":", 1)
        out.setdefault(d.strip(), []).append(v.strip())
    return out


def instant(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(f"{name} expects an ISO date or timestamp, got {text!r}") from None
    if ts.tzinfo is None:
        raise QueryError(f"{name} must carry a UTC offset (e.g. 2024-06-01T00:00:00Z), got "
                         f"{text!r}")
    return ts


# -- KPI definitions --------------------------------------------------------------------------


@router.get("/kpis", summary="KPI definitions")
async def list_kpis(st: State, _: Viewer) -> list[dict[str, Any]]:
    return [k.model_dump(mode="json") for k in st.engine.registry]


@router.get("/kpis/{kpi_id}", summary="One KPI definition")
async def get_kpi(st: State, _: Viewer, kpi_id: str) -> dict[str, Any]:
    return st.engine.registry.get(kpi_id).model_dump(mode="json")


def _definitions(body: Any) -> list[Any]:
    items = body.get("kpis") if isinstance(body, dict) and "kpis" in body else body
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list):
        raise InputError("expected a KPI definition, a list of them, or {\"kpis\": [...]}; "
                         f"got a JSON {json_type(items)}")
    if not items:
        raise InputError("the list of KPI definitions is empty; send at least one")
    return items


@router.post("/kpis", status_code=201, summary="Add or replace KPI definitions",
             openapi_extra={"requestBody": KPI_DEFINITIONS_BODY})
async def put_kpis(st: State, _: Analyst, request: Request) -> list[dict[str, Any]]:
    items = _definitions(await _json(request, st.settings.max_body_bytes))
    reg = await st.run(quotas.register, st, items)  # within the workspace's max_kpis
    ids = {i.get("id") for i in items if isinstance(i, dict)}
    st.definitions_changed(k.id for k in reg if k.id in ids)
    return [k.model_dump(mode="json") for k in reg if k.id in ids]


@router.put("/kpis/{kpi_id}", summary="Replace one KPI definition",
            openapi_extra={"requestBody": KPI_DEFINITION_BODY})
async def put_kpi(st: State, _: Analyst, kpi_id: str, request: Request) -> dict[str, Any]:
    body = await object_for(request, st.settings.max_body_bytes, kpi_id, "a KPI definition")
    reg = await st.run(quotas.register, st, [body])
    st.definitions_changed([kpi_id])
    return reg.get(kpi_id).model_dump(mode="json")


@router.delete("/kpis/{kpi_id}", status_code=204,
               summary="Delete a KPI definition (purge=true: and its data)")
async def delete_kpi(st: State, _: Analyst, kpi_id: str, purge: bool = False) -> Response:
    await st.run(st.engine.delete_kpi, kpi_id, purge=purge)
    st.definitions_changed([kpi_id])
    return Response(status_code=204)


@router.post("/kpis/validate", summary="Check definitions without storing them",
             openapi_extra={"requestBody": KPI_DEFINITIONS_BODY})
async def validate_kpis(st: State, _: Viewer, request: Request) -> dict[str, Any]:
    from kpidash.core.registry import validate_definitions

    items = _definitions(await _json(request, st.settings.max_body_bytes))
    _kpis, report = validate_definitions(items, source="request")
    return {"ok": report.ok, "errors": report.error_count,
            "issues": [i.to_dict() for i in report.issues]}


async def object_for(request: Request, limit: int, ident: str, what: str) -> dict[str, Any]:
    """The JSON object a PUT to ``…/{ident}`` carries, with its ``id`` set to the path's (a
    different id in the body is an error, not a rename)."""
    body = await _json(request, limit)
    if not isinstance(body, dict):
        raise InputError(f"expected {what} (a JSON object), got a JSON {type(body).__name__}")
    if body.get("id", ident) != ident:
        raise InputError(f"the body's id {body.get('id')!r} differs from the path's {ident!r}")
    return {**body, "id": ident}


async def _json(request: Request, limit: int) -> Any:
    raw = await read_limited(request, limit)
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InputError(f"the body is not valid UTF-8 JSON: {bad_byte(exc)}") from None
    except ValueError as exc:
        raise InputError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError("the body's JSON is nested too deeply to read") from None


# -- ingestion --------------------------------------------------------------------------------

EMPTY_BATCH = ("the batch is empty: send at least one point, e.g. {\"points\": [{\"kpi\": "
               "\"signups\", \"ts\": \"2024-05-01T00:00:00Z\", \"value\": 3}]}")


def _ingested(st: Any, result: Any, kpis: set[str], source: str) -> dict[str, Any]:
    st.data_changed(kpis)
    st.metrics.points.labels(source).inc(result.written)
    return {"rows": result.rows, "written": result.written, "new_series": result.new_series,
            "corrected": result.corrected, "warnings": result.warnings}


@router.post("/ingest", summary="Ingest a JSON batch {\"points\": [...]} (all or nothing)",
             openapi_extra={"requestBody": POINTS_BODY})
async def ingest(st: State, _: Ingester, request: Request) -> dict[str, Any]:
    import anyio
    import pyarrow.compute as pc

    from kpidash.api.batch import points_table

    raw = await read_limited(request, st.settings.max_body_bytes)
    # api.batch: the same table as sources.points_from_json, faster for uniform batches, and
    # parsed in a worker thread outside the engine lock (it was in the event loop): one
    # client's batch is parsed while another's is written (benchmarks/api.py, 2 clients ×
    # 10,000 points: 42,800 → 58,200 points/s, the second on a busier machine)
    table = await anyio.to_thread.run_sync(points_table, raw)
    if table.num_rows == 0:
        raise InputError(EMPTY_BATCH)
    result = await st.run(quotas.ingest, st, table.num_rows,  # within the workspace's quotas
                          partial(st.engine.ingest_table, table, source="json"))
    kpis = (set(pc.unique(table.column("kpi")).to_pylist()) if "kpi" in table.column_names
            else set())
    return _ingested(st, result, kpis, "json")


@router.post("/ingest/file", summary="Upload a CSV or Parquet file (raw body, or a "
             "multipart form with a `file` field as browsers send it)",
             openapi_extra={"requestBody": FILE_BODY})
async def ingest_file(st: State, _: Ingester, request: Request,
                      format: Annotated[str | None, Query(pattern="^(csv|parquet|json)$")
                                        ] = None,
                      ) -> dict[str, Any]:
    limit = st.settings.max_upload_bytes
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        raw, name = await _form_file(request, limit)
        format = format or _format_of(name)
    else:
        raw = await read_limited(request, limit)
        format = format or "csv"
    return await _ingest_bytes(st, raw, format)


async def _form_file(request: Request, limit: int) -> tuple[bytes, str]:
    """The ``file`` field of a multipart upload, refused (413) over ``limit`` bytes."""
    from starlette.datastructures import UploadFile

    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise TooLarge("a multipart upload needs a Content-Length (use the raw-body form "
                       "for streamed uploads)")
    if int(declared) > limit:
        raise TooLarge(f"the body is {int(declared):,} bytes; the limit is {limit:,} "
                       "(KPIDASH_MAX_UPLOAD_BYTES)")
    form = await request.form(max_files=2, max_fields=10, max_part_size=limit)
    try:  # closing the form closes (deletes) every spooled file in it
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InputError("the multipart form needs a `file` field holding the CSV or "
                             "Parquet file")
        return await upload.read(), upload.filename or ""
    finally:
        await form.close()


def _format_of(filename: str) -> str:
    name = filename.lower()
    for suffix, fmt in ((".parquet", "parquet"), (".csv", "csv"), (".csv.gz", "csv"),
                        (".json", "json")):
        if name.endswith(suffix):
            return fmt
    raise InputError(f"cannot tell the format of {filename!r}: name it .csv, .csv.gz, "
                     ".parquet or .json, or pass ?format=")


async def _ingest_bytes(st: Any, raw: bytes, format: str) -> dict[str, Any]:
    suffix = {"csv": ".csv", "parquet": ".parquet", "json": ".json"}[format]
    if format == "csv" and raw[:2] == b"\x1f\x8b":  # gzip magic: a .csv.gz upload
        suffix = ".csv.gz"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(raw)
        try:
            result = await st.run(quotas.ingest, st, None,  # rows counted as it is read
                                  partial(st.engine.ingest_file, path, fmt=format))
        except pa.ArrowException as exc:  # a corrupt or truncated file (e.g. not Parquet)
            raise InputError(f"the upload is not a readable {format} file: "
                             f"{str(exc).splitlines()[0][:200]}") from None
    if result.rows == 0:  # nothing was written: there was nothing
        raise InputError(f"the {format} upload is empty: no data rows; send at least one "
                         "point (columns timestamp, kpi, value, one per dimension)")
    kpis = {k.id for k in st.engine.registry}
    return _ingested(st, result, kpis, format)


@router.post("/write", summary="InfluxDB line protocol (v1/v2 compatible)", status_code=204,
             openapi_extra={"requestBody": LINE_PROTOCOL_BODY})
@compat.post("/write", include_in_schema=False, status_code=204)
@compat.post("/api/v2/write", include_in_schema=False, status_code=204)
async def write(st: State, _: Ingester, request: Request,
                precision: Annotated[str, Query()] = "ns",
                mapping: Annotated[str, Query(pattern="^(measurement|field)$")] = "measurement",
                ) -> Response:
    from kpidash.core.lineprotocol import parse, precision_of
    from kpidash.errors import BatchRejected

    raw = await read_limited(request, st.settings.max_body_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"line protocol must be UTF-8; byte {exc.start} is not") from None
    table, report = parse(text, precision=precision_of(precision), now=st.clock.now(),
                          mapping=mapping)
    if table is None:
        raise BatchRejected("line protocol batch rejected, nothing written", report)
    if table.num_rows == 0:
        raise InputError("the line protocol body is empty: no points, only blank or "
                         "comment lines; send at least one line such as "
                         "'signups,region=EU value=3'")
    result = await st.run(quotas.ingest, st, table.num_rows,
                          partial(st.engine.ingest_table, table, source="line protocol"))
    _ingested(st, result, set(table.column("kpi").to_pylist()), "line_protocol")
    return Response(status_code=204)


# -- queries ----------------------------------------------------------------------------------


@router.get("/series/{kpi_id}", summary="A KPI at a grain over a range, filtered, grouped")
async def series(st: State, me: Viewer, kpi_id: str, grain: str = "day",
                 start: Annotated[str | None, Query(alias="from")] = None,
                 end: Annotated[str | None, Query(alias="to")] = None,
                 filters: Filters = None, by: str | None = None,
                 tz: str | None = None) -> list[dict[str, Any]]:
    flt = filters_of(filters)
    out = await st.run(st.engine.query, kpi_id, grain, instant(start, "from"),
                       instant(end, "to"), tz=tz, filters=flt, group_by=by)
    kind = "apply_filter" if flt else "view_kpi"
    await st.run(st.engine.record_interaction, me.username, kind, kpi_id=kpi_id,
                 filters=flt or None, role=me.role)
    return [s.to_dict() for s in out]


@router.get("/forecast/{kpi_id}", summary="Forecast a KPI (model chosen by backtest)")
async def forecast(st: State, _: Viewer, kpi_id: str, grain: str = "day",
                   horizon: Annotated[int, Query(ge=1, le=1000)] = 28,
                   filters: Filters = None, by: str | None = None) -> list[dict[str, Any]]:
    out = await st.run(st.engine.forecast, kpi_id, grain, horizon, filters=filters_of(filters),
                       group_by=by)
    return [f.to_dict() for f in out]


@router.get("/anomalies", summary="Stored anomalies")
async def anomalies(st: State, _: Viewer, kpi: str | None = None,
                    since: str | None = None) -> list[dict[str, Any]]:
    if kpi is not None:
        st.engine.registry.get(kpi)
    return await st.run(st.engine.anomalies, kpi, instant(since, "since"))


@router.post("/anomalies/detect/{kpi_id}", summary="Score a KPI and store new anomalies")
async def detect(st: State, _: Analyst, kpi_id: str, grain: str = "day",
                 filters: Filters = None, by: str | None = None) -> Response:
    r = await st.run(st.engine.detect_anomalies, kpi_id, grain, filters=filters_of(filters),
                     group_by=by)
    body = json.dumps({"new": r.new, "anomalies": r.found}, default=str)
    return Response(body, media_type="application/json")


@router.get("/quality/{kpi_id}", summary="Data-quality report of a simple KPI")
async def quality(st: State, _: Viewer, kpi_id: str) -> dict[str, Any]:
    return (await st.run(st.engine.quality, kpi_id)).to_dict()


@router.get("/trends/{kpi_id}", summary="Change, trend and trend breaks")
async def trends(st: State, _: Viewer, kpi_id: str, grain: str = "week",
                 filters: Filters = None, by: str | None = None) -> list[dict[str, Any]]:
    out = await st.run(st.engine.trend, kpi_id, grain, filters=filters_of(filters), group_by=by)
    return [t.to_dict() for t in out]


__all__ = ["compat", "router"]
