"""Measure the two candidate event brokers (NATS JetStream, Redis Streams) the way harken would use them.

Each broker is a real server started here (`BrokerServer`): the Debian binary, a free loopback port, a temporary
directory that is removed afterwards. Both are run with the durability harken would deploy: JetStream file
storage (`-js -sd DIR`), Redis with an append-only file fsynced every second (`--appendonly yes --appendfsync
everysec --save ''`), so that both survive a restart with what they acknowledged, and both pay for writing it.

Per broker, S sessions publish N durable caption-like events (JSON of 300-800 bytes) and one live subscriber per
session, on its own client connection (as a second gateway would be), checks order and measures delivery:

  publish_awaited   every session awaits each publish's acknowledgement (S in flight): events/s, and the
                    publish->subscriber latency under that saturating load;
  publish_batched   one sender pipelines up to 256 unacknowledged publishes (what a gateway's outbox does);
  paced             events at a steady `--rate` (default 500/s, many live calls) across the sessions: the
                    latency a subscriber sees in normal operation (p50/p95/p99);
  replay            a late subscriber reads one session's retained events from after_seq=-1 and from the middle;
  duplicates        the first 10 events of a session published again are delivered once;
  memory            the server's resident memory, idle and after the run.

`nats` and `redis` make the raw client calls the real-broker implementation makes (for NATS: the one it would
have made), without its outbox and queues, so the figures are the brokers' own; `harken-redis` runs the same
workload through pipelines/broker_redis.py (its publish returns once the event is in the outbox, so its
"awaited" figure is the enqueue rate and its loaded latency includes the outbox backlog). `harken eval broker
--out R.json` runs it (nats-py is needed only for the `nats` row); the figures and the choice are in
docs/broker.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

BrokerKind = Literal["nats", "redis"]
_BINARIES = {"nats": "nats-server", "redis": "redis-server"}
_READY = {"nats": "Server is ready", "redis": "Ready to accept connections"}
_SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/bin")

STREAM = "HARKEN_EVENTS"


# -- servers ------------------------------------------------------------------------------------------------------

def find_binary(kind: BrokerKind) -> str | None:
    """The server binary: on PATH, else in the Debian locations (nats-server lives in /usr/sbin)."""
    name = _BINARIES[kind]
    found = shutil.which(name)
    if found:
        return found
    for d in _SEARCH_DIRS:
        p = Path(d) / name
        if os.access(p, os.X_OK):
            return str(p)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BrokerServer:
    """One throwaway broker server on loopback; `stop` + `start` restarts it on the same port and data."""

    kind: BrokerKind
    binary: str
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}" if self.kind == "nats" else f"redis://127.0.0.1:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def argv(self) -> list[str]:
        if self.kind == "nats":
            return [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.data_dir)]
        # no RDB snapshots; an AOF fsynced every second, so a restart keeps what was acknowledged (but for the
        # last second after a power cut, which a loopback test cannot show anyway)
        return [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no",
                "--logfile", ""]

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the server and wait for its readiness line (JetStream answers only once it is printed)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.proc.returncode}: {self._log_tail()}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if _READY[self.kind].encode() in f.read():
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} server not ready after {timeout_s}s: {self._log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (both servers flush what they hold), SIGKILL if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        self.proc = None

    def rss_bytes(self) -> int:
        """Resident memory of the server process (0 when not running)."""
        if self.proc is None:
            return 0
        with contextlib.suppress(OSError), open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used (0 when not running)."""
        if self.proc is None:
            return 0.0
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def close(self) -> None:
        """Stop the server and remove its directory (no data or log is left behind)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(kind: BrokerKind) -> BrokerServer:
    """A started server in a fresh temporary directory; raises FileNotFoundError without the binary."""
    binary = find_binary(kind)
    if binary is None:
        raise FileNotFoundError(f"{_BINARIES[kind]} not found (Debian package {_BINARIES[kind]})")
    server = BrokerServer(kind, binary, Path(tempfile.mkdtemp(prefix=f"harken-{kind}-")))
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


# -- the clients, as pipelines/broker.py uses them ----------------------------------------------------------------

Event = dict[str, Any]


def _dumps(event: Event) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


class BenchClient(Protocol):
    """Every client serialises on publish and parses on delivery, once each: the same work for all rows."""

    name: str

    async def open(self, url: str) -> None: ...
    async def publish(self, session_id: str, seq: int, event: Event) -> None: ...
    async def publish_many(self, items: list[tuple[str, int, Event]]) -> None: ...
    def follow(self, session_id: str, after_seq: int) -> AsyncIterator[tuple[int, Event]]: ...
    async def close(self) -> None: ...


class NatsClient:
    """JetStream: one stream, a subject per session, Nats-Msg-Id de-duplication, an ordered push consumer."""

    name = "nats-jetstream"

    async def open(self, url: str) -> None:
        import nats
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig

        # publisher and subscribers on separate connections, as on separate gateways
        self.pub_nc = await nats.connect(url)
        self.sub_nc = await nats.connect(url)
        self.js = self.pub_nc.jetstream()
        self.sjs = self.sub_nc.jetstream()
        await self.js.add_stream(StreamConfig(
            name=STREAM, subjects=["harken.events.>"], storage=StorageType.FILE, discard=DiscardPolicy.OLD,
            max_msgs_per_subject=100_000, max_age=3600.0, duplicate_window=120.0))

    @staticmethod
    def _headers(session_id: str, seq: int) -> dict[str, str]:
        return {"Nats-Msg-Id": f"{session_id}:{seq}", "Harken-Seq": str(seq)}

    async def publish(self, session_id: str, seq: int, event: Event) -> None:
        await self.js.publish(f"harken.events.{session_id}", _dumps(event),
                              headers=self._headers(session_id, seq))

    async def publish_many(self, items: list[tuple[str, int, Event]]) -> None:
        futures = [await self.js.publish_async(f"harken.events.{sid}", _dumps(ev), headers=self._headers(sid, seq))
                   for sid, seq, ev in items]
        await asyncio.gather(*futures)

    async def start_sequence(self, session_id: str, after_seq: int) -> int:
        """The stream sequence of the session's first event after `after_seq` (binary search on next_by_subj:
        a session's events are stored in seq order, so the first event at or after a stream position is
        monotone in that position); past the stream's end when there is none yet."""
        from nats.js.errors import NotFoundError

        info = await self.sjs.stream_info(STREAM)
        lo, hi = info.state.first_seq, info.state.last_seq
        subject = f"harken.events.{session_id}"
        found = hi + 1
        while lo <= hi:
            mid = (lo + hi) // 2
            try:
                msg = await self.sjs.get_msg(STREAM, seq=mid, subject=subject, next=True)
            except NotFoundError:
                hi = mid - 1
                continue
            assert msg.seq is not None and msg.headers is not None
            if msg.seq > info.state.last_seq or int(msg.headers["Harken-Seq"]) > after_seq:
                found = min(found, msg.seq)
                hi = mid - 1
            else:
                lo = msg.seq + 1
        return found

    async def follow(self, session_id: str, after_seq: int) -> AsyncIterator[tuple[int, Event]]:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        start = await self.start_sequence(session_id, after_seq) if after_seq >= 0 else None
        config = ConsumerConfig(opt_start_seq=start) if start else None
        sub = await self.sjs.subscribe(
            f"harken.events.{session_id}", ordered_consumer=True, config=config,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL)
        try:
            async for msg in sub.messages:
                yield int(msg.headers["Harken-Seq"]), json.loads(msg.data)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.js.delete_stream(STREAM)
        await self.pub_nc.close()
        await self.sub_nc.close()


