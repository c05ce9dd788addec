"""Insights of stored KPIs: gather the data (few, shared store queries), let core.insights write
and rank the findings.

One refresh at ``now`` reads, for every KPI (sharing each query between all KPIs):

* daily values for the last :data:`HISTORY_DAYS` days and weekly, monthly, quarterly values
  long enough for a year-over-year comparison with history — period-over-period changes,
  records, trends (on weeks) and trend changes, anomalies (the causal detector on days);
* per dimension, the last two complete weeks and the last :data:`ANOMALY_DAYS` + 7 days by
  value — who drove the week's change and an anomaly (mix vs rate for ratio KPIs), and
  whether one value carries most of a KPI;
* a forecast of the rest of the month for KPIs with a target (pace to goal);
* corrections logged in the last week, gaps and the time of the last point (data quality);
* correlations between the KPIs' daily changes (pairs sharing an input are skipped: a
  ratio always moves with its numerator);
* the user's recorded interactions and the insights already shown to them (filter usage,
  affinity, novelty).

Only complete periods are used, so the same data and clock give the same insights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from kpidash.core import aggregate as agg
from kpidash.core.correlate import relations
from kpidash.core.drivers import (
    Concentration,
    Decomposition,
    MixRate,
    concentration,
    contributions,
    explained_by,
    mix_rate,
)
from kpidash.core.insights import Insight, Ranked, RankOptions, rank
from kpidash.core.insights.change import change_insights, concentration_insight, drivers_insight
from kpidash.core.insights.notes import correlation_insight, quality_insights
from kpidash.core.insights.pace import pace_insight
from kpidash.core.insights.signals import anomaly_insight, record_insight, trend_insights
from kpidash.core.insights.wording import period_phrase
from kpidash.core.trend import series_breaks, series_trend
from kpidash.errors import KpidashError
from kpidash.model import KPI, Aggregation, Grain, KpiKind, Series

if TYPE_CHECKING:
    from kpidash.engine import Engine

HISTORY_DAYS = 400
HISTORY = {Grain.WEEK: 64, Grain.MONTH: 24, Grain.QUARTER: 14}
TREND_WEEKS = 26
ANOMALY_DAYS = 7
ANOMALY_HISTORY_DAYS = 180
CORRELATION_DAYS = 180
ADDITIVE = frozenset({Aggregation.SUM, Aggregation.COUNT, Aggregation.LAST})
PACE_GRAINS = frozenset({Grain.WEEK, Grain.MONTH, Grain.QUARTER, Grain.YEAR})


def _instant(engine: Engine, now: datetime, grain: Grain, back: int) -> tuple[datetime, datetime]:
    """(start, end): ``back`` periods before the start of the period containing ``now``."""
    end = agg.period_start(now, grain, engine.timezone)
    return agg.periods_back(end, grain, back, engine.timezone), end


def _additive(kpi: KPI) -> bool:
    """Summed across slices (so contributions by slice add up to the total)."""
    return kpi.kind is KpiKind.SIMPLE and kpi.aggregation in ADDITIVE


def _summed_over_time(kpi: KPI) -> bool:
    """A period's value is the sum of its days (not so for stocks, `last`)."""
    return kpi.kind is KpiKind.SIMPLE and kpi.aggregation in (Aggregation.SUM,
                                                              Aggregation.COUNT)


def _ratio_inputs(engine: Engine, kpi: KPI) -> tuple[KPI, KPI] | None:
    if kpi.kind is not KpiKind.RATIO or not kpi.numerator or not kpi.denominator:
        return None
    num, den = engine.registry.get(kpi.numerator), engine.registry.get(kpi.denominator)
    return (num, den) if _additive(num) and _additive(den) else None


