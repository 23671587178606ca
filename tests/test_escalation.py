"""Fusion of text and voice affect, rolling per-speaker sentiment and the escalation state machine.

Unit tests drive the pure logic with hand-set affect; the call tests replay real dev calls
(shared/data/calls/dev): the ground-truth turn sentiment and emotion stand in for the text classifiers, and the
packaged voice model runs on each customer turn cut from the stereo 8 kHz recording, as the pipeline would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from intelligence.escalation import (
    ESCALATION_ALERT,
    ESCALATION_CLEARED_ALERT,
    EscalationConfig,
    EscalationTracker,
    UtteranceAffect,
)
from intelligence.fusion import FusionConfig, TextAffect, VoiceCue, fuse
from intelligence.types import Alert, Severity

NEG_ANGRY = TextAffect("negative", 0.9, "angry", 0.9)
NEG_FRUSTRATED = TextAffect("negative", 0.9, "frustrated", 0.9)
NEUTRAL = TextAffect("neutral", 0.9, "neutral", 0.9)
POSITIVE = TextAffect("positive", 0.9, "happy", 0.9)
CALM_VOICE = VoiceCue("neutral", 0.8, arousal=0.1, anger=0.02, duration_s=2.0)
RAISED_VOICE = VoiceCue("anger", 0.95, arousal=0.98, anger=0.95, duration_s=2.0)


def _utt(i: int, text: TextAffect | None, voice: VoiceCue | None = None, speaker: str = "customer") -> UtteranceAffect:
    return UtteranceAffect(f"seg-{i}", speaker, 1 if speaker == "customer" else 0, 2.0 * i, 2.0 * i + 1.5,
                           text, voice)


def _run(tracker: EscalationTracker, items: list[UtteranceAffect]) -> list[Alert]:
    return [a for u in items for a in tracker.observe(u).alerts]


# --- fusion ---------------------------------------------------------------------------------------------------

def test_raised_voice_behind_neutral_words_reads_angry() -> None:
    calm = fuse(NEUTRAL, CALM_VOICE)
    raised = fuse(NEUTRAL, RAISED_VOICE)
    assert calm.emotion == "neutral" and calm.valence == pytest.approx(0.0) and not calm.voice_raised
    assert raised.emotion == "angry" and raised.emotion_source == "voice" and raised.voice_raised
    assert raised.valence < -0.3


def test_voice_intensifies_negative_words_but_never_softens_them() -> None:
    words_only = fuse(NEG_FRUSTRATED, None)
    loud = fuse(NEG_FRUSTRATED, VoiceCue("fear", 0.7, arousal=0.95, anger=0.1, duration_s=2.0))
    flat = fuse(NEG_FRUSTRATED, VoiceCue("sadness", 0.7, arousal=0.02, anger=0.0, duration_s=2.0))
    assert loud.valence < words_only.valence < 0
    assert flat.valence == pytest.approx(words_only.valence)


def test_happy_high_arousal_voice_does_not_turn_positive_words_negative() -> None:
    excited = fuse(POSITIVE, VoiceCue("happiness", 0.9, arousal=0.97, anger=0.05, duration_s=2.0))
    assert excited.valence > 0.5 and excited.emotion == "happy"
    # A shouted "great, thanks a lot" is pulled down but not labelled angry: the words say otherwise.
    sarcastic = fuse(POSITIVE, RAISED_VOICE)
    assert sarcastic.valence < fuse(POSITIVE, None).valence and sarcastic.emotion == "happy"


def test_unusable_short_or_unsure_voice_changes_nothing() -> None:
    base = fuse(NEUTRAL, None)
    for cue in (VoiceCue("unknown", 0.0, 0.5, 0.0, usable=False, duration_s=2.0),
                VoiceCue("anger", 0.95, 0.98, 0.95, duration_s=0.6),
                VoiceCue("anger", 0.2, 0.98, 0.95, duration_s=2.0)):
        fused = fuse(NEUTRAL, cue)
        assert fused.valence == base.valence and fused.emotion == "neutral"


def test_fusion_weights_are_configurable() -> None:
    no_voice = FusionConfig(voice_anger_weight=0.0, raised_voice_anger=1.1)
    assert fuse(NEUTRAL, RAISED_VOICE, no_voice).valence == pytest.approx(0.0)
    assert fuse(None, None).valence == 0.0


# --- rolling sentiment and the state machine --------------------------------------------------------------------

def test_one_angry_sentence_is_not_an_escalation() -> None:
    tracker = EscalationTracker("s")
    alerts = _run(tracker, [_utt(0, NEG_ANGRY), _utt(1, NEUTRAL), _utt(2, POSITIVE)])
    assert alerts == []
    mood = tracker.mood("customer")
    assert mood is not None and mood.state == "calm" and mood.utterances == 3


def test_sustained_negativity_escalates_once_then_clears_with_hysteresis() -> None:
    tracker = EscalationTracker("s")
    seq = [NEG_ANGRY, NEG_ANGRY, NEG_FRUSTRATED, NEUTRAL, NEG_ANGRY, POSITIVE, POSITIVE]
    per_utt = [tracker.observe(_utt(i, t)).alerts for i, t in enumerate(seq)]
    kinds = [[a.alert_type for a in alerts] for alerts in per_utt]
    assert kinds[1] == [ESCALATION_ALERT]
    # Neutral in the middle of a tirade neither clears nor re-raises the alert.
    assert kinds[2] == kinds[3] == kinds[4] == []
    assert tracker.mood("customer").state in ("escalated", "calm")  # type: ignore[union-attr]
    cleared = [i for i, k in enumerate(kinds) if k == [ESCALATION_CLEARED_ALERT]]
    assert len(cleared) == 1 and cleared[0] >= 5
    alert = per_utt[1][0]
    assert alert.severity is Severity.HIGH and alert.session_id == "s"
    assert alert.data["segment_ids"] == ["seg-0", "seg-1"] and alert.data["speaker"] == "customer"
    assert alert.at_s == pytest.approx(3.5)


def test_frustration_without_anger_is_medium() -> None:
    tracker = EscalationTracker("s")
    alerts = _run(tracker, [_utt(i, NEG_FRUSTRATED) for i in range(4)])
    assert [a.severity for a in alerts] == [Severity.MEDIUM]


def test_raised_voice_can_escalate_polite_words() -> None:
    tracker = EscalationTracker("s")
    alerts = _run(tracker, [_utt(i, NEUTRAL, RAISED_VOICE) for i in range(4)])
    assert len(alerts) == 1 and alerts[0].severity is Severity.HIGH
    assert alerts[0].data["voice_raised_utterances"] >= 2
    calm = EscalationTracker("s")
    assert _run(calm, [_utt(i, NEUTRAL, CALM_VOICE) for i in range(4)]) == []


def test_only_watched_speakers_alert_but_everyone_has_a_rolling_sentiment() -> None:
    tracker = EscalationTracker("s")
    alerts = _run(tracker, [_utt(i, NEG_ANGRY, speaker="agent") for i in range(4)])
    assert alerts == []
    agent = tracker.mood("agent")
    assert agent is not None and agent.rolling_valence < -0.8
    both = EscalationTracker("s", EscalationConfig(watch_speakers=("customer", "agent")))
    assert len(_run(both, [_utt(i, NEG_ANGRY, speaker="agent") for i in range(4)])) == 1


def test_thresholds_are_configurable_and_validated() -> None:
    strict = EscalationTracker("s", EscalationConfig(sustain_utterances=4))
    assert _run(strict, [_utt(i, NEG_ANGRY) for i in range(3)]) == []
    assert len(_run(strict, [_utt(3, NEG_ANGRY)])) == 1
    quiet = EscalationTracker("s", EscalationConfig(emit_recovery=False))
    alerts = _run(quiet, [_utt(0, NEG_ANGRY), _utt(1, NEG_ANGRY)] + [_utt(i, POSITIVE) for i in range(2, 6)])
    assert [a.alert_type for a in alerts] == [ESCALATION_ALERT]
    with pytest.raises(ValueError):
        EscalationConfig(ema_alpha=0.0)
    with pytest.raises(ValueError):
        EscalationConfig(negative_threshold=-0.2, recover_threshold=-0.5)


# --- real dev calls ------------------------------------------------------------------------------------------

CALLS = "calls/dev"


@pytest.fixture(scope="module")
def voice_clf():
    from models.voice_emotion import VoiceEmotionClassifier

    return VoiceEmotionClassifier.from_packaged()


def _replay_call(shared_data: Path, call_id: str, clf) -> tuple[dict, list[tuple[int, Alert]], EscalationTracker]:
    """Ground-truth text affect + voice model on each customer turn, through a fresh tracker."""
    gt = json.loads((shared_data / CALLS / "gt" / f"{call_id}.json").read_text(encoding="utf-8"))
    pcm, rate_hz = sf.read(shared_data / CALLS / "audio" / f"{call_id}.stereo8k.wav", dtype="float32")
    assert rate_hz == 8000 and pcm.shape[1] == 2
    tracker = EscalationTracker(call_id)
    stats = clf.new_call_stats()
    alerts: list[tuple[int, Alert]] = []
    for turn in gt["turns"]:
        voice = None
        if turn["speaker"] == "customer":
            seg = pcm[int(turn["start_s"] * rate_hz): int(turn["end_s"] * rate_hz), turn["channel"]]
            voice = clf.classify(seg, sample_rate_hz=rate_hz, call_stats=stats).to_cue()
        text = TextAffect(turn["sentiment"], 1.0, turn["emotion"], 1.0)
        update = tracker.observe(UtteranceAffect(f"{call_id}-{turn['index']}", turn["speaker"], turn["channel"],
                                                 turn["start_s"], turn["end_s"], text, voice))
        alerts += [(turn["index"], a) for a in update.alerts]
    return gt, alerts, tracker


@pytest.mark.parametrize("call_id", ["dev_en_13", "dev_en_02"])
def test_angry_customer_call_raises_a_high_escalation(shared_data: Path, voice_clf, call_id: str) -> None:
    gt, alerts, tracker = _replay_call(shared_data, call_id, voice_clf)
    escalations = [(i, a) for i, a in alerts if a.alert_type == ESCALATION_ALERT]
    assert len(escalations) == 1
    turn_index, alert = escalations[0]
    customer_turns = [t["index"] for t in gt["turns"] if t["speaker"] == "customer"]
    # Raised by the customer's second angry turn, while the call is still going.
    assert turn_index == customer_turns[1]
    assert alert.severity is Severity.HIGH and alert.data["channel"] == 1
    assert alert.at_s == pytest.approx(gt["turns"][turn_index]["end_s"])
    assert "angry" in alert.data["emotions"]
    # No transcript text in an alert (personal data): only ids, scores and labels.
    texts = [t["text"] for t in gt["turns"]]
    blob = json.dumps(alert.to_dict())
    assert not any(text[:20] in blob for text in texts)
    customer = tracker.mood("customer")
    assert customer is not None and customer.utterances == len(customer_turns)


@pytest.mark.parametrize("call_id", ["dev_en_03", "dev_en_06", "dev_en_18", "dev_en_01", "dev_en_04", "dev_en_19"])
def test_calm_or_recovering_calls_do_not_escalate(shared_data: Path, voice_clf, call_id: str) -> None:
    """Calm calls, and calls whose customer starts worried or frustrated and ends happy: no escalation."""
    gt, alerts, tracker = _replay_call(shared_data, call_id, voice_clf)
    assert [a for _, a in alerts if a.alert_type == ESCALATION_ALERT] == []
    customer = tracker.mood("customer")
    assert customer is not None and customer.rolling_valence > 0.0 and customer.state == "calm"
    last = [t for t in gt["turns"] if t["speaker"] == "customer"][-1]
    assert last["sentiment"] == "positive"


def test_voice_model_on_call_audio_gives_usable_cues(shared_data: Path, voice_clf) -> None:
    """Telephone μ-law turns at 8 kHz go through the model without issues and update the call's statistics."""
    gt = json.loads((shared_data / CALLS / "gt" / "dev_en_13.json").read_text(encoding="utf-8"))
    pcm, rate_hz = sf.read(shared_data / CALLS / "audio" / "dev_en_13.stereo8k.wav", dtype="float32")
    stats = voice_clf.new_call_stats()
    results = [voice_clf.classify(pcm[int(t["start_s"] * rate_hz): int(t["end_s"] * rate_hz), 1],
                                  sample_rate_hz=rate_hz, call_stats=stats)
               for t in gt["turns"] if t["speaker"] == "customer"]
    assert all(r.usable and r.issues == () for r in results)
    assert stats.count == len(results)
    # The gap between turns on the customer channel is silence (or background noise): never an exception.
    gap = pcm[int(gt["turns"][0]["start_s"] * rate_hz): int(gt["turns"][0]["end_s"] * rate_hz), 1]
    r = voice_clf.classify(gap, sample_rate_hz=rate_hz)
    assert r.label in ("unknown", "anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness")
    assert np.isfinite(r.arousal)


@pytest.mark.slow
def test_escalation_eval_on_dev_calls(tmp_path: Path) -> None:
    """`harken eval escalation` end to end on the 28 dev calls (about 30 s)."""
    from api.cli import main

    out = tmp_path / "esc.json"
    assert main(["eval", "escalation", "--calls", "calls/dev", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["calls"] == 28 and set(r["reference_calls"]) == {"dev_en_02", "dev_en_13"}
    assert r["text"]["escalation_recall"] == 1.0 and r["text"]["escalation_precision"] == 1.0
    assert r["text+voice"]["escalation_recall"] == 1.0
    # HIGH severity only where a customer was actually angry; voice may add MEDIUM alerts on negative calls.
    assert set(r["text+voice"]["high_severity_calls"]) <= set(r["reference_calls"])
    assert r["voice_latency_ms"]["p50"] > 0
