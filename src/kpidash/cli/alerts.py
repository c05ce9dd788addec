"""``kpidash alerts …``: rules, the alert list, acknowledgements, silences, ticks, backtests."""

from __future__ import annotations

import contextlib
import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kpidash.cli._shared import open_engine, out, parse_instant, progress
from kpidash.clock import FixedClock
from kpidash.errors import InputError, KpidashError

alerts_app = typer.Typer(help="Alert rules, alerts, acknowledgements, silences, backtests.",
                         no_args_is_help=True)
rules_app = typer.Typer(help="Alert rules (YAML).", no_args_is_help=True)
silences_app = typer.Typer(help="Silences: mute matching alerts for a while.",
                           no_args_is_help=True)
alerts_app.add_typer(rules_app, name="rules")
alerts_app.add_typer(silences_app, name="silences")

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None


def _duration(text: str, opt: str) -> Any:
    from kpidash.core.alerts import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise KpidashError(f"{opt}: {exc}") from None


def _num(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:,.4g}"


def _slice(pairs: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in pairs) or "(all)"


# -- rules ------------------------------------------------------------------------------------


@rules_app.command("load")
def rules_load(
    file: Annotated[Path, typer.Argument(help="YAML file with a 'rules:' list.")],
    check: Annotated[bool, typer.Option("--check", help="Validate only; store nothing.")
                     ] = False,
) -> None:
    """Validate rules against the registered KPIs and store them (same id = replace)."""
    with open_engine() as engine:
        text = _read(file)
        if check:
            from kpidash.engine.alerts import rules_from

            rules = rules_from(text, engine, str(file))
            out.print(f"{len(rules)} rule(s) valid", markup=False)
            return
        rules = engine.put_alert_rules(text, source=str(file))
        out.print(f"{len(rules)} rule(s) stored: {', '.join(r.id for r in rules)}", markup=False)


@rules_app.command("list")
def rules_list(as_json: AsJson = False) -> None:
    """List stored rules."""
    from kpidash.core.alerts.rules import describe_condition

    with open_engine() as engine:
        rules = engine.alert_rules()
        if as_json:
            out.print_json(json.dumps([r.to_dict() for r in rules]))
            return
        table = Table("id", "kpi", "grain", "per", "condition", "for", "channels")
        for r in rules:
            table.add_row(r.id, r.kpi, str(r.grain), ", ".join(r.per) or "—",
                          describe_condition(r.condition), str(r.for_),
                          ", ".join(r.notify) or "(all)")
        out.print(table)


@rules_app.command("delete")
def rules_delete(rule_id: Annotated[str, typer.Argument(help="Rule id.")]) -> None:
    """Delete a rule, its alerts and their history."""
    with open_engine() as engine:
        engine.delete_alert_rule(rule_id)
        out.print(f"rule {rule_id} deleted", markup=False)


# -- alerts -----------------------------------------------------------------------------------


@alerts_app.command("list")
def list_(
    show_all: Annotated[bool, typer.Option("--all", help="Also normal and resolved alerts.")
                        ] = False,
    as_json: AsJson = False,
) -> None:
    """Alerts, most urgent first (severity, KPI weight, critical KPI, firing longest)."""
    from kpidash.core.alerts import codec

    with open_engine() as engine:
        items = engine.alerts()
        if not show_all:
            items = [a for a in items if a.state not in ("normal", "resolved")]
        if as_json:
            out.print_json(json.dumps([codec.instance_to_doc(a) for a in items]))
            return
        table = Table("fingerprint", "state", "severity", "rule", "kpi", "slice", "value",
                      "since", "acknowledged")
        for a in items:
            ack = a.acknowledgement
            table.add_row(a.fingerprint, str(a.state), a.severity.label, a.rule_id, a.kpi_id,
                          _slice(a.slice), _num(a.value),
                          (a.firing_since or a.since or datetime.min).isoformat()[:16],
                          f"{ack.by}" if ack else "")
        out.print(table)
        out.print(f"{len(items)} alert(s)", markup=False)


