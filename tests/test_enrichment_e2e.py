"""Real calls through the whole live pipeline: ASR -> classifiers -> voice emotion -> escalation -> compliance,
with what is persisted checked in the store and in the stored audio."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
import soundfile as sf

from pipelines.audio_io import DecodedAudio, read_audio
from pipelines.enrich import EnrichmentResources, enricher_factories, warm_up
from pipelines.offline import replay
from pipelines.runtime import build_runtime
from pipelines.settings import HarkenSettings

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _run_call(tmp_path, shared_data, call_id: str, seconds: float) -> tuple[str, list[dict], list[dict], object]:
    settings = HarkenSettings(auth=False, data_dir=tmp_path, store_audio=True)
    audio = read_audio(shared_data / "calls" / "dev" / "audio" / f"{call_id}.stereo8k.wav")
    audio = DecodedAudio(audio.samples[: int(seconds * audio.sample_rate_hz)], audio.sample_rate_hz)

    async def go():
        res = EnrichmentResources(settings)
        await warm_up(res)
        rt = build_runtime(settings, enrichers=enricher_factories(settings, resources=res))
        try:
            sid, events = await replay(rt.manager, audio, language="en", channel_names=("agent", "customer"))
            stored = await asyncio.to_thread(rt.store.events, sid)
            return sid, events, stored
        finally:
            await rt.aclose()
            res.close()

    sid, events, stored = asyncio.run(go())
    return sid, events, stored, settings


def test_card_number_is_flagged_redacted_and_muted(tmp_path, shared_data):
    sid, events, stored, settings = _run_call(tmp_path, shared_data, "dev_en_05", 44.0)
    findings = [e for e in events if e["type"] == "finding"]
    assert "pci_card_number_spoken" in {f["maps_to"] for f in findings}
    alerts = [e for e in events if e["type"] == "alert" and e["alert_type"] == "compliance"]
    assert any(a["data"]["maps_to"] == "pci_card_number_spoken" for a in alerts)
    assert any(e["type"] == "redaction" for e in events)
    # no card number survives in what was stored
    stored_text = " ".join(e.get("text", "") for e in stored if e["type"] in ("transcript", "utterance"))
    assert not re.search(r"4539\D{0,3}1488", stored_text)
    assert not re.search(r"\d{4}\D{0,3}\d{4}\D{0,3}\d{4}\D{0,3}\d{4}", stored_text)
    # ...and the audio where it was spoken is silent in the stored recording (customer read it ~32.9-38.9 s)
    audio, rate = sf.read(str(tmp_path / "audio" / sid / f"{sid}.flac"), dtype="int16")
    assert rate == 16000
    spoken = audio[int(34.0 * rate) : int(37.5 * rate), 1]
    before = audio[int(27.0 * rate) : int(31.0 * rate), 1]
    assert np.abs(spoken).max() == 0
    assert np.abs(before).max() > 1000


def test_utterances_get_annotations_and_moods(tmp_path, shared_data):
    # 95 s: up to the customer's request for a new card. The first 40 s hold only "I think I lost my debit card",
    # which the intent head rejects as out of scope (a known weakness; `harken eval text-calls`): the assertion
    # below had passed on a comma the recogniser put in another sentence, read as a lost phone
    _sid, events, stored, _ = _run_call(tmp_path, shared_data, "dev_en_01", 95.0)
    utterances = [e for e in events if e["type"] == "utterance"]
    annotations = [e for e in events if e["type"] == "annotation"]
    assert len(utterances) >= 4
    tasks = {a["task"] for a in annotations}
    assert {"intent", "sentiment", "emotion", "voice_emotion"} <= tasks
    # every annotation points at an utterance and carries its model@version
    ids = {u["segment_id"] for u in utterances}
    assert all(a["segment_id"] in ids and a["model"] for a in annotations)
    # every customer utterance gets a Banking77 intent or an out-of-scope rejection, and the call's request is not
    # all rejected. (Which intent is a known weakness on long call turns: `harken eval text-calls` measures 0.36.)
    import json
    from pathlib import Path

    labels = set(json.loads((Path(__file__).resolve().parents[1] / "models" / "weights" / "intent" /
                             "labels.json").read_text())["labels"])
    customer_utts = [u for u in utterances if u["channel"] == 1]
    customer_intents = [a["label"] for a in annotations if a["task"] == "intent" and a["channel"] == 1]
    assert len(customer_intents) == len(customer_utts)
    assert set(customer_intents) <= labels | {"out_of_scope", "unknown"}
    assert any(label in labels - {"out_of_scope", "unknown"} for label in customer_intents)
    moods = [e for e in events if e["type"] == "mood"]
    assert {m["speaker"] for m in moods} == {"agent", "customer"}
    # annotations and moods are persisted with the session
    assert sum(1 for e in stored if e["type"] == "annotation") == len(annotations)
