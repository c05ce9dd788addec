from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpidash.core.alerts import AlertRule, Severity, SliceKey, fingerprint
from kpidash.core.alerts.backtest import (
    Episode,
    Incident,
    RuleReplay,
    SliceHistory,
    replay,
    score,
)
from kpidash.model import KPI

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
REVENUE = KPI(id="revenue", name="Revenue")
ABOVE = {"kind": "threshold", "direction": "above", "bands": {"high": 10, "critical": 20}}
EU: SliceKey = (("region", "EU"),)
NA: SliceKey = (("region", "NA"),)


def day(n: float) -> datetime:
    return T0 + n * DAY


def history(values: list[float], slice_: SliceKey = (), severity: list[int] | None = None,
            forecast: Any = None) -> SliceHistory:
    """Daily periods from T0; period k completes at T0 + (k + 1) days."""
    n = len(values)
    periods = np.datetime64("2026-03-02", "us") + np.arange(n) * np.timedelta64(1, "D")
    sev = np.asarray(severity if severity is not None else [], dtype=np.int8)
    return SliceHistory(slice_, periods, periods + np.timedelta64(1, "D"),
                        np.asarray(values, dtype=np.float64), sev, forecast)


def rule(condition: dict[str, Any] | None = None, id: str = "r", **extra: Any) -> AlertRule:
    return AlertRule.model_validate({"id": id, "kpi": "revenue",
                                     "condition": condition or ABOVE, **extra})


def run1(r: AlertRule, *slices: SliceHistory, days: int | None = None, **kw: Any) -> RuleReplay:
    n = days if days is not None else max(len(s.values) for s in slices)
    (out,) = replay([(r, REVENUE, list(slices))], T0, day(n), **kw)
    return out


def reasons(run: RuleReplay) -> list[tuple[datetime, str, int, int]]:
    return [(s.at, s.reason, s.firing, s.resolved) for s in run.sent]


# -- lifecycle timing --------------------------------------------------------------------------

def test_threshold_fires_at_end_of_first_breach_and_resolves_when_values_return() -> None:
    run = run1(rule(), history([1, 1, 15, 25, 15, 1, 1, 1]))
    assert run.episodes == [Episode(fingerprint("r", "revenue"), (), day(3), day(6),
                                    Severity.CRITICAL)]  # escalated high → critical


def test_a_quiet_rule_evaluates_once_per_completed_period_and_slice() -> None:
    run = run1(rule(per="region"), history([1.0] * 8, EU), history([2.0] * 8, NA))
    assert (run.evaluations, run.episodes, run.sent) == (16, [], [])


def test_episode_still_open_at_the_end_has_no_resolution() -> None:
    run = run1(rule(), history([1, 1, 12, 12, 12]))
    assert [(e.fired_at, e.resolved_at, e.peak) for e in run.episodes] == [
        (day(3), None, Severity.HIGH)]


def test_two_breaches_are_two_episodes() -> None:
    run = run1(rule(), history([15, 1, 1, 30, 1]))
    assert [(e.fired_at, e.resolved_at, e.peak) for e in run.episodes] == [
        (day(1), day(2), Severity.HIGH), (day(4), day(5), Severity.CRITICAL)]


def test_for_fires_two_hours_after_the_data_instant() -> None:
    run = run1(rule(**{"for": "2h"}), history([1, 1, 15, 15, 1, 1]))
    (ep,) = run.episodes
    assert ep.fired_at == day(3) + timedelta(hours=2)  # an instant with no new data
    assert ep.resolved_at == day(5)
    assert reasons(run)[0] == (day(3) + timedelta(hours=2), "new", 1, 0)


def test_a_breach_shorter_than_for_never_fires() -> None:
    # daily data: a breach always lasts a day, so a 2-day `for` needs two breaching periods
    run = run1(rule(**{"for": "2d"}), history([1, 15, 1, 15, 15, 15, 1]))
    assert [(e.fired_at, e.resolved_at) for e in run.episodes] == [(day(6), day(7))]


def test_keep_firing_for_resolves_later_than_the_data_instant() -> None:
    run = run1(rule(keep_firing_for="3h"), history([1, 15, 15, 1, 1, 1]))
    (ep,) = run.episodes
    assert (ep.fired_at, ep.resolved_at) == (day(2), day(4) + timedelta(hours=3))
    assert reasons(run)[-1] == (day(4) + timedelta(hours=3), "update", 0, 1)


def test_keep_firing_for_bridges_a_short_gap() -> None:
    run = run1(rule(keep_firing_for="2d"), history([15, 1, 15, 1, 1, 1, 1]))
    assert [(e.fired_at, e.resolved_at) for e in run.episodes] == [(day(1), day(6))]


