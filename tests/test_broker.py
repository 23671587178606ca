"""The session event broker (pipelines/broker.py): the same behaviour from the in-process default and from Redis
Streams on a real redis-server (tests/broker_servers.py), plus a Redis restart mid-stream."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipelines.broker import EventBroker, InProcessBroker, Subscription, broker_kind, make_broker
from tests.broker_servers import fresh_redis_server, redis_server  # noqa: F401 (fixtures)


def _sid() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def final(sid: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {"type": "transcript", "kind": "final", "session_id": sid, "seq": seq, "segment_id": f"c0-{seq}",
            "text": f"caption number {seq} of the call", **extra}


def partial(sid: str, after: int) -> dict[str, Any]:
    return {"type": "transcript", "kind": "partial", "session_id": sid, "text": "caption in prog",
            "after_durable": after}


@dataclass
class Env:
    """Brokers as separate gateways would hold them (in-process: the one broker of the one process)."""

    kind: str
    url: str | None
    brokers: list[EventBroker] = field(default_factory=list)

    def make(self, **options: Any) -> EventBroker:
        if self.kind == "inprocess" and self.brokers:
            return self.brokers[0]
        b = make_broker(self.url, **options)
        self.brokers.append(b)
        return b


@pytest.fixture(params=["inprocess", "redis"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    e = Env(request.param, url)
    yield e
    for b in e.brokers:
        await b.close()


async def listening(broker: EventBroker, *session_ids: str) -> None:
    """Wait until the broker's subscriptions hear partials (Redis pub/sub delivers only to current listeners)."""
    from pipelines.broker_redis import RedisBroker

    if not isinstance(broker, RedisBroker):
        return
    for sid in session_ids:
        channel = broker.channel(sid)
        for _ in range(500):
            if dict(await broker._pub.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"nobody listens on {channel}")


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    for _ in itertools.count():
        if condition():
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def collect(sub: Subscription, until_seq: int | None = None, timeout_s: float = 30.0) -> list[dict]:
    """Events until the one with `until_seq` (or the end of the subscription)."""
    out: list[dict] = []
    async with asyncio.timeout(timeout_s):
        async for ev in sub:
            out.append(ev)
            if until_seq is not None and ev.get("seq") == until_seq:
                break
    return out


def durable_seqs(events: list[dict]) -> list[int]:
    return [e["seq"] for e in events if "seq" in e]


async def test_order_of_2000_events_over_3_sessions(env: Env) -> None:
    pub, gw = env.make(), env.make()
    sids = [_sid() for _ in range(3)]
    subs = {s: gw.subscribe(s, max_queue=4000) for s in sids}  # the publisher never pauses here
    await listening(gw, *sids)
    readers = {s: asyncio.create_task(collect(subs[s])) for s in sids}
    nxt = dict.fromkeys(sids, 0)
    for i in range(2000):
        s = sids[i % 3]
        if i % 5 == 0:
            await pub.publish(s, None, partial(s, nxt[s] - 1))
        last = i >= 1997
        await pub.publish(s, nxt[s], {"type": "session_end", "session_id": s, "seq": nxt[s]} if last
                          else final(s, nxt[s]))
        nxt[s] += 1
    for s in sids:
        events = await readers[s]
        assert durable_seqs(events) == list(range(nxt[s]))
        assert subs[s].end_reason == "session_end" and subs[s].gaps == 0
        # partials keep their place: each follows exactly the durable event emitted before it
        last_seq = -1
        for ev in events:
            if "seq" in ev:
                last_seq = ev["seq"]
            else:
                assert ev["after_durable"] == last_seq
        assert any("seq" not in ev for ev in events)


async def test_late_subscriber_gets_retained_then_live_without_gap_or_duplicate(env: Env) -> None:
    pub, gw = env.make(), env.make()
    sid, n = _sid(), 1500
    published = 0

    async def producer() -> None:
        nonlocal published
        for seq in range(n):
            await pub.publish(sid, seq, final(sid, seq))
            published = seq + 1
            if seq % 50 == 0:
                await asyncio.sleep(0.005)  # a live session's pace: the subscriber joins mid-stream

    task = asyncio.create_task(producer())
    await eventually(lambda: published >= 500)
    sub = gw.subscribe(sid, after_seq=300)
    events = await collect(sub, n - 1)
    await task
    assert durable_seqs(events) == list(range(301, n))
    assert sub.gaps == 0 and sub.duplicates == 0
    # a late reader of the whole history with a tiny queue is paced, not overflowed
    await pub.flush()
    slow = gw.subscribe(sid, after_seq=-1, max_queue=8)
    got = []
    async with asyncio.timeout(30):
        async for ev in slow:
            got.append(ev["seq"])
            if len(got) % 100 == 0:
                await asyncio.sleep(0)
            if ev["seq"] == n - 1:
                break
    assert got == list(range(n)) and not slow.overflowed


async def test_duplicate_publish_is_delivered_once(env: Env) -> None:
    pub, gw = env.make(), env.make()
    sid = _sid()
    live = gw.subscribe(sid)
    for seq in [*range(10), *range(5, 10), 0, 10, 11]:
        await pub.publish(sid, seq, final(sid, seq))
    assert await pub.flush()
    assert pub.stats.duplicates == 6
    assert durable_seqs(await collect(live, 11)) == list(range(12))
    assert durable_seqs(await collect(gw.subscribe(sid), 11)) == list(range(12))


