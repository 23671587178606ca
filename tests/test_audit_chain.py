"""Hash-chained audit trail: append, verify, and detection of edits, deletions and reordering (memory, file, SQL)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest
import sqlalchemy as sa

from api.cli import main as harken
from intelligence.audit_chain import (
    GENESIS_HASH,
    AuditChain,
    JsonlAuditStorage,
    MemoryAuditStorage,
    finding_payload,
    record_config_change,
    record_finding,
    verify_records,
)
from intelligence.types import Evidence, Finding, Severity
from pipelines.audit_store import SqlAuditStorage, audit_log_table


def _clock():
    t = [dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)]

    def now() -> dt.datetime:
        t[0] += dt.timedelta(seconds=1)
        return t[0]

    return now


def _fill(chain: AuditChain, n: int = 5) -> None:
    finding = Finding("s1", "pci_pan_spoken", "pci_dss", "1", Severity.HIGH, "present", "Full card number spoken",
                      (Evidence("t3.s1", 1, 30.0, 34.0, "4539 1488 0343 6467"),), 30.0)
    record_config_change(chain, "admin", "policy_packs", None, [{"id": "pci_dss", "version": "1"}])
    record_finding(chain, finding)
    for i in range(n - 2):
        chain.append("reviewer", "ticket.commented", {"ticket_id": "t1", "n": i})


def test_chain_links_and_verifies() -> None:
    chain = AuditChain(MemoryAuditStorage(), clock=_clock())
    _fill(chain)
    recs = list(chain.storage.iter_records())
    assert [r.seq for r in recs] == [1, 2, 3, 4, 5]
    assert recs[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(recs, recs[1:], strict=False))
    result = chain.verify()
    assert result.ok and result.checked == 5 and result.head_hash == recs[-1].hash


def test_finding_payload_keeps_no_transcript_text() -> None:
    chain = AuditChain(MemoryAuditStorage(), clock=_clock())
    _fill(chain)
    rec = next(r for r in chain.storage.iter_records() if r.action == "finding.raised")
    dumped = json.dumps(rec.payload)
    assert "4539" not in dumped and "text_sha256" in dumped


def test_detects_edit_delete_reorder_and_truncation() -> None:
    chain = AuditChain(MemoryAuditStorage(), clock=_clock())
    _fill(chain)
    recs = list(chain.storage.iter_records())
    edited = [*recs[:2], replace(recs[2], actor="someone-else"), *recs[3:]]
    r = verify_records(edited)
    assert not r.ok and r.bad_seq == 3 and "edited" in r.reason
    deleted = recs[:2] + recs[3:]
    r = verify_records(deleted)
    assert not r.ok and r.bad_seq == 4 and "deleted" in r.reason
    swapped = [recs[0], recs[2], recs[1], *recs[3:]]
    r = verify_records(swapped)
    assert not r.ok and r.bad_seq == 3
    # an attacker who edits a record and recomputes its hash still breaks the next link
    from intelligence.audit_chain import record_hash

    forged = replace(recs[1], payload={"forged": True})
    forged = replace(forged, hash=record_hash(forged.seq, forged.prev_hash, forged.timestamp, forged.actor,
                                              forged.action, forged.payload))
    r = verify_records([recs[0], forged, *recs[2:]])
    assert not r.ok and r.bad_seq == 3 and "link" in r.reason
    # truncating the tail is only visible against an anchored head hash
    assert verify_records(recs[:3]).ok
    r = verify_records(recs[:3], expected_head=recs[-1].hash)
    assert not r.ok and "head" in r.reason


def test_jsonl_file_and_cli_verify(tmp_path, capsys) -> None:
    path = tmp_path / "audit.jsonl"
    _fill(AuditChain(JsonlAuditStorage(path), clock=_clock()))
    chain2 = AuditChain(JsonlAuditStorage(path), clock=_clock())  # a new process continues the chain
    chain2.append("admin", "config.changed", {"what": "retention"})
    assert harken(["audit-log", "verify", "--path", str(path)]) == 0
    assert "6 records" in capsys.readouterr().out
    lines = path.read_text().splitlines()
    rec = json.loads(lines[3])
    rec["payload"]["n"] = 99
    lines[3] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    assert harken(["audit-log", "verify", "--path", str(path)]) == 1
    assert "seq=4" in capsys.readouterr().err
    del lines[3]
    path.write_text("\n".join(lines) + "\n")
    assert harken(["audit-log", "verify", "--path", str(path)]) == 1


def test_sql_storage_rejects_duplicate_seq_and_cli_detects_tampering(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = sa.create_engine(url)
    storage = SqlAuditStorage(engine)
    chain = AuditChain(storage, clock=_clock())
    _fill(chain, 6)
    assert storage.count() == 6 and chain.verify().ok
    from intelligence.audit_chain import AuditConflict

    with pytest.raises(AuditConflict):
        storage.append(storage.last())
    assert harken(["audit-log", "verify", "--db", url]) == 0
    with engine.begin() as conn:
        conn.execute(audit_log_table.delete().where(audit_log_table.c.seq == 2))
    engine.dispose()
    assert harken(["audit-log", "verify", "--db", url]) == 1
    err = capsys.readouterr().err
    assert "seq=3" in err and "deleted" in err


def test_two_chains_on_one_store_do_not_fork(tmp_path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    a, b = AuditChain(SqlAuditStorage(engine)), AuditChain(SqlAuditStorage(engine))
    for i in range(4):
        (a if i % 2 else b).append("x", "y", {"i": i})
    assert a.verify().ok and a.verify().checked == 4
    engine.dispose()


def test_finding_payload_shape() -> None:
    f = Finding("s", "r", "p", "1", Severity.LOW, "absent", "m", (Evidence("a", 0, 0.0, 1.0, "secret"),))
    p = finding_payload(f)
    assert p["evidence"][0]["segment_id"] == "a" and "text" not in p["evidence"][0]


def test_pack_loading_is_recorded_as_a_configuration_change() -> None:
    from intelligence.compliance import load_packs

    chain = AuditChain(MemoryAuditStorage(), clock=_clock())
    packs = load_packs(["pci_dss", "cn_dual_recording"])
    rec = record_config_change(chain, "admin", "policy_packs", None, [p.describe() for p in packs])
    assert [p["id"] for p in rec.payload["after"]] == ["pci_dss", "cn_dual_recording"]
    assert all(len(p["sha256"]) == 64 for p in rec.payload["after"])
    assert chain.verify().ok
