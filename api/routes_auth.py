"""Console sign-in (cookie + CSRF token), users and API keys of a tenant, and the tenant's audit log.

Every sign-in, failed sign-in, user change and key change is appended to the hash-chained audit log, without
passwords and, for failures, with a digest of the username rather than the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from api.auth import CSRF_COOKIE, SESSION_COOKIE, principal_of, require, unauthorized
from intelligence.access import SCOPES, Perm, Principal, Role
from intelligence.audit_chain import text_digest
from pipelines.identity_store import MIN_PASSWORD_CHARS, IdentityError


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    role: Role
    password: str = Field(min_length=MIN_PASSWORD_CHARS, max_length=1000)
    agent_id: str | None = Field(None, max_length=200)


class RoleBody(BaseModel):
    role: Role


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES))


def _identity(request: Request) -> Any:
    identity = getattr(request.app.state.harken, "identity", None)
    if identity is None:
        raise HTTPException(status_code=503, detail={"code": "starting", "message": "service is starting"})
    return identity


async def _audit(request: Request, actor: str, action: str, payload: dict[str, Any]) -> None:
    audit = request.app.state.harken.audit
    if audit is not None:
        await asyncio.to_thread(audit.append, actor, action, payload)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _secure_cookie(request: Request) -> bool:
    mode = request.app.state.harken.settings.cookie_secure
    if mode != "auto":
        return mode == "always"
    if request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https":
        return True
    host = (request.url.hostname or "").strip("[]")
    if host == "localhost":
        return True  # browsers treat loopback as a secure context and keep Secure cookies over http there
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _me(p: Principal) -> dict[str, Any]:
    return {"username": p.name, "tenant": p.tenant_id, "role": p.role.value if p.role else None,
            "kind": p.kind, "agent_id": p.agent_id, "csrf_token": p.csrf_token,
            "permissions": sorted(perm.value for perm in p.perms)}


def _bad(exc: IdentityError) -> HTTPException:
    msg = str(exc)
    code = 409 if "exists" in msg else 404 if msg.startswith("no ") else 422
    return HTTPException(status_code=code, detail={"code": "invalid" if code == 422 else
                                                   "conflict" if code == 409 else "not_found", "message": msg})


def build_router() -> APIRouter:
    router = APIRouter(tags=["auth"])

    @router.post("/v1/auth/login")
    async def login(request: Request, response: Response, body: LoginBody) -> dict[str, Any]:
        """Sign in to the console: sets an HTTP-only session cookie and returns the CSRF token to echo."""
        state = request.app.state.harken
        identity = _identity(request)
        addr = _client_address(request)
        limiter = state.login_limiter
        wait_s = limiter.retry_after_s(addr, body.username)
        if wait_s > 0:
            await _audit(request, "anonymous", "auth.login_throttled",
                         {"username_sha256": text_digest(body.username)})
            raise HTTPException(status_code=429, headers={"Retry-After": str(int(wait_s) + 1)},
                                detail={"code": "rate_limited",
                                        "message": f"too many failed sign-ins; try again in {int(wait_s) + 1} s"})
        user = await asyncio.to_thread(identity.authenticate, body.username, body.password)
        if user is None:
            limiter.failed(addr, body.username)
            await _audit(request, "anonymous", "auth.login_failed", {"username_sha256": text_digest(body.username)})
            raise HTTPException(status_code=401, detail={"code": "bad_credentials",
                                                         "message": "wrong username or password"})
        limiter.succeeded(addr, body.username)
        token, ws = await asyncio.to_thread(identity.open_web_session, user, state.settings.web_session_ttl_s)
        secure = _secure_cookie(request)
        max_age = int(state.settings.web_session_ttl_s)
        response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, secure=secure, samesite="strict",
                            path="/")
        # readable by the page, which echoes it in X-CSRF-Token; useless to another site (same-origin policy)
        response.set_cookie(CSRF_COOKIE, ws.csrf_token, max_age=max_age, httponly=False, secure=secure,
                            samesite="strict", path="/")
        await _audit(request, user.username, "auth.login", {"tenant": user.tenant_id, "role": user.role.value})
        from intelligence.access import user_principal

        return _me(user_principal(user.tenant_id, user.username, user.role, user.agent_id, ws.csrf_token))

    @router.post("/v1/auth/logout", status_code=204)
    async def logout(request: Request, response: Response,
                     p: Principal = Depends(require())) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await asyncio.to_thread(_identity(request).close_web_session, token)
            await _audit(request, p.name, "auth.logout", {"tenant": p.tenant_id})
        out = Response(status_code=204)
        out.delete_cookie(SESSION_COOKIE, path="/")
        out.delete_cookie(CSRF_COOKIE, path="/")
        return out

    @router.get("/v1/auth/me")
    async def me(request: Request) -> dict[str, Any]:
        """The signed-in user or key: tenant, role, permissions and (cookie sessions) the CSRF token."""
        p = await principal_of(request)
        if p is None:
            raise unauthorized()
        return _me(p)

    # -- users of the caller's tenant ------------------------------------------------------------------------
    @router.get("/v1/users")
    async def list_users(request: Request, p: Principal = Depends(require(Perm.USERS_ADMIN))) -> list[dict]:
        users = await asyncio.to_thread(_identity(request).list_users, p.tenant_id)
        return [u.to_dict() for u in users]

    @router.post("/v1/users", status_code=201)
    async def add_user(request: Request, body: UserCreate,
                       p: Principal = Depends(require(Perm.USERS_ADMIN))) -> dict[str, Any]:
        try:
            user = await asyncio.to_thread(_identity(request).add_user, body.username, body.password, body.role,
                                           p.tenant_id, body.agent_id)
        except IdentityError as exc:
            raise _bad(exc) from exc
        await _audit(request, p.name, "user.added", {"tenant": p.tenant_id, "username": user.username,
                                                     "role": user.role.value})
        return user.to_dict()

    async def _own_user(request: Request, p: Principal, username: str) -> Any:
        user = await asyncio.to_thread(_identity(request).get_user, username)
        if user is None or user.tenant_id != p.tenant_id:
            raise HTTPException(status_code=404, detail={"code": "not_found", "message": f"no user {username}"})
        return user

    @router.post("/v1/users/{username}/disable")
    async def disable_user(request: Request, username: str,
                           p: Principal = Depends(require(Perm.USERS_ADMIN))) -> dict[str, Any]:
        await _own_user(request, p, username)
        user = await asyncio.to_thread(_identity(request).set_disabled, username, True)
        await _audit(request, p.name, "user.disabled", {"tenant": p.tenant_id, "username": username})
        return user.to_dict()

    @router.post("/v1/users/{username}/role")
    async def set_role(request: Request, username: str, body: RoleBody,
                       p: Principal = Depends(require(Perm.USERS_ADMIN))) -> dict[str, Any]:
        old = await _own_user(request, p, username)
        user = await asyncio.to_thread(_identity(request).set_role, username, body.role)
        await _audit(request, p.name, "user.role_changed", {"tenant": p.tenant_id, "username": username,
                                                            "before": old.role.value, "after": user.role.value})
        return user.to_dict()

    # -- API keys of the caller's tenant ---------------------------------------------------------------------
    @router.get("/v1/keys")
    async def list_keys(request: Request, p: Principal = Depends(require(Perm.KEYS_ADMIN))) -> list[dict]:
        keys = await asyncio.to_thread(_identity(request).list_keys, p.tenant_id)
        return [k.to_dict() for k in keys]

    @router.post("/v1/keys", status_code=201)
    async def create_key(request: Request, body: KeyCreate,
                         p: Principal = Depends(require(Perm.KEYS_ADMIN))) -> dict[str, Any]:
        """A new key of the caller's tenant. The `key` is returned once and never stored."""
        try:
            full, rec = await asyncio.to_thread(_identity(request).create_key, p.tenant_id, body.name, body.scopes)
        except IdentityError as exc:
            raise _bad(exc) from exc
        await _audit(request, p.name, "key.created", {"tenant": p.tenant_id, "key_id": rec.id,
                                                      "scopes": list(rec.scopes)})
        return {**rec.to_dict(), "key": full}

    @router.delete("/v1/keys/{key_id}", status_code=204)
    async def revoke_key(request: Request, key_id: str,
                         p: Principal = Depends(require(Perm.KEYS_ADMIN))) -> Response:
        try:
            await asyncio.to_thread(_identity(request).revoke_key, key_id, p.tenant_id)
        except IdentityError as exc:
            raise _bad(exc) from exc
        await _audit(request, p.name, "key.revoked", {"tenant": p.tenant_id, "key_id": key_id})
        return Response(status_code=204)

    # -- audit log -------------------------------------------------------------------------------------------
    @router.get("/v1/audit")
    async def audit_log(request: Request, limit: int = Query(100, ge=1, le=1000),
                        p: Principal = Depends(require(Perm.AUDIT_READ))) -> dict[str, Any]:
        """The tenant's audit records, newest first, and whether the whole chain verifies."""
        audit = request.app.state.harken.audit

        def read() -> dict[str, Any]:
            mine = [r.to_dict() for r in audit.storage.iter_records() if r.payload.get("tenant") == p.tenant_id]
            result = audit.verify()
            return {"verified": bool(result.ok), "records": mine[::-1][:limit]}

        return await asyncio.to_thread(read)

    return router
