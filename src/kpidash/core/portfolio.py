"""The portfolio view: one KPI compared across several workspaces, ranked — pure.

An agency compares its clients (a company its business units): for each workspace that
defines the KPI, one :class:`PortfolioRow` with the value of the last complete period, the
previous period's value, a sparkline and optionally the workspace's top insight for the KPI.
:func:`rank` orders the rows; :func:`portfolio_widget` turns them into the ``portfolio``
widget (JSON Schema ``widget-portfolio`` in :mod:`kpidash.schemas`).

Ranking (``rank_by``):

* ``value`` compares the current period's value, ``change`` its relative change vs the
  previous period, ``100 × (value − previous) / |previous|`` (:func:`~kpidash.core.widgets.
  pct_change`); both in the KPI's better direction — highest first when higher is better,
  lowest first otherwise (churn: lowest first). Unrounded numbers are compared.
* Ties go to the lower workspace id; rows that cannot be compared (no value, or no change
  for ``change``) follow the ranked ones in workspace id order, without a rank. The same
  rows always give the same order.
* Some comparisons are refused (the rows are then listed by workspace id, none ranked, and
  a note in ``notes`` says why): by value when the KPI is money and the workspaces use different
  currencies (no exchange rates here — growth, ``change``, still compares) or when they
  define the KPI with different units; any ranking when they disagree on whether higher is
  better (there is no one "better" direction). A ranking by change across currencies is
  made, with a note that the amounts are not comparable.

Money: a KPI is money when its unit is a currency symbol (``$``, ``€`` …), an ISO 4217 code
(``USD``) or the word ``currency``. A row's currency is the unit itself when the unit is an
ISO code, else the workspace's currency setting (``$`` is a dollar of the workspace's
currency, whichever dollar that is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from kpidash.core.widgets import (
    SCHEMA_VERSION,
    STATUS_COLORS,
    kpi_status,
    pct_change,
    round_value,
    trend_direction,
)
from kpidash.model import Grain

MAX_SPARKLINE: Final = 30
"""Longest sparkline a row may carry (the ``kpi`` card's length)."""

CURRENCY_SYMBOLS: Final = frozenset({
    "$", "€", "£", "¥", "₹", "₩", "₽", "₺", "₴", "₦", "₱", "₪", "₫", "฿", "₡", "₲", "₸", "₼",
    "₾", "R$", "US$", "C$", "A$", "NZ$", "HK$", "S$", "Fr", "kr", "zł", "Kč", "R", "currency",
})
"""Units that mean "an amount of the workspace's currency"."""

ISO_4217: Final = frozenset({
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWL",
})
"""Active ISO 4217 currency codes: a unit spelled as one of these is that currency."""


class RankBy(StrEnum):
    VALUE = "value"    # the current period's value
    CHANGE = "change"  # relative change vs the previous period


def currency_of(unit: str, workspace_currency: str) -> str | None:
    """The currency a KPI's values are in, or None when the unit is not money."""
    u = unit.strip()
    if u in ISO_4217:
        return u
    if u in CURRENCY_SYMBOLS or u.lower() == "currency":
        return workspace_currency
    return None


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class WorkspaceInfo:
    """Who a row is about: the workspace's id, name, currency (ISO 4217) and the time zone
    its periods are computed in."""

    id: str
    name: str
    currency: str
    timezone: str


@dataclass(frozen=True)
class PortfolioRow:
    """One workspace's KPI at the current period.

    ``value``/``previous`` are the values of the current (last complete) period and the one
    before, in ``unit``; ``period`` the current period's label and ``tz`` the zone of that
    label. ``sparkline`` holds the last periods' values, oldest first, ending at the current
    period (None where a period has no data). ``insight`` is the workspace's top ranked
    insight about the KPI (``Ranked.to_dict()``) or None. Non-finite numbers become None.
    """

    workspace: WorkspaceInfo
    kpi_id: str
    title: str
    unit: str
    higher_is_better: bool
    tz: str
    period: str | None
    value: float | None
    previous: float | None
    sparkline: tuple[float | None, ...] = ()
    target: float | None = None
    insight: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("value", "previous", "target"):
            object.__setattr__(self, name, _finite(getattr(self, name)))
        object.__setattr__(self, "sparkline", tuple(_finite(v) for v in self.sparkline))
        if len(self.sparkline) > MAX_SPARKLINE:
            raise ValueError(f"a portfolio sparkline holds at most {MAX_SPARKLINE} periods; "
                             f"got {len(self.sparkline)} for workspace {self.workspace.id!r}")

    @property
    def change(self) -> float | None:
        """Percent change vs the previous period, unrounded (None without both values or
        when the previous one is 0)."""
        return pct_change(self.value, self.previous)

    @property
    def currency(self) -> str | None:
        return currency_of(self.unit, self.workspace.currency)


@dataclass(frozen=True)
class MissingKpi:
    """A workspace of the portfolio that does not define the KPI (listed, not an error)."""

    workspace: WorkspaceInfo
    kpi_id: str

    @property
    def reason(self) -> str:
        return f"KPI {self.kpi_id!r} is not defined in workspace {self.workspace.id!r}"


@dataclass(frozen=True)
class Ranking:
    """Rows in display order with their ranks (None: not ranked), whether a ranking was
    made at all, the shared currency (None when mixed or not money) and notes saying why a
    ranking was refused."""

    rows: tuple[PortfolioRow, ...]
    ranks: tuple[int | None, ...]
    ranked: bool
    currency: str | None
    mixed_currency: bool
    notes: tuple[str, ...] = field(default=())


def _check(kpi_id: str, rows: Sequence[PortfolioRow], missing: Sequence[MissingKpi]) -> None:
    seen: set[str] = set()
    items: list[PortfolioRow | MissingKpi] = [*rows, *missing]
    for item in items:
        if item.kpi_id != kpi_id:
            raise ValueError(f"a row of workspace {item.workspace.id!r} is for KPI "
                             f"{item.kpi_id!r}, not {kpi_id!r}; pass one KPI's rows")
        if item.workspace.id in seen:
            raise ValueError(f"workspace {item.workspace.id!r} appears twice in the portfolio "
                             f"of {kpi_id!r}; pass one row (or missing entry) per workspace")
        seen.add(item.workspace.id)


def rank(rows: Sequence[PortfolioRow], rank_by: RankBy | str = RankBy.VALUE) -> Ranking:
    """Order ``rows`` (one KPI, one per workspace) by ``rank_by``; rules in the module
    docstring. Raises ValueError for an unknown ``rank_by``."""
    try:
        by = RankBy(rank_by)
    except ValueError:
        raise ValueError(f"rank_by must be one of {', '.join(RankBy)}; got {rank_by!r}"
                         ) from None
    base = sorted(rows, key=lambda r: r.workspace.id)
    kpi = base[0].kpi_id if base else "the KPI"
    currencies = sorted({c for r in base if (c := r.currency) is not None})
    mixed_currency = len(currencies) > 1
    money = any(r.currency is not None for r in base)
    units = sorted({r.unit for r in base})
    notes: list[str] = []
    if len({r.higher_is_better for r in base}) > 1:
        better = ", ".join(r.workspace.id for r in base if r.higher_is_better)
        worse = ", ".join(r.workspace.id for r in base if not r.higher_is_better)
        notes.append(f"not ranked: the workspaces disagree on whether a higher {kpi} is "
                     f"better (higher in {better}; lower in {worse}); align the KPI "
                     "definitions to rank them")
    if by is RankBy.VALUE and mixed_currency:
        notes.append(f"not ranked by value: {kpi} is money in different currencies "
                     f"({', '.join(currencies)}) and no exchange rates are applied; use "
                     "rank_by=change to compare growth")
    elif by is RankBy.VALUE and len(units) > 1:
        notes.append(f"not ranked by value: the workspaces measure {kpi} in different units "
                     f"({', '.join(map(repr, units))}); use rank_by=change to compare growth")
    if notes:
        return Ranking(tuple(base), (None,) * len(base), False, None, mixed_currency,
                       tuple(notes))

    if mixed_currency:  # ranked by change: growth compares, amounts do not
        notes.append(f"ranked by change; the values are in different currencies "
                     f"({', '.join(currencies)}) and are not comparable as amounts")
    keyed = [(r.value if by is RankBy.VALUE else r.change, r) for r in base]
    comparable = [(k if r.higher_is_better else -k, r) for k, r in keyed if k is not None]
    rest = [r for k, r in keyed if k is None]
    # best first; sorted() is stable and `base` is by workspace id: ties stay in id order
    ordered = [r for _, r in sorted(comparable, key=lambda kr: -kr[0])]
    ranks = tuple(range(1, len(ordered) + 1)) + (None,) * len(rest)
    currency = currencies[0] if money and len(currencies) == 1 else None
    return Ranking(tuple(ordered + rest), ranks, True, currency, mixed_currency, tuple(notes))


def _round_pct(x: float | None) -> float | None:
    return None if x is None else round(x, 1) + 0.0


def _row_json(row: PortfolioRow, position: int | None) -> dict[str, Any]:
    change = row.change
    status = kpi_status(row.value, change, target=row.target,
                        higher_is_better=row.higher_is_better)
    return {
        "rank": position,
        "workspace": row.workspace.id,
        "workspace_name": row.workspace.name,
        "currency": row.currency,
        "tz": row.tz,
        "title": row.title,
        "unit": row.unit,
        "higher_is_better": row.higher_is_better,
        "target": row.target,
        "period": row.period,
        "value": round_value(row.value),
        "previous": round_value(row.previous),
        "change": _round_pct(change),
        "direction": trend_direction(change),
        "status": status,
        "color": STATUS_COLORS[status],
        "sparkline": [round_value(v) for v in row.sparkline],
        "insight": dict(row.insight) if row.insight is not None else None,
    }


def _shared(values: Sequence[Any]) -> Any:
    return values[0] if values and all(v == values[0] for v in values) else None


def portfolio_widget(kpi_id: str, rows: Sequence[PortfolioRow],
                     missing: Sequence[MissingKpi] = (), *, grain: Grain | str,
                     rank_by: RankBy | str = RankBy.VALUE) -> dict[str, Any]:
    """The ``portfolio`` widget of one KPI: ``{"type": "portfolio", "schema_version": 1,
    "data": {...}}``.

    ``data`` holds ``kpi_id``, ``title`` (the KPI's name in the first workspace by id, else
    the id), ``unit`` and ``higher_is_better`` (shared by the rows, else null), ``grain``,
    ``rank_by``, ``ranked``, ``currency`` (shared currency of a money KPI, else null),
    ``mixed_currency``, ``notes``, ``rows`` (display order; each with ``rank``, workspace,
    values rounded like the ``kpi`` card, ``change`` in percent with 1 decimal, ``direction``,
    ``status``, ``color``, ``sparkline``, ``insight``) and ``missing`` (workspaces without the
    KPI, by id, with the reason).

    Raises ValueError when a row or missing entry is for another KPI, a workspace appears
    twice, or ``rank_by`` / ``grain`` is unknown.
    """
    _check(kpi_id, rows, missing)
    try:
        grain = Grain(grain)
    except ValueError:
        raise ValueError(f"grain must be one of {', '.join(Grain)}; got {grain!r}") from None
    ranking = rank(rows, rank_by)
    by_id = sorted(rows, key=lambda r: r.workspace.id)
    data: dict[str, Any] = {
        "kpi_id": kpi_id,
        "title": by_id[0].title if by_id else kpi_id,
        "unit": _shared([r.unit for r in by_id]),
        "higher_is_better": _shared([r.higher_is_better for r in by_id]),
        "grain": str(grain),
        "rank_by": str(RankBy(rank_by)),
        "ranked": ranking.ranked,
        "currency": ranking.currency,
        "mixed_currency": ranking.mixed_currency,
        "notes": list(ranking.notes),
        "rows": [_row_json(r, p) for r, p in zip(ranking.rows, ranking.ranks, strict=True)],
        "missing": [{"workspace": m.workspace.id, "workspace_name": m.workspace.name,
                     "reason": m.reason}
                    for m in sorted(missing, key=lambda m: m.workspace.id)],
    }
    return {"type": "portfolio", "schema_version": SCHEMA_VERSION, "data": data}


__all__ = [
    "CURRENCY_SYMBOLS",
    "ISO_4217",
    "MAX_SPARKLINE",
    "MissingKpi",
    "PortfolioRow",
    "RankBy",
    "Ranking",
    "WorkspaceInfo",
    "currency_of",
    "portfolio_widget",
    "rank",
]
