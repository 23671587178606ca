"""A cluster worker (`harken serve --role worker`): runs the sessions gateways place on it, and takes over the
sessions of a worker that died (issue 14; docs/cluster.md).

Three loops beside the sessions:
  heartbeat   refresh `harken:worker:<id>` every `heartbeat_s` (it expires after `dead_after_s`);
  placements  read `harken:ctl:<id>` and start each session placed here;
  watch       every `heartbeat_s`, look for live sessions whose owner's heartbeat is gone; the least loaded live
              worker claims each one (compare-and-set of the owner, so exactly one does) and resumes it.

A session runs as a normal `LiveSession` fed from the session's audio stream in Redis. Resuming one: its durable
events are read back (from the broker's stream and the store, whichever holds more: each is a prefix of what the
dead worker emitted, both written in emission order), whatever one of the two lacks is written to it, and the
session continues at the next seq with each channel's clock at the end of its last committed caption: the audio
before that is skipped, the audio after it is decoded again. So a final is never published twice (seqs only
grow, the broker refuses a seq it has) and never lost (audio not yet captioned is still in the stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from typing import Any

import numpy as np

from pipelines.broker_redis import RETRYABLE
from pipelines.cluster import ClusterState, ResumeState, config_from_json, redis_client
from pipelines.errors import BadAudio
from pipelines.session import LiveSession, SessionManager

log = logging.getLogger(__name__)

AUDIO_TRIM_EVERY = 50  # audio entries read between two trims of what is already captioned
MAX_TRIM_BACKLOG = 20_000  # entries remembered for trimming (about 3 min of 20 ms frames on two channels)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ClusterWorker:
    """Runs placed sessions on `manager`; see the module docstring."""

    def __init__(self, manager: SessionManager, redis_url: str, *, worker_id: str | None = None,
                 heartbeat_s: float = 0.5, dead_after_s: float = 2.0, input_timeout_s: float = 60.0,
                 prefix: str = "harken") -> None:
        self.manager = manager
        self.worker_id = worker_id or default_worker_id()
        self.heartbeat_s = heartbeat_s
        self.dead_after_s = dead_after_s
        # a session whose gateway sends nothing (not even the end marker) for this long ends: the gateway died
        self.input_timeout_s = input_timeout_s
        self._redis = redis_client(redis_url)
        self.cluster = ClusterState(self._redis, prefix=prefix, dead_after_s=dead_after_s)
        self._tasks: list[asyncio.Task] = []
        self._sessions: dict[str, asyncio.Task] = {}
        self.takeovers = 0

    async def start(self) -> None:
        await self.cluster.heartbeat(self.worker_id, self.manager.max_channels)
        # a worker restarted under the same id resumes what its previous life left live (nobody else will: its
        # heartbeat is back)
        for sid, owner, _channels in await self.cluster.live_sessions():
            if owner == self.worker_id:
                log.warning("worker %s resumes session %s left by its previous run", self.worker_id, sid)
                self._launch(sid, resume=True)
        self._tasks = [asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
                       asyncio.create_task(self._placement_loop(), name="worker-placements"),
                       asyncio.create_task(self._watch_loop(), name="worker-watch")]
        log.info("cluster worker %s started (%d channels)", self.worker_id, self.manager.max_channels)

    async def stop(self) -> None:
        """Stop taking work; sessions still running end with reason `shutdown` (their audio stays for a takeover
        only if the process dies instead)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for t in list(self._sessions.values()):
            t.cancel()
        await asyncio.gather(*self._sessions.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.cluster.forget_worker(self.worker_id)
        await self._redis.aclose()

    # -- loops ------------------------------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.cluster.heartbeat(self.worker_id, self.manager.max_channels)
            except Exception as exc:  # Redis away: sessions go on; placements wait until it is back
                log.warning("worker %s heartbeat failed: %s", self.worker_id, exc)
            await asyncio.sleep(self.heartbeat_s)

    async def _placement_loop(self) -> None:
        last = "0-0"  # placements made before this worker read its stream are still there
        while True:
            try:
                entries = await self._redis.xread({self.cluster.ctl_key(self.worker_id): last}, count=50,
                                                  block=1000)
            except Exception as exc:
                log.warning("worker %s cannot read its placements: %s", self.worker_id, exc)
                await asyncio.sleep(self.heartbeat_s)
                continue
            for entry_id, fields in (entries[0][1] if entries else []):
                last = entry_id.decode()
                sid = fields[b"sid"].decode()
                self._launch(sid, resume=False)
                await self._redis.xdel(self.cluster.ctl_key(self.worker_id), entry_id)

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._take_over_orphans()
            except Exception as exc:
                log.warning("worker %s takeover scan failed: %s", self.worker_id, exc)

    async def _take_over_orphans(self) -> None:
        """Claim and resume the live sessions whose owner's heartbeat is gone (see the module docstring)."""
        if await self.cluster.uptime_s() < self.dead_after_s + 2 * self.heartbeat_s:
            return  # Redis just restarted: every heartbeat may have lapsed while it was down; let them return
        workers = await self.cluster.live_workers()
        alive = {w.worker_id for w in workers}
        for sid, owner, _channels in await self.cluster.live_sessions():
            if owner in alive or sid in self._sessions:
                continue
            # the least loaded worker takes it, over its channel budget if every worker is full: a call already
            # under way is never dropped for capacity (decoding sheds work under load instead)
            best = await self.cluster.least_loaded()
            if best is None or best.worker_id != self.worker_id:
                continue
            epoch = await self.cluster.claim(sid, owner or "", self.worker_id)
            if epoch:
                self.takeovers += 1
                log.warning("worker %s takes over session %s from dead worker %s (placement %d)",
                            self.worker_id, sid, owner, epoch)
                self._launch(sid, resume=True)

    # -- sessions ---------------------------------------------------------------------------------------------
    def _launch(self, sid: str, *, resume: bool) -> None:
        if sid in self._sessions:
            return
        task = asyncio.create_task(self._run(sid, resume), name=f"worker-session-{sid}")
        self._sessions[sid] = task
        task.add_done_callback(lambda _t: self._sessions.pop(sid, None))

    async def _run(self, sid: str, resume: bool) -> None:
        record = await self.cluster.session(sid)
        if record.get("status") != "live" or record.get("owner") != self.worker_id:
            return
        config = config_from_json(record["config"])
        state = None
        for attempt in range(5) if resume else ():
            try:
                state = await self._resume_state(sid)
                break
            except Exception as exc:  # the store or Redis briefly away: try again, then give the call up cleanly
                log.warning("worker %s cannot read session %s back yet (%s)", self.worker_id, sid, exc)
                await asyncio.sleep(0.5 * 2**attempt)
        if resume and state is None:
            await self._fail(sid)
            return
        try:
            session = await self.manager.open_session(config, overflow="block", resume=state, row_exists=True)
        except Exception:
            log.exception("worker %s could not open session %s", self.worker_id, sid)
            await self._fail(sid)
            return
        try:
            reason = await self._pump(session, state)
        except asyncio.CancelledError:
            await session.close("shutdown")
            raise
        except Exception:
            log.exception("worker %s lost the audio of session %s", self.worker_id, sid)
            reason = "worker_error"
        await session.close(reason)
        await self.cluster.end_session(sid)

    async def _fail(self, sid: str) -> None:
        """A session that cannot run here ends with an error and `session_end`, stored and published after
        whatever it already has, so that its clients are not left waiting."""
        events = await self._streamed_events(sid)
        seq = events[-1]["seq"] + 1 if events else 0
        for ev in ({"type": "error", "code": "session_failed", "message": "no worker could run this session"},
                   {"type": "session_end", "reason": "worker_error"}):
            ev = {**ev, "session_id": sid, "seq": seq, "emitted_at": time.time()}
            await self.manager.sink.put(sid, seq, ev)
            if self.manager.broker is not None:
                await self.manager.broker.publish(sid, seq, ev)
            seq += 1
        self.manager.sink.update_session(sid, status="ended", end_reason="worker_error", ended_at=time.time())
        await self.manager.sink.flush()
        await self.cluster.end_session(sid)

    async def _resume_state(self, sid: str) -> ResumeState:
        """The dead worker's events, from whichever log holds more; each log gets what only the other holds."""
        store = self.manager.sink.store
        stored = await asyncio.to_thread(store.events, sid)
        streamed = await self._streamed_events(sid)
        # the store's copy first: it holds the rewrites (card data redacted after the caption was streamed)
        by_seq = {ev["seq"]: ev for ev in stored}
        for ev in streamed:
            by_seq.setdefault(ev["seq"], ev)
        events = [by_seq[s] for s in sorted(by_seq)]
        have_stored = {ev["seq"] for ev in stored}
        for ev in events:
            if ev["seq"] not in have_stored:
                await self.manager.sink.put(sid, ev["seq"], ev)
        last_streamed = max((ev["seq"] for ev in streamed), default=-1)
        if self.manager.broker is not None:
            for ev in events:
                if ev["seq"] > last_streamed:
                    await self.manager.broker.publish(sid, ev["seq"], ev)
        await self.manager.sink.flush()
        return ResumeState.from_events(events)

    async def _streamed_events(self, sid: str) -> list[dict[str, Any]]:
        key = f"{self.cluster.prefix}:events:{sid}"
        out, start = [], "-"
        while True:
            page = await self._redis.xrange(key, min=start, count=1000)
            for entry_id, fields in page:
                ev = json.loads(fields[b"e"])
                ev["seq"] = int(entry_id.split(b"-", 1)[0])
                out.append(ev)
            if len(page) < 1000:
                return out
            start = "(" + page[-1][0].decode()

    async def _pump(self, session: LiveSession, state: ResumeState | None) -> str:
        """Feed the session from its audio stream until the gateway's end marker; returns the end reason."""
        n = session.config.num_channels
        rate = session.config.sample_rate_hz
        # frames per channel already covered by committed captions (a resumed session skips them)
        skip = [int((state.committed_s.get(ch, 0.0) if state else 0.0) * rate) for ch in range(n)]
        # tap events (DTMF, marks...) the dead worker already published carry the id of their input entry
        applied = max((_entry(e["input_id"]) for e in state.history if "input_id" in e), default=(-1, -1)) \
            if state else (-1, -1)
        last = "0-0"
        # (entry id, frame after it, its channel or None for all) of the audio read since the last trim
        offsets: list[tuple[str, int, int | None]] = []
        loop_time = asyncio.get_running_loop().time
        last_input = loop_time()
        while True:
            try:
                entries = await self.cluster.read_audio(session.session_id, last)
            except RETRYABLE as exc:  # Redis away: the session keeps what it has, and waits for more
                log.warning("session %s: audio stream unreachable (%s); retrying", session.session_id, exc)
                await asyncio.sleep(self.heartbeat_s)
                last_input = loop_time()
                continue
            if entries:
                last_input = loop_time()
            elif loop_time() - last_input > self.input_timeout_s:
                return "input_timeout"
            for entry_id, fields in entries:
                last = entry_id.decode()
                if b"end" in fields:
                    return fields[b"end"].decode()
                if b"meta" in fields:
                    session.update_metadata(json.loads(fields[b"meta"]))
                    continue
                if b"event" in fields:
                    if _entry(last) > applied:
                        ev = json.loads(fields[b"event"])
                        await session.record_event(ev.pop("type"), {**ev, "input_id": last})
                    continue
                pcm = fields[b"pcm"]
                first = int(fields.get(b"f", b"0"))
                ch = fields.get(b"ch", b"all")
                channel = None if ch == b"all" else int(ch)
                offsets.append((last, first + len(pcm) // (2 * (n if channel is None else 1)), channel))
                try:
                    if channel is None:
                        await self._feed(session, pcm, first, skip)
                    elif first + len(pcm) // 2 > skip[channel]:
                        cut = max(0, skip[channel] - first) * 2
                        await session.push_pcm(channel, pcm[cut:])
                except BadAudio as exc:  # the gateway checked it; never stop a call for one frame
                    log.warning("session %s: frame skipped (%s)", session.session_id, exc)
            if len(offsets) >= AUDIO_TRIM_EVERY:
                with contextlib.suppress(*RETRYABLE):  # trimming is housekeeping: the next round tries again
                    await self._trim(session, offsets)
                if len(offsets) > MAX_TRIM_BACKLOG:
                    # a channel that never speaks holds trimming back: stop tracking the oldest entries (the stream
                    # itself still expires audio_ttl_s after its last write), so this list stays bounded
                    del offsets[: len(offsets) // 2]

    @staticmethod
    async def _feed(session: LiveSession, pcm: bytes, first: int, skip: list[int]) -> None:
        n = session.config.num_channels
        frames = len(pcm) // (2 * n)
        if all(first + frames <= s for s in skip):
            return
        if all(first >= s for s in skip):
            await session.push_interleaved(pcm)
            return
        data = np.frombuffer(pcm, dtype="<i2").reshape(-1, n)
        for ch in range(n):
            cut = max(0, skip[ch] - first)
            if cut < frames:
                await session.push_pcm(ch, np.ascontiguousarray(data[cut:, ch]).tobytes())

    async def _trim(self, session: LiveSession, offsets: list[tuple[str, int, int | None]]) -> None:
        """Forget input a takeover would skip anyway: the entries up to the first one whose audio some channel
        has not captioned yet. `offsets`: (entry id, first frame after it, channel or None) of the entries read
        since the last trim, in stream order."""
        rate = session.config.sample_rate_hz
        committed = [int(c * rate) for c in session.committed_s]
        done = 0
        for _entry_id, next_frame, channel in offsets:
            needed = min(committed) if channel is None else committed[channel]
            if next_frame > needed:
                break
            done += 1
        if done:
            await self.cluster.trim_audio(session.session_id, offsets[done - 1][0])
            del offsets[:done]


def _entry(entry_id: str) -> tuple[int, int]:
    """A Redis stream id as a comparable pair (milliseconds, sequence)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
