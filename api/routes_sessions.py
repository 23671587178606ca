"""Sessions: list, details, transcript exports (JSON, WebVTT, SRT), history, QA evaluation forms, and live
subscriptions (WS + SSE)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, StreamingResponse

from api.auth import require, visible_session, websocket_principal
from api.schemas import SessionSummary
from intelligence.access import Perm, Principal
from intelligence.captions import build_cues, plain_text, to_srt, to_webvtt
from intelligence.redaction import redact_event_evidence
from intelligence.speakers import relabelled_finals

SSE_KEEPALIVE_S = 15.0


READ = Depends(require(Perm.SESSIONS_READ))


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/sessions")

    @router.get("")
    async def list_sessions(request: Request, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=2**62),
                            status: str | None = None, p: Principal = READ) -> list[SessionSummary]:
        """The caller's tenant's sessions, newest first (an agent: their own calls)."""
        state = request.app.state.harken
        rows = await asyncio.to_thread(state.store.list_sessions, limit, offset, status, p.tenant_id)
        live = state.manager.sessions
        return [SessionSummary(**r.to_dict(), live=r.id in live, agent=r.agent) for r in rows
                if p.sees_session(r.tenant_id, r.metadata)]

    @router.get("/{session_id}")
    async def get_session(request: Request, session_id: str, p: Principal = READ) -> dict[str, Any]:
        state = request.app.state.harken
        row = await visible_session(state, p, session_id)
        out = SessionSummary(**row.to_dict(), live=session_id in state.manager.sessions, agent=row.agent).model_dump()
        out["stats"] = row.stats
        return out

    @router.get("/{session_id}/events")
    async def events(request: Request, session_id: str, after_seq: int = Query(-1, ge=-1, le=2**62),
                     type: str | None = None, p: Principal = READ) -> list[dict[str, Any]]:
        state = request.app.state.harken
        await visible_session(state, p, session_id)
        types = tuple(type.split(",")) if type else None
        evs = await asyncio.to_thread(state.store.events, session_id, types, after_seq)
        return [redact_event_evidence(e) for e in evs]

    @router.get("/{session_id}/forms")
    async def forms(request: Request, session_id: str, p: Principal = READ) -> dict[str, Any]:
        """The QA evaluation forms of the session's latest scorecard (answers, evidence quotes and times,
        unanswered questions). 404 `not_scored` while the call has no scorecard (it is scored when it ends)."""
        state = request.app.state.harken
        await visible_session(state, p, session_id)
        cards = await asyncio.to_thread(state.store.events, session_id, ("scorecard",))
        if not cards:
            raise HTTPException(status_code=404, detail={
                "code": "not_scored", "message": f"session {session_id} has no scorecard yet (scored when it ends)"})
        card = cards[-1]
        return {"session_id": session_id, "scorecard_seq": card.get("seq"), "language": card.get("language"),
                "forms": card.get("forms") or []}

    @router.get("/{session_id}/transcript")
    async def transcript(request: Request, session_id: str,
                         format: Literal["json", "vtt", "srt", "txt"] = "json", p: Principal = READ):
        state = request.app.state.harken
        row = await visible_session(state, p, session_id)
        evs = await asyncio.to_thread(state.store.events, session_id,
                                      ("transcript", "speaker_update", "diarization"))
        finals = relabelled_finals(evs)  # speakers as diarization finally established them
        if format == "vtt":
            return PlainTextResponse(to_webvtt(build_cues(finals)), media_type="text/vtt; charset=utf-8")
        if format == "srt":
            return PlainTextResponse(to_srt(build_cues(finals)), media_type="application/x-subrip; charset=utf-8")
        if format == "txt":
            return PlainTextResponse(plain_text(finals))
        annotations = await asyncio.to_thread(state.store.events, session_id, ("annotation",))
        return {
            "session": row.to_dict(),
            "segments": [
                {k: e.get(k) for k in ("segment_id", "channel", "speaker", "start_s", "end_s", "text", "words",
                                        "language", "model")}
                for e in finals
            ],
            "annotations": annotations,
            "text_by_channel": {
                name: plain_text([f for f in finals if f.get("channel") == i])
                for i, name in enumerate(row.channel_names)
            },
        }

    @router.get("/{session_id}/minutes")
    async def minutes(request: Request, session_id: str,
                      format: Literal["json", "md", "html"] = "json", p: Principal = READ) -> Any:
        """The session's minutes. A live session's are built now from what it has said so far; an ended
        session's are the ones written when it ended (or built from its stored events if it has none)."""
        from fastapi.responses import HTMLResponse

        from intelligence.minutes.render import to_html, to_markdown
        from intelligence.minutes.types import minutes_from_dict
        from pipelines.minutes_stage import minutes_of

        state = request.app.state.harken
        row = await visible_session(state, p, session_id)
        live = state.manager.get(session_id)
        if live is not None:
            m = await asyncio.to_thread(minutes_of, list(live.history), live.config.language)
        else:
            stored = await asyncio.to_thread(state.store.events, session_id, ("minutes",))
            if stored:
                m = minutes_from_dict(stored[-1]["minutes"])
            else:
                history = await asyncio.to_thread(state.store.events, session_id)
                m = await asyncio.to_thread(minutes_of, history, row.language)
        if format == "md":
            return PlainTextResponse(to_markdown(m), media_type="text/markdown; charset=utf-8")
        if format == "html":
            return HTMLResponse(to_html(m))
        from intelligence.minutes.render import to_json

        return {"session_id": session_id, "live": live is not None, "minutes": to_json(m)}

    @router.websocket("/{session_id}/subscribe")
    async def subscribe_ws(ws: WebSocket, session_id: str, after_seq: int = -1) -> None:
        """Events of a session, live: its history first, then as they happen. `after_seq`: resume after the
        last event a client already has (e.g. after its gateway went away: any gateway serves any session)."""
        state = ws.app.state.harken
        p = await websocket_principal(ws, Perm.SESSIONS_READ)
        if p is None:
            await ws.close(code=1008, reason="unauthorized")
            return
        row = await asyncio.to_thread(state.store.get_session, session_id)
        await ws.accept()
        if row is None or not p.sees_session(row.tenant_id, row.metadata):
            await ws.send_json({"type": "error", "code": "not_found", "message": f"no session {session_id}"})
            await ws.close(code=1008)
            return
        try:
            async for ev in _follow(state, session_id, after_seq=after_seq):
                await ws.send_json(ev)
            await ws.close(code=1000)
        except WebSocketDisconnect:
            return
        except KeyError:
            await ws.send_json({"type": "error", "code": "not_found", "message": f"no session {session_id}"})
            await ws.close(code=1008)

    @router.get("/{session_id}/stream")
    async def subscribe_sse(request: Request, session_id: str, after_seq: int = Query(-1, ge=-1, le=2**62),
                            p: Principal = READ) -> StreamingResponse:
        """Events as Server-Sent Events; each durable one carries its seq as the SSE id, so a browser's
        EventSource that reconnects (to any gateway) resumes after the last one it got (Last-Event-ID)."""
        state = request.app.state.harken
        await visible_session(state, p, session_id)
        last_id = request.headers.get("last-event-id", "")
        if last_id.isdigit():
            after_seq = max(after_seq, int(last_id))

        async def gen() -> AsyncIterator[str]:
            async for ev in _follow(state, session_id, keepalive_s=SSE_KEEPALIVE_S, after_seq=after_seq):
                if ev is None:
                    yield ": keep-alive\n\n"
                    continue
                sse_id = f"id: {ev['seq']}\n" if "seq" in ev else ""
                yield f"{sse_id}event: {ev.get('type', 'message')}\ndata: {json.dumps(ev, ensure_ascii=False)}\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


