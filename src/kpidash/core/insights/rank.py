"""Scoring, ranking and diversity.

score = significance × weight × magnitude × recency × novelty × affinity, where

* significance, magnitude — from the generator (each in [0, 1]);
* weight — the KPI's ``weight`` (1 for insights not about one KPI);
* recency — 0.5^(age / half_life), age = now − the instant the insight is about;
* novelty — 0.5^(times already shown to this user) (an insight seen twice weighs a quarter);
* affinity — the user's affinity for the KPI (1 … 2, from their views and filters).

Order: score descending, then the insight key, so equal inputs give an equal order.
Diversity: the first ``top`` places hold at most one insight per KPI (the next best of a KPI
waits until after them), unless ``diverse`` is off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from kpidash.core.insights.model import Factors, Insight, Ranked
from kpidash.model import KPI


@dataclass(frozen=True)
class RankOptions:
    half_life: timedelta = timedelta(days=7)
    novelty_decay: float = 0.5
    top: int = 5
    diverse: bool = True


def factors(ins: Insight, *, kpis: Mapping[str, KPI], now: datetime,
            views: Mapping[str, tuple[int, datetime]], affinity: Mapping[str, float],
            opts: RankOptions) -> Factors:
    kpi = kpis.get(ins.kpi_id) if ins.kpi_id else None
    age = max(timedelta(0), now - ins.at)
    recency = 0.5 ** (age / opts.half_life)
    shown = views.get(ins.key, (0, now))[0]
    novelty = opts.novelty_decay ** shown
    aff = affinity.get(ins.kpi_id, 1.0) if ins.kpi_id else 1.0
    return Factors(ins.significance, kpi.weight if kpi else 1.0, ins.magnitude, recency,
                   novelty, aff)


def rank(insights: Iterable[Insight], *, kpis: Mapping[str, KPI], now: datetime,
         views: Mapping[str, tuple[int, datetime]] | None = None,
         affinity: Mapping[str, float] | None = None, options: RankOptions = RankOptions(),
         limit: int | None = None) -> list[Ranked]:
    """Score, order and (optionally) diversify; ``limit`` keeps the first N."""
    scored = sorted(((factors(i, kpis=kpis, now=now, views=views or {},
                              affinity=affinity or {}, opts=options), i) for i in insights),
                    key=lambda fi: (-fi[0].score, fi[1].key))
    if options.diverse:
        head: list[tuple[Factors, Insight]] = []
        rest: list[tuple[Factors, Insight]] = []
        used: set[str] = set()
        for f, i in scored:
            if len(head) < options.top and (i.kpi_id is None or i.kpi_id not in used):
                head.append((f, i))
                if i.kpi_id is not None:
                    used.add(i.kpi_id)
            else:
                rest.append((f, i))
        scored = head + rest
    if limit is not None:
        scored = scored[:limit]
    return [Ranked(i, f, n) for n, (f, i) in enumerate(scored, start=1)]
