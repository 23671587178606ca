"""Streaming resampling is exact-repeatable: a replayed recording must give the same audio, hence transcript."""

from __future__ import annotations

import numpy as np
import soxr

from pipelines.audio_io import read_audio
from pipelines.channel import ChannelTranscriber, StreamingParams
from pipelines.resample import Int16ResampleStream


def _stream(pcm: np.ndarray, chunk: int) -> np.ndarray:
    rs = Int16ResampleStream(8000, 16000)
    parts = [rs.resample_chunk(pcm[k : k + chunk]) for k in range(0, len(pcm), chunk)]
    parts.append(rs.resample_chunk(np.zeros(0, dtype=np.int16), last=True))
    return np.concatenate(parts)


def test_same_call_gives_the_same_samples_every_time(shared_data) -> None:
    call = read_audio(shared_data / "calls" / "dev" / "audio" / "dev_en_19.stereo8k.wav")
    agent = call.samples[: 8000 * 20, 0].copy()
    runs = [_stream(agent, 800) for _ in range(4)]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])
    # chunking does not change the audio, and it matches a one-shot float resample to within rounding
    assert np.array_equal(runs[0], _stream(agent, 333))
    ref = soxr.resample(agent.astype(np.float32) / 32768.0, 8000, 16000, quality="HQ") * 32768.0
    assert len(runs[0]) == len(ref)
    assert np.max(np.abs(runs[0].astype(np.float64) - ref)) <= 1.0


def test_channel_buffers_are_identical_across_replays(shared_data) -> None:
    call = read_audio(shared_data / "calls" / "dev" / "audio" / "dev_en_19.stereo8k.wav")
    pcm = call.samples[: 8000 * 10, 0].astype("<i2")
    buffers = []
    for _ in range(3):
        ct = ChannelTranscriber(session_id="s", channel=0, speaker="agent", input_rate_hz=8000, language="en",
                                params=StreamingParams())
        for k in range(0, len(pcm), 800):
            ct.feed(pcm[k : k + 800].tobytes())
        buffers.append(ct._audio.copy())
    assert all(np.array_equal(buffers[0], b) for b in buffers[1:])
