"""REST routes for compliance review tickets: list/filter, create, get, assign, comment, close, reopen.

The service comes from `request.app.state.harken.tickets` (an `intelligence.tickets.TicketService`, built in
create_app with `pipelines.ticket_store.SqlTicketRepository` and an `AuditChain` on
`pipelines.audit_store.SqlAuditStorage`). A caller sees only its tenant's tickets (another tenant's id is a
404). The acting user is the signed-in user; a machine key may name the person it acts for in `X-Actor`.
Evidence quotes leave without card data. Service calls hit the database, so they run off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field

from api.auth import require, visible_session
from intelligence.access import Perm, Principal
from intelligence.redaction import redact_event_evidence
from intelligence.tickets import (
    Ticket,
    TicketConflict,
    TicketFilter,
    TicketNotFound,
    TicketService,
    TicketStatus,
)
from intelligence.types import Severity

READ = Depends(require(Perm.TICKETS_READ))
WRITE = Depends(require(Perm.TICKETS_WRITE))


class TicketCreate(BaseModel):
    session_id: str = Field(min_length=1, max_length=64)
    rule_id: str = Field(min_length=1, max_length=100)
    severity: Severity
    title: str = Field(min_length=1, max_length=500)
    pack: str = ""
    finding: dict[str, Any] = Field(default_factory=dict)


class AssignBody(BaseModel):
    assignee: str = Field(min_length=1, max_length=200)


class CommentBody(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class CloseBody(BaseModel):
    resolution: str = Field(min_length=1, max_length=10_000)


class ReopenBody(BaseModel):
    reason: str = Field(default="", max_length=10_000)


def _service(request: Request) -> TicketService:
    state = request.app.state.harken
    svc = getattr(state, "tickets", None) or getattr(state, "extras", {}).get("tickets")
    if svc is None:
        raise HTTPException(status_code=503, detail={"code": "tickets_unavailable",
                                                     "message": "ticket service is not configured"})
    return svc


def _error(exc: Exception) -> HTTPException:
    if isinstance(exc, TicketNotFound):
        return HTTPException(status_code=404, detail={"code": "not_found", "message": "no such ticket"})
    if isinstance(exc, TicketConflict):
        return HTTPException(status_code=409, detail={"code": "conflict", "message": str(exc)})
    return HTTPException(status_code=422, detail={"code": "invalid", "message": str(exc)})


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except (TicketNotFound, TicketConflict, ValueError) as exc:
        raise _error(exc) from exc


def _out(t: Ticket) -> dict[str, Any]:
    return redact_event_evidence(t.to_dict())


def _actor(p: Principal, x_actor: str | None) -> str:
    return x_actor if p.kind == "key" and x_actor else p.name


async def _own(request: Request, p: Principal, ticket_id: str) -> Ticket:
    """The ticket if it belongs to the caller's tenant; 404 otherwise (another tenant's id looks unknown)."""
    t = await _call(_service(request).get, ticket_id)
    if t.tenant_id != p.tenant_id:
        raise _error(TicketNotFound(ticket_id))
    return t


def _day(value: dt.date | None, *, end: bool = False) -> str | None:
    if value is None or (end and value == dt.date.max):
        return None  # no bound (the last representable day has no next day)
    day = value + dt.timedelta(days=1) if end else value
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).isoformat(timespec="seconds")


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tickets", tags=["tickets"])

    @router.get("")
    async def list_tickets(
        request: Request,
        status: TicketStatus | None = None,
        severity: Severity | None = None,
        session_id: str | None = None,
        assignee: str | None = None,
        rule_id: str | None = None,
        agent: str | None = Query(None, max_length=200),
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=2**62),
        p: Principal = READ,
    ) -> list[dict[str, Any]]:
        """The tenant's tickets, newest first; dates are UTC days, both ends included."""
        flt = TicketFilter(status, severity, session_id, assignee, rule_id, limit, offset, tenant_id=p.tenant_id,
                           agent=agent or None, created_from=_day(date_from), created_to=_day(date_to, end=True))
        tickets = await _call(_service(request).list, flt)
        return [_out(t) for t in tickets]

    @router.post("", status_code=201)
    async def create_ticket(request: Request, body: TicketCreate, p: Principal = WRITE,
                            x_actor: str | None = Header(None, max_length=200)) -> dict[str, Any]:
        row = await visible_session(request.app.state.harken, p, body.session_id)
        t = await _call(_service(request).create, session_id=body.session_id, rule_id=body.rule_id,
                        severity=body.severity, title=body.title, actor=_actor(p, x_actor), pack=body.pack,
                        finding=body.finding, tenant_id=p.tenant_id, agent=row.agent)
        return _out(t)

    @router.get("/{ticket_id}")
    async def get_ticket(request: Request, ticket_id: str, p: Principal = READ) -> dict[str, Any]:
        return _out(await _own(request, p, ticket_id))

    @router.post("/{ticket_id}/assign")
    async def assign(request: Request, ticket_id: str, body: AssignBody, p: Principal = WRITE,
                     x_actor: str | None = Header(None, max_length=200)) -> dict[str, Any]:
        await _own(request, p, ticket_id)
        return _out(await _call(_service(request).assign, ticket_id, body.assignee, actor=_actor(p, x_actor)))

    @router.post("/{ticket_id}/comments")
    async def comment(request: Request, ticket_id: str, body: CommentBody, p: Principal = WRITE,
                      x_actor: str | None = Header(None, max_length=200)) -> dict[str, Any]:
        await _own(request, p, ticket_id)
        return _out(await _call(_service(request).comment, ticket_id, body.text, actor=_actor(p, x_actor)))

    @router.post("/{ticket_id}/close")
    async def close(request: Request, ticket_id: str, body: CloseBody, p: Principal = WRITE,
                    x_actor: str | None = Header(None, max_length=200)) -> dict[str, Any]:
        await _own(request, p, ticket_id)
        return _out(await _call(_service(request).close, ticket_id, body.resolution, actor=_actor(p, x_actor)))

    @router.post("/{ticket_id}/reopen")
    async def reopen(request: Request, ticket_id: str, body: ReopenBody, p: Principal = WRITE,
                     x_actor: str | None = Header(None, max_length=200)) -> dict[str, Any]:
        await _own(request, p, ticket_id)
        return _out(await _call(_service(request).reopen, ticket_id, actor=_actor(p, x_actor), reason=body.reason))

    return router
