"""Per-session call state the rule runners read: speaker turns, named events and context flags.

A *turn* is a run of final segments from the same speaker, the unit the call-scenario ground truth and QA
reviewers think in. Rules match on the whole turn text so a phrase split across two ASR segments still
matches, but each rule reports only matches that end in the newest segment (nothing is reported twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from intelligence.compliance.pci import time_of_chars
from intelligence.compliance.text import NormText, TextNormalizer
from intelligence.types import Evidence, TranscriptEvent


@dataclass
class Turn:
    """Consecutive final segments of one speaker."""

    index: int
    speaker: str
    channel: int
    segments: list[TranscriptEvent] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    text: str = ""
    nt: NormText | None = None

    @property
    def start_s(self) -> float:
        return self.segments[0].start_s

    @property
    def end_s(self) -> float:
        return max(s.end_s for s in self.segments)

    def append(self, event: TranscriptEvent, normalizer: TextNormalizer) -> int:
        """Add a segment; returns the character offset of its text in the turn text."""
        offset = len(self.text) + (1 if self.text else 0)
        self.text = f"{self.text} {event.text}" if self.text else event.text
        self.segments.append(event)
        self.offsets.append(offset)
        new = normalizer.normalize(event.text)
        self.nt = self.nt.extend(new) if self.nt is not None else new
        return offset

    def segment_at(self, char: int) -> int:
        """Index of the segment containing character `char` of the turn text."""
        idx = 0
        for i, off in enumerate(self.offsets):
            if off <= char:
                idx = i
        return idx

    def evidence(self, start: int, end: int) -> Evidence:
        """Evidence for characters start..end of the turn text (quoted exactly, timed from word stamps)."""
        # a span may begin on the space that joins two segments: it belongs to the segment after it
        while start < end and start < len(self.text) and self.text[start].isspace():
            start += 1
        i = self.segment_at(start)
        seg = self.segments[i]
        off = self.offsets[i]
        s = max(0, start - off)
        e = max(s, min(len(seg.text), end - off))
        t0, t1 = time_of_chars(seg, s, e)
        return Evidence(seg.segment_id, seg.channel, round(t0, 3), round(t1, 3), self.text[start:end].strip())

    def whole_evidence(self) -> Evidence:
        """Evidence covering the whole turn (for findings about a turn, e.g. a missing notice)."""
        first, last = self.segments[0], self.segments[-1]
        return Evidence(last.segment_id if len(self.segments) == 1 else first.segment_id, first.channel,
                        first.start_s, last.end_s, self.text.strip())


@dataclass
class EventState:
    """Progress of one named event: which elements were heard (cumulative) and where it happened."""

    hits: dict[tuple[int, str], Evidence] = field(default_factory=dict)
    first_turn: int | None = None
    first_seq: int | None = None  # index of the final segment (call-wide) where it first happened
    first_evidence: Evidence | None = None
    occurrences: list[tuple[int, Evidence]] = field(default_factory=list)
    # characters of the first turn's text where the completing element was heard (order inside one segment)
    first_span: tuple[int, int] | None = None

    @property
    def happened(self) -> bool:
        return self.first_turn is not None


@dataclass
class CallState:
    """Everything the runners of one session share. Owned by one `ComplianceEngine`, never shared."""

    session_id: str
    turns: list[Turn] = field(default_factory=list)
    events: dict[tuple[str, str], EventState] = field(default_factory=dict)
    contexts: dict[tuple[str, str], Evidence] = field(default_factory=dict)
    han_chars: int = 0
    latin_chars: int = 0
    forced_language: str | None = None
    segment_turn: dict[str, int] = field(default_factory=dict)
    last_end_s: float = 0.0
    segments_seen: int = 0
    roles_known: bool = True

    @property
    def language(self) -> str:
        if self.forced_language:
            return self.forced_language
        return "zh" if self.han_chars * 4 >= self.latin_chars and self.han_chars > 0 else "en"

    def event(self, pack: str, name: str) -> EventState:
        return self.events.setdefault((pack, name), EventState())

    def context_seen(self, pack: str, name: str) -> bool:
        return (pack, name) in self.contexts

    def turns_of(self, speaker: str) -> list[Turn]:
        return [t for t in self.turns if t.speaker == speaker]

    def first_turn_of(self, speaker: str) -> Turn | None:
        return next((t for t in self.turns if speaker in (t.speaker, "any")), None)
