"""Review tickets: service lifecycle with audit records, SQL repository (encrypted body), REST routes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.tickets_routes import build_router
from intelligence.audit_chain import AuditChain, MemoryAuditStorage
from intelligence.crypto_at_rest import EnvelopeCipher, Keyring, generate_key
from intelligence.tickets import (
    MemoryTicketRepository,
    TicketConflict,
    TicketFilter,
    TicketNotFound,
    TicketService,
    TicketStatus,
)
from intelligence.types import Evidence, Finding, Severity
from pipelines.audit_store import SqlAuditStorage
from pipelines.ticket_store import SqlTicketRepository, tickets_table

FINDING = Finding("call-7", "pci_pan_spoken", "pci_dss", "2026.11.1", Severity.HIGH, "present",
                  "Full card number spoken", (Evidence("t3.s1", 1, 32.8, 38.9, "4539 1488 0343 6467"),), 32.8)


def _ids():
    n = iter(range(1, 1000))
    return lambda: f"T{next(n):03d}"


def _service(repo=None, audit=None):
    return TicketService(repo or MemoryTicketRepository(), audit or AuditChain(MemoryAuditStorage()), new_id=_ids())


def test_lifecycle_is_audited() -> None:
    audit = AuditChain(MemoryAuditStorage())
    svc = _service(audit=audit)
    t = svc.create_from_finding(FINDING)
    assert t.status == TicketStatus.OPEN and t.finding["evidence"][0]["text"] == "4539 1488 0343 6467"
    t = svc.assign(t.id, "qa.lead", actor="supervisor")
    assert t.status == TicketStatus.ASSIGNED and t.version == 2
    t = svc.comment(t.id, "Customer read the PAN; recording muted.", actor="qa.lead")
    t = svc.close(t.id, "Redacted and coached the agent.", actor="qa.lead")
    assert t.status == TicketStatus.CLOSED and t.closed_at and len(t.comments) == 1
    with pytest.raises(TicketConflict):
        svc.assign(t.id, "someone", actor="x")
    t = svc.reopen(t.id, actor="auditor", reason="recheck")
    assert t.status == TicketStatus.ASSIGNED and t.resolution is None
    actions = [r.action for r in audit.storage.iter_records()]
    assert actions == ["ticket.created", "ticket.finding_attached", "ticket.assigned", "ticket.commented",
                       "ticket.closed", "ticket.reopened"]
    assert audit.verify().ok
    dumped = str([r.payload for r in audit.storage.iter_records()])
    assert "4539" not in dumped and "muted" not in dumped  # no transcript or comment text in the immutable log


def test_validation_and_not_found() -> None:
    svc = _service()
    t = svc.create_from_finding(FINDING)
    with pytest.raises(ValueError):
        svc.comment(t.id, "   ", actor="x")
    with pytest.raises(ValueError):
        svc.close(t.id, "", actor="x")
    with pytest.raises(TicketNotFound):
        svc.get("nope")
    with pytest.raises(TicketConflict):
        svc.reopen(t.id, actor="x")


def test_open_for_findings_respects_severity() -> None:
    svc = _service()
    low = Finding("call-7", "cc_dead_air", "contact_center", "1", Severity.LOW, "present", "silence")
    made = svc.open_for_findings([FINDING, low])
    assert [t.rule_id for t in made] == ["pci_pan_spoken"]


def test_sql_repository_filters_encrypts_and_detects_concurrent_updates(tmp_path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 't.db'}")
    cipher = EnvelopeCipher(Keyring({"k1": generate_key()}, "k1"))
    repo = SqlTicketRepository(engine, cipher=cipher)
    audit = AuditChain(SqlAuditStorage(engine))
    svc = TicketService(repo, audit, new_id=_ids(), clock=iter([f"2026-11-26T12:00:{i:02d}+00:00" for i in range(60)]).__next__)
    t1 = svc.create_from_finding(FINDING)
    t2 = svc.create(session_id="call-8", rule_id="cn_prohibited_promise", severity=Severity.HIGH, title="保本保息",
                    actor="engine")
    svc.assign(t2.id, "wang", actor="lead")
    assert [t.id for t in svc.list()] == [t2.id, t1.id]  # newest first
    assert [t.id for t in svc.list(TicketFilter(status=TicketStatus.ASSIGNED))] == [t2.id]
    assert [t.id for t in svc.list(TicketFilter(session_id="call-7"))] == [t1.id]
    assert svc.list(TicketFilter(assignee="nobody")) == []
    assert svc.get(t1.id).finding["evidence"][0]["text"] == "4539 1488 0343 6467"
    with engine.connect() as conn:
        raw = conn.execute(sa.select(tickets_table.c.body).where(tickets_table.c.id == t1.id)).scalar_one()
    assert b"4539" not in raw and raw.startswith(b"HKE1")
    stale = svc.get(t1.id)
    svc.comment(t1.id, "first", actor="a")
    from dataclasses import replace

    with pytest.raises(TicketConflict):
        repo.update(replace(stale, version=stale.version + 1, title="lost update"))
    assert audit.verify().ok
    engine.dispose()


@pytest.fixture()
def client():
    from pipelines.store import Store

    app = FastAPI()
    svc = _service()
    store = Store("sqlite://")
    store.create_session("call-9", "websocket", "en", ["agent", "customer"], {})
    app.state.harken = SimpleNamespace(settings=SimpleNamespace(api_key="k", auth=True), tickets=svc, store=store)
    app.include_router(build_router())
    with TestClient(app) as c:
        yield c, svc
    store.close()


def test_routes(client) -> None:
    c, svc = client
    h = {"x-api-key": "k", "x-actor": "qa.lead"}
    assert c.get("/v1/tickets").status_code == 401
    r = c.post("/v1/tickets", json={"session_id": "call-9", "rule_id": "pci_cvv_spoken", "severity": "high",
                                    "title": "CVV spoken"}, headers=h)
    assert r.status_code == 201
    tid = r.json()["id"]
    assert c.post(f"/v1/tickets/{tid}/assign", json={"assignee": "amy"}, headers=h).json()["status"] == "assigned"
    assert len(c.post(f"/v1/tickets/{tid}/comments", json={"text": "checked"}, headers=h).json()["comments"]) == 1
    assert c.post(f"/v1/tickets/{tid}/close", json={"resolution": "ok"}, headers=h).json()["status"] == "closed"
    assert c.post(f"/v1/tickets/{tid}/close", json={"resolution": "again"}, headers=h).status_code == 409
    assert c.get("/v1/tickets/missing", headers=h).status_code == 404
    assert [t["id"] for t in c.get("/v1/tickets?status=closed&severity=high", headers=h).json()] == [tid]
    assert c.get("/v1/tickets?status=bogus", headers=h).status_code == 422
    assert c.post(f"/v1/tickets/{tid}/comments", json={"text": ""}, headers=h).status_code == 422
    actors = {r.actor for r in svc.audit.storage.iter_records()}
    assert actors == {"qa.lead"}


def test_routes_without_service_return_503() -> None:
    app = FastAPI()
    app.state.harken = SimpleNamespace(settings=SimpleNamespace(api_key=None, auth=False))
    app.include_router(build_router())
    with TestClient(app) as c:
        r = c.get("/v1/tickets")
    assert r.status_code == 503 and r.json()["detail"]["code"] == "tickets_unavailable"
