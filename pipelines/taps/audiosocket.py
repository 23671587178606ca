"""Asterisk AudioSocket tap: a TCP server speaking res_audiosocket's type-length-value framing.

Every message is `type (1 byte) | length (2 bytes, big endian) | payload`:
  0x00 hangup (no payload)                0x01 UUID (16 bytes, the call's identifier; sent first)
  0x03 DTMF (1 ASCII byte)                0x10 audio, signed linear 16-bit little endian, mono, 8 kHz
  0x11..0x18 the same at 12, 16, 24, 32, 44.1, 48, 96, 192 kHz   0xff error (1 byte code)
One TCP connection is one call leg (the dialplan's `AudioSocket(uuid,host:port)` or an ARI external-media
channel), so each connection becomes one session with one channel (its role is `channel_names`, default
customer), opened at the first media frame so the session runs at the leg's rate. Media time follows the audio
received, as AudioSocket carries no timestamps.

Two-party calls: with `agent_port` set, the server also listens there for agent legs. Legs carrying the same
call UUID, one on each port (e.g. an ARI app snooping both parties into externalMedia channels), become one
session with channels ("agent", "customer"); it ends when the last of its legs has ended (a leg that connects
after that starts a new session). A second leg of the same role for a live call UUID is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pipelines.config import SessionConfig
from pipelines.taps.base import (
    AGENT_CUSTOMER,
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
        agent_port: int | None = None,
    ) -> None:
        self._manager = manager
        self._host = host
        self._port = port
        self._agent_port = agent_port
        self._paired: dict[str, _PairedCall] = {}
        self._channel_names = channel_names[:1]
        self._language = language
        self._idle_timeout_s = idle_timeout_s
        self._uuid_timeout_s = uuid_timeout_s
        self._server: asyncio.base_events.Server | None = None
        self._agent_server: asyncio.base_events.Server | None = None
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

    @property
    def paired(self) -> bool:
        """Whether legs are paired into two-party sessions (an agent port is configured)."""
        return self._agent_port is not None

    @property
    def agent_listen_port(self) -> int:
        """The bound TCP port for agent legs (with `agent_port`)."""
        if self._agent_server is None:
            raise RuntimeError("no agent port")
        return int(self._agent_server.sockets[0].getsockname()[1])

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
        role = "customer" if self.paired else self._channel_names[0]
        self._server = await asyncio.start_server(
            functools.partial(self._on_connection, role=role), self._host, self._port
        )
        logger.info("audiosocket listening on %s:%d", self._host, self.port)
        if self._agent_port is not None:
            self._agent_server = await asyncio.start_server(
                functools.partial(self._on_connection, role="agent"), self._host, self._agent_port
            )
            logger.info("audiosocket agent legs on %s:%d", self._host, self.agent_listen_port)

    async def stop(self) -> None:
        self.stopping = True
        for srv in (self._server, self._agent_server):
            if srv is not None:
                srv.close()
        # Connections are ended by closing their sockets, not by cancelling their handlers (asyncio's
        # start_server would log a cancelled handler as an error); each call then closes its session.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        for srv in (self._server, self._agent_server):
            if srv is not None:
                await srv.wait_closed()
        self._server = self._agent_server = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, role: str = "customer"
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        self.connections_total += 1
        call = _AudioSocketCall(self, reader, writer, role)
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


@dataclass
class _PairedCall:
    """The legs of one call UUID in paired mode: one session for both, closed when the last leg ends."""

    roles: set[str] = field(default_factory=set)
    session: TapSession | None = None
    reasons: list[str] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _AudioSocketCall:
    """One connection's state machine."""

    def __init__(
        self, server: AudioSocketServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        role: str = "customer",
    ):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.role = role
        self.channel = 0
        self.session: TapSession | None = None
        self.call_id = ""
        self.stats = StreamStats(channel=0)
        self.reason = "disconnect"
        self.rate: RateAdapter | None = None
        self._joined = False
        self._finished = False

    def _config(self, rate_hz: int, channel_names: tuple[str, ...]) -> SessionConfig:
        return SessionConfig(
            source="audiosocket",
            language=self.server._language,
            sample_rate_hz=rate_hz,
            channel_names=channel_names,
            metadata={"call_id": self.call_id, "tap": "audiosocket"},
        )

    async def _open(self, rate_hz: int) -> TapSession:
        """Open the session at the first media frame, so its rate is the leg's rate (8 kHz unless told).

        In paired mode the first leg to send media opens the call's two-channel session; the other leg joins
        it (and is resampled if its rate differs)."""
        if self.session is None:
            rate_hz = min(rate_hz, 48000)
            if self.server.paired:
                shared = self.server._paired[self.call_id]
                async with shared.lock:
                    if shared.session is None:
                        shared.session = await self.server._manager.open_session(
                            self._config(rate_hz, AGENT_CUSTOMER)
                        )
                self.session = shared.session
                self.channel = AGENT_CUSTOMER.index(self.role)
            else:
                self.session = await self.server._manager.open_session(
                    self._config(rate_hz, self.server._channel_names)
                )
            self.stats.channel = self.channel
            self.rate = RateAdapter(self.session.config.sample_rate_hz)
            self.server.tap_metrics.stream_started("audiosocket", self.stats, self.session.session_id)
        return self.session

    def _join(self) -> None:
        """Paired mode: register this leg under its call UUID (one leg per role)."""
        shared = self.server._paired.setdefault(self.call_id, _PairedCall())
        if self.role in shared.roles:
            raise AudioSocketError(f"a {self.role} leg of this call is already connected")
        shared.roles.add(self.role)
        self._joined = True

    def _leave(self) -> tuple[TapSession | None, str]:
        """Paired mode: drop this leg; returns the call's session and end reason if it was the last leg."""
        shared = self.server._paired.get(self.call_id)
        if shared is None or not self._joined:
            return None, ""
        self._joined = False
        shared.roles.discard(self.role)
        shared.reasons.append(self.reason)
        if shared.roles:
            return None, ""
        self.server._paired.pop(self.call_id, None)
        reason = "hangup" if "hangup" in shared.reasons else shared.reasons[0]
        return shared.session, reason

    async def run(self) -> None:
        try:
            first = await asyncio.wait_for(read_frame(self.reader), self.server._uuid_timeout_s)
            if first is None:
                return
            validate_frame(first)
            if first.kind != KIND_UUID:
                raise AudioSocketError("the first frame must be the call UUID")
            self.call_id = str(uuid.UUID(bytes=first.payload))
            if self.server.paired:
                self._join()
            try:
                await self._loop()
            except CapacityExceeded:
                logger.warning("audiosocket: at capacity, refusing call")
                self.reason = "capacity"
                await self._send_hangup()
                await self._finish()
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
                        "channel": self.channel,
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
            await session.push_pcm(self.channel, pcm_bytes(out), self.rate.out_rate_hz)

    async def _send_hangup(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            self.writer.write(build_frame(KIND_HANGUP))
            await self.writer.drain()

    async def _finish(self) -> None:
        """Flush this leg, record its stats, and close the session (paired: when it was the last leg)."""
        if self._finished:
            return
        self._finished = True
        session, self.session = self.session, None
        try:
            if session is not None:
                tail = self.rate.flush() if self.rate is not None else np.zeros(0, dtype=np.int16)
                if tail.size:
                    await session.push_pcm(self.channel, pcm_bytes(tail), session.config.sample_rate_hz)
                stream = self.stats.to_dict() | ({"role": self.role} if self.server.paired else {})
                await session.record_event("tap_stats", {"tap": "audiosocket", "streams": [stream]})
        except SessionClosed:
            pass
        finally:
            to_close, reason = self._leave() if self.server.paired else (session, self.reason)
            if to_close is not None:
                await to_close.close(reason)
