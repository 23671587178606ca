"""An utterance after a short pause is decoded with the audio before it, and its words are not repeated."""

from __future__ import annotations

import asyncio
import itertools
import re

import numpy as np
import pytest

from models.asr import SAMPLE_RATE_HZ
from pipelines.audio_io import DecodedAudio, read_audio
from pipelines.channel import ChannelTranscriber, StreamingParams
from pipelines.offline import finals, replay
from pipelines.resample import Int16ResampleStream
from pipelines.runtime import build_runtime
from pipelines.settings import HarkenSettings


def _jfk_twice(shared_data) -> np.ndarray:
    """The JFK sentence twice, one second apart: three or more VAD utterances with short pauses between them."""
    jfk = read_audio(shared_data / "asr" / "jfk" / "jfk.flac").mono()
    pcm = Int16ResampleStream(jfk.sample_rate_hz, SAMPLE_RATE_HZ).resample_chunk(jfk.samples[:, 0], last=True)
    return np.concatenate([pcm, np.zeros(SAMPLE_RATE_HZ, dtype=np.int16), pcm])


def _jobs(pcm: np.ndarray, left_context_s: float) -> list[tuple[bool, float, float, float]]:
    """(final, offset_s, end_s, context_s) of every decode the channel asks for, fed in 100 ms chunks (no model needed)."""
    ct = ChannelTranscriber(session_id="s", channel=0, speaker="x", input_rate_hz=SAMPLE_RATE_HZ, language="en",
                            params=StreamingParams(left_context_s=left_context_s))
    jobs = []
    for k in range(0, len(pcm), 1600):
        ct.feed(pcm[k : k + 1600].tobytes())
        while (job := ct.take_job()) is not None:
            jobs.append((job.final, job.offset_s, job.end_s, job.request.context_s))
    ct.end_of_stream()
    while (job := ct.take_job()) is not None:
        jobs.append((job.final, job.offset_s, job.end_s, job.request.context_s))
    return jobs


def test_buffer_after_a_pause_reaches_back_into_the_previous_utterance(shared_data) -> None:
    pcm = _jfk_twice(shared_data)
    for left_s in (0.0, 2.0):
        jobs = _jobs(pcm, left_s)
        finals_ = [(o, e, c) for f, o, e, c in jobs if f]
        assert len(finals_) >= 3, "expected several utterances"
        reached_back = 0
        for prev, nxt in itertools.pairwise(finals_):
            # never before the previous utterance's own start, never more than the context (+ VAD pre-roll) back
            assert nxt[0] >= prev[0]
            if left_s == 0.0:
                assert nxt[0] >= prev[1] - 1e-6
                assert nxt[2] == 0.0
            else:
                assert nxt[0] >= prev[1] - left_s - 0.31
                reached_back += nxt[0] < prev[1] - 0.1
                # the request marks the reach-back as context (the executor may drop it under load): it covers
                # the previous utterance's audio and ends where this utterance's own audio begins
                if nxt[0] < prev[1] - 0.1:
                    assert nxt[0] + nxt[2] >= prev[1] - 1e-6 and nxt[2] <= left_s
        if left_s:
            assert reached_back >= 2


@pytest.mark.model
def test_words_before_a_pause_are_not_repeated_after_it(shared_data) -> None:
    pcm = _jfk_twice(shared_data)

    async def go():
        rt = build_runtime(HarkenSettings(database_url="sqlite://", store_audio=False, left_context_s=2.0))
        try:
            _sid, events = await replay(rt.manager, DecodedAudio(pcm[:, None], SAMPLE_RATE_HZ), language="en")
            return events
        finally:
            await rt.aclose()

    text = " ".join(e["text"] for e in finals(asyncio.run(go()))).lower()
    words = re.findall(r"[a-z]+", text)
    # "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your
    # country." twice: 2 x 22 words, each phrase exactly twice
    assert words.count("americans") == 2, text
    assert words.count("country") == 4, text
    # "ask" heard once as "asked" (the word before JFK's long pause) is a misrecognition, not a repeat
    assert words.count("ask") + words.count("asked") == 4, text
    assert 42 <= len(words) <= 46, text


def test_english_decodes_twice_as_often_with_its_wider_beam_and_mandarin_keeps_its_step(shared_data) -> None:
    """The service's per-language schedule (pipelines/settings.py): English every 0.3 s at beam 5 inside an
    utterance, other languages every 0.6 s at the backend's beam; final decodes keep the final beam."""
    from pipelines.runtime import streaming_params

    pcm = _jfk_twice(shared_data)
    params = streaming_params(HarkenSettings())
    seen = {}
    for language in ("en", "zh"):
        ct = ChannelTranscriber(session_id="s", channel=0, speaker="x", input_rate_hz=SAMPLE_RATE_HZ,
                                language=language, params=params)
        jobs = []
        for k in range(0, len(pcm), 1600):
            ct.feed(pcm[k : k + 1600].tobytes())
            while (job := ct.take_job()) is not None:
                jobs.append(job)
        seen[language] = jobs
    partial = {lang: [j for j in jobs if not j.final] for lang, jobs in seen.items()}
    assert {j.request.beam_size for j in partial["en"]} == {5}
    assert {j.request.beam_size for j in partial["zh"]} == {None}
    assert all(j.request.beam_size is None for jobs in seen.values() for j in jobs if j.final)
    gaps = {lang: np.median(np.diff([j.end_s for j in jobs])) for lang, jobs in partial.items()}
    assert gaps["en"] == pytest.approx(0.3, abs=0.05) and gaps["zh"] == pytest.approx(0.6, abs=0.05)
