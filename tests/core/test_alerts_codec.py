from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpidash.core.alerts import (
    Acknowledgement,
    AlertError,
    AlertInstance,
    AlertState,
    GroupKey,
    GroupState,
    Matcher,
    MatchOp,
    Severity,
    Silence,
    Transition,
    fingerprint,
)
from kpidash.core.alerts.codec import (
    format_matcher,
    group_key_from_text,
    group_key_text,
    group_state_from_doc,
    group_state_to_doc,
    instance_from_doc,
    instance_to_doc,
    parse_matcher,
    parse_matchers,
    severity_from_label,
    silence_from_doc,
    silence_to_doc,
    transition_from_row,
    transition_to_row,
)

T0 = datetime(2026, 3, 2, 9, 15, 30, 123456, tzinfo=UTC)
IST = timezone(timedelta(hours=5, minutes=30))
PST = timezone(timedelta(hours=-8))
SLICE = (("plan", "pro"), ("region", "EU"))


def json_trip(doc: dict[str, Any]) -> dict[str, Any]:
    """What a store that keeps the document as JSON text gives back."""
    loaded: dict[str, Any] = json.loads(json.dumps(doc, allow_nan=False))
    return loaded


def same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_same_instance(got: AlertInstance, want: AlertInstance) -> None:
    """Equal, with NaN equal to NaN (dataclass equality would say NaN != NaN)."""
    assert same_value(got.value, want.value), (got.value, want.value)
    assert len(got.history) == len(want.history)
    for g, w in zip(got.history, want.history, strict=True):
        assert same_value(g.value, w.value)
        assert replace(g, value=0.0) == replace(w, value=0.0)
    assert replace(got, value=0.0, history=()) == replace(want, value=0.0, history=())


def instance(**changes: Any) -> AlertInstance:
    base = AlertInstance(
        fingerprint("drop", "revenue", SLICE), "drop", "revenue", SLICE,
        pending_for=timedelta(hours=2), keep_firing_for=timedelta(minutes=90, microseconds=5),
        state=AlertState.FIRING, severity=Severity.HIGH, value=412.5, threshold=500.0,
        since=T0, firing_since=T0 - timedelta(hours=1), updated_at=T0 + timedelta(minutes=3))
    return replace(base, **changes)


# -- instances ---------------------------------------------------------------------------------

@pytest.mark.parametrize("inst", [
    pytest.param(instance(), id="firing"),
    pytest.param(instance(value=math.nan, threshold=None), id="nan-value"),
    pytest.param(instance(value=math.inf, threshold=86400.0), id="plus-inf-stale"),
    pytest.param(instance(value=-math.inf), id="minus-inf"),
    pytest.param(instance(value=-0.0, threshold=-12.25), id="negative"),
    pytest.param(instance(slice=()), id="whole-kpi"),
    pytest.param(instance(slice=(("région", "Île-de-France"), ("x", "a\"b\nc"))), id="unicode-slice"),
    pytest.param(instance(state=AlertState.NORMAL, severity=Severity.NONE, since=None,
                          firing_since=None, updated_at=None, pending_for=timedelta(0),
                          keep_firing_for=timedelta(0)), id="fresh"),
    pytest.param(instance(since=datetime(2026, 3, 2, 14, 45, tzinfo=IST),
                          firing_since=datetime(2026, 3, 1, 23, 0, tzinfo=PST)), id="offsets"),
    pytest.param(instance(acknowledgement=Acknowledgement("ana", T0 + timedelta(minutes=5),
                                                          "looking into it")), id="acked"),
    pytest.param(instance(acknowledgement=Acknowledgement("bo", datetime(2026, 3, 2, tzinfo=IST))),
                 id="acked-no-comment"),
    pytest.param(instance(state=AlertState.RESOLVED, severity=Severity.CRITICAL), id="resolved"),
])
def test_instance_round_trips_through_json(inst: AlertInstance) -> None:
    doc = instance_to_doc(inst)
    text = json.dumps(doc, allow_nan=False)  # raises on NaN / infinity
    back = instance_from_doc(json.loads(text))
    assert_same_instance(back, inst)
    assert back.since is None or back.since.utcoffset() == inst.since.utcoffset()  # type: ignore[union-attr]


def test_instance_doc_shape() -> None:
    doc = instance_to_doc(instance(value=math.inf))
    assert doc["value"] is None and doc["state"] == "firing" and doc["severity"] == "high"
    assert doc["slice"] == [["plan", "pro"], ["region", "EU"]]
    assert doc["pending_for"] == 7200.0 and doc["since"] == T0.isoformat()
    assert "history" not in doc  # kept as rows of their own


