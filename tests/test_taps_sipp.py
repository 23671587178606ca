"""The SIP recording server against SIPp, a real third-party SIP peer (installed by scripts/install-peers.sh).

SIPp sends a SIPREC INVITE (two labelled legs + rs-metadata) or a plain INVITE, replays the call's channels as
PCMU RTP from a pcap written from the shared recordings, and hangs up with BYE.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.taps.codecs import ulaw_encode
from pipelines.taps.pcap import write_rtp_pcap
from pipelines.taps.rtp import RtpPacket, build_rtp
from pipelines.taps.sip.server import SipServer, SipServerConfig
from tests.taps_fakes import FakeManager, load_call

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sipp"
pytestmark = pytest.mark.peer


def _require_sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("sipp is not installed: scripts/install-peers.sh must run before the tests")
        pytest.skip("sipp not installed (run scripts/install-peers.sh)")
    return path


def _rtp(x: np.ndarray, ssrc: int) -> list[bytes]:
    return [
        build_rtp(RtpPacket(0, 500 + i, 160 * i, ssrc, ulaw_encode(x[o : o + 160])))
        for i, o in enumerate(range(0, x.size - 159, 160))
    ]


async def _run_sipp(
    sipp: str, scenario: str, pcap: Path, pause_ms: int, server_port: int, tmp: Path, transport: str = "u1"
) -> tuple[int, str]:
    xml = (FIXTURES / scenario).read_text().replace("@PCAP@", str(pcap)).replace("@PAUSE_MS@", str(pause_ms))
    scenario_path = tmp / scenario
    scenario_path.write_text(xml)
    media_port = random.randrange(42000, 48000, 4)
    proc = await asyncio.create_subprocess_exec(
        sipp,
        f"127.0.0.1:{server_port}",
        "-sf",
        str(scenario_path),
        "-m",
        "1",
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media_port),
        "-p",
        str(media_port - 1),
        "-t",
        transport,
        "-nostdin",
        "-timeout",
        "60s",
        "-timeout_error",
        "-trace_err",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 90)
    return int(proc.returncode or 0), err.decode(errors="replace")[-2000:]


def _server(manager: FakeManager) -> SipServer:
    lo = random.randrange(30000, 38000, 2)
    return SipServer(
        manager, SipServerConfig(host="127.0.0.1", port=0, rtp_port_min=lo, rtp_port_max=lo + 400)
    )


async def test_sipp_siprec_two_legs_reach_agent_and_customer(tmp_path: Path) -> None:
    sipp = _require_sipp()
    call = load_call("dev_en_11", seconds=6)
    agent, customer = call[:, 0], call[:, 1]
    pcap = tmp_path / "two_legs.pcap"
    # Same SSRC on both legs, as SRCs do: streams are told apart by port and label.
    write_rtp_pcap(pcap, [(6000, _rtp(customer, 1234)), (6002, _rtp(agent, 1234))])
    manager = FakeManager()
    server = _server(manager)
    await server.start()
    try:
        rc, err = await _run_sipp(sipp, "siprec_uac.xml", pcap, 6600, server.port, tmp_path)
        assert rc == 0, err
        (session,) = await manager.wait_closed(1)
    finally:
        await server.stop()
    assert session.closed_reason == "hangup" and session.config.source == "siprec"
    assert session.config.channel_names == ("agent", "customer")
    n = (agent.size // 160) * 160
    assert np.array_equal(session.samples(0), agent[:n]), "agent channel differs from the agent recording"
    assert np.array_equal(session.samples(1), customer[:n]), (
        "customer channel differs from the customer recording"
    )
    md = session.metadata
    assert md["agent_id"] == "sip:agent2002@cc.example" and md["from"] == "sip:+15550123@carrier.example"
    assert md["tenant"] == "sipp-bank"
    streams = {s["label"]: s for s in session.events_of("tap_stats")[0]["streams"]}
    assert (
        streams["leg-customer"]["packets_received"] == n // 160 and streams["leg-agent"]["packets_lost"] == 0
    )


async def test_sipp_plain_call_over_tcp(tmp_path: Path) -> None:
    sipp = _require_sipp()
    x = load_call("dev_en_12", seconds=3)[:, 1]
    pcap = tmp_path / "one_leg.pcap"
    write_rtp_pcap(pcap, [(6000, _rtp(x, 77))])
    manager = FakeManager()
    server = _server(manager)
    await server.start()
    try:
        rc, err = await _run_sipp(sipp, "plain_uac.xml", pcap, 3500, server.port, tmp_path, transport="t1")
        assert rc == 0, err
        (session,) = await manager.wait_closed(1)
    finally:
        await server.stop()
    assert session.closed_reason == "hangup" and session.config.source == "sip"
    assert session.config.channel_names == ("customer",)
    assert np.array_equal(session.samples(0), x[: (x.size // 160) * 160])
    assert session.metadata["from"].startswith("sip:+15550177@")
