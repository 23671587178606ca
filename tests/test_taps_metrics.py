"""The taps' Prometheus counters: live and ended streams, monotonic totals, one family per name across exporters."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipelines.taps.audiosocket import AudioSocketServer
from pipelines.taps.metrics import TapMetrics
from pipelines.taps.sip.server import SipServer
from pipelines.taps.stats import StreamStats
from tests.taps_fakes import FakeManager


def _samples(*exporters: object) -> tuple[dict[tuple[str, tuple], float], list[str]]:
    class _Collector:
        def collect(self):
            for e in exporters:
                yield from e.metrics()  # type: ignore[attr-defined]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return values, [f.name for f in families]


def test_live_and_ended_streams_add_up_and_never_go_backwards() -> None:
    tm = TapMetrics("harken_tap_ws")
    a, b = StreamStats(channel=0), StreamStats(channel=1)
    tm.stream_started("twilio", a, "s1")
    tm.stream_started("twilio", b, "s1")
    a.packets_received, a.packets_late, a.jitter_ms = 100, 2, 7.5
    b.packets_received, b.packets_lost = 50, 3
    live, _ = _samples(tm)
    assert live[("harken_tap_ws_packets_received_total", (("tap", "twilio"),))] == 150
    assert live[("harken_tap_ws_streams_active", (("tap", "twilio"),))] == 2
    assert live[("harken_tap_ws_jitter_ms", (("channel", "0"), ("tap", "twilio")))] == 7.5
    tm.stream_ended(a)
    tm.stream_ended(a)  # a second end is ignored, not counted twice
    b.packets_received = 60
    tm.stream_ended(b)
    after, _ = _samples(tm)
    assert after[("harken_tap_ws_packets_received_total", (("tap", "twilio"),))] == 160
    assert after[("harken_tap_ws_packets_late_total", (("tap", "twilio"),))] == 2
    assert after[("harken_tap_ws_packets_lost_total", (("tap", "twilio"),))] == 3
    assert after[("harken_tap_ws_streams_total", (("tap", "twilio"),))] == 2
    assert after[("harken_tap_ws_streams_active", (("tap", "twilio"),))] == 0
    assert after[("harken_tap_ws_jitter_max_ms", (("tap", "twilio"),))] == 7.5
    assert not [k for k in after if k[0] == "harken_tap_ws_jitter_ms"]  # live-stream gauges are gone


def test_all_exporters_together_give_a_valid_exposition() -> None:
    manager = FakeManager()
    sip, audiosocket, ws = SipServer(manager), AudioSocketServer(manager), TapMetrics("harken_tap_ws")
    ws.stream_started("audiohook", StreamStats())
    values, names = _samples(sip, audiosocket, ws)
    assert [n for n, c in Counter(names).items() if c > 1] == []  # each family name appears once
    assert values[("harken_sip_calls_total", ())] == 0
    assert values[("harken_audiosocket_connections_active", ())] == 0
    assert values[("harken_tap_ws_streams_active", (("tap", "audiohook"),))] == 1