def test_instance_history_comes_from_rows() -> None:
    hist = (Transition(AlertState.NORMAL, AlertState.PENDING, T0, Severity.HIGH, 7.0),
            Transition(AlertState.PENDING, AlertState.FIRING, T0 + timedelta(hours=2),
                       Severity.HIGH, math.nan))
    inst = instance(history=hist)
    rows = [transition_to_row(inst.fingerprint, t) for t in inst.history]
    back = instance_from_doc(json_trip(instance_to_doc(inst)),
                             [transition_from_row(r) for r in rows])
    assert_same_instance(back, inst)
    assert instance_from_doc(instance_to_doc(inst)).history == ()


def test_instance_from_older_doc_uses_defaults() -> None:
    doc = {"fingerprint": "f", "rule_id": "r", "kpi_id": "k", "state": "pending",
           "severity": "low"}
    back = instance_from_doc(doc)
    assert back.slice == () and back.pending_for == timedelta(0) and math.isnan(back.value)
    assert back.threshold is None and back.since is None and back.acknowledgement is None


AWARE = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([UTC, IST, PST]))
DURATION = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))
LABEL = st.text(max_size=8)
INSTANCES = st.builds(
    AlertInstance,
    fingerprint=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    rule_id=LABEL, kpi_id=LABEL,
    slice=st.lists(st.tuples(LABEL, LABEL), max_size=3).map(tuple),
    pending_for=DURATION, keep_firing_for=DURATION,
    state=st.sampled_from(AlertState), severity=st.sampled_from(Severity),
    value=st.floats(), threshold=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    since=st.none() | AWARE, firing_since=st.none() | AWARE, updated_at=st.none() | AWARE,
    acknowledgement=st.none() | st.builds(Acknowledgement, LABEL, AWARE, st.text(max_size=20)),
)


@given(INSTANCES)
def test_any_instance_round_trips(inst: AlertInstance) -> None:
    doc = instance_to_doc(inst)
    assert_same_instance(instance_from_doc(json_trip(doc)), inst)
    assert instance_to_doc(instance_from_doc(doc)) == doc  # the document is canonical


def test_unknown_severity_label_is_a_clear_error() -> None:
    with pytest.raises(AlertError, match=r"unknown severity 'urgent'.*critical"):
        severity_from_label("urgent")
    assert severity_from_label("critical") is Severity.CRITICAL


# -- transitions -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [3.5, math.nan, math.inf, -2.0], ids=["finite", "nan", "inf", "neg"])
def test_transition_row_round_trips(value: float) -> None:
    t = Transition(AlertState.FIRING, AlertState.RECOVERING, T0, Severity.CRITICAL, value)
    row = transition_to_row("abc", t)
    assert row["fingerprint"] == "abc" and row["from_state"] == "firing"
    assert row["to_state"] == "recovering" and row["severity"] == "critical" and row["at"] == T0
    back = transition_from_row(row)
    assert same_value(back.value, value)
    assert replace(back, value=0.0) == replace(t, value=0.0)


def test_transition_row_with_null_value_reads_nan() -> None:
    row = transition_to_row("abc", Transition(AlertState.NORMAL, AlertState.NO_DATA, T0,
                                              Severity.NONE, math.nan))
    assert math.isnan(transition_from_row({**row, "value": None}).value)


# -- silences and matchers ---------------------------------------------------------------------

ALL_OPS = (Matcher("kpi", "revenue"), Matcher("region", "EU", MatchOp.NE),
           Matcher("region", "EU|NA", MatchOp.RE), Matcher("severity", "low|medium", MatchOp.NOT_RE))


def test_silence_round_trips_all_four_ops() -> None:
    s = Silence("s1", ALL_OPS, T0, T0 + timedelta(hours=4), "ana", "maintenance window")
    doc = silence_to_doc(s)
    assert doc["matchers"] == ["kpi=revenue", "region!=EU", "region=~EU|NA",
                               "severity!~low|medium"]
    back = silence_from_doc(json_trip(doc))
    assert back == s
    labels = {"kpi": "revenue", "region": "NA", "severity": "high"}
    assert back.matches(labels) and s.matches(labels)
    for other in ({"region": "EU"}, {"region": "APAC"}, {"severity": "low"}, {"kpi": "x"}):
        assert not back.matches({**labels, **other})


def test_silence_from_doc_accepts_datetimes_and_missing_comment() -> None:
    doc = {"id": "s2", "matchers": ["kpi=revenue"], "start": T0,
           "end": T0 + timedelta(days=1), "created_by": "bo"}
    s = silence_from_doc(doc)
    assert s.start == T0 and s.end == T0 + timedelta(days=1) and s.comment == ""
    assert s.matchers == (Matcher("kpi", "revenue"),)


