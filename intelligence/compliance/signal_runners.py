"""Runners for card data, PII, risk-level mismatch, silence, over-talk and classifier annotations."""

from __future__ import annotations

import re
from dataclasses import replace

from intelligence.compliance.matching import Match, PhraseMatcher, is_negated
from intelligence.compliance.pci import (
    CARD_CONTEXT_RE,
    CVV_KEYWORDS_RE,
    NOT_CVV_BEFORE_RE,
    SensitiveSpan,
    digit_runs,
    find_card_numbers,
    find_cvv,
    find_pii,
)
from intelligence.compliance.risk_scale import Role, scale_mentions
from intelligence.compliance.rules import (
    AnnotationSpec,
    CardNumberSpec,
    CvvSpec,
    OvertalkSpec,
    PiiSpec,
    PolicyPack,
    RiskMismatchSpec,
    Rule,
    SilenceSpec,
)
from intelligence.compliance.runner_base import (
    ReportedSpans,
    Runner,
    SegmentContext,
    longest_first,
    new_matches,
    speaker_ok,
)
from intelligence.compliance.state import CallState, Turn
from intelligence.compliance.text import TextNormalizer
from intelligence.types import Annotation, Evidence, Finding, TranscriptEvent


class CardNumberRunner(Runner):
    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, CardNumberSpec)
        self.spec = rule.spec
        self.reported: set[tuple[int, str]] = set()
        self.spans = ReportedSpans()  # the same digits re-read as a number's later groups arrive are one card

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        turn = ctx.turn
        if not speaker_ok(self.spec.speaker, turn.speaker):
            return []
        out = []
        prev = self.state.turns[turn.index - 1] if turn.index > 0 else None
        asked = prev is not None and prev.speaker != turn.speaker and CARD_CONTEXT_RE.search(prev.text) is not None
        # the question names what is being read out: an id or phone number asked for is not a card
        text = f"{prev.text}\n{turn.text}" if prev is not None and prev.speaker != turn.speaker else turn.text
        shift = len(text) - len(turn.text)
        spans = [replace(s, start=s.start - shift, end=s.end - shift)
                 for s in find_card_numbers(text, allow_unverified=self.spec.allow_unverified, card_context=asked)
                 if s.start >= shift]
        for s in spans:
            if s.end <= ctx.offset or (turn.index, s.value[-4:]) in self.reported:
                continue
            if self.spans.taken(turn.index, s.start, s.end):
                continue
            self.reported.add((turn.index, s.value[-4:]))
            self.spans.add(turn.index, s.start, s.end)
            note = "Luhn-valid" if s.luhn_valid else "16 digits near 'card', Luhn failed"
            out.append(self.finding(f"{self.rule.title} ({note})", [turn.evidence(s.start, s.end)]))
        return out


_DATE_RE = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december|birthday|born)\b"
    r"|\d+\s*(?:年|月|日|号)|[零〇一二两三四五六七八九十]+(?:年|月)", re.IGNORECASE)


class CvvRunner(Runner):
    """A CVV said with its keyword ("the code on the back is 381"), or as the answer to a question about it."""

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, CvvSpec)
        self.spec = rule.spec
        self.reported: set[int] = set()
        self.asked_in_turn: int | None = None

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        turn = ctx.turn
        said_digits = [r for r in digit_runs(turn.text[ctx.offset :]) if len("".join(p.digits for p in r)) >= 3]
        if CVV_KEYWORDS_RE.search(turn.text) and not said_digits:  # "the three-digit code on the back?"
            self.asked_in_turn = turn.index
        if not speaker_ok(self.spec.speaker, turn.speaker) or turn.index in self.reported:
            return []
        pans = find_card_numbers(turn.text)
        hits = [s for s in find_cvv(turn.text, pans) if s.end > ctx.offset]
        if not hits and self.asked_in_turn == turn.index - 1:
            # The previous speaker asked for the code; a lone 3-4 digit answer is the CVV.
            # (a lone digit is a word: 三位啊……是二八四, "one sec, it's 609")
            runs = [r for r in digit_runs(turn.text) if r[-1].end > ctx.offset and len("".join(p.digits for p in r)) > 1]
            # ... unless the answer is a date ("the third of February, nineteen ninety-one")
            # ... or the card's last four ("your card ending 2290", 尾号0375)
            if (len(runs) == 1 and 3 <= len("".join(p.digits for p in runs[0])) <= 4 and not pans
                    and not _DATE_RE.search(turn.text)
                    and not NOT_CVV_BEFORE_RE.search(turn.text[max(0, runs[0][0].start - 30) : runs[0][0].start])):
                hits = [SensitiveSpan("cvv", runs[0][0].start, runs[0][-1].end, "".join(p.digits for p in runs[0]))]
        if not hits:
            return []
        self.reported.add(turn.index)
        return [self.finding(self.rule.title, [turn.evidence(hits[0].start, hits[0].end)])]


