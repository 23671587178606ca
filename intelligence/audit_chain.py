"""Append-only, hash-chained audit trail (SHA-256).

Every record carries `seq`, `prev_hash`, `hash`, `timestamp`, `actor`, `action` and a JSON `payload`.
`hash = sha256(canonical JSON of seq, prev_hash, timestamp, actor, action, payload)` and `prev_hash` is the
previous record's hash (64 zeros for the first), so editing a record breaks its own hash, and deleting or
reordering records breaks the sequence and the links. Truncating the tail leaves a valid shorter chain; keep
the head hash somewhere else (a report, a ticket, another system) and pass it as `expected_head` to detect
that too.

Storage is behind the small `AuditStorage` protocol: an in-memory list, a JSON-lines file (here) or SQL
(`pipelines/audit_store.py`). The audit log is immutable, so payloads carry no transcript text: findings are
logged with a digest of their evidence text (a card number in an undeletable log would be a PCI breach).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from intelligence.types import Finding

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the audit trail."""

    seq: int
    prev_hash: str
    hash: str
    timestamp: str
    actor: str
    action: str
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> AuditRecord:
        return AuditRecord(int(d["seq"]), str(d["prev_hash"]), str(d["hash"]), str(d["timestamp"]), str(d["actor"]),
                           str(d["action"]), dict(d.get("payload") or {}))


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace, UTF-8) used for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(seq: int, prev_hash: str, timestamp: str, actor: str, action: str, payload: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical form of a record's content and its link to the previous record."""
    body = canonical_json({"seq": seq, "prev_hash": prev_hash, "timestamp": timestamp, "actor": actor,
                           "action": action, "payload": payload})
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class AuditConflict(RuntimeError):
    """Another writer appended a record with the same sequence number first; retry."""


class AuditStorage(Protocol):
    """Where records live. `append` must be atomic and must refuse a `seq` that already exists."""

    def append(self, record: AuditRecord) -> None: ...

    def last(self) -> AuditRecord | None: ...

    def iter_records(self) -> Iterator[AuditRecord]: ...


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of `verify_records`: ok, or the first bad record (seq, 0-based position) and why."""

    ok: bool
    checked: int
    head_hash: str | None = None
    bad_seq: int | None = None
    bad_index: int | None = None
    reason: str = ""


def verify_records(records: Iterable[AuditRecord], expected_head: str | None = None) -> VerifyResult:
    """Check hashes, sequence numbers and links in storage order; report the first problem."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for i, r in enumerate(records):
        recomputed = record_hash(r.seq, r.prev_hash, r.timestamp, r.actor, r.action, r.payload)
        if recomputed != r.hash:
            return VerifyResult(False, checked, prev_hash, r.seq, i, "hash mismatch: the record's content was edited")
        if r.seq != expected_seq:
            why = "deleted" if r.seq > expected_seq else "reordered or duplicated"
            return VerifyResult(False, checked, prev_hash, r.seq, i,
                                f"sequence break: expected seq {expected_seq}, found {r.seq} (records {why})")
        if r.prev_hash != prev_hash:
            return VerifyResult(False, checked, prev_hash, r.seq, i,
                                "broken link: prev_hash does not match the previous record (deleted, reordered or replaced)")
        prev_hash = r.hash
        expected_seq += 1
        checked += 1
    if expected_head is not None and prev_hash != expected_head:
        return VerifyResult(False, checked, prev_hash, None, checked,
                            "head hash differs from the anchored head (records after it were removed or replaced)")
    return VerifyResult(True, checked, prev_hash if checked else None)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AuditChain:
    """Appends records to a storage, linking each to the previous one. One chain object per storage."""

    def __init__(self, storage: AuditStorage, clock: Callable[[], dt.datetime] = _utc_now, retries: int = 5) -> None:
        self.storage = storage
        self._clock = clock
        self._retries = retries
        self._lock = threading.Lock()

    def append(self, actor: str, action: str, payload: Mapping[str, Any] | None = None) -> AuditRecord:
        """Append one record and return it (retries if another writer took the same sequence number)."""
        body = json.loads(canonical_json(dict(payload or {})))  # plain JSON types only, as stored
        with self._lock:
            for _ in range(self._retries):
                last = self.storage.last()
                seq = last.seq + 1 if last else 1
                prev = last.hash if last else GENESIS_HASH
                ts = self._clock().astimezone(dt.UTC).isoformat(timespec="microseconds")
                rec = AuditRecord(seq, prev, record_hash(seq, prev, ts, actor, action, body), ts, actor, action, body)
                try:
                    self.storage.append(rec)
                    return rec
                except AuditConflict:
                    continue
        raise AuditConflict(f"could not append after {self._retries} attempts")

    def verify(self, expected_head: str | None = None) -> VerifyResult:
        return verify_records(self.storage.iter_records(), expected_head)


class MemoryAuditStorage:
    """In-process storage (tests, single-run tools)."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def append(self, record: AuditRecord) -> None:
        if self.records and record.seq <= self.records[-1].seq:
            raise AuditConflict(f"seq {record.seq} already exists")
        self.records.append(record)

    def last(self) -> AuditRecord | None:
        return self.records[-1] if self.records else None

    def iter_records(self) -> Iterator[AuditRecord]:
        return iter(list(self.records))


class JsonlAuditStorage:
    """One JSON object per line, appended with fsync. Single writer process (use SQL for several)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._last: AuditRecord | None = None
        self._loaded = False

    def _load_last(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.path.exists():
            return
        last_line = ""
        with self.path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    last_line = line.decode("utf-8")
        if last_line:
            self._last = AuditRecord.from_dict(json.loads(last_line))

    def append(self, record: AuditRecord) -> None:
        self._load_last()
        if self._last is not None and record.seq <= self._last.seq:
            raise AuditConflict(f"seq {record.seq} already exists")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._last = record

    def last(self) -> AuditRecord | None:
        self._load_last()
        return self._last

    def iter_records(self) -> Iterator[AuditRecord]:
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield AuditRecord.from_dict(json.loads(line))


def text_digest(text: str) -> str:
    """SHA-256 of a text, so the log can prove what evidence was seen without storing it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def finding_payload(finding: Finding) -> dict[str, Any]:
    """Audit payload of a finding: everything but the evidence text, which is replaced by its digest."""
    d = finding.to_dict()
    d["evidence"] = [
        {k: v for k, v in ev.items() if k != "text"} | {"text_sha256": text_digest(ev.get("text", ""))}
        for ev in d.get("evidence", [])
    ]
    return d


def record_finding(chain: AuditChain, finding: Finding, actor: str = "compliance-engine") -> AuditRecord:
    """Log a finding (action `finding.raised`)."""
    return chain.append(actor, "finding.raised", finding_payload(finding))


def record_config_change(chain: AuditChain, actor: str, what: str, before: Any, after: Any) -> AuditRecord:
    """Log a configuration change (action `config.changed`), e.g. policy packs loaded or replaced."""
    return chain.append(actor, "config.changed", {"what": what, "before": before, "after": after})
