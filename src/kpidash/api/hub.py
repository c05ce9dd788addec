"""Fan-out of live updates to WebSocket / SSE clients: bounded queues, drop-to-latest.

Each client has its own queue of at most :data:`QUEUE_SIZE` messages. Publishing never
waits: when a client's queue is full the oldest message is dropped to make room (a slow
client misses intermediate states but always gets the latest), and ``dropped`` counts it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 16


class Message(dict[str, Any]):
    """A message offered to many clients, serialised once: :meth:`text` is the JSON that
    ``WebSocket.send_json`` would send, made by the first client's sender and reused by the
    others. Measured with benchmarks/api.py (one ~31 KB dashboard to 500 WebSocket clients):
    ``send_json`` per client encoded it 500 times, ~0.3 ms each (~150 ms of the event loop
    per push)."""

    _text: str | None = None

    def text(self) -> str:
        if self._text is None:
            self._text = json.dumps(self, separators=(",", ":"), ensure_ascii=False)
        return self._text


@dataclass(eq=False)
class Client:
    user: str
    role: str
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE))
    dashboards: set[str] = field(default_factory=set)
    # workspaces whose alert messages it gets: the server's own if the user is a member
    # there, and every workspace it subscribed to a dashboard of
    workspaces: set[str] = field(default_factory=set)
    dropped: int = 0
    id: int = field(default_factory=itertools.count(1).__next__)

    def offer(self, message: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # drop the oldest; the newest state always gets through
            self.dropped += 1
        self.queue.put_nowait(message)


class Hub:
    def __init__(self) -> None:
        self.clients: set[Client] = set()
        self.dropped = 0

    def connect(self, user: str, role: str) -> Client:
        c = Client(user, role)
        self.clients.add(c)
        return c

    def disconnect(self, c: Client) -> None:
        self.clients.discard(c)
        self.dropped += c.dropped

    def subscribed(self) -> set[str]:
        return {d for c in self.clients for d in c.dashboards}

    def publish_dashboard(self, dashboard_id: str, message: dict[str, Any]) -> int:
        n = 0
        for c in list(self.clients):
            if dashboard_id in c.dashboards:
                c.offer(message)
                n += 1
        return n

    def publish_all(self, message: dict[str, Any]) -> int:
        for c in list(self.clients):
            c.offer(message)
        return len(self.clients)
