"""Card data is masked the same way everywhere: in stored transcripts and in `harken transcribe` output."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from intelligence.redaction import redact_finals


def _final(seg: str, channel: int, start_s: float, text: str) -> dict:
    words = [{"text": " " + t, "start_s": start_s + 0.3 * i, "end_s": start_s + 0.3 * (i + 1), "probability": 0.9}
             for i, t in enumerate(text.split())]
    return {"type": "transcript", "kind": "final", "segment_id": seg, "channel": channel, "speaker": "agent",
            "start_s": start_s, "end_s": words[-1]["end_s"], "text": text, "words": words, "language": "en"}


def test_a_card_number_read_over_several_finals_is_masked_in_text_and_words() -> None:
    finals = [
        _final("c0-1", 0, 1.0, "I'm looking at your debit card 5425"),
        _final("c0-2", 0, 3.5, "2334 3010 9903 and the linked account."),
        _final("c1-1", 1, 2.0, "My reference is 4242 and it is fine."),  # four digits on another channel: kept
    ]
    out = redact_finals(finals)
    by_id = {e["segment_id"]: e for e in out}
    assert "5425" not in by_id["c0-1"]["text"] and by_id["c0-1"]["text"].endswith("####")
    assert by_id["c0-2"]["text"].startswith("#### #### ####") and "linked account" in by_id["c0-2"]["text"]
    assert by_id["c0-1"]["redacted"] and by_id["c0-2"]["redacted"]
    assert not any(re.search(r"\d", w["text"]) for e in out[:2] for w in e["words"])
    assert by_id["c1-1"] == finals[2]  # nothing to mask: unchanged
    assert finals[0]["text"].endswith("5425")  # the input is not edited in place


def test_a_card_number_in_words_is_masked_in_the_word_list_too() -> None:
    spoken = "card four five three nine one four eight eight zero three four three six four six seven thanks"
    (out,) = redact_finals([_final("c0-1", 0, 0.0, spoken)])
    assert "four five" not in out["text"] and out["text"].startswith("card ") and out["text"].endswith(" thanks")
    assert [w["text"].strip() for w in out["words"]][0] == "card"
    assert all(set(w["text"].strip()) == {"#"} for w in out["words"][1:-1])


@pytest.mark.model
def test_transcribe_masks_card_numbers_unless_asked_to_keep_them(shared_data, tmp_path, capsys) -> None:
    from api.cli import main

    # the agent reads the debit card number (dev_en_19, agent channel, 26-35 s); tiny.en keeps the test quick:
    # redaction does not depend on the model
    data, rate = sf.read(shared_data / "calls" / "dev" / "audio" / "dev_en_19.stereo8k.wav", dtype="int16")
    clip = tmp_path / "agent.wav"
    sf.write(clip, np.ascontiguousarray(data[26 * rate : 35 * rate, 0]), rate)
    args = ["transcribe", str(clip), "--format", "json", "--language", "en", "--no-progress", "--model", "tiny.en"]

    assert main(args) == 0
    masked = json.loads(capsys.readouterr().out)
    text = " ".join(s["text"] for s in masked["segments"])
    assert masked["card_data"] == "masked"
    assert "card" in text.lower() and "####" in text  # the words around the number stay (tiny.en may hear "debit card" or "your card")
    assert len(re.sub(r"\D", "", text)) < 4, text  # never the card number
    assert not any(len(re.sub(r"\D", "", w["text"])) >= 4 for s in masked["segments"] for w in s["words"])

    assert main([*args, "--keep-card-data"]) == 0
    kept = json.loads(capsys.readouterr().out)
    digits = re.sub(r"\D", "", " ".join(s["text"] for s in kept["segments"]))
    assert kept["card_data"] == "kept" and "5425" in digits and "9903" in digits
