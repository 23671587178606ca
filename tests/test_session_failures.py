"""A channel whose decoding fails does not hang the session: its producer is never left blocked on a full queue,
the failure is an event, the audio it could not take is counted, and the session closes."""

from __future__ import annotations

import asyncio

import numpy as np

from models.asr import AsrHypothesis, AsrRequest
from models.vad import VadParams
from pipelines.channel import StreamingParams
from pipelines.config import SessionConfig
from pipelines.executor import AsrExecutor, Decoder
from pipelines.session import SessionManager
from pipelines.sink import PersistenceSink
from pipelines.store import Store


class BrokenDecoder(Decoder):
    model_name = "broken@0"

    def decode(self, request: AsrRequest) -> AsrHypothesis:
        raise RuntimeError("decoder failed")


async def test_a_failed_channel_keeps_taking_audio_and_the_session_closes() -> None:
    manager = SessionManager(
        executor_factory=lambda: AsrExecutor(BrokenDecoder(), workers=1),
        sink=PersistenceSink(Store("sqlite://")),
        streaming=StreamingParams(vad=VadParams(backend="energy")),
        ingress_queue_chunks=4,  # small, so a producer would block at once if nobody took the audio
    )
    session = await manager.open_session(SessionConfig(sample_rate_hz=16000, language="en"), overflow="block")
    loud = (np.random.default_rng(1).normal(0, 6000, 1600)).astype("<i2").tobytes()  # 100 ms, "speech" by energy
    try:
        async def produce() -> None:
            for _ in range(100):  # 10 s of audio: far more than the queue holds
                await session.push_pcm(0, loud)

        await asyncio.wait_for(produce(), 30)
        await asyncio.wait_for(session.close("normal"), 30)
    finally:
        manager.shutdown()
    errors = [e for e in session.history if e.get("type") == "error"]
    assert errors and errors[0]["code"] == "channel_failed"
    assert session.history[-1]["type"] == "session_end"
    assert session.stats.audio_dropped_s > 5.0  # what the failed channel could not use is counted, not lost silently
