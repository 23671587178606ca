"""Encoder windows: a decode uses the shortest window that holds its buffer (the encoder's cost follows the window,
not the audio), and a short English buffer decodes right in a 7 s window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.asr import SAMPLE_RATE_HZ, AsrRequest
from models.loader import load_asr


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory):
    return load_asr("tiny.en", tmp_path_factory.mktemp("models"), cpu_threads=1, windows_s=(7.0, 10.0, 30.0))


def test_the_shortest_window_that_holds_the_buffer_with_room_to_spare(backend) -> None:
    assert backend.window_frames(3 * SAMPLE_RATE_HZ) == 700
    assert backend.window_frames(int(6.5 * SAMPLE_RATE_HZ)) == 700
    assert backend.window_frames(int(6.6 * SAMPLE_RATE_HZ)) == 1000  # under 0.5 s to spare: the next one
    assert backend.window_frames(40 * SAMPLE_RATE_HZ) == 3000


def test_windows_must_be_ascending_and_fit_whisper() -> None:
    for bad in ((10.0, 7.0), (1.0, 10.0), (10.0, 40.0), ()):
        with pytest.raises(ValueError, match="encoder windows"):
            load_asr("tiny.en", Path("var/models"), windows_s=bad)


@pytest.mark.model
def test_a_short_clip_decodes_in_the_seven_second_window(backend, shared_data: Path) -> None:
    import soundfile as sf
    import soxr
    from whisper_normalizer.english import EnglishTextNormalizer

    audio, rate = sf.read(shared_data / "asr" / "jfk" / "jfk.flac", dtype="float32")
    audio = soxr.resample(audio if audio.ndim == 1 else audio.mean(axis=1), rate, SAMPLE_RATE_HZ)
    first = audio[: int(3.2 * SAMPLE_RATE_HZ)]  # "And so my fellow Americans," then a pause
    hyp = backend.decode(AsrRequest(audio=np.ascontiguousarray(first), language="en", complete=True))
    assert EnglishTextNormalizer()(hyp.text) == "and so my fellow americans"
    assert 1.8 < hyp.words[-1].end_s <= 3.2  # word times inside the audio, not stretched over the window