def test_hysteresis_keeps_firing_between_band_and_recovery() -> None:
    cond = {**ABOVE, "recovery": 5}
    run = run1(rule(cond), history([1, 15, 8, 8, 4, 8, 1]))
    assert [(e.fired_at, e.resolved_at) for e in run.episodes] == [(day(2), day(5))]


def test_range_start_skips_earlier_instants() -> None:
    r = rule()
    (out,) = replay([(r, REVENUE, [history([15, 15, 1, 15, 1])])], day(2.5), day(5))
    assert [(e.fired_at, e.resolved_at) for e in out.episodes] == [(day(4), day(5))]
    (quiet,) = replay([(r, REVENUE, [history([1.0] * 5)])], day(2.5), day(5))
    assert quiet.evaluations == 3  # the periods completing on days 3, 4 and 5


def test_replay_is_deterministic() -> None:
    r = rule(**{"for": "1h"}, keep_firing_for="30m", per="region")
    hs = [history([1, 12, 25, 3, 14, 1], EU), history([12, 1, 25, 25, 1, 12], NA)]
    a = replay([(r, REVENUE, hs)], T0, day(6))
    b = replay([(r, REVENUE, hs)], T0, day(6))
    assert a == b


BREACH = st.lists(st.sampled_from([1.0, 12.0, 25.0]), min_size=1, max_size=25)


@settings(deadline=None, max_examples=60)
@given(BREACH)
def test_episodes_are_the_runs_of_breaching_periods(values: list[float]) -> None:
    """With for = keep_firing_for = 0: an episode per maximal run of values ≥ 10, firing at
    the end of its first period, resolving at the end of the first period after it, peak the
    worst band in the run."""
    want = []
    k = 0
    while k < len(values):
        if values[k] >= 10:
            j = k
            while j < len(values) and values[j] >= 10:
                j += 1
            peak = Severity.CRITICAL if max(values[k:j]) >= 20 else Severity.HIGH
            want.append((day(k + 1), day(j + 1) if j < len(values) else None, peak))
            k = j
        else:
            k += 1
    run = run1(rule(), history(values))
    assert [(e.fired_at, e.resolved_at, e.peak) for e in run.episodes] == want
    assert sum(s.reason == "new" for s in run.sent) == len(want)  # group gone after resolving


# -- notifications -----------------------------------------------------------------------------

def test_notifications_new_update_repeat() -> None:
    run = run1(rule(repeat_interval="1d"), history([1, 1, 15, 25, 25, 1, 1]))
    assert reasons(run) == [(day(3), "new", 1, 0),      # fires
                            (day(4), "update", 1, 0),   # high → critical
                            (day(5), "repeat", 1, 0),   # unchanged for repeat_interval
                            (day(6), "update", 0, 1)]   # resolved, group finished


def test_repeat_interval_shorter_than_a_period_repeats_between_data() -> None:
    """A live ticker repeats every repeat_interval, data or not; so must the replay."""
    run = run1(rule(repeat_interval="8h"), history([1, 15, 15, 1, 1]))
    h = timedelta(hours=1)
    assert [(s.at, s.reason) for s in run.sent] == [
        (day(2), "new"), (day(2) + 8 * h, "repeat"), (day(2) + 16 * h, "repeat"),
        (day(3), "repeat"), (day(3) + 8 * h, "repeat"), (day(3) + 16 * h, "repeat"),
        (day(4), "update")]


def test_repeat_interval_longer_than_the_episode_sends_no_repeat() -> None:
    run = run1(rule(repeat_interval="1w"), history([1, 15, 15, 15, 1]))
    assert [s.reason for s in run.sent] == ["new", "update"]


def test_group_wait_after_for() -> None:
    run = run1(rule(**{"for": "2h"}, group_wait="10m"), history([1, 15, 15, 1]))
    assert reasons(run)[0] == (day(2) + timedelta(hours=2, minutes=10), "new", 1, 0)


def test_per_week_covers_every_week_with_zeros() -> None:
    values = [1.0] * 28
    values[2] = values[3] = 15.0    # week 1: new + update(resolved)
    values[20] = 15.0               # period 20 completes on 03-23: new, then resolved 03-24
    run = run1(rule(repeat_interval="1w"), history(values))
    weeks = run.per_week()
    assert weeks == {"2026-03-02": 2, "2026-03-09": 0, "2026-03-16": 0, "2026-03-23": 2,
                     "2026-03-30": 0}  # day(28) = 2026-03-30, a Monday: its week counts
    assert sum(weeks.values()) == len(run.sent)


