"""WebSocket ingest: `/v1/stream` takes a JSON start message, then binary audio frames, and returns captions.

Protocol
  client -> {"type": "start", "sample_rate_hz": 16000, "encoding": "s16le"|"mulaw", "channels": 1,
             "language": "en"|"zh"|"auto", "channel_names": [...], "metadata": {...}}
  server -> {"type": "session", "session_id": ..., ...}
  client -> binary frames (s16le: interleaved int16 LE; mulaw: interleaved G.711 bytes)
  server -> {"type": "transcript", "kind": "partial"|"final", ...}, annotations, alerts, findings
  client -> {"type": "stop"}   server -> {"type": "session_end"} and close 1000
Errors are JSON events {"type": "error", "code", "message"} followed, when fatal, by a close code:
1008 bad or missing start message, 1003 unsupported encoding/rate, 1013 server at capacity, 1011 internal error.
A malformed audio frame is reported and skipped (the session goes on). Whatever happens to the client, the
session is closed cleanly and everything captioned so far stays persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from api.auth import websocket_principal
from api.schemas import StartMessage
from intelligence.access import Perm
from pipelines.config import SessionConfig
from pipelines.errors import BadAudio, CapacityExceeded
from pipelines.gateway import RemoteSession
from pipelines.session import LiveSession

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


async def _forward_events(ws: WebSocket, session: LiveSession) -> None:
    history, sub = session.subscribe()
    try:
        for ev in history:
            await ws.send_json(ev)
        while True:
            ev = await sub.queue.get()
            if ev.get("type") == "end":
                return
            await ws.send_json(ev)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        session.bus.unsubscribe(sub)


def build_router() -> APIRouter:
    router = APIRouter()

    @router.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        state = ws.app.state.harken
        principal = await websocket_principal(ws, Perm.INGEST)
        if principal is None:
            await ws.close(code=1008, reason="unauthorized")
            return
        await ws.accept()
        try:
            raw = await asyncio.wait_for(ws.receive(), timeout=START_TIMEOUT_S)
        except (TimeoutError, WebSocketDisconnect):
            with contextlib.suppress(Exception):
                await ws.send_json(_error("no_start", "expected a JSON start message"))
                await ws.close(code=1008)
            return
        if raw.get("type") == "websocket.disconnect":
            return
        text = raw.get("text")
        if text is None:
            await ws.send_json(_error("bad_start", "the first frame must be a JSON start message"))
            await ws.close(code=1008)
            return
        try:
            start = StartMessage.model_validate(json.loads(text))
            names = start.names()
        except (json.JSONDecodeError, ValidationError, ValueError) as exc:
            unsupported = isinstance(exc, ValidationError) and any(
                e["loc"] and e["loc"][0] in ("encoding", "sample_rate_hz") for e in exc.errors()
            )
            code = "unsupported_audio" if unsupported else "bad_start"
            msg = _validation_message(exc)
            await ws.send_json(_error(code, msg))
            await ws.close(code=1003 if unsupported else 1008)
            return
        packs = tuple(start.policy_packs) if start.policy_packs is not None else tuple(
            p for p in state.settings.policy_packs.split(",") if p
        )
        metadata = dict(start.metadata)
        if principal.own_calls_only:  # an agent streams their own calls only
            metadata["agent"] = principal.agent_id
        config = SessionConfig(
            source="websocket", language=start.language,
            sample_rate_hz=start.sample_rate_hz, channel_names=names,
            metadata=metadata, policy_packs=packs, tenant_id=principal.tenant_id,
            vocabulary=tuple(t[:50] for t in start.vocabulary),
            diarize=state.settings.diarize_mono if start.diarize is None else start.diarize,
            max_speakers=start.max_speakers,
        )
        try:
            session = await state.manager.open_session(config, overflow="block")
        except CapacityExceeded:
            await ws.send_json(_error("capacity", "server at capacity; retry later"))
            await ws.close(code=1013)
            return
        except Exception:
            log.exception("could not open a session")
            await ws.send_json(_error("internal", "could not open a session"))
            await ws.close(code=1011)
            return
        await ws.send_json({"type": "session", "session_id": session.session_id, "channels": list(names),
                            "sample_rate_hz": start.sample_rate_hz, "encoding": start.encoding,
                            "language": start.language})
        forwarder = asyncio.create_task(_forward_remote(ws, state, session.session_id)
                                        if isinstance(session, RemoteSession) else _forward_events(ws, session))
        reason = "client_stop"
        try:
            reason = await _receive_audio(ws, session, start, state.settings.ws_idle_timeout_s)
        finally:
            await session.close(reason)
            if reason in ("client_stop", "idle_timeout"):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(forwarder, timeout=30)
                with contextlib.suppress(Exception):
                    await ws.close(code=1000)
            else:
                forwarder.cancel()
                with contextlib.suppress(BaseException):
                    await forwarder

    return router


def _validation_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e["loc"]) or "message"
            parts.append(f"{loc}: {e['msg']}")
        return "; ".join(parts)
    if isinstance(exc, json.JSONDecodeError):
        return "start message is not valid JSON"
    return str(exc)


async def _forward_remote(ws: WebSocket, state, session_id: str) -> None:
    """Events of a session a worker runs, through the broker (gaps filled from the store), to the ingest client."""
    from api.routes_sessions import _follow_broker

    try:
        async for ev in _follow_broker(state, session_id, None):
            await ws.send_json(ev)
            if ev.get("type") == "session_end":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


async def _receive_audio(ws: WebSocket, session: LiveSession | RemoteSession, start: StartMessage, idle_timeout_s: float) -> str:
    """Pump frames into the session until stop, disconnect or idle timeout; returns the end reason."""
    from pipelines.taps.codecs import ulaw_decode

    frame_bytes = 2 * start.channels if start.encoding == "s16le" else start.channels
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), timeout=idle_timeout_s)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await ws.send_json(_error("idle_timeout", f"no audio for {idle_timeout_s:g} s"))
            return "idle_timeout"
        except WebSocketDisconnect:
            return "client_disconnected"
        if msg.get("type") == "websocket.disconnect":
            return "client_disconnected"
        data = msg.get("bytes")
        if data is not None:
            if len(data) % frame_bytes:
                await ws.send_json(_error("bad_frame", f"binary frame of {len(data)} bytes is not a whole number "
                                                       f"of {frame_bytes}-byte sample frames; frame skipped"))
                continue
            if start.encoding == "mulaw":
                data = ulaw_decode(data).astype("<i2").tobytes()
            try:
                await session.push_interleaved(data)
            except BadAudio as exc:
                await ws.send_json(_error("bad_frame", str(exc)))
            continue
        text = msg.get("text")
        try:
            obj = json.loads(text) if text is not None else None
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and obj.get("type") == "stop":
            return "client_stop"
        if isinstance(obj, dict) and obj.get("type") == "metadata" and isinstance(obj.get("metadata"), dict):
            updated = session.update_metadata(obj["metadata"])
            if inspect.isawaitable(updated):  # a RemoteSession forwards it to its worker
                await updated
            continue
        await ws.send_json(_error("bad_message", "expected binary audio, {\"type\": \"stop\"} or a metadata update"))
