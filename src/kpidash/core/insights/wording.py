"""How insights read: numbers with units, periods in words, verbs that know good from bad.

Kept in one place so every insight sounds the same: "Churn Rate fell 14% in the week of
24 Jun 2024, to 6.1 % — good news"."""

from __future__ import annotations

import math
from datetime import datetime

from kpidash.model import KPI, Grain

_PERCENT_UNITS = frozenset({"%", "percent", "pct"})


def number(value: float | None, unit: str = "") -> str:
    """1,234,567 · 123.5 · 6.12 · 0.046; percent units stick to the number (6.1%)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    a = abs(value)
    if a >= 1000:
        text = f"{value:,.0f}"
    elif a >= 100:
        text = f"{value:,.1f}".rstrip("0").rstrip(".")
    elif float(value).is_integer():
        text = f"{value:.0f}"
    elif a < 0.001:
        text = "0"
    elif a < 1:
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:.3g}"
    if not unit:
        return text
    if unit.strip() in _PERCENT_UNITS:
        return f"{text}%"
    if unit in ("$", "€", "£"):
        return f"{'-' if value < 0 else ''}{unit}{text.lstrip('-')}"
    return f"{text} {unit}"


def percent(fraction: float) -> str:
    """0.1423 → '14%'; small moves keep a decimal: 0.012 → '1.2%'."""
    p = abs(fraction) * 100
    return f"{p:.0f}%" if p >= 10 else f"{p:.1f}%"


def signed(value: float, unit: str = "") -> str:
    """A difference: '+1,200', '−$3,400'; for percent KPIs in points ('−0.31 pts')."""
    sign = "+" if value > 0 else "−" if value < 0 else ""
    if unit.strip() in _PERCENT_UNITS:
        return f"{sign}{number(abs(value))} pts"
    return sign + number(abs(value), unit)


def rate(pct: float) -> str:
    """A signed percent rate with a true minus sign: '+0.53%', '−1.2%', '0%'."""
    if not math.isfinite(pct) or abs(pct) < 0.005:
        return "0%"
    return f"{'+' if pct > 0 else '−'}{abs(pct):.2g}%"


def verb(change: float, kpi: KPI) -> str:
    """rose / fell (an increase of a higher-is-better KPI is good, of churn bad)."""
    return "rose" if change > 0 else "fell" if change < 0 else "held steady"


def news(change: float, kpi: KPI) -> str:
    """' — good news' when the move is favourable for the KPI, ' — worth a look' when not."""
    if change == 0:
        return ""
    good = (change > 0) == kpi.higher_is_better
    return " — good news" if good else " — worth a look"


def favourable(change: float, kpi: KPI) -> bool:
    return change != 0 and (change > 0) == kpi.higher_is_better


def period_phrase(label: str, grain: Grain) -> str:
    """A period (its local ISO label) in words: 'on 29 Jun 2024', 'in the week of 24 Jun 2024',
    'in June 2024', 'in Q2 2024', 'in 2024', 'at 14:00 on 29 Jun 2024'."""
    ts = datetime.fromisoformat(label)
    day = f"{ts.day} {ts:%b %Y}"
    if grain is Grain.MINUTE or grain is Grain.HOUR:
        return f"at {ts:%H:%M} on {day}"
    if grain is Grain.DAY:
        return f"on {ts:%a} {day}"
    if grain is Grain.WEEK:
        return f"in the week of {day}"
    if grain is Grain.MONTH:
        return f"in {ts:%B %Y}"
    if grain is Grain.QUARTER:
        return f"in Q{(ts.month - 1) // 3 + 1} {ts.year}"
    return f"in {ts.year}"


REFERENCE = {Grain.MINUTE: "the minute before", Grain.HOUR: "the hour before",
             Grain.DAY: "the day before", Grain.WEEK: "the week before",
             Grain.MONTH: "the month before", Grain.QUARTER: "the quarter before",
             Grain.YEAR: "the year before"}
