from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from kpidash.core.insights import InsightType
from kpidash.core.insights.pace import Z80, pace_insight

AT = datetime(2024, 6, 11, tzinfo=UTC)


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def call(**kw: Any) -> Any:
    args: dict[str, Any] = {"kpi_id": "revenue", "name": "Revenue", "unit": "$",
                            "target": 3000.0, "higher_is_better": True, "additive": True,
                            "period_label": "2024-06-01T00:00:00+00:00",
                            "period_words": "in June 2024", "at": AT, "to_date": 1000.0,
                            "elapsed": 10, "remaining_mean": [98.0] * 20,
                            "remaining_low80": [88.0] * 20, "remaining_high80": [108.0] * 20}
    args.update(kw)
    return pace_insight(**args)


def test_z80_is_the_90th_percentile() -> None:
    assert phi(Z80) == pytest.approx(0.9, abs=1e-12)


def test_additive_pace_behind_target() -> None:
    # 10 days done, 1,000 so far; 20 days to go at 98 ± (80 % band 88…108)
    # projected = 1000 + 20 × 98 = 2,960; each day's σ = 20 / (2 × 1.28155) = 7.8030,
    # the sum's σ = √20 × 7.8030 = 34.896; chance = Φ((2960 − 3000) / 34.896) = Φ(−1.1463)
    ins = call()
    assert ins is not None and ins.type is InsightType.PACE
    sd = math.sqrt(20) * 20 / (2 * Z80)
    chance = phi(-40 / sd)
    assert chance == pytest.approx(0.1258, abs=1e-4)
    f = ins.facts
    assert f["projected"] == pytest.approx(2960.0)
    assert f["projected_sd"] == pytest.approx(sd)
    assert f["chance"] == pytest.approx(chance)
    # the rest needs (3000 − 1000) / 20 = 100 a day; so far 1000 / 10 = 100 a day
    assert f["needed"] == pytest.approx(100.0) and f["so_far_rate"] == pytest.approx(100.0)
    assert (f["days_elapsed"], f["days_remaining"], f["additive"]) == (10, 20, True)
    assert ins.text == ("Revenue is on course for $2,960 in June 2024 against a $3,000 target: "
                        "13% chance of reaching it; the rest of the period needs $100 per day "
                        "(so far $100) — worth a look")
    assert ins.significance == pytest.approx(abs(chance - 0.5) * 2)
    assert ins.magnitude == pytest.approx(math.tanh(abs(2960 - 3000) / 3000 / 0.10))
    assert ins.discriminator == "pace" and ins.period == "2024-06-01T00:00:00+00:00"


def test_additive_pace_comfortably_ahead() -> None:
    # projected = 1000 + 20 × 105 = 3,100; chance = Φ(100 / 34.896) = Φ(2.866) ≈ 0.998
    ins = call(remaining_mean=[105.0] * 20, remaining_low80=[95.0] * 20,
               remaining_high80=[115.0] * 20)
    assert ins is not None
    assert ins.facts["chance"] == pytest.approx(phi(100 / (math.sqrt(20) * 20 / (2 * Z80))))
    # above 95 %: no run-rate advice; above 80 %: good news
    assert ins.text == ("Revenue is on course for $3,100 in June 2024 against a $3,000 target: "
                        "100% chance of reaching it — good news")


def test_level_pace_lower_is_better() -> None:
    # churn (%) target 5, lower is better; 10 days at 4 %, 20 days forecast at 5.3 (4.3…6.3)
    # projected = (4 × 10 + 5.3 × 20) / 30 = 146 / 30 = 4.8667
    # σ = √20 × (2 / (2 × 1.28155)) / 30 = 3.48963 / 30 = 0.116321
    # chance of staying within = Φ((5 − 4.8667) / 0.116321) = Φ(1.1463) ≈ 0.874
    # the rest needs (5 × 30 − 4 × 10) / 20 = 5.5 on average
    ins = call(kpi_id="churn", name="Churn", unit="%", target=5.0, higher_is_better=False,
               additive=False, to_date=4.0, remaining_mean=[5.3] * 20,
               remaining_low80=[4.3] * 20, remaining_high80=[6.3] * 20)
    assert ins is not None
    sd = math.sqrt(20) * (2 / (2 * Z80)) / 30
    chance = phi((5 - 146 / 30) / sd)
    assert chance == pytest.approx(0.874, abs=1e-3)
    assert ins.facts["projected"] == pytest.approx(146 / 30)
    assert ins.facts["projected_sd"] == pytest.approx(sd)
    assert ins.facts["chance"] == pytest.approx(chance)
    assert ins.facts["needed"] == pytest.approx(5.5) and ins.facts["so_far_rate"] == 4.0
    assert ins.text == ("Churn is on course for 4.87% in June 2024 against a 5% target: 87% "
                        "chance of staying within it; the rest of the period needs 5.5% on "
                        "average (so far 4%) — good news")


def test_middling_chance_has_no_verdict() -> None:
    # projected exactly on target: chance 0.5, certainty 0
    ins = call(remaining_mean=[100.0] * 20, remaining_low80=[90.0] * 20,
               remaining_high80=[110.0] * 20)
    assert ins is not None
    assert ins.facts["chance"] == pytest.approx(0.5)
    assert ins.significance == pytest.approx(0.0) and ins.magnitude == 0.0
    assert "good news" not in ins.text and "worth a look" not in ins.text
    assert ins.text.endswith("(so far $100)")


def test_no_spread_is_certain() -> None:
    ins = call(remaining_mean=[100.0] * 20, remaining_low80=[100.0] * 20,
               remaining_high80=[100.0] * 20, target=2999.0)
    assert ins is not None and ins.facts["chance"] == 1.0
    ins = call(remaining_mean=[100.0] * 20, remaining_low80=[100.0] * 20,
               remaining_high80=[100.0] * 20, target=3001.0)
    assert ins is not None and ins.facts["chance"] == 0.0 and ins.significance == 1.0


def test_no_pace_without_days_or_data() -> None:
    assert call(remaining_mean=[], remaining_low80=[], remaining_high80=[]) is None
    assert call(elapsed=0) is None
    assert call(to_date=math.nan) is None
    assert call(remaining_mean=[98.0] * 19 + [math.nan]) is None


def test_mismatched_bounds_raise() -> None:
    with pytest.raises(ValueError):
        call(remaining_low80=[88.0] * 19)
