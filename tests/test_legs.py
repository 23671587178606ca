"""Speaker legs plus a wideband mix (pipelines/legs.py) on a real dual-recording call of the dev set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.audio_io import DecodedAudio, read_audio
from pipelines.legs import LegsMismatch, leg_activity, wideband_legs


@pytest.fixture(scope="module")
def call(shared_data):
    d = shared_data / "calls" / "dev"
    gt = json.loads((d / "gt" / "dev_zh_01.json").read_text(encoding="utf-8"))
    return read_audio(d / gt["audio"]["stereo_8k"]), read_audio(d / gt["audio"]["mono_16k"]), gt["turns"]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt((x.astype(np.float64) ** 2).mean())) if x.size else 0.0


def test_each_channel_carries_the_mix_while_its_speaker_talks(call) -> None:
    legs, mix, turns = call
    out = wideband_legs(legs, mix)
    assert out.sample_rate_hz == 16000 and out.channels == 2 and out.samples.shape[0] == mix.samples.shape[0]
    checked = 0
    for turn in turns:
        if turn["end_s"] - turn["start_s"] < 1.5:
            continue
        # the middle of the turn, away from the edges where the other speaker may still be heard
        a, b = int((turn["start_s"] + 0.3) * 16000), int((turn["end_s"] - 0.3) * 16000)
        own, other = int(turn["channel"]), 1 - int(turn["channel"])
        seg_mix = mix.samples[a:b, 0]
        # the speaker's channel is the mix itself there; the other channel is mostly silent
        assert np.abs(out.samples[a:b, own].astype(np.int32) - seg_mix).max() <= 2 or \
            _rms(out.samples[a:b, own]) > 0.9 * _rms(seg_mix)
        assert _rms(out.samples[a:b, other]) < 0.35 * _rms(seg_mix)
        checked += 1
    assert checked >= 6


def test_activity_follows_the_legs(call) -> None:
    legs, _mix, turns = call
    active = leg_activity(legs)
    frame_s = 0.02
    agent = [t for t in turns if t["speaker"] == "agent"][0]
    i = int((agent["start_s"] + agent["end_s"]) / 2 / frame_s)
    assert active[i, 0] and not active[i, 1]


def test_mismatched_inputs_get_a_clear_error(call) -> None:
    legs, mix, _turns = call
    with pytest.raises(LegsMismatch, match="mono"):
        wideband_legs(legs, DecodedAudio(np.zeros((16000, 2), dtype=np.int16), 16000))
    with pytest.raises(LegsMismatch, match="last"):
        wideband_legs(legs, DecodedAudio(mix.samples[: 16000 * 5], 16000))
