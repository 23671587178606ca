"""Non-HTTP listeners (SIP/SIPREC, AudioSocket) started with the app when their ports are configured."""

from __future__ import annotations

import logging
from typing import Any

from api.state import HarkenState

log = logging.getLogger(__name__)


async def start_servers(state: HarkenState) -> list[Any]:
    servers: list[Any] = []
    s = state.settings
    if s.audiosocket_port:
        from pipelines.taps.audiosocket import AudioSocketServer

        server = AudioSocketServer(state.manager, host=s.sip_host, port=s.audiosocket_port,
                                   agent_port=s.audiosocket_agent_port)
        await server.start()
        servers.append(server)
    if s.sip_port:
        from pipelines.taps.sip.server import SipRecordingServer

        server = SipRecordingServer(state.manager, host=s.sip_host, port=s.sip_port)
        await server.start()
        servers.append(server)
    return servers
