"""The gateway side of a cluster (`harken serve --role gateway`): sessions that clients and taps open on this
process run on workers (pipelines/worker.py). `GatewaySessions` stands where a `SessionManager` stands (the
WebSocket ingest and every tap open sessions through it); a `RemoteSession` has the input half of `LiveSession`
(push audio, record tap events, update metadata, close). Events come back through the broker like any other
subscriber's.

Input goes to the session's Redis stream as it arrives, in order and awaited (the client or tap gets
back-pressure from Redis; nothing it sent is dropped), each audio entry tagged with its channel (or "all" for
interleaved frames) and the frame count before it on that channel, so a worker taking the session over can skip
what is already captioned.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import replace
from typing import Any

from pipelines.cluster import ClusterState, redis_client
from pipelines.config import SessionConfig
from pipelines.errors import BadAudio, CapacityExceeded, SessionClosed

log = logging.getLogger(__name__)

OUTAGE_S = 30.0  # how long input waits for an unreachable Redis before the session's input fails


class RemoteSession:
    """A session running on a cluster worker, as the gateway that takes its input sees it."""

    def __init__(self, owner: GatewaySessions, config: SessionConfig, session_id: str, worker_id: str) -> None:
        self.owner = owner
        self.cluster = owner.cluster
        self.config = config
        self.session_id = session_id
        self.worker_id = worker_id
        self.metadata: dict[str, Any] = dict(config.metadata)
        self._frames = [0] * config.num_channels  # frames sent so far, per channel
        self._pending_meta: dict[str, Any] = {}
        self._closed = False
        self.started_at = time.time()
        # the console's live wall reads a session's history; a gateway holds none (mood and alerts live on the
        # worker: the wall shows these calls without them, a limit of the gateway role for now)
        self.history: list[dict[str, Any]] = []

    @property
    def closed(self) -> bool:
        return self._closed

    async def push_interleaved(self, pcm_s16le: bytes) -> None:
        """Queue interleaved int16 PCM (at the session's sample rate) for the worker."""
        n = self.config.num_channels
        if len(pcm_s16le) % (2 * n):
            raise BadAudio(f"interleaved PCM must be a whole number of {n}-channel frames")
        await self._audio({"pcm": pcm_s16le, "ch": "all", "f": self._frames[0]}, len(pcm_s16le) // (2 * n), None)

    async def push_pcm(self, channel: int, pcm_s16le: bytes, sample_rate_hz: int | None = None) -> None:
        """Queue one channel's int16 PCM (the tap interface of `LiveSession.push_pcm`)."""
        self.config.check_pcm(channel, pcm_s16le, sample_rate_hz)
        await self._audio({"pcm": pcm_s16le, "ch": channel, "f": self._frames[channel]}, len(pcm_s16le) // 2,
                          channel)

    async def _audio(self, fields: dict[str, Any], frames: int, channel: int | None) -> None:
        if self._closed:
            raise SessionClosed(self.session_id)
        if not frames:
            return
        await self._flush_meta()
        await self._append(fields)
        for ch in range(self.config.num_channels) if channel is None else (channel,):
            self._frames[ch] += frames

    async def record_event(self, event_type: str, data: dict[str, Any]) -> None:
        """A durable non-caption event (DTMF, tap stats, marks): the worker publishes it in order with the audio."""
        await self._flush_meta()
        await self._append({"event": json.dumps({"type": event_type, **data}, ensure_ascii=False)})

    def update_metadata(self, data: dict[str, Any]) -> None:
        """Merge metadata into the session's; sent ahead of the next input (callable from sync code)."""
        self.metadata.update(data)
        self._pending_meta.update(data)

    async def _flush_meta(self) -> None:
        if self._pending_meta:
            meta, self._pending_meta = self._pending_meta, {}
            await self._append({"meta": json.dumps(meta, ensure_ascii=False)})

    async def _append(self, fields: dict[str, Any]) -> None:
        """Write to the input stream; while Redis is away (a restart), keep trying for `OUTAGE_S`: the client's
        socket fills meanwhile and it waits, so nothing it sent is lost."""
        from pipelines.broker_redis import RETRYABLE

        loop = asyncio.get_running_loop()
        deadline = loop.time() + OUTAGE_S
        while True:
            try:
                await self.cluster.append_audio(self.session_id, fields)
                return
            except RETRYABLE:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def close(self, reason: str = "normal") -> None:
        """Tell the worker the input ended; it finishes the session (its `session_end` comes via the broker)."""
        if self._closed:
            return
        try:
            await self._flush_meta()
        finally:
            self._closed = True
            self.owner.sessions.pop(self.session_id, None)
        await self._append({"end": reason})


class GatewaySessions:
    """Places sessions on workers by load; stands in for the `SessionManager` of a gateway process."""

    def __init__(self, redis_url: str, *, sink: Any, broker: Any, max_channels: int,
                 prefix: str = "harken", dead_after_s: float = 2.0, model_name: str = "") -> None:
        self._redis = redis_client(redis_url)
        self.cluster = ClusterState(self._redis, prefix=prefix, dead_after_s=dead_after_s)
        self.sink = sink
        self.broker = broker
        self.max_channels = max_channels  # this gateway decodes nothing; kept for the health and metrics pages
        self.model_name = model_name
        self.sessions: dict[str, RemoteSession] = {}  # sessions whose input comes through this gateway
        self.refused = 0

    @property
    def channels_in_use(self) -> int:
        return sum(s.config.num_channels for s in self.sessions.values())

    def get(self, session_id: str) -> None:
        """No session runs here: routes follow every session through the broker."""
        return None

    async def open_session(self, config: SessionConfig, *, overflow: str = "block", **_: Any) -> RemoteSession:
        """Place a new session on the least loaded live worker with room, or raise `CapacityExceeded`.
        (`overflow`: input is always awaited into Redis; a tap that cannot wait is held back by its socket.)"""
        worker = await self.cluster.pick_worker(config.num_channels)
        if worker is None:
            self.refused += 1
            raise CapacityExceeded(f"no live worker has {config.num_channels} free channels")
        session_id = config.session_id or uuid.uuid4().hex
        config = replace(config, session_id=session_id)
        # the record first: a subscriber on any gateway may ask for the session as soon as its id is out
        await self.sink.create_session(session_id, config, self.model_name)
        try:
            await self.cluster.place(session_id, config, worker.worker_id)
        except Exception:  # Redis away: the record must not stay "live" for a call that never started
            self.sink.update_session(session_id, status="ended", end_reason="placement_failed", ended_at=time.time())
            raise
        session = RemoteSession(self, config, session_id, worker.worker_id)
        self.sessions[session_id] = session
        log.info("session %s placed on worker %s", session_id, worker.worker_id)
        return session

    async def warm_up(self) -> float:
        return 0.0

    async def close_all(self, reason: str = "shutdown") -> None:
        for s in list(self.sessions.values()):
            try:
                await s.close(reason)
            except Exception as exc:  # Redis gone: the workers end these sessions on input timeout
                log.warning("could not end session %s: %s", s.session_id, exc)

    def shutdown(self) -> None:
        pass

    async def aclose(self) -> None:
        await self._redis.aclose()
