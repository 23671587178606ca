"""WebSocket endpoints of the telephony taps: Twilio Media Streams, Genesys AudioHook, FreeSWITCH audio forks.

Each route adapts Starlette's WebSocket to the transport-neutral handlers in `pipelines.taps` and gets the
session manager and settings from `app.state.harken` (manager, settings). The non-HTTP taps (SIP/SIPREC,
AudioSocket) are asyncio servers started from the app lifespan instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, WebSocket
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocketState

from api.auth import require, websocket_principal
from intelligence.access import Perm, Principal
from pipelines.taps.audiohook import AudioHookTap
from pipelines.taps.audiohook_auth import SignatureError, verify_request
from pipelines.taps.freeswitch import FreeSwitchForkTap
from pipelines.taps.metrics import TapMetrics
from pipelines.taps.twilio import TwilioMediaStreamTap
from pipelines.tenancy import TenantManager

logger = logging.getLogger("harken.taps")

WEBRTC_PAGE = Path(__file__).resolve().parent / "static" / "webrtc.html"

# mod_audio_fork asks for this subprotocol and drops the connection if the server does not echo it.
FREESWITCH_SUBPROTOCOL = "audio.drachtio.org"


class StarletteTransport:
    """`pipelines.taps.base.MessageTransport` over a Starlette WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.peer_close_code: int | None = None

    async def receive(self) -> str | bytes | None:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            self.peer_close_code = int(message.get("code") or 1005)
            return None
        if message.get("text") is not None:
            return str(message["text"])
        return bytes(message.get("bytes") or b"")

    async def send_text(self, text: str) -> None:
        await self.websocket.send_text(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED and (
            self.websocket.client_state == WebSocketState.CONNECTED
        ):
            await self.websocket.close(code, reason)


def _state(websocket: WebSocket) -> Any:
    return websocket.app.state.harken


def _setting(websocket: WebSocket, name: str, default: Any = None) -> Any:
    return getattr(_state(websocket).settings, name, default)


def build_router() -> APIRouter:
    """The taps' WebSocket routes; mount with `app.include_router(build_router())`."""
    router = APIRouter()

    @router.websocket("/v1/taps/twilio")
    async def twilio_media_stream(websocket: WebSocket) -> None:
        manager = await _ingest_manager(websocket)
        if manager is None:
            await _deny(websocket, 401)
            return
        await websocket.accept()
        tap = TwilioMediaStreamTap(manager, StarletteTransport(websocket), metrics=_tap_metrics(websocket))
        await tap.run()

    @router.websocket("/v1/taps/freeswitch")
    async def freeswitch_audio_fork(websocket: WebSocket) -> None:
        manager = await _ingest_manager(websocket)
        if manager is None:
            await _deny(websocket, 401)
            return
        offered = list(websocket.scope.get("subprotocols") or [])
        subprotocol = (
            FREESWITCH_SUBPROTOCOL if FREESWITCH_SUBPROTOCOL in offered else (offered[0] if offered else None)
        )
        await websocket.accept(subprotocol=subprotocol)
        query = {k: v for k, v in websocket.query_params.items() if k != "api_key"}
        tap = FreeSwitchForkTap(manager, StarletteTransport(websocket), query=query, metrics=_tap_metrics(websocket))
        await tap.run()

    @router.websocket("/v1/taps/audiohook")
    async def genesys_audiohook(websocket: WebSocket) -> None:
        api_key = _setting(websocket, "audiohook_api_key")
        headers = {k.lower(): v for k, v in websocket.headers.items()}
        raw_path = websocket.scope.get("raw_path") or websocket.url.path.encode()
        query = websocket.scope.get("query_string") or b""
        target = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        try:
            if not api_key:
                raise SignatureError("AudioHook is not configured (no API key)")
            verify_request(headers, target, api_key, _setting(websocket, "audiohook_client_secret"))
        except SignatureError as exc:
            logger.warning("audiohook: refused upgrade: %s", exc)
            await _deny(websocket, 401)
            return
        await websocket.accept()
        tap = AudioHookTap(  # AudioHook's own signed API key authenticates it; its sessions go to tap_tenant
            TenantManager(_state(websocket).manager, _setting(websocket, "tap_tenant", "default")),
            StarletteTransport(websocket),
            session_header_id=headers.get("audiohook-session-id", ""),
            organization_id=headers.get("audiohook-organization-id", ""),
            metrics=_tap_metrics(websocket),
        )
        await tap.run()

    @router.get("/webrtc", include_in_schema=False)
    async def webrtc_page() -> HTMLResponse:
        return HTMLResponse(WEBRTC_PAGE.read_text(encoding="utf-8"))

    @router.post("/v1/taps/webrtc/offer")
    async def webrtc_offer(request: Request,
                           principal: Principal = Depends(require(Perm.INGEST))) -> Response:
        from pipelines.taps.base import CapacityExceeded
        from pipelines.taps.webrtc import WebRtcError

        try:
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("sdp"), str):
                raise WebRtcError("expected {sdp, type}")
            meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
            if principal.own_calls_only:
                meta = {**meta, "agent": principal.agent_id}
            answer = await _webrtc_gateway(request).answer(
                body["sdp"], str(body.get("type", "offer")), str(body.get("language", "auto")), meta,
                tenant_id=principal.tenant_id,
            )
        except (WebRtcError, ValueError):
            return JSONResponse({"error": "bad_offer"}, status_code=400)
        except CapacityExceeded:
            return JSONResponse({"error": "capacity"}, status_code=503)
        return JSONResponse(answer)

    return router


async def _ingest_manager(websocket: WebSocket) -> TenantManager | None:
    """The session manager as the caller's tenant sees it, or None when the caller may not stream audio in.

    Telephony platforms pass the key in the URL's query (`?api_key=hk_...`) or an Authorization header."""
    p = await websocket_principal(websocket, Perm.INGEST)
    if p is None:
        return None
    return TenantManager(_state(websocket).manager, p.tenant_id, p.agent_id if p.own_calls_only else None)


def _tap_metrics(websocket: WebSocket) -> TapMetrics:
    """The WebSocket taps' counters for this app, created on first use.

    It is put in `state.servers` too: the app's Prometheus collector yields `metrics()` of every object there
    (and the lifespan's `stop()` on it is a no-op), so /metrics shows these counters with no other wiring.
    """
    state = websocket.app.state
    metrics = getattr(state, "taps_metrics", None)
    if metrics is None:
        metrics = TapMetrics("harken_tap_ws")
        state.taps_metrics = metrics
        servers = getattr(state.harken, "servers", None)
        if isinstance(servers, list):
            servers.append(metrics)
    return metrics


def _webrtc_gateway(request: Request) -> Any:
    """One gateway per app, created on first use (the lifespan closes it: `app.state.taps_webrtc.close_all()`)."""
    from pipelines.taps.webrtc import WebRtcGateway

    state = request.app.state
    gateway = getattr(state, "taps_webrtc", None)
    if gateway is None:
        gateway = WebRtcGateway(state.harken.manager)
        state.taps_webrtc = gateway
    return gateway


async def _deny(websocket: WebSocket, status_code: int) -> None:
    """Refuse a WebSocket upgrade with an HTTP status (falls back to a 403 where the server cannot)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(Response(status_code=status_code))
    else:
        await websocket.close(code=1008)
