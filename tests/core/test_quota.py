"""Workspace quotas: effective limits, the ingest token bucket (time injected) and the
refusals with their messages and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as hs
from pydantic import ValidationError

from kpidash.core.quota import (
    PERMANENT_RETRY_AFTER,
    QuotaLimits,
    QuotaState,
    TokenBucket,
    check_kpis,
    check_points,
    check_rate,
)
from kpidash.errors import QuotaExceeded

T0 = datetime(2024, 7, 1, 6, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- limits ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("own", "default", "effective"), [
    ({}, {}, {}),
    ({}, {"max_kpis": 5}, {"max_kpis": 5}),
    ({"max_kpis": 9}, {"max_kpis": 5}, {"max_kpis": 9}),
    ({"max_points": 100}, {"max_kpis": 5, "ingest_points_per_minute": 60},
     {"max_kpis": 5, "max_points": 100, "ingest_points_per_minute": 60}),
    ({"ingest_points_per_minute": 1}, {"ingest_points_per_minute": 1000},
     {"ingest_points_per_minute": 1}),
], ids=["none", "default-only", "override-wins", "mixed", "override-lower"])
def test_effective_limits(own: dict[str, int], default: dict[str, int],
                          effective: dict[str, int]) -> None:
    got = QuotaLimits(**own).over(QuotaLimits(**default))
    assert got == QuotaLimits(**effective)


@pytest.mark.parametrize("bad", [{"max_kpis": 0}, {"max_points": -1},
                                 {"ingest_points_per_minute": "60"}, {"max_kpis": True},
                                 {"max_series": 4}],
                         ids=["zero", "negative", "text", "bool", "unknown"])
def test_limits_are_positive_integers(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        QuotaLimits.model_validate(bad)


# -- the token bucket --------------------------------------------------------------------------

def test_bucket_starts_full_refills_continuously_and_is_capped() -> None:
    b = TokenBucket.full(60, T0)
    assert b.level == 60 and b.allows(60) and not b.allows(61)
    b = b.taken(60)
    assert b.available() == 0
    assert b.refilled(at(0.5), 60).level == Fraction(1, 2)  # one point per second
    assert b.refilled(at(30), 60).available() == 30
    assert b.refilled(at(3600), 60).level == 60  # never above one minute's worth


def test_a_lowered_quota_clamps_the_level_and_a_clock_going_back_refills_nothing() -> None:
    b = TokenBucket.full(1000, T0)
    assert b.refilled(at(1), 100).level == 100
    low = TokenBucket(Fraction(10), at(10))
    back = low.refilled(at(5), 60)
    assert back.level == 10 and back.at == at(5)
    assert back.refilled(at(10), 60).level == 15  # the 5 s after the jump back count once


def test_seconds_until_is_rounded_up_and_at_least_one() -> None:
    b = TokenBucket(Fraction(0), T0)
    assert b.seconds_until(10, 60) == 10
    assert b.seconds_until(1, 7) == 9  # 60/7 = 8.57 s
    assert TokenBucket(Fraction(5), T0).seconds_until(5, 60) == 1


@given(per_minute=hs.integers(1, 10**7), level=hs.fractions(0, 1),
       need=hs.floats(0.0, 1.0))
def test_waiting_retry_after_always_suffices(per_minute: int, level: Fraction,
                                             need: float) -> None:
    b = TokenBucket(level * per_minute, T0)
    n = max(1, int(need * per_minute))
    if b.allows(n):
        return
    wait = b.seconds_until(n, per_minute)
    assert b.refilled(at(wait), per_minute).allows(n)
    if wait > 1:  # and it is the shortest whole-second wait
        assert not b.refilled(at(wait - 1), per_minute).allows(n)


def test_quota_state_remembers_its_bucket() -> None:
    q = QuotaState()
    assert q.bucket_at(T0, 60).level == 60
    q.bucket = q.bucket_at(T0, 60).taken(60)
    assert q.bucket_at(at(6), 60).level == 6 and q.bucket is not None and q.bucket.at == at(6)


# -- refusals ----------------------------------------------------------------------------------

def test_rate_refusal_says_when_to_retry() -> None:
    bucket = TokenBucket(Fraction(150), T0)
    check_rate("acme", bucket, 150, 1000)  # fits
    with pytest.raises(QuotaExceeded) as exc:
        check_rate("acme", bucket, 600, 1000)
    e = exc.value
    assert (e.workspace, e.quota, e.limit, e.needed) == ("acme", "ingest_points_per_minute",
                                                         1000, 600)
    assert e.retry_after == 27  # 450 missing at 1000/60 per second = 27 s
    assert str(e) == (
        "workspace 'acme' is over its ingest_points_per_minute quota of 1,000 points: this "
        "request carries 600 points and 150 may be sent now; nothing was written. Retry in "
        "27 s (Retry-After), send smaller batches, or ask a server administrator to raise "
        "the quota")


def test_a_batch_larger_than_a_minute_is_told_to_split() -> None:
    with pytest.raises(QuotaExceeded) as exc:
        check_rate("acme", TokenBucket(Fraction(40), T0), 5000, 100)
    assert exc.value.retry_after == PERMANENT_RETRY_AFTER  # waiting does not help
    assert "(the first may be sent in 36 s)" in str(exc.value)  # when the bucket is full
    assert "carries 5,000 points, more than a minute allows" in str(exc.value)
    assert "split it into batches of at most 100 points" in str(exc.value).lower()


def test_an_upload_of_unknown_size_needs_one_token() -> None:
    check_rate("acme", TokenBucket(Fraction(1), T0), None, 60)
    with pytest.raises(QuotaExceeded, match="this upload's points are counted as it is read "
                       "and 0 may be sent now") as exc:
        check_rate("acme", TokenBucket(Fraction(1, 2), T0), None, 60)
    assert exc.value.retry_after == 1


def test_points_refusal_is_permanent_and_says_how_to_fix_it() -> None:
    check_points("acme", 900, 1000, 1000, 100)  # exactly at the limit fits
    with pytest.raises(QuotaExceeded) as exc:
        check_points("acme", 900, 1001, 1000, 101)
    e = exc.value
    assert (e.quota, e.limit, e.needed, e.retry_after) == ("max_points", 1000, 1001,
                                                           PERMANENT_RETRY_AFTER)
    assert str(e) == (
        "workspace 'acme' would exceed its max_points quota of 1,000 stored points: it stores "
        "900 and this request of 101 points would bring it to 1,001; nothing was written. "
        "Delete data (DELETE /kpis/{kpi_id}?purge=true) or ask a server administrator to "
        "raise the quota")


@pytest.mark.parametrize(("existing", "requested", "limit", "refused"), [
    (["a", "b"], ["c"], 3, False),
    (["a", "b", "c"], ["d"], 3, True),
    (["a", "b", "c"], ["a", "c"], 3, False),  # replacing is always allowed
    (["a", "b", "c", "d"], ["a"], 3, False),  # even over a lowered limit
    (["a"], ["b", "c", "c"], 3, False),  # an id twice counts once
    ([], ["a", "b"], 1, True),
], ids=["fits", "one-too-many", "replace", "replace-over-lowered", "duplicate", "batch"])
def test_kpi_count(existing: list[str], requested: list[str], limit: int,
                   refused: bool) -> None:
    if not refused:
        check_kpis("acme", existing, requested, limit)
        return
    with pytest.raises(QuotaExceeded) as exc:
        check_kpis("acme", existing, requested, limit)
    assert exc.value.quota == "max_kpis" and exc.value.retry_after == PERMANENT_RETRY_AFTER
    assert f"max_kpis quota of {limit} KPI definitions" in str(exc.value)


def test_kpi_refusal_names_the_new_ids() -> None:
    with pytest.raises(QuotaExceeded) as exc:
        check_kpis("acme", ["a"], [f"k{i}" for i in range(7)], 2)
    assert str(exc.value) == (
        "workspace 'acme' would exceed its max_kpis quota of 2 KPI definitions: it has 1 and "
        "this request adds 7 new (k0, k1, k2, k3, k4 and 2 more); nothing was stored. Delete "
        "KPIs (DELETE /kpis/{kpi_id}) or ask a server administrator to raise the quota")
    assert exc.value.needed == 8
