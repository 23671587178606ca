"""A micro-batching executor: requests from many sessions run as one batch on a dedicated worker thread (text
classifiers amortise tokenisation and ONNX calls this way). A batch is what queued while the worker was busy,
plus what arrives within `max_wait_s` (1 ms: enough for the requests one utterance submits together) — a longer
fixed wait would add its whole length to every utterance on an idle service.

The queue is bounded; when full, `submit` raises `Overloaded` and the caller degrades (the segment simply gets no
annotation) instead of growing a backlog behind a slow model.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


class Overloaded(RuntimeError):
    """The batching queue is full."""


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    busy_s: float = 0.0
    rejected: int = 0
    errors: int = 0


class BatchingExecutor(Generic[In, Out]):
    def __init__(self, fn: Callable[[Sequence[In]], Sequence[Out]], *, name: str, max_batch: int = 32,
                 max_wait_s: float = 0.001, max_queue: int = 1024) -> None:
        self._fn = fn
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.stats = BatchStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def submit(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        try:
            self._queue.put_nowait((item, future, loop))
        except queue.Full:
            self.stats.rejected += 1
            raise Overloaded("classifier queue full") from None
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self._max_wait_s
            while len(batch) < self._max_batch:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    nxt = self._queue.get(timeout=timeout)
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            started = time.perf_counter()
            try:
                outs: Sequence[Any] = self._fn([b[0] for b in batch])
                if len(outs) != len(batch):
                    raise RuntimeError("batch function returned the wrong number of results")
                for (_, fut, loop), out in zip(batch, outs, strict=True):
                    loop.call_soon_threadsafe(_resolve, fut, out, None)
            except Exception as exc:  # fail the batch's callers, keep the worker alive
                self.stats.errors += 1
                log.exception("batched model call failed")
                for _, fut, loop in batch:
                    loop.call_soon_threadsafe(_resolve, fut, None, exc)
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.busy_s += time.perf_counter() - started

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)


def _resolve(fut: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
