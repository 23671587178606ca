"""The console (a static single page at `/`) and the read APIs it needs beyond sessions and tickets: the live
wall, search, policies, call audio (spans, card data silenced) and the HTML audit report of a session."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from api.auth import require, visible_session
from intelligence.access import Perm, Principal

CONSOLE_DIR = Path(__file__).resolve().parent / "static" / "console"
# The page loads only its own files; with no inline script, injected markup cannot run.
CONSOLE_CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; "
               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
MAX_AUDIO_SPAN_S = 3600.0
MAX_CALL_S = 7 * 86400.0  # no recording is longer; bounds keep float offsets from overflowing frame counts


def _day_start(day: dt.date | None) -> float | None:
    return None if day is None else dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _day_end(day: dt.date | None) -> float | None:
    return None if day is None else _day_start(day) + 86400.0


def _wall_row(session: Any, now: float) -> dict[str, Any]:
    mood = next((e for e in reversed(session.history) if e.get("type") == "mood"), None)
    alerts = [e for e in session.history if e.get("type") == "alert"]
    meta = session.metadata
    return {
        "id": session.session_id, "created_at": session.started_at, "duration_s": round(now - session.started_at, 1),
        "channel_names": list(session.config.channel_names), "language": session.config.language,
        "source": session.config.source, "agent": meta.get("agent"),
        "state": mood.get("state") if mood else None, "emotion": mood.get("emotion") if mood else None,
        "rolling_valence": mood.get("rolling_valence") if mood else None,
        "open_alerts": len(alerts), "alerts_total": len(alerts),
        "last_alert": alerts[-1].get("message") if alerts else None,
    }


def _wall_rows_from_store(store: Any, p: Any, now: float, limit: int = 500) -> list[dict[str, Any]]:
    """The live wall of a cluster gateway: every live session of the caller's tenant from the shared store, with
    its moods and alerts so far (blocking: call in a worker thread)."""
    rows = []
    for row in store.list_sessions(limit=limit, status="live", tenant_id=p.tenant_id):
        if not p.sees_session(row.tenant_id, row.metadata):
            continue
        view = SimpleNamespace(session_id=row.id, started_at=row.created_at, metadata=row.metadata or {},
                               history=store.events(row.id, ("mood", "alert")),
                               config=SimpleNamespace(channel_names=row.channel_names, language=row.language,
                                                      source=row.source))
        rows.append(_wall_row(view, now))
    return rows


def _audio_file(state: Any, session_id: str) -> Path | None:
    if not state.settings.store_audio:
        return None
    path = state.settings.data_dir / "audio" / session_id / f"{session_id}.flac"
    return path if path.is_file() else None


def _wav_span(path: Path, start_s: float | None, end_s: float | None) -> bytes:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        first = int(max(0.0, start_s or 0.0) * rate)
        last = f.frames if end_s is None else min(f.frames, int(end_s * rate))
        f.seek(min(first, f.frames))
        data = f.read(max(0, last - first), dtype="int16", always_2d=True)
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _ranged(body: bytes, range_header: str | None, media_type: str) -> Response:
    """The body, or the one byte range asked for (206), so that a browser's audio element can seek."""
    headers = {"Cache-Control": "private, no-store", "Accept-Ranges": "bytes"}
    size = len(body)
    if range_header and range_header.startswith("bytes=") and "," not in range_header:
        first_s, _, last_s = range_header[6:].strip().partition("-")
        try:
            if first_s:
                first, last = int(first_s), (int(last_s) if last_s else size - 1)
            else:  # a suffix: the last N bytes
                first, last = max(0, size - int(last_s)), size - 1
        except ValueError:
            first, last = -1, -1
        last = min(last, size - 1)
        if not (0 <= first <= last):
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        return Response(body[first:last + 1], status_code=206, media_type=media_type,
                        headers={**headers, "Content-Range": f"bytes {first}-{last}/{size}"})
    return Response(body, media_type=media_type, headers=headers)


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def console_page() -> HTMLResponse:
        page = (CONSOLE_DIR / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(page, headers={"Content-Security-Policy": CONSOLE_CSP, "X-Content-Type-Options": "nosniff",
                                           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})

    @router.get("/static/console/{name}", include_in_schema=False)
    async def console_asset(name: str) -> FileResponse:
        path = (CONSOLE_DIR / name).resolve()
        if path.parent != CONSOLE_DIR or not path.is_file():
            raise HTTPException(status_code=404, detail={"code": "not_found", "message": "no such file"})
        return FileResponse(path, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

    @router.get("/v1/live", tags=["console"])
    async def live_wall(request: Request, p: Principal = Depends(require(Perm.LIVE_WATCH))) -> dict[str, Any]:
        """Sessions in progress in the caller's tenant: duration, channels, mood state, alerts so far."""
        state = request.app.state.harken
        now = time.time()
        if state.settings.role == "gateway":  # the calls run on workers: the shared store has them all
            rows = await asyncio.to_thread(_wall_rows_from_store, state.store, p, now)
        else:
            rows = [_wall_row(s, now) for s in list(state.manager.sessions.values())
                    if p.sees_session(s.config.tenant_id, s.metadata)]
        rows.sort(key=lambda r: r["created_at"], reverse=True)
        return {"server_time": now, "sessions": rows}

    @router.get("/v1/search", tags=["console"])
    async def search(request: Request, q: str = Query("", max_length=200), agent: str | None = Query(None, max_length=200),
                     rule_id: str | None = Query(None, max_length=100), date_from: dt.date | None = None,
                     date_to: dt.date | None = None, min_score: float | None = Query(None, ge=0, le=100),
                     max_score: float | None = Query(None, ge=0, le=100), limit: int = Query(50, ge=1, le=200),
                     p: Principal = Depends(require(Perm.SESSIONS_READ))) -> dict[str, Any]:
        """Past sessions by words said (final captions), agent, dates (UTC days, inclusive), rule and score."""
        from pipelines.session_search import SearchQuery, search_sessions

        state = request.app.state.harken
        query = SearchQuery(p.tenant_id, q, agent or None, rule_id or None, _day_start(date_from), _day_end(date_to),
                            min_score, max_score, limit, only_agent=p.agent_id if p.own_calls_only else None)
        hits = await asyncio.to_thread(search_sessions, state.store, query)
        live = state.manager.sessions
        return {"results": [{"session": {**h.session.to_dict(), "live": h.session.id in live,
                                         "agent": h.session.agent},
                             "score": h.score, "rules": h.rules, "snippet": h.snippet} for h in hits]}

    @router.get("/v1/policies", tags=["console"])
    async def policies(request: Request, p: Principal = Depends(require(Perm.POLICIES_READ))) -> dict[str, Any]:
        """The loaded policy packs and their rules, with the regulation each rule comes from (read-only)."""
        state = request.app.state.harken
        res = state.extras.get("enrichment")
        packs = await asyncio.to_thread(res.packs) if res is not None and state.settings.compliance else []
        return {"packs": [{
            "id": pk.id, "version": pk.version, "name": pk.title, "description": pk.title,
            "language": ",".join(pk.languages), "source": "; ".join(pk.sources), "sha256": pk.sha256,
            "rules": [{"id": r.id, "severity": r.severity.value, "description": r.title, "kind": r.kind,
                       "source": r.source} for r in pk.rules],
        } for pk in packs]}

    @router.get("/v1/sessions/{session_id}/audio", tags=["sessions"],
                responses={200: {"content": {"audio/wav": {}}}})
    async def session_audio(request: Request, session_id: str, start_s: float | None = Query(None, ge=0, le=MAX_CALL_S, allow_inf_nan=False),
                            end_s: float | None = Query(None, ge=0, le=MAX_CALL_S, allow_inf_nan=False),
                            p: Principal = Depends(require(Perm.SESSIONS_READ))) -> Response:
        """The call's recording as WAV (all of it, or `start_s`..`end_s`), spoken card data silenced. The
        recording is written when the call ends: 409 while it is live, 404 when audio is not kept."""
        state = request.app.state.harken
        await visible_session(state, p, session_id)
        if start_s is not None and end_s is not None and (end_s <= start_s or end_s - start_s > MAX_AUDIO_SPAN_S):
            raise HTTPException(status_code=422, detail={"code": "invalid", "message": "need start_s < end_s, "
                                                         f"at most {MAX_AUDIO_SPAN_S:g} s apart"})
        if session_id in state.manager.sessions:
            raise HTTPException(status_code=409, detail={"code": "live", "message": "the recording is written "
                                                         "when the call ends"})
        path = _audio_file(state, session_id)
        if path is None:
            raise HTTPException(status_code=404, detail={"code": "no_audio", "message": "no recording kept for "
                                                         "this session"})
        wav = await asyncio.to_thread(_wav_span, path, start_s, end_s)
        return _ranged(wav, request.headers.get("range"), "audio/wav")

    @router.get("/v1/sessions/{session_id}/report", tags=["sessions"], response_class=HTMLResponse)
    async def session_report(request: Request, session_id: str,
                             p: Principal = Depends(require(Perm.SESSIONS_READ))) -> HTMLResponse:
        """The session's HTML audit report: scorecard, findings with redacted evidence, transcript, timeline."""
        from intelligence.reports import render_html, report_from_events

        state = request.app.state.harken
        row = await visible_session(state, p, session_id)
        events = await asyncio.to_thread(state.store.events, session_id)
        res = state.extras.get("enrichment")
        packs = await asyncio.to_thread(res.packs) if res is not None and state.settings.compliance else []
        rules = {r.id: r for pk in packs for r in pk.rules}
        report = report_from_events(session_id=session_id, source=str(row.metadata.get("file") or row.source),
                                    language=row.language, channel_names=row.channel_names, events=events,
                                    packs=packs, rule_lookup=rules.get)
        return HTMLResponse(render_html(report), headers={"Content-Security-Policy": "default-src 'none'; "
                                                          "style-src 'unsafe-inline'; img-src data:"})

    return router
