"""Review tickets for compliance violations: domain objects and a persistence-agnostic service.

A ticket is opened from a finding (or by hand), then assigned, commented on and closed (and may be reopened).
Tickets are immutable values; the service stores new versions through a `TicketRepository` (in memory here,
SQL in `pipelines/ticket_store.py`) and writes every change to the audit trail (`AuditSink`, satisfied by
`intelligence.audit_chain.AuditChain`). Comment text is personal data, so the audit record keeps its digest.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from intelligence.audit_chain import finding_payload, text_digest
from intelligence.types import Finding, Severity


class TicketStatus(enum.StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Comment:
    author: str
    text: str
    at: str


@dataclass(frozen=True, slots=True)
class Ticket:
    """A violation to review. `finding` is the finding's dict (with evidence) when opened from one."""

    id: str
    session_id: str
    rule_id: str
    severity: Severity
    title: str
    status: TicketStatus
    created_at: str
    updated_at: str
    created_by: str
    assignee: str | None = None
    pack: str = ""
    finding: dict[str, Any] = field(default_factory=dict)
    comments: tuple[Comment, ...] = ()
    resolution: str | None = None
    closed_at: str | None = None
    version: int = 1
    tenant_id: str = "default"  # the owning tenant (that of the session)
    agent: str | None = None  # the agent the call was tagged with, for filtering the queue

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = self.severity.value
        d["status"] = self.status.value
        d["type"] = "ticket"
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Ticket:
        return Ticket(
            id=d["id"], session_id=d["session_id"], rule_id=d["rule_id"], severity=Severity(d["severity"]),
            title=d["title"], status=TicketStatus(d["status"]), created_at=d["created_at"], updated_at=d["updated_at"],
            created_by=d["created_by"], assignee=d.get("assignee"), pack=d.get("pack", ""),
            finding=dict(d.get("finding") or {}),
            comments=tuple(Comment(**c) for c in d.get("comments") or ()), resolution=d.get("resolution"),
            closed_at=d.get("closed_at"), version=int(d.get("version", 1)),
            tenant_id=d.get("tenant_id") or "default", agent=d.get("agent"),
        )


@dataclass(frozen=True, slots=True)
class TicketFilter:
    """List filter; None means any. Results are newest first."""

    status: TicketStatus | None = None
    severity: Severity | None = None
    session_id: str | None = None
    assignee: str | None = None
    rule_id: str | None = None
    limit: int = 100
    offset: int = 0
    tenant_id: str | None = None
    agent: str | None = None
    created_from: str | None = None  # ISO-8601 UTC, inclusive
    created_to: str | None = None  # ISO-8601 UTC, exclusive

    def matches(self, t: Ticket) -> bool:
        return (
            (self.tenant_id is None or t.tenant_id == self.tenant_id)
            and (self.agent is None or t.agent == self.agent)
            and (self.created_from is None or t.created_at >= self.created_from)
            and (self.created_to is None or t.created_at < self.created_to)
            and (self.status is None or t.status == self.status)
            and (self.severity is None or t.severity == self.severity)
            and (self.session_id is None or t.session_id == self.session_id)
            and (self.assignee is None or t.assignee == self.assignee)
            and (self.rule_id is None or t.rule_id == self.rule_id)
        )


class TicketNotFound(KeyError):
    """No ticket with that id."""


class TicketConflict(RuntimeError):
    """The change is not allowed in the ticket's state, or another writer changed it first."""


class TicketRepository(Protocol):
    """Persistence for tickets. `update` must fail with TicketConflict if the stored version is not
    `ticket.version - 1` (optimistic concurrency)."""

    def add(self, ticket: Ticket) -> None: ...

    def get(self, ticket_id: str) -> Ticket | None: ...

    def update(self, ticket: Ticket) -> None: ...

    def list(self, flt: TicketFilter) -> list[Ticket]: ...


class AuditSink(Protocol):
    def append(self, actor: str, action: str, payload: Mapping[str, Any] | None = None) -> Any: ...


