"""FreeSWITCH mod_audio_fork / mod_audio_stream tap, with a client that sends what the modules send."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soxr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pipelines.taps.freeswitch import interleave
from tests.taps_fakes import RunningApp, load_call


async def test_stereo_16k_fork_maps_caller_and_callee_to_customer_and_agent() -> None:
    call = load_call("dev_en_08", seconds=6)
    agent = soxr.resample(call[:, 0], 8000, 16000)
    customer = soxr.resample(call[:, 1], 8000, 16000)
    wire = interleave([customer, agent])  # stereo fork: caller (read) left, callee (write) right
    async with RunningApp() as app:
        async with connect(
            app.url("/v1/taps/freeswitch?sample_rate=16k&mix_type=stereo"),
            subprotocols=["audio.drachtio.org"],
        ) as ws:
            assert ws.subprotocol == "audio.drachtio.org"
            await ws.send(json.dumps({"uuid": "fs-uuid-1", "from": "1001", "to": "5000", "tenant": "acme"}))
            step = 640 * 2 + 1  # odd-sized chunks: samples split across frames are carried over
            for i in range(0, len(wire), step):
                await ws.send(wire[i : i + step])
        (session,) = await app.manager.wait_closed(1)
    assert session.closed_reason == "hangup"  # the fork ends by closing the socket cleanly at hang-up
    assert session.config.channel_names == ("agent", "customer") and session.rates[0] == {16000}
    assert np.array_equal(session.samples(0), agent) and np.array_equal(session.samples(1), customer)
    assert session.metadata["call_id"] == "fs-uuid-1" and session.metadata["from"] == "1001"
    assert session.metadata["tenant"] == "acme"


async def test_mono_8k_without_metadata_and_format_from_metadata() -> None:
    x = load_call("dev_en_08", seconds=2)[:, 1]
    async with RunningApp() as app:
        async with connect(
            app.url("/v1/taps/freeswitch")
        ) as ws:  # mod_audio_stream: no subprotocol, no query
            await ws.send(x.astype("<i2").tobytes())
        async with connect(app.url("/v1/taps/freeswitch")) as ws:
            await ws.send(json.dumps({"sampleRate": "16000", "channels": 1, "call_id": "c2"}))
            await ws.send(x.astype("<i2").tobytes())
        closed = await app.manager.wait_closed(2)
    first, second = sorted(closed, key=lambda s: s.session_id)
    assert first.config.channel_names == ("customer",) and first.rates[0] == {8000}
    assert np.array_equal(first.samples(0), x)
    assert second.rates[0] == {16000} and second.metadata["call_id"] == "c2"


@pytest.mark.parametrize(
    ("query", "code"),
    [("?sample_rate=11k", 1003), ("?channels=3", 1003), ("?mix_type=stereo&roles=agent", 1003)],
)
async def test_bad_formats_close_with_1003(query: str, code: int) -> None:
    async with RunningApp() as app:
        async with connect(app.url("/v1/taps/freeswitch" + query)) as ws:
            await ws.send(b"\x00" * 640)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == code
        assert app.manager.sessions == []


async def test_oversized_frame_is_refused_and_audio_so_far_kept() -> None:
    async with RunningApp() as app:
        async with connect(app.url("/v1/taps/freeswitch"), max_size=None) as ws:
            await ws.send(b"\x01\x00" * 160)
            await ws.send(b"\x00" * (2 << 20))
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        (session,) = await app.manager.wait_closed(1)
    assert session.closed_reason == "protocol_error" and session.samples(0).size == 160