def generate(engine: Engine, now: datetime, *, kpi_ids: Sequence[str] | None = None,
             user: str | None = None) -> list[Insight]:
    """Every insight about ``kpi_ids`` (all KPIs by default) at ``now``, unranked."""
    kpis = [engine.registry.get(k) for k in (kpi_ids or [k.id for k in engine.registry])]
    if not kpis:
        return []
    ids = [k.id for k in kpis]
    out: list[Insight] = []
    start, end = _instant(engine, now, Grain.DAY, HISTORY_DAYS)
    daily = {k: s[0] for k, s in engine.query_many(ids, Grain.DAY, start, end).items()}
    by_grain: dict[Grain, dict[str, Series]] = {Grain.DAY: daily}
    for grain, back in HISTORY.items():
        s0, e0 = _instant(engine, now, grain, back)
        by_grain[grain] = {k: s[0] for k, s in engine.query_many(ids, grain, s0, e0).items()}
    breakdown = _breakdowns(engine, kpis, now)
    for kpi in kpis:
        for grain, series in by_grain.items():
            s = series[kpi.id]
            drivers = breakdown.week_drivers.get(kpi.id) if grain is Grain.WEEK else None
            found = change_insights(kpi, s, now, drivers=drivers)
            out += found
            if grain in (Grain.DAY, Grain.WEEK):
                rec = record_insight(kpi, s)
                if rec is not None:
                    out.append(rec)
            if grain is Grain.WEEK:
                out += _trends(kpi, s)
                if drivers is not None:
                    sig = next((i.significance for i in found
                                if i.discriminator == "week:previous"), 0.5)
                    d = drivers_insight(kpi, grain, s.labels[-1], now, drivers, sig)
                    if d is not None:
                        out.append(d)
        conc = breakdown.week_concentration.get(kpi.id)
        if conc is not None:
            s = by_grain[Grain.WEEK][kpi.id]
            c = concentration_insight(kpi, Grain.WEEK, s.labels[-1], now, conc)
            if c is not None:
                out.append(c)
    out += _anomalies(engine, kpis, now, breakdown)
    out += _paces(engine, kpis, now)
    out += _quality(engine, kpis, daily, now)
    out += _correlations(engine, kpis, daily, now)
    if user is not None:
        from kpidash.core.usage import suggestions

        out += suggestions(engine.store.interactions(engine.workspace), user, now=now,
                           names={k.id: k.name for k in engine.registry})
    return out


def ranked(engine: Engine, now: datetime, *, user: str | None = None,
           kpi_ids: Sequence[str] | None = None, types: Iterable[str] | None = None,
           limit: int | None = 20, diverse: bool = True, mark_shown: bool = False,
           ) -> list[Ranked]:
    """Insights scored for ``user`` (novelty and affinity need one), best first."""
    found = generate(engine, now, kpi_ids=kpi_ids, user=user)
    if types is not None:
        wanted = {str(t) for t in types}
        found = [i for i in found if str(i.type) in wanted]
    views: Mapping[str, tuple[int, datetime]] = {}
    aff: Mapping[str, float] = {}
    if user is not None:
        from kpidash.core.usage import affinity

        views = engine.store.insight_views(engine.workspace, user)
        aff = affinity(engine.store.interactions(engine.workspace, user=user), user, now=now)
    out = rank(found, kpis={k.id: k for k in engine.registry}, now=now, views=views,
               affinity=aff, options=RankOptions(diverse=diverse), limit=limit)
    if mark_shown and user is not None and out:
        engine.store.mark_insights_shown(engine.workspace, user, [r.insight.key for r in out],
                                         now)
    return out


# -- trends -----------------------------------------------------------------------------------


def _trends(kpi: KPI, weekly: Series) -> list[Insight]:
    n = len(weekly)
    finite = int(np.isfinite(weekly.values).sum())
    if finite < 8:
        return []
    w = min(TREND_WEEKS, n)
    recent = Series(weekly.kpi_id, weekly.grain, weekly.tz, weekly.periods[n - w:],
                    weekly.values[n - w:], weekly.group, weekly.labels[n - w:])
    trend = series_trend(recent, kpi)
    breaks = series_breaks(weekly, kpi)
    return trend_insights(kpi, weekly, trend, w, breaks, recent_breaks=8)


