"""The ASR executor: priorities and load shedding (beam search only while the workers have room)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from intelligence.types import Word
from models.asr import AsrHypothesis, AsrRequest
from pipelines.executor import AsrExecutor


class _Recorder:
    """A stand-in decoder (the executor's policy is under test, not Whisper) that takes `decode_s` per call."""

    model_name = "recorder"

    def __init__(self, decode_s: float) -> None:
        self.decode_s = decode_s
        self.beams: list[int | None] = []
        self._lock = threading.Lock()

    def decode(self, request: AsrRequest) -> AsrHypothesis:
        time.sleep(self.decode_s)
        with self._lock:
            self.beams.append(request.beam_size)
        return AsrHypothesis(words=(), language="en", avg_logprob=0.0, no_speech_prob=0.0, compression_ratio=1.0,
                             model=self.model_name)


def _request(sheddable: bool = True, beam_size: int | None = None) -> AsrRequest:
    return AsrRequest(audio=np.zeros(1600, dtype=np.float32), language="en", sheddable=sheddable,
                      beam_size=beam_size)


async def _submit(ex: AsrExecutor, n: int, sheddable: bool = True, beam_size: int | None = None) -> None:
    for _ in range(n):
        await ex.submit(lambda: ("job", _request(sheddable, beam_size)), final=False)


def test_a_lightly_loaded_executor_keeps_the_configured_beam() -> None:
    rec = _Recorder(0.02)
    ex = AsrExecutor(rec, workers=2, shed_above=0.6, load_window_s=1.0)
    try:
        async def go() -> None:
            for _ in range(5):
                await _submit(ex, 1)
                await asyncio.sleep(0.05)  # one channel, mostly idle workers

        asyncio.run(go())
    finally:
        ex.close()
    assert rec.beams == [None] * 5 and ex.stats.greedy_under_load == 0


def test_a_busy_executor_sheds_to_greedy_but_not_for_paced_replays() -> None:
    rec = _Recorder(0.05)
    ex = AsrExecutor(rec, workers=1, shed_above=0.6, load_window_s=0.5)
    try:
        async def go(sheddable: bool) -> None:
            # four channels decoding back to back keep the single worker busy all the time
            await asyncio.gather(*(_submit(ex, 6, sheddable) for _ in range(4)))

        asyncio.run(go(True))
        live = list(rec.beams)
        rec.beams.clear()
        asyncio.run(go(False))
        paced = list(rec.beams)
    finally:
        ex.close()
    assert live.count(1) >= 20  # nearly all narrowed to greedy (the first ones ran before load built up)
    assert paced == [None] * 24


def test_a_busy_executor_narrows_a_beam_a_language_asked_for() -> None:
    # English partial decodes ask for beam 5 (pipelines/settings.py): under load they are greedy like the rest
    rec = _Recorder(0.05)
    ex = AsrExecutor(rec, workers=1, shed_above=0.6, load_window_s=0.5)
    try:
        async def go() -> None:
            await asyncio.gather(*(_submit(ex, 6, beam_size=5) for _ in range(4)))

        asyncio.run(go())
    finally:
        ex.close()
    assert rec.beams.count(1) >= 20 and set(rec.beams) <= {1, 5}


class _Clock(_Recorder):
    """Records how much audio each decode got; always hears one word 0.1-0.2 s into it."""

    def __init__(self, decode_s: float) -> None:
        super().__init__(decode_s)
        self.seconds: list[float] = []

    def decode(self, request: AsrRequest) -> AsrHypothesis:
        time.sleep(self.decode_s)
        with self._lock:
            self.seconds.append(request.audio.shape[0] / 16000)
        return AsrHypothesis(words=(Word("word", 0.1, 0.2),), language="en", avg_logprob=0.0, no_speech_prob=0.0,
                             compression_ratio=1.0, model=self.model_name)


def test_a_busy_executor_drops_left_context_but_keeps_word_times() -> None:
    dec = _Clock(0.05)
    ex = AsrExecutor(dec, workers=1, shed_above=0.6, load_window_s=0.5)
    starts: list[float] = []

    def factory(sheddable: bool):
        return lambda: ("job", AsrRequest(audio=np.zeros(3 * 16000, dtype=np.float32), language="en",
                                          sheddable=sheddable, context_s=1.0))

    async def channel(sheddable: bool) -> None:
        for _ in range(6):
            _job, hyp = await ex.submit(factory(sheddable), final=False)
            starts.append(hyp.words[0].start_s)

    try:
        async def go(sheddable: bool) -> None:
            await asyncio.gather(*(channel(sheddable) for _ in range(4)))

        asyncio.run(go(True))
        live, live_starts = list(dec.seconds), list(starts)
        dec.seconds.clear()
        starts.clear()
        asyncio.run(go(False))
    finally:
        ex.close()
    shed = [i for i, s in enumerate(live) if s == 2.0]
    assert len(shed) >= 20 and set(live) <= {2.0, 3.0}
    # the word was heard 0.1 s into the shortened audio: 1.1 s into the request's audio
    assert all(abs(live_starts[i] - 1.1) < 1e-9 for i in shed)
    assert dec.seconds == [3.0] * 24 and all(abs(s - 0.1) < 1e-9 for s in starts)
    assert abs(ex.stats.context_shed_s - len(shed)) < 1e-6
