"""Recorded files through the same streaming pipeline as live calls (paced replay, simulated real-time clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from intelligence.types import TranscriptEvent
from pipelines.audio_io import DecodedAudio, read_audio
from pipelines.config import SessionConfig
from pipelines.session import SessionManager

CHUNK_S = 0.5
DETERMINISTIC_DECODE_S = 0.5  # about one Whisper base decode on 2 CPU cores


def default_channel_names(channels: int) -> tuple[str, ...]:
    if channels == 1:
        return ("speaker",)
    if channels == 2:
        return ("agent", "customer")
    return tuple(f"ch{i}" for i in range(channels))


async def replay(
    manager: SessionManager,
    audio: DecodedAudio,
    *,
    language: str = "auto",
    channel_names: tuple[str, ...] | None = None,
    metadata: dict[str, Any] | None = None,
    source: str = "file",
    progress: Callable[[float], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    simulated_decode_s: float | None = DETERMINISTIC_DECODE_S,
    diarize: bool = False,
    max_speakers: int | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Replay decoded audio as one paced session; returns (session_id, all events in emission order).

    `simulated_decode_s`: how far each decode advances the simulated real-time clock. A constant (default) makes
    the transcript the same on any machine under any load; None uses each decode's measured time (latency eval).
    `diarize`: label speakers by voice (single-channel audio only; a stereo file keeps its channel roles).
    """
    if channel_names is None and audio.is_dual_mono():
        audio = audio.mono()
    names = channel_names or default_channel_names(audio.channels)
    if len(names) != audio.channels:
        if audio.channels > 1 and len(names) == 1:
            audio = audio.mono()
        else:
            raise ValueError(f"{audio.channels} audio channels but {len(names)} channel names")
    config = SessionConfig(source=source, language=language, sample_rate_hz=audio.sample_rate_hz,
                           channel_names=tuple(names), metadata=dict(metadata or {}), diarize=diarize,
                           max_speakers=max_speakers)
    session = await manager.open_session(config, overflow="block", paced=True, paced_decode_s=simulated_decode_s)
    _history, sub = session.subscribe()
    events: list[dict[str, Any]] = []

    async def collect() -> None:
        while True:
            ev = await sub.queue.get()
            if ev.get("type") == "end":
                return
            events.append(ev)
            if on_event is not None:
                on_event(ev)

    collector = asyncio.create_task(collect())
    step = int(audio.sample_rate_hz * CHUNK_S)
    total = audio.samples.shape[0]
    try:
        for start in range(0, total, step):
            block = audio.samples[start : start + step]
            for ch in range(audio.channels):
                await session.push_pcm(ch, block[:, ch].astype("<i2").tobytes())
            if progress is not None:
                progress(min(start + step, total) / audio.sample_rate_hz)
    finally:
        await session.close("end_of_file")
    await collector
    return session.session_id, events


def finals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The final captions, with speaker labels as the session finally established them (diarization)."""
    from intelligence.speakers import relabelled_finals

    return relabelled_finals(events)


def utterances(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The utterance events (a channel's finals between pauses, merged), in emission order."""
    return [e for e in events if e.get("type") == "utterance"]


def to_transcript_event(d: dict[str, Any]) -> TranscriptEvent:
    return TranscriptEvent.from_dict(d)


def transcribe_call(
    path: str | Path,
    *,
    language: str = "auto",
    channel_names: tuple[str, ...] = ("agent", "customer"),
    settings: Any = None,
    executor: Callable[[], Any] | None = None,
) -> list[TranscriptEvent]:
    """The call's transcript per channel as utterance-level final events (blocking; runs its own loop).

    Each event is one utterance (a channel's streaming finals between VAD pauses, merged; its segment_id is that
    of its last final): exactly what the live compliance engine is fed. For one-off use (batch audit,
    compliance eval): builds a runtime with an in-memory store and no enrichment. `executor` makes the ASR
    executor (a batch worker passes one around its already loaded model); by default the settings' own.
    """
    from pipelines.runtime import build_runtime
    from pipelines.settings import HarkenSettings

    s = settings or HarkenSettings(database_url="sqlite://", store_audio=False, classifiers=False,
                                   compliance=False)
    audio = read_audio(path)

    async def run() -> list[TranscriptEvent]:
        rt = build_runtime(s, executor=executor)
        try:
            names = channel_names if audio.channels == len(channel_names) else default_channel_names(
                audio.channels)
            _sid, events = await replay(rt.manager, audio, language=language, channel_names=names)
            return [to_transcript_event(e) for e in utterances(events)]
        finally:
            await rt.aclose()

    return asyncio.run(run())
