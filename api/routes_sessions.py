"""Sessions: list, details, transcript exports (JSON, WebVTT, SRT), history, QA evaluation forms, and live
subscriptions (WS + SSE)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, StreamingResponse

from api.auth import require_api_key, websocket_authorized
from api.schemas import SessionSummary
from intelligence.captions import build_cues, plain_text, to_srt, to_webvtt
from intelligence.speakers import relabelled_finals

SSE_KEEPALIVE_S = 15.0


def _not_found(session_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail={"code": "not_found", "message": f"no session {session_id}"})


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/sessions")

    @router.get("", dependencies=[Depends(require_api_key)])
    async def list_sessions(request: Request, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
                            status: str | None = None) -> list[SessionSummary]:
        state = request.app.state.harken
        rows = await asyncio.to_thread(state.store.list_sessions, limit, offset, status)
        live = state.manager.sessions
        return [SessionSummary(**r.to_dict(), live=r.id in live) for r in rows]

    @router.get("/{session_id}", dependencies=[Depends(require_api_key)])
    async def get_session(request: Request, session_id: str) -> dict[str, Any]:
        state = request.app.state.harken
        row = await asyncio.to_thread(state.store.get_session, session_id)
        if row is None:
            raise _not_found(session_id)
        out = SessionSummary(**row.to_dict(), live=session_id in state.manager.sessions).model_dump()
        out["stats"] = row.stats
        return out

    @router.get("/{session_id}/events", dependencies=[Depends(require_api_key)])
    async def events(request: Request, session_id: str, after_seq: int = -1,
                     type: str | None = None) -> list[dict[str, Any]]:
        state = request.app.state.harken
        if await asyncio.to_thread(state.store.get_session, session_id) is None:
            raise _not_found(session_id)
        types = tuple(type.split(",")) if type else None
        return await asyncio.to_thread(state.store.events, session_id, types, after_seq)

    @router.get("/{session_id}/forms", dependencies=[Depends(require_api_key)])
    async def forms(request: Request, session_id: str) -> dict[str, Any]:
        """The QA evaluation forms of the session's latest scorecard (answers, evidence quotes and times,
        unanswered questions). 404 `not_scored` while the call has no scorecard (it is scored when it ends)."""
        state = request.app.state.harken
        if await asyncio.to_thread(state.store.get_session, session_id) is None:
            raise _not_found(session_id)
        cards = await asyncio.to_thread(state.store.events, session_id, ("scorecard",))
        if not cards:
            raise HTTPException(status_code=404, detail={
                "code": "not_scored", "message": f"session {session_id} has no scorecard yet (scored when it ends)"})
        card = cards[-1]
        return {"session_id": session_id, "scorecard_seq": card.get("seq"), "language": card.get("language"),
                "forms": card.get("forms") or []}

    @router.get("/{session_id}/transcript", dependencies=[Depends(require_api_key)])
    async def transcript(request: Request, session_id: str,
                         format: Literal["json", "vtt", "srt", "txt"] = "json"):
        state = request.app.state.harken
        row = await asyncio.to_thread(state.store.get_session, session_id)
        if row is None:
            raise _not_found(session_id)
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

    @router.get("/{session_id}/minutes", dependencies=[Depends(require_api_key)])
    async def minutes(request: Request, session_id: str,
                      format: Literal["json", "md", "html"] = "json") -> Any:
        """The session's minutes. A live session's are built now from what it has said so far; an ended
        session's are the ones written when it ended (or built from its stored events if it has none)."""
        from fastapi.responses import HTMLResponse

        from intelligence.minutes.render import to_html, to_markdown
        from intelligence.minutes.types import minutes_from_dict
        from pipelines.minutes_stage import minutes_of

        state = request.app.state.harken
        live = state.manager.get(session_id)
        if live is not None:
            m = await asyncio.to_thread(minutes_of, list(live.history), live.config.language)
        else:
            row = await asyncio.to_thread(state.store.get_session, session_id)
            if row is None:
                raise _not_found(session_id)
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
    async def subscribe_ws(ws: WebSocket, session_id: str) -> None:
        state = ws.app.state.harken
        if not websocket_authorized(ws, state.settings):
            await ws.close(code=1008, reason="unauthorized")
            return
        await ws.accept()
        try:
            async for ev in _follow(state, session_id):
                await ws.send_json(ev)
            await ws.close(code=1000)
        except WebSocketDisconnect:
            return
        except KeyError:
            await ws.send_json({"type": "error", "code": "not_found", "message": f"no session {session_id}"})
            await ws.close(code=1008)

    @router.get("/{session_id}/stream", dependencies=[Depends(require_api_key)])
    async def subscribe_sse(request: Request, session_id: str) -> StreamingResponse:
        state = request.app.state.harken
        if state.manager.get(session_id) is None and \
                await asyncio.to_thread(state.store.get_session, session_id) is None:
            raise _not_found(session_id)

        async def gen() -> AsyncIterator[str]:
            async for ev in _follow(state, session_id, keepalive_s=SSE_KEEPALIVE_S):
                if ev is None:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: {ev.get('type', 'message')}\ndata: {json.dumps(ev, ensure_ascii=False)}\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


async def _follow(state, session_id: str, keepalive_s: float | None = None) -> AsyncIterator[Any]:
    """History then live events of a session; for an ended session, its stored history. Raises KeyError."""
    session = state.manager.get(session_id)
    if session is None:
        if await asyncio.to_thread(state.store.get_session, session_id) is None:
            raise KeyError(session_id)
        for ev in await asyncio.to_thread(state.store.events, session_id):
            yield ev
        return
    history, sub = session.subscribe()
    try:
        for ev in history:
            yield ev
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
            yield ev
    finally:
        session.bus.unsubscribe(sub)
