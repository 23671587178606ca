"""Base of the rule runners: the per-segment context, the Runner class and matching helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from intelligence.compliance.matching import Embedder, Match, PhraseMatcher, clause_span
from intelligence.compliance.rules import PolicyPack, Rule
from intelligence.compliance.state import CallState, Turn
from intelligence.compliance.text import NormText, TextNormalizer
from intelligence.types import Annotation, Evidence, Finding, TranscriptEvent


@dataclass(frozen=True, slots=True)
class SegmentContext:
    """What a runner needs about the newest final segment."""

    event: TranscriptEvent
    turn: Turn
    offset: int  # where the segment's text starts in the turn text


def speaker_ok(rule_speaker: str, speaker: str) -> bool:
    return rule_speaker == "any" or rule_speaker == speaker


# How far back, in characters, token matching looks from a new segment: a listed phrase may begin in the segment
# before (ASR splits sentences), and none is longer. Regexes still read the whole turn.
RECENT_REACH_CHARS = 40


def recent(nt: NormText, offset: int) -> NormText:
    """`nt` with only the tokens near or after character `offset` (offsets unchanged): each final segment is
    matched without re-reading the whole turn, so the cost per segment does not grow with the turn."""
    lo = offset - RECENT_REACH_CHARS
    if lo <= 0:
        return nt
    return NormText(nt.original, nt.norm, tuple(t for t in nt.tokens if t.end > lo), nt.spoken)


def new_matches(matches: Sequence[Match], offset: int) -> list[Match]:
    """Matches that end inside the newest segment (older ones were reported when their segment arrived)."""
    return [m for m in matches if m.end > offset]


class Runner:
    """Base runner: builds findings for its rule."""

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState) -> None:
        self.rule = rule
        self.pack = pack
        self.state = state

    def finding(self, message: str, evidence: Sequence[Evidence], kind: str | None = None) -> Finding:
        ev = tuple(evidence)
        return Finding(
            session_id=self.state.session_id,
            rule_id=self.rule.id,
            pack=self.rule.pack,
            pack_version=self.rule.pack_version,
            severity=self.rule.severity,
            kind=(kind or self.rule.finding_kind),  # type: ignore[arg-type]
            message=message,
            evidence=ev,
            at_s=ev[0].start_s if ev else 0.0,
        )

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        return []

    def on_annotation(self, ann: Annotation, role: str) -> list[Finding]:
        return []

    def finish(self, end_s: float) -> list[Finding]:
        return []


def matcher_for(phrases: Sequence[str], rule: Rule, normalizer: TextNormalizer, embedder: Embedder | None,
             examples: Sequence[str] = ()) -> PhraseMatcher:
    return PhraseMatcher(phrases, normalizer, rule.match, embedder=embedder, examples=examples)


class ReportedSpans:
    """Character spans already reported, per turn: the same words found again (by a second phrase group, or as a
    card number's later groups arrive) are not a second finding."""

    def __init__(self) -> None:
        self._spans: dict[int, list[tuple[int, int]]] = {}

    def taken(self, turn_index: int, start: int, end: int) -> bool:
        """True if start..end overlaps a span already reported in that turn."""
        return any(start < e and s < end for s, e in self._spans.get(turn_index, ()))

    def add(self, turn_index: int, start: int, end: int) -> None:
        self._spans.setdefault(turn_index, []).append((start, end))


def longest_first(matches: Sequence[Match]) -> list[Match]:
    """Drop matches overlapped by a longer one (中高风险 wins over the 高风险 inside it)."""
    kept: list[Match] = []
    for m in sorted(matches, key=lambda m: (-(m.end - m.start), m.start)):
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m.start)


def in_question(text: str, m: Match) -> bool:
    """True if the sentence around the match is a question (ends with ?/？ or 吗/呢)."""
    end = m.end
    while end < len(text) and text[end] not in ".!?。！？\n":
        end += 1
    tail = text[m.end : end + 1].rstrip()
    return tail.endswith(("?", "？")) or tail.rstrip("。.").endswith(("吗", "呢"))


def in_excluded_clause(text: str, m: Match, excluded: Sequence[Match]) -> bool:
    """True if an exclude phrase (e.g. "never ask", 会不会) sits in the same clause as the match."""
    if not excluded:
        return False
    lo, hi = clause_span(text, m.start, m.end)
    return any(x.start < hi and x.end > lo for x in excluded)
