"""Session events between gateways and workers: an `EventBroker` that any gateway can subscribe through.

A session publishes every event it emits: durable ones with their `seq` (finals, annotations, findings, alerts,
session_end...), partial captions with `seq=None`. A subscriber names a session and the last seq it already has
(`after_seq`, -1 for none) and gets, in seq order, the retained durable events after it and then the live ones,
with no gap and no duplicate at the boundary. Two implementations:

  InProcessBroker   the default (no server): one process, the events of the sessions it runs;
  RedisBroker       Redis Streams (pipelines/broker_redis.py), so that a subscriber on any gateway gets any
                    session's events; chosen over NATS JetStream by measurement (docs/broker.md).

Both share `Subscription`, which holds the overflow policy of pipelines/bus.py: a bounded queue per subscriber;
partial captions are dropped (and counted) when it is full, the next partial replaces them anyway; a durable event
that does not fit ends the subscription with `end_reason == "overflow"`, and the client resumes with the last seq
it got. A hole in the seqs (events trimmed by retention, or never published because the broker was unreachable
for longer than the outbox holds) is not hidden: a `{"type": "gap", "after_seq", "next_seq"}` marker precedes the
next event, and the store (`/events?after_seq=`) has the missing ones. Partials travel outside the retained log
(they must never fill retention); each is tagged with the seq of the durable event emitted just before it, so a
subscriber keeps the session's emission order: a partial overtaken by a later durable event is stale and
dropped, one that arrives early waits (briefly, bounded) for the durable event it follows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 512  # as SessionBus: about a minute of a busy session's events
MAX_EARLY_PARTIALS = 16  # partials held while the durable event they follow is still on its way


def is_partial(event: dict[str, Any]) -> bool:
    """Partial captions are the only non-durable events (pipelines/session.py gives every other one a seq)."""
    return event.get("type") == "transcript" and event.get("kind") == "partial"


@dataclass
class BrokerStats:
    """Counters a deployment exports: nothing is lost without one of these moving."""

    published: int = 0  # durable events the broker accepted
    duplicates: int = 0  # durable publishes of a (session, seq) it already had
    durable_dropped: int = 0  # durable events that could not be handed to the broker in time (logged)
    partials_dropped: int = 0  # partials not sent (outbox full or broker down); they are superseded anyway
    publish_errors: int = 0  # failed attempts (connection lost, server error); retried
    reconnects: int = 0  # times a reader or the sender got the connection back after losing it


class Subscription:
    """One subscriber's bounded view of a session: an async iterator of events that ends on session_end,
    on overflow or when closed (then `end_reason` says which).

    Two queues: the replay (retained events the subscriber asked for, handed over in seq order at the pace it
    reads them: the in-process broker passes references to what it retains, the Redis reader fetches a page at
    a time while this one is short) and the live queue (bounded by `max_queue`, the overflow policy above)."""

    def __init__(self, session_id: str, after_seq: int = -1, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.session_id = session_id
        self.last_seq = after_seq  # the last durable seq handed to this subscriber (or that it already had)
        self.max_queue = max_queue
        self.replay: deque[dict[str, Any]] = deque()
        self.queue: deque[dict[str, Any]] = deque()
        self.dropped_partials = 0
        self.stale_partials = 0
        self.duplicates = 0
        self.gaps = 0
        self.end_reason: str | None = None
        self._early: deque[tuple[int, dict[str, Any]]] = deque()
        self._wake = asyncio.Event()
        self._read = asyncio.Event()  # set whenever the reader takes an event (the replay may be refilled)
        self._on_close: list[Callable[[], Any]] = []

    @property
    def overflowed(self) -> bool:
        return self.end_reason == "overflow"

    @property
    def done(self) -> bool:
        """No more events will be accepted (the reader may still drain what is queued)."""
        return self.end_reason is not None

    # -- fed by the broker --------------------------------------------------------------------------------------
    def offer(self, seq: int, event: dict[str, Any], *, replay: bool = False) -> None:
        """A durable event, in seq order; duplicates and seqs the subscriber already has are skipped.
        `replay`: retained history, queued without the live bound (the broker paces it)."""
        if self.done:
            return
        if seq <= self.last_seq:
            self.duplicates += 1
            return
        if seq > self.last_seq + 1:
            self.gaps += 1
            gap = {"type": "gap", "session_id": self.session_id, "after_seq": self.last_seq, "next_seq": seq}
            if not self._put(gap, replay):
                return
        if not self._put(event, replay):
            return
        self.last_seq = seq
        while self._early and self._early[0][0] <= seq:
            after, partial = self._early.popleft()
            self.offer_partial(after, partial)
        if event.get("type") == "session_end":
            self.finish("session_end")

    def offer_partial(self, after: int, event: dict[str, Any]) -> None:
        """A partial caption emitted right after durable seq `after`."""
        if self.done:
            return
        if after < self.last_seq:  # a later durable event is already queued: showing this would go back
            self.stale_partials += 1
        elif after > self.last_seq:
            if len(self._early) >= MAX_EARLY_PARTIALS:
                self._early.popleft()
                self.dropped_partials += 1
            self._early.append((after, event))
        elif len(self.queue) >= self.max_queue:
            self.dropped_partials += 1
        else:
            self.queue.append(event)
            self._wake.set()

    def _put(self, event: dict[str, Any], replay: bool) -> bool:
        if replay and not self.queue:
            self.replay.append(event)
        elif len(self.queue) >= self.max_queue:
            # the reader learns at once why it stops; it resumes from the last seq it consumed
            self.replay.clear()
            self.queue.clear()
            self.finish("overflow")
            return False
        else:
            self.queue.append(event)
        self._wake.set()
        return True

    def finish(self, reason: str) -> None:
        """No more events: after what is queued (nothing, on overflow) the iteration stops."""
        if self.end_reason is None:
            self.end_reason = reason
            self._early.clear()
            self._wake.set()
            self._read.set()
            for cb in self._on_close:
                cb()

    async def replay_below(self, n: int) -> None:
        """Wait until fewer than `n` replayed events are waiting to be read (or the subscription ended)."""
        while len(self.replay) >= n and not self.done:
            self._read.clear()
            await self._read.wait()

    # -- read by the API ------------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            if self.replay or self.queue:
                self._read.set()
                return self.replay.popleft() if self.replay else self.queue.popleft()
            if self.end_reason is not None:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()

    async def aclose(self) -> None:
        """Stop following (the reader is gone); idempotent."""
        self.finish("closed")
        self.replay.clear()
        self.queue.clear()


class EventBroker(Protocol):
    """What sessions publish to and API subscribers read from (see the module docstring)."""

    stats: BrokerStats

    async def publish(self, session_id: str, seq: int | None, event: dict[str, Any]) -> None:
        """Hand over one event: `seq` for durable events, None for partials. Returns quickly: at worst after
        the outbox's stated wait, never blocked on an unreachable broker."""
        ...

    def subscribe(self, session_id: str, after_seq: int = -1,
                  max_queue: int = DEFAULT_MAX_QUEUE) -> Subscription:
        """Retained durable events after `after_seq`, then live ones (and partials), in order."""
        ...

    async def flush(self, within_s: float = 5.0) -> bool:
        """Wait until everything published so far has reached the broker; False if not within `within_s`."""
        ...

    async def close(self) -> None:
        """Flush briefly, end every subscription ("closed"), release connections. Idempotent."""
        ...


