"""One RTP stream into one session channel: jitter buffer, decoders per payload type, DTMF, gap concealment."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from pipelines.taps.base import RateAdapter, TapSession, logger, pcm_bytes
from pipelines.taps.codecs import AudioDecoder, CodecError, CodecSpec, make_decoder
from pipelines.taps.jitter import JitterBuffer
from pipelines.taps.rtp import DtmfTracker, RtpError, RtpPacket, is_rtcp, parse_rtp
from pipelines.taps.stats import StreamStats

COMFORT_NOISE_PT = 13
# A timestamp jump beyond this is a sender restart (no gap fill); below it, the gap is loss or silence to fill.
_MAX_GAP_S = 10.0


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """What SDP negotiated for one stream: audio payload types and the telephone-event payload type if any."""

    payload_types: dict[int, CodecSpec]
    dtmf_payload_type: int | None = None
    dtmf_clock_hz: int = 8000
    jitter_depth_packets: int = 5
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def clock_rate_hz(self) -> int:
        specs = list(self.payload_types.values())
        return specs[0].rtp_clock_hz if specs else 8000


class RtpStreamReceiver:
    """Feeds one session channel from one RTP stream; owns its stats. Not thread-safe (one event loop)."""

    def __init__(
        self, session: TapSession, channel: int, fmt: StreamFormat, stats: StreamStats | None = None
    ):
        self.session = session
        self.channel = channel
        self.format = fmt
        self.stats = stats or StreamStats(channel=channel)
        self.stats.channel = channel
        self._jitter = JitterBuffer(fmt.clock_rate_hz, self.stats, depth_packets=fmt.jitter_depth_packets)
        self._decoders: dict[int, AudioDecoder] = {}
        self._dtmf = DtmfTracker(fmt.dtmf_clock_hz)
        self._next_ts: int | None = None  # RTP timestamp of the next expected audio sample
        self._last_spec: CodecSpec | None = None
        self._rate = RateAdapter(session.config.sample_rate_hz)
        self.last_packet_at: float = time.monotonic()

    def update_format(self, fmt: StreamFormat) -> None:
        """A re-INVITE may renegotiate payload types; keep the buffer and clock, refresh the mapping."""
        self.format = fmt
        self._dtmf = DtmfTracker(fmt.dtmf_clock_hz)

    async def on_datagram(self, datagram: bytes, arrival_s: float | None = None) -> None:
        """Handle one UDP datagram from the stream's source: RTP, RTCP (counted and ignored) or garbage."""
        now = time.monotonic() if arrival_s is None else arrival_s
        self.last_packet_at = now
        if is_rtcp(datagram):
            self.stats.rtcp_packets += 1
            return
        try:
            packet = parse_rtp(datagram)
        except RtpError:
            self.stats.packets_invalid += 1
            return
        await self.on_packet(packet, now)

    async def on_packet(self, packet: RtpPacket, arrival_s: float) -> None:
        pt = packet.payload_type
        if (
            pt not in self.format.payload_types
            and pt != self.format.dtmf_payload_type
            and pt != COMFORT_NOISE_PT
        ):
            self.stats.packets_invalid += 1
            return
        for ready in self._jitter.push(packet, arrival_s):
            await self._play(ready)

    async def finish(self) -> None:
        """End of stream: play what is buffered and report a digit whose end packets never came."""
        for ready in self._jitter.flush():
            await self._play(ready)
        for digit in self._dtmf.flush():
            await self._record_dtmf(digit.digit, digit.duration_ms)
        tail = self._rate.flush()
        if tail.size:
            await self.session.push_pcm(self.channel, pcm_bytes(tail), self._rate.out_rate_hz)

    async def _play(self, packet: RtpPacket) -> None:
        pt = packet.payload_type
        if pt == self.format.dtmf_payload_type:
            try:
                digits = self._dtmf.push(packet)
            except RtpError:
                self.stats.packets_invalid += 1
                return
            for d in digits:
                await self._record_dtmf(d.digit, d.duration_ms)
            return
        spec = self.format.payload_types.get(pt)
        if spec is None:  # comfort noise: the gap before the next audio packet is filled with silence
            return
        decoder = self._decoders.get(pt)
        if decoder is None:
            decoder = self._decoders[pt] = make_decoder(spec)
        try:
            pcm = decoder.decode(packet.payload)
        except CodecError:
            self.stats.packets_invalid += 1
            return
        if self._last_spec is not None and self._last_spec.rtp_clock_hz != spec.rtp_clock_hz:
            self._next_ts = None  # a clock change (codec switch): restart the timeline mapping
        self._last_spec = spec
        await self._fill_gap(packet.timestamp, spec, decoder)
        if pcm.size:
            await self._push(pcm, spec.sample_rate_hz)
        self._next_ts = (packet.timestamp + round(pcm.size * spec.rtp_ticks_per_sample)) & 0xFFFFFFFF

    async def _fill_gap(self, timestamp: int, spec: CodecSpec, decoder: AudioDecoder) -> None:
        if self._next_ts is None:
            return
        diff = ((timestamp - self._next_ts + (1 << 31)) % (1 << 32)) - (1 << 31)
        if diff <= 0:
            return
        if diff > _MAX_GAP_S * spec.rtp_clock_hz:
            self.stats.resyncs += 1
            return
        samples = round(diff / spec.rtp_ticks_per_sample)
        fill = decoder.conceal(samples)
        self.stats.concealed_s += fill.size / spec.sample_rate_hz
        await self._push(fill, spec.sample_rate_hz)

    async def _push(self, pcm: np.ndarray, sample_rate_hz: int) -> None:
        self.stats.audio_s += pcm.size / sample_rate_hz
        out = self._rate.convert(pcm, sample_rate_hz)
        if out.size:
            await self.session.push_pcm(self.channel, pcm_bytes(out), self._rate.out_rate_hz)

    async def _record_dtmf(self, digit: str, duration_ms: float) -> None:
        self.stats.dtmf_events += 1
        logger.debug("dtmf on channel %d", self.channel)  # the digit itself may be personal data (a PIN)
        await self.session.record_event(
            "dtmf",
            {
                "digit": digit,
                "duration_ms": round(duration_ms, 1),
                "channel": self.channel,
                "at_s": round(self.stats.audio_s, 3),
            },
        )
