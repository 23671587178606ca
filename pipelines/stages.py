"""Run a session's stages without Whisper or audio: a scripted decoder, and `run_stage`, which plays a script of
captions through a real `LiveSession` (the same utterance grouping, enrichment stage, persistence and events as
a live call) so that any enricher (classifiers, compliance, minutes, your own) can be tested or evaluated on text.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from intelligence.types import TranscriptEvent, Word
from models.asr import AsrHypothesis, AsrRequest
from pipelines.config import SessionConfig
from pipelines.executor import AsrExecutor, Decoder
from pipelines.session import EnricherFactory, SessionManager
from pipelines.sink import PersistenceSink
from pipelines.store import Store


class ScriptedDecoder(Decoder):
    """A stand-in for Whisper: one word per half second of voiced audio, named after that audio's content, so that
    consecutive decodes of the same audio agree as Whisper's would (streaming and commit logic run for real)."""

    model_name = "scripted@0"

    def decode(self, request: AsrRequest) -> AsrHypothesis:
        audio = request.audio
        words = []
        for i in range(0, len(audio) - 8000 + 1, 8000):
            chunk = audio[i : i + 8000]
            if float(np.sqrt(np.mean(chunk**2))) < 0.02:
                continue
            name = f"w{zlib.crc32((chunk * 32767).astype('<i2').tobytes()) % 100000}"
            words.append(Word(name, i / 16000, (i + 7000) / 16000, 0.95))
        return AsrHypothesis(tuple(words), request.language or "en", -0.1, 0.01, 1.2, self.model_name,
                             decode_s=0.001)


@dataclass(frozen=True)
class Line:
    """One utterance of a script: who said what, when."""

    channel: int
    text: str
    start_s: float
    end_s: float


async def run_stage(enrichers: Sequence[EnricherFactory], script: Sequence[Line], config: SessionConfig,
                    store: Store | None = None) -> list[dict[str, Any]]:
    """Play `script` as final captions (one utterance per line, words spread over its time) through a session
    whose enrichers are `enrichers`; returns every durable event the session published, in seq order."""
    store = store or Store("sqlite://")
    manager = SessionManager(executor_factory=lambda: AsrExecutor(ScriptedDecoder(), workers=1),
                             sink=PersistenceSink(store), enricher_factories=list(enrichers))
    session = await manager.open_session(config)
    language = config.language if config.language != "auto" else "en"
    try:
        for n, line in enumerate(script, start=1):
            tokens = list(line.text) if language == "zh" else line.text.split()
            step = (line.end_s - line.start_s) / max(1, len(tokens))
            words = tuple(Word(t if language == "zh" or i == 0 else f" {t}", round(line.start_s + i * step, 3),
                               round(line.start_s + (i + 1) * step, 3)) for i, t in enumerate(tokens))
            ev = TranscriptEvent(session_id=session.session_id, kind="final", segment_id=f"c{line.channel}-{n:05d}",
                                 channel=line.channel, speaker=config.channel_names[line.channel],
                                 start_s=line.start_s, end_s=line.end_s, text=line.text, words=words,
                                 language=language, model=ScriptedDecoder.model_name, commit="utterance_end")
            await session._emit_transcripts([ev], utterance_end=True, channel=line.channel)
        await session.close("normal")
    finally:
        manager.shutdown()
    return list(session.history)
