"""Alerts (list, show, acknowledge), silences, alert rules (CRUD, backtest)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kpidash.api.deps import Analyst, State, Viewer
from kpidash.api.render import alert_json
from kpidash.api.routes.data import _json, instant, object_for
from kpidash.core.alerts import codec
from kpidash.errors import InputError, NotFound, QueryError, bad_byte

router = APIRouter(tags=["alerts"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AckBody(_Body):
    comment: str = Field(default="", max_length=1000)


class SilenceBody(_Body):
    matchers: list[str] = Field(min_length=1, max_length=20)
    duration: str | None = Field(default=None, description="e.g. 2h, 1d")
    start: str | None = None
    end: str | None = None
    comment: str = Field(default="", max_length=1000)


class BacktestBody(_Body):
    rules: str | list[dict[str, Any]] = Field(description="YAML text or a list of rules")
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    incidents: list[dict[str, Any]] = Field(default_factory=list)


@router.get("/alerts", summary="Alerts, most urgent first")
async def list_alerts(st: State, _: Viewer,
                      state: Annotated[list[str] | None, Query()] = None,
                      all: bool = False) -> list[dict[str, Any]]:
    from kpidash.core.alerts import AlertState

    known = [str(v) for v in AlertState]
    unknown = [v for v in state or [] if v not in known]
    if unknown:
        raise QueryError(f"unknown alert state(s) {', '.join(map(repr, unknown))}; use some of "
                         f"{', '.join(known)}")
    states = state or (None if all else ["pending", "firing", "recovering", "no_data",
                                         "error"])
    items = await st.run(st.engine.alerts, states=states)
    return [alert_json(a) for a in items]


@router.get("/alerts/{fingerprint}", summary="One alert with its history")
async def get_alert(st: State, _: Viewer, fingerprint: str) -> dict[str, Any]:
    a = await st.run(st.engine.alert, fingerprint)
    doc = alert_json(a)
    doc["history"] = [{"from": str(t.from_state), "to": str(t.to_state), "at": t.at.isoformat(),
                       "severity": t.severity.label,
                       "value": t.value if math.isfinite(t.value) else None}
                      for t in a.history]
    acks = await st.run(st.engine.acknowledgements, fingerprint)
    doc["acknowledgements"] = [{**k, "at": k["at"].isoformat()} for k in acks]
    return doc


@router.post("/alerts/{fingerprint}/ack", summary="Acknowledge an alert")
async def ack(st: State, me: Analyst, fingerprint: str, body: AckBody) -> dict[str, Any]:
    a = await st.run(st.engine.acknowledge, fingerprint, me.username, body.comment)
    st.alerts_changed(alert=fingerprint)
    st.publish({"type": "alert", "alert": alert_json(a)})
    return alert_json(a)


# -- silences ---------------------------------------------------------------------------------


def silence_json(s: Any, now: Any) -> dict[str, Any]:
    from kpidash.core.alerts import silence_state

    return {**codec.silence_to_doc(s), "state": str(silence_state(s, now))}


@router.get("/silences", summary="Silences (pending and active; all=true adds expired)")
async def list_silences(st: State, _: Viewer, all: bool = False) -> list[dict[str, Any]]:
    items = await st.run(st.engine.silences, include_expired=all)
    now = st.clock.now()
    return [silence_json(s, now) for s in items]


@router.post("/silences", status_code=201, summary="Mute matching alerts for a while")
async def add_silence(st: State, me: Analyst, body: SilenceBody) -> dict[str, Any]:
    from kpidash.core.alerts import parse_duration

    duration: timedelta | None = None
    if body.duration is not None:
        try:
            parsed = parse_duration(body.duration)
        except ValueError as exc:
            raise InputError(f"duration: {exc}") from None
        assert isinstance(parsed, timedelta)
        duration = parsed
    s = await st.run(st.engine.silence, body.matchers, by=me.username, duration=duration,
                     start=instant(body.start, "start"), end=instant(body.end, "end"),
                     comment=body.comment)
    st.alerts_changed()
    return silence_json(s, st.clock.now())


@router.post("/silences/{silence_id}/expire", summary="End a silence now")
async def expire_silence(st: State, _: Analyst, silence_id: str) -> dict[str, Any]:
    s = await st.run(st.engine.expire_silence, silence_id)
    st.alerts_changed()
    return silence_json(s, st.clock.now())


# -- rules ------------------------------------------------------------------------------------


@router.get("/alert-rules", summary="Alert rules")
async def list_rules(st: State, _: Viewer) -> list[dict[str, Any]]:
    return [r.to_dict() for r in await st.run(st.engine.alert_rules)]


@router.get("/alert-rules/{rule_id}", summary="One alert rule")
async def get_rule(st: State, _: Viewer, rule_id: str) -> dict[str, Any]:
    for r in await st.run(st.engine.alert_rules):
        if r.id == rule_id:
            return r.to_dict()
    raise NotFound(f"no alert rule {rule_id!r}")


def _rules_body(body: Any) -> Any:
    if isinstance(body, dict) and "rules" in body:
        return body["rules"]
    return [body] if isinstance(body, dict) else body


RULE = {"type": "object", "required": ["id", "kpi", "condition"], "properties": {
    "id": {"type": "string"}, "kpi": {"type": "string"}, "per": {"type": "string"},
    "condition": {"type": "object", "properties": {
        "kind": {"type": "string"}, "direction": {"enum": ["above", "below"]},
        "bands": {"type": "object", "additionalProperties": {"type": "number"}}}},
    "repeat_interval": {"type": "string", "description": "e.g. 1d"}}}
"""An alert rule as the OpenAPI schema describes it (the engine checks it in full)."""
RULES_BODY = {"required": True, "content": {
    "application/json": {"schema": {"anyOf": [
        RULE, {"type": "array", "items": RULE},
        {"type": "object", "required": ["rules"],
         "properties": {"rules": {"type": "array", "items": RULE}}}]}},
    "application/yaml": {"schema": {"type": "string"}}}}


@router.post("/alert-rules", status_code=201, summary="Add or replace rules (JSON or YAML)",
             openapi_extra={"requestBody": RULES_BODY})
async def put_rules(st: State, _: Analyst, request: Request) -> list[dict[str, Any]]:
    raw: Any
    if "yaml" in request.headers.get("content-type", ""):
        from kpidash.api.routes.data import read_limited

        body = await read_limited(request, st.settings.max_body_bytes)
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"alert rules YAML must be UTF-8; {bad_byte(exc)}") from None
    else:
        raw = _rules_body(await _json(request, st.settings.max_body_bytes))
        if not isinstance(raw, list):
            raise InputError("expected an alert rule, a list of them, or {\"rules\": [...]} "
                             f"(JSON), or YAML text; got a JSON {type(raw).__name__}")
        if not raw:
            raise InputError("the list of alert rules is empty; send at least one")
    rules = await st.run(st.engine.put_alert_rules, raw, source="request")
    if not rules:  # YAML without rules: nothing was stored
        raise InputError("the YAML is empty: no alert rules; expected a 'rules:' list with "
                         "at least one rule")
    return [r.to_dict() for r in rules]


@router.put("/alert-rules/{rule_id}", summary="Replace one rule",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": RULE}}}})
async def put_rule(st: State, _: Analyst, rule_id: str, request: Request) -> dict[str, Any]:
    body = await object_for(request, st.settings.max_body_bytes, rule_id, "an alert rule")
    (rule,) = await st.run(st.engine.put_alert_rules, [body],
                           source="request")
    return rule.to_dict()


@router.delete("/alert-rules/{rule_id}", status_code=204, summary="Delete a rule and its alerts")
async def delete_rule(st: State, _: Analyst, rule_id: str) -> Response:
    await st.run(st.engine.delete_alert_rule, rule_id)
    return Response(status_code=204)


@router.post("/alert-rules/backtest", summary="Replay rules over history")
async def backtest(st: State, _: Analyst, body: BacktestBody) -> list[dict[str, Any]]:
    from kpidash.core.alerts.backtest import Incident
    from kpidash.engine.alert_backtest import backtest as run_backtest
    from kpidash.engine.alert_backtest import backtest_doc
    from kpidash.engine.alerts import rules_from

    t0, t1 = instant(body.start, "from"), instant(body.end, "to")
    assert t0 is not None and t1 is not None
    try:
        incidents = [Incident.from_manifest(i) for i in body.incidents]
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"incidents: each needs id, kpi, start and end (ISO): {exc}") from None

    def run() -> list[dict[str, Any]]:
        rules = rules_from(body.rules, st.engine, "request")
        return [backtest_doc(r, s) for r, s in run_backtest(st.engine, rules, t0, t1,
                                                               incidents)]

    return await st.run(run)
