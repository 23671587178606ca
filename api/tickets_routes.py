"""REST routes for compliance review tickets: list/filter, create, get, assign, comment, close, reopen.

The service comes from `request.app.state.harken.tickets` (an `intelligence.tickets.TicketService`, built in
create_app with `pipelines.ticket_store.SqlTicketRepository` and an `AuditChain` on
`pipelines.audit_store.SqlAuditStorage`). The acting user is taken from the `X-Actor` header (the API key
identifies the client, not the person). Service calls hit the database, so they run off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field

from api.auth import require_api_key
from intelligence.tickets import TicketConflict, TicketFilter, TicketNotFound, TicketService, TicketStatus
from intelligence.types import Severity


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


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/tickets", dependencies=[Depends(require_api_key)], tags=["tickets"])

    @router.get("")
    async def list_tickets(
        request: Request,
        status: TicketStatus | None = None,
        severity: Severity | None = None,
        session_id: str | None = None,
        assignee: str | None = None,
        rule_id: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0),
    ) -> list[dict[str, Any]]:
        flt = TicketFilter(status, severity, session_id, assignee, rule_id, limit, offset)
        tickets = await _call(_service(request).list, flt)
        return [t.to_dict() for t in tickets]

    @router.post("", status_code=201)
    async def create_ticket(request: Request, body: TicketCreate,
                            x_actor: str = Header("api", max_length=200)) -> dict[str, Any]:
        t = await _call(_service(request).create, session_id=body.session_id, rule_id=body.rule_id,
                        severity=body.severity, title=body.title, actor=x_actor, pack=body.pack, finding=body.finding)
        return t.to_dict()

    @router.get("/{ticket_id}")
    async def get_ticket(request: Request, ticket_id: str) -> dict[str, Any]:
        return (await _call(_service(request).get, ticket_id)).to_dict()

    @router.post("/{ticket_id}/assign")
    async def assign(request: Request, ticket_id: str, body: AssignBody,
                     x_actor: str = Header("api", max_length=200)) -> dict[str, Any]:
        return (await _call(_service(request).assign, ticket_id, body.assignee, actor=x_actor)).to_dict()

    @router.post("/{ticket_id}/comments")
    async def comment(request: Request, ticket_id: str, body: CommentBody,
                      x_actor: str = Header("api", max_length=200)) -> dict[str, Any]:
        return (await _call(_service(request).comment, ticket_id, body.text, actor=x_actor)).to_dict()

    @router.post("/{ticket_id}/close")
    async def close(request: Request, ticket_id: str, body: CloseBody,
                    x_actor: str = Header("api", max_length=200)) -> dict[str, Any]:
        return (await _call(_service(request).close, ticket_id, body.resolution, actor=x_actor)).to_dict()

    @router.post("/{ticket_id}/reopen")
    async def reopen(request: Request, ticket_id: str, body: ReopenBody,
                     x_actor: str = Header("api", max_length=200)) -> dict[str, Any]:
        return (await _call(_service(request).reopen, ticket_id, actor=x_actor, reason=body.reason)).to_dict()

    return router
