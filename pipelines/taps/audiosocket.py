"""Asterisk AudioSocket tap: a TCP server speaking res_audiosocket's type-length-value framing.

Every message is `type (1 byte) | length (2 bytes, big endian) | payload`:
  0x00 hangup (no payload)                0x01 UUID (16 bytes, the call's identifier; sent first)
  0x03 DTMF (1 ASCII byte)                0x10 audio, signed linear 16-bit little endian, mono, 8 kHz
  0x11..0x18 the same at 12, 16, 24, 32, 44.1, 48, 96, 192 kHz   0xff error (1 byte code)
One TCP connection is one call leg (the dialplan's `AudioSocket(uuid,host:port)` or an ARI external-media
channel), so each connection becomes one session with one channel (its role is `channel_names`, default
customer), opened at the first media frame so the session runs at the leg's rate. Media time follows the audio
received, as AudioSocket carries no timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pipelines.config import SessionConfig
from pipelines.taps.base import (
    CapacityExceeded,
    RateAdapter,
    SessionClosed,
    SessionOpener,
    TapSession,
    logger,
    pcm_bytes,
)
from pipelines.taps.metrics import TapMetrics
from pipelines.taps.stats import StreamStats

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO_8K = 0x10
KIND_ERROR = 0xFF
AUDIO_RATES_HZ: dict[int, int] = {
    0x10: 8000,
    0x11: 12000,
    0x12: 16000,
    0x13: 24000,
    0x14: 32000,
    0x15: 44100,
    0x16: 48000,
    0x17: 96000,
    0x18: 192000,
}
ERROR_CODES = {0x00: "none", 0x01: "hangup", 0x02: "frame_forwarding", 0x04: "memory"}
_HEADER = struct.Struct("!BH")


class AudioSocketError(ValueError):
    """The peer sent a frame that breaks the protocol."""


@dataclass(frozen=True, slots=True)
class AudioSocketFrame:
    kind: int
    payload: bytes


def build_frame(kind: int, payload: bytes = b"") -> bytes:
    """Serialise one AudioSocket message."""
    if len(payload) > 0xFFFF:
        raise ValueError("AudioSocket payloads are at most 65535 bytes")
    return _HEADER.pack(kind, len(payload)) + payload


def parse_frames(buffer: bytes) -> tuple[list[AudioSocketFrame], bytes]:
    """Split a byte buffer into complete frames; returns them and the incomplete remainder."""
    frames: list[AudioSocketFrame] = []
    offset = 0
    while len(buffer) - offset >= _HEADER.size:
        kind, length = _HEADER.unpack_from(buffer, offset)
        if len(buffer) - offset - _HEADER.size < length:
            break
        start = offset + _HEADER.size
        frames.append(AudioSocketFrame(kind, bytes(buffer[start : start + length])))
        offset = start + length
    return frames, bytes(buffer[offset:])


async def read_frame(reader: asyncio.StreamReader) -> AudioSocketFrame | None:
    """The next frame, or None on a clean end of stream between frames; raises on a truncated frame."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise AudioSocketError("connection ended inside a frame header") from exc
        return None
    kind, length = _HEADER.unpack(header)
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise AudioSocketError("connection ended inside a frame payload") from exc
    return AudioSocketFrame(kind, payload)


def validate_frame(frame: AudioSocketFrame) -> None:
    """Raise AudioSocketError for a frame whose payload does not fit its type."""
    if frame.kind == KIND_UUID and len(frame.payload) != 16:
        raise AudioSocketError("UUID frame must carry 16 bytes")
    if frame.kind == KIND_DTMF and len(frame.payload) != 1:
        raise AudioSocketError("DTMF frame must carry 1 byte")
    if frame.kind in AUDIO_RATES_HZ and len(frame.payload) % 2:
        raise AudioSocketError("audio frame has an odd number of bytes")
    if frame.kind not in AUDIO_RATES_HZ and frame.kind not in (KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_ERROR):
        raise AudioSocketError(f"unknown frame type 0x{frame.kind:02x}")


