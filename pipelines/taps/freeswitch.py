"""FreeSWITCH `mod_audio_fork` / `mod_audio_stream` tap.

`uuid_audio_fork <uuid> start <ws-url> <mono|mixed|stereo> <8k|16k> [metadata]` (and mod_audio_stream's
equivalent) opens a WebSocket, sends the optional metadata as the first text frame, then binary frames of L16
(16-bit little endian) PCM at 8 or 16 kHz. Stereo interleaves the caller (read, channel 0) and the callee
(write, channel 1). The WebSocket carries no format header, so the format comes from the URL query
(`?sample_rate=16000&mix_type=stereo`) or from `sampleRate` / `mixType` / `channels` in the metadata.
Which party the caller is depends on the call direction: `roles=customer,agent` (default for stereo: an inbound
contact-center call, caller = customer) maps wire channels to roles. The session always has agent on 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.config import SUPPORTED_LANGUAGES, SessionConfig
from pipelines.taps.base import AGENT_CUSTOMER, TapProtocolError, deinterleave_s16le, pcm_bytes
from pipelines.taps.wstap import WebSocketTap

_RATES = {"8k": 8000, "8000": 8000, "16k": 16000, "16000": 16000, "24k": 24000, "32k": 32000, "48k": 48000}
_METADATA_KEYS = ("call_id", "from", "to", "tenant", "agent_id", "direction", "uuid")


class FreeSwitchForkTap(WebSocketTap):
    """One audio fork = one session."""

    tap_name = "freeswitch"
    # FreeSWITCH ends a fork by closing the socket when the call hangs up: a clean close is the hang-up.
    normal_close_reason = "hangup"

    def __init__(
        self, *args: Any, query: dict[str, str] | None = None, language: str = "auto", **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.query = dict(query or {})
        self.language = language
        self.sample_rate_hz = 8000
        self.wire_channels = 1
        self.wire_to_session: list[int] = [0]
        self._remainder = b""
        self._metadata: dict[str, Any] = {}
        self._text_frames = 0

    async def on_text(self, text: str) -> None:
        self._text_frames += 1
        if self.session is not None or self._text_frames > 1:
            # mod_audio_fork sends exactly one text frame; anything later is not audio and not ours to keep.
            self.channel_stats(0).packets_invalid += 1
            return
        try:
            meta = self.parse_json(text)
        except TapProtocolError:
            meta = {"raw": text[:1000]}  # metadata is free-form: a plain string is legal
        self._metadata = meta

    async def on_binary(self, data: bytes) -> None:
        if self.session is None:
            await self._open()
        assert self.session is not None
        data = self._remainder + data
        frame_bytes = 2 * self.wire_channels
        usable = len(data) - len(data) % frame_bytes
        self._remainder = data[usable:]  # a sample split across frames is legal: carried to the next frame
        chans = deinterleave_s16le(data[:usable], self.wire_channels)
        for wire, pcm in enumerate(chans):
            ch = self.wire_to_session[wire]
            st = self.channel_stats(ch)
            st.packets_received += 1
            st.bytes_received += pcm.size * 2
            st.audio_s += pcm.size / self.sample_rate_hz
            if pcm.size:
                await self.session.push_pcm(ch, pcm_bytes(pcm), self.sample_rate_hz)

    async def before_finish(self) -> None:
        if self._remainder:  # a truncated final sample: dropped, counted
            self.channel_stats(0).packets_invalid += 1
            self._remainder = b""

    def _format(self) -> tuple[int, int, tuple[str, ...]]:
        src = {**{k: str(v) for k, v in self._metadata.items() if isinstance(v, str | int)}, **self.query}
        rate_raw = str(src.get("sample_rate") or src.get("sampleRate") or src.get("sampling") or "8k").lower()
        rate = _RATES.get(rate_raw)
        if rate is None:
            raise TapProtocolError(f"unsupported sample rate {rate_raw[:10]!r} (8k or 16k)", 1003)
        mix = str(src.get("mix_type") or src.get("mixType") or "").lower()
        channels_raw = str(src.get("channels") or ("2" if mix == "stereo" else "1"))
        if channels_raw not in ("1", "2"):
            raise TapProtocolError("channels must be 1 or 2", 1003)
        channels = int(channels_raw)
        default_roles = "customer,agent" if channels == 2 else "customer"
        roles = tuple(r.strip() for r in str(src.get("roles") or default_roles).split(","))[:channels]
        if len(roles) != channels or any(not r for r in roles):
            raise TapProtocolError("roles must name every channel", 1003)
        return rate, channels, roles

    async def _open(self) -> None:
        rate, channels, roles = self._format()
        self.sample_rate_hz, self.wire_channels = rate, channels
        if channels == 2 and set(roles) == set(AGENT_CUSTOMER):
            names: tuple[str, ...] = AGENT_CUSTOMER
            self.wire_to_session = [AGENT_CUSTOMER.index(r) for r in roles]
        else:
            names = roles
            self.wire_to_session = list(range(channels))
        meta = {k: v for k, v in self._metadata.items() if isinstance(v, str | int | float | bool)}
        metadata: dict[str, Any] = {"tap": "freeswitch", "fork_metadata": meta}
        metadata.update({k: str(meta[k]) for k in _METADATA_KEYS if k in meta})
        if "call_id" not in metadata and "uuid" in meta:
            metadata["call_id"] = str(meta["uuid"])
        language = str(meta.get("language", self.query.get("language", self.language)))
        await self.open_session(
            SessionConfig(
                source="freeswitch",
                language=language if language in SUPPORTED_LANGUAGES else "auto",
                sample_rate_hz=rate,
                channel_names=names,
                metadata=metadata,
            )
        )


def interleave(channels: list[np.ndarray]) -> bytes:
    """Interleave equal-length int16 channels into L16 little-endian bytes (what a stereo fork sends)."""
    stacked = np.stack([np.asarray(c, dtype="<i2") for c in channels], axis=1)
    return stacked.astype("<i2").tobytes()