@pytest.mark.parametrize(("start", "end", "first", "last", "n"), [
    (datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 4, 12, tzinfo=UTC),
     "2026-03-02", "2026-03-02", 1),
    (datetime(2026, 3, 8, 23, tzinfo=UTC), datetime(2026, 3, 9, 1, tzinfo=UTC),
     "2026-03-02", "2026-03-09", 2),
    (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC),
     "2025-12-29", "2026-12-28", 53),
], ids=["one-day", "across-monday", "a-year"])
def test_per_week_keys(start: datetime, end: datetime, first: str, last: str, n: int) -> None:
    weeks = RuleReplay("r", "revenue", start, end).per_week()
    keys = list(weeks)
    assert (keys[0], keys[-1], len(keys)) == (first, last, n)
    assert set(weeks.values()) == {0}
    gaps = {(datetime.fromisoformat(b) - datetime.fromisoformat(a)).days
            for a, b in pairwise(keys)}
    assert gaps <= {7}


def test_slices_firing_together_make_one_notification() -> None:
    r = rule(per="region")
    run = run1(r, history([1, 15, 15, 1], EU), history([1, 25, 25, 1], NA),
               history([1, 1, 1, 1], (("region", "APAC"),)))
    assert [(e.slice, e.fired_at, e.resolved_at) for e in run.episodes] == sorted(
        [(EU, day(2), day(4)), (NA, day(2), day(4))],
        key=lambda x: fingerprint("r", "revenue", x[0]))
    assert {e.peak for e in run.episodes if e.slice == NA} == {Severity.CRITICAL}
    assert reasons(run)[0] == (day(2), "new", 2, 0)
    assert sum(s.reason == "new" for s in run.sent) == 1
    assert reasons(run)[-1] == (day(4), "update", 0, 2)


def test_a_later_slice_is_an_update_not_a_new_message() -> None:
    run = run1(rule(per="region", repeat_interval="1w"), history([1, 15, 15, 15, 1], EU),
               history([1, 1, 15, 15, 1], NA))
    assert reasons(run) == [(day(2), "new", 1, 0), (day(3), "update", 2, 0),
                            (day(5), "update", 0, 2)]


def test_inhibition_critical_rule_mutes_the_other_rule_on_the_same_kpi() -> None:
    crit = rule({"kind": "threshold", "direction": "above", "bands": {"critical": 20}}, id="crit",
                repeat_interval="1w")
    high = rule({"kind": "threshold", "direction": "above", "bands": {"high": 10}}, id="high",
                repeat_interval="1w")
    h = [history([1, 25, 25, 15, 15, 1])]
    out = replay([(crit, REVENUE, h), (high, REVENUE, h)], T0, day(6))
    by = {r.rule_id: r for r in out}
    assert [(e.fired_at, e.resolved_at) for e in by["crit"].episodes] == [(day(2), day(4))]
    assert [(e.fired_at, e.resolved_at) for e in by["high"].episodes] == [(day(2), day(6))]
    assert [(s.at, s.reason) for s in by["crit"].sent] == [(day(2), "new"), (day(4), "update")]
    # muted while the critical alert fires; speaks once it is alone
    assert [(s.at, s.reason) for s in by["high"].sent] == [(day(4), "new"), (day(6), "update")]


def test_no_inhibition_across_different_slices() -> None:
    crit = rule({"kind": "threshold", "direction": "above", "bands": {"critical": 20}},
                id="crit", per="region", repeat_interval="1w")
    high = rule({"kind": "threshold", "direction": "above", "bands": {"high": 10}},
                id="high", per="region", repeat_interval="1w")
    hc = [history([1, 25, 1], EU)]
    hh = [history([1, 15, 1], NA)]
    out = replay([(crit, REVENUE, hc), (high, REVENUE, hh)], T0, day(3))
    assert [s.reason for s in out[1].sent] == ["new", "update"]


# -- other conditions --------------------------------------------------------------------------

def test_stale_uses_the_last_finite_period() -> None:
    nan = math.nan
    r = rule({"kind": "stale", "max_age": "36h", "severity": "high"})
    run = run1(r, history([1, 1, 1, nan, nan, nan, 1, 1]))
    # last finite period starts day 2; at day 4 it is 2 days old
    assert [(e.fired_at, e.resolved_at, e.peak) for e in run.episodes] == [
        (day(4), day(7), Severity.HIGH)]