class AudioSocketServer:
    """Accepts AudioSocket connections; one session per connection. `start()` / `stop()` from the app lifespan."""

    def __init__(
        self,
        manager: SessionOpener,
        host: str = "127.0.0.1",
        port: int = 0,
        channel_names: tuple[str, ...] = ("customer",),
        language: str = "auto",
        idle_timeout_s: float = 30.0,
        uuid_timeout_s: float = 5.0,
    ) -> None:
        self._manager = manager
        self._host = host
        self._port = port
        self._channel_names = channel_names[:1]
        self._language = language
        self._idle_timeout_s = idle_timeout_s
        self._uuid_timeout_s = uuid_timeout_s
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.stopping = False
        self.tap_metrics = TapMetrics("harken_audiosocket")
        self.connections_total = 0
        self.protocol_errors = 0

    @property
    def port(self) -> int:
        """The bound TCP port (useful when constructed with port 0)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    def metrics(self) -> Iterator[Metric]:
        """Prometheus families: per-stream counters (`harken_audiosocket_*{tap="audiosocket"}`), connections."""
        yield from self.tap_metrics.families()
        yield CounterMetricFamily("harken_audiosocket_connections", "AudioSocket connections accepted",
                                  value=self.connections_total)
        yield GaugeMetricFamily("harken_audiosocket_connections_active", "AudioSocket connections open",
                                value=len(self._connections))
        yield CounterMetricFamily("harken_audiosocket_protocol_errors", "Connections ended for a protocol error",
                                  value=self.protocol_errors)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self._host, self._port)
        logger.info("audiosocket listening on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        self.stopping = True
        if self._server is not None:
            self._server.close()
        # Connections are ended by closing their sockets, not by cancelling their handlers (asyncio's
        # start_server would log a cancelled handler as an error); each call then closes its session.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        self.connections_total += 1
        call = _AudioSocketCall(self, reader, writer)
        self.tap_metrics.stream_started("audiosocket", call.stats)
        try:
            await call.run()
        finally:
            self.tap_metrics.stream_ended(call.stats)
            self.protocol_errors += call.reason == "protocol_error"
            self._connections.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


class _AudioSocketCall:
    """One connection's state machine."""

    def __init__(self, server: AudioSocketServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.session: TapSession | None = None
        self.call_id = ""
        self.stats = StreamStats(channel=0)
        self.reason = "disconnect"
        self.rate: RateAdapter | None = None

    async def _open(self, rate_hz: int) -> TapSession:
        """Open the session at the first media frame, so its rate is the leg's rate (8 kHz unless told)."""
        if self.session is None:
            rate_hz = min(rate_hz, 48000)
            self.session = await self.server._manager.open_session(
                SessionConfig(
                    source="audiosocket",
                    language=self.server._language,
                    sample_rate_hz=rate_hz,
                    channel_names=self.server._channel_names,
                    metadata={"call_id": self.call_id, "tap": "audiosocket"},
                )
            )
            self.rate = RateAdapter(rate_hz)
            self.server.tap_metrics.stream_started("audiosocket", self.stats, self.session.session_id)
        return self.session

    async def run(self) -> None:
        try:
            first = await asyncio.wait_for(read_frame(self.reader), self.server._uuid_timeout_s)
            if first is None:
                return
            validate_frame(first)
            if first.kind != KIND_UUID:
                raise AudioSocketError("the first frame must be the call UUID")
            self.call_id = str(uuid.UUID(bytes=first.payload))
            try:
                await self._loop()
            except CapacityExceeded:
                logger.warning("audiosocket: at capacity, refusing call")
                await self._send_hangup()
                return
        except (AudioSocketError, TimeoutError) as exc:
            self.reason = "protocol_error" if isinstance(exc, AudioSocketError) else "timeout"
            self.stats.packets_invalid += isinstance(exc, AudioSocketError)
            logger.warning("audiosocket: closing call: %s", exc)
            await self._send_hangup()
        except (ConnectionError, OSError):
            self.reason = "disconnect"
        except SessionClosed:
            self.reason = "session_closed"
            await self._send_hangup()
        except asyncio.CancelledError:
            self.reason = "server_shutdown"
            await self._finish()
            raise
        if self.server.stopping:
            self.reason = "server_shutdown"
        await self._finish()

    async def _loop(self) -> None:
        while True:
            frame = await asyncio.wait_for(read_frame(self.reader), self.server._idle_timeout_s)
            if frame is None:
                self.reason = "disconnect"
                return
            validate_frame(frame)
            self.stats.packets_received += 1
            self.stats.bytes_received += len(frame.payload)
            if frame.kind in AUDIO_RATES_HZ:
                await self._push_audio(frame.payload, AUDIO_RATES_HZ[frame.kind])
            elif frame.kind == KIND_DTMF:
                self.stats.dtmf_events += 1
                await (await self._open(8000)).record_event(
                    "dtmf",
                    {
                        "digit": frame.payload.decode("ascii", "replace"),
                        "duration_ms": None,
                        "channel": 0,
                        "at_s": round(self.stats.audio_s, 3),
                    },
                )
            elif frame.kind == KIND_HANGUP:
                self.reason = "hangup"
                return
            elif frame.kind == KIND_ERROR:
                code = frame.payload[0] if frame.payload else 0
                await (await self._open(8000)).record_event(
                    "tap_error", {"tap": "audiosocket", "code": ERROR_CODES.get(code, code)}
                )
                self.reason = "hangup" if code == 0x01 else "peer_error"
                return
            # a repeated UUID frame is harmless: ignored

    async def _push_audio(self, payload: bytes, rate_hz: int) -> None:
        session = await self._open(rate_hz)
        assert self.rate is not None
        pcm = np.frombuffer(payload, dtype="<i2")
        self.stats.audio_s += pcm.size / rate_hz
        out = self.rate.convert(pcm, rate_hz)  # a later change of frame type (or 96/192 kHz) is resampled
        if out.size:
            await session.push_pcm(0, pcm_bytes(out), self.rate.out_rate_hz)

    async def _send_hangup(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            self.writer.write(build_frame(KIND_HANGUP))
            await self.writer.drain()

    async def _finish(self) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        try:
            tail = self.rate.flush() if self.rate is not None else np.zeros(0, dtype=np.int16)
            if tail.size:
                await session.push_pcm(0, pcm_bytes(tail), session.config.sample_rate_hz)
            await session.record_event("tap_stats", {"tap": "audiosocket", "streams": [self.stats.to_dict()]})
        except SessionClosed:
            pass
        finally:
            await session.close(self.reason)