# -- breakdowns by dimension ------------------------------------------------------------------


class _Breakdown:
    def __init__(self) -> None:
        self.week_drivers: dict[str, Decomposition | MixRate] = {}
        self.week_concentration: dict[str, Concentration] = {}
        # per KPI: dimension → (labels, daily values matrix [group × day], periods) for the
        # last ANOMALY_DAYS + 7 days (num/den pairs for ratio KPIs)
        self.daily: dict[str, dict[str, tuple[list[str], Any, Any]]] = {}


def _dims(engine: Engine, kpi: KPI) -> list[str]:
    from kpidash.core.alerts.rules import query_dimensions

    return list(query_dimensions(kpi, {k.id: k for k in engine.registry}))


def _breakdowns(engine: Engine, kpis: Sequence[KPI], now: datetime) -> _Breakdown:
    """Grouped values by every dimension, shared queries; the best dimension per KPI wins."""
    out = _Breakdown()
    plan: dict[str, list[KPI]] = {}
    for k in kpis:
        if _additive(k) or _ratio_inputs(engine, k):
            for d in _dims(engine, k):
                plan.setdefault(d, []).append(k)
    ws, we = _instant(engine, now, Grain.WEEK, 2)
    ds, de = _instant(engine, now, Grain.DAY, ANOMALY_DAYS + 7)
    best: dict[str, tuple[float, Decomposition | MixRate]] = {}
    for dim, members in sorted(plan.items()):
        needed: dict[str, None] = {}
        for k in members:
            pair = _ratio_inputs(engine, k)
            needed.update(dict.fromkeys([p.id for p in pair] if pair else [k.id]))
        try:
            weekly = engine.query_many(list(needed), Grain.WEEK, ws, we, group_by=dim)
            daily = engine.query_many(list(needed), Grain.DAY, ds, de, group_by=dim)
        except KpidashError:
            continue
        for k in members:
            pair = _ratio_inputs(engine, k)
            parts = [p.id for p in pair] if pair else [k.id]
            labels, mats = _align([weekly[p] for p in parts])
            if len(labels) < 2 or mats[0].shape[1] < 2:
                continue
            if pair:
                num, den = mats
                try:
                    dec: Decomposition | MixRate = mix_rate(
                        dim, labels, num[:, -2], den[:, -2], num[:, -1], den[:, -1],
                        scale=k.scale)
                except ValueError:
                    continue
            else:
                (vals,) = mats
                dec = contributions(dim, labels, vals[:, -2], vals[:, -1])
                last = np.nan_to_num(vals[:, -1])
                if (last >= 0).all() and last.sum() > 0:
                    conc = concentration(dim, labels, last)
                    prev = out.week_concentration.get(k.id)
                    if prev is None or conc.top_share > prev.top_share:
                        out.week_concentration[k.id] = conc
            strength = _strength(dec)
            if k.id not in best or strength > best[k.id][0]:
                best[k.id] = (strength, dec)
            dl, dm = _align([daily[p] for p in parts])
            out.daily.setdefault(k.id, {})[dim] = (dl, dm, daily[parts[0]][0].periods
                                                   if daily[parts[0]] else None)
    out.week_drivers = {k: v[1] for k, v in best.items()}
    return out


def _strength(dec: Decomposition | MixRate) -> float:
    """How much of the change one value of the dimension explains (to pick the dimension)."""
    if isinstance(dec, MixRate):
        return abs(dec.segments[0].total) / abs(dec.change) if dec.change and dec.segments \
            else 0.0
    share = explained_by(dec, 1)
    return share if np.isfinite(share) else 0.0


