"""Asterisk AudioSocket tap, driven by a byte-exact client written from res_audiosocket's framing."""

from __future__ import annotations

import asyncio
import struct
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.taps.audiosocket import (
    AudioSocketError,
    AudioSocketFrame,
    AudioSocketServer,
    parse_frames,
    validate_frame,
)
from tests.taps_fakes import FakeManager, load_call


def frame(kind: int, payload: bytes = b"") -> bytes:
    """Written independently of the server's build_frame: type, 16-bit big-endian length, payload."""
    return bytes([kind]) + struct.pack(">H", len(payload)) + payload


async def _server(manager: FakeManager, **kw: object) -> AudioSocketServer:
    server = AudioSocketServer(
        manager, host="127.0.0.1", port=0, idle_timeout_s=2.0, uuid_timeout_s=1.0, **kw
    )  # type: ignore[arg-type]
    await server.start()
    return server


async def test_call_audio_dtmf_and_hangup_reach_the_session_exactly() -> None:
    manager = FakeManager()
    server = await _server(manager)
    try:
        call_id = uuid.UUID("4f8a1c2e-1111-4222-8333-944455556666")
        customer = load_call("dev_en_04", seconds=12)[:, 1]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(0x01, call_id.bytes))
        for i in range(0, customer.size, 160):  # 20 ms of 8 kHz slin per frame, as Asterisk sends
            writer.write(frame(0x10, customer[i : i + 160].astype("<i2").tobytes()))
            if i == 160 * 100:
                writer.write(frame(0x03, b"7"))
        writer.write(frame(0x00))
        await writer.drain()
        (session,) = await manager.wait_closed(1)
        assert await reader.read() == b""  # the server ends the connection after the hangup
        writer.close()
        assert session.closed_reason == "hangup"
        assert session.metadata["call_id"] == str(call_id)
        assert session.config.source == "audiosocket"
        assert np.array_equal(session.samples(0), customer)
        assert session.rates[0] == {8000}
        assert session.events_of("dtmf") == [{"digit": "7", "duration_ms": None, "channel": 0, "at_s": 2.02}]
        (stats,) = session.events_of("tap_stats")[0]["streams"]
        assert stats["packets_received"] == customer.size // 160 + 2 and stats["audio_s"] == 12.0
    finally:
        await server.stop()


async def test_higher_rate_frames_and_peer_vanishing_keep_audio() -> None:
    manager = FakeManager()
    server = await _server(manager)
    try:
        tone = (3000 * np.sin(np.arange(16000) * 2 * np.pi * 300 / 16000)).astype("<i2")
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(0x01, uuid.uuid4().bytes))
        for i in range(0, tone.size, 320):
            writer.write(frame(0x12, tone[i : i + 320].tobytes()))  # 16 kHz slin
        for _ in range(25):  # then half a second of 8 kHz frames: resampled into the 16 kHz session
            writer.write(frame(0x10, tone[:160].tobytes()))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.transport.abort()  # gone without a hangup frame
        (session,) = await manager.wait_closed(1)
        assert session.closed_reason == "disconnect"
        got = session.samples(0)
        assert session.rates[0] == {16000} and np.array_equal(got[: tone.size], tone)
        assert got.size == tone.size + 8000  # the 8 kHz tail arrives at 16 kHz, same duration
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("opening", "expect_session"),
    [
        (frame(0x10, b"\x00\x00" * 160), False),  # audio before the UUID
        (frame(0x01, b"short"), False),  # malformed UUID
        (
            frame(0x01, uuid.uuid4().bytes) + frame(0x10, b"\x00" * 320) + frame(0x42, b"??"),
            True,
        ),  # unknown type
        (
            frame(0x01, uuid.uuid4().bytes) + frame(0x10, b"\x00" * 320) + frame(0x10, b"\x00" * 3),
            True,
        ),  # odd-length audio
        (
            frame(0x01, uuid.uuid4().bytes) + frame(0x10, b"\x00" * 320) + b"\x10\x01\x40" + b"\x00" * 10,
            True,
        ),  # truncated payload, then EOF
    ],
)
async def test_bad_input_is_answered_with_hangup_and_server_survives(
    opening: bytes, expect_session: bool
) -> None:
    manager = FakeManager()
    server = await _server(manager)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(opening)
        await writer.drain()
        if opening.endswith(b"\x00" * 10):
            writer.write_eof()
        reply = await asyncio.wait_for(reader.read(), 3.0)
        writer.close()
        assert reply == frame(0x00)  # hangup sent back, then the connection is closed
        if expect_session:
            (session,) = await manager.wait_closed(1)
            assert session.closed_reason == "protocol_error"
            assert session.samples(0).size in (0, 160)  # what came before the error is kept
        else:
            assert manager.sessions == []
        # the server is unaffected: a good call still works
        _, w2 = await asyncio.open_connection("127.0.0.1", server.port)
        w2.write(frame(0x01, uuid.uuid4().bytes) + frame(0x10, b"\x01\x00" * 160) + frame(0x00))
        await w2.drain()
        closed = await manager.wait_closed(2 if expect_session else 1)
        assert closed[-1].closed_reason == "hangup" and closed[-1].samples(0).size == 160
        w2.close()
    finally:
        await server.stop()


