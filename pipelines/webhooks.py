"""Webhook export of findings, alerts, tickets and scorecards (JSON POST), from a bounded background queue.

Delivery is at-least-once best effort: each event is retried with back-off a few times; past that, or when the
queue is full, it is dropped and counted (`dropped`) — everything sent is also in the store and REST API, so a
receiver that was down can catch up from there. Never called on the hot path: `publish` only enqueues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)

EXPORTED_TYPES = ("finding", "alert", "ticket", "scorecard")


class WebhookSender:
    def __init__(self, url: str, *, max_queue: int = 1000, retries: int = 3, timeout_s: float = 5.0,
                 secret: str | None = None) -> None:
        self.url = url
        self.retries = retries
        self.timeout_s = timeout_s
        self.secret = secret
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task | None = None
        self.sent = 0
        self.dropped = 0

    def publish(self, event: dict[str, Any]) -> None:
        if event.get("type") not in EXPORTED_TYPES:
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self) -> None:
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers["X-Harken-Token"] = self.secret
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            while True:
                event = await self._queue.get()
                for attempt in range(self.retries + 1):
                    try:
                        resp = await client.post(self.url, json=event, headers=headers)
                        if resp.status_code < 500:
                            self.sent += 1
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
                else:
                    self.dropped += 1
                    log.warning("webhook delivery failed after %d attempts (type %s)", self.retries + 1,
                                event.get("type"))
                self._queue.task_done()

    async def aclose(self, drain_s: float = 5.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=drain_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