class PiiRunner(Runner):
    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, PiiSpec)
        self.spec = rule.spec
        self.reported: set[tuple[int, str]] = set()

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        turn = ctx.turn
        if not speaker_ok(self.spec.speaker, turn.speaker):
            return []
        out = []
        for s in find_pii(turn.text):
            if s.kind in self.spec.kinds and s.end > ctx.offset and (turn.index, s.kind) not in self.reported:
                self.reported.add((turn.index, s.kind))
                out.append(self.finding(f"{self.rule.title} ({s.kind})", [turn.evidence(s.start, s.end)]))
        return out


class RiskMismatchRunner(Runner):
    """Customer risk profile below the product's risk level, stated by the agent, with no refusal."""

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState, normalizer: TextNormalizer) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, RiskMismatchSpec)
        self.spec = rule.spec
        self.profile = [(p.level, PhraseMatcher([p.phrase], normalizer, rule.match)) for p in self.spec.profile_levels]
        self.product = [(p.level, PhraseMatcher([p.phrase], normalizer, rule.match)) for p in self.spec.product_levels]
        self.customer = [(p.level, PhraseMatcher([p.phrase], normalizer, rule.match))
                         for p in self.spec.customer_profile_levels]
        self.refusal = PhraseMatcher(self.spec.refusal, normalizer, rule.match) if self.spec.refusal else None
        self.reported = False

    def _levels(self, turn: Turn, table: list[tuple[int, PhraseMatcher]],
                role: Role | None = None) -> list[tuple[float, Match]]:
        assert turn.nt is not None
        found: list[tuple[float, Match]] = [(level, m) for level, matcher in table for m in matcher.find(turn.nt)
                                            if not is_negated(turn.nt, m)]
        exact = [(level, m) for level, m in found if m.method in ("exact", "regex")]
        if exact:
            found = exact  # a level said as such outranks a sound-alike elsewhere (精选基 is not 激进型)
        if role is not None and self.spec.scales:
            # a number read against its scale outranks a phrase that took the same words for a 1-5 level
            # (and decides whose it is: "put you at level six out of seven" is the profile's, not a product's)
            said = scale_mentions(turn.nt.norm)
            found = [(lvl, m) for lvl, m in found if not any(m.start < x.end and x.start < m.end for x in said)]
            found += [(x.level, Match(x.start, x.end, f"scale:{role}" + ("" if x.scale_stated else ":unsized"), 1.0,
                                      "regex")) for x in said if x.role == role]
        kept = longest_first([m for _, m in found])
        return [(level, m) for level, m in found if m in kept]

    def _profiles(self, turn: Turn) -> list[tuple[float, Match, Turn]]:
        """Profiles stated before or in `turn`, in call order: by the agent in its last window_turns turns, or else
        by the customer in the last 2 x window_turns turns."""
        agent = [t for t in self.state.turns[: turn.index + 1] if speaker_ok(self.spec.speaker, t.speaker)]
        out: list[tuple[float, Match, Turn]] = []
        for t in agent[-self.spec.window_turns :]:
            out.extend((lvl, m, t) for lvl, m in self._levels(t, self.profile, "profile"))
        # the customer's own words count only where the agent stated no profile ("I'm not a gambler" said while
        # agreeing with a stated 'balanced' is not a lower profile)
        if self.customer and not out:
            first = max(0, turn.index - 2 * self.spec.window_turns)
            for t in self.state.turns[first : turn.index]:
                if t.speaker == "customer" and t.nt is not None:
                    out.extend((lvl, m, t) for lvl, m in self._levels(t, self.customer))
        return sorted(out, key=lambda x: (x[2].index, x[1].start))

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        turn = ctx.turn
        if self.reported or not speaker_ok(self.spec.speaker, turn.speaker) or turn.nt is None:
            return []
        product = [x for x in self._levels(turn, self.product, "product") if x[1].end > ctx.offset]
        if not product:
            return []
        profile = self._profiles(turn)
        if not profile:
            return []
        if self.refusal and self.refusal.find(turn.nt):
            return []
        prof_level, prof_match, prof_turn = profile[-1]
        # A stated grade (R4, 四级, 4级) outranks a description (中高风险), which ASR can clip to 高风险.
        graded = [x for x in product if _is_grade(x[1].phrase)]
        prod_level, prod_match = max(graded or product, key=lambda x: x[0])
        if prof_level >= prod_level:
            return []
        # a number on a scale whose size nobody said ("rated four on our scale") against a profile in words
        # (balanced = 3) is too loose to call one level apart
        unsized = prod_match.phrase.endswith(":unsized") or prof_match.phrase.endswith(":unsized")
        if unsized and prod_level - prof_level < 2:
            return []
        self.reported = True
        evidence = [turn.evidence(prod_match.start, prod_match.end)]
        if prof_turn is turn:
            lo, hi = min(prof_match.start, prod_match.start), max(prof_match.end, prod_match.end)
            evidence = [turn.evidence(lo, hi)]
        else:
            evidence.append(prof_turn.evidence(prof_match.start, prof_match.end))
        return [self.finding(f"{self.rule.title}: profile level {prof_level:g} < product level {prod_level:g}",
                             evidence)]