def _align(groups: Sequence[Sequence[Series]]) -> tuple[list[str], list[Any]]:
    """Series grouped by a dimension (one list per KPI) → common labels and matrices."""
    labels = sorted({str(s.group) for g in groups for s in g})
    mats = []
    for g in groups:
        by = {str(s.group): s.values for s in g}
        width = len(g[0].values) if g else 0
        mats.append(np.array([by.get(lab, np.full(width, np.nan)) for lab in labels],
                             dtype=np.float64).reshape(len(labels), width))
    return labels, mats


# -- anomalies --------------------------------------------------------------------------------


def _anomalies(engine: Engine, kpis: Sequence[KPI], now: datetime, bd: _Breakdown,
               ) -> list[Insight]:
    from kpidash.core.anomaly import anomalies, score_many
    from kpidash.engine.anomalies import GRAIN_SEASON, MIN_CYCLES

    start, end = _instant(engine, now, Grain.DAY, ANOMALY_HISTORY_DAYS)
    series = {k: s[0] for k, s in engine.query_many([k.id for k in kpis], Grain.DAY, start,
                                                    end).items()}
    groups: dict[tuple[float, bool], list[KPI]] = {}
    for k in kpis:
        groups.setdefault((k.anomaly_threshold, k.higher_is_better), []).append(k)
    out: list[Insight] = []
    recent_from = len(next(iter(series.values())).values) - ANOMALY_DAYS if series else 0
    m = GRAIN_SEASON[Grain.DAY]
    for (threshold, hib), members in sorted(groups.items()):
        values = [series[k.id].values for k in members]
        seasons = [m if np.isfinite(v).sum() >= MIN_CYCLES * m else 1 for v in values]
        scored = score_many(values, season_length=seasons, threshold=threshold,
                            higher_is_better=hib)
        for k, sc in zip(members, scored, strict=True):
            s = series[k.id]
            found = [a for a in anomalies(sc) if int(a.timestamp) >= recent_from]
            if not found:
                continue
            a = max(found, key=lambda x: (x.score, int(x.timestamp)))
            i = int(a.timestamp)
            drivers = _anomaly_drivers(engine, k, bd, s.periods[i])
            from kpidash.core.insights.change import period_end

            out.append(anomaly_insight(
                k, {"actual": a.actual, "expected": a.expected, "lo": a.lo, "hi": a.hi,
                    "score": a.score, "severity": a.severity.label, "kind": a.kind.label,
                    "favourable": a.favourable}, Grain.DAY, period_end(s, i),
                label=s.labels[i], drivers=drivers))
    return out


def _anomaly_drivers(engine: Engine, kpi: KPI, bd: _Breakdown, period: Any,
                     ) -> Decomposition | MixRate | None:
    """The anomalous day vs the same weekday a week before, by the dimension explaining most."""
    best: tuple[float, Decomposition | MixRate] | None = None
    for dim, (labels, mats, periods) in sorted(bd.daily.get(kpi.id, {}).items()):
        if periods is None:
            continue
        hit = np.flatnonzero(periods == period)
        if hit.size == 0 or hit[0] < 7:
            continue
        j, i = int(hit[0]) - 7, int(hit[0])
        try:
            dec: Decomposition | MixRate = (
                mix_rate(dim, labels, mats[0][:, j], mats[1][:, j], mats[0][:, i], mats[1][:, i],
                         scale=kpi.scale) if len(mats) == 2
                else contributions(dim, labels, mats[0][:, j], mats[0][:, i]))
        except ValueError:
            continue
        strength = _strength(dec)
        if best is None or strength > best[0]:
            best = (strength, dec)
    return best[1] if best else None


# -- pace to goal -----------------------------------------------------------------------------


