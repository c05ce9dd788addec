"""The alert manager end to end on a real DuckDB file: rules → ticks → alerts → outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kpidash.clock import FixedClock
from kpidash.core.alerts import AlertState, RulesInvalid, Severity
from kpidash.engine import Engine
from kpidash.errors import AlertError, NotFound
from kpidash.notify.base import DeliveryResult, Notification
from kpidash.store import open_store

DAY0 = datetime(2024, 3, 1, tzinfo=UTC)
REGIONS = ("EU", "NA", "APAC", "LATAM")
KPIS = [
    {"id": "orders", "name": "Orders", "unit": "orders", "dimensions": ["region"], "weight": 2},
    {"id": "refunds", "name": "Refunds", "dimensions": ["region"], "higher_is_better": False},
]


class Recorder:
    """An in-process channel that keeps what it is sent (the real channels have own tests)."""

    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.sent: list[Notification] = []

    def send(self, n: Notification) -> DeliveryResult:
        self.sent.append(n)
        return DeliveryResult.success()


def day(n: int, hour: int = 0) -> datetime:
    return DAY0 + timedelta(days=n, hours=hour)


def make_engine(path: Path) -> Engine:
    e = Engine(open_store(str(path)), FixedClock(day(0)))
    e.register(KPIS)
    return e


def put(e: Engine, n: int, values: dict[str, float], kpi: str = "orders") -> None:
    e.ingest([{"kpi": kpi, "ts": day(n).isoformat(), "value": v, "dims": {"region": r}}
              for r, v in values.items()])


def tick(e: Engine, when: datetime, rec: Recorder) -> Any:
    e.clock = FixedClock(when)
    return e.evaluate_alerts({rec.name: rec})


def steady(e: Engine, days: range, value: float = 100.0) -> None:
    for n in days:
        put(e, n, dict.fromkeys(REGIONS, value))


RULE = {"id": "orders_low", "kpi": "orders", "per": "region",
        "condition": {"kind": "threshold", "direction": "below",
                      "bands": {"high": 60, "critical": 30}, "recovery": 80},
        "repeat_interval": "1d"}


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = make_engine(tmp_path / "alerts.duckdb")
    steady(e, range(10))
    e.put_alert_rules([RULE])
    return e


def test_lifecycle_is_persisted_and_survives_a_restart(engine: Engine, tmp_path: Path) -> None:
    rec = Recorder()
    assert tick(engine, day(10), rec).firing == 0
    assert engine.alerts() == []  # quiet slices are not stored
    put(engine, 10, {"EU": 50})
    r = tick(engine, day(11), rec)
    assert (r.firing, r.notifications) == (1, 1)
    (alert,) = engine.alerts()
    assert alert.state is AlertState.FIRING and alert.severity is Severity.HIGH
    assert alert.slice == (("region", "EU"),) and alert.value == 50
    engine.close()

    again = make_engine(tmp_path / "alerts.duckdb")  # a restart: everything from the file
    (back,) = again.alerts()
    assert back.fingerprint == alert.fingerprint and back.state is AlertState.FIRING
    history = again.alert(back.fingerprint).history
    assert [(t.from_state, t.to_state) for t in history] == [
        (AlertState.NORMAL, AlertState.PENDING), (AlertState.PENDING, AlertState.FIRING)]
    assert tick(again, day(11, 1), rec).notifications == 0  # told already: nothing new
    put(again, 11, {"EU": 70})  # between the band (60) and recovery (80): keeps firing
    tick(again, day(12), rec)
    assert again.alert(back.fingerprint).state is AlertState.FIRING
    put(again, 12, {"EU": 95})
    tick(again, day(13), rec)
    done = again.alert(back.fingerprint)
    assert done.state is AlertState.RESOLVED
    assert [(m.status.value, m.reason) for m in rec.sent] == [
        ("firing", "new"), ("firing", "repeat"), ("resolved", "update")]  # repeat: after 1 d
    assert len(again.store.outbox(again.workspace, "delivered")) == 3


def test_slices_firing_together_send_one_message_and_escalate_in_place(engine: Engine) -> None:
    rec = Recorder()
    put(engine, 10, {"EU": 50, "NA": 40, "APAC": 55, "LATAM": 100})
    tick(engine, day(11), rec)
    (msg,) = rec.sent
    assert len(msg.alerts) == 3 and msg.summary == "3 firing"
    assert {line.slice["region"] for line in msg.alerts} == {"EU", "NA", "APAC"}
    fps = {a.fingerprint for a in engine.alerts()}
    put(engine, 11, {"EU": 20, "NA": 40, "APAC": 55, "LATAM": 100})  # EU escalates
    tick(engine, day(12), rec)
    assert {a.fingerprint for a in engine.alerts()} == fps  # updated, not re-created
    eu = next(a for a in engine.alerts() if a.slice == (("region", "EU"),))
    assert eu.severity is Severity.CRITICAL
    assert engine.alerts()[0] == eu  # the most severe ranks first
    assert [(t.from_state, t.to_state) for t in engine.alert(eu.fingerprint).history][-1] == (
        AlertState.FIRING, AlertState.FIRING)
    assert rec.sent[-1].reason == "update" and rec.sent[-1].severity.value == "critical"


def test_silence_mutes_until_it_expires(engine: Engine) -> None:
    rec = Recorder()
    engine.clock = FixedClock(day(10, 12))
    s = engine.silence(["kpi=orders", "region=~EU|NA"], by="ana", duration=timedelta(days=1),
                       comment="migration")
    put(engine, 10, {"EU": 50})
    assert tick(engine, day(11), rec).notifications == 0
    assert engine.alerts()[0].state is AlertState.FIRING  # still tracked, only muted
    assert [x.id for x in engine.silences()] == [s.id]
    engine.clock = FixedClock(day(11, 6))
    engine.expire_silence(s.id)
    assert engine.silences() == [] and len(engine.silences(include_expired=True)) == 1
    tick(engine, day(11, 7), rec)
    assert [m.status.value for m in rec.sent] == ["firing"]
    with pytest.raises(AlertError, match="name=value"):
        engine.silence(["region"], by="ana", duration=timedelta(hours=1))
    with pytest.raises(AlertError, match="end or a duration"):
        engine.silence(["kpi=orders"], by="ana")


def test_critical_alert_inhibits_lower_ones_on_the_same_slice(engine: Engine) -> None:
    rec = Recorder()
    engine.put_alert_rules([{"id": "orders_drop", "kpi": "orders", "per": "region",
                             "condition": {"kind": "change", "direction": "down",
                                           "bands": {"medium": 20}}}])
    put(engine, 10, {"EU": 20})  # below critical 30 and a -80 % change
    tick(engine, day(11), rec)
    assert [m.rule_id for m in rec.sent] == ["orders_low"]
    states = {a.rule_id: a.state for a in engine.alerts()}
    assert states == {"orders_low": AlertState.FIRING, "orders_drop": AlertState.FIRING}


def test_acknowledged_alerts_get_no_reminders(engine: Engine) -> None:
    rec = Recorder()
    put(engine, 10, {"EU": 50})
    tick(engine, day(11), rec)
    fp = engine.alerts()[0].fingerprint
    engine.clock = FixedClock(day(11, 2))
    acked = engine.acknowledge(fp, "ana", "looking")
    assert acked.acknowledgement is not None and acked.acknowledgement.by == "ana"
    assert engine.acknowledgements(fp)[0]["comment"] == "looking"
    put(engine, 11, {"EU": 50})
    tick(engine, day(12, 1), rec)  # repeat_interval (1d) has passed
    assert len(rec.sent) == 1
    with pytest.raises(NotFound):
        engine.acknowledge("0" * 16, "ana")


def test_vanished_slices_go_no_data_and_broken_rules_error(engine: Engine) -> None:
    rec = Recorder()
    put(engine, 10, {"EU": 50})
    tick(engine, day(11), rec)
    # weeks later nothing of EU is in the rule's recent window
    r = tick(engine, day(60), rec)
    assert r.errors == ()
    eu = engine.alerts(states=["no_data"])
    assert [a.slice for a in eu] == [(("region", "EU"),)]
    engine.register([{**KPIS[0], "dimensions": []}])  # the rule's `per` no longer exists
    r = tick(engine, day(60, 1), rec)
    assert r.errors and "region" in r.errors[0]
    assert {a.state for a in engine.alerts()} == {AlertState.ERROR}


def test_stale_rule_fires_when_data_stops(engine: Engine) -> None:
    rec = Recorder()
    engine.put_alert_rules([{"id": "orders_fresh", "kpi": "orders", "per": "region",
                             "condition": {"kind": "stale", "max_age": "36h",
                                           "severity": "high"}}])
    tick(engine, day(10), rec)
    assert engine.alerts() == []
    r = tick(engine, day(11, 13), rec)  # last points at day 9 00:00: 59 h old
    assert r.firing == 4 and len(rec.sent) == 1 and len(rec.sent[0].alerts) == 4


def test_rules_are_validated_against_the_registry(engine: Engine) -> None:
    bad = [{"id": "x", "kpi": "nope", "condition": RULE["condition"]},
           {"id": "y", "kpi": "orders", "per": ["region", "plan"],
            "condition": RULE["condition"]}]
    with pytest.raises(RulesInvalid) as info:
        engine.put_alert_rules(bad)
    codes = sorted(i.code for i in info.value.report.errors)
    assert codes == ["alert.dimension", "alert.per", "alert.unknown_kpi"]
    assert [r.id for r in engine.alert_rules()] == ["orders_low"]  # nothing stored


def test_deleting_a_rule_removes_its_alerts(engine: Engine) -> None:
    rec = Recorder()
    put(engine, 10, {"EU": 50})
    tick(engine, day(11), rec)
    engine.delete_alert_rule("orders_low")
    assert engine.alerts() == [] and engine.alert_rules() == []
    with pytest.raises(NotFound):
        engine.delete_alert_rule("orders_low")


def test_rules_round_trip_through_the_store(engine: Engine) -> None:
    (rule,) = engine.alert_rules()
    assert rule.to_dict() == engine.put_alert_rules([rule.to_dict()])[0].to_dict()
    assert rule.repeat_interval == timedelta(days=1)


def test_anomaly_and_forecast_rules_on_the_demo(tmp_path: Path, make_demo_engine: Any) -> None:
    engine, data = make_demo_engine(tmp_path / "demo.duckdb", 120)
    (drop,) = [i for i in data.manifest["incidents"] if i["id"] == "revenue-drop-eu"]
    engine.put_alert_rules("""