def test_stale_looks_past_the_recent_window() -> None:
    r = rule({"kind": "stale", "max_age": "10d"})
    run = run1(r, history([1.0] + [math.nan] * 14), recent=2)
    (ep,) = run.episodes
    assert ep.fired_at == day(11)  # age of period 0 passes 10 days, not "no point ever"


def test_stale_with_no_point_ever_fires_at_once() -> None:
    run = run1(rule({"kind": "stale", "max_age": "10d"}), history([math.nan] * 3))
    assert [e.fired_at for e in run.episodes] == [day(1)]


def test_anomaly_severity_comes_from_the_history() -> None:
    r = rule({"kind": "anomaly", "min_severity": "medium"})
    sev = [0, 0, 1, 2, 3, 4, 2, 0, 0]
    run = run1(r, history([5.0] * 9, severity=sev))
    assert [(e.fired_at, e.resolved_at, e.peak) for e in run.episodes] == [
        (day(4), day(8), Severity.CRITICAL)]


def test_anomaly_without_severities_never_fires() -> None:
    run = run1(rule({"kind": "anomaly", "min_severity": "low"}), history([5.0] * 5))
    assert run.episodes == [] and run.evaluations == 5


def test_forecast_through_a_callable_without_look_ahead() -> None:
    asked: list[int] = []

    def at(k: int) -> np.ndarray:
        asked.append(k)
        return np.full(3, 150.0 if k in (4, 5) else 50.0)

    r = rule({"kind": "forecast", "horizon": 3, "direction": "above", "threshold": 100})
    run = run1(r, history([1.0] * 8, forecast=at))
    assert [(e.fired_at, e.resolved_at, e.peak) for e in run.episodes] == [
        (day(5), day(7), Severity.MEDIUM)]
    assert sorted(set(asked)) == list(range(8))  # each completed period's forecast


def test_forecast_is_not_asked_beyond_the_range() -> None:
    asked: list[int] = []

    def at(k: int) -> np.ndarray:
        asked.append(k)
        return np.full(2, 0.0)

    r = rule({"kind": "forecast", "horizon": 2, "direction": "above", "threshold": 100})
    (out,) = replay([(r, REVENUE, [history([1.0] * 10, forecast=at)])], day(3), day(5))
    assert sorted(set(asked)) == [2, 3, 4]
    assert out.episodes == []


# -- scoring -----------------------------------------------------------------------------------

def ep(fired: float, resolved: float | None, slice_: SliceKey = ()) -> Episode:
    return Episode(fingerprint("r", "revenue", slice_), slice_, day(fired),
                   None if resolved is None else day(resolved), Severity.HIGH)


def inc(id: str, start: float, end: float, kpi: str = "revenue", **dims: str) -> Incident:
    return Incident(id, kpi, day(start), day(end), dims)


def replayed(*episodes: Episode, days: int = 30) -> RuleReplay:
    return RuleReplay("r", "revenue", T0, day(days), episodes=list(episodes))


def test_score_precision_recall_and_time_to_detect() -> None:
    run = replayed(ep(3, 6), ep(10, 11), ep(20.5, 21))
    incidents = [inc("a", 2, 5), inc("b", 15, 16), inc("c", 20, 21)]
    sc = score(run, rule(), ["revenue"], DAY, incidents)
    assert (sc.relevant, sc.detected, sc.episodes, sc.true_episodes) == (3, 2, 3, 2)
    assert sc.precision == pytest.approx(2 / 3) and sc.recall == pytest.approx(2 / 3)
    assert sc.detections == (("a", DAY), ("c", DAY / 2))
    assert sc.mean_time_to_detect == timedelta(hours=18)
    assert sc.missed == ("b",)


def test_score_slack_is_for_plus_two_periods() -> None:
    r = rule(**{"for": "6h"})
    just_in = score(replayed(ep(6.74, 7)), r, ["revenue"], DAY, [inc("a", 3, 4.5)])
    too_late = score(replayed(ep(6.75, 7)), r, ["revenue"], DAY, [inc("a", 3, 4.5)])
    assert (just_in.detected, just_in.true_episodes) == (1, 1)  # 6.74 < 4.5 + 0.25 + 2
    assert (too_late.detected, too_late.true_episodes) == (0, 0)


def test_an_episode_before_the_incident_is_no_detection_but_may_be_true() -> None:
    # already firing when the incident starts: it overlaps (true) but did not detect it
    sc = score(replayed(ep(1, 5)), rule(), ["revenue"], DAY, [inc("a", 2, 3)])
    assert (sc.detected, sc.true_episodes, sc.recall, sc.precision) == (0, 1, 0.0, 1.0)


