"""The streaming pipeline on real recordings: stereo calls, Mandarin, noise-only audio and bad files."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from intelligence.text import to_simplified
from pipelines.audio_io import AudioFileError, DecodedAudio, read_audio
from pipelines.offline import finals, replay
from pipelines.runtime import build_runtime
from pipelines.settings import HarkenSettings

pytestmark = pytest.mark.model


def _run(audio: DecodedAudio, **kw) -> list[dict]:
    async def go():
        rt = build_runtime(HarkenSettings(database_url="sqlite://", store_audio=False))
        try:
            _sid, events = await replay(rt.manager, audio, **kw)
            return events
        finally:
            await rt.aclose()

    return asyncio.run(go())


def _cut(audio: DecodedAudio, seconds: float) -> DecodedAudio:
    return DecodedAudio(audio.samples[: int(seconds * audio.sample_rate_hz)], audio.sample_rate_hz)


def test_stereo_call_channels_are_decoded_separately(shared_data):
    call = read_audio(shared_data / "calls" / "dev" / "audio" / "dev_en_01.stereo8k.wav")
    assert call.channels == 2 and call.sample_rate_hz == 8000
    events = _run(_cut(call, 37.0), language="en", channel_names=("agent", "customer"))
    fin = finals(events)
    agent = " ".join(e["text"] for e in fin if e["channel"] == 0).lower()
    customer = " ".join(e["text"] for e in fin if e["channel"] == 1).lower()
    assert {e["speaker"] for e in fin} == {"agent", "customer"}
    assert "recorded" in agent and "verify your identity" in agent
    assert "debit card" in customer and "recorded" not in customer
    assert "debit card" not in agent
    # word times sit inside the customer's turn (10.3-20.3 s on the call timeline)
    debit = [w for e in fin if e["channel"] == 1 for w in e["words"] if "debit" in w["text"].lower()]
    assert debit and 10.0 <= debit[0]["start_s"] <= 20.5
    # partials come before the final of the same segment, and a final is never repeated
    seen_final = set()
    for e in events:
        if e.get("type") != "transcript":
            continue
        assert e["segment_id"] not in seen_final, "event after the final of its segment"
        if e["kind"] == "final":
            seen_final.add(e["segment_id"])


def test_mandarin_comes_out_in_simplified_characters(shared_data):
    audio = read_audio(shared_data / "calls" / "dev" / "audio" / "dev_zh_01.mono16k.flac")
    events = _run(_cut(audio, 22.0), language="zh", channel_names=("room",))
    text = "".join(e["text"] for e in finals(events))
    assert len(text) > 30
    assert to_simplified(text) == text
    assert "同意" in text and "身份" in text
    assert all(e["language"] == "zh" for e in finals(events))
    for e in finals(events):  # fixes (domain terms, homophones, numbers in digits) point into the caption
        for c in e.get("corrections") or ():
            assert e["text"][c["start"]:c["end"]] == c["term"]


def test_auto_language_detects_mandarin(shared_data):
    audio = read_audio(shared_data / "calls" / "dev" / "audio" / "dev_zh_01.mono16k.flac")
    events = _run(_cut(audio, 12.0), language="auto", channel_names=("room",))
    fin = finals(events)
    assert fin and fin[-1]["language"] == "zh"


@pytest.mark.parametrize("noise", ["white_noise", "doing_the_dishes"])
def test_noise_alone_produces_no_captions(shared_data, noise):
    audio = read_audio(shared_data / "noise" / "speech-commands-bg" / f"{noise}.flac").mono()
    events = _run(_cut(audio, 20.0), language="en")
    assert [e["text"] for e in finals(events)] == []


def test_bad_files_get_clear_errors(tmp_path, shared_data):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioFileError, match="garbage.wav"):
        read_audio(garbage)
    with pytest.raises(AudioFileError, match="no such file"):
        read_audio(tmp_path / "missing.flac")
    # a truncated recording still yields what it holds
    src, rate = sf.read(str(shared_data / "asr" / "ljspeech-dev" / "audio" / "LJ001-0002.flac"), dtype="int16")
    full = tmp_path / "full.wav"
    sf.write(str(full), src, rate)
    data = full.read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(data[: len(data) // 2])
    assert read_audio(truncated).duration_s == pytest.approx(len(src) / rate / 2, abs=0.1)
    proc = subprocess.run([sys.executable, "-m", "api.cli", "transcribe", str(garbage)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "garbage.wav" in proc.stderr and "Traceback" not in proc.stderr
