"""Persistence sink: durable events go to the store from a background task, in batches, off the event loop.

The queue is bounded; producers await when it is full (durable events are never dropped), which slows a session
rather than losing its history. `flush()` waits until everything queued so far is written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipelines.config import SessionConfig
from pipelines.store import Store

log = logging.getLogger(__name__)


class PersistenceSink:
    def __init__(self, store: Store, max_queue: int = 10_000, batch: int = 200) -> None:
        self.store = store
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=max_queue)
        self._batch = batch
        self._task: asyncio.Task | None = None
        self.write_errors = 0
        self._pending: set[asyncio.Task] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="persistence-sink")

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def create_session(self, session_id: str, config: SessionConfig, model: str) -> None:
        meta = dict(config.metadata)
        meta.setdefault("model", model)
        await asyncio.to_thread(
            self.store.create_session, session_id, config.source, config.language,
            list(config.channel_names), meta, config.tenant_id,
        )

    def update_session(self, session_id: str, **values: Any) -> None:
        """Queue a session-row update (rare; callable from sync code on the loop)."""
        self.start()
        item = ("update", session_id, values)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            task = asyncio.get_running_loop().create_task(self._queue.put(item))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def put(self, session_id: str, seq: int, event: dict[str, Any]) -> None:
        self.start()
        await self._queue.put(("event", session_id, (seq, event)))

    async def flush(self) -> None:
        self.start()
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            items = [first]
            while len(items) < self._batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self._write, items)
            except Exception:
                self.write_errors += 1
                log.exception("persisting %d items failed", len(items))
            finally:
                for _ in items:
                    self._queue.task_done()

    def _write(self, items: list[tuple[str, str, Any]]) -> None:
        rows = []
        for kind, sid, payload in items:
            if kind == "event":
                seq, ev = payload
                rows.append((sid, seq, ev))
            else:
                if rows:
                    self.store.add_events(rows)
                    rows = []
                self.store.update_session(sid, **payload)
        self.store.add_events(rows)
