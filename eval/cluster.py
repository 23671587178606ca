"""`harken eval cluster`: real calls through a real cluster on this machine's loopback, with a worker killed
mid-call (issue 14; docs/cluster.md).

Started here, stopped afterwards: `redis-server` (the broker and the cluster's records), PostgreSQL (the shared
store; SQLite when PostgreSQL is not installed), `gateways` gateway processes and `workers` worker processes
(`harken serve --role ...`, each its own Python process). Each session streams one of the English dev calls
(../shared/data/calls/dev: stereo 8 kHz, agent and customer channels, expected compliance findings) in real time
to one gateway, while a subscriber follows it on another gateway. Part-way through (`kill_at`, a fraction of
the call), the worker running the most sessions gets SIGKILL.

What is reported (per session and overall):
  finals_lost        finals a client received that the store does not hold at the end, plus holes in the stored
                     seqs (a durable event that never reached the store)
  finals_duplicated  a seq delivered twice to a subscriber, plus stored finals of one channel whose speech
                     overlaps by more than half the shorter one (the same words committed twice)
  failover_s         for the killed worker's sessions: how long the subscriber saw no caption across the kill
                     (last caption before it to the first after it)
  latency            per gateway: event delivery (emitted on the worker -> received by the subscriber), and
                     final captions after the word was spoken (the clock of the audio sent)
  wer, findings      per session against the call's reference transcript and expected findings: what a takeover
                     costs in accuracy, side by side with the sessions that kept their worker
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CALLS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "calls" / "dev"
POLICY_PACKS = ("pci_dss", "recording_notice", "contact_center", "retail_sales_en")  # the English packs


@dataclass
class Proc:
    name: str
    role: str
    port: int
    popen: subprocess.Popen
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 40) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        return "\n".join(lines[-n:])


@dataclass
class LocalCluster:
    """Redis, a database and harken processes on loopback (a context manager)."""

    workers: int = 2
    gateways: int = 2
    max_channels: int = 4
    database: str = "postgres"  # or "sqlite"
    env: dict[str, str] = field(default_factory=dict)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="harken-cluster-")))
    procs: list[Proc] = field(default_factory=list)
    redis: Any = None
    pg: Any = None
    database_url: str = ""  # given: use this database instead of starting one
    keep_files: bool = False  # keep the processes' logs and data directories (printed at the end)
    pg_control: Any = None  # the PostgreSQL server the `restart-database` fault restarts (default: our own)
    worker_disk_mb: int | None = None  # each worker's data directory on a tmpfs this small (the fill-disk fault)
    mounts: list[Path] = field(default_factory=list)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def start(self, timeout_s: float = 180.0) -> None:
        from eval.broker_bench import start_server

        self.redis = start_server("redis")
        if self.database_url:
            pass  # a database the caller made (the tests' PostgreSQL server)
        elif self.database == "postgres":
            from eval.pg_server import start_postgres

            self.pg = start_postgres()
            self.pg_control = self.pg_control or self.pg
            self.database_url = self.pg.create_database("harken_cluster")
        else:
            self.database_url = f"sqlite:///{self.root / 'harken.db'}"
        # the first gateway creates the schema alone; the others start together once it is up
        first = self.spawn("gateway", "gw1")
        self.wait_healthy([first], timeout_s)
        rest = [self.spawn("gateway", f"gw{i + 1}") for i in range(1, self.gateways)]
        rest += [self.spawn("worker", f"w{i + 1}") for i in range(self.workers)]
        self.wait_healthy(rest, timeout_s)

    def spawn(self, role: str, name: str) -> Proc:
        from eval.broker_bench import free_port

        port = free_port()
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        if role == "worker" and self.worker_disk_mb:
            mount_small_disk(data_dir, self.worker_disk_mb)
            self.mounts.append(data_dir)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARKEN_AUTH": "false", "HARKEN_BROKER_URL": self.redis_url,
               "HARKEN_DATABASE_URL": self.database_url, "HARKEN_MAX_CHANNELS": str(self.max_channels),
               "HARKEN_MINUTES": "false", "HARKEN_WS_IDLE_TIMEOUT_S": "60", **self.env}
        argv = [sys.executable, "-m", "api.cli", "serve", "--role", role, "--port", str(port), "--data-dir",
                str(data_dir)]
        if role == "worker":
            argv += ["--worker-id", name]
        log_path = self.root / f"{name}.log"
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     cwd=Path(__file__).resolve().parents[1])
        proc = Proc(name, role, port, popen, log_path)
        self.procs.append(proc)
        return proc

    def wait_healthy(self, procs: list[Proc], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for p in procs:
            while True:
                if p.popen.poll() is not None:
                    raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.log_tail()}")
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(p.base + "/healthz", timeout=2) as resp:
                        if json.loads(resp.read()).get("status") == "ok":
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{p.name} not healthy after {timeout_s:.0f} s:\n{p.log_tail()}")
                time.sleep(0.3)

    def respawn(self, name: str, timeout_s: float = 180.0) -> None:
        """Start a process again under the same name (a killed worker keeps its id), and wait until it is up."""
        old = next(p for p in self.procs if p.name == name)
        self.procs.remove(old)
        self.wait_healthy([self.spawn(old.role, name)], timeout_s)

    def of_role(self, role: str) -> list[Proc]:
        return [p for p in self.procs if p.role == role and p.popen.poll() is None]

    def kill(self, name: str) -> None:
        """SIGKILL one process: no clean-up, no last words."""
        for p in self.procs:
            if p.name == name and p.popen.poll() is None:
                p.popen.send_signal(signal.SIGKILL)
                p.popen.wait(timeout=10)

    def close(self) -> None:
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.terminate()
        for p in self.procs:
            try:
                p.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.popen.kill()
        for path in self.mounts:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
        if self.redis is not None:
            self.redis.close()
        if self.pg is not None:
            self.pg.close()
        if self.keep_files:
            log.info("cluster logs kept in %s", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


class NoSmallDisk(RuntimeError):
    """A small tmpfs cannot be mounted here (not root, or no mount permission in this container)."""


def mount_small_disk(path: Path, size_mb: int) -> None:
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NoSmallDisk(f"cannot mount a {size_mb} MB tmpfs on {path}: {done.stderr.strip()}")


def fill_disk(path: Path) -> int:
    """Write to `path` until the volume is full; returns the bytes written."""
    written = 0
    with open(path / "filler.bin", "wb") as f:
        block = bytes(1 << 16)
        try:
            while True:
                f.write(block)
                f.flush()
                written += len(block)
        except OSError:
            pass
    return written


# -- calls ------------------------------------------------------------------------------------------------------
@dataclass
class Call:
    call_id: str
    pcm: bytes  # interleaved s16le stereo
    sample_rate_hz: int
    duration_s: float
    reference: dict[int, str]  # channel -> what was said
    expected_rules: list[str]


def load_calls(n: int, calls_dir: Path = CALLS_DIR, max_s: float | None = None) -> list[Call]:
    """`n` English dev calls, violating and compliant in turn (cycled when n is larger), optionally cut to
    `max_s` seconds."""
    from pipelines.audio_io import read_audio

    rows = [json.loads(x) for x in (calls_dir / "manifest.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["language"] == "en" and r.get("stereo_8k")]
    if not rows:
        raise FileNotFoundError(f"no English stereo calls in {calls_dir}")
    # calls with violations and compliant ones in turn: a takeover must neither lose nor invent findings
    bad, good = [r for r in rows if not r.get("compliant")], [r for r in rows if r.get("compliant")]
    rows = [r for pair in zip(bad, good, strict=False) for r in pair] + bad[len(good):] + good[len(bad):]
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        audio = read_audio(calls_dir / row["stereo_8k"])
        samples = audio.samples
        if max_s is not None:
            samples = samples[: int(max_s * audio.sample_rate_hz)]
        gt = json.loads((calls_dir / row["gt"]).read_text())
        end_s = len(samples) / audio.sample_rate_hz
        ref: dict[int, list[str]] = {}
        for turn in gt["turns"]:
            if turn["start_s"] < end_s - 1.0:
                ref.setdefault(int(turn["channel"]), []).append(turn["text"])
        out.append(Call(f"{row['call_id']}#{i}", np.ascontiguousarray(samples).astype("<i2").tobytes(),
                        audio.sample_rate_hz, end_s, {ch: " ".join(t) for ch, t in ref.items()},
                        [f["rule"] for f in gt.get("expected_findings", []) if f.get("time_s", [0.0])[0] < end_s]))
    return out


# -- one session ---------------------------------------------------------------------------------------------------
@dataclass
class SessionRun:
    call_id: str
    ingest_gateway: str
    follow_gateway: str
    session_id: str = ""
    started_at: float = 0.0  # wall time the first audio was sent
    ended: bool = False
    worker: str = ""  # the worker it was placed on
    followed: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)  # (received at, gateway, event)
    ingested: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    follower_resumes: int = 0


async def run_session(call: Call, ingest: Proc, follow: Proc, *, fallback: list[Proc] | None = None,
                      chunk_s: float = 0.1, timeout_s: float = 600.0,
                      registry: dict[str, SessionRun] | None = None) -> SessionRun:
    """Stream `call` in real time to `ingest` and follow its events on `follow`; a follower whose gateway goes
    away resumes on the next of `fallback` with the last seq it has (as a client of a real deployment would)."""
    import websockets

    run = SessionRun(call.call_id, ingest.name, follow.name)
    ws_base = ingest.base.replace("http://", "ws://")
    async with websockets.connect(ws_base + "/v1/stream", max_size=1 << 22) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate_hz": call.sample_rate_hz, "encoding": "s16le",
                                  "channels": 2, "channel_names": ["agent", "customer"], "language": "en",
                                  "policy_packs": list(POLICY_PACKS)}))
        first = json.loads(await ws.recv())
        if first.get("type") != "session":
            run.error = f"refused: {first}"
            return run
        run.session_id = first["session_id"]
        if registry is not None:
            registry[run.session_id] = run

        async def follower() -> None:
            gateways = [follow, *(fallback or [])]
            last_seq = -1
            while gateways:
                url = gateways[0].base.replace("http://", "ws://") + \
                    f"/v1/sessions/{run.session_id}/subscribe?after_seq={last_seq}"
                try:
                    async with websockets.connect(url, max_size=1 << 22) as sub:
                        async for msg in sub:
                            ev = json.loads(msg)
                            run.followed.append((time.time(), gateways[0].name, ev))
                            last_seq = max(last_seq, ev.get("seq", -1))
                            if ev.get("type") == "session_end":
                                return
                except (OSError, websockets.ConnectionClosed):
                    pass
                run.follower_resumes += 1
                gateways = gateways[1:] or gateways  # the next gateway, or the same one again
                await asyncio.sleep(0.5)

        async def reader() -> None:
            async for msg in ws:
                ev = json.loads(msg)
                run.ingested.append(ev)
                if ev.get("type") == "session_end":
                    run.ended = True
                    return

        tasks = [asyncio.create_task(follower()), asyncio.create_task(reader())]
        step = int(call.sample_rate_hz * chunk_s) * 4  # stereo s16le
        run.started_at = time.time()
        t0 = time.monotonic()
        try:
            for i in range(0, len(call.pcm), step):
                await ws.send(call.pcm[i : i + step])
                ahead = (i + step) / 4 / call.sample_rate_hz - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await ws.send(json.dumps({"type": "stop"}))
        except websockets.ConnectionClosed as exc:
            run.error = f"ingest connection lost: {exc}"
        done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() is not None:
                run.error = repr(t.exception())
    return run


# -- the whole evaluation -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """Something that goes wrong at `at` (a fraction of the shortest call): `kill-worker` (SIGKILL the worker
    running the most sessions), `restart-broker` (stop Redis, `down_s`, start it on the same port and data),
    `restart-database` (PostgreSQL stopped with `-m fast`: every connection drops; started after `down_s`),
    `fill-disk` (fill the data directory of a worker running a session: needs `worker_disk_mb`),
    `kill-gateway` (SIGKILL the gateway `target`, default the last one: subscribers there resume elsewhere)."""

    kind: str
    at: float
    target: str | None = None
    down_s: float = 1.0


def run_cluster_eval(*, workers: int = 2, gateways: int = 2, sessions: int = 4, faults: list[Fault] | None = None,
                     max_channels: int = 4, max_call_s: float | None = None, database: str = "postgres",
                     env: dict[str, str] | None = None, waves: int = 1, keep_files: bool = False) -> dict[str, Any]:
    """`waves` rounds of `sessions` concurrent calls, back to back; the faults happen in the first. A worker
    killed there is started again (same id) before the next round, as an orchestrator would. Each process's
    resident memory is sampled after every round (a flat line means no leak per call)."""
    calls = load_calls(sessions, max_s=max_call_s)
    with LocalCluster(workers=workers, gateways=gateways, max_channels=max_channels, database=database,
                      env=env or {}, keep_files=keep_files) as cluster:
        runs: list[SessionRun] = []
        stored: dict[str, list[dict[str, Any]]] = {}
        happened: list[dict[str, Any]] = []
        memory: dict[str, list[float]] = {}
        t0 = time.monotonic()
        for wave in range(waves):
            r, st, h = asyncio.run(_wave(cluster, calls, (faults or []) if wave == 0 else []))
            runs += r
            stored.update(st)
            happened += h
            for p in cluster.procs:
                if p.popen.poll() is None:
                    memory.setdefault(p.name, []).append(round(_rss_mb(p.popen.pid), 1))
            for f in h:
                if f["kind"] in ("kill-worker", "kill-gateway") and wave + 1 < waves:
                    cluster.respawn(f["target"])
        report = score(runs, calls * waves, stored, happened)
        report.update(database=database, waves=waves, wall_s=round(time.monotonic() - t0, 1),
                      memory_mb_after_each_wave=memory)
    return report


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def drive(cluster: LocalCluster, calls: list[Call], faults: list[Fault]) -> dict[str, Any]:
    """Run `calls` at once through `cluster` while `faults` happen; returns the scored report."""
    runs, stored, happened = await _wave(cluster, calls, faults)
    return score(runs, calls, stored, happened)


async def _wave(cluster: LocalCluster, calls: list[Call],
                faults: list[Fault]) -> tuple[list[SessionRun], dict[str, list[dict[str, Any]]], list[dict]]:
    from pipelines.cluster import ClusterState, redis_client

    gws = cluster.of_role("gateway")
    client = redis_client(cluster.redis_url)
    state = ClusterState(client)
    shortest_s = min(c.duration_s for c in calls)
    happened: list[dict[str, Any]] = []
    runs_by_sid: dict[str, SessionRun] = {}

    async def inject(fault: Fault) -> None:
        await asyncio.sleep(fault.at * shortest_s)
        record: dict[str, Any] = {"kind": fault.kind}
        if fault.kind == "kill-worker":
            live = await state.live_sessions()
            owners: dict[str, int] = {}
            for _sid, owner, _ch in live:
                if owner:
                    owners[owner] = owners.get(owner, 0) + 1
            if not owners:
                return
            victim = fault.target or max(sorted(owners), key=lambda w: owners[w])
            record.update(target=victim, sessions=[sid for sid, owner, _ in live if owner == victim])
            record["at"] = time.time()
            await asyncio.to_thread(cluster.kill, victim)
        elif fault.kind == "restart-broker":
            record.update(target="redis", sessions=list(runs_by_sid), at=time.time())
            await asyncio.to_thread(cluster.redis.stop)
            await asyncio.sleep(fault.down_s)
            await asyncio.to_thread(cluster.redis.start)
        elif fault.kind == "restart-database":
            record.update(target="postgres", sessions=list(runs_by_sid), at=time.time())
            await asyncio.to_thread(cluster.pg_control.stop, "fast")
            await asyncio.sleep(fault.down_s)
            await asyncio.to_thread(cluster.pg_control.start)
        elif fault.kind == "fill-disk":
            live = await state.live_sessions()
            victim = fault.target or next((owner for _, owner, _ in live if owner), None)
            if victim is None:
                return
            record.update(target=victim, sessions=[sid for sid, owner, _ in live if owner == victim],
                          at=time.time())
            record["filled_bytes"] = await asyncio.to_thread(fill_disk, cluster.root / victim)
        elif fault.kind == "kill-gateway":
            victim = fault.target or gws[-1].name
            record.update(target=victim, at=time.time(),
                          sessions=[sid for sid, r in runs_by_sid.items() if r.follow_gateway == victim])
            await asyncio.to_thread(cluster.kill, victim)
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")
        happened.append(record)

    fault_tasks = [asyncio.create_task(inject(f)) for f in faults]
    # a gateway that will be killed only serves subscribers (a client streaming audio to it would lose its call:
    # the ingest protocol has no resume)
    doomed = {f.target or gws[-1].name for f in faults if f.kind == "kill-gateway"}
    ingest = [g for g in gws if g.name not in doomed] or gws
    runs = await asyncio.gather(*(run_session_tracked(i, c, ingest, gws, runs_by_sid)
                                  for i, c in enumerate(calls)))
    await asyncio.gather(*fault_tasks)
    for run in runs:
        rec = await state.session(run.session_id) if run.session_id else {}
        run.worker = rec.get("owner", "")
    await client.aclose()
    reader = next(g for g in gws if g.popen.poll() is None)
    stored = {r.session_id: await asyncio.to_thread(_stored_events, reader, r.session_id) for r in runs
              if r.session_id}
    return runs, stored, happened


async def run_session_tracked(i: int, call: Call, ingest_gws: list[Proc], gws: list[Proc],
                              registry: dict[str, SessionRun]) -> SessionRun:
    """Session `i` of a run: ingest on an ingest gateway, followed on the gateway after it (then the others),
    staggered by half a second; registered under its id as soon as it has one (faults pick their sessions)."""
    await asyncio.sleep(0.5 * i)
    ingest = ingest_gws[i % len(ingest_gws)]
    follow = gws[(gws.index(ingest) + 1) % len(gws)]
    return await run_session(call, ingest, follow, fallback=[g for g in gws if g is not follow], registry=registry)


def _stored_events(gateway: Proc, session_id: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{gateway.base}/v1/sessions/{session_id}/events", timeout=30) as resp:
        body = json.loads(resp.read())
    return body["events"] if isinstance(body, dict) else body


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def _overlapping(finals: list[dict[str, Any]]) -> int:
    """Finals of one channel that repeat speech already captioned (overlap > half the shorter, >= 0.3 s)."""
    dup = 0
    by_ch: dict[int, list[dict[str, Any]]] = {}
    for f in sorted(finals, key=lambda e: e["seq"]):
        earlier = by_ch.setdefault(int(f.get("channel", 0)), [])
        for e in earlier:
            ov = min(e["end_s"], f["end_s"]) - max(e["start_s"], f["start_s"])
            shorter = min(e["end_s"] - e["start_s"], f["end_s"] - f["start_s"])
            if ov >= 0.3 and ov > 0.5 * shorter:
                dup += 1
                break
        earlier.append(f)
    return dup


def score(runs: list[SessionRun], calls: list[Call], stored: dict[str, list[dict[str, Any]]],
          faults: list[dict[str, Any]]) -> dict[str, Any]:
    """The report (see the module docstring) from what the clients received and what the store holds."""
    from eval.asr import error_rate

    moved = {sid for f in faults if f["kind"] == "kill-worker" for sid in f["sessions"]}
    per_session = []
    pauses: dict[str, list[float]] = {}
    delivery: dict[str, list[float]] = {}
    final_lat: dict[str, list[float]] = {}
    lost_total = dup_total = 0
    for run, call in zip(runs, calls, strict=True):
        events = stored.get(run.session_id, [])
        seqs = [e["seq"] for e in events]
        finals = [e for e in events if e.get("type") == "transcript" and e.get("kind") == "final"]
        stored_final = {(e["seq"], e["segment_id"]) for e in finals}
        received = [e for _, _, e in run.followed] + run.ingested
        got_final = {(e["seq"], e["segment_id"]) for e in received
                     if e.get("type") == "transcript" and e.get("kind") == "final" and "seq" in e}
        holes = (max(seqs) + 1 - len(set(seqs))) if seqs else 0
        lost = len(got_final - stored_final) + holes
        follow_seqs = [e["seq"] for _, _, e in run.followed if "seq" in e]
        dup = (len(follow_seqs) - len(set(follow_seqs))) + _overlapping(finals)
        lost_total += lost
        dup_total += dup
        for at, gw, ev in run.followed:
            if ev.get("emitted_at"):
                delivery.setdefault(gw, []).append(at - float(ev["emitted_at"]))
            if ev.get("type") == "transcript" and ev.get("kind") == "final" and ev.get("words"):
                final_lat.setdefault(gw, []).append(at - (run.started_at + ev["end_s"]))
        paused: dict[str, float] = {}
        caps = [at for at, _, ev in run.followed if ev.get("type") == "transcript"]
        for f in faults:
            if run.session_id not in f["sessions"]:
                continue
            before = [t for t in caps if t <= f["at"]]
            after = [t for t in caps if t > f["at"]]
            if after:
                paused[f["kind"]] = round(after[0] - (before[-1] if before else f["at"]), 3)
                pauses.setdefault(f["kind"], []).append(paused[f["kind"]])
        hyp = {ch: " ".join(e["text"] for e in finals if int(e.get("channel", 0)) == ch) for ch in call.reference}
        chans = sorted(call.reference)
        wer = error_rate([call.reference[ch] for ch in chans], [hyp[ch] for ch in chans], "en") if chans else None
        # findings by the vocabulary of the ground truth (`maps_to`), else by the pack's rule id
        found = sorted({e.get("maps_to") or e.get("rule_id") for e in events if e.get("type") == "finding"})
        errors = sorted({e.get("code") for e in events if e.get("type") == "error"})
        per_session.append({
            "call_id": call.call_id, "session_id": run.session_id, "ingest_gateway": run.ingest_gateway,
            "follow_gateway": run.follow_gateway, "worker_at_end": run.worker,
            "failed_over": run.session_id in moved, "ended": run.ended, "error": run.error,
            "follower_resumes": run.follower_resumes, "finals": len(finals), "finals_lost": lost,
            "finals_duplicated": dup, "seq_holes": holes, "captions_paused_s": paused,
            "wer": round(wer, 4) if wer is not None else None,
            "findings": found, "expected_findings": sorted(set(call.expected_rules)), "errors": errors,
        })
    kept = [s for s in per_session if not s["failed_over"]]
    went = [s for s in per_session if s["failed_over"]]
    failovers = pauses.get("kill-worker", [])
    return {
        "sessions": len(runs), "sessions_ended": sum(1 for r in runs if r.ended),
        "finals": sum(s["finals"] for s in per_session),
        "finals_lost": lost_total, "finals_duplicated": dup_total,
        "failover_s": _pct(failovers, 95), "failover_p50_s": _pct(failovers, 50),
        "failover_max_s": round(max(failovers), 3) if failovers else None,
        "sessions_moved": len(moved),
        "faults": [{**{k: v for k, v in f.items() if k != "sessions"}, "sessions": len(f["sessions"]),
                    "captions_paused_p95_s": _pct(pauses.get(f["kind"], []), 95)} for f in faults],
        "latency_by_gateway": {
            gw: {"event_delivery_p50_s": _pct(v, 50), "event_delivery_p95_s": _pct(v, 95), "events": len(v),
                 "final_p50_s": _pct(final_lat.get(gw, []), 50), "final_p95_s": _pct(final_lat.get(gw, []), 95)}
            for gw, v in sorted(delivery.items())},
        "wer_moved": _mean([s["wer"] for s in went]), "wer_kept": _mean([s["wer"] for s in kept]),
        "findings_recall_moved": _recall(went), "findings_recall_kept": _recall(kept),
        "per_session": per_session,
    }


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def _recall(rows: list[dict[str, Any]]) -> float | None:
    expected = sum(len(r["expected_findings"]) for r in rows)
    if not expected:
        return None
    hit = sum(len(set(r["expected_findings"]) & set(r["findings"])) for r in rows)
    return round(hit / expected, 3)