@alerts_app.command("show")
def show(fingerprint: Annotated[str, typer.Argument(help="Alert fingerprint.")],
         as_json: AsJson = False) -> None:
    """One alert and its whole history of transitions and acknowledgements."""
    from kpidash.core.alerts import codec

    with open_engine() as engine:
        a = engine.alert(fingerprint)
        acks = engine.acknowledgements(fingerprint)
        if as_json:
            doc = codec.instance_to_doc(a)
            doc["history"] = [{**codec.transition_to_row(a.fingerprint, t),
                               "at": t.at.isoformat(),
                               "value": t.value if math.isfinite(t.value) else None}
                              for t in a.history]
            doc["acknowledgements"] = [{**k, "at": k["at"].isoformat()} for k in acks]
            out.print_json(json.dumps(doc))
            return
        out.print(f"{a.rule_id} on {a.kpi_id} [{_slice(a.slice)}]: {a.state} "
                  f"{a.severity.label}, value {_num(a.value)}", markup=False)
        table = Table("at", "from", "to", "severity", "value")
        for t in a.history:
            table.add_row(t.at.isoformat()[:19], str(t.from_state), str(t.to_state),
                          t.severity.label, _num(t.value))
        out.print(table)
        for k in acks:
            out.print(f"acknowledged by {k['by']} at {k['at'].isoformat()[:19]}"
                      + (f": {k['comment']}" if k["comment"] else ""), markup=False)


@alerts_app.command("ack")
def ack(
    fingerprint: Annotated[str, typer.Argument(help="Alert fingerprint.")],
    by: Annotated[str, typer.Option("--by", help="Who is on it.")],
    comment: Annotated[str, typer.Option(help="Why, what next.")] = "",
) -> None:
    """Acknowledge a pending or firing alert (no more repeat reminders for it)."""
    with open_engine() as engine:
        a = engine.acknowledge(fingerprint, by, comment)
        out.print(f"alert {a.fingerprint} acknowledged by {by}", markup=False)


@alerts_app.command("tick")
def tick(
    at: Annotated[str | None, typer.Option(
        "--at", help="Evaluate as of this ISO instant (default: now).")] = None,
    no_deliver: Annotated[bool, typer.Option("--no-deliver", help="Queue, do not send.")
                          ] = False,
    watch: Annotated[float | None, typer.Option(
        "--watch", help="Repeat every this many seconds until Ctrl-C.")] = None,
    as_json: AsJson = False,
) -> None:
    """Evaluate every rule, update alerts, queue and send notifications [KPIDASH_CHANNELS]."""
    when = parse_instant(at, "--at")
    with open_engine(FixedClock(when) if when else None) as engine, \
            contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --watch
        while True:
            r = engine.evaluate_alerts(deliver=not no_deliver)
            d = r.delivery
            if as_json:
                out.print_json(json.dumps({
                    "at": r.at.isoformat(), "rules": r.rules, "evaluations": r.evaluations,
                    "transitions": r.transitions, "firing": r.firing,
                    "notifications": r.notifications, "queued": r.queued,
                    "delivered": d.delivered if d else 0, "retrying": d.retrying if d else 0,
                    "failed": d.failed if d else 0, "errors": list(r.errors)}))
            else:
                out.print(f"{r.at.isoformat()[:19]}: {r.rules} rule(s), {r.evaluations} "
                          f"evaluation(s), {r.transitions} transition(s), {r.firing} firing, "
                          f"{r.notifications} notification(s) ({r.queued} queued"
                          + (f", {d.delivered} delivered, {d.retrying} retrying, {d.failed} "
                             "failed" if d else "") + ")", markup=False)
                for e in r.errors:
                    out.print(f"  error: {e}", markup=False)
            if watch is None:
                break
            time.sleep(watch)


# -- silences ---------------------------------------------------------------------------------


