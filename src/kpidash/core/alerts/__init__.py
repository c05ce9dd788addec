"""Alerts, pure core: rules, evaluation, lifecycle, silences, inhibition, grouping.

Public API::

    load_rules(yaml_or_items, kpis=None) -> list[AlertRule]       # raises RulesInvalid
    validate_rules(items, kpis=None) -> (rules, Report)             # every problem at once
    evaluate(rule, kpi, [SliceInput, ...], now) -> [Evaluation]      # one per slice
    step(instance, observation, now) -> (instance, [Transition])    # the lifecycle
    apply(instances_by_fp, rule, evaluations, now) -> (instances, [(fp, Transition)])
    acknowledge(instance, by, now, comment) ; rank_active(instances, kpis)
    muted(instances, silences, now) ; inhibited(instances) ; silence_state(silence, now)
    plan(instances, group_states, now, timers, group_by, muted) -> ([Notification], states)

Modules: :mod:`~.rules` (definitions, validation), :mod:`~.evaluate` (conditions),
:mod:`~.state` (lifecycle), :mod:`~.silence` (silences, inhibition), :mod:`~.group`
(notification planning). Nothing here reads a clock, a store or the network.
"""

from kpidash.core.alerts.evaluate import (
    Evaluation,
    Observation,
    Outcome,
    SliceInput,
    SliceKey,
    evaluate,
    slice_key,
)
from kpidash.core.alerts.group import (
    GroupKey,
    GroupState,
    GroupTimers,
    Notification,
    Reason,
    group_key,
    plan,
    rule_timers,
)
from kpidash.core.alerts.rules import (
    AlertRule,
    load_rules,
    parse_duration,
    parse_rules_yaml,
    validate_rules,
)
from kpidash.core.alerts.silence import (
    Matcher,
    MatchOp,
    Silence,
    SilenceState,
    expire,
    inhibited,
    muted,
    silence_state,
    silenced_by,
)
from kpidash.core.alerts.state import (
    ALLOWED,
    Acknowledgement,
    AlertInstance,
    AlertState,
    Transition,
    acknowledge,
    apply,
    fingerprint,
    new_instance,
    rank_active,
    step,
    transition,
)
from kpidash.core.anomaly.result import Severity
from kpidash.errors import AlertError, IllegalTransition, RulesInvalid

__all__ = [
    "ALLOWED", "Acknowledgement", "AlertError", "AlertInstance", "AlertRule", "AlertState",
    "Evaluation", "GroupKey", "GroupState", "GroupTimers", "IllegalTransition", "MatchOp",
    "Matcher", "Notification", "Observation", "Outcome", "Reason", "RulesInvalid", "Severity",
    "Silence", "SilenceState", "SliceInput", "SliceKey", "Transition", "acknowledge", "apply",
    "evaluate", "expire", "fingerprint", "group_key", "inhibited", "load_rules", "muted",
    "new_instance", "parse_duration", "parse_rules_yaml", "plan", "rank_active", "rule_timers",
    "silence_state", "silenced_by", "slice_key", "step", "transition", "validate_rules",
]
