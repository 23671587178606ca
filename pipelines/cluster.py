"""Shared state of a harken cluster in Redis: which workers are alive and how loaded, which worker runs which
session, and each session's audio, so that a gateway can hand a call to a worker and another worker can take it
over when the first one dies (issue 14; docs/cluster.md).

Layout (prefix `harken`, beside the event streams of pipelines/broker_redis.py):
  harken:worker:<wid>     a worker's heartbeat: JSON {"worker_id", "max_channels", "at"}, expiring after
                          `dead_after_s`; a worker whose key is gone is dead.
  harken:session:<sid>    hash: `config` (SessionConfig as JSON), `owner` (worker id), `epoch` (times placed),
                          `status` (live | ended), `channels`.
  harken:live             set of the sessions not yet ended (what the takeover watch scans).
  harken:ctl:<wid>        stream of placements for one worker: {"op": "start", "sid"}.
  harken:audio:<sid>      stream of the session's input, in order: {"pcm": interleaved s16le, "f": frames before
                          it} | {"meta": JSON} | {"end": reason}. Kept while the session lives (a worker that takes
                          the session over reads it again from the start and skips what is already captioned),
                          trimmed behind the committed captions, expiring `audio_ttl_s` after its last write.

Placement is by load: the least loaded live worker with room (channels of live sessions it owns against its
`max_channels`). Ownership changes only by compare-and-set of `owner` (a Lua script), so two workers watching
the same dead one never both take a session.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines.config import SessionConfig

# compare-and-set of a session's owner: only the worker that finds the old owner still recorded takes it over
_CLAIM = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'status') == 'live' then
  redis.call('HSET', KEYS[1], 'owner', ARGV[2])
  return redis.call('HINCRBY', KEYS[1], 'epoch', 1)
end
return 0
"""

_SEGMENT_RE = re.compile(r"^c(\d+)-(\d+)$")


@dataclass(frozen=True)
class WorkerInfo:
    """One live worker as its heartbeat describes it, with its load counted from the sessions it owns."""

    worker_id: str
    max_channels: int
    channels_in_use: int = 0

    @property
    def free_channels(self) -> int:
        return self.max_channels - self.channels_in_use


def config_to_json(config: SessionConfig) -> str:
    return json.dumps(asdict(config), ensure_ascii=False)


def config_from_json(text: str | bytes) -> SessionConfig:
    d = json.loads(text)
    for key in ("channel_names", "policy_packs", "vocabulary"):
        d[key] = tuple(d.get(key) or ())
    return SessionConfig(**d)


@dataclass
class ResumeState:
    """What a worker taking a session over needs from the events already published: the next seq, the events
    themselves (history for late subscribers, minutes and redaction), and per channel how much audio the
    committed captions cover, their last segment number, the language and the finals of a still open utterance."""

    next_seq: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    committed_s: dict[int, float] = field(default_factory=dict)
    segment_numbers: dict[int, int] = field(default_factory=dict)
    languages: dict[int, str] = field(default_factory=dict)
    open_finals: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_events(cls, events: list[dict[str, Any]]) -> ResumeState:
        """Derive the state from a session's durable events in seq order."""
        state = cls(next_seq=(events[-1]["seq"] + 1) if events else 0, history=list(events))
        in_utterance: set[str] = set()
        for ev in events:
            if ev.get("type") == "utterance":
                in_utterance.update(ev.get("segment_ids", ()))
        for ev in events:
            if ev.get("type") != "transcript" or ev.get("kind") != "final":
                continue
            ch = int(ev.get("channel", 0))
            state.committed_s[ch] = max(state.committed_s.get(ch, 0.0), float(ev.get("end_s", 0.0)))
            m = _SEGMENT_RE.match(str(ev.get("segment_id", "")))
            if m:
                state.segment_numbers[ch] = max(state.segment_numbers.get(ch, 0), int(m.group(2)))
            if ev.get("language"):
                state.languages[ch] = ev["language"]
            if ev["segment_id"] not in in_utterance:
                state.open_finals.setdefault(ch, []).append(ev)
        return state