class RedisClient:
    """Redis Streams: a key per session, entry id `<seq>-1` (the server refuses ids not above the last one,
    which de-duplicates), XREAD BLOCK from the last delivered id (replay and live in one loop)."""

    name = "redis-streams"

    async def open(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.pub = aioredis.from_url(url)
        self.sub = aioredis.from_url(url)
        self.keys: set[str] = set()

    async def publish(self, session_id: str, seq: int, event: Event) -> None:
        from redis.exceptions import ResponseError

        key = f"harken:events:{session_id}"
        self.keys.add(key)
        try:
            await self.pub.xadd(key, {"e": _dumps(event)}, id=f"{seq}-1", maxlen=100_000, approximate=True)
        except ResponseError as exc:
            if "equal or smaller" not in str(exc):
                raise

    async def publish_many(self, items: list[tuple[str, int, Event]]) -> None:
        pipe = self.pub.pipeline(transaction=False)
        for sid, seq, ev in items:
            key = f"harken:events:{sid}"
            self.keys.add(key)
            pipe.xadd(key, {"e": _dumps(ev)}, id=f"{seq}-1", maxlen=100_000, approximate=True)
        for r in await pipe.execute(raise_on_error=False):
            if isinstance(r, Exception) and "equal or smaller" not in str(r):
                raise r

    async def follow(self, session_id: str, after_seq: int) -> AsyncIterator[tuple[int, Event]]:
        key = f"harken:events:{session_id}"
        last = f"{after_seq}-1" if after_seq >= 0 else "0-0"
        while True:
            resp = await self.sub.xread({key: last}, count=512, block=1000)
            for _key, entries in resp or ():
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    yield int(last.split("-")[0]), json.loads(fields[b"e"])

    async def close(self) -> None:
        if self.keys:
            await self.pub.delete(*self.keys)
        await self.pub.aclose()
        await self.sub.aclose()


class HarkenRedisClient:
    """pipelines/broker_redis.py itself: publish returns once the event is in the outbox, one sender pipelines,
    subscribers read through `Subscription` (the figures a gateway gets, its queues and JSON included)."""

    name = "harken-redis (RedisBroker)"

    async def open(self, url: str) -> None:
        from pipelines.broker import make_broker

        self.pub = make_broker(url)
        self.gw = make_broker(url)  # the subscribing gateway: its own connections

    async def publish(self, session_id: str, seq: int, event: Event) -> None:
        await self.pub.publish(session_id, seq, event)

    async def publish_many(self, items: list[tuple[str, int, Event]]) -> None:
        for sid, seq, ev in items:
            await self.pub.publish(sid, seq, ev)
        await self.pub.flush(60.0)

    async def follow(self, session_id: str, after_seq: int) -> AsyncIterator[tuple[int, Event]]:
        sub = self.gw.subscribe(session_id, after_seq, max_queue=100_000)
        try:
            async for ev in sub:
                yield ev["seq"], ev
        finally:
            await sub.aclose()

    async def close(self) -> None:
        await self.pub.close()
        await self.gw.close()


CLIENTS: dict[str, Callable[[], BenchClient]] = {"nats": NatsClient, "redis": RedisClient,
                                                 "harken-redis": HarkenRedisClient}
SERVER_OF: dict[str, BrokerKind] = {"nats": "nats", "redis": "redis", "harken-redis": "redis"}


# -- workload -----------------------------------------------------------------------------------------------------

_WORDS = ("the account number is on the statement we can refund that today please hold while I check your "
          "balance payment card address transfer thank you for calling how can I help").split()


def caption_event(rng: random.Random, session_id: str, seq: int) -> dict[str, Any]:
    """A final caption like `TranscriptEvent.to_dict()` with 4-14 timed words (300-800 bytes of JSON)."""
    n = rng.randint(4, 14)
    t = seq * 2.0
    words = [{"text": rng.choice(_WORDS), "start_s": round(t + i * 0.3, 2), "end_s": round(t + i * 0.3 + 0.25, 2),
              "probability": round(rng.uniform(0.6, 1.0), 3)} for i in range(n)]
    return {"type": "transcript", "kind": "final", "session_id": session_id, "segment_id": f"c0-{seq}",
            "channel": 0, "speaker": "agent", "start_s": t, "end_s": t + n * 0.3,
            "text": " ".join(w["text"] for w in words), "words": words, "language": "en",
            "model": "whisper-base", "emitted_at": time.time(), "media_clock_s": t, "seq": seq}


def _encode(rng: random.Random, session_id: str, seq: int) -> Event:
    ev = caption_event(rng, session_id, seq)
    ev["t_pub"] = time.perf_counter()  # same process: a monotonic clock measures publish -> delivery
    return ev


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _latency(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50_ms": round(_pct(ms, 0.50), 3), "p95_ms": round(_pct(ms, 0.95), 3),
            "p99_ms": round(_pct(ms, 0.99), 3), "max_ms": round(max(ms, default=float("nan")), 3)}


@dataclass
class _Follower:
    """A live subscriber on one session: checks order, records each event's publish -> delivery latency."""

    expected: int
    got: int = 0
    next_seq: int = 0
    out_of_order: int = 0
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, events: AsyncIterator[tuple[int, Event]]) -> None:
        # closed on return too: a finished follower must not leave a consumer or reader behind
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            await self._read(events)

    async def _read(self, events: AsyncIterator[tuple[int, Event]]) -> None:
        async for seq, ev in events:
            now = time.perf_counter()
            if seq != self.next_seq:
                self.out_of_order += 1
            self.next_seq = seq + 1
            self.got += 1
            self.latencies.append(now - ev["t_pub"])
            if self.got >= self.expected:
                self.done.set()
                return


