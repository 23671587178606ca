"""The events a session publishes, typed (issue 14): producers build these, and they become JSON objects only at
the edges (`to_json`: the session's fan-out to the API, the store and the broker).

Captions, annotations, findings and alerts have their types in intelligence/types.py; the session-level events
are here. Scorecards, tickets and minutes still travel as the dicts their modules build (their own `to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from intelligence.types import Alert, Annotation, Finding, TranscriptEvent


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The last event of every session."""

    type: ClassVar[str] = "session_end"
    reason: str
    audio_s: float


@dataclass(frozen=True, slots=True)
class SessionError:
    """Something went wrong that subscribers should know of; the session goes on unless it says otherwise."""

    type: ClassVar[str] = "error"
    code: str
    message: str | None = None
    channel: int | None = None


@dataclass(frozen=True, slots=True)
class SpeakerUpdate:
    """A live caption's speaker label revised once, as the diarizer's evidence grew."""

    type: ClassVar[str] = "speaker_update"
    segment_id: str
    start_s: float
    end_s: float
    speaker: str
    previous_speaker: str
    channel: int = 0
    final: bool = False


@dataclass(frozen=True, slots=True)
class DiarizationResult:
    """Speaker turns of the whole session after it ended, and the captions whose label changes."""

    type: ClassVar[str] = "diarization"
    speakers: list[str]
    turns: list[dict[str, Any]]
    relabel: dict[str, str]
    windows: int
    channel: int = 0
    final: bool = True


@dataclass(frozen=True, slots=True)
class Redaction:
    """A final caption's text replaced (card data masked); applied to the stored caption in order."""

    type: ClassVar[str] = "redaction"
    segment_id: str
    channel: int
    text: str
    rule_id: str


@dataclass(frozen=True, slots=True)
class Mood:
    """A speaker's fused mood after one utterance, and its rolling state (calm / tense / escalating ...)."""

    type: ClassVar[str] = "mood"
    speaker: str
    channel: int
    segment_id: str
    at_s: float
    valence: float
    emotion: str
    rolling_valence: float
    state: str


@dataclass(frozen=True, slots=True)
class TapEvent:
    """What a tap saw besides audio: a key press (`dtmf`), stream statistics (`tap_stats`), a mark..."""

    event_type: str
    data: dict[str, Any] = field(default_factory=dict)


SessionEvent = (TranscriptEvent | Annotation | Finding | Alert | SessionEnded | SessionError | SpeakerUpdate
                | DiarizationResult | Redaction | Mood | TapEvent)

_OPTIONAL_WHEN_NONE = frozenset({"message", "channel"})  # error fields that are left out rather than null


def to_json(event: SessionEvent | dict[str, Any]) -> dict[str, Any]:
    """The event as the JSON object subscribers, the store and the broker see (a dict passes through)."""
    if isinstance(event, dict):
        return event
    if isinstance(event, TapEvent):
        return {"type": event.event_type, **event.data}
    if isinstance(event, TranscriptEvent | Annotation | Finding | Alert):
        return event.to_dict()
    out: dict[str, Any] = {"type": event.type}
    for key, value in asdict(event).items():
        if value is None and isinstance(event, SessionError) and key in _OPTIONAL_WHEN_NONE:
            continue
        out[key] = value
    return out
