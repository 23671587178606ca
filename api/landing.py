"""The service page at `/about` (the console is at `/`): what is running and where to go next. Counts only, never session content."""

from __future__ import annotations

import asyncio
import html
import importlib.metadata
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

LANDING_PAGE = Path(__file__).resolve().parent / "static" / "landing.html"

LINKS = (
    ("/", "console", "live wall, calls, tickets, review and policies (sign in)"),
    ("/docs", "API docs", "interactive OpenAPI reference of every REST endpoint"),
    ("/webrtc", "WebRTC page", "live captions from your microphone or a browser tab"),
    ("/healthz", "health check", "JSON: ready or starting, live sessions, channels in use"),
    ("/metrics", "metrics", "Prometheus metrics: sessions, decode times, tap packet counters"),
    ("/v1/sessions", "sessions", "sessions, newest first, as JSON (sign in or send an API key)"),
)


def harken_version() -> str:
    try:
        return importlib.metadata.version("harken")
    except importlib.metadata.PackageNotFoundError:  # running from a tree that was never installed
        return "unknown"


async def _policy_packs(state) -> list[str]:
    """Ids of the loaded default policy packs (empty while starting, or with compliance off)."""
    res = state.extras.get("enrichment")
    if res is None or not state.settings.compliance:
        return []
    try:
        packs = await asyncio.to_thread(res.packs)  # loaded at start-up; cached afterwards
    except Exception:  # a bad pack already failed start-up; the landing page must not fail because of it
        return []
    return [f"{p.id} {p.version}" for p in packs]


async def _facts(state) -> list[tuple[str, str]]:
    settings = state.settings
    ready = state.runtime is not None
    live = len(state.manager.sessions) if ready else 0
    packs = await _policy_packs(state) if ready else []
    facts = [
        ("status", "ok" if ready else "starting"),
        ("version", harken_version()),
        ("ASR model", settings.asr_model),
        ("live sessions", str(live)),
        ("channels", f"{state.manager.channels_in_use if ready else 0} of {settings.max_channels} in use"),
    ]
    if not settings.compliance:
        facts.append(("policy packs", "compliance off"))
    elif settings.api_key or settings.auth:  # the page is public: with auth on, say how many packs, not which
        facts.append(("policy packs", f"{len(packs)} loaded"))
    else:
        facts.append(("policy packs", ", ".join(packs) if packs else "none loaded yet"))
    secured = settings.api_key or settings.auth
    facts.append(("access", "sign-in or API key required (Authorization: Bearer)" if secured else "open (auth off)"))
    return facts


def render(facts: list[tuple[str, str]], stream_url: str = "ws://HOST/v1/stream") -> str:
    rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    links = "\n".join(f'<li><a href="{href}">{html.escape(name)}</a> <code>{href}</code>: {html.escape(what)}</li>'
                      for href, name, what in LINKS)
    page = LANDING_PAGE.read_text(encoding="utf-8")
    return (page.replace("{{stream_url}}", html.escape(stream_url)).replace("{{facts}}", rows)
            .replace("{{links}}", links))


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/about", include_in_schema=False)
    async def landing(request: Request) -> HTMLResponse:
        base = str(request.base_url)  # built from the Host header: escaped in render()
        stream_url = ("wss" if base.startswith("https") else "ws") + base[base.index(":"):] + "v1/stream"
        return HTMLResponse(render(await _facts(request.app.state.harken), stream_url))

    return router