def _is_grade(phrase: str) -> bool:
    """True for level codes such as R4, C2, 四级, 4级 or 'risk rating 5' (not for 中高风险 / high-risk)."""
    p = phrase.lower()
    return "级" in p or any(ch.isdigit() for ch in p) or "rating" in p or "level" in p or p.startswith("scale:")


class SilenceRunner(Runner):
    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState, normalizer: TextNormalizer) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, SilenceSpec)
        self.spec = rule.spec
        self.hold = PhraseMatcher(self.spec.hold_phrases, normalizer) if self.spec.hold_phrases else None
        self.last_end_s: float | None = None
        self.on_hold = False

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        ev = ctx.event
        out = []
        if self.last_end_s is not None:
            gap = ev.start_s - self.last_end_s
            limit = self.spec.max_hold_s if self.on_hold and self.spec.max_hold_s else self.spec.max_gap_s
            if gap > limit:
                what = "hold" if self.on_hold else "silence"
                out.append(self.finding(f"{self.rule.title}: {what} of {gap:.0f} s",
                                        [Evidence(ev.segment_id, ev.channel, self.last_end_s, ev.start_s, "")]))
        self.on_hold = bool(self.hold and ctx.turn.speaker == "agent" and ctx.turn.nt
                            and new_matches(self.hold.find(ctx.turn.nt), ctx.offset))
        self.last_end_s = max(self.last_end_s or 0.0, ev.end_s)
        return out


class OvertalkRunner(Runner):
    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, OvertalkSpec)
        self.spec = rule.spec
        self.last: dict[int, TranscriptEvent] = {}

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        ev = ctx.event
        out = []
        for ch, other in self.last.items():
            if ch == ev.channel:
                continue
            overlap = min(ev.end_s, other.end_s) - max(ev.start_s, other.start_s)
            if overlap >= self.spec.min_overlap_s:
                out.append(self.finding(f"{self.rule.title}: {overlap:.1f} s",
                                        [Evidence(ev.segment_id, ev.channel, max(ev.start_s, other.start_s),
                                                  min(ev.end_s, other.end_s), "")]))
        self.last[ev.channel] = ev
        return out


class AnnotationRunner(Runner):
    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, AnnotationSpec)
        self.spec = rule.spec
        self.hits: list[tuple[float, Evidence]] = []

    def on_annotation(self, ann: Annotation, role: str) -> list[Finding]:
        spec = self.spec
        if ann.task != spec.task or ann.label not in spec.labels or ann.score < spec.min_score:
            return []
        if not speaker_ok(spec.speaker, role):
            return []
        turn_idx = self.state.segment_turn.get(ann.segment_id)
        if turn_idx is not None:
            turn = self.state.turns[turn_idx]
            seg = next(s for s in turn.segments if s.segment_id == ann.segment_id)
            evidence = Evidence(seg.segment_id, seg.channel, seg.start_s, seg.end_s, seg.text)
        else:
            evidence = Evidence(ann.segment_id, ann.channel, self.state.last_end_s, self.state.last_end_s, "")
        self.hits.append((evidence.start_s, evidence))
        if spec.window_s is not None:
            self.hits = [h for h in self.hits if evidence.start_s - h[0] <= spec.window_s]
        if len(self.hits) < spec.min_count:
            return []
        found = self.finding(f"{self.rule.title}: {ann.task}={ann.label}", [h[1] for h in self.hits])
        self.hits = []
        return [found]
