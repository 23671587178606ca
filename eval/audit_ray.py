"""`harken audit --ray`: a batch of recordings fanned out over a pool of Ray actors, resumable after a crash.

- One actor per CPU (num_cpus=1; AuditOptions.cpu_threads=1 gives it one ASR thread), each loading the models once
  and calling `eval.audit_job.audit_one` for every recording it is given: the reports are the sequential path's.
- Exactly one recording in flight per actor: the driver hands an actor its next recording when the last one comes
  back. Nothing piles up in Ray's queues for a batch of thousands, and a driver crash loses at most one recording
  per actor.
- The state file (STATE_FILE in the out dir, JSON lines, append-only) is written by the driver alone: one line per
  recording once its actor has put both reports in place (atomically, see audit_job.write_reports). A rerun skips
  recordings done with the same size, mtime and audit options (and logs them "skipped"), retries failed ones and
  re-audits changed ones. A line torn by a crash is ignored. An flock keeps two drivers off one out dir.

Ray is imported here only, and this module only by `harken audit --ray`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eval.audit_job import AuditOptions, AuditOutcome, Recording, audit_one, auditor_for, name_collisions

log = logging.getLogger(__name__)

STATE_FILE = "audit_state.jsonl"
SUMMARY_FILE = "summary.json"
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # outcomes are small dicts: Ray's default (30% of RAM) is wasted


@dataclass(frozen=True)
class Fingerprint:
    """What says a recording changed since it was audited (hashing a year of audio would take hours)."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns)


class StateLocked(RuntimeError):
    """Another driver is auditing into the same out dir."""


class AuditState:
    """The state file of an out dir; the last line about a recording says where it stands."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a+", encoding="utf-8")  # held open, and locked, until close()
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise StateLocked(f"{path} is locked: another `harken audit --ray` writes to this out dir") from None
        self._file.seek(0)
        text = self._file.read()
        self.latest: dict[str, dict[str, Any]] = {}
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a driver killed mid-write
            if isinstance(record, dict) and "key" in record:
                self.latest[record["key"]] = record
        if text and not text.endswith("\n"):
            self._file.write("\n")  # end the torn line, or the next record would be glued to it

    def reusable(self, key: str, fp: Fingerprint, options_key: str) -> dict[str, Any] | None:
        """The record of a finished audit of this very file with these options whose reports still exist."""
        r = self.latest.get(key)
        if (r is None or r.get("status") not in ("done", "skipped") or r.get("size") != fp.size
                or r.get("mtime_ns") != fp.mtime_ns or r.get("options") != options_key):
            return None
        return r if all(Path(p).is_file() for p in r.get("reports", ())) else None

    def append(self, record: dict[str, Any]) -> None:
        """Add a line and get it to the disk before going on: it is the resume point."""
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.latest[record["key"]] = record

    def close(self) -> None:
        self._file.close()  # releases the lock


class AuditActor:
    """A Ray actor's body: the models for `options`, loaded once, reused for every recording it is given."""

    def __init__(self, options: AuditOptions) -> None:
        self.options = options
        auditor_for(options).warm_up()

    def ready(self) -> bool:
        return True

    def audit(self, path: str, name: str) -> AuditOutcome:
        return audit_one(Path(path), self.options, name=name)


def run_ray_audit(recordings: Sequence[Recording], options: AuditOptions, *, address: str | None,
                  cpus: int | None) -> int:
    """Audit `recordings` on Ray (a local instance when `address` is None); exit code 0, 1 (some recording
    failed) or 2 (nothing could start). Prints one summary JSON line on stdout and writes SUMMARY_FILE."""
    from tqdm import tqdm

    started = time.perf_counter()
    collisions = name_collisions(recordings)
    if collisions:
        for name, paths in sorted(collisions.items()):
            print(f"audit: {', '.join(paths)} would all write the report {name}.json", file=sys.stderr)
        return 2
    if address is not None:  # workers on other nodes do not share this working directory
        recordings = [Recording(r.path.resolve(), r.name) for r in recordings]
        options = replace(options, out_dir=options.out_dir.resolve())
    try:
        state = AuditState(options.out_dir / STATE_FILE)
    except StateLocked as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2
    run = _Run(state, options)
    bar = tqdm(total=len(recordings), desc="audit", unit="rec", file=sys.stderr)
    run.bar = bar
    try:
        todo = run.plan(recordings)
        if todo and (rc := _audit_on_ray(todo, run, address=address, cpus=cpus)):
            return rc
        bar.close()  # before the summary lines
        return run.finish(recordings, time.perf_counter() - started)  # still holding the lock
    finally:
        bar.close()
        state.close()


