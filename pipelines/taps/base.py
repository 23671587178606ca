"""What every tap needs from the rest of harken, as structural types, plus small shared helpers.

Taps code against `SessionOpener` / `TapSession` (the shape of `pipelines.session.SessionManager` and
`LiveSession`), so they can be tested with an in-memory fake and never import the ASR pipeline.
WebSocket taps talk to a `MessageTransport`, which `api/taps_routes.py` adapts from Starlette's WebSocket;
the protocol handlers themselves know nothing of FastAPI.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from pipelines.config import SessionConfig
from pipelines.errors import BadAudio, CapacityExceeded, SessionClosed
from pipelines.resample import Int16ResampleStream

__all__ = ["BadAudio", "CapacityExceeded", "SessionClosed"]

logger = logging.getLogger("harken.taps")

# Two-party calls always put the agent on session channel 0 and the customer on channel 1, whatever order the
# protocol uses on the wire (AudioHook: external first; Twilio: inbound = caller), so downstream code and the
# shared call recordings (agent left, customer right) agree.
AGENT_CUSTOMER = ("agent", "customer")
AGENT_CHANNEL = 0
CUSTOMER_CHANNEL = 1


class TapSession(Protocol):
    """The part of `pipelines.session.LiveSession` taps use."""

    session_id: str
    config: SessionConfig

    async def push_pcm(self, channel: int, pcm_s16le: bytes, sample_rate_hz: int) -> None: ...

    async def record_event(self, event_type: str, data: dict[str, Any]) -> None: ...

    def update_metadata(self, data: dict[str, Any]) -> None: ...

    async def close(self, reason: str = "hangup") -> None: ...


class SessionOpener(Protocol):
    """The part of `pipelines.session.SessionManager` taps use."""

    async def open_session(self, config: SessionConfig) -> TapSession: ...


class MessageTransport(Protocol):
    """A message-oriented duplex connection (a WebSocket) as a protocol handler sees it."""

    async def receive(self) -> str | bytes | None:
        """The next text or binary message; None when the peer has gone (close frame or dropped connection)."""
        ...

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class TapProtocolError(Exception):
    """The peer broke the protocol; `close_code` is the WebSocket close code to answer with."""

    def __init__(self, message: str, close_code: int = 1008) -> None:
        super().__init__(message)
        self.close_code = close_code


# WebSocket close codes (RFC 6455 §7.4.1) the taps use.
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013


class RateAdapter:
    """Brings one channel's PCM to the session's sample rate (the session takes one rate per session).

    Taps whose media rate can differ from the session's (an AudioSocket leg switching frame types, a SIP call
    mixing G.722 and G.711 legs, a browser) pass every chunk through one adapter per channel. It uses a
    streaming resampler, so chunk edges do not click; the price is a few ms of constant delay.
    """

    def __init__(self, out_rate_hz: int) -> None:
        self.out_rate_hz = out_rate_hz
        self._in_rate_hz: int | None = None
        self._stream: Any = None

    def convert(self, pcm: np.ndarray, rate_hz: int) -> np.ndarray:
        if rate_hz == self.out_rate_hz:
            return pcm
        if rate_hz != self._in_rate_hz:
            self._stream = Int16ResampleStream(rate_hz, self.out_rate_hz)
            self._in_rate_hz = rate_hz
        return self._stream.resample_chunk(pcm)

    def flush(self) -> np.ndarray:
        """What the resampler still holds (end of stream)."""
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        tail = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._stream, self._in_rate_hz = None, None
        return tail


def pcm_bytes(samples: np.ndarray) -> bytes:
    """int16 samples as little-endian bytes (what `push_pcm` takes)."""
    return np.asarray(samples, dtype="<i2").tobytes()


def deinterleave_s16le(data: bytes, channels: int) -> list[np.ndarray]:
    """Split interleaved int16 little-endian PCM into one array per channel (whole frames only)."""
    frame_bytes = 2 * channels
    usable = len(data) - len(data) % frame_bytes
    arr = np.frombuffer(data[:usable], dtype="<i2")
    return [arr[c::channels].copy() for c in range(channels)]
