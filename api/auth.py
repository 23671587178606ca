"""Who is calling: the principal of a request or WebSocket, and the checks every route uses.

Credentials, in order: the console's sign-in cookie (`harken_session`), an API key (`Authorization: Bearer
hk_...`, `X-API-Key`, or `?api_key=` for clients that cannot set headers), the legacy shared key
(`HARKEN_API_KEY`, all scopes of the default tenant). With `HARKEN_AUTH=0` and no shared key, every caller is
the local operator. Cookie-authenticated requests that change something must echo the CSRF token
(`X-CSRF-Token`); cookie-authenticated WebSockets must come from our own origin.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, WebSocket

from intelligence.access import (
    DEFAULT_TENANT,
    Perm,
    Principal,
    key_principal,
    local_principal,
    user_principal,
)

SESSION_COOKIE = "harken_session"
CSRF_COOKIE = "harken_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _presented_key(conn: Request | WebSocket) -> str | None:
    auth = conn.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return conn.headers.get("x-api-key") or conn.query_params.get("api_key") or None


def _resolve(state: Any, conn: Request | WebSocket) -> Principal | None:
    """Blocking (database lookups): call through `principal_of`."""
    settings = state.settings
    token = conn.cookies.get(SESSION_COOKIE)
    identity = getattr(state, "identity", None)
    if token and identity is not None:
        ws = identity.web_session(token)
        if ws is not None:
            u = ws.user
            return user_principal(u.tenant_id, u.username, u.role, u.agent_id, ws.csrf_token)
    shared = getattr(settings, "api_key", None)
    auth_on = getattr(settings, "auth", True)
    key = _presented_key(conn)
    if key:
        if shared and hmac.compare_digest(key.encode(), shared.encode()):
            return key_principal(DEFAULT_TENANT, "shared", ["admin"])
        if identity is not None:
            rec = identity.verify_key(key)
            if rec is not None:
                return key_principal(rec.tenant_id, rec.id, rec.scopes)
        return None
    if not auth_on and not shared:
        return local_principal()
    return None


async def principal_of(conn: Request | WebSocket) -> Principal | None:
    state = conn.app.state.harken
    return await asyncio.to_thread(_resolve, state, conn)


def unauthorized() -> HTTPException:
    return HTTPException(status_code=401, detail={"code": "unauthorized",
                                                  "message": "sign in, or send an API key (Authorization: Bearer)"},
                         headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str = "your role or key does not allow this") -> HTTPException:
    return HTTPException(status_code=403, detail={"code": "forbidden", "message": message})


def require(*perms: Perm) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A dependency: the caller's principal, having every one of `perms` (401 unknown caller, 403 lacking)."""

    async def dependency(request: Request) -> Principal:
        p = await principal_of(request)
        if p is None:
            raise unauthorized()
        if p.kind == "user" and request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not p.csrf_token or not hmac.compare_digest(sent.encode(), p.csrf_token.encode()):
                raise HTTPException(status_code=403, detail={"code": "csrf",
                                                             "message": "missing or wrong X-CSRF-Token header"})
        if not all(p.can(perm) for perm in perms):
            raise forbidden()
        return p

    return dependency


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:  # not a browser: cookies cannot have been sent on someone else's behalf
        return True
    return urlsplit(origin).netloc == ws.headers.get("host", "")


async def websocket_principal(ws: WebSocket, *perms: Perm) -> Principal | None:
    """The principal of a WebSocket with every one of `perms`, or None (close it with 1008)."""
    p = await principal_of(ws)
    if p is None or not all(p.can(perm) for perm in perms):
        return None
    if p.kind == "user" and not _same_origin(ws):  # cross-site WebSocket hijacking
        return None
    return p


def not_found(what: str, ident: str) -> HTTPException:
    return HTTPException(status_code=404, detail={"code": "not_found", "message": f"no {what} {ident}"})


async def visible_session(state: Any, principal: Principal, session_id: str) -> Any:
    """The stored session row if `principal` may see it; 404 otherwise (another tenant's id looks unknown)."""
    row = await asyncio.to_thread(state.store.get_session, session_id)
    if row is None or not principal.sees_session(row.tenant_id, row.metadata):
        raise not_found("session", session_id)
    return row