async def _follow(state, session_id: str, keepalive_s: float | None = None,
                  after_seq: int = -1) -> AsyncIterator[Any]:
    """History then live events of a session (those after `after_seq`); for an ended session, its stored history.
    Raises KeyError."""
    session = state.manager.get(session_id)
    if session is None:
        row = await asyncio.to_thread(state.store.get_session, session_id)
        if row is None:
            raise KeyError(session_id)
        if row.status == "live" and state.manager.broker is not None:
            # live on another process: follow it through the broker (any gateway serves any session)
            async for ev in _follow_broker(state, session_id, keepalive_s, after_seq):
                yield ev
            return
        for ev in await asyncio.to_thread(state.store.events, session_id, None, after_seq):
            yield redact_event_evidence(ev)
        return
    history, sub = session.subscribe()
    try:
        for ev in history:
            if ev["seq"] > after_seq:
                yield redact_event_evidence(ev)
        while True:
            try:
                ev = await asyncio.wait_for(sub.queue.get(), timeout=keepalive_s) if keepalive_s else \
                    await sub.queue.get()
            except TimeoutError:
                yield None
                continue
            if ev.get("type") == "end":
                if ev.get("reason") == "overflow":
                    yield {"type": "error", "code": "overflow",
                           "message": "subscriber too slow; resume from /events?after_seq="}
                return
            yield redact_event_evidence(ev)
    finally:
        session.bus.unsubscribe(sub)


async def _follow_broker(state, session_id: str, keepalive_s: float | None,
                         after_seq: int = -1) -> AsyncIterator[Any]:
    """A session another process runs, through the event broker: its retained events, then live ones. A gap the
    broker reports (retention trimmed, or events it never got) is filled from the store, which has every durable
    event; overflow ends the stream with the same error as a local subscription."""
    sub = state.manager.broker.subscribe(session_id, after_seq=after_seq)
    it = sub.__aiter__()
    try:
        while True:
            try:
                ev = await (asyncio.wait_for(it.__anext__(), timeout=keepalive_s) if keepalive_s
                            else it.__anext__())
            except TimeoutError:
                yield None
                continue
            except StopAsyncIteration:
                break
            if ev.get("type") == "gap":
                stored = await asyncio.to_thread(state.store.events, session_id, None, ev["after_seq"])
                for old in stored:
                    if old.get("seq", -1) < ev["next_seq"]:
                        yield redact_event_evidence(old)
                continue
            yield redact_event_evidence(ev)
        if sub.end_reason == "overflow":
            yield {"type": "error", "code": "overflow",
                   "message": "subscriber too slow; resume from /events?after_seq="}
    finally:
        await sub.aclose()
