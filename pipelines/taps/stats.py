"""Per-stream counters every tap keeps and records on the session as a `tap_stats` event when it ends."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class StreamStats:
    """Counters of one media stream (one leg / channel) of a tap.

    Mutable on purpose: owned by exactly one stream object, never shared across sessions.
    """

    channel: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    packets_lost: int = 0  # sequence numbers never received in time: concealed
    packets_late: int = 0  # arrived after their slot was concealed (dropped)
    packets_duplicate: int = 0
    packets_reordered: int = 0  # arrived out of order but still in time
    packets_invalid: int = 0  # malformed, truncated, undecodable or an unknown payload type
    packets_foreign: int = 0  # from an unexpected source address
    packets_dropped: int = 0  # shed because the session could not keep up (bounded ingress queue full)
    # dropped by the kernel before harken read them (the socket's receive buffer was full: the event loop was
    # stalled); invisible to sequence numbers when it happens before the first packet read, so counted apart
    packets_dropped_socket: int = 0
    rtcp_packets: int = 0
    resyncs: int = 0  # sequence or timestamp jumps taken as a restart of the sender
    jitter_ms: float = 0.0  # RFC 3550 interarrival jitter estimate
    audio_s: float = 0.0  # audio pushed to the session (decoded + concealed + gap fill)
    concealed_s: float = 0.0
    dtmf_events: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["jitter_ms"] = round(self.jitter_ms, 3)
        d["audio_s"] = round(self.audio_s, 3)
        d["concealed_s"] = round(self.concealed_s, 3)
        return d
