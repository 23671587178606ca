"""How many concurrent real-time channels this machine sustains.

For N = 1, 2, ... channels, N live sessions each get a different stream of real speech (manifest clips laid end
to end with short pauses, as a caller's turns would be) at real-time speed, all at once. A level passes when
final-latency p95 stays under the limit (3 s) and there is no growing backlog: the un-decoded audio behind the
live edge must not trend upward (slope over the second half of the run) nor end large. The answer is the largest
passing N (`channels_sustained`); levels above the first failure are not tried.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.asr import error_rate, load_manifest, pct, word_latencies
from pipelines.audio_io import read_audio
from pipelines.config import SessionConfig
from pipelines.runtime import build_runtime
from pipelines.settings import HarkenSettings

RATE_HZ = 16000


@dataclass(frozen=True)
class Stream:
    """One channel's audio and what is said in it: the texts of the clips that fit whole, with where each ends."""

    pcm: np.ndarray
    texts: tuple[str, ...]
    text_ends_s: tuple[float, ...]


def build_streams(manifest, n: int, duration_s: float) -> list[Stream]:
    """n different int16 16 kHz streams of about duration_s, from the manifest's clips (rotated per stream)."""
    clips = load_manifest(manifest)
    audios, texts = [], []
    for c in clips:
        a = read_audio(c.path).mono()
        pcm = a.samples[:, 0]
        if a.sample_rate_hz != RATE_HZ:
            import soxr

            pcm = soxr.resample(pcm, a.sample_rate_hz, RATE_HZ)
        audios.append(pcm.astype(np.int16))
        texts.append(c.text)
        if sum(len(x) for x in audios) > duration_s * RATE_HZ * 3:
            break
    gap = np.zeros(int(0.7 * RATE_HZ), dtype=np.int16)
    streams = []
    limit = int(duration_s * RATE_HZ)
    for i in range(n):
        parts, said, ends, total, j = [], [], [], 0, i * 3
        while total < limit:
            clip = audios[j % len(audios)]
            parts += [clip, gap]
            total += len(clip)
            if total <= limit:
                said.append(texts[j % len(texts)])
                ends.append(total / RATE_HZ)
            total += len(gap)
            j += 1
        streams.append(Stream(np.concatenate(parts)[:limit], tuple(said), tuple(ends)))
    return streams


def stream_wer(streams: list[Stream], events: list[list[dict]], language: str) -> float | None:
    """WER of the finals over the clips that fit whole in each stream (words after the last of them are not
    scored: that clip was cut by the stream's end)."""
    refs, hyps = [], []
    for stream, evs in zip(streams, events, strict=True):
        if not stream.texts:
            continue
        until = stream.text_ends_s[-1] + 0.35
        words = [w["text"] for ev in evs if ev.get("type") == "transcript" and ev.get("kind") == "final"
                 for w in ev.get("words", []) if w["start_s"] < until]
        refs.append(" ".join(stream.texts))
        hyps.append(("" if language == "zh" else " ").join(w.strip() for w in words))
    return round(error_rate(refs, hyps, language), 4) if refs else None


