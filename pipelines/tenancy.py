"""A session manager seen through one tenant: every session a tap opens through it belongs to that tenant.

Taps build their own `SessionConfig`s; rather than teach each protocol about tenants, the API hands them this
view of the manager, which stamps the tenant (and, for an agent's own stream, the agent id) on each config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipelines.config import SessionConfig


class TenantManager:
    """Delegates to a `SessionManager`; `open_session` assigns `tenant_id` (and `agent` metadata if given)."""

    def __init__(self, manager: Any, tenant_id: str, agent_id: str | None = None) -> None:
        self._manager = manager
        self.tenant_id = tenant_id
        self.agent_id = agent_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def scoped(self, config: SessionConfig) -> SessionConfig:
        meta = dict(config.metadata)
        if self.agent_id:
            meta["agent"] = self.agent_id
        return dataclasses.replace(config, tenant_id=self.tenant_id, metadata=meta)

    async def open_session(self, config: SessionConfig, *args: Any, **kwargs: Any) -> Any:
        return await self._manager.open_session(self.scoped(config), *args, **kwargs)