class _Run:
    """Counts, state records and progress of one run."""

    def __init__(self, state: AuditState, options: AuditOptions) -> None:
        self.state, self.options, self.options_key = state, options, options.key()
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.actors = 0
        self.bar: Any = None

    def plan(self, recordings: Sequence[Recording]) -> list[tuple[Recording, Fingerprint]]:
        """Skip what a previous run finished (logged "skipped"); returns the rest with their fingerprints."""
        todo = []
        for rec in recordings:
            try:
                fp = Fingerprint.of(rec.path)
            except OSError as exc:
                self.record(rec, None, AuditOutcome(str(rec.path), rec.name, "failed",
                                                    error=f"{type(exc).__name__}: {exc}"[:300]))
                continue
            previous = self.state.reusable(_key(rec), fp, self.options_key)
            if previous is None:
                todo.append((rec, fp))
            else:
                self.record(rec, fp, AuditOutcome(str(rec.path), rec.name, "done",
                                                  reports=tuple(previous["reports"]),
                                                  summary=previous.get("summary")), status="skipped")
        return todo

    def record(self, rec: Recording, fp: Fingerprint | None, outcome: AuditOutcome,
               status: str | None = None) -> None:
        status = status or outcome.status
        self.state.append({
            "key": _key(rec), "path": str(rec.path), "name": rec.name,
            "size": fp.size if fp else None, "mtime_ns": fp.mtime_ns if fp else None,
            "options": self.options_key, "status": status, "reports": list(outcome.reports),
            "error": outcome.error, "summary": outcome.summary, "wall_s": outcome.wall_s,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        })
        self.counts[status] += 1
        if self.bar is not None:
            self.bar.set_postfix(self.counts, refresh=False)  # shown by the update's refresh
            self.bar.update(1)

    def finish(self, recordings: Sequence[Recording], wall_s: float) -> int:
        """batch_summary.json (as the sequential path writes it), SUMMARY_FILE and the summary line."""
        audited, failed = [], []
        for rec in recordings:
            r = self.state.latest.get(_key(rec), {})
            if r.get("status") == "failed":
                failed.append({"file": str(rec.path), "error": r.get("error") or ""})
            elif r.get("summary"):
                audited.append(r["summary"])
        out = self.options.out_dir
        summary = {"recordings": len(recordings), **self.counts, "wall_s": round(wall_s, 2)}
        (out / "batch_summary.json").write_text(
            json.dumps({"audited": audited, "failed": failed}, ensure_ascii=False, indent=1), encoding="utf-8")
        (out / SUMMARY_FILE).write_text(json.dumps(
            {**summary, "actors": self.actors, "state_file": str(self.state.path), "failures": failed},
            ensure_ascii=False, indent=1), encoding="utf-8")
        for f in failed:
            print(f"{f['file']}: FAILED ({f['error']})", file=sys.stderr)
        print(json.dumps(summary), flush=True)
        return 1 if failed else 0


def _key(rec: Recording) -> str:
    return str(rec.path.resolve())


def _audit_on_ray(todo: list[tuple[Recording, Fingerprint]], run: _Run, *, address: str | None,
                  cpus: int | None) -> int:
    """Start (or join) Ray, run the actor pool over `todo`, recording each outcome; 2 if no actor starts."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline machines: no usage report attempts
    try:
        import ray
    except ModuleNotFoundError:
        print("audit: --ray needs Ray: pip install 'harken[cluster]'", file=sys.stderr)
        return 2
    started_here = not ray.is_initialized()  # a caller's Ray instance (tests, notebooks) is used, not shut down
    if started_here:
        try:
            if address is None:
                ray.init(num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES, logging_level=logging.WARNING)
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as exc:  # noqa: BLE001 - no cluster at that address, no room for a local one...
            print(f"audit: could not {'start' if address is None else 'join'} Ray: {exc}", file=sys.stderr)
            return 2
    try:
        available = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(len(todo), available if cpus is None else min(cpus, available)))
        # the workers see this process's HARKEN_* settings (model, beams, LLM...) on any node
        env = {k: v for k, v in os.environ.items() if k.startswith("HARKEN_")} | {"OMP_NUM_THREADS": "1"}
        actor_cls = ray.remote(num_cpus=1)(AuditActor)

        def spawn() -> Any:
            return actor_cls.options(runtime_env={"env_vars": env}).remote(run.options)

        actors = [spawn() for _ in range(n)]
        try:
            ray.get([a.ready.remote() for a in actors])  # models load in parallel; a bad setup fails here, once
        except ray.exceptions.RayError as exc:
            print(f"audit: the Ray workers could not start: {exc}", file=sys.stderr)
            return 2
        run.actors = n
        _pool(ray, actors, todo, run, spawn)
        return 0
    finally:
        if started_here:
            ray.shutdown()


def _pool(ray: Any, actors: list[Any], todo: list[tuple[Recording, Fingerprint]], run: _Run,
          spawn: Callable[[], Any]) -> None:
    """One recording in flight per actor; an actor that dies (a decoder crash, the OOM killer) fails its
    recording and is replaced, up to one replacement per actor."""
    pending = deque(todo)
    in_flight: dict[Any, tuple[Any, Recording, Fingerprint]] = {}
    replacements = len(actors)

    def give(actor: Any) -> None:
        if pending:
            rec, fp = pending.popleft()
            in_flight[actor.audit.remote(str(rec.path), rec.name)] = (actor, rec, fp)

    for actor in actors:
        give(actor)
    while in_flight:
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        actor, rec, fp = in_flight.pop(ref)
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            outcome = AuditOutcome(str(rec.path), rec.name, "failed", error=f"audit worker died: {exc}"[:300])
            actor = spawn() if replacements > 0 else None
            replacements -= 1
        except ray.exceptions.RayError as exc:
            outcome = AuditOutcome(str(rec.path), rec.name, "failed", error=f"{type(exc).__name__}: {exc}"[:300])
        run.record(rec, fp, outcome)
        if actor is not None:
            give(actor)
    for rec, fp in pending:  # every actor died and none could replace it
        run.record(rec, fp, AuditOutcome(str(rec.path), rec.name, "failed", error="no audit worker left"))
