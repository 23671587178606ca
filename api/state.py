"""Per-app state, built in create_app() and reached through `request.app.state.harken` (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.runtime import Runtime
from pipelines.session import SessionManager
from pipelines.settings import HarkenSettings


@dataclass
class HarkenState:
    settings: HarkenSettings
    runtime: Runtime | None = None
    servers: list[Any] = field(default_factory=list)  # non-HTTP tap servers started in the lifespan
    extras: dict[str, Any] = field(default_factory=dict)
    tickets: Any = None  # intelligence.tickets.TicketService (api/tickets_routes.py)
    audit: Any = None  # intelligence.audit_chain.AuditChain
    identity: Any = None  # pipelines.identity_store.IdentityStore (users, keys, sign-ins)
    login_limiter: Any = None  # api.ratelimit.LoginLimiter
    worker: Any = None  # pipelines.worker.ClusterWorker when this process is a cluster worker

    @property
    def manager(self) -> SessionManager:
        assert self.runtime is not None, "app not started"
        return self.runtime.manager

    @property
    def store(self):
        assert self.runtime is not None, "app not started"
        return self.runtime.store