class MemoryTicketRepository:
    """In-memory repository (tests, single-process tools)."""

    def __init__(self) -> None:
        self._items: dict[str, Ticket] = {}

    def add(self, ticket: Ticket) -> None:
        if ticket.id in self._items:
            raise TicketConflict(f"ticket {ticket.id} exists")
        self._items[ticket.id] = ticket

    def get(self, ticket_id: str) -> Ticket | None:
        return self._items.get(ticket_id)

    def update(self, ticket: Ticket) -> None:
        cur = self._items.get(ticket.id)
        if cur is None:
            raise TicketNotFound(ticket.id)
        if cur.version != ticket.version - 1:
            raise TicketConflict(f"ticket {ticket.id} changed concurrently")
        self._items[ticket.id] = ticket

    def list(self, flt: TicketFilter) -> list[Ticket]:
        items = sorted((t for t in self._items.values() if flt.matches(t)), key=lambda t: (t.created_at, t.id),
                       reverse=True)
        return items[flt.offset : flt.offset + flt.limit]


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class TicketService:
    """Create, list, filter, assign, comment, close and reopen tickets; every change is audited."""

    def __init__(self, repo: TicketRepository, audit: AuditSink, *, clock: Callable[[], str] = _now_iso,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.repo = repo
        self.audit = audit
        self._clock = clock
        self._new_id = new_id

    def create(self, *, session_id: str, rule_id: str, severity: Severity, title: str, actor: str,
               pack: str = "", finding: Mapping[str, Any] | None = None, tenant_id: str = "default",
               agent: str | None = None) -> Ticket:
        now = self._clock()
        t = Ticket(self._new_id(), session_id, rule_id, severity, title, TicketStatus.OPEN, now, now, actor,
                   pack=pack, finding=dict(finding or {}), tenant_id=tenant_id, agent=agent)
        self.repo.add(t)
        self.audit.append(actor, "ticket.created", {"ticket_id": t.id, "session_id": session_id, "rule_id": rule_id,
                                                     "severity": severity.value, "title": title,
                                                     "tenant": tenant_id})
        return t

    def create_from_finding(self, finding: Finding, *, actor: str = "compliance-engine", title: str = "",
                            tenant_id: str = "default", agent: str | None = None) -> Ticket:
        """Open a ticket for a finding (the finding's evidence stays on the ticket, not in the audit log)."""
        t = self.create(session_id=finding.session_id, rule_id=finding.rule_id, severity=finding.severity,
                        title=title or finding.message, actor=actor, pack=finding.pack, finding=finding.to_dict(),
                        tenant_id=tenant_id, agent=agent)
        self.audit.append(actor, "ticket.finding_attached", {"ticket_id": t.id, "finding": finding_payload(finding),
                                                            "tenant": tenant_id})
        return t

    def get(self, ticket_id: str) -> Ticket:
        t = self.repo.get(ticket_id)
        if t is None:
            raise TicketNotFound(ticket_id)
        return t

    def list(self, flt: TicketFilter | None = None) -> list[Ticket]:
        return self.repo.list(flt or TicketFilter())

    def _save(self, old: Ticket, new: Ticket, actor: str, action: str, details: Mapping[str, Any]) -> Ticket:
        new = replace(new, updated_at=self._clock(), version=old.version + 1)
        self.repo.update(new)
        self.audit.append(actor, action, {"ticket_id": new.id, "version": new.version, "tenant": new.tenant_id,
                                          **details})
        return new

    def assign(self, ticket_id: str, assignee: str, *, actor: str) -> Ticket:
        t = self.get(ticket_id)
        if t.status == TicketStatus.CLOSED:
            raise TicketConflict("a closed ticket cannot be assigned; reopen it first")
        if not assignee.strip():
            raise ValueError("assignee must not be empty")
        return self._save(t, replace(t, assignee=assignee, status=TicketStatus.ASSIGNED), actor, "ticket.assigned",
                          {"from": t.assignee, "to": assignee})

    def comment(self, ticket_id: str, text: str, *, actor: str) -> Ticket:
        t = self.get(ticket_id)
        if not text.strip():
            raise ValueError("comment must not be empty")
        c = Comment(actor, text, self._clock())
        return self._save(t, replace(t, comments=(*t.comments, c)), actor, "ticket.commented",
                          {"comment_sha256": text_digest(text), "comment_chars": len(text)})

    def close(self, ticket_id: str, resolution: str, *, actor: str) -> Ticket:
        t = self.get(ticket_id)
        if t.status == TicketStatus.CLOSED:
            raise TicketConflict("ticket is already closed")
        if not resolution.strip():
            raise ValueError("a resolution is required to close a ticket")
        now = self._clock()
        return self._save(t, replace(t, status=TicketStatus.CLOSED, resolution=resolution, closed_at=now), actor,
                          "ticket.closed", {"resolution_sha256": text_digest(resolution)})

    def reopen(self, ticket_id: str, *, actor: str, reason: str = "") -> Ticket:
        t = self.get(ticket_id)
        if t.status != TicketStatus.CLOSED:
            raise TicketConflict("only a closed ticket can be reopened")
        status = TicketStatus.ASSIGNED if t.assignee else TicketStatus.OPEN
        return self._save(t, replace(t, status=status, resolution=None, closed_at=None), actor, "ticket.reopened",
                          {"reason_sha256": text_digest(reason)})

    def open_for_findings(self, findings: Sequence[Finding], *, min_severity: Severity = Severity.HIGH,
                          actor: str = "compliance-engine") -> list[Ticket]:
        """Open one ticket per finding at or above `min_severity` (the live pipeline's default policy)."""
        order = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2}
        return [self.create_from_finding(f, actor=actor) for f in findings if order[f.severity] >= order[min_severity]]