async def _until(followers: list[_Follower], timeout_s: float) -> None:
    await asyncio.wait_for(asyncio.gather(*(f.done.wait() for f in followers)), timeout_s)


async def bench_client(client: BenchClient, server: BrokerServer, events: int, sessions: int,
                       rate: float, seed: int = 0) -> dict[str, Any]:
    """Run the whole workload against one started server; returns that broker's figures."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    per = max(1, events // sessions)
    paced_per = max(1, min(per, int(rate * 4) // sessions))  # about 4 s of paced traffic
    await client.open(server.url)
    rss_idle = server.rss_bytes()
    cpu0, client_cpu0 = server.cpu_s(), time.process_time()
    result: dict[str, Any] = {"broker": client.name, "events": per * sessions, "sessions": sessions,
                              "rss_idle_mb": round(rss_idle / 2**20, 1)}
    try:
        # 1. awaited publishes, S sessions concurrently, live followers measuring latency under that load
        sids = [f"a{run}-{i}" for i in range(sessions)]
        followers = [_Follower(per) for _ in sids]
        tasks = [asyncio.create_task(f.run(client.follow(s, -1))) for f, s in zip(followers, sids, strict=True)]
        await asyncio.sleep(0.3)  # consumers created

        async def session_pub(sid: str) -> None:
            for seq in range(per):
                await client.publish(sid, seq, _encode(rng, sid, seq))

        t0 = time.perf_counter()
        await asyncio.gather(*(session_pub(s) for s in sids))
        pub_s = time.perf_counter() - t0
        await _until(followers, 120)
        all_s = time.perf_counter() - t0
        result["publish_awaited"] = {
            "events_per_s": round(per * sessions / pub_s), "delivered_all_s": round(all_s, 3),
            "latency": _latency([x for f in followers for x in f.latencies]),
            "out_of_order": sum(f.out_of_order for f in followers)}
        for t in tasks:
            t.cancel()

        # 2. one pipelining sender (the gateway's outbox), interleaving the sessions as live calls do
        bsids = [f"b{run}-{i}" for i in range(sessions)]
        bfollow = [_Follower(per) for _ in bsids]
        tasks = [asyncio.create_task(f.run(client.follow(s, -1))) for f, s in zip(bfollow, bsids, strict=True)]
        await asyncio.sleep(0.3)
        items = [(s, seq, b"") for seq in range(per) for s in bsids]
        t0 = time.perf_counter()
        for i in range(0, len(items), 256):
            await client.publish_many([(s, q, _encode(rng, s, q)) for s, q, _ in items[i : i + 256]])
        pub_s = time.perf_counter() - t0
        await _until(bfollow, 120)
        result["publish_batched"] = {
            "events_per_s": round(len(items) / pub_s), "delivered_all_s": round(time.perf_counter() - t0, 3),
            "latency": _latency([x for f in bfollow for x in f.latencies]),
            "out_of_order": sum(f.out_of_order for f in bfollow)}
        for t in tasks:
            t.cancel()

        # 3. paced: the steady rate of many live calls, continuing the first sessions' seqs
        pfollow = [_Follower(paced_per) for _ in sids]
        for f in pfollow:
            f.next_seq = per
        tasks = [asyncio.create_task(f.run(client.follow(s, per - 1))) for f, s in zip(pfollow, sids, strict=True)]
        await asyncio.sleep(0.3)
        interval = 1.0 / rate
        t0 = time.perf_counter()
        k = 0
        for seq in range(per, per + paced_per):
            for s in sids:
                delay = t0 + k * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await client.publish(s, seq, _encode(rng, s, seq))
                k += 1
        await _until(pfollow, 60)
        result["paced"] = {"rate_per_s": rate, "events": k,
                           "latency": _latency([x for f in pfollow for x in f.latencies]),
                           "out_of_order": sum(f.out_of_order for f in pfollow)}
        for t in tasks:
            t.cancel()

        # 4. duplicates: the first 10 events of session 0 again; 5. a late subscriber replays
        total = per + paced_per
        for seq in range(min(10, per)):
            await client.publish(sids[0], seq, _encode(rng, sids[0], seq))
        replay: dict[str, Any] = {"session_events": total}
        for label, after in (("from_start", -1), ("from_middle", total // 2 - 1)):
            f = _Follower(total - after - 1)
            f.next_seq = after + 1
            t0 = time.perf_counter()
            task = asyncio.create_task(f.run(client.follow(sids[0], after)))
            await _until([f], 60)
            replay[label] = {"events": f.got, "ms": round((time.perf_counter() - t0) * 1000, 2),
                             "out_of_order": f.out_of_order}
            task.cancel()
        # anything more than `total` would be a duplicate delivered after the last one
        extra = _Follower(1)
        extra.next_seq = total
        task = asyncio.create_task(extra.run(client.follow(sids[0], total - 1)))
        await asyncio.sleep(1.0)
        task.cancel()
        replay["duplicates_delivered"] = extra.got
        result["replay"] = replay
        result["rss_after_mb"] = round(server.rss_bytes() / 2**20, 1)
        # the whole run's CPU: what the broker costs the machine, and what its client costs each gateway
        result["server_cpu_s"] = round(server.cpu_s() - cpu0, 2)
        result["client_cpu_s"] = round(time.process_time() - client_cpu0, 2)
    finally:
        await client.close()
    return result


async def _run_one(kind: str, events: int, sessions: int, rate: float) -> dict[str, Any]:
    try:
        server = await asyncio.to_thread(start_server, SERVER_OF[kind])
    except FileNotFoundError as exc:
        return {"broker": kind, "skipped": str(exc)}
    try:
        try:
            result = await bench_client(CLIENTS[kind](), server, events, sessions, rate)
        except ImportError as exc:  # nats-py is only needed here, for the comparison
            return {"broker": kind, "skipped": f"client library missing ({exc.name}): pip install nats-py redis"}
        done = await asyncio.to_thread(subprocess.run, [server.binary, "--version"], capture_output=True,
                                       text=True)
        result["server"] = done.stdout.strip()
        result["durability"] = ("JetStream file storage" if server.kind == "nats"
                                else "AOF, appendfsync everysec, no RDB")
        return result
    finally:
        await asyncio.to_thread(server.close)


def run_bench(kinds: tuple[str, ...] = ("nats", "redis", "harken-redis"), events: int = 20_000, sessions: int = 20,
              rate: float = 500.0, repeat: int = 1) -> dict[str, Any]:
    """Benchmark each broker in turn (never two at once: they would share the CPUs). `harken-redis` is Redis
    again, through pipelines/broker_redis.py."""
    results = []
    load_before = os.getloadavg()
    for r in range(repeat):
        # alternate the order between rounds, so a change in the machine's load does not favour one broker
        for kind in kinds if r % 2 == 0 else tuple(reversed(kinds)):
            log.info("round %d: %s, %d events over %d sessions", r + 1, kind, events, sessions)
            result = asyncio.run(_run_one(kind, events, sessions, rate))
            result["round"] = r + 1
            results.append(result)
    return {"events": events, "sessions": sessions, "rate": rate, "cpus": os.cpu_count(),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "results": results}


def summary_rows(report: dict[str, Any]) -> list[str]:
    """A Markdown table of the headline figures (docs/broker.md)."""
    rows = ["| round | broker | awaited pub ev/s | batched pub ev/s | paced p50 / p95 ms | loaded p50 / p95 ms "
            "| replay full / middle ms | dups | RSS idle / after MB | CPU s server / client |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        if "skipped" in r:
            rows.append(f"| {r.get('round', 1)} | {r['broker']} | skipped: {r['skipped']} ||||||||")
            continue
        pa, pb, pc, rp = r["publish_awaited"], r["publish_batched"], r["paced"], r["replay"]
        rows.append(
            f"| {r.get('round', 1)} | {r['broker']} | {pa['events_per_s']} | {pb['events_per_s']} | "
            f"{pc['latency']['p50_ms']} / {pc['latency']['p95_ms']} | "
            f"{pa['latency']['p50_ms']} / {pa['latency']['p95_ms']} | "
            f"{rp['from_start']['ms']} / {rp['from_middle']['ms']} ({rp['session_events']} ev) | "
            f"{rp['duplicates_delivered']} | {r['rss_idle_mb']} / {r['rss_after_mb']} | "
            f"{r['server_cpu_s']} / {r['client_cpu_s']} |")
    return rows

