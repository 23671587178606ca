"""Twilio Media Streams tap (`<Start><Stream track="both_tracks">` or `<Connect><Stream>`).

Messages are JSON text frames: connected, start, media (base64 μ-law 8 kHz mono, per track), mark, dtmf, stop.
`inbound` is the caller (customer, session channel 1) and `outbound` what the caller hears (agent, channel 0).
`media.timestamp` is milliseconds of stream time: a track that falls behind it (Twilio skips frames it never got)
is padded with silence so the two channels stay aligned. Numbers in `sequenceNumber`, `chunk` and `timestamp`
arrive as strings.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pipelines.config import SUPPORTED_LANGUAGES, SessionConfig
from pipelines.taps.base import AGENT_CHANNEL, CUSTOMER_CHANNEL, TapProtocolError, pcm_bytes
from pipelines.taps.codecs import ulaw_decode
from pipelines.taps.wstap import CLOSE_INVALID_PAYLOAD, WebSocketTap

_KNOWN_EVENTS = {"connected", "start", "media", "mark", "dtmf", "stop"}
# Custom parameters that carry call metadata under harken's own names.
_METADATA_KEYS = ("from", "to", "tenant", "agent_id", "call_id", "direction")
_RATE_HZ = 8000


class TwilioMediaStreamTap(WebSocketTap):
    """One Twilio Media Stream = one session."""

    tap_name = "twilio"

    def __init__(self, *args: Any, language: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.language = language
        self.track_channel: dict[str, int] = {}
        self.stream_sid = ""
        self._last_seq: int | None = None
        self.samples_pushed: dict[int, int] = {}

    async def on_binary(self, data: bytes) -> None:
        raise TapProtocolError("Media Streams sends JSON text frames only", 1003)

    async def on_text(self, text: str) -> None:
        msg = self.parse_json(text)
        event = msg.get("event")
        if event not in _KNOWN_EVENTS:
            raise TapProtocolError(f"unknown event {str(event)[:40]!r}")
        self._check_sequence(msg)
        if event == "connected":
            return
        if event == "start":
            await self._on_start(msg)
            return
        if self.session is None:
            raise TapProtocolError(f"{event} before start")
        if event == "media":
            await self._on_media(msg)
        elif event == "dtmf":
            dtmf = msg.get("dtmf") or {}
            # dtmf.track is "inbound_track": digits are always the caller's key presses.
            channel = self.track_channel.get("inbound", 0)
            self.channel_stats(channel).dtmf_events += 1
            await self.session.record_event(
                "dtmf",
                {
                    "digit": str(dtmf.get("digit", ""))[:1],
                    "duration_ms": None,
                    "channel": channel,
                    "at_s": round(self.samples_pushed.get(channel, 0) / _RATE_HZ, 3),
                },
            )
        elif event == "mark":
            await self.session.record_event(
                "mark", {"name": str((msg.get("mark") or {}).get("name", ""))[:200]}
            )
        elif event == "stop":
            self.end("hangup")

    def _check_sequence(self, msg: dict[str, Any]) -> None:
        raw = msg.get("sequenceNumber")
        if raw is None:
            return
        try:
            seq = int(raw)
        except (TypeError, ValueError):
            raise TapProtocolError("sequenceNumber is not a number", CLOSE_INVALID_PAYLOAD) from None
        if self._last_seq is not None and seq != self._last_seq + 1:
            # TCP does not lose messages; a gap means Twilio dropped some upstream. Counted, not fatal.
            for st in self.stats.values():
                st.packets_lost += max(seq - self._last_seq - 1, 0)
        self._last_seq = seq

    async def _on_start(self, msg: dict[str, Any]) -> None:
        if self.session is not None:
            raise TapProtocolError("second start on one stream")
        start = msg.get("start")
        if not isinstance(start, dict):
            raise TapProtocolError("start without a start object")
        fmt = start.get("mediaFormat") or {}
        if fmt and (fmt.get("encoding") != "audio/x-mulaw" or int(fmt.get("sampleRate", 0)) != _RATE_HZ):
            raise TapProtocolError("unsupported media format (expected audio/x-mulaw at 8000 Hz)", 1003)
        tracks = [t for t in start.get("tracks") or ["inbound"] if t in ("inbound", "outbound")]
        if not tracks:
            raise TapProtocolError("no known tracks in start")
        if len(tracks) == 2:
            names: tuple[str, ...] = ("agent", "customer")
            self.track_channel = {"outbound": AGENT_CHANNEL, "inbound": CUSTOMER_CHANNEL}
        else:
            names = ("customer",) if tracks[0] == "inbound" else ("agent",)
            self.track_channel = {tracks[0]: 0}
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            raise TapProtocolError("customParameters is not an object")
        params = {str(k)[:100]: str(v)[:500] for k, v in list(params.items())[:50]}
        language = params.get("language", self.language)
        self.stream_sid = str(msg.get("streamSid") or start.get("streamSid") or "")
        metadata: dict[str, Any] = {
            "tap": "twilio",
            "call_id": str(start.get("callSid", "")),
            "stream_sid": self.stream_sid,
            "account_sid": str(start.get("accountSid", "")),
            "customParameters": params,
        }
        metadata.update({k: params[k] for k in _METADATA_KEYS if k in params})
        await self.open_session(
            SessionConfig(
                source="twilio",
                language=language if language in SUPPORTED_LANGUAGES else "auto",
                sample_rate_hz=_RATE_HZ,
                channel_names=names,
                metadata=metadata,
            )
        )
        for ch in self.track_channel.values():
            self.channel_stats(ch)

    async def _on_media(self, msg: dict[str, Any]) -> None:
        assert self.session is not None
        media = msg.get("media")
        if not isinstance(media, dict):
            raise TapProtocolError("media without a media object")
        track = media.get("track", "inbound")
        channel = self.track_channel.get(track)
        if channel is None:
            raise TapProtocolError(f"media on a track not in start: {str(track)[:20]!r}")
        try:
            payload = base64.b64decode(media.get("payload", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise TapProtocolError("media payload is not base64", CLOSE_INVALID_PAYLOAD) from None
        st = self.channel_stats(channel)
        st.packets_received += 1
        st.bytes_received += len(payload)
        pushed = self.samples_pushed.get(channel, 0)
        try:
            timestamp_ms = int(media.get("timestamp", 0))
        except (TypeError, ValueError):
            raise TapProtocolError("media timestamp is not a number", CLOSE_INVALID_PAYLOAD) from None
        gap = timestamp_ms * _RATE_HZ // 1000 - pushed
        if gap >= _RATE_HZ // 50:  # a whole missing frame or more: pad with silence to keep tracks aligned
            gap = min(gap, 10 * _RATE_HZ)
            st.concealed_s += gap / _RATE_HZ
            await self._push(channel, b"\x00\x00" * gap, gap)
            pushed += gap
        elif gap < -(_RATE_HZ // 50) * 5:
            st.packets_late += 1  # a timestamp far behind what we already have: still played, counted
        pcm = ulaw_decode(payload)
        await self._push(channel, pcm_bytes(pcm), pcm.size)

    async def _push(self, channel: int, data: bytes, n: int) -> None:
        assert self.session is not None
        self.samples_pushed[channel] = self.samples_pushed.get(channel, 0) + n
        self.channel_stats(channel).audio_s += n / _RATE_HZ
        await self.session.push_pcm(channel, data, _RATE_HZ)