def redis_client(url: str) -> Any:
    """A redis.asyncio client that rides out a broker restart: reconnects and retries each command for about
    five seconds before an error reaches the caller (whose own loop retries after that)."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return aioredis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0,
                             retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 8),
                             retry_on_error=[RedisConnectionError, RedisTimeoutError])


class ClusterState:
    """The cluster's shared records (see the module docstring) over one redis.asyncio client."""

    def __init__(self, redis: Any, *, prefix: str = "harken", dead_after_s: float = 2.0,
                 audio_ttl_s: float = 3600.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.dead_after_s = dead_after_s
        self.audio_ttl_s = audio_ttl_s
        self._claim = redis.register_script(_CLAIM)

    # keys
    def worker_key(self, wid: str) -> str:
        return f"{self.prefix}:worker:{wid}"

    def session_key(self, sid: str) -> str:
        return f"{self.prefix}:session:{sid}"

    def ctl_key(self, wid: str) -> str:
        return f"{self.prefix}:ctl:{wid}"

    def audio_key(self, sid: str) -> str:
        return f"{self.prefix}:audio:{sid}"

    @property
    def live_key(self) -> str:
        return f"{self.prefix}:live"

    # workers
    async def heartbeat(self, wid: str, max_channels: int) -> None:
        body = json.dumps({"worker_id": wid, "max_channels": max_channels, "at": time.time()})
        await self.redis.set(self.worker_key(wid), body, px=int(self.dead_after_s * 1000))

    async def uptime_s(self) -> float:
        """How long the Redis server has run: after a restart, heartbeats that lapsed meanwhile say nothing."""
        return float((await self.redis.info("server"))["uptime_in_seconds"])

    async def forget_worker(self, wid: str) -> None:
        await self.redis.delete(self.worker_key(wid))

    async def live_workers(self) -> list[WorkerInfo]:
        """Live workers with their load (channels of the live sessions each owns)."""
        keys = [k async for k in self.redis.scan_iter(match=f"{self.prefix}:worker:*", count=500)]
        if not keys:
            return []
        bodies = await self.redis.mget(keys)
        capacity = {}
        for body in bodies:
            if body:
                d = json.loads(body)
                capacity[d["worker_id"]] = int(d["max_channels"])
        load = dict.fromkeys(capacity, 0)
        for _sid, owner, channels in await self.live_sessions():
            if owner in load:
                load[owner] += channels
        return sorted((WorkerInfo(w, capacity[w], load[w]) for w in capacity), key=lambda w: w.worker_id)

    async def least_loaded(self) -> WorkerInfo | None:
        """The live worker with the lowest share of its channels in use (ties by id), full or not."""
        workers = await self.live_workers()
        return min(workers, key=lambda w: (w.channels_in_use / max(1, w.max_channels), w.worker_id), default=None)

    async def pick_worker(self, channels: int) -> WorkerInfo | None:
        """The least loaded live worker with room for `channels` (fewest channels in use relative to its size;
        ties by id), or None."""
        fits = [w for w in await self.live_workers() if w.free_channels >= channels]
        if not fits:
            return None
        return min(fits, key=lambda w: (w.channels_in_use / max(1, w.max_channels), w.worker_id))

    # sessions
    async def live_sessions(self) -> list[tuple[str, str | None, int]]:
        """(session id, owner, channels) of every live session."""
        sids = sorted(s.decode() for s in await self.redis.smembers(self.live_key))
        if not sids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for sid in sids:
            pipe.hmget(self.session_key(sid), "owner", "channels", "status")
        out = []
        for sid, (owner, channels, status) in zip(sids, await pipe.execute(), strict=True):
            if status == b"live":
                out.append((sid, owner.decode() if owner else None, int(channels or 1)))
        return out

    async def place(self, sid: str, config: SessionConfig, wid: str) -> None:
        """Record a new session as owned by `wid` and tell that worker to start it."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.session_key(sid), mapping={"config": config_to_json(config), "owner": wid, "epoch": 1,
                                                  "status": "live", "channels": config.num_channels})
        pipe.sadd(self.live_key, sid)
        pipe.xadd(self.ctl_key(wid), {"op": "start", "sid": sid})
        await pipe.execute()

    async def claim(self, sid: str, dead_wid: str, new_wid: str) -> int:
        """Take over a session whose owner is `dead_wid`; returns the new epoch, 0 if someone else already did."""
        return int(await self._claim(keys=[self.session_key(sid)], args=[dead_wid, new_wid]))

    async def session(self, sid: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.session_key(sid))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def end_session(self, sid: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.session_key(sid), "status", "ended")
        pipe.expire(self.session_key(sid), int(self.audio_ttl_s))
        pipe.srem(self.live_key, sid)
        pipe.delete(self.audio_key(sid))
        await pipe.execute()

    # audio
    async def append_audio(self, sid: str, fields: dict[str, Any]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(self.audio_key(sid), fields)
        pipe.expire(self.audio_key(sid), int(self.audio_ttl_s))
        await pipe.execute()

    async def read_audio(self, sid: str, after_id: str, count: int = 200, block_ms: int = 1000) -> list[tuple]:
        resp = await self.redis.xread({self.audio_key(sid): after_id}, count=count, block=block_ms)
        return resp[0][1] if resp else []

    async def trim_audio(self, sid: str, min_id: str) -> None:
        """Drop input before `min_id` (already covered by committed captions on every channel)."""
        await self.redis.xtrim(self.audio_key(sid), minid=min_id, approximate=False)
