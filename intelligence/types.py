"""Core domain types shared by every layer.

Frozen dataclasses with units in their names. Times are on the *media clock* of a session (seconds since the
first sample the session received), never wall clock, so events from a live call and from a file replay compare.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TranscriptKind = Literal["partial", "final"]


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A block of int16 little-endian mono PCM for one channel, normalised once at ingress.

    `channel` is the channel index within the session (0-based); its role (agent, customer, a participant id)
    lives in the session's channel names.
    """

    pcm_s16le: bytes
    sample_rate_hz: int
    channel: int
    start_s: float
    seq: int = 0

    @property
    def num_samples(self) -> int:
        return len(self.pcm_s16le) // 2

    @property
    def duration_s(self) -> float:
        return self.num_samples / float(self.sample_rate_hz)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word (or CJK token) with its media-clock times and recogniser confidence."""

    text: str
    start_s: float
    end_s: float
    probability: float = 1.0


@dataclass(frozen=True, slots=True)
class TranscriptEvent:
    """A caption event. A partial replaces the previous partial of the same segment; a final never changes."""

    session_id: str
    kind: TranscriptKind
    segment_id: str
    channel: int
    speaker: str
    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()
    language: str = ""
    model: str = ""
    # Wall-clock emission time (unix seconds); used for latency measurement, not for ordering.
    emitted_at: float = 0.0
    # How much of this channel's audio had arrived (media clock) when the event was emitted: latency of a word
    # is media_clock_s - word.end_s. File replays use a simulated real-time clock (see pipelines/session.py).
    media_clock_s: float = 0.0
    # Why a final was committed: "agreement" (two decodes agreed inside the utterance), "utterance_end" (the
    # speaker stopped), "forced" (a long buffer without agreement); "" for partials. Where latency comes from.
    commit: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = "transcript"
        d["words"] = [asdict(w) for w in self.words]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TranscriptEvent:
        """The event back from its `to_dict` form (as stored, streamed or read from a replay)."""
        return cls(
            session_id=str(d.get("session_id", "")), kind=d.get("kind", "final"), segment_id=d["segment_id"],
            channel=int(d.get("channel", 0)), speaker=str(d.get("speaker", "")), start_s=float(d["start_s"]),
            end_s=float(d["end_s"]), text=d["text"],
            words=tuple(Word(w["text"], float(w["start_s"]), float(w["end_s"]), float(w.get("probability", 1.0)))
                        for w in d.get("words", ())),
            language=d.get("language", ""), model=d.get("model", ""), emitted_at=d.get("emitted_at", 0.0),
            media_clock_s=d.get("media_clock_s", 0.0), commit=d.get("commit", ""),
        )


@dataclass(frozen=True, slots=True)
class Annotation:
    """A classifier label attached to one final segment: intent, emotion, sentiment, voice_emotion..."""

    session_id: str
    segment_id: str
    channel: int
    task: str
    label: str
    score: float
    model: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = "annotation"
        return d


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A span of a session's transcript that supports a finding."""

    segment_id: str
    channel: int
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True, slots=True)
class Finding:
    """A compliance rule outcome with evidence. `kind` is 'present' (a bad thing happened) or 'absent'."""

    session_id: str
    rule_id: str
    pack: str
    pack_version: str
    severity: Severity
    kind: Literal["present", "absent"]
    message: str
    evidence: tuple[Evidence, ...] = ()
    at_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = "finding"
        d["severity"] = self.severity.value
        return d


@dataclass(frozen=True, slots=True)
class Alert:
    """A live supervisor alert (escalation, compliance finding, system condition)."""

    session_id: str
    alert_type: str
    severity: Severity
    message: str
    at_s: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = "alert"
        d["severity"] = self.severity.value
        return d
