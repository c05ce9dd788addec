"""JSON documents for the alert state the store keeps: instances, transitions, silences,
notification group states; and the ``name=value`` matcher syntax of the CLI and API.

Every ``*_to_doc`` output is JSON-safe (no NaN or infinity: they travel as null, an infinite
instance value with its sign in ``value_infinite``; datetimes as ISO 8601 with offset,
durations as seconds) and its ``*_from_doc`` reads it back equal.

A matcher's value may be written in double quotes as a JSON string (``region=" EU"``);
:func:`format_matcher` does so whenever the bare text would read back differently (blanks
at either end, a leading ``"``, or ``=`` followed by ``~``), so format → parse is exact.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kpidash.core.alerts.evaluate import SliceKey
from kpidash.core.alerts.group import GroupKey, GroupState
from kpidash.core.alerts.silence import Matcher, MatchOp, Silence
from kpidash.core.alerts.state import Acknowledgement, AlertInstance, AlertState, Transition
from kpidash.core.anomaly.result import Severity
from kpidash.errors import AlertError

_SEVERITY = {s.label: s for s in Severity}


def _num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def severity_from_label(label: str) -> Severity:
    try:
        return _SEVERITY[label]
    except KeyError:
        raise AlertError(f"unknown severity {label!r}; use one of "
                         f"{', '.join(_SEVERITY)}") from None


def instance_to_doc(inst: AlertInstance) -> dict[str, Any]:
    """The instance without its history (kept as rows of its own, see transition_to_row)."""
    ack = inst.acknowledgement
    return {
        "fingerprint": inst.fingerprint, "rule_id": inst.rule_id, "kpi_id": inst.kpi_id,
        "slice": [list(p) for p in inst.slice], "state": inst.state.value,
        "severity": inst.severity.label, "value": _num(inst.value),
        # +inf (stale with no point ever) / -inf survive as 1 / -1; older docs hold True
        "value_infinite": int(math.copysign(1, inst.value)) if math.isinf(inst.value) else 0,
        "threshold": _num(inst.threshold), "since": _iso(inst.since),
        "firing_since": _iso(inst.firing_since), "updated_at": _iso(inst.updated_at),
        "pending_for": inst.pending_for.total_seconds(),
        "keep_firing_for": inst.keep_firing_for.total_seconds(),
        "acknowledgement": None if ack is None else {
            "by": ack.by, "at": ack.at.isoformat(), "comment": ack.comment},
    }


def instance_from_doc(doc: Mapping[str, Any], history: Iterable[Transition] = ()
                      ) -> AlertInstance:
    ack = doc.get("acknowledgement")
    value = doc.get("value")
    if value is None:
        sign = doc.get("value_infinite")
        value = math.copysign(math.inf, sign) if sign else math.nan
    slice_: SliceKey = tuple((str(k), str(v)) for k, v in doc.get("slice") or ())
    return AlertInstance(
        fingerprint=doc["fingerprint"], rule_id=doc["rule_id"], kpi_id=doc["kpi_id"],
        slice=slice_, pending_for=timedelta(seconds=float(doc.get("pending_for", 0))),
        keep_firing_for=timedelta(seconds=float(doc.get("keep_firing_for", 0))),
        state=AlertState(doc["state"]), severity=severity_from_label(doc["severity"]),
        value=float(value), threshold=doc.get("threshold"), since=_ts(doc.get("since")),
        firing_since=_ts(doc.get("firing_since")), updated_at=_ts(doc.get("updated_at")),
        acknowledgement=None if ack is None else Acknowledgement(
            ack["by"], datetime.fromisoformat(ack["at"]), ack.get("comment", "")),
        history=tuple(history))


def transition_to_row(fp: str, t: Transition) -> dict[str, Any]:
    return {"fingerprint": fp, "from_state": t.from_state.value, "to_state": t.to_state.value,
            "at": t.at, "severity": t.severity.label, "value": t.value}


def transition_from_row(row: Mapping[str, Any]) -> Transition:
    value = row.get("value")
    return Transition(AlertState(row["from_state"]), AlertState(row["to_state"]), row["at"],
                      severity_from_label(row["severity"]),
                      math.nan if value is None else float(value))


def silence_to_doc(s: Silence) -> dict[str, Any]:
    return {"id": s.id, "matchers": [format_matcher(m) for m in s.matchers],
            "start": s.start.isoformat(), "end": s.end.isoformat(),
            "created_by": s.created_by, "comment": s.comment}


def silence_from_doc(doc: Mapping[str, Any]) -> Silence:
    start, end = doc["start"], doc["end"]
    return Silence(doc["id"], parse_matchers(doc["matchers"]),
                   start if isinstance(start, datetime) else datetime.fromisoformat(start),
                   end if isinstance(end, datetime) else datetime.fromisoformat(end),
                   doc["created_by"], doc.get("comment", ""))


def group_key_text(key: GroupKey) -> str:
    return json.dumps([list(p) for p in key], separators=(",", ":"), ensure_ascii=False)


def group_key_from_text(text: str) -> GroupKey:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


def group_state_to_doc(st: GroupState) -> dict[str, Any]:
    return {"key": [list(p) for p in st.key], "created_at": st.created_at.isoformat(),
            "last_sent_at": _iso(st.last_sent_at),
            "notified": sorted([fp, sev] for fp, sev in st.notified)}


def group_state_from_doc(doc: Mapping[str, Any]) -> GroupState:
    created = _ts(doc["created_at"])
    assert created is not None
    return GroupState(tuple((str(k), str(v)) for k, v in doc["key"]), created,
                      _ts(doc.get("last_sent_at")),
                      frozenset((str(fp), int(sev)) for fp, sev in doc.get("notified") or ()))


# "name op value" with op one of =, !=, =~, !~ ; the name is a label (kpi, rule, severity, dim)
_MATCHER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)(.*)$", re.DOTALL)


def parse_matcher(text: str) -> Matcher:
    """``kpi=revenue``, ``region!=EU``, ``region=~EU|NA``, ``severity!~low|medium``."""
    m = _MATCHER_RE.match(text)
    if m is None:
        raise AlertError(f"matcher {text!r} is not like name=value, name!=value, name=~regex or "
                         "name!~regex (e.g. kpi=revenue)")
    name, op, raw = m.groups()
    value = raw.strip()
    if value.startswith('"'):
        try:
            quoted = json.loads(value)
        except ValueError:
            quoted = None  # not a quoted string after all: take the text as it is
        if isinstance(quoted, str):
            value = quoted
    try:
        return Matcher(name, value, MatchOp(op))
    except AlertError as exc:
        raise AlertError(f"matcher {text!r}: {exc}") from None


def parse_matchers(items: Sequence[str | Matcher] | str) -> tuple[Matcher, ...]:
    if isinstance(items, str):
        items = [items]
    return tuple(i if isinstance(i, Matcher) else parse_matcher(i) for i in items)


def format_matcher(m: Matcher) -> str:
    """The text :func:`parse_matcher` reads back as ``m``, quoting the value only if needed."""
    v = m.value
    if v != v.strip() or v.startswith('"') or (m.op is MatchOp.EQ and v.startswith("~")):
        v = json.dumps(v, ensure_ascii=False)
    return f"{m.name}{m.op.value}{v}"
