"""Prometheus export of the taps' per-stream counters (packets, loss, late, jitter, DTMF, audio).

One `TapMetrics` belongs to one exporter: the SIP server, the AudioSocket server, or the WebSocket taps of one
app (created on first use by api/taps_routes.py). It never holds global state. Taps register each stream's
`StreamStats` when the stream starts and release it when the stream ends; the counters of ended streams are
folded into per-tap totals, so a scrape sees live and finished streams alike and counters never go backwards.

Each exporter names its families with its own prefix (`harken_sip_rtp_`, `harken_audiosocket_`,
`harken_tap_ws_`), because the app's collector yields every exporter's families side by side and a metric
name may appear only once in an exposition. Every family has a `tap` label (sip/siprec, audiosocket, twilio,
audiohook, freeswitch). Live streams also get a jitter gauge (the worst per tap and channel); it disappears
when the stream ends (the per-tap maximum stays).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pipelines.taps.stats import StreamStats

# StreamStats field -> (metric suffix, help). Counters only; jitter is a gauge.
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("packets_received", "packets_received", "Media packets (RTP packets, WebSocket or AudioSocket frames) received"),
    ("bytes_received", "bytes_received", "Media payload bytes received"),
    ("packets_lost", "packets_lost", "Packets never received in time (concealed)"),
    ("packets_late", "packets_late", "Packets that arrived after their slot was concealed (late frames)"),
    ("packets_duplicate", "packets_duplicate", "Duplicate packets dropped"),
    ("packets_reordered", "packets_reordered", "Packets that arrived out of order but in time"),
    ("packets_invalid", "packets_invalid", "Malformed, undecodable or unknown-payload packets"),
    ("packets_foreign", "packets_foreign", "Packets from an unexpected source address (dropped)"),
    ("packets_dropped", "packets_dropped", "Packets shed because the session could not keep up"),
    ("packets_dropped_socket", "packets_dropped_socket",
     "Packets the kernel dropped before they were read (socket receive buffer full)"),
    ("rtcp_packets", "rtcp_packets", "RTCP packets received (counted, not used)"),
    ("resyncs", "resyncs", "Sender restarts (sequence or timestamp jumps)"),
    ("dtmf_events", "dtmf_events", "DTMF digits received"),
    ("audio_s", "audio_seconds", "Audio pushed to sessions"),
    ("concealed_s", "concealed_seconds", "Audio concealed or padded for loss and gaps"),
)


@dataclass
class _Live:
    tap: str
    session_id: str
    stats: StreamStats


@dataclass
class _Totals:
    values: dict[str, float] = field(default_factory=dict)
    streams: int = 0
    jitter_max_ms: float = 0.0


class TapMetrics:
    """Per-stream counters of one exporter's streams, live and ended, as Prometheus metric families.

    Used from one event loop (the taps and the /metrics route share the app's loop), so it needs no lock;
    `families()` copies what it reads before yielding.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._live: dict[int, _Live] = {}
        self._ended: dict[str, _Totals] = {}

    def stream_started(self, tap: str, stats: StreamStats, session_id: str = "") -> None:
        """Start counting a stream (idempotent: a stream already registered only gets its labels updated)."""
        live = self._live.get(id(stats))
        if live is None:
            self._live[id(stats)] = _Live(tap, session_id, stats)
            self._ended.setdefault(tap, _Totals()).streams += 1
        else:
            live.tap, live.session_id = tap, session_id or live.session_id

    def stream_ended(self, stats: StreamStats) -> None:
        """Fold a finished stream into its tap's totals (unknown or already ended streams are ignored)."""
        live = self._live.pop(id(stats), None)
        if live is None:
            return
        totals = self._ended.setdefault(live.tap, _Totals())
        for attr, _, _ in _COUNTERS:
            totals.values[attr] = totals.values.get(attr, 0.0) + float(getattr(stats, attr))
        totals.jitter_max_ms = max(totals.jitter_max_ms, stats.jitter_ms)

    @property
    def live_streams(self) -> int:
        return len(self._live)

    def families(self) -> Iterator[Metric]:
        """Counter families per tap (ended + live streams), stream counts, and jitter gauges."""
        live = list(self._live.values())
        taps = sorted(set(self._ended) | {x.tap for x in live})
        p = self.prefix
        for attr, suffix, help_text in _COUNTERS:
            fam = CounterMetricFamily(f"{p}_{suffix}", help_text, labels=["tap"])
            for tap in taps:
                value = self._ended.get(tap, _Totals()).values.get(attr, 0.0)
                value += sum(float(getattr(x.stats, attr)) for x in live if x.tap == tap)
                fam.add_metric([tap], value)
            yield fam
        streams = CounterMetricFamily(f"{p}_streams", "Media streams started", labels=["tap"])
        active = GaugeMetricFamily(f"{p}_streams_active", "Media streams now live", labels=["tap"])
        jitter_max = GaugeMetricFamily(f"{p}_jitter_max_ms", "Highest interarrival jitter seen on a stream (RFC 3550)",
                                       labels=["tap"])
        for tap in taps:
            totals = self._ended.get(tap, _Totals())
            streams.add_metric([tap], totals.streams)
            active.add_metric([tap], sum(1 for x in live if x.tap == tap))
            jitter_max.add_metric([tap], max([totals.jitter_max_ms] + [x.stats.jitter_ms for x in live if x.tap == tap]))
        yield streams
        yield active
        yield jitter_max
        # the worst live stream per tap and channel, not per session: /metrics is public and session ids belong to
        # their tenants
        jitter = GaugeMetricFamily(f"{p}_jitter_ms", "Highest interarrival jitter of the live streams (RFC 3550)",
                                   labels=["tap", "channel"])
        worst: dict[tuple[str, str], float] = {}
        for x in live:
            key = (x.tap, str(x.stats.channel))
            worst[key] = max(worst.get(key, 0.0), x.stats.jitter_ms)
        for (tap, channel), value in sorted(worst.items()):
            jitter.add_metric([tap, channel], value)
        yield jitter

    def metrics(self) -> Iterator[Metric]:
        """Same as `families()`: lets this object sit in the app's `state.servers`, whose `metrics()` the
        app's collector yields."""
        yield from self.families()

    async def stop(self) -> None:
        """Nothing to stop; present because the app lifespan stops every object in `state.servers`."""
