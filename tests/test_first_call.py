"""Audio sent in the first second after the server starts is all in the session (issue 16).

A SIPREC client (SRC) forks a call's media to the recorder only once the recorder has answered: every packet of
the recorded call that is due before the 200 OK is never sent. So the time harken takes to answer the first
INVITE after it starts is audio lost for good. The SRC here starts the recorded call's media clock when it sends
the INVITE (as OpenSIPS with rtpengine does) and sends only the packets due after the answer; the session must
still hold (almost) all of the call. A WebSocket client that starts streaming at once, without waiting for the
session message, must lose nothing either.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from eval.taps_clients import load_call_audio
from eval.taps_e2e_cli import ended_session
from pipelines.settings import HarkenSettings
from tests.server_util import free_port, running_server
from tests.test_taps_sip import (
    UdpPeer,
    _answer_ports,
    _rtp_stream,
    invite,
    metadata_rfc,
    request,
    sdp_offer,
    siprec_body,
)

pytestmark = pytest.mark.model

CALL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calls" / "dev" / "audio" / "dev_en_01.stereo8k.wav"
SECONDS = 4.0
PTIME_S = 0.02


async def _srs_call(sip_port: int, call_id: str) -> dict[str, float]:
    """One SIPREC call from an SRC whose recorded media runs from the moment it sends the INVITE."""
    audio = load_call_audio(CALL, seconds=SECONDS)
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(UdpPeer, remote_addr=("127.0.0.1", sip_port))
    body, ctype = siprec_body(metadata_rfc("1", "2"), sdp_offer(("1", "2")))
    t_invite = time.monotonic()
    transport.sendto(invite(call_id, body, ctype))
    code, resp = await peer.final()
    answer_s = time.monotonic() - t_invite
    assert code == 200
    to_tag = resp.split(b";tag=")[-1].split(b"\r\n")[0].decode()
    transport.sendto(request("ACK", call_id, 1, to_tag))
    ports = _answer_ports(resp)
    legs = [_rtp_stream(audio.customer, 1111), _rtp_stream(audio.agent, 2222)]
    socks = [(await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("127.0.0.1", p)))[0]
             for p in ports]
    total = len(legs[0])
    first = min(total, int(answer_s / PTIME_S) + 1)  # packets due before the answer never left the SRC
    for k in range(first, total):
        ahead = t_invite + k * PTIME_S - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        for sock, packets in zip(socks, legs, strict=True):
            sock.sendto(packets[k])
    await asyncio.sleep(0.1)
    transport.sendto(request("BYE", call_id, 2, to_tag))
    await peer.final()
    for s in socks:
        s.close()
    transport.close()
    return {"answer_s": answer_s, "packets_total": total, "packets_not_sent": first}


async def _ws_at_once(ws_url: str, call_ref: str) -> None:
    """Start message and all audio sent back to back, before the server has said anything."""
    audio = load_call_audio(CALL, seconds=SECONDS)
    start = {"type": "start", "sample_rate_hz": 8000, "encoding": "s16le", "channels": 1, "language": "en",
             "metadata": {"call_id": call_ref}}
    async with connect(ws_url) as ws:
        await ws.send(json.dumps(start))
        for i in range(0, audio.agent.size, 800):
            await ws.send(audio.agent[i : i + 800].astype("<i2").tobytes())
        await ws.send(json.dumps({"type": "stop"}))
        async for message in ws:
            if json.loads(message).get("type") == "session_end":
                break


def test_audio_from_the_first_second_after_start_is_all_in_the_session(tmp_path: Path) -> None:
    settings = HarkenSettings(auth=False, data_dir=tmp_path, asr_model="tiny.en", classifiers=False, compliance=False,
                              sip_port=free_port())
    with running_server(settings) as base:
        started = time.monotonic()

        async def go() -> tuple[dict[str, float], dict, dict]:
            call_id = f"first-{uuid.uuid4().hex}"
            ws_ref = f"ws-{uuid.uuid4().hex}"
            sip, _ = await asyncio.gather(_srs_call(settings.sip_port, call_id),
                                          _ws_at_once(base.replace("http", "ws") + "/v1/stream", ws_ref))
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                # the SRC's metadata names the recorded call (sipSessionID), which becomes the session's call_id
                rows = (await client.get("/v1/sessions", params={"limit": 10})).json()
                siprec = next(r for r in rows if r["metadata"].get("recording_call_id") == call_id)
                siprec = await ended_session(client, siprec["metadata"]["call_id"], timeout_s=60)
                ws_row = await ended_session(client, ws_ref, timeout_s=60)
                stats = (await client.get(f"/v1/sessions/{siprec['id']}/events",
                                          params={"type": "tap_stats"})).json()[0]
            return sip, {**siprec, "tap_stats": stats}, ws_row

        sip, siprec, ws_row = asyncio.run(go())
    assert time.monotonic() - started < 60
    # answered at once (the model was loaded and warmed while the server started, not on this first call)
    print(f"first INVITE answered in {sip['answer_s'] * 1000:.0f} ms")
    assert sip["answer_s"] < 0.25, sip
    assert sip["packets_not_sent"] <= 12, sip
    assert siprec["tap_stats"]["answer_delay_s"] < 0.25  # what the server measured, reported with the call
    received = [s["packets_received"] for s in siprec["tap_stats"]["streams"]]
    assert received == [sip["packets_total"] - sip["packets_not_sent"]] * 2
    assert all(s["packets_lost"] == 0 and s["packets_dropped_socket"] == 0 for s in siprec["tap_stats"]["streams"])
    assert siprec["audio_s"] >= SECONDS - 0.25
    assert ws_row["audio_s"] == pytest.approx(SECONDS, abs=0.01)
