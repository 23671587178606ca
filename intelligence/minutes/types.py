"""Typed input and output of minutes.

Input is the session's final utterances with their speaker labels (channel roles, or diarization labels on a
single-channel recording). Output is one `Minutes` value, rendered to JSON, Markdown or HTML at the edges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class MinutesUtterance:
    """One speaker's final text between pauses. `sentiment_score` in [-1, 1] when a classifier scored it."""

    start_s: float
    end_s: float
    speaker: str
    text: str
    language: str = "en"
    sentiment_score: float | None = None


@dataclass(frozen=True)
class SummarySentence:
    """A sentence of the summary, with where it was said (extractive) or None (abstractive)."""

    text: str
    start_s: float | None = None
    speaker: str | None = None


@dataclass(frozen=True)
class ActionItem:
    what: str
    owner: str | None
    due: str | None
    start_s: float
    evidence: str


@dataclass(frozen=True)
class Decision:
    text: str
    start_s: float
    speaker: str


@dataclass(frozen=True)
class OpenQuestion:
    text: str
    start_s: float
    speaker: str


@dataclass(frozen=True)
class Chapter:
    start_s: float
    end_s: float
    title: str


@dataclass(frozen=True)
class SpeakerStats:
    speaker: str
    talk_s: float
    turns: int
    interruptions: int  # times this speaker started while another was still talking
    share: float  # of all talk time


@dataclass(frozen=True)
class SentimentPoint:
    start_s: float
    end_s: float
    score: float  # mean sentiment in [-1, 1] over the window


@dataclass
class Minutes:
    """Everything the minutes say about one session."""

    language: str
    duration_s: float
    method: str  # "extractive" or "llm"
    summary: list[SummarySentence] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)
    open_questions: list[OpenQuestion] = field(default_factory=list)
    chapters: list[Chapter] = field(default_factory=list)
    speakers: list[SpeakerStats] = field(default_factory=list)
    sentiment_arc: list[SentimentPoint] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def minutes_from_dict(d: dict[str, Any]) -> Minutes:
    """A `Minutes` back from its JSON form (as stored in a `minutes` event)."""

    def many(key: str, cls: type) -> list[Any]:
        return [cls(**item) for item in d.get(key) or []]

    return Minutes(
        language=str(d.get("language", "en")), duration_s=float(d.get("duration_s") or 0.0),
        method=str(d.get("method", "extractive")), summary=many("summary", SummarySentence),
        decisions=many("decisions", Decision), action_items=many("action_items", ActionItem),
        open_questions=many("open_questions", OpenQuestion), chapters=many("chapters", Chapter),
        speakers=many("speakers", SpeakerStats), sentiment_arc=many("sentiment_arc", SentimentPoint),
        warnings=list(d.get("warnings") or []),
    )
