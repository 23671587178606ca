"""eval/side_by_side.py: WhisperLiveKit streamed in real time on our packaged Whisper base, scored as eval/asr.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from eval.side_by_side import run_whisperlivekit


def test_missing_whisperlivekit_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "whisperlivekit", None)  # makes `import whisperlivekit` raise ImportError
    with pytest.raises(RuntimeError, match="pip install --no-deps whisperlivekit"):
        run_whisperlivekit(tmp_path / "manifest.jsonl", limit=1, model_dir=tmp_path)


@pytest.mark.model
def test_one_clip_streams_in_real_time_with_word_latencies(shared_data: Path) -> None:
    pytest.importorskip("whisperlivekit")
    from models.packaged_whisper import packaged_model_dir

    manifest = shared_data / "asr" / "ljspeech-dev-tel" / "manifest.jsonl"
    # clip 1 ("in being comparatively modern.", 1.9 s); VAC off: its Silero onset clips this clip's first words
    r = run_whisperlivekit(manifest, limit=1, model_dir=packaged_model_dir("base"), vac=False)
    assert r["system"].startswith("whisperlivekit ") and r["clips"] == 1
    assert r["settings"]["backend"] == "faster-whisper"
    assert r["wer"] <= 0.25, r["samples"]
    final, first = r["final_latency_s"], r["first_partial_latency_s"]
    assert final["p50"] is not None and 0.0 < final["p50"] < 10.0
    assert first["mean"] <= final["mean"]  # a word is shown no later than it is committed
