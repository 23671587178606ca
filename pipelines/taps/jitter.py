"""An RTP jitter buffer: reorders, drops duplicates and late packets, declares loss, estimates jitter.

It releases packets in sequence order. A missing packet is declared lost (and counted) once `depth_packets`
newer packets are waiting behind it or it is `max_delay_s` overdue; the stream that consumes the buffer conceals
the hole from the RTP timestamps, so loss, silence suppression and varying packet times are handled alike.
Sequence numbers are extended to 64 bits (RFC 3550 A.1) so a wrap at 65535 is invisible to the caller.
"""

from __future__ import annotations

from collections import deque

from pipelines.taps.rtp import RtpPacket
from pipelines.taps.stats import StreamStats

_SEQ_MOD = 1 << 16
# A jump larger than this many packets is a sender restart (new SSRC, re-INVITE to another source), not loss.
_MAX_SEQ_JUMP = 3000


class JitterBuffer:
    """Reordering buffer for one RTP stream; counters go to the `stats` it is given."""

    def __init__(
        self,
        clock_rate_hz: int,
        stats: StreamStats,
        depth_packets: int = 5,
        max_delay_s: float = 0.2,
    ) -> None:
        if depth_packets < 1:
            raise ValueError("depth_packets must be >= 1")
        self._clock_rate_hz = clock_rate_hz
        self._stats = stats
        self._depth = depth_packets
        self._max_delay_s = max_delay_s
        self._pending: dict[int, tuple[RtpPacket, float]] = {}
        self._next: int | None = None  # extended sequence number to release next
        self._highest: int | None = None
        self._recent_released: deque[int] = deque(maxlen=128)
        self._recent_lost: deque[int] = deque(maxlen=128)
        self._transit: float | None = None

    @property
    def pending(self) -> int:
        """How many packets are waiting in the buffer."""
        return len(self._pending)

    def push(self, packet: RtpPacket, arrival_s: float) -> list[RtpPacket]:
        """Add one packet (arrival on a monotonic clock, seconds); returns the packets now ready, in order."""
        self._stats.packets_received += 1
        self._stats.bytes_received += len(packet.payload)
        self._update_jitter(packet, arrival_s)
        ext = self._extend(packet.sequence_number)
        if self._next is not None and ext < self._next:
            if ext in self._recent_lost:
                self._stats.packets_late += 1
            elif ext in self._recent_released:
                self._stats.packets_duplicate += 1
            elif self._next - ext > _MAX_SEQ_JUMP:
                out = self.flush()
                self._restart(ext)
                return out + self._accept(packet, ext, arrival_s)
            else:
                self._stats.packets_late += 1
            return []
        if ext in self._pending:
            self._stats.packets_duplicate += 1
            return []
        if self._next is not None and ext - self._next > _MAX_SEQ_JUMP:
            out = self.flush()
            self._restart(ext)
            return out + self._accept(packet, ext, arrival_s)
        return self._accept(packet, ext, arrival_s)

    def flush(self) -> list[RtpPacket]:
        """Release everything buffered (end of stream), counting the holes as lost."""
        out: list[RtpPacket] = []
        for ext in sorted(self._pending):
            if self._next is None:
                self._next = ext
            self._declare_lost(self._next, ext)
            out.append(self._pending.pop(ext)[0])
            self._recent_released.append(ext)
            self._next = ext + 1
        return out

    def _accept(self, packet: RtpPacket, ext: int, arrival_s: float) -> list[RtpPacket]:
        if self._highest is not None and ext < self._highest:
            self._stats.packets_reordered += 1
        self._pending[ext] = (packet, arrival_s)
        return self._release(arrival_s)

    def _release(self, now_s: float) -> list[RtpPacket]:
        out: list[RtpPacket] = []
        if self._next is None:
            # Playout starts once the buffer is primed, so packets reordered at the very start are not late.
            oldest = min(self._pending)
            if len(self._pending) < self._depth and now_s - self._pending[oldest][1] < self._max_delay_s:
                return out
            self._next = oldest
        while self._pending:
            if self._next in self._pending:
                out.append(self._pending.pop(self._next)[0])
                self._recent_released.append(self._next)
                self._next += 1
                continue
            oldest = min(self._pending)
            overdue = now_s - self._pending[oldest][1] >= self._max_delay_s
            if len(self._pending) < self._depth and not overdue:
                break
            self._declare_lost(self._next, oldest)
            self._next = oldest
        return out

    def _declare_lost(self, first: int, stop: int) -> None:
        if stop > first:
            self._stats.packets_lost += stop - first
            self._recent_lost.extend(range(max(first, stop - 128), stop))

    def _restart(self, ext: int) -> None:
        self._stats.resyncs += 1
        self._pending.clear()
        self._next = ext
        self._highest = ext

    def _extend(self, seq: int) -> int:
        if self._highest is None:
            self._highest = seq + _SEQ_MOD  # room below the first packet for early reordered ones
            return self._highest
        delta = (seq - self._highest) % _SEQ_MOD
        ext = self._highest + delta if delta < _SEQ_MOD // 2 else self._highest - (_SEQ_MOD - delta)
        self._highest = max(self._highest, ext)
        return ext

    def _update_jitter(self, packet: RtpPacket, arrival_s: float) -> None:
        # RFC 3550 6.4.1: J += (|D(i-1,i)| - J) / 16, with transit times in RTP clock units.
        transit = arrival_s * self._clock_rate_hz - packet.timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < self._clock_rate_hz * 10:  # ignore timestamp jumps (restart, wrap)
                jitter_ticks = self._stats.jitter_ms * self._clock_rate_hz / 1000.0
                jitter_ticks += (d - jitter_ticks) / 16.0
                self._stats.jitter_ms = 1000.0 * jitter_ticks / self._clock_rate_hz
        self._transit = transit