@dataclass
class _SessionLog:
    retained: deque[tuple[int, dict[str, Any]]]
    subscribers: list[Subscription] = field(default_factory=list)
    last_seq: int = -1
    ended_at: float | None = None


class InProcessBroker:
    """The default broker: the events of this process's sessions, no server. Publishing fans out without an
    await, and a new subscriber's replay is queued in the same step as its registration, so replay and live
    join with no gap and no duplicate.

    Retention is bounded twice: `retention` durable events per session (older ones are in the store), and
    `max_sessions` logs, the longest-ended dropped first (then the least recently published); an ended
    session's log is kept `ended_ttl_s` for late resumes."""

    def __init__(self, retention: int = 20_000, max_sessions: int = 1_000, ended_ttl_s: float = 300.0) -> None:
        self.retention = retention
        self.max_sessions = max_sessions
        self.ended_ttl_s = ended_ttl_s
        self.stats = BrokerStats()
        self._logs: OrderedDict[str, _SessionLog] = OrderedDict()
        self._closed = False

    def _log(self, session_id: str) -> _SessionLog:
        lg = self._logs.get(session_id)
        if lg is None:
            lg = self._logs[session_id] = _SessionLog(deque(maxlen=self.retention))
            self._evict()
        return lg

    def _evict(self) -> None:
        now = time.monotonic()
        for sid, lg in list(self._logs.items()):
            if lg.ended_at is not None and now - lg.ended_at > self.ended_ttl_s and not lg.subscribers:
                del self._logs[sid]
        while len(self._logs) > self.max_sessions:
            ended = [(lg.ended_at, sid) for sid, lg in self._logs.items() if lg.ended_at is not None]
            sid = min(ended)[1] if ended else next(iter(self._logs))
            for sub in self._logs.pop(sid).subscribers:
                sub.finish("evicted")

    async def publish(self, session_id: str, seq: int | None, event: dict[str, Any]) -> None:
        if self._closed:  # a session still ending while the process shuts down: counted, never raised at it
            if seq is None:
                self.stats.partials_dropped += 1
            else:
                self.stats.durable_dropped += 1
            return
        lg = self._log(session_id)
        self._logs.move_to_end(session_id)
        if seq is None:
            for sub in list(lg.subscribers):
                sub.offer_partial(lg.last_seq, event)
            return
        if seq <= lg.last_seq:
            self.stats.duplicates += 1
            return
        lg.retained.append((seq, event))
        lg.last_seq = seq
        self.stats.published += 1
        if event.get("type") == "session_end":
            lg.ended_at = time.monotonic()
        for sub in list(lg.subscribers):
            sub.offer(seq, event)

    def subscribe(self, session_id: str, after_seq: int = -1,
                  max_queue: int = DEFAULT_MAX_QUEUE) -> Subscription:
        sub = Subscription(session_id, after_seq, max_queue)
        if self._closed:
            sub.finish("closed")
            return sub
        lg = self._log(session_id)
        for seq, ev in lg.retained:  # retained is in seq order: skip what the subscriber has
            if seq > after_seq:
                sub.offer(seq, ev, replay=True)
        if not sub.done:
            lg.subscribers.append(sub)
            sub._on_close.append(lambda: lg.subscribers.remove(sub) if sub in lg.subscribers else None)
        return sub

    async def flush(self, within_s: float = 5.0) -> bool:
        return True  # nothing is ever in flight

    async def close(self) -> None:
        self._closed = True
        for lg in self._logs.values():
            for sub in list(lg.subscribers):
                sub.finish("closed")
        self._logs.clear()


def broker_kind(url: str | None) -> str:
    """"inprocess", "redis" or "nats" from a `broker_url` setting; ValueError for anything else."""
    if not url:
        return "inprocess"
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        return "redis"
    if scheme in ("nats", "tls"):
        return "nats"
    raise ValueError(f"broker_url must be redis://, rediss:// or empty (in-process), not {url!r}")


def make_broker(url: str | None, **options: Any) -> EventBroker:
    """The broker for the `broker_url` setting: None or "" -> in-process; redis://host:port/db -> Redis Streams.

    nats:// is refused with the reason: JetStream was measured and not chosen (docs/broker.md)."""
    kind = broker_kind(url)
    if kind == "inprocess":
        return InProcessBroker(**options)
    if kind == "nats":
        raise ValueError("NATS JetStream was measured but not chosen; use a redis:// broker_url "
                         "(docs/broker.md)")
    from pipelines.broker_redis import RedisBroker  # the client library is only needed here

    assert url is not None
    return RedisBroker(url, **options)

