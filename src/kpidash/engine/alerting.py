"""The alert methods of :class:`kpidash.engine.Engine` (rules, the tick, alerts,
acknowledgements, silences), mixed into it; the work is in :mod:`kpidash.engine.alerts`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from kpidash.errors import NotFound

if TYPE_CHECKING:
    from kpidash.clock import Clock
    from kpidash.core.alerts import AlertInstance, AlertRule, Silence
    from kpidash.core.registry import Registry
    from kpidash.engine import Engine
    from kpidash.engine import alerts as alerts_
    from kpidash.notify.base import Notifier
    from kpidash.store.base import Store


class AlertsMixin:
    """Needs ``store``, ``clock``, ``workspace``, ``notifiers``, ``dashboard_url`` and
    ``_registry`` from the engine."""

    if TYPE_CHECKING:
        store: Store
        clock: Clock
        workspace: str
        notifiers: dict[str, Notifier]
        dashboard_url: str | None
        _registry: Registry

    # -- alerts ----------------------------------------------------------------------------

    def put_alert_rules(self, rules: str | Iterable[AlertRule | Mapping[str, Any]], *,
                        source: str | None = None) -> list[AlertRule]:
        """Add or replace alert rules (YAML text or items), validated against the KPIs."""
        from kpidash.engine import alerts as alerts_

        parsed = alerts_.rules_from(rules, cast("Engine", self), source)
        self.store.put_alert_rules(self.workspace, [r.to_dict() for r in parsed],
                                   self.clock.now())
        return parsed

    def alert_rules(self) -> list[AlertRule]:
        from kpidash.core.alerts import AlertRule

        return [AlertRule.model_validate(d) for d in self.store.alert_rules(self.workspace)]

    def delete_alert_rule(self, rule_id: str) -> None:
        """Delete a rule with its alerts and their history."""
        if not self.store.delete_alert_rule(self.workspace, rule_id):
            raise NotFound(f"no alert rule {rule_id!r}")

    def evaluate_alerts(self, notifiers: Mapping[str, Notifier] | None = None, *,
                        deliver: bool = True) -> alerts_.TickReport:
        """One alert-manager tick at the clock's now (see :mod:`kpidash.engine.alerts`).

        Notifications go to ``notifiers`` (by default :attr:`notifiers`; with none configured
        they are queued on a ``log`` channel and delivered to the log).
        """
        from kpidash.engine import alerts as alerts_

        chosen = dict(notifiers if notifiers is not None else self.notifiers)
        if not chosen:
            from kpidash.notify.log import LogNotifier

            chosen = {"log": LogNotifier()}
        return alerts_.tick(cast("Engine", self), self.clock.now(), chosen, deliver=deliver,
                            dashboard_url=self.dashboard_url)

    def alerts(self, *, states: Sequence[str] | None = None, rule_id: str | None = None,
               ) -> list[AlertInstance]:
        """Stored alerts: active ones ranked by urgency first, then the rest."""
        from kpidash.core.alerts import codec
        from kpidash.engine import alerts as alerts_

        docs = self.store.alert_instances(self.workspace, rule_id=rule_id, states=states)
        return alerts_.ranked((codec.instance_from_doc(d) for d in docs),
                              {k.id: k for k in self._registry})

    def alert(self, fingerprint: str) -> AlertInstance:
        """One alert with its whole transition history."""
        from kpidash.core.alerts import codec

        docs = self.store.alert_instances(self.workspace, fingerprint=fingerprint)
        if not docs:
            raise NotFound(f"no alert with fingerprint {fingerprint!r}; `kpidash alerts list` "
                           "shows them")
        rows = self.store.alert_history(self.workspace, fingerprint)
        return codec.instance_from_doc(docs[0], (codec.transition_from_row(r) for r in rows))

    def acknowledge(self, fingerprint: str, by: str, comment: str = "") -> AlertInstance:
        """Record who is on it; acknowledged alerts get no repeat reminders."""
        from kpidash.core.alerts import acknowledge, codec

        inst = self.alert(fingerprint)
        now = self.clock.now()
        acked = acknowledge(inst, by, now, comment)
        with self.store.transaction():
            self.store.put_alert_instances(self.workspace, [codec.instance_to_doc(acked)], now)
            self.store.add_acknowledgement(self.workspace, fingerprint, by, now, comment)
        return acked

    def acknowledgements(self, fingerprint: str) -> list[dict[str, Any]]:
        """Every acknowledgement of an alert (who, when, comment), oldest first."""
        return self.store.acknowledgements(self.workspace, fingerprint)

    def silence(self, matchers: Sequence[str], *, by: str, duration: timedelta | None = None,
                start: datetime | None = None, end: datetime | None = None,
                comment: str = "") -> Silence:
        """Mute alerts whose labels match every matcher (``kpi=revenue``, ``region=~EU|NA``)
        from ``start`` (now) until ``end`` or for ``duration``."""
        from kpidash.core.alerts import Silence, codec
        from kpidash.engine import alerts as alerts_
        from kpidash.errors import AlertError

        now = self.clock.now()
        start = start or now
        if (end is None) == (duration is None):
            raise AlertError("a silence needs either an end or a duration (e.g. 2h)")
        end = end or start + (duration or timedelta(0))
        for ts, name in ((start, "start"), (end, "end")):
            if ts.tzinfo is None:
                raise AlertError(f"silence {name} must be timezone-aware, got {ts.isoformat()}")
        parsed = codec.parse_matchers(list(matchers))
        text = [codec.format_matcher(m) for m in parsed]
        s = Silence(alerts_.silence_id(text, start, end, by, now), parsed, start, end, by,
                    comment)
        self.store.put_silence(self.workspace, codec.silence_to_doc(s), now)
        return s

    def silences(self, *, include_expired: bool = False) -> list[Silence]:
        from kpidash.core.alerts import codec

        now = self.clock.now()
        out = [codec.silence_from_doc(d) for d in self.store.silences(self.workspace)]
        return out if include_expired else [s for s in out if s.end > now]

    def expire_silence(self, silence_id: str) -> Silence:
        """End an active silence now (a pending one is deleted instead)."""
        from kpidash.core.alerts import SilenceState, codec, expire, silence_state

        found = [s for s in self.silences(include_expired=True) if s.id == silence_id]
        if not found:
            raise NotFound(f"no silence {silence_id!r}; `kpidash alerts silences` lists them")
        now = self.clock.now()
        if silence_state(found[0], now) is SilenceState.PENDING:
            self.store.delete_silence(self.workspace, silence_id)
            return found[0]
        ended = expire(found[0], now)
        self.store.put_silence(self.workspace, codec.silence_to_doc(ended), now)
        return ended