@silences_app.command("add")
def silence_add(
    match: Annotated[list[str], typer.Option(
        "--match", help="label=value, label!=value, label=~regex, label!~regex (repeat).")],
    by: Annotated[str, typer.Option("--by", help="Who creates it.")],
    duration: Annotated[str | None, typer.Option("--for", help="e.g. 2h, 1d.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO end.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="ISO start (default now).")
                     ] = None,
    comment: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Mute alerts whose labels (kpi, rule, severity, dimensions) match every matcher."""
    with open_engine() as engine:
        s = engine.silence(match, by=by, comment=comment,
                           duration=_duration(duration, "--for") if duration else None,
                           start=parse_instant(start, "--from"),
                           end=parse_instant(until, "--until"))
        out.print(f"silence {s.id} active {s.start.isoformat()[:19]} → {s.end.isoformat()[:19]}",
                  markup=False)


@silences_app.command("list")
def silence_list(
    show_all: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
    as_json: AsJson = False,
) -> None:
    """Silences (pending and active; --all adds expired ones)."""
    from kpidash.core.alerts import codec, silence_state

    with open_engine() as engine:
        items = engine.silences(include_expired=show_all)
        now = engine.clock.now()
        if as_json:
            out.print_json(json.dumps([{**codec.silence_to_doc(s),
                                        "state": str(silence_state(s, now))} for s in items]))
            return
        table = Table("id", "state", "matchers", "from", "to", "by", "comment")
        for s in items:
            table.add_row(s.id, str(silence_state(s, now)),
                          " ".join(codec.format_matcher(m) for m in s.matchers),
                          s.start.isoformat()[:16], s.end.isoformat()[:16], s.created_by,
                          s.comment)
        out.print(table)


@silences_app.command("expire")
def silence_expire(silence_id: Annotated[str, typer.Argument(help="Silence id.")]) -> None:
    """End a silence now."""
    with open_engine() as engine:
        engine.expire_silence(silence_id)
        out.print(f"silence {silence_id} expired", markup=False)


# -- backtest ---------------------------------------------------------------------------------


@alerts_app.command("backtest")
def backtest(
    rule_file: Annotated[Path, typer.Argument(help="YAML rules to replay (not stored).")],
    start: Annotated[str, typer.Option("--from", help="ISO date or instant.")],
    end: Annotated[str, typer.Option("--to", help="ISO date or instant.")],
    incidents: Annotated[Path | None, typer.Option(
        help="Labelled incidents: JSON with an 'incidents' list (e.g. the demo manifest).")
                         ] = None,
    as_json: AsJson = False,
) -> None:
    """Replay history: when rules would have fired and resolved, notifications per week,
    and with --incidents precision, recall and mean time to detect."""
    from kpidash.core.alerts.backtest import Incident
    from kpidash.engine.alert_backtest import backtest as run_backtest
    from kpidash.engine.alert_backtest import backtest_doc
    from kpidash.engine.alerts import rules_from

    t0, t1 = parse_instant(start, "--from"), parse_instant(end, "--to")
    assert t0 is not None and t1 is not None
    labelled = _incidents(incidents) if incidents else []
    with open_engine() as engine:
        rules = rules_from(_read(rule_file), engine, str(rule_file))
        with progress("replaying") as update:
            results = run_backtest(engine, rules, t0, t1, [Incident.from_manifest(i)
                                                           for i in labelled], update)
    docs = [backtest_doc(run, sc) for run, sc in results]
    if as_json:
        out.print_json(json.dumps(docs))
        return
    for doc in docs:
        weeks = list(doc["notifications_per_week"].values())
        out.print(f"rule {doc['rule']} ({doc['kpi']}): {len(doc['episodes'])} episode(s), "
                  f"{doc['notifications']} notification(s), per week mean "
                  f"{sum(weeks) / max(1, len(weeks)):.2f} max {max(weeks, default=0)}",
                  markup=False)
        table = Table("slice", "fired", "resolved", "peak")
        for e in doc["episodes"]:
            table.add_row(e["slice"], e["fired_at"][:16], (e["resolved_at"] or "still firing")[:16],
                          e["peak"])
        if doc["episodes"]:
            out.print(table)
        sc = doc.get("score")
        if sc:
            p = "n/a" if sc["precision"] is None else f"{sc['precision']:.2f}"
            r = "n/a" if sc["recall"] is None else f"{sc['recall']:.2f}"
            m = ("n/a" if sc["mean_time_to_detect_hours"] is None
                 else f"{sc['mean_time_to_detect_hours']:.1f} h")
            out.print(f"  precision {p}, recall {r} ({sc['detected']}/{sc['relevant']} "
                      f"incidents), mean time to detect {m}"
                      + (f"; missed: {', '.join(sc['missed'])}" if sc["missed"] else ""),
                      markup=False)


def _incidents(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    items = doc.get("incidents") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise InputError(f"{path}: expected a list of incidents or an object with an "
                         f"'incidents' list, got {type(items).__name__}")
    for n, item in enumerate(items, start=1):
        missing = [k for k in ("id", "kpi", "start", "end")
                   if not isinstance(item, dict) or not isinstance(item.get(k), str)]
        if missing:
            raise InputError(f"{path}: incident #{n}: expected text fields id, kpi, start, end; "
                             f"missing or not text: {', '.join(missing)}")
        for k in ("start", "end"):
            try:
                datetime.fromisoformat(item[k])
            except ValueError:
                raise InputError(f"{path}: incident #{n} ({item['id']}): {k} must be an ISO "
                                 f"date or instant, got {item[k]!r}") from None
    return items
