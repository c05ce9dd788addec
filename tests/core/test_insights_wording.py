from __future__ import annotations

import math

import pytest

from kpidash.core.insights.wording import (
    REFERENCE,
    favourable,
    news,
    number,
    percent,
    period_phrase,
    signed,
    verb,
)
from kpidash.model import KPI, Grain

REVENUE = KPI(id="revenue", name="Revenue", unit="$")
CHURN = KPI(id="churn", name="Churn Rate", unit="%", higher_is_better=False)


# ---------------------------------------------------------------- number

@pytest.mark.parametrize(("value", "unit", "expected"), [
    # large: thousands separators, no decimals
    (1234567.0, "", "1,234,567"),
    (12345.6, "", "12,346"),
    (-1234567.0, "", "-1,234,567"),
    # hundreds: one decimal at most, trailing zeros dropped
    (123.45, "", "123.5"),  # 123.45 is 123.4500000000000028… in binary
    (250.0, "", "250"),
    # plain: integers stay integers, others three significant digits
    (42.0, "", "42"),
    (6.123, "", "6.12"),
    (-6.123, "", "-6.12"),
    # small: three decimals, trailing zeros dropped; tiny values read as 0
    (0.04567, "", "0.046"),
    (0.5, "", "0.5"),
    (0.0004, "", "0"),
    (0.0, "", "0"),
    # money: the symbol goes before the number, the sign before the symbol
    (3400.0, "$", "$3,400"),
    (-3400.0, "$", "-$3,400"),
    (12.5, "€", "€12.5"),
    (1500.0, "£", "£1,500"),
    # percent units stick to the number
    (6.1, "%", "6.1%"),
    (6.1, "percent", "6.1%"),
    (6.1, " pct ", "6.1%"),
    # other units follow after a space
    (12.0, "ms", "12 ms"),
    (2500.0, "users", "2,500 users"),
])
def test_number(value: float, unit: str, expected: str) -> None:
    assert number(value, unit) == expected


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_number_not_available(value: float | None) -> None:
    assert number(value) == "n/a"
    assert number(value, "$") == "n/a"


# ---------------------------------------------------------------- percent, signed

@pytest.mark.parametrize(("fraction", "expected"), [
    (0.1423, "14%"),
    (-0.1423, "14%"),   # the verb carries the direction
    (0.10, "10%"),
    (0.012, "1.2%"),
    (-0.05, "5.0%"),
    (1.5, "150%"),
    (0.0, "0.0%"),
])
def test_percent(fraction: float, expected: str) -> None:
    assert percent(fraction) == expected


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (1200.0, "", "+1,200"),
    (-1200.0, "", "−1,200"),
    (-3400.0, "$", "−$3,400"),
    (3400.0, "$", "+$3,400"),
    (-0.31, "%", "−0.31 pts"),
    (0.5, "percent", "+0.5 pts"),
    (2.0, "users", "+2 users"),
    (0.0, "", "0"),
    (0.0, "%", "0 pts"),
])
def test_signed(value: float, unit: str, expected: str) -> None:
    assert signed(value, unit) == expected


# ---------------------------------------------------------------- periods

@pytest.mark.parametrize(("label", "grain", "expected"), [
    ("2024-06-29T14:05:00+00:00", Grain.MINUTE, "at 14:05 on 29 Jun 2024"),
    ("2024-06-29T14:00:00+02:00", Grain.HOUR, "at 14:00 on 29 Jun 2024"),  # local wall clock
    ("2024-06-29T00:00:00+00:00", Grain.DAY, "on Sat 29 Jun 2024"),
    ("2024-06-24T00:00:00+00:00", Grain.WEEK, "in the week of 24 Jun 2024"),
    ("2024-06-01T00:00:00+00:00", Grain.MONTH, "in June 2024"),
    ("2024-04-01T00:00:00+00:00", Grain.QUARTER, "in Q2 2024"),
    ("2024-01-01T00:00:00+00:00", Grain.QUARTER, "in Q1 2024"),
    ("2024-12-01T00:00:00+00:00", Grain.QUARTER, "in Q4 2024"),
    ("2024-01-01T00:00:00+00:00", Grain.YEAR, "in 2024"),
    ("2024-03-05", Grain.DAY, "on Tue 5 Mar 2024"),  # day without leading zero
])
def test_period_phrase(label: str, grain: Grain, expected: str) -> None:
    assert period_phrase(label, grain) == expected


def test_every_grain_has_a_phrase_and_a_reference() -> None:
    for grain in Grain:
        assert period_phrase("2024-06-03T00:00:00+00:00", grain)
        assert REFERENCE[grain] == f"the {grain.value} before"


# ---------------------------------------------------------------- good news / bad news

@pytest.mark.parametrize(("kpi", "change", "word", "tail", "good"), [
    # churn: lower is better
    (CHURN, -0.4, "fell", " — good news", True),
    (CHURN, +0.4, "rose", " — worth a look", False),
    # revenue: higher is better
    (REVENUE, +100.0, "rose", " — good news", True),
    (REVENUE, -100.0, "fell", " — worth a look", False),
    # no move: no verdict
    (REVENUE, 0.0, "held steady", "", False),
    (CHURN, 0.0, "held steady", "", False),
])
def test_verb_and_news_know_good_from_bad(kpi: KPI, change: float, word: str, tail: str,
                                          good: bool) -> None:
    assert verb(change, kpi) == word
    assert news(change, kpi) == tail
    assert favourable(change, kpi) is good
