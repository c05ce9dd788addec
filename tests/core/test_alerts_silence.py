from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpidash.core.alerts import (
    AlertError,
    AlertInstance,
    AlertState,
    IllegalTransition,
    Matcher,
    MatchOp,
    Severity,
    Silence,
    SilenceState,
    expire,
    fingerprint,
    inhibited,
    muted,
    silence_state,
    silenced_by,
)

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
LABELS = {"kpi": "revenue", "rule": "revenue_drop", "severity": "high", "region": "eu"}


def alert(rule: str, kpi: str, sev: Severity, region: str = "eu",
          state: AlertState = AlertState.FIRING) -> AlertInstance:
    sl = (("region", region),)
    return AlertInstance(fingerprint(rule, kpi, sl), rule, kpi, sl, state=state, severity=sev)


def silence(*matchers: Matcher, start: datetime = T0, hours: float = 2) -> Silence:
    return Silence("s1", matchers, start, start + timedelta(hours=hours), "ana", "maintenance")


@pytest.mark.parametrize(("matcher", "hit"), [
    pytest.param(Matcher("kpi", "revenue"), True, id="eq"),
    pytest.param(Matcher("kpi", "signups"), False, id="eq-miss"),
    pytest.param(Matcher("kpi", "signups", MatchOp.NE), True, id="ne"),
    pytest.param(Matcher("severity", "high|critical", MatchOp.RE), True, id="regex"),
    pytest.param(Matcher("kpi", "rev", MatchOp.RE), False, id="regex-is-anchored"),
    pytest.param(Matcher("kpi", "rev.*", MatchOp.RE), True, id="regex-prefix"),
    pytest.param(Matcher("region", "us|apac", MatchOp.NOT_RE), True, id="not-regex"),
    pytest.param(Matcher("plan", ""), True, id="missing-label-is-empty"),
    pytest.param(Matcher("plan", ".+", MatchOp.RE), False, id="missing-label-regex"),
])
def test_matchers(matcher: Matcher, hit: bool) -> None:
    assert matcher.matches(LABELS) is hit


def test_all_matchers_must_match() -> None:
    s = silence(Matcher("kpi", "revenue"), Matcher("region", "us"))
    assert not s.matches(LABELS)
    assert s.matches({**LABELS, "region": "us"})


@pytest.mark.parametrize(("offset", "state"), [
    pytest.param(timedelta(minutes=-1), SilenceState.PENDING, id="before-start"),
    pytest.param(timedelta(0), SilenceState.ACTIVE, id="at-start-inclusive"),
    pytest.param(timedelta(hours=1), SilenceState.ACTIVE, id="inside"),
    pytest.param(timedelta(hours=2), SilenceState.EXPIRED, id="at-end-exclusive"),
    pytest.param(timedelta(days=3), SilenceState.EXPIRED, id="long-after"),
])
def test_silence_expires_on_its_own(offset: timedelta, state: SilenceState) -> None:
    s = silence(Matcher("kpi", "revenue"))
    assert silence_state(s, T0 + offset) is state
    found = silenced_by(LABELS, [s], T0 + offset)
    assert (found is s) is (state is SilenceState.ACTIVE)


def test_expire_ends_an_active_silence_now() -> None:
    s = silence(Matcher("kpi", "revenue"))
    ended = expire(s, T0 + timedelta(minutes=30))
    assert ended.end == T0 + timedelta(minutes=30)
    assert silence_state(ended, T0 + timedelta(minutes=30)) is SilenceState.EXPIRED
    with pytest.raises(IllegalTransition, match="only an active silence"):
        expire(ended, T0 + timedelta(minutes=31))
    with pytest.raises(IllegalTransition, match="is pending"):
        expire(s, T0 - timedelta(minutes=1))


@pytest.mark.parametrize(("build", "message"), [
    pytest.param(lambda: Silence("s", (), T0, T0 + timedelta(hours=1), "ana"), "no matchers",
                 id="no-matchers"),
    pytest.param(lambda: Silence("s", (Matcher("kpi", "x"),), T0, T0 - timedelta(hours=1), "ana"),
                 "before it starts", id="end-before-start"),
    pytest.param(lambda: Silence("s", (Matcher("kpi", "x"),), T0, T0 + timedelta(hours=1), ""),
                 "created_by", id="no-creator"),
    pytest.param(lambda: Matcher("kpi", "(", MatchOp.RE), "not a valid regular expression",
                 id="bad-regex"),
    pytest.param(lambda: Matcher("", "x"), "label name", id="no-label-name"),
])
def test_invalid_silences_raise_clear_errors(build: object, message: str) -> None:
    with pytest.raises(AlertError, match=message):
        build()  # type: ignore[operator]


def test_inhibition_critical_mutes_lower_severities_of_same_kpi_slice() -> None:
    crit = alert("revenue_crash", "revenue", Severity.CRITICAL)
    high_same = alert("revenue_drop", "revenue", Severity.HIGH)
    high_other_slice = alert("revenue_drop", "revenue", Severity.HIGH, region="us")
    high_other_kpi = alert("signups_drop", "signups", Severity.HIGH)
    crit_same = alert("revenue_anomaly", "revenue", Severity.CRITICAL)
    assert inhibited([crit, high_same, high_other_slice, high_other_kpi, crit_same]) == {
        high_same.fingerprint}


def test_inhibition_needs_an_active_critical() -> None:
    resolved_crit = alert("revenue_crash", "revenue", Severity.CRITICAL,
                          state=AlertState.RESOLVED)
    assert inhibited([resolved_crit, alert("revenue_drop", "revenue", Severity.HIGH)]) == set()


def test_muted_combines_silences_and_inhibition() -> None:
    crit = alert("crash", "revenue", Severity.CRITICAL)
    high = alert("drop", "revenue", Severity.HIGH)
    other = alert("drop", "signups", Severity.LOW, region="us")
    s = silence(Matcher("kpi", "signups"))
    assert muted([crit, high, other], [s], T0) == {high.fingerprint, other.fingerprint}
    assert muted([crit, high, other], [s], T0 + timedelta(hours=2)) == {high.fingerprint}


@given(st.integers(-10_000, 10_000))
def test_silence_is_active_exactly_inside_its_window(minutes: int) -> None:
    s = silence(Matcher("kpi", "revenue"), hours=24)
    now = T0 + timedelta(minutes=minutes)
    assert (silence_state(s, now) is SilenceState.ACTIVE) == (s.start <= now < s.end)
