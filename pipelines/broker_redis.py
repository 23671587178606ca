"""`EventBroker` on Redis Streams: any gateway follows any session's events (docs/broker.md says why Redis).

Layout (prefix `harken`):
  harken:events:<session_id>    a stream of the session's durable events; entry id `<seq>-1`, field `e` = JSON.
                                Redis refuses an id not above the stream's last one, so a re-published
                                (session, seq) is stored once, for the stream's whole life (not a time window).
                                Trimmed to about `retention` entries (MAXLEN ~); the key expires `ttl_s` after the
                                session's last event (the store keeps everything for good).
  harken:partials:<session_id>  pub/sub channel for partial captions, `{"after": seq, "event": {...}}`: never
                                retained, so they cannot fill memory; lost while nobody listens, by design.

Publishing goes through a bounded outbox and one sender task that pipelines up to `page` commands per round
trip, in emission order. Policy when Redis is slow or gone: the sender retries durable events (with backoff,
the client reconnecting), drops partials; `publish` waits at most `publish_wait_s` for room in a full outbox
while Redis is reachable, and not at all while it is down; an event that finds no room is counted in
`stats.durable_dropped` (or `partials_dropped`) and logged, and subscribers see a gap marker where it would be.
The session itself never waits longer than that: everything durable is persisted by the store regardless.

Each subscription has a reader task that XREADs (BLOCK) from the last seq it queued, a page at a time while it
catches up with retained history (paced by the subscriber), then live; after a lost connection or a Redis
restart it reads again from that same id, so the subscriber gets every retained event once and in order. A
second task listens to the partials channel. Both use their own connection pool, so blocked reads never delay
publishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipelines.broker import DEFAULT_MAX_QUEUE, BrokerStats, Subscription

log = logging.getLogger(__name__)

# errors after which the same command is tried again (BusyLoadingError, while a restarted Redis reads its AOF,
# is a ConnectionError)
RETRYABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)
_MAX_BACKOFF_S = 1.0
_TRACKED_SESSIONS = 10_000  # sessions whose last seq tags partials; oldest forgotten first


@dataclass(slots=True)
class _Item:
    session_id: str
    seq: int | None  # None: a partial
    data: bytes


class RedisBroker:
    """Redis Streams broker; see the module docstring for the layout and the policies."""

    def __init__(self, url: str, *, retention: int = 20_000, ttl_s: float = 3600.0, outbox_max: int = 10_000,
                 publish_wait_s: float = 2.0, page: int = 256, block_ms: int = 1000,
                 prefix: str = "harken") -> None:
        self.url = url
        self.retention = retention
        self.ttl_s = ttl_s
        self.outbox_max = outbox_max
        self.publish_wait_s = publish_wait_s
        self.page = page
        self.block_ms = block_ms
        self.prefix = prefix
        self.stats = BrokerStats()
        # the library reconnects and retries a command a few times itself; past that, the loops below retry
        kw: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": block_ms / 1000 + 5.0,
                              "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
                              "retry_on_error": [RedisConnectionError, RedisTimeoutError]}
        self._pub = aioredis.from_url(url, **kw)
        self._read = aioredis.from_url(url, **kw)
        self._outbox: asyncio.Queue[_Item] = asyncio.Queue(maxsize=outbox_max)
        self._pending = 0  # items published and not yet sent or dropped
        self._idle = asyncio.Event()
        self._idle.set()
        self._sender: asyncio.Task | None = None
        self._down_since: float | None = None
        self._last_seq: OrderedDict[str, int] = OrderedDict()
        self._expiry_set: OrderedDict[str, float] = OrderedDict()  # key -> when its TTL was last pushed back
        self._subs: dict[Subscription, list[asyncio.Task]] = {}
        self._closed = False
        self._last_drop_log = -1e18

    def key(self, session_id: str) -> str:
        return f"{self.prefix}:events:{session_id}"

    def channel(self, session_id: str) -> str:
        return f"{self.prefix}:partials:{session_id}"

    # -- publishing -----------------------------------------------------------------------------------------------
    async def publish(self, session_id: str, seq: int | None, event: dict[str, Any]) -> None:
        if self._closed:  # a session still ending while the process shuts down: counted, never raised at it
            self._dropped(session_id, seq, "closed")
            return
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_loop(), name="broker-redis-sender")
        if seq is None:
            after = self._last_seq.get(session_id, -1)
            item = _Item(session_id, None, _dumps({"after": after, "event": event}))
            if not self._try_put(item):
                self.stats.partials_dropped += 1
            return
        self._last_seq[session_id] = seq
        self._last_seq.move_to_end(session_id)
        if len(self._last_seq) > _TRACKED_SESSIONS:
            self._last_seq.popitem(last=False)
        item = _Item(session_id, seq, _dumps(event))
        if self._try_put(item):
            return
        if self._down_since is None:  # reachable but behind: a short wait absorbs a burst
            self._pending += 1
            self._idle.clear()
            try:
                await asyncio.wait_for(self._outbox.put(item), self.publish_wait_s)
                return
            except TimeoutError:
                self._done(1)
        self._dropped(session_id, seq, "down" if self._down_since else "slow")

    def _dropped(self, session_id: str, seq: int | None, why: str) -> None:
        """Count an event not handed to Redis; log the durable ones, at most every 10 s (an outage would
        otherwise log every event)."""
        if seq is None:
            self.stats.partials_dropped += 1
            return
        self.stats.durable_dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:
            self._last_drop_log = now
            log.warning("Redis broker %s, outbox of %d full: event %s of session %s not published (it is in "
                        "the store); %d durable events dropped so far", why, self.outbox_max, seq, session_id,
                        self.stats.durable_dropped)

    def _try_put(self, item: _Item) -> bool:
        try:
            self._outbox.put_nowait(item)
        except asyncio.QueueFull:
            return False
        self._pending += 1
        self._idle.clear()
        return True

    def _done(self, n: int) -> None:
        self._pending -= n
        if self._pending <= 0:
            self._pending = 0
            self._idle.set()

    async def _send_loop(self) -> None:
        batch: list[_Item] = []
        backoff = 0.05
        while True:
            if not batch:
                batch.append(await self._outbox.get())
            while len(batch) < self.page and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                retry = await self._send(batch)
            except RETRYABLE as exc:
                retry = batch
                self._lost(exc)
            except Exception:  # a bug must not stop publishing for the whole process: count, log, go on
                durable = sum(1 for it in batch if it.seq is not None)
                self.stats.durable_dropped += durable
                self.stats.partials_dropped += len(batch) - durable
                log.exception("Redis broker could not send %d events", len(batch))
                self._done(len(batch))
                batch = []
                continue
            if retry:
                self.stats.publish_errors += 1
                partials = sum(1 for it in retry if it.seq is None)
                self.stats.partials_dropped += partials  # superseded by the time Redis is back
                self._done(len(batch) - len(retry) + partials)
                batch = [it for it in retry if it.seq is not None]
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            if self._down_since is not None:
                log.info("Redis broker reachable again after %.1f s", time.monotonic() - self._down_since)
                self._down_since = None
                self.stats.reconnects += 1
            backoff = 0.05
            self._done(len(batch))
            batch = []

    def _lost(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("Redis broker unreachable (%s); retrying, partials dropped meanwhile", exc)

    async def _send(self, batch: list[_Item]) -> list[_Item]:
        """One pipelined round trip; returns the items to try again (a connection-level failure)."""
        pipe = self._pub.pipeline(transaction=False)
        keys: set[str] = set()
        for it in batch:
            if it.seq is None:
                pipe.publish(self.channel(it.session_id), it.data)
            else:
                key = self.key(it.session_id)
                keys.add(key)
                pipe.xadd(key, {"e": it.data}, id=f"{it.seq}-1", maxlen=self.retention, approximate=True)
        # push the expiry back about every tenth of the TTL, not with every event (half the commands at low rate)
        now = time.monotonic()
        expiring = [k for k in keys if now - self._expiry_set.get(k, -1e18) > self.ttl_s / 10]
        for key in expiring:
            pipe.expire(key, int(self.ttl_s))
        results = await pipe.execute(raise_on_error=False)
        for key, res in zip(expiring, results[len(batch):], strict=True):
            if not isinstance(res, Exception):  # else tried again with the key's next batch
                self._expiry_set[key] = now
                self._expiry_set.move_to_end(key)
        while len(self._expiry_set) > _TRACKED_SESSIONS:
            self._expiry_set.popitem(last=False)
        retry = []
        for it, res in zip(batch, results, strict=False):
            if not isinstance(res, Exception):
                if it.seq is not None:
                    self.stats.published += 1
            elif isinstance(res, RETRYABLE):
                self._lost(res)
                retry.append(it)
            elif it.seq is not None and "equal or smaller" in str(res):
                # already stored (a re-publish, or a retry of a command whose reply the connection lost)
                self.stats.duplicates += 1
            else:  # the server refused it (out of memory, wrong type): retrying would not help
                self.stats.publish_errors += 1
                if it.seq is not None:
                    self.stats.durable_dropped += 1
                log.error("Redis refused event %s of session %s: %s", it.seq, it.session_id, res)
        return retry

    async def flush(self, within_s: float = 5.0) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), within_s)
        except TimeoutError:
            return False
        return True

    # -- subscribing ----------------------------------------------------------------------------------------------
    def subscribe(self, session_id: str, after_seq: int = -1,
                  max_queue: int = DEFAULT_MAX_QUEUE) -> Subscription:
        sub = Subscription(session_id, after_seq, max_queue)
        if self._closed:
            sub.finish("closed")
            return sub
        tasks = [asyncio.create_task(self._follow(sub), name=f"broker-follow-{session_id}"),
                 asyncio.create_task(self._follow_partials(sub), name=f"broker-partials-{session_id}")]
        self._subs[sub] = tasks
        sub._on_close.append(lambda: self._stop(sub))
        return sub

    def _stop(self, sub: Subscription) -> None:
        for t in self._subs.pop(sub, ()):
            if t is not asyncio.current_task():
                t.cancel()

    async def _follow(self, sub: Subscription) -> None:
        """Durable events from `sub.last_seq` on: pages while catching up, then live; resumes after errors."""
        key = self.key(sub.session_id)
        catching_up = True
        backoff = 0.05
        lost = False
        while not sub.done:
            if catching_up:
                await sub.replay_below(self.page)
                if sub.done:
                    return
            start = f"{sub.last_seq}-1" if sub.last_seq >= 0 else "0-0"
            try:
                resp = await self._read.xread({key: start}, count=self.page, block=self.block_ms)
            except RETRYABLE as exc:
                if not lost:
                    log.info("subscriber of session %s lost Redis (%s); resuming after seq %d", sub.session_id,
                             exc, sub.last_seq)
                lost = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            if lost:
                self.stats.reconnects += 1
                lost, backoff = False, 0.05
            entries = resp[0][1] if resp else []
            for entry_id, fields in entries:
                seq = int(entry_id.split(b"-", 1)[0])
                sub.offer(seq, json.loads(fields[b"e"]), replay=catching_up)
                if sub.done:
                    return
            if len(entries) < self.page:
                catching_up = False

    async def _follow_partials(self, sub: Subscription) -> None:
        backoff = 0.05
        while not sub.done:
            pubsub = self._read.pubsub()
            try:
                await pubsub.subscribe(self.channel(sub.session_id))
                backoff = 0.05
                while not sub.done:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        env = json.loads(msg["data"])
                        sub.offer_partial(int(env["after"]), env["event"])
            except RETRYABLE:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sender is not None:
            if not await self.flush(2.0):
                self.stats.durable_dropped += self._outbox.qsize()
                log.warning("closing the Redis broker with %d events unsent", self._pending)
            self._sender.cancel()
            with contextlib.suppress(BaseException):
                await self._sender
        tasks = [t for ts in self._subs.values() for t in ts]
        for sub in list(self._subs):
            sub.finish("closed")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._pub.aclose()
        await self._read.aclose()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode()
