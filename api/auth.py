"""Optional shared-key authentication (HARKEN_API_KEY). Off when no key is configured (local default)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, WebSocket

from pipelines.settings import HarkenSettings


def _ok(supplied: str | None, settings: HarkenSettings) -> bool:
    if not settings.api_key:
        return True
    return supplied is not None and hmac.compare_digest(supplied, settings.api_key)


def websocket_authorized(ws: WebSocket, settings: HarkenSettings) -> bool:
    return _ok(ws.headers.get("x-api-key") or ws.query_params.get("api_key"), settings)


async def require_api_key(request: Request) -> None:
    settings = request.app.state.harken.settings
    if not _ok(request.headers.get("x-api-key") or request.query_params.get("api_key"), settings):
        raise HTTPException(status_code=401, detail={"code": "unauthorized", "message": "missing or bad API key"})
