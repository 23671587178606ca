"""WebRTC tap (aiortc): a browser sends its microphone (or a meeting tab's audio); captions go back live.

The page POSTs an SDP offer; we answer, open one mono session, and push the decoded 48 kHz audio of the first
audio track into it. If the page opened a data channel (any label; the page uses "captions"), every event the
session publishes (transcripts, annotations, alerts) is forwarded on it as JSON. The session ends when the
track ends or the peer connection fails or closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.config import SUPPORTED_LANGUAGES, SessionConfig
from pipelines.taps.base import RateAdapter, SessionClosed, SessionOpener, TapSession, logger, pcm_bytes
from pipelines.taps.stats import StreamStats

MAX_PEERS = 64


class WebRtcError(ValueError):
    """The offer cannot be answered (malformed SDP, no audio)."""


@dataclass(eq=False)  # identity semantics: peers live in a set
class _Peer:
    pc: Any
    session: TapSession
    stats: StreamStats = field(default_factory=StreamStats)
    channel: Any = None
    audio_task: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    closed: bool = False


def _to_mono_s16(frame: Any) -> np.ndarray:
    """An av.AudioFrame (packed or planar, int16 or float) as int16 mono."""
    arr = frame.to_ndarray().astype(np.float32)
    channels = len(frame.layout.channels)
    mono = arr.mean(axis=0) if frame.format.is_planar else arr.reshape(-1, channels).mean(axis=1)
    if frame.format.name in ("flt", "fltp"):
        mono = mono * 32768.0
    return np.clip(mono, -32768, 32767).astype(np.int16)


class WebRtcGateway:
    """Owns the peer connections of one app; `close_all()` at shutdown."""

    def __init__(self, manager: SessionOpener, ice_servers: list[str] | None = None) -> None:
        self._manager = manager
        # No STUN by default: aiortc would otherwise ask a public Google server, which a self-hosted
        # deployment must not do unasked. Host candidates suffice on a LAN; pass STUN/TURN URLs otherwise.
        self._ice_servers = list(ice_servers or [])
        self._peers: set[_Peer] = set()

    @property
    def active(self) -> int:
        return len(self._peers)

    async def answer(
        self,
        offer_sdp: str,
        offer_type: str = "offer",
        language: str = "auto",
        metadata: dict[str, Any] | None = None,
        tenant_id: str = "default",
    ) -> dict[str, str]:
        """Answer a browser's offer; returns {"sdp", "type", "session_id"}. The session belongs to `tenant_id`."""
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

        if offer_type != "offer" or "m=audio" not in offer_sdp:
            raise WebRtcError("an SDP offer with audio is required")
        if len(self._peers) >= MAX_PEERS:
            from pipelines.taps.base import CapacityExceeded

            raise CapacityExceeded("too many WebRTC peers")
        session = await self._manager.open_session(
            SessionConfig(
                source="webrtc",
                language=language if language in SUPPORTED_LANGUAGES else "auto",
                sample_rate_hz=48000,
                channel_names=("speaker",),
                metadata={"tap": "webrtc", **{k: str(v)[:200] for k, v in (metadata or {}).items()}},
                tenant_id=tenant_id,
            )
        )
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(u) for u in self._ice_servers]))
        peer = _Peer(pc=pc, session=session)
        self._peers.add(peer)

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio" and peer.audio_task is None:  # one microphone per session
                peer.audio_task = asyncio.ensure_future(self._consume(peer, track))
                peer.tasks.add(peer.audio_task)

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            if peer.channel is None:
                peer.channel = channel
                peer.tasks.add(asyncio.ensure_future(self._forward_events(peer)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close(peer, "disconnect" if pc.connectionState == "failed" else "hangup")

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError and others for a bad offer
            await self._close(peer, "protocol_error")
            raise WebRtcError("offer could not be answered") from exc
        return {
            "sdp": pc.localDescription.sdp,
            "type": pc.localDescription.type,
            "session_id": session.session_id,
        }

    async def _consume(self, peer: _Peer, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        reason = "hangup"
        rate = RateAdapter(peer.session.config.sample_rate_hz)
        try:
            while True:
                frame = await track.recv()
                samples = _to_mono_s16(frame)
                peer.stats.packets_received += 1
                peer.stats.audio_s += samples.size / frame.sample_rate
                out = rate.convert(samples, int(frame.sample_rate))
                if out.size:
                    await peer.session.push_pcm(0, pcm_bytes(out), rate.out_rate_hz)
        except MediaStreamError:
            reason = "hangup"
        except SessionClosed:
            reason = "session_closed"
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("webrtc: audio consumer failed")
            reason = "internal_error"
        await self._close(peer, reason)

    async def _forward_events(self, peer: _Peer) -> None:
        subscribe = getattr(peer.session, "subscribe", None)
        if subscribe is None:
            return
        history, sub = subscribe()
        for event in history:
            self._send(peer, event)
        while not peer.closed:
            event = await sub.queue.get()
            if not isinstance(event, dict) or event.get("type") == "end":
                return
            self._send(peer, event)

    @staticmethod
    def _send(peer: _Peer, event: dict[str, Any]) -> None:
        if peer.channel is not None and peer.channel.readyState == "open":
            peer.channel.send(json.dumps(event, default=str))

    async def _close(self, peer: _Peer, reason: str) -> None:
        if peer.closed:
            return
        peer.closed = True
        self._peers.discard(peer)
        current = asyncio.current_task()
        for task in list(peer.tasks):
            if task is not current:
                task.cancel()
        try:
            with contextlib.suppress(SessionClosed):
                await peer.session.record_event(
                    "tap_stats", {"tap": "webrtc", "streams": [peer.stats.to_dict()]}
                )
        finally:
            await peer.session.close(reason)
            await peer.pc.close()

    async def close_all(self) -> None:
        for peer in list(self._peers):
            await self._close(peer, "server_shutdown")
