"""Non-HTTP listeners (SIP/SIPREC, AudioSocket) started with the app when their ports are configured."""

from __future__ import annotations

import logging
from typing import Any

from api.state import HarkenState

log = logging.getLogger(__name__)


async def start_servers(state: HarkenState) -> list[Any]:
    """Start the configured listeners. SIP and AudioSocket carry no per-call credentials: their sessions belong
    to `tap_tenant`, and the listeners should be reachable only from the PBX's network."""
    from pipelines.tenancy import TenantManager

    servers: list[Any] = []
    s = state.settings
    manager = TenantManager(state.manager, s.tap_tenant)
    if s.audiosocket_port:
        from pipelines.taps.audiosocket import AudioSocketServer

        server = AudioSocketServer(manager, host=s.sip_host, port=s.audiosocket_port,
                                   agent_port=s.audiosocket_agent_port)
        await server.start()
        servers.append(server)
    if s.sip_port:
        from pipelines.taps.sip.server import SipRecordingServer

        server = SipRecordingServer(manager, host=s.sip_host, port=s.sip_port)
        await server.start()
        servers.append(server)
    return servers
