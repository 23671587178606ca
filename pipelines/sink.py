"""Persistence sink: durable events go to the store from a background task, in batches, off the event loop.

The queue is bounded; producers await when it is full (durable events are never dropped), which slows a session
rather than losing its history. `flush()` waits until everything queued so far is written.

When the database is unreachable (a restarted PostgreSQL, a dropped connection, a full disk under SQLite) the
batch is written again with backoff (0.1 s doubling to 2 s) until it succeeds: the queue fills meanwhile and then
holds the sessions back, and nothing is lost. A batch that the database refuses for what it holds (an event
already stored under its seq, after a worker took a session over) is written row by row, skipping those rows.
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

    async def replace(self, session_id: str, seq: int, event: dict[str, Any]) -> None:
        """Rewrite a stored event (redaction of card data), in order with the writes queued before it: the
        caption is stored before it is redacted, never after."""
        self.start()
        await self._queue.put(("replace", session_id, (seq, event)))

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
                await self._write_until_done(items)
            finally:
                for _ in items:
                    self._queue.task_done()

    async def _write_until_done(self, items: list[tuple[str, str, Any]]) -> None:
        from sqlalchemy.exc import IntegrityError, OperationalError

        backoff_s = 0.1
        while True:
            try:
                await asyncio.to_thread(self._write, items)
                if backoff_s > 0.1:
                    log.warning("database reachable again; %d items written", len(items))
                return
            except OperationalError as exc:  # connection lost, server restarting, disk full: try again
                self.write_errors += 1
                if backoff_s == 0.1:
                    log.error("database unavailable (%s); retrying, sessions wait", exc.orig or exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)
            except IntegrityError:
                self.write_errors += 1
                await asyncio.to_thread(self._write_each, items)
                return
            except Exception:  # a bug or a value the database cannot hold: never stop persisting the rest
                self.write_errors += 1
                log.exception("persisting %d items failed", len(items))
                return

    def _write_each(self, items: list[tuple[str, str, Any]]) -> None:
        from sqlalchemy.exc import IntegrityError

        for item in items:
            try:
                self._write([item])
            except IntegrityError:
                log.warning("event %s of session %s already stored; kept the stored one",
                            item[2][0] if item[0] == "event" else "-", item[1])

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
                if kind == "replace":
                    self.store.replace_event_payload(sid, *payload)
                else:
                    self.store.update_session(sid, **payload)
        self.store.add_events(rows)