async def _run_level(manager, streams: list[Stream], language: str) -> dict[str, Any]:
    sessions = []
    for i, _ in enumerate(streams):
        cfg = SessionConfig(source="capacity", language=language, sample_rate_hz=RATE_HZ,
                            channel_names=(f"ch{i}",))
        sessions.append(await manager.open_session(cfg, overflow="drop_oldest"))
    events: list[list[dict]] = [[] for _ in streams]
    t0 = time.monotonic()
    backlog: list[list[tuple[float, float]]] = [[] for _ in streams]

    async def collect(i: int) -> None:
        _h, sub = sessions[i].subscribe()
        while True:
            ev = await sub.queue.get()
            if ev.get("type") == "end":
                return
            events[i].append({**ev, "wall_s": time.monotonic() - t0})

    async def feed(i: int) -> None:
        pcm = streams[i].pcm
        step = int(RATE_HZ * 0.1)
        ct = sessions[i].transcribers[0]
        for k in range(0, len(pcm), step):
            await sessions[i].push_pcm(0, pcm[k : k + step].tobytes())
            now = time.monotonic() - t0
            # un-decoded audio: live edge minus the end of the last audio handed to a decode
            backlog[i].append((now, ct.received_s - ct._last_decode_end / RATE_HZ if ct._utt_start is not None
                               else 0.0))
            ahead = (k + step) / RATE_HZ - now
            if ahead > 0:
                await asyncio.sleep(ahead)

    collectors = [asyncio.create_task(collect(i)) for i in range(len(streams))]
    await asyncio.gather(*(feed(i) for i in range(len(streams))))
    fed_s = time.monotonic() - t0
    await asyncio.gather(*(s.close("end_of_stream") for s in sessions))
    await asyncio.gather(*collectors)
    drain_s = time.monotonic() - t0 - fed_s
    lat: list[float] = []
    for evs in events:
        fl, _ = word_latencies(evs, "wall_s")
        lat += fl
    slopes, finals_backlog = [], []
    for series in backlog:
        arr = np.array(series)
        half = arr[len(arr) // 2 :]
        if len(half) > 10:
            slopes.append(float(np.polyfit(half[:, 0], half[:, 1], 1)[0]))
        finals_backlog.append(float(np.mean(arr[-20:, 1])) if len(arr) else 0.0)
    dropped = sum(s.stats.audio_dropped_s for s in sessions)
    return {
        "channels": len(streams),
        "final_latency_s": pct(lat),
        "backlog_slope_s_per_s": round(max(slopes), 4) if slopes else 0.0,
        "backlog_end_s": round(max(finals_backlog), 3) if finals_backlog else 0.0,
        "drain_s": round(drain_s, 2),
        "audio_dropped_s": round(dropped, 3),
        "words": len(lat),
        # accuracy at this load: a busy executor turns decodes greedy and drops left context
        "wer": stream_wer(streams, events, language),
    }


def run_capacity(manifest, *, settings: HarkenSettings, duration_s: float = 45.0, max_channels: int = 32,
                 latency_limit_s: float = 3.0, language: str = "en", levels: list[int] | None = None) -> dict:
    levels = levels or [n for n in (1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 32, 48, 64, 96, 128)
                        if n <= max_channels]
    # admission control must not refuse the levels asked for
    settings = settings.model_copy(update={"max_channels": max(max_channels, *levels, settings.max_channels)})

    async def run() -> dict[str, Any]:
        rt = build_runtime(settings)
        results = []
        sustained = 0
        try:
            _ = rt.manager.executor  # load the model before timing anything
            for n in levels:
                streams = build_streams(manifest, n, duration_s)
                r = await _run_level(rt.manager, streams, language)
                p95 = r["final_latency_s"]["p95"]
                r["passed"] = bool(
                    p95 is not None and p95 <= latency_limit_s and r["backlog_slope_s_per_s"] < 0.05
                    and r["backlog_end_s"] < latency_limit_s and r["audio_dropped_s"] == 0
                )
                results.append(r)
                print(f"capacity: {n} channels -> p95 {p95} s, WER {r['wer']}, "
                      f"backlog slope {r['backlog_slope_s_per_s']}, "
                      f"{'pass' if r['passed'] else 'FAIL'}", flush=True)
                if not r["passed"]:
                    break
                sustained = n
        finally:
            await rt.aclose()
        return {
            "manifest": str(manifest), "channels_sustained": sustained, "latency_limit_s": latency_limit_s,
            "stream_duration_s": duration_s, "levels": results, "model": f"whisper-{settings.asr_model}",
            "device": f"{settings.asr_device} ({settings.asr_compute_type}, {settings.asr_threads} threads, "
                      f"{settings.asr_workers} workers)",
            "date": time.strftime("%Y-%m-%d"),
        }

    return asyncio.run(run())
