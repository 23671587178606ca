"""WebRTC tap: an aiortc peer plays a recording as its microphone; captions come back on the data channel."""

from __future__ import annotations

import asyncio
import fractions
import json
import time

import httpx
import numpy as np
import pytest
import soxr

from tests.taps_fakes import RunningApp, load_call

aiortc = pytest.importorskip("aiortc")


class RecordingTrack(aiortc.MediaStreamTrack):
    """A microphone that plays int16 48 kHz samples in real time, 20 ms per frame."""

    kind = "audio"

    def __init__(self, pcm: np.ndarray) -> None:
        super().__init__()
        self.pcm, self.pos, self.t0 = pcm, 0, 0.0

    async def recv(self):  # type: ignore[no-untyped-def]
        import av
        from aiortc.mediastreams import MediaStreamError

        if self.pos + 960 > self.pcm.size:
            self.stop()
            raise MediaStreamError
        if self.pos == 0:
            self.t0 = time.monotonic()
        wait = self.t0 + self.pos / 48000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = av.AudioFrame.from_ndarray(
            self.pcm[self.pos : self.pos + 960].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.pos, fractions.Fraction(1, 48000)
        self.pos += 960
        return frame


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves out loopback host candidates; tests stay on 127.0.0.1."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.mark.peer
async def test_browser_like_peer_streams_audio_and_receives_captions(loopback_ice: None) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    speech = load_call("dev_en_13", seconds=3)[:, 0]
    pcm48 = soxr.resample(speech, 8000, 48000)
    async with RunningApp() as app:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(RecordingTrack(pcm48))
        channel = pc.createDataChannel("captions")
        received: asyncio.Queue[str] = asyncio.Queue()
        channel.on("message", received.put_nowait)
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.port}") as http:
            page = await http.get("/webrtc")
            assert page.status_code == 200 and "RTCPeerConnection" in page.text
            bad = await http.post("/v1/taps/webrtc/offer", json={"sdp": "v=0", "type": "offer"})
            assert bad.status_code == 400
            resp = await http.post(
                "/v1/taps/webrtc/offer",
                json={
                    "sdp": pc.localDescription.sdp,
                    "type": "offer",
                    "language": "en",
                    "metadata": {"user": "u1"},
                },
            )
        assert resp.status_code == 200
        answer = resp.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        session = next(s for s in app.manager.sessions if s.session_id == answer["session_id"])
        for _ in range(60):  # a caption published by the session reaches the page over the data channel
            if channel.readyState == "open":
                break
            await asyncio.sleep(0.1)
        event = {"type": "transcript", "kind": "final", "segment_id": "s1", "text": "hello from harken"}
        await session.live.put(event)
        assert json.loads(await asyncio.wait_for(received.get(), 10)) == event
        for _ in range(100):
            if session.samples(0).size >= 0.9 * pcm48.size:
                break
            await asyncio.sleep(0.1)
        await pc.close()
        await app.manager.wait_closed(1, timeout_s=15)
    got = session.samples(0)
    assert (
        session.rates[0] == {48000} and session.metadata["user"] == "u1" and session.config.language == "en"
    )
    assert 0.8 * pcm48.size <= got.size <= 1.2 * pcm48.size

    # Opus is lossy: check the speech came through, by the correlation of the energy envelopes (10 ms)
    def env(x: np.ndarray) -> np.ndarray:
        n = x.size // 480
        return np.sqrt((x[: n * 480].astype(np.float64).reshape(n, 480) ** 2).mean(axis=1))

    a, b = env(pcm48), env(got)
    best = max(
        np.corrcoef(a[: min(a.size, b.size - lag)], b[lag : lag + min(a.size, b.size - lag)])[0, 1]
        for lag in range(0, 30)
    )
    assert best > 0.8
    assert session.closed_reason in ("hangup", "disconnect")