@pytest.mark.parametrize(("slice_", "dims", "match"), [
    (EU, {"region": "EU"}, True),
    (EU, {}, True),                                   # a whole-KPI incident
    ((), {"region": "EU"}, True),                     # a whole-KPI rule
    (EU, {"region": "EU", "plan": "pro"}, True),      # extra dimension: compatible
    (NA, {"region": "EU"}, False),
    ((("plan", "pro"), ("region", "NA")), {"region": "EU", "plan": "pro"}, False),
], ids=["same", "incident-whole", "rule-whole", "extra-dim", "other-region", "one-differs"])
def test_score_matches_compatible_slices_only(slice_: SliceKey, dims: dict[str, str],
                                              match: bool) -> None:
    sc = score(replayed(ep(3, 4, slice_)), rule(), ["revenue"], DAY,
               [inc("a", 2.5, 3.5, **dims)])
    assert (sc.detected, sc.true_episodes) == ((1, 1) if match else (0, 0))


def test_incidents_outside_the_range_or_on_other_kpis_are_not_relevant() -> None:
    run = replayed(ep(3, 4), days=10)
    incidents = [inc("late", 10, 12), inc("early", -5, 0), inc("other", 2, 5, kpi="signups"),
                 inc("input", 2.5, 3.5, kpi="orders")]
    sc = score(run, rule(), ["revenue", "orders"], DAY, incidents)
    assert (sc.relevant, sc.detected, sc.missed) == (1, 1, ())
    assert sc.detections == (("input", DAY / 2),)
    none = score(run, rule(), ["revenue"], DAY, incidents[:3])
    assert (none.relevant, none.recall, none.mean_time_to_detect) == (0, None, None)
    assert (none.precision, none.true_episodes) == (0.0, 0)


def test_score_without_episodes_has_no_precision() -> None:
    sc = score(replayed(), rule(), ["revenue"], DAY, [inc("a", 2, 3)])
    assert (sc.precision, sc.recall, sc.missed) == (None, 0.0, ("a",))


def test_score_of_a_real_replay() -> None:
    run = run1(rule(per="region"), history([1, 1, 15, 15, 1, 1, 1, 12, 1, 1], EU),
               history([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], NA))
    sc = score(run, rule(), ["revenue"], DAY,
               [inc("eu", 2, 4, region="EU"), inc("na", 5, 6, region="NA")])
    assert sc.detections == (("eu", DAY),)  # period 2 completes at day 3
    assert (sc.episodes, sc.true_episodes, sc.missed) == (2, 1, ("na",))


@pytest.mark.parametrize(("item", "start", "end"), [
    ({"start": "2026-03-04", "end": "2026-03-05"},
     datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC)),
    ({"start": "2026-03-04T06:00:00+00:00", "end": "2026-03-04T18:30:00+00:00"},
     datetime(2026, 3, 4, 6, tzinfo=UTC), datetime(2026, 3, 4, 18, 30, tzinfo=UTC)),
    ({"start": "2026-03-04T06:00:00", "end": "2026-03-04T07:00:00Z"},
     datetime(2026, 3, 4, 6, tzinfo=UTC), datetime(2026, 3, 4, 7, tzinfo=UTC)),
    ({"start": "2026-03-04T08:00:00+02:00", "end": "2026-03-05"},
     datetime(2026, 3, 4, 6, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC)),
], ids=["dates-end-inclusive", "instants", "naive-is-utc", "mixed"])
def test_incident_from_manifest(item: dict[str, str], start: datetime, end: datetime) -> None:
    got = Incident.from_manifest({"id": 7, "kpi": "revenue", "dims": {"region": "EU"},
                                  "description": "outage", **item})
    assert (got.start, got.end) == (start, end)
    assert got.start.utcoffset() is not None and got.end.utcoffset() is not None
    assert (got.id, got.kpi, dict(got.dims), got.description) == ("7", "revenue",
                                                                   {"region": "EU"}, "outage")


def test_incident_from_manifest_defaults() -> None:
    got = Incident.from_manifest({"id": "x", "kpi": "k", "start": "2026-03-04",
                                  "end": "2026-03-04"})
    assert got.dims == {} and got.description == ""
    assert got.end - got.start == DAY  # a one-day incident


def test_offset_range_bounds_are_instants() -> None:
    cet = timezone(timedelta(hours=1))
    r = rule()
    h = [history([15, 1, 1])]
    a = replay([(r, REVENUE, h)], T0, day(3))
    b = replay([(r, REVENUE, h)], T0.astimezone(cet), day(3).astimezone(cet))
    assert a[0].episodes == b[0].episodes and a[0].sent == b[0].sent
