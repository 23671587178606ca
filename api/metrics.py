"""Prometheus metrics, read from the live objects at scrape time (a per-app registry, no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from api.state import HarkenState


class HarkenCollector:
    def __init__(self, state: HarkenState) -> None:
        self.state = state

    def collect(self):
        rt = self.state.runtime
        if rt is None:
            return
        m = rt.manager
        yield GaugeMetricFamily("harken_sessions_live", "Live sessions", value=len(m.sessions))
        yield GaugeMetricFamily("harken_channels_in_use", "Channels in live sessions", value=m.channels_in_use)
        yield GaugeMetricFamily("harken_channels_max", "Channel capacity", value=m.max_channels)
        yield CounterMetricFamily("harken_sessions_refused", "Sessions refused at capacity", value=m.refused)
        # one total, not per session: /metrics is public and session ids belong to their tenants
        yield GaugeMetricFamily("harken_audio_dropped_seconds", "Audio dropped by ingress overflow, live sessions",
                                value=sum(s.stats.audio_dropped_s for s in m.sessions.values()))
        ex = m._executor
        if ex is not None:
            yield CounterMetricFamily("harken_asr_decodes", "ASR decodes", value=ex.stats.decodes)
            yield CounterMetricFamily("harken_asr_decode_seconds", "Time spent decoding", value=ex.stats.decode_s_total)
            yield CounterMetricFamily("harken_asr_queue_wait_seconds", "Time decodes waited",
                                      value=ex.stats.queue_wait_s_total)
            yield CounterMetricFamily("harken_asr_errors", "Failed decodes", value=ex.stats.errors)
            yield CounterMetricFamily("harken_asr_greedy_under_load", "Decodes narrowed to greedy under load",
                                      value=ex.stats.greedy_under_load)
            yield CounterMetricFamily("harken_asr_context_shed_seconds", "Left-context audio not decoded under load",
                                      value=ex.stats.context_shed_s)
            yield GaugeMetricFamily("harken_asr_queue_depth", "Decodes waiting", value=ex.queue_depth)
        yield CounterMetricFamily("harken_persist_errors", "Failed persistence batches", value=rt.sink.write_errors)
        for server in self.state.servers:
            collect = getattr(server, "metrics", None)
            if callable(collect):
                yield from collect()


def make_registry(state: HarkenState) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HarkenCollector(state))
    return registry
