"""RTP (RFC 3550) packets, RTCP detection (RFC 5761) and telephone-events (RFC 4733 DTMF)."""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

RTP_VERSION = 2
_HEADER = struct.Struct("!BBHII")
DTMF_DIGITS = "0123456789*#ABCD"


class RtpError(ValueError):
    """A datagram is not a well-formed RTP packet (the reason says why; the datagram is dropped and counted)."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; `payload` has padding and header extension removed."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()


def is_rtcp(datagram: bytes) -> bool:
    """True for RTCP (payload types 200-204 in the second byte: SR, RR, SDES, BYE, APP), muxed or not."""
    return len(datagram) >= 2 and (datagram[0] >> 6) == RTP_VERSION and 192 <= datagram[1] <= 223


def parse_rtp(datagram: bytes) -> RtpPacket:
    """Parse one RTP datagram; raises RtpError on anything malformed or truncated."""
    if len(datagram) < _HEADER.size:
        raise RtpError("shorter than an RTP header")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(datagram)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {b0 >> 6}")
    if is_rtcp(datagram):
        raise RtpError("RTCP, not RTP")
    csrc_count = b0 & 0x0F
    offset = _HEADER.size + 4 * csrc_count
    if len(datagram) < offset:
        raise RtpError("truncated CSRC list")
    csrcs = struct.unpack_from(f"!{csrc_count}I", datagram, _HEADER.size) if csrc_count else ()
    if b0 & 0x10:  # header extension: 16-bit profile, 16-bit length in 32-bit words
        if len(datagram) < offset + 4:
            raise RtpError("truncated header extension")
        (ext_words,) = struct.unpack_from("!H", datagram, offset + 2)
        offset += 4 + 4 * ext_words
        if len(datagram) < offset:
            raise RtpError("truncated header extension")
    end = len(datagram)
    if b0 & 0x20:  # padding: the last byte says how many bytes to drop
        pad = datagram[-1]
        if pad == 0 or end - pad < offset:
            raise RtpError("bad padding")
        end -= pad
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=bytes(datagram[offset:end]),
        marker=bool(b1 & 0x80),
        csrcs=tuple(csrcs),
    )


def build_rtp(packet: RtpPacket) -> bytes:
    """Serialise an RTP packet (no padding, no extension)."""
    b0 = (RTP_VERSION << 6) | len(packet.csrcs)
    b1 = (0x80 if packet.marker else 0) | (packet.payload_type & 0x7F)
    head = _HEADER.pack(b0, b1, packet.sequence_number & 0xFFFF, packet.timestamp & 0xFFFFFFFF, packet.ssrc)
    return head + b"".join(struct.pack("!I", c) for c in packet.csrcs) + packet.payload


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 telephone-event payload: `event` 0-15 are DTMF digits; `duration` is in RTP clock units."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return DTMF_DIGITS[self.event] if 0 <= self.event < len(DTMF_DIGITS) else None


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """Parse the 4-byte RFC 4733 event payload (extra bytes, i.e. redundant events, are ignored)."""
    if len(payload) < 4:
        raise RtpError("telephone-event payload shorter than 4 bytes")
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


def build_telephone_event(event: TelephoneEvent) -> bytes:
    """Serialise an RFC 4733 event payload."""
    return struct.pack(
        "!BBH", event.event, (0x80 if event.end else 0) | (event.volume & 0x3F), event.duration
    )


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One finished key press: `digit`, its duration and where it started on the stream's RTP clock."""

    digit: str
    duration_ms: float
    rtp_timestamp: int


class DtmfTracker:
    """Turns the (retransmitted) event packets of RFC 4733 into one `DtmfDigit` per key press.

    An event's packets share one RTP timestamp; the end packet is sent three times. A digit is reported on its
    first end packet, or when a new event starts without the old one having ended (lost end packets).
    """

    def __init__(self, clock_rate_hz: int) -> None:
        self._clock_rate_hz = clock_rate_hz
        self._current: tuple[int, TelephoneEvent] | None = None
        # RTP timestamps of recently reported events: bounded, so a long call does not grow it.
        self._reported: deque[int] = deque(maxlen=32)

    def push(self, packet: RtpPacket) -> list[DtmfDigit]:
        ev = parse_telephone_event(packet.payload)
        out: list[DtmfDigit] = []
        if self._current and self._current[0] != packet.timestamp and self._current[0] not in self._reported:
            out += self._finish(*self._current)
        if packet.timestamp in self._reported:
            return out
        self._current = (packet.timestamp, ev)
        if ev.end:
            out += self._finish(packet.timestamp, ev)
        return out

    def flush(self) -> list[DtmfDigit]:
        if self._current and self._current[0] not in self._reported:
            return self._finish(*self._current)
        return []

    def _finish(self, timestamp: int, ev: TelephoneEvent) -> list[DtmfDigit]:
        self._reported.append(timestamp)
        if ev.digit is None:
            return []
        return [DtmfDigit(ev.digit, 1000.0 * ev.duration / self._clock_rate_hz, timestamp)]
