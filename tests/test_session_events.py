"""The typed session events turn into the same JSON objects subscribers, the store and the broker have always
seen (intelligence/events.py): a type field, the event's fields, nothing null that used to be left out."""

from __future__ import annotations

from intelligence.events import (
    DiarizationResult,
    Mood,
    Redaction,
    SessionEnded,
    SessionError,
    SpeakerUpdate,
    TapEvent,
    to_json,
)
from intelligence.types import Annotation


def test_session_events_as_json():
    assert to_json(SessionEnded("client_stop", 12.5)) == {"type": "session_end", "reason": "client_stop",
                                                          "audio_s": 12.5}
    assert to_json(SessionError("channel_failed", channel=1)) == {"type": "error", "code": "channel_failed",
                                                                  "channel": 1}
    assert to_json(SessionError("recording_failed", "disk full")) == {"type": "error", "code": "recording_failed",
                                                                      "message": "disk full"}
    assert to_json(SpeakerUpdate("c0-00003", 1.0, 2.5, "S2", "S1")) == {
        "type": "speaker_update", "segment_id": "c0-00003", "channel": 0, "start_s": 1.0, "end_s": 2.5,
        "speaker": "S2", "previous_speaker": "S1", "final": False}
    assert to_json(DiarizationResult(["S1"], [{"start_s": 0.0, "end_s": 1.0, "speaker": "S1"}], {}, 3)) == {
        "type": "diarization", "channel": 0, "final": True, "speakers": ["S1"],
        "turns": [{"start_s": 0.0, "end_s": 1.0, "speaker": "S1"}], "relabel": {}, "windows": 3}
    assert to_json(Redaction("c1-00002", 1, "####", "pci_card")) == {
        "type": "redaction", "segment_id": "c1-00002", "channel": 1, "text": "####", "rule_id": "pci_card"}
    assert to_json(Mood("customer", 1, "c1-00004", 9.5, -0.4, "angry", -0.2, "tense"))["state"] == "tense"
    assert to_json(TapEvent("dtmf", {"digit": "5", "channel": 1, "at_s": 12.0})) == {
        "type": "dtmf", "digit": "5", "channel": 1, "at_s": 12.0}
    ann = Annotation("s", "c0-00001", 0, "intent", "greeting", 0.9, "m")
    assert to_json(ann) == ann.to_dict() and to_json(ann)["type"] == "annotation"
    plain = {"type": "scorecard", "score": 90}
    assert to_json(plain) is plain  # dicts (scorecards, tickets, minutes) pass through