def _paces(engine: Engine, kpis: Sequence[KPI], now: datetime) -> list[Insight]:
    """Pace to goal over the KPI's ``target_grain`` period (a month when unset) containing
    now. For a sum/count KPI without ``target_grain`` the target is a daily level, so the
    period's target is target × its days."""
    out: list[Insight] = []
    today = _instant(engine, now, Grain.DAY, 0)[1]
    for k in kpis:
        if k.target is None:
            continue
        grain = k.target_grain if k.target_grain in PACE_GRAINS else Grain.MONTH
        start = _instant(engine, now, grain, 0)[1]
        end = agg.periods_back(start, grain, -1, engine.timezone)
        elapsed = round((today - start) / timedelta(days=1))
        remaining = round((end - today) / timedelta(days=1))
        if elapsed <= 0 or remaining <= 0:
            continue
        label = agg.keys_to_utc(agg.period_keys(start, start + timedelta(days=1), grain,
                                                engine.timezone), grain, engine.timezone)[1][0]
        additive = _summed_over_time(k)
        target = k.target if k.target_grain is not None or not additive else \
            k.target * (elapsed + remaining)
        try:
            (mtd,) = engine.query(k.id, grain, start, today)
            fc = engine.forecast(k.id, Grain.DAY, remaining, levels=(80,))
        except KpidashError:
            continue
        if not fc or len(mtd.values) == 0:
            continue
        r = fc[0].result
        ins = pace_insight(kpi_id=k.id, name=k.name, unit=k.unit, target=target,
                           higher_is_better=k.higher_is_better, additive=additive,
                           period_label=label, period_words=period_phrase(label, grain),
                           at=now, to_date=float(mtd.values[0]), elapsed=elapsed,
                           remaining_mean=r.mean[:remaining].tolist(),
                           remaining_low80=r.lower[80][:remaining].tolist(),
                           remaining_high80=r.upper[80][:remaining].tolist())
        if ins is not None:
            out.append(ins)
    return out


# -- data quality -----------------------------------------------------------------------------


def _quality(engine: Engine, kpis: Sequence[KPI], daily: Mapping[str, Series], now: datetime,
             ) -> list[Insight]:
    week_ago = now - timedelta(days=7)
    log = engine.store.correction_log(engine.workspace, None)
    recent: dict[str, int] = {}
    if log.num_rows:
        rows = log.to_pydict()
        for kpi_id, at, action in zip(rows["kpi_id"], rows["logged_at"], rows["action"],
                                      strict=True):
            if at >= week_ago and action == "applied":
                recent[kpi_id] = recent.get(kpi_id, 0) + 1
    simple = [k.id for k in kpis if k.kind is KpiKind.SIMPLE]
    seen = engine.store.last_seen(engine.workspace, simple) if simple else {}
    out = []
    for k in kpis:
        if k.kind is not KpiKind.SIMPLE:
            continue
        v = daily[k.id].values[-30:]
        finite = np.flatnonzero(np.isfinite(v))
        gaps = int(np.isnan(v[finite[0]:]).sum()) if finite.size else 0
        regular = finite.size >= 0.8 * len(v) if len(v) else False
        out += quality_insights(k, now, corrections=recent.get(k.id, 0), gaps=gaps,
                                gap_window=len(v), last_point=seen.get((k.id, None)),
                                expected_every=timedelta(days=1) if regular else None)
    return out


# -- correlations -----------------------------------------------------------------------------


def _correlations(engine: Engine, kpis: Sequence[KPI], daily: Mapping[str, Series],
                  now: datetime) -> list[Insight]:
    if len(kpis) < 2:
        return []
    window = {k.id: daily[k.id].values[-CORRELATION_DAYS:] for k in kpis}
    inputs = {k.id: set(engine.registry.simple_inputs(k.id)) for k in kpis}
    rels = relations(window, max_lag=14, season_length=7)
    reg = {k.id: k for k in engine.registry}
    return [correlation_insight(r, reg, "day", now) for r in rels
            if not inputs[r.leader] & inputs[r.follower]]


__all__ = ["generate", "ranked"]
