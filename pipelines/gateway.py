"""The gateway side of a cluster (`harken serve --role gateway`): sessions that clients stream to this process
run on workers (pipelines/worker.py). A `RemoteSession` has the input half of `LiveSession` (push audio,
update metadata, close); its events come back through the broker like any other subscriber's.

Audio goes to the session's Redis stream as it arrives (awaited: the client's WebSocket gets back-pressure from
Redis, nothing is dropped), each entry tagged with the frame count before it so a worker taking the session over
can skip what is already captioned.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from typing import Any

from pipelines.cluster import ClusterState, redis_client
from pipelines.config import SessionConfig
from pipelines.errors import BadAudio, CapacityExceeded, SessionClosed


class RemoteSession:
    """A session running on a cluster worker, as the gateway that accepted its audio sees it."""

    def __init__(self, cluster: ClusterState, config: SessionConfig, session_id: str, worker_id: str) -> None:
        self.cluster = cluster
        self.config = config
        self.session_id = session_id
        self.worker_id = worker_id
        self._frames = 0
        self._closed = False
        self.outage_s = 30.0

    @property
    def closed(self) -> bool:
        return self._closed

    async def push_interleaved(self, pcm_s16le: bytes) -> None:
        """Queue interleaved int16 PCM for the worker (at the session's sample rate)."""
        if self._closed:
            raise SessionClosed(self.session_id)
        n = self.config.num_channels
        if len(pcm_s16le) % (2 * n):
            raise BadAudio(f"interleaved PCM must be a whole number of {n}-channel frames")
        if not pcm_s16le:
            return
        await self._append({"pcm": pcm_s16le, "f": self._frames})
        self._frames += len(pcm_s16le) // (2 * n)

    async def _append(self, fields: dict[str, Any]) -> None:
        """Write to the audio stream; while Redis is away (a restart), keep trying for `outage_s`: the client's
        socket fills meanwhile and it waits (back-pressure), so nothing it sent is lost."""
        from pipelines.broker_redis import RETRYABLE

        deadline = asyncio.get_running_loop().time() + self.outage_s
        while True:
            try:
                await self.cluster.append_audio(self.session_id, fields)
                return
            except RETRYABLE:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def update_metadata(self, data: dict[str, Any]) -> None:
        """Merge metadata into the session's (the worker applies it in order with the audio)."""
        await self._append({"meta": json.dumps(data, ensure_ascii=False)})

    async def close(self, reason: str = "normal") -> None:
        """Tell the worker the input ended; it finishes the session (its `session_end` comes via the broker)."""
        if self._closed:
            return
        self._closed = True
        await self._append({"end": reason})


class ClusterGateway:
    """Places sessions on workers by load and gives the route a `RemoteSession` for each."""

    def __init__(self, redis_url: str, *, prefix: str = "harken", dead_after_s: float = 2.0) -> None:
        self._redis = redis_client(redis_url)
        self.cluster = ClusterState(self._redis, prefix=prefix, dead_after_s=dead_after_s)
        self.refused = 0

    async def open_session(self, config: SessionConfig) -> RemoteSession:
        """Place a new session on the least loaded live worker, or raise `CapacityExceeded`."""
        worker = await self.cluster.pick_worker(config.num_channels)
        if worker is None:
            self.refused += 1
            raise CapacityExceeded(f"no live worker has {config.num_channels} free channels")
        session_id = config.session_id or uuid.uuid4().hex
        config = replace(config, session_id=session_id)
        await self.cluster.place(session_id, config, worker.worker_id)
        return RemoteSession(self.cluster, config, session_id, worker.worker_id)

    async def aclose(self) -> None:
        await self._redis.aclose()