@pytest.mark.parametrize(("text", "want"), [
    ("kpi=revenue", Matcher("kpi", "revenue")),
    ("region!=EU", Matcher("region", "EU", MatchOp.NE)),
    ("region=~EU|NA", Matcher("region", "EU|NA", MatchOp.RE)),
    ("severity!~low|medium", Matcher("severity", "low|medium", MatchOp.NOT_RE)),
    ("region = EU", Matcher("region", "EU")),
    ("  region !~ E.* ", Matcher("region", "E.*", MatchOp.NOT_RE)),
    ("region=", Matcher("region", "")),
    ("a==b", Matcher("a", "=b")),
    ("a!=~b", Matcher("a", "~b", MatchOp.NE)),
    ('region=" EU "', Matcher("region", " EU ")),
    ('note="x=~y"', Matcher("note", "x=~y")),
], ids=lambda v: v if isinstance(v, str) else "")
def test_parse_matcher(text: str, want: Matcher) -> None:
    got = parse_matcher(text)
    assert got == want
    assert parse_matcher(format_matcher(got)) == got


@pytest.mark.parametrize("m", [
    *ALL_OPS,
    Matcher("a", "~tilde"),          # '=' then '~' would read back as a regex
    Matcher("a", " padded "),        # surrounding blanks would be stripped
    Matcher("a", "   "),
    Matcher("a", '"quoted"'),
    Matcher("a", '"half'),
    Matcher("a", "multi\nline"),
    Matcher("a", "", MatchOp.NE),
    Matcher("a", "~x", MatchOp.RE),
], ids=lambda m: f"{m.op.name}:{m.value!r}")
def test_format_matcher_round_trips(m: Matcher) -> None:
    assert parse_matcher(format_matcher(m)) == m


REGEXES = st.sampled_from(["EU|NA", ".*", "a+b?", "[a-z]{2}", r"\d+", "(x|y)z", ""])


@given(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
       st.sampled_from([MatchOp.EQ, MatchOp.NE]), st.text(max_size=12))
def test_any_literal_matcher_round_trips(name: str, op: MatchOp, value: str) -> None:
    m = Matcher(name, value, op)
    assert parse_matcher(format_matcher(m)) == m


@given(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
       st.sampled_from([MatchOp.RE, MatchOp.NOT_RE]), REGEXES)
def test_any_regex_matcher_round_trips(name: str, op: MatchOp, value: str) -> None:
    m = Matcher(name, value, op)
    back = parse_matcher(format_matcher(m))
    assert back == m
    for probe in ("EU", "aab", "12", "", "yz"):
        assert back.matches({name: probe}) == m.matches({name: probe})


@pytest.mark.parametrize("text", ["region", "=x", "a=~[", "9a=x", "", "!=x"])
def test_malformed_matcher_is_a_clear_error_naming_it(text: str) -> None:
    with pytest.raises(AlertError) as info:
        parse_matcher(text)
    assert repr(text) in str(info.value)


def test_bad_regex_error_says_why() -> None:
    with pytest.raises(AlertError, match=r"'a=~\['.*regular expression"):
        parse_matcher("a=~[")


def test_parse_matchers_accepts_text_matchers_and_one_string() -> None:
    m = Matcher("kpi", "revenue")
    assert parse_matchers("kpi=revenue") == (m,)
    assert parse_matchers([m, "region!=EU"]) == (m, Matcher("region", "EU", MatchOp.NE))


# -- groups ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    (("rule", "drop"), ("kpi", "revenue")),
    (),
    (("région", "Île"), ("q", 'a"b,c]')),
], ids=["default", "empty", "unicode"])
def test_group_key_text_round_trips(key: GroupKey) -> None:
    text = group_key_text(key)
    assert group_key_from_text(text) == key
    assert group_key_text(group_key_from_text(text)) == text  # one text per key
    json.loads(text)


def test_group_key_text_is_compact_and_distinct() -> None:
    a = group_key_text((("rule", "a"), ("kpi", "b")))
    assert a == '[["rule","a"],["kpi","b"]]'
    assert a != group_key_text((("rule", "a,"), ("kpi", "b")))


@pytest.mark.parametrize("state", [
    GroupState((("rule", "drop"), ("kpi", "revenue")), T0),
    GroupState((("rule", "drop"), ("kpi", "revenue")), T0, T0 + timedelta(seconds=30),
               frozenset({("f1", 3), ("f2", 4), ("f0", 1)})),
    GroupState((), datetime(2026, 3, 2, 14, 45, tzinfo=IST), datetime(2026, 3, 2, 1, tzinfo=PST)),
], ids=["new", "sent", "offsets"])
def test_group_state_round_trips_through_json(state: GroupState) -> None:
    doc = group_state_to_doc(state)
    assert group_state_from_doc(json_trip(doc)) == state
    assert doc["notified"] == sorted(doc["notified"])  # stable document


@given(st.builds(GroupState, st.lists(st.tuples(LABEL, LABEL), max_size=3).map(tuple), AWARE,
                 st.none() | AWARE,
                 st.frozensets(st.tuples(LABEL, st.sampled_from([int(s) for s in Severity])),
                               max_size=5)))
def test_any_group_state_round_trips(state: GroupState) -> None:
    assert group_state_from_doc(json_trip(group_state_to_doc(state))) == state
