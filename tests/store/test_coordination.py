"""Quota state and coordination between processes (store/coordination.py,
store/duckdb/quota_state.py): every Store implementation (the ``store`` fixture) keeps quota
state; the shared one (PostgreSQL) delivers messages to every listener, only for committed
transactions, and lets one holder at a time lead."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from kpidash.core.quota import QuotaState, TokenBucket
from kpidash.store.base import Store
from kpidash.store.coordination import MAX_MESSAGE_BYTES

NOW = datetime(2024, 2, 1, 12, tzinfo=UTC)


# -- quota state ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [
    QuotaState(),
    QuotaState(TokenBucket(Fraction(1200), NOW), None),
    QuotaState(TokenBucket(Fraction(-7, 3), NOW + timedelta(microseconds=1)), 41),
    QuotaState(None, 10**15),
], ids=["empty", "full-bucket", "fraction-and-count", "count-only"])
def test_quota_state_round_trips_exactly(store: Store, state: QuotaState) -> None:
    assert store.quota_state("default") == QuotaState()
    store.put_quota_state("default", state)
    assert store.quota_state("default") == state
    with store.transaction():
        assert store.quota_state("default", lock=True) == state


def test_quota_state_is_per_workspace_and_goes_with_it(store: Store) -> None:
    store.create_workspace("acme", "Acme", None, NOW)
    store.put_quota_state("acme", QuotaState(TokenBucket(Fraction(5), NOW), 3))
    assert store.quota_state("default") == QuotaState()
    store.put_quota_state("acme", QuotaState(TokenBucket(Fraction(4), NOW), 9))  # replaced
    assert store.quota_state("acme") == QuotaState(TokenBucket(Fraction(4), NOW), 9)
    store.delete_workspace("acme")
    assert store.quota_state("acme") == QuotaState()


def test_quota_state_write_rolls_back(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.quota_state("default", lock=True)
        store.put_quota_state("default", QuotaState(None, 7))
        raise RuntimeError("boom")
    assert store.quota_state("default") == QuotaState()


def test_locked_quota_state_serialises_writers(store: Store) -> None:
    """Read-modify-write of the stored count from several threads, each in a transaction
    holding the row: no increment is lost."""
    threads, rounds = 4, 10

    def work() -> None:
        for _ in range(rounds):
            with store.transaction():
                st = store.quota_state("default", lock=True)
                store.put_quota_state("default", QuotaState(None, (st.stored or 0) + 1))

    if not store.shared:  # one process; its store lock serialises its transactions
        work()
        assert store.quota_state("default").stored == rounds
        return
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert store.quota_state("default").stored == threads * rounds


# -- messages ---------------------------------------------------------------------------------


@pytest.fixture
def inbox(store: Store) -> Iterator[queue.Queue[str | None]]:
    got: queue.Queue[str | None] = queue.Queue()
    listener = store.listen(got.put)
    yield got
    listener.close()


def drain(got: queue.Queue[str | None], n: int, timeout: float = 10.0) -> list[str | None]:
    return [got.get(timeout=timeout) for _ in range(n)]


def test_messages_reach_the_listener_in_order(store: Store,
                                              inbox: queue.Queue[str | None]) -> None:
    for i in range(5):
        store.publish(f"m{i}")
    if not store.shared:  # nobody else opens the file: nothing to deliver
        with pytest.raises(queue.Empty):
            inbox.get(timeout=0.2)
        return
    assert drain(inbox, 5) == [f"m{i}" for i in range(5)]


def test_a_message_of_a_rolled_back_transaction_is_never_delivered(
        store: Store, inbox: queue.Queue[str | None]) -> None:
    if not store.shared:
        pytest.skip("a store of one process delivers nothing")
    with pytest.raises(RuntimeError), store.transaction():
        store.publish("rolled back")
        raise RuntimeError("boom")
    with store.transaction():
        store.publish("committed")
        with pytest.raises(queue.Empty):  # not before the commit
            inbox.get(timeout=0.3)
    assert drain(inbox, 1) == ["committed"]
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.3)


def test_a_message_too_long_is_refused(store: Store) -> None:
    store.publish("é" * (MAX_MESSAGE_BYTES // 2))
    with pytest.raises(ValueError, match="at most"):
        store.publish("x" * (MAX_MESSAGE_BYTES + 1))


def test_every_listener_of_the_database_hears_every_sender(store: Store) -> None:
    if not store.shared:
        pytest.skip("a store of one process delivers nothing")
    from kpidash.store.postgres import PostgresStore

    other = PostgresStore(store.url)
    a: queue.Queue[str | None] = queue.Queue()
    b: queue.Queue[str | None] = queue.Queue()
    la, lb = store.listen(a.put), other.listen(b.put)
    try:
        store.publish("from a")
        other.publish("from b")
        assert sorted(drain(a, 2)) == sorted(drain(b, 2)) == ["from a", "from b"]
    finally:
        la.close()
        lb.close()
        other.close()


def test_a_listener_reconnects_and_says_it_may_have_missed_messages(
        store: Store, inbox: queue.Queue[str | None]) -> None:
    if not store.shared:
        pytest.skip("a store of one process has no connection to lose")
    store.publish("before")
    assert drain(inbox, 1) == ["before"]
    store._run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # type: ignore[attr-defined]
               "WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()")
    assert drain(inbox, 1) == [None]  # reconnected: what was sent meanwhile is lost
    store.publish("after")
    assert drain(inbox, 1) == ["after"]


# -- leadership -------------------------------------------------------------------------------


def test_one_leader_at_a_time(store: Store) -> None:
    if not store.shared:
        lead = store.leadership("refresher")
        assert lead.acquire() and lead.acquire()
        lead.release()
        return
    from kpidash.store.postgres import PostgresStore

    other = PostgresStore(store.url)
    try:
        a, b = store.leadership("refresher"), other.leadership("refresher")
        assert a.acquire()
        assert not b.acquire()
        assert a.acquire()  # still held
        assert other.leadership("another name").acquire()  # names are independent
        a.release()
        assert b.acquire()
        assert not a.acquire()
        other.close()  # the holder's process ends: the lock goes with it
        assert a.acquire()
    finally:
        other.close()


def test_leadership_passes_on_when_the_holder_loses_its_connection(store: Store) -> None:
    if not store.shared:
        pytest.skip("a store of one process always leads")
    from kpidash.store.postgres import PostgresStore

    other = PostgresStore(store.url)
    try:
        a, b = store.leadership("refresher"), other.leadership("refresher")
        assert a.acquire() and not b.acquire()
        store._run("SELECT pg_terminate_backend(pid) FROM pg_locks "  # type: ignore[attr-defined]
                   "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()")
        assert b.acquire()  # free the moment its session ended
        assert not a.acquire()  # and the old holder knows it lost it
    finally:
        other.close()
