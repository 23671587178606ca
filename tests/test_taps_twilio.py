"""Twilio Media Streams tap: the streamdouble simulator as the real peer, and a raw client for bad input."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pipelines.taps.codecs import ulaw_encode
from tests.taps_fakes import FakeManager, RunningApp, load_call


def _frames(x: np.ndarray) -> list[bytes]:
    return [ulaw_encode(x[i : i + 160]) for i in range(0, x.size - 159, 160)]


@pytest.mark.peer
async def test_streamdouble_fork_with_both_tracks_lands_on_agent_and_customer_channels() -> None:
    from streamdouble.api import call
    from streamdouble.session import SessionConfig as CallConfig

    call_audio = load_call("dev_en_05", seconds=6)
    agent, customer = call_audio[:, 0], call_audio[:, 1]
    async with RunningApp() as app:
        report = await call(
            app.url("/v1/taps/twilio"),
            frames=_frames(customer),
            config=CallConfig(
                fork=True,
                tracks=["inbound", "outbound"],
                agent_frames=_frames(agent),
                custom_parameters={"tenant": "acme-bank", "agent_id": "a-17", "from": "+15550100"},
                response_timeout_s=0.5,
                quiet_period_s=0.2,
            ),
        )
        (session,) = await app.manager.wait_closed(1)
    assert report.violations == []
    assert session.config.channel_names == ("agent", "customer")
    assert session.closed_reason == "hangup"
    n = (customer.size // 160) * 160
    # μ-law in, μ-law decoded out: each track arrives bit exact on its own channel
    assert np.array_equal(session.samples(1)[:n], customer[:n])
    assert np.array_equal(session.samples(0)[:n], agent[:n])
    md = session.metadata
    assert md["tenant"] == "acme-bank" and md["agent_id"] == "a-17" and md["from"] == "+15550100"
    assert md["customParameters"]["tenant"] == "acme-bank"
    assert md["call_id"].startswith("CA") and md["stream_sid"].startswith("MZ")
    stats = {s["channel"]: s for s in session.events_of("tap_stats")[0]["streams"]}
    assert stats[1]["packets_received"] == customer.size // 160


def _msg(event: str, seq: int, **body: object) -> str:
    return json.dumps({"event": event, "sequenceNumber": str(seq), "streamSid": "MZ1", **body})


def _start(seq: int = 1, tracks: tuple[str, ...] = ("inbound", "outbound")) -> str:
    return _msg(
        "start",
        seq,
        start={
            "streamSid": "MZ1",
            "accountSid": "AC1",
            "callSid": "CA1",
            "tracks": list(tracks),
            "customParameters": {"language": "en"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    )


def _media(seq: int, track: str, ts_ms: int, payload: bytes) -> str:
    return _msg(
        "media",
        seq,
        media={
            "track": track,
            "chunk": str(seq),
            "timestamp": str(ts_ms),
            "payload": base64.b64encode(payload).decode(),
        },
    )


async def test_dtmf_mark_timestamp_gaps_and_disconnect_mid_call() -> None:
    customer = load_call("dev_en_06", seconds=2)[:, 1]
    frames = _frames(customer)
    async with RunningApp() as app:
        async with connect(app.url("/v1/taps/twilio")) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            await ws.send(_start(1, ("inbound",)))
            seq = 2
            for i, f in enumerate(frames):
                if i in (10, 11):  # two frames Twilio never delivered: the timestamp jumps 60 ms
                    continue
                await ws.send(_media(seq, "inbound", 20 * i, f))
                seq += 1
            await ws.send(_msg("dtmf", seq, dtmf={"track": "inbound_track", "digit": "9"}))
            await ws.send(_msg("mark", seq + 1, mark={"name": "greeting-done"}))
        (session,) = await app.manager.wait_closed(1)  # no stop: the peer vanished
    assert session.closed_reason == "disconnect"
    assert session.config.channel_names == ("customer",) and session.config.language == "en"
    got = session.samples(0)
    assert got.size == len(frames) * 160  # the gap was padded so the timeline stays true
    assert np.array_equal(got[:1600], customer[:1600]) and not got[1600:1920].any()
    assert np.array_equal(got[1920:], customer[1920 : got.size])
    assert session.events_of("dtmf") == [{"digit": "9", "duration_ms": None, "channel": 0, "at_s": 2.0}]
    assert session.events_of("mark") == [{"name": "greeting-done"}]


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        (["not json"], 1007),
        ([json.dumps({"event": "teleport"})], 1008),
        ([_media(1, "inbound", 0, b"\xff" * 160)], 1008),  # media before start
        ([b"\x00\x01"], 1003),  # binary frame
        ([_start(1), _msg("media", 2, media={"track": "inbound", "timestamp": "0", "payload": "***"})], 1007),
        ([_start(1), _media(2, "sideways", 0, b"\xff")], 1008),
        ([_start(1), _start(2)], 1008),
        (
            [
                _msg(
                    "start",
                    1,
                    start={
                        "tracks": ["inbound"],
                        "mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000},
                    },
                )
            ],
            1003,
        ),
    ],
)
async def test_bad_input_gets_a_close_code_and_the_server_survives(
    messages: list[str | bytes], code: int
) -> None:
    async with RunningApp() as app:
        async with connect(app.url("/v1/taps/twilio")) as ws:
            for m in messages:
                await ws.send(m)
            with pytest.raises(ConnectionClosed) as info:
                for _ in range(10):
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == code
        for s in app.manager.sessions:
            await app.manager.wait_closed(len(app.manager.sessions))
            assert s.closed_reason == "protocol_error"
        async with connect(app.url("/v1/taps/twilio")) as ws:  # the next call is served normally
            await ws.send(_start(1))
            await ws.send(_media(2, "outbound", 0, b"\xff" * 160))
            await ws.send(_msg("stop", 3, stop={"callSid": "CA1"}))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        last = app.manager.sessions[-1]
        await app.manager.wait_closed(len(app.manager.sessions))
        assert last.closed_reason == "hangup" and last.samples(0).size == 160


async def test_capacity_is_refused_with_1013() -> None:
    async with RunningApp(manager=FakeManager(capacity=0)) as app:
        async with connect(app.url("/v1/taps/twilio")) as ws:
            await ws.send(_start(1))
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1013
