"""Fan-out of one session's events to live subscribers, each with a bounded queue.

Overflow policy per subscriber: partial captions are dropped (and counted) when its queue is full, since the
next partial replaces them anyway; durable events (finals, annotations, findings, alerts) are never dropped
silently: a subscriber that cannot keep up with those is disconnected with reason "overflow" and can resume
from the REST history (events carry `seq`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

END = {"type": "end"}


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue
    dropped_partials: int = 0
    overflowed: bool = False


@dataclass
class SessionBus:
    max_queue: int = 512
    subscribers: list[Subscriber] = field(default_factory=list)
    closed: bool = False

    def subscribe(self) -> Subscriber:
        sub = Subscriber(asyncio.Queue(maxsize=self.max_queue))
        if self.closed:
            sub.queue.put_nowait(END)
        self.subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    def publish(self, event: dict[str, Any]) -> None:
        is_partial = event.get("type") == "transcript" and event.get("kind") == "partial"
        for sub in list(self.subscribers):
            if sub.overflowed:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                if is_partial:
                    sub.dropped_partials += 1
                    continue
                sub.overflowed = True
                # make room for the terminal marker so the reader learns why it stops
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.queue.put_nowait({"type": "end", "reason": "overflow"})

    def close(self) -> None:
        self.closed = True
        for sub in self.subscribers:
            if sub.overflowed:
                continue
            try:
                sub.queue.put_nowait(END)
            except asyncio.QueueFull:
                sub.queue.get_nowait()
                sub.queue.put_nowait(END)
