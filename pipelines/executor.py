"""The ASR executor: the only place the Whisper model runs, on its own worker threads, never on the event loop.

Many sessions share one model. Each channel has at most one request queued or running, so the queue is bounded
by the number of admitted channels (admission control in the session manager is the overflow policy: past
capacity new sessions are refused). Requests carry a *job factory*: the audio snapshot is taken when a worker
picks the request up, so a channel that waited under load decodes its freshest audio in one step instead of
working through a stale backlog. Final decodes (an utterance just ended) go before partial ones; among equals,
the oldest waiter goes first.

Load shedding: when the workers were busy more than `shed_above` of the last few seconds (or requests are waiting),
decodes run greedy instead of with the configured beams, and without the left context an utterance after a pause
carries (already committed audio, decoded only to help its first words). Beam search (2 on partials, 5 on finals)
costs 10-20% more decode time, the context about 7%: together about a channel's worth of capacity on 2 cores. A
lightly loaded machine spends it on accuracy, a full one on keeping every channel live.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from models.asr import AsrHypothesis, AsrRequest

log = logging.getLogger(__name__)

JobFactory = Callable[[], "tuple[object, AsrRequest] | None"]


class Decoder:
    """What the executor needs from a backend (WhisperBackend implements it)."""

    model_name: str

    def decode(self, request: AsrRequest) -> AsrHypothesis:  # pragma: no cover - protocol
        raise NotImplementedError


@dataclass(order=True)
class _Item:
    priority: int
    seq: int
    factory: JobFactory = field(compare=False)
    future: asyncio.Future = field(compare=False)
    loop: asyncio.AbstractEventLoop = field(compare=False)
    enqueued_at: float = field(compare=False, default=0.0)


@dataclass
class ExecutorStats:
    decodes: int = 0
    decode_s_total: float = 0.0
    queue_wait_s_total: float = 0.0
    errors: int = 0
    max_queue_depth: int = 0
    greedy_under_load: int = 0  # decodes narrowed to greedy (workers busy or requests waiting)
    context_shed_s: float = 0.0  # left-context audio not decoded because of load


class AsrExecutor:
    """Worker threads that run decodes for all sessions."""

    def __init__(self, decoder: Decoder, workers: int = 1, *, shed_above: float = 0.6,
                 load_window_s: float = 5.0) -> None:
        self.decoder = decoder
        self.workers = workers
        self.shed_above = shed_above
        self.load_window_s = load_window_s
        self._recent: deque[tuple[float, float]] = deque()  # (end, duration) of recent decodes
        self._heap: list[_Item] = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self.stats = ExecutorStats()
        self._threads = [
            threading.Thread(target=self._run, name=f"asr-worker-{i}", daemon=True) for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    @property
    def queue_depth(self) -> int:
        with self._cv:
            return len(self._heap)

    def _utilisation(self, now: float) -> float:
        """Share of worker time spent decoding over the last `load_window_s` (call with the lock held)."""
        while self._recent and self._recent[0][0] < now - self.load_window_s:
            self._recent.popleft()
        busy = sum(min(d, e - (now - self.load_window_s)) for e, d in self._recent)
        return busy / (self.workers * self.load_window_s)

    async def submit(self, factory: JobFactory, *, final: bool) -> tuple[object, AsrHypothesis] | None:
        """Queue a decode; resolves to (job, hypothesis), or None if the factory had nothing to decode."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        item = _Item(0 if final else 1, next(self._seq), factory, future, loop, time.perf_counter())
        with self._cv:
            if self._closed:
                raise RuntimeError("ASR executor is closed")
            heapq.heappush(self._heap, item)
            self.stats.max_queue_depth = max(self.stats.max_queue_depth, len(self._heap))
            self._cv.notify()
        return await future

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._closed:
                    self._cv.wait()
                if self._closed and not self._heap:
                    return
                item = heapq.heappop(self._heap)
                loaded = bool(self._heap) or self._utilisation(time.perf_counter()) > self.shed_above
            if item.future.cancelled():
                continue
            started = time.perf_counter()
            try:
                made = item.factory()
                if made is None:
                    result = None
                else:
                    job, request = made
                    skipped_s = 0.0
                    if loaded and request.sheddable:
                        if request.beam_size is None or request.beam_size > 1:
                            request = replace(request, beam_size=1)
                            self.stats.greedy_under_load += 1
                        request, skipped_s = request.without_context()
                        self.stats.context_shed_s += skipped_s
                    hyp = self.decoder.decode(request).shifted(skipped_s)
                    result = (job, hyp)
                    self.stats.decodes += 1
                    ended = time.perf_counter()
                    self.stats.decode_s_total += ended - started
                    with self._cv:
                        self._recent.append((ended, ended - started))
                    self.stats.queue_wait_s_total += started - item.enqueued_at
                item.loop.call_soon_threadsafe(_set_result, item.future, result)
            except Exception as exc:  # a failed decode must not kill the worker (others depend on it)
                self.stats.errors += 1
                log.exception("ASR decode failed")
                item.loop.call_soon_threadsafe(_set_exception, item.future, exc)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=30)


def _set_result(future: asyncio.Future, result: object) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