rules:
  - id: revenue_anomaly
    kpi: revenue
    per: region
    condition: {kind: anomaly, min_severity: high}
  - id: conversion_target
    kpi: conversion_rate
    condition: {kind: forecast, horizon: 14, miss_target: true, severity: low}
""")
    first = datetime.fromisoformat(drop["start"]).replace(tzinfo=UTC) + timedelta(days=1,
                                                                                  minutes=5)
    rec = Recorder()
    r = tick(engine, first, rec)
    assert r.errors == ()
    (anomaly_msg,) = [m for m in rec.sent if m.rule_id == "revenue_anomaly"]
    assert anomaly_msg.threshold is None and anomaly_msg.expected_range is not None
    lo, hi = anomaly_msg.expected_range
    assert anomaly_msg.value < lo < hi  # the drop lies below the detector's band
    by_rule = {a.rule_id: a for a in engine.alerts()}
    assert by_rule["revenue_anomaly"].slice == (("region", "EU"),)  # only the region that fell
    assert by_rule["revenue_anomaly"].state is AlertState.FIRING
    assert by_rule["revenue_anomaly"].severity >= Severity.HIGH
    # the demo's conversion rate runs just under its 10 % target: the forecast misses it
    assert by_rule["conversion_target"].state is AlertState.FIRING
    assert by_rule["conversion_target"].threshold == 10


def test_filters_narrow_a_rule_and_notify_routes_its_messages(engine: Engine) -> None:
    ops, audit = Recorder("ops"), Recorder("audit")
    engine.put_alert_rules([{**RULE, "id": "eu_only", "filters": {"region": ["EU", "NA"]},
                             "notify": ["ops"]}])
    put(engine, 10, {"EU": 50, "APAC": 50})
    engine.clock = FixedClock(day(11))
    engine.evaluate_alerts({"ops": ops, "audit": audit})
    slices = {(a.rule_id, a.slice) for a in engine.alerts()}
    assert slices == {("eu_only", (("region", "EU"),)), ("orders_low", (("region", "EU"),)),
                      ("orders_low", (("region", "APAC"),))}
    assert [m.rule_id for m in ops.sent] == ["eu_only", "orders_low"]
    assert [m.rule_id for m in audit.sent] == ["orders_low"]  # eu_only goes to ops only
