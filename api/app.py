"""The FastAPI application factory. Settings and all state are built here, not at import."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from api.metrics import make_registry
from api.state import HarkenState
from pipelines.runtime import build_runtime
from pipelines.settings import HarkenSettings

log = logging.getLogger(__name__)

# Optional routers owned by feature areas; each module exposes build_router() -> APIRouter.
OPTIONAL_ROUTERS = ("api.taps_routes", "api.tickets_routes")


def _wire_compliance_services(state: HarkenState) -> None:
    """Tickets and the hash-chained audit trail live in the same database as sessions."""
    from intelligence.audit_chain import AuditChain
    from intelligence.tickets import TicketService
    from pipelines.audit_store import SqlAuditStorage
    from pipelines.identity_store import IdentityStore
    from pipelines.ticket_store import SqlTicketRepository

    engine = state.runtime.store.engine
    state.identity = IdentityStore(engine)
    state.audit = AuditChain(SqlAuditStorage(engine))
    state.tickets = TicketService(SqlTicketRepository(engine), state.audit)
    if state.settings.webhook_url:
        from pipelines.webhooks import WebhookSender

        state.extras["webhooks"] = WebhookSender(state.settings.webhook_url, secret=state.settings.webhook_secret)


def create_app(settings: HarkenSettings | None = None) -> FastAPI:
    from api.ratelimit import LoginLimiter

    settings = settings or HarkenSettings()
    if settings.role != "all" and not (settings.broker_url or "").startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"role {settings.role!r} needs a Redis broker_url (HARKEN_BROKER_URL=redis://...)")
    state = HarkenState(settings=settings, login_limiter=LoginLimiter(settings.login_max_failures,
                                                                      settings.login_window_s))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from pipelines.enrich import enricher_factories, warm_up

        gateway_only = settings.role == "gateway"  # decodes and enriches nothing itself
        state.runtime = build_runtime(settings, enrichers=[] if gateway_only else enricher_factories(settings, state))
        _wire_compliance_services(state)
        if "enrichment" in state.extras:
            res = state.extras["enrichment"]
            res.tickets, res.audit, res.webhooks = state.tickets, state.audit, state.extras.get("webhooks")
            await warm_up(res)
            if settings.compliance:
                packs = [p.describe() for p in res.packs()]
                await asyncio.to_thread(state.audit.append, "system", "config.loaded",
                                        {"policy_packs": packs, "asr_model": settings.asr_model,
                                         "denoiser": settings.denoiser, "max_channels": settings.max_channels})
        if settings.asr_warm_up and not gateway_only:
            took_s = await state.runtime.manager.warm_up()
            log.info("ASR model %s warm in %.1f s", settings.asr_model, took_s)
        # One node: whatever a previous run left live was interrupted. Several nodes share the store (a broker is
        # configured): another node's live sessions are not ours to end.
        interrupted = 0 if settings.broker_url else await asyncio.to_thread(state.runtime.store.mark_interrupted)
        if interrupted:
            log.warning("%d sessions were left live by a previous run; marked ended (server_restart)", interrupted)
        if settings.role == "worker":
            from pipelines.worker import ClusterWorker

            state.worker = ClusterWorker(state.runtime.manager, settings.broker_url, worker_id=settings.worker_id,
                                         heartbeat_s=settings.worker_heartbeat_s,
                                         dead_after_s=settings.worker_dead_after_s,
                                         input_timeout_s=settings.ws_idle_timeout_s + 10.0)
            await state.worker.start()
        from api.servers import start_servers

        state.servers = await start_servers(state)
        try:
            yield
        finally:
            if state.worker is not None:
                await state.worker.stop()

            for server in reversed(state.servers):
                with contextlib.suppress(Exception):
                    await server.stop()
            gateway = getattr(app.state, "taps_webrtc", None)  # created on the first WebRTC offer
            if gateway is not None:
                with contextlib.suppress(Exception):
                    await gateway.close_all()
            await state.runtime.aclose()
            if "enrichment" in state.extras:
                state.extras["enrichment"].close()
            if "webhooks" in state.extras:
                await state.extras["webhooks"].aclose()

    app = FastAPI(title="harken", version="0.1.0", lifespan=lifespan)
    app.state.harken = state
    registry = make_registry(state)

    @app.get("/healthz")
    async def healthz() -> dict:
        ready = state.runtime is not None
        return {"status": "ok" if ready else "starting",
                "sessions_live": len(state.manager.sessions) if ready else 0,
                "channels_in_use": state.manager.channels_in_use if ready else 0,
                "channels_max": settings.max_channels, "asr_model": settings.asr_model, "role": settings.role,
                "worker_id": state.worker.worker_id if state.worker is not None else None}

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"code": "internal", "message": "internal error"})

    from api import landing, routes_auth, routes_console, routes_sessions, routes_stream

    app.include_router(routes_console.build_router())
    app.include_router(routes_auth.build_router())
    app.include_router(landing.build_router())
    app.include_router(routes_stream.build_router())
    app.include_router(routes_sessions.build_router())
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        app.include_router(module.build_router())
    return app
