"""The plumbing every session relies on, each on its own: the fan-out's overflow policy (pipelines/bus.py), the
persistence sink's order, retries and duplicate handling against a real SQLite file held locked by another
connection (pipelines/sink.py), and the micro-batching executor (pipelines/batching.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from pipelines.batching import BatchingExecutor, Overloaded
from pipelines.bus import SessionBus
from pipelines.config import SessionConfig
from pipelines.sink import PersistenceSink
from pipelines.store import Store


def _partial(i: int) -> dict:
    return {"type": "transcript", "kind": "partial", "text": f"p{i}"}


def _final(seq: int) -> dict:
    return {"type": "transcript", "kind": "final", "seq": seq, "segment_id": f"c0-{seq:05d}", "text": f"f{seq}"}


async def test_bus_drops_partials_for_a_slow_subscriber_and_ends_it_on_durable_overflow():
    bus = SessionBus(max_queue=3)
    slow, fast = bus.subscribe(), bus.subscribe()
    got: list[dict] = []

    def drain() -> None:  # a subscriber that keeps up
        while not fast.queue.empty():
            got.append(fast.queue.get_nowait())

    bus.publish(_final(0))
    for i in range(5):
        bus.publish(_partial(i))
        drain()
    assert slow.dropped_partials == 3 and not slow.overflowed  # 1 final + 2 partials fit; later partials dropped
    bus.publish(_final(1))  # a durable event that does not fit: the slow subscriber is told and stops
    assert slow.overflowed and slow.queue.qsize() == 1
    assert slow.queue.get_nowait() == {"type": "end", "reason": "overflow"}
    bus.publish(_final(2))
    assert slow.queue.empty()  # nothing more for an overflowed subscriber (it resumes from the store by seq)
    bus.close()
    drain()
    assert [e.get("text") for e in got] == ["f0", "p0", "p1", "p2", "p3", "p4", "f1", "f2", None]  # all of it
    assert got[-1]["type"] == "end" and fast.dropped_partials == 0
    late = bus.subscribe()
    assert late.queue.get_nowait()["type"] == "end"  # subscribing to an ended session ends at once


async def test_sink_writes_in_order_waits_out_a_locked_database_and_skips_duplicates(tmp_path):
    path = tmp_path / "h.db"
    store = Store(f"sqlite:///{path}")
    sink = PersistenceSink(store, batch=4)
    await sink.create_session("s1", SessionConfig(), "scripted@0")
    # another process holds the database: writes fail ("database is locked") until it lets go
    blocker = sqlite3.connect(path, timeout=0, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(6.0, blocker.rollback)
    release.start()
    t0 = time.monotonic()
    for seq in range(10):
        await sink.put("s1", seq, _final(seq))
    await sink.replace("s1", 3, {**_final(3), "text": "####", "redacted": True})
    await sink.put("s1", 3, _final(3))  # the same seq again (a retried publish): the stored one is kept
    await asyncio.wait_for(sink.flush(), 60)
    release.join()
    blocker.close()
    events = store.events("s1")
    assert [e["seq"] for e in events] == list(range(10))  # nothing lost while the database was locked
    assert events[3]["text"] == "####"  # the redaction, applied after the caption it rewrites
    assert sink.write_errors >= 1 and time.monotonic() - t0 >= 5.0
    await sink.stop()
    store.close()


async def test_batching_executor_batches_concurrent_requests_and_rejects_past_its_queue():
    seen: list[int] = []
    gate = threading.Event()

    def double(items):
        gate.wait(5)
        seen.append(len(items))
        return [2 * x for x in items]

    ex = BatchingExecutor(double, name="t-batch", max_batch=8, max_wait_s=0.01, max_queue=4)
    try:
        first = asyncio.ensure_future(ex.submit(1))  # the worker takes it and waits on the gate
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(ex.submit(i)) for i in range(2, 6)]  # queued behind it: one batch later
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await ex.submit(99)  # the queue (4) is full: the caller degrades instead of growing a backlog
        gate.set()
        assert await first == 2
        assert await asyncio.gather(*rest) == [4, 6, 8, 10]
        assert seen == [1, 4] and ex.stats.rejected == 1
    finally:
        ex.close()


async def test_a_failing_batch_fails_its_callers_and_the_worker_goes_on():
    calls = {"n": 0}

    def flaky(items):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("model blew up")
        return list(items)

    ex = BatchingExecutor(flaky, name="t-flaky", max_wait_s=0.001)
    try:
        with pytest.raises(ValueError):
            await ex.submit("a")
        assert await ex.submit("b") == "b"
        assert ex.stats.errors == 1
    finally:
        ex.close()