async def test_slow_subscriber_drops_partials_then_overflows_on_durable(env: Env) -> None:
    pub, gw = env.make(), env.make()
    sid = _sid()
    sub = gw.subscribe(sid, max_queue=8)
    await listening(gw, sid)
    await pub.publish(sid, 0, final(sid, 0))
    assert (await collect(sub, 0))[-1]["seq"] == 0  # caught up: from here on the live bound applies
    for _ in range(20):
        await pub.publish(sid, None, partial(sid, 0))
    await pub.flush()
    await eventually(lambda: sub.dropped_partials + len(sub.queue) >= 20)
    assert len(sub.queue) == 8 and sub.dropped_partials == 12
    for seq in range(1, 51):
        await pub.publish(sid, seq, final(sid, seq))
    await pub.flush()
    await eventually(lambda: sub.overflowed)
    assert await collect(sub) == []  # the reader is told at once, not after a stale backlog
    assert sub.end_reason == "overflow"
    resumed = gw.subscribe(sid, after_seq=0)  # the client resumes from the last seq it got
    assert durable_seqs(await collect(resumed, 50)) == list(range(1, 51))


async def test_two_gateways_both_get_everything(env: Env) -> None:
    pub, gw_a, gw_b = env.make(), env.make(), env.make()
    sids = [_sid(), _sid()]
    subs = [(gw.subscribe(s, max_queue=1000), s) for gw in (gw_a, gw_b) for s in sids]
    for seq in range(300):
        for s in sids:
            await pub.publish(s, seq, final(s, seq))
            if seq == 150 and s == sids[1]:
                subs.append((gw_b.subscribe(s, after_seq=99, max_queue=1000), s))  # one joins late, on the other gateway
    results = await asyncio.gather(*(collect(sub, 299) for sub, _ in subs))
    for events in results[:4]:
        assert durable_seqs(events) == list(range(300))
    assert durable_seqs(results[4]) == list(range(100, 300))


async def test_redis_restart_mid_stream_loses_and_repeats_nothing(fresh_redis_server) -> None:  # noqa: F811
    server = fresh_redis_server
    pub, gw = make_broker(server.url), make_broker(server.url)
    sid, n = _sid(), 600
    sub = gw.subscribe(sid)
    reader = asyncio.create_task(collect(sub, n - 1, timeout_s=60))
    halfway = asyncio.Event()

    async def producer() -> None:
        for seq in range(n):
            await pub.publish(sid, seq, final(sid, seq))
            if seq == 200:
                halfway.set()
            await asyncio.sleep(0.003)

    task = asyncio.create_task(producer())
    try:
        await halfway.wait()
        await asyncio.to_thread(server.stop)  # SIGTERM: Redis writes its append-only file and exits
        await asyncio.sleep(1.0)  # the producer goes on; its outbox holds the events
        await asyncio.to_thread(server.start)  # same port, same data directory
        await task
        events = await reader
        assert durable_seqs(events) == list(range(n))
        assert sub.duplicates == 0 and sub.gaps == 0
        assert pub.stats.durable_dropped == 0 and pub.stats.reconnects >= 1 and gw.stats.reconnects >= 1
    finally:
        task.cancel()
        await pub.close()
        await gw.close()


async def test_redis_retains_durable_events_only_and_expires_them(redis_server) -> None:  # noqa: F811
    broker = make_broker(redis_server.url, ttl_s=600)
    sid = _sid()
    try:
        for seq in range(30):
            await broker.publish(sid, seq, final(sid, seq))
            await broker.publish(sid, None, partial(sid, seq))
        assert await broker.flush()
        r = broker._pub
        assert await r.xlen(broker.key(sid)) == 30  # partials are not in the retained stream
        assert await r.keys(f"*{sid}*") == [broker.key(sid).encode()]
        assert 0 < await r.ttl(broker.key(sid)) <= 600
    finally:
        await broker.close()


async def test_publish_never_blocks_on_an_unreachable_redis() -> None:
    pytest.importorskip("redis")
    from eval.broker_bench import free_port

    broker = make_broker(f"redis://127.0.0.1:{free_port()}/0", outbox_max=5, publish_wait_s=0.2)
    sid = _sid()
    t0 = time.perf_counter()
    for seq in range(40):
        await broker.publish(sid, seq, final(sid, seq))
        await broker.publish(sid, None, partial(sid, seq))
        await asyncio.sleep(0.01)  # let the sender find out that Redis is gone
    assert time.perf_counter() - t0 < 10
    assert broker.stats.durable_dropped >= 20 and broker.stats.partials_dropped >= 20
    assert not await broker.flush(0.1)
    await broker.close()


def test_make_broker_by_url() -> None:
    assert isinstance(make_broker(None), InProcessBroker) and isinstance(make_broker(""), InProcessBroker)
    assert broker_kind("redis://localhost:6379/0") == "redis" and broker_kind("nats://x:4222") == "nats"
    with pytest.raises(ValueError, match="not chosen"):
        make_broker("nats://127.0.0.1:4222")
    with pytest.raises(ValueError):
        make_broker("http://example")
