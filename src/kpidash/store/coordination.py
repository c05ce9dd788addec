"""What server processes sharing one store tell each other, and who leads.

Several ``kpidash serve`` workers on one PostgreSQL database each keep caches (renders, KPI
registries, account lookups) and serve their own live clients. A store offers them:

* **messages** — :meth:`Store.publish` sends a short text to every process listening on the
  same database (:meth:`Store.listen`), the sender included. Sent inside a transaction it
  is delivered only if and when that transaction commits (PostgreSQL's ``NOTIFY``), so a
  message never announces a write that was rolled back.
* **leadership** — :meth:`Store.leadership` is a named lock that at most one process holds
  at a time (PostgreSQL's session advisory lock): the background refresher ticks alerts only
  while it holds it. The lock goes with its holder: a process that dies or loses its
  connection releases it, and another takes it on its next try.

An embedded DuckDB file is opened by one process, so its implementations here are the
trivial ones: nobody else to tell (:class:`NoListener`), always the leader
(:class:`SoleLeader`). ``Store.shared`` says which kind a store is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

MAX_MESSAGE_BYTES = 7900
"""Largest message :meth:`Store.publish` takes, in UTF-8 bytes (PostgreSQL's NOTIFY payload
limit is 8000 bytes). Larger announcements must be summarised by the caller."""

OnMessage = Callable[[str | None], None]
"""Called from the listener's thread with each message, or with None after the connection
was lost and re-established (messages sent meanwhile are lost: drop what they would have
invalidated)."""


class Listener(Protocol):
    def close(self) -> None:
        """Stop listening (no call of the callback starts after this returns)."""
        ...


class Leadership(Protocol):
    def acquire(self) -> bool:
        """Whether this process leads now: takes the lock when it is free, and checks that
        a lock already held still is (its connection alive). Cheap enough to call on every
        tick; never blocks waiting for another holder."""
        ...

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...


class NoListener:
    """The listener of a store no other process opens: nothing ever arrives."""

    def close(self) -> None:
        return None


class SoleLeader:
    """The leadership of a store no other process opens: always held."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


def check_message(message: str) -> None:
    """ValueError for a message longer than :data:`MAX_MESSAGE_BYTES`."""
    size = len(message.encode())
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"a store message holds at most {MAX_MESSAGE_BYTES} bytes, got {size}")


class LocalCoordination:
    """Mixed into the DuckDB store: one process, nobody to tell."""

    shared = False

    def publish(self, message: str) -> None:
        check_message(message)

    def listen(self, on_message: OnMessage) -> Listener:
        return NoListener()

    def leadership(self, name: str) -> Leadership:
        return SoleLeader()


__all__ = ["MAX_MESSAGE_BYTES", "Leadership", "Listener", "LocalCoordination", "NoListener",
           "OnMessage", "SoleLeader", "check_message"]