async def test_error_frame_capacity_and_shutdown() -> None:
    manager = FakeManager(capacity=1)
    server = await _server(manager)
    try:
        _, w1 = await asyncio.open_connection("127.0.0.1", server.port)
        w1.write(frame(0x01, uuid.uuid4().bytes) + frame(0x10, b"\x00\x00" * 160))
        await w1.drain()
        await asyncio.sleep(0.1)
        r2, w2 = await asyncio.open_connection("127.0.0.1", server.port)
        w2.write(
            frame(0x01, uuid.uuid4().bytes) + frame(0x10, b"\x00\x00" * 160)
        )  # the session opens at first audio
        await w2.drain()
        assert await asyncio.wait_for(r2.read(), 3.0) == frame(0x00)  # refused: at capacity
        w2.close()
        w1.write(frame(0xFF, b"\x02"))
        await w1.drain()
        (session,) = await manager.wait_closed(1)
        assert session.closed_reason == "peer_error"
        assert session.events_of("tap_error") == [{"tap": "audiosocket", "code": "frame_forwarding"}]
        w1.close()
        _, w3 = await asyncio.open_connection("127.0.0.1", server.port)
        w3.write(frame(0x01, uuid.uuid4().bytes) + frame(0x10, b"\x00\x00" * 160))
        await w3.drain()
        await asyncio.sleep(0.1)
    finally:
        await server.stop()
    assert manager.sessions[-1].closed_reason == "server_shutdown"
    w3.close()


async def test_paired_legs_of_one_call_uuid_become_agent_and_customer_channels() -> None:
    manager = FakeManager()
    server = await _server(manager, agent_port=0)
    try:
        call = load_call("dev_en_01", seconds=6)
        agent, customer = call[:, 0], call[:, 1]
        call_id = uuid.uuid4()
        (r_c, w_c), (r_a, w_a) = (
            await asyncio.open_connection("127.0.0.1", server.port),
            await asyncio.open_connection("127.0.0.1", server.agent_listen_port),
        )
        for w in (w_c, w_a):
            w.write(frame(0x01, call_id.bytes))
        for i in range(0, agent.size, 160):  # both legs interleaved, as two snoop channels deliver them
            w_a.write(frame(0x10, agent[i : i + 160].astype("<i2").tobytes()))
            w_c.write(frame(0x10, customer[i : i + 160].astype("<i2").tobytes()))
            if i == 160 * 50:
                w_c.write(frame(0x03, b"4"))
        # a second customer leg for the same call is refused; the call goes on
        r_dup, w_dup = await asyncio.open_connection("127.0.0.1", server.port)
        w_dup.write(frame(0x01, call_id.bytes))
        await w_dup.drain()
        assert await asyncio.wait_for(r_dup.read(), 3.0) == frame(0x00)
        w_dup.close()
        w_a.write(frame(0x00))  # the agent leg hangs up first: the session stays open for the customer leg
        await w_a.drain()
        await asyncio.wait_for(r_a.read(), 3.0)
        assert [s.closed_reason for s in manager.sessions] == [None]
        w_c.write(frame(0x00))
        await w_c.drain()
        (session,) = await manager.wait_closed(1)
        await asyncio.wait_for(r_c.read(), 3.0)
        for w in (w_a, w_c):
            w.close()
    finally:
        await server.stop()
    assert session.config.channel_names == ("agent", "customer") and session.closed_reason == "hangup"
    assert session.metadata["call_id"] == str(call_id) and session.close_calls == 1
    assert np.array_equal(session.samples(0), agent) and np.array_equal(session.samples(1), customer)
    assert session.events_of("dtmf") == [{"digit": "4", "duration_ms": None, "channel": 1, "at_s": 1.02}]
    roles = {s["role"]: s for e in session.events_of("tap_stats") for s in e["streams"]}
    assert roles["agent"]["channel"] == 0 and roles["customer"]["channel"] == 1
    assert roles["agent"]["packets_received"] == agent.size // 160 + 1  # audio + hangup
    assert server.tap_metrics.live_streams == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parser_fuzz_never_crashes_and_round_trips(data: bytes) -> None:
    frames, rest = parse_frames(data)
    rebuilt = b"".join(frame(f.kind, f.payload) for f in frames)
    assert rebuilt + rest == data
    for f in frames:
        try:
            validate_frame(f)
        except AudioSocketError:
            pass


def test_validate_frame_accepts_every_documented_type() -> None:
    for kind in (0x00, 0x03, *range(0x10, 0x19), 0xFF):
        validate_frame(AudioSocketFrame(kind, b"1" if kind in (0x03, 0xFF) else b""))
    validate_frame(AudioSocketFrame(0x01, uuid.uuid4().bytes))
