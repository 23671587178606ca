"""Rule runners: one small class per rule kind, holding that rule's per-session state.

A runner sees each final segment after the engine has added it to its turn and updated events and
contexts (`on_segment`), each classifier annotation (`on_annotation`) and the end of the call (`finish`).
Runners return findings; they never raise on purpose (the engine catches, reports and disables a runner
that does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from intelligence.compliance.matching import Embedder, Match, PhraseMatcher, clause_span, is_negated
from intelligence.compliance.pci import (
    CVV_KEYWORDS_RE,
    SensitiveSpan,
    digit_runs,
    find_card_numbers,
    find_cvv,
    find_pii,
)
from intelligence.compliance.rules import (
    AnnotationSpec,
    CardNumberSpec,
    ConfirmationSpec,
    CvvSpec,
    OrderedStepsSpec,
    OvertalkSpec,
    PiiSpec,
    PolicyPack,
    ProhibitedPhraseSpec,
    RequiredPhraseSpec,
    RiskMismatchSpec,
    Rule,
    SilenceSpec,
)
from intelligence.compliance.state import CallState, Turn
from intelligence.compliance.text import NormText, TextNormalizer, fuzzy_parts
from intelligence.types import Annotation, Evidence, Finding, TranscriptEvent


@dataclass(frozen=True, slots=True)
class SegmentContext:
    """What a runner needs about the newest final segment."""

    event: TranscriptEvent
    turn: Turn
    offset: int  # where the segment's text starts in the turn text


def speaker_ok(rule_speaker: str, speaker: str) -> bool:
    return rule_speaker == "any" or rule_speaker == speaker


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


def _matcher(phrases: Sequence[str], rule: Rule, normalizer: TextNormalizer, embedder: Embedder | None,
             examples: Sequence[str] = ()) -> PhraseMatcher:
    return PhraseMatcher(phrases, normalizer, rule.match, embedder=embedder, examples=examples)


def _longest_first(matches: Sequence[Match]) -> list[Match]:
    """Drop matches overlapped by a longer one (中高风险 wins over the 高风险 inside it)."""
    kept: list[Match] = []
    for m in sorted(matches, key=lambda m: (-(m.end - m.start), m.start)):
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m.start)


class ProhibitedPhraseRunner(Runner):
    """One finding per distinct claim (phrase group) per turn; negated phrases do not count."""

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState, normalizer: TextNormalizer,
                 embedder: Embedder | None) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, ProhibitedPhraseSpec)
        self.spec = rule.spec
        self.groups = [(g, _matcher(g.phrases, rule, normalizer, embedder, g.examples)) for g in self.spec.groups]
        self.exclude = _matcher(self.spec.exclude, rule, normalizer, None) if self.spec.exclude else None
        self.reported: set[tuple[int, str]] = set()

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        turn = ctx.turn
        if not speaker_ok(self.spec.speaker, turn.speaker) or turn.nt is None:
            return []
        nt = turn.nt
        excluded = self.exclude.find(nt) if self.exclude else []
        out = []
        for group, matcher in self.groups:
            if (turn.index, group.name) in self.reported:
                continue
            if group.requires_context and not self.state.context_seen(self.pack.id, group.requires_context):
                continue
            hits = [
                m for m in new_matches(matcher.find(nt), ctx.offset)
                if not (self.spec.negation and is_negated(nt, m))
                and not _in_excluded_clause(nt.original, m, excluded)
                and (self.state.roles_known or self.spec.match_questions or not _in_question(nt.original, m))
            ]
            if not hits:
                continue
            best = max(hits, key=lambda m: (m.score, m.end - m.start))
            self.reported.add((turn.index, group.name))
            out.append(self.finding(f"{self.rule.title} ({group.name})", [turn.evidence(best.start, best.end)]))
        return out


def _in_question(text: str, m: Match) -> bool:
    """True if the sentence around the match is a question (ends with ?/？ or 吗/呢)."""
    end = m.end
    while end < len(text) and text[end] not in ".!?。！？\n":
        end += 1
    tail = text[m.end : end + 1].rstrip()
    return tail.endswith(("?", "？")) or tail.rstrip("。.").endswith(("吗", "呢"))


def _in_excluded_clause(text: str, m: Match, excluded: Sequence[Match]) -> bool:
    """True if an exclude phrase (e.g. "never ask", 会不会) sits in the same clause as the match."""
    if not excluded:
        return False
    lo, hi = clause_span(text, m.start, m.end)
    return any(x.start < hi and x.end > lo for x in excluded)


class EventTracker:
    """Detects a pack's named events on each segment (cumulative element coverage per alternative)."""

    def __init__(self, pack: PolicyPack, state: CallState, normalizer: TextNormalizer) -> None:
        self.pack = pack
        self.state = state
        self.defs = pack.events
        self.matchers = {
            ev.name: [[PhraseMatcher(el.phrases, normalizer, ev.match) for el in alt.elements] for alt in ev.alternatives]
            for ev in pack.events
        }
        self.context_matchers = {
            name: PhraseMatcher(phrases, normalizer) for name, phrases in pack.contexts.items()
        }

    def update(self, ctx: SegmentContext, language: str) -> None:
        turn = ctx.turn
        nt = turn.nt
        if nt is None:
            return
        for name, matcher in self.context_matchers.items():
            if not self.state.context_seen(self.pack.id, name):
                hits = new_matches(matcher.find(nt), ctx.offset)
                if hits:
                    self.state.contexts[(self.pack.id, name)] = turn.evidence(hits[0].start, hits[0].end)
        for ev in self.defs:
            if ev.languages and language not in ev.languages:
                continue
            if ev.requires_context and not self.state.context_seen(self.pack.id, ev.requires_context):
                continue
            st = self.state.event(self.pack.id, ev.name)
            for a, (alt, matchers) in enumerate(zip(ev.alternatives, self.matchers[ev.name], strict=True)):
                if not speaker_ok(alt.speaker or ev.speaker, turn.speaker):
                    continue
                new_in_seg: Evidence | None = None
                for el, matcher in zip(alt.elements, matchers, strict=True):
                    hits = [m for m in new_matches(matcher.find(nt), ctx.offset) if not is_negated(nt, m)]
                    if hits:
                        evidence = turn.evidence(hits[0].start, hits[0].end)
                        st.hits.setdefault((a, el.name), evidence)
                        new_in_seg = new_in_seg or evidence
                count = sum(1 for (alt_i, _), _ev in st.hits.items() if alt_i == a)
                if count >= alt.min_elements and new_in_seg is not None:
                    if st.first_turn is None:
                        st.first_turn, st.first_evidence = turn.index, new_in_seg
                        st.first_seq = self.state.segments_seen
                    if not st.occurrences or st.occurrences[-1][0] != turn.index:
                        st.occurrences.append((turn.index, new_in_seg))


class RequiredPhraseRunner(Runner):
    """Reports an absent disclosure when its deadline passes (or at the end of the call)."""

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState, normalizer: TextNormalizer,
                 embedder: Embedder | None) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, RequiredPhraseSpec)
        self.spec = rule.spec
        self.matchers = [_matcher(el.phrases, rule, normalizer, embedder) for el in self.spec.elements]
        self.script_keys = _sound_keys(normalizer.normalize_phrase(self.spec.script)) if self.spec.script else []
        self.best_coverage = 0.0
        self.hits: set[int] = set()
        self.satisfied = False
        self.done = False

    def _check(self, ctx: SegmentContext) -> None:
        if self.spec.event:
            st = self.state.events.get((self.pack.id, self.spec.event))
            self.satisfied = bool(st and st.happened)
            return
        turn = ctx.turn
        if not speaker_ok(self.spec.speaker, turn.speaker) or turn.nt is None:
            return
        if self.script_keys:
            own = [t for t in self.state.turns[: turn.index + 1] if speaker_ok(self.spec.speaker, t.speaker)][-2:]
            said = [k for t in own if t.nt is not None for k in _sound_keys(t.nt)]
            self.best_coverage = max(self.best_coverage, _coverage(self.script_keys, said))
            self.satisfied = self.best_coverage >= self.spec.coverage
            return
        nt = turn.nt
        for i, matcher in enumerate(self.matchers):
            if i not in self.hits and any(not is_negated(nt, m) for m in new_matches(matcher.find(nt), ctx.offset)):
                self.hits.add(i)
        self.satisfied = len(self.hits) >= self.spec.min_elements

    def _due_evidence(self) -> list[Evidence]:
        spec = self.spec
        for name in (spec.before_event, spec.only_if_event):
            if name:
                st = self.state.events.get((self.pack.id, name))
                if st and st.first_evidence is not None:
                    return [st.first_evidence]
        first = self.state.first_turn_of(spec.speaker)
        return [first.whole_evidence()] if first else []

    def _condition_holds(self) -> bool:
        spec = self.spec
        if spec.only_if_event:
            st = self.state.events.get((self.pack.id, spec.only_if_event))
            if not (st and st.happened):
                return False
        if spec.only_if_context and not self.state.context_seen(self.pack.id, spec.only_if_context):
            return False
        return True

    def _report(self) -> list[Finding]:
        self.done = True
        evidence = self._due_evidence()
        if not evidence:
            return []
        return [self.finding(f"{self.rule.title}: not said", evidence, "absent")]

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        if self.done:
            return []
        spec = self.spec
        if spec.before_event:
            st = self.state.events.get((self.pack.id, spec.before_event))
            if st and st.first_seq is not None and st.first_seq < self.state.segments_seen:
                # The event happened in an earlier turn: the deadline has passed.
                if not self.satisfied and self._condition_holds():
                    return self._report()
                self.done = True
                return []
        self._check(ctx)
        if self.satisfied:
            self.done = True
            return []
        if spec.before_event:
            st = self.state.events.get((self.pack.id, spec.before_event))
            if st and st.first_seq == self.state.segments_seen and self._condition_holds():
                return self._report()
        if spec.within_turns is not None or spec.within_s is not None:
            own_turns = [t for t in self.state.turns if speaker_ok(spec.speaker, t.speaker)]
            past_turns = spec.within_turns is None or len(own_turns) > spec.within_turns
            past_time = spec.within_s is None or ctx.event.start_s > spec.within_s
            if past_turns and past_time and speaker_ok(spec.speaker, ctx.turn.speaker) and self._condition_holds():
                return self._report()
        return []

    def finish(self, end_s: float) -> list[Finding]:
        if self.done or self.satisfied or not self._condition_holds():
            return []
        if not any(speaker_ok(self.spec.speaker, t.speaker) for t in self.state.turns):
            return []
        return self._report()


def _sound_keys(nt: NormText) -> list[str]:
    """Comparison keys of a text's tokens: fuzzy pinyin for Chinese characters, the word for English."""
    return [("".join(fuzzy_parts(t.pinyin)) if t.pinyin else t.text) for t in nt.tokens]


def _coverage(script: Sequence[str], said: Sequence[str]) -> float:
    """Share of the script's tokens said in order (longest common subsequence / script length)."""
    if not script:
        return 0.0
    prev = [0] * (len(said) + 1)
    for a in script:
        cur = [0] * (len(said) + 1)
        for j, b in enumerate(said, 1):
            cur[j] = prev[j - 1] + 1 if a == b else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1] / len(script)


class OrderedStepsRunner(Runner):
    """A step first heard after a later step already happened is reported at the late step."""

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, OrderedStepsSpec)
        self.steps = rule.spec.steps
        self.reported: set[str] = set()

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        out = []
        now = self.state.segments_seen
        for i, step in enumerate(self.steps):
            st = self.state.events.get((self.pack.id, step))
            if step in self.reported or not st or st.first_seq != now or st.first_evidence is None:
                continue
            for later in self.steps[i + 1 :]:
                lt = self.state.events.get((self.pack.id, later))
                if lt and lt.first_seq is not None and lt.first_seq < now and lt.first_evidence:
                    self.reported.add(step)
                    out.append(self.finding(f"{self.rule.title}: '{step}' came after '{later}'",
                                            [st.first_evidence, lt.first_evidence]))
                    break
        return out


@dataclass
class _Item:
    """An open confirmation question and what the customer said since."""

    question_end_s: float
    replies: list[tuple[Turn, str]] = field(default_factory=list)
    asks: int = 1
    agent_moved_on: bool = False


class ConfirmationRunner(Runner):
    """Explicit customer confirmation after a confirmation question ("do you understand...", 是否已阅读并理解).

    Each customer reply turn is classed `explicit` (yes / I confirm / 是的 / 已阅读并理解, no hedging), `hedge`
    (I guess, 差不多吧, or a negative such as 不明白), `backchannel` (a short 嗯 / mm / okay) or `other`
    (a question, unrelated words). The item closes on an explicit reply. It is reported, at the customer's
    last reply, when the agent proceeds anyway (a proceed phrase such as "I'll take that as a yes", or the
    proceed event, e.g. the signature), or, after a backchannel or hedge, when the agent moves on and the
    customer speaks again without the question being asked again. Asking again keeps the item open.
    If nothing from the customer was transcribed, the silent gap is reported only on strong evidence.
    """

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState, normalizer: TextNormalizer,
                 embedder: Embedder | None) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, ConfirmationSpec)
        self.spec = rule.spec
        self.questions = _matcher(self.spec.questions, rule, normalizer, embedder)
        self.explicit = _matcher(self.spec.explicit, rule, normalizer, None)
        self.weak_yes = _matcher(self.spec.weak_yes, rule, normalizer, None) if self.spec.weak_yes else None
        self.hedges = _matcher(self.spec.hedges, rule, normalizer, None) if self.spec.hedges else None
        self.negative = _matcher(self.spec.negative, rule, normalizer, None) if self.spec.negative else None
        self.proceed = _matcher(self.spec.proceed, rule, normalizer, None) if self.spec.proceed else None
        self.backchannels = (_matcher(self.spec.backchannels, rule, normalizer, None)
                             if self.spec.backchannels else None)
        self.item: _Item | None = None

    def classify(self, turn: Turn) -> str:
        """explicit | hedge | backchannel | other for a customer's reply turn.

        Only `backchannel` and `hedge` replies are violations when the agent proceeds; `other` (a question, or
        words ASR garbled beyond recognition) never is, so a misrecognised "是的" does not raise a finding.
        """
        nt = turn.nt
        if nt is None or not nt.tokens:
            return "backchannel"
        if self.negative and self.negative.find(nt):
            return "hedge"
        if self.hedges and self.hedges.find(nt):
            return "hedge"
        if self.explicit.find(nt) or (self.weak_yes and self.weak_yes.find(nt)):
            return "explicit"
        if self.backchannels:
            covered: set[int] = set()
            for m in self.backchannels.find(nt):
                covered.update(i for i, t in enumerate(nt.tokens) if t.start >= m.start and t.end <= m.end)
            if len(covered) == len(nt.tokens):
                return "backchannel"
        return "other"

    def _proceed_phrase(self, ctx: SegmentContext) -> bool:
        return bool(self.proceed and ctx.turn.nt and new_matches(self.proceed.find(ctx.turn.nt), ctx.offset))

    def _proceeds(self, ctx: SegmentContext) -> bool:
        if self._proceed_phrase(ctx):
            return True
        if self.spec.proceed_event:
            st = self.state.events.get((self.pack.id, self.spec.proceed_event))
            if st and st.occurrences and st.occurrences[-1][0] == ctx.turn.index:
                return True
        return False

    def _report_reply(self, item: _Item) -> list[Finding]:
        turn, _cls = item.replies[-1]
        self.item = None
        return [self.finding(f"{self.rule.title}: no explicit answer", [turn.whole_evidence()])]

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        turn = ctx.turn
        if turn.speaker == "customer":
            return self._on_customer(turn)
        if turn.speaker == "agent" and turn.nt is not None:
            return self._on_agent(ctx)
        return []

    def _on_customer(self, turn: Turn) -> list[Finding]:
        item = self.item
        if item is None:
            return []
        if item.agent_moved_on and item.replies and item.replies[-1][0] is not turn:
            # The agent went on after a weak answer and the conversation continued: the item stayed unconfirmed.
            if item.replies[-1][1] in ("backchannel", "hedge"):
                return self._report_reply(item)
            self.item = None
            return []
        cls = self.classify(turn)
        if cls == "explicit":
            self.item = None
            return []
        if item.replies and item.replies[-1][0] is turn:
            item.replies[-1] = (turn, cls)
        else:
            item.replies.append((turn, cls))
        return []

    def _on_agent(self, ctx: SegmentContext) -> list[Finding]:
        assert ctx.turn.nt is not None
        item = self.item
        is_question = bool(new_matches(self.questions.find(ctx.turn.nt), ctx.offset))
        if item is None:
            if is_question:
                self.item = _Item(ctx.event.end_s)
            return []
        if not item.replies:
            # Nothing from the customer was transcribed. ASR drops short replies (嗯, but also 是的), so the
            # silent gap is reported only on stronger evidence: the agent had to ask again, or proceeded with
            # an explicit "I'll take that as a yes" style phrase.
            gap = ctx.event.start_s - item.question_end_s
            if is_question:
                if gap >= self.spec.min_gap_s:
                    item.asks += 1
                item.question_end_s = ctx.event.end_s
            elif gap >= self.spec.min_gap_s and (
                (item.asks >= 2 and self._proceeds(ctx)) or self._proceed_phrase(ctx)
            ):
                self.item = None
                channel = 1 - ctx.event.channel if ctx.event.channel in (0, 1) else ctx.event.channel
                gap_ev = Evidence(f"{ctx.event.segment_id}#gap", channel, round(item.question_end_s, 3),
                                  round(ctx.event.start_s, 3), "")
                return [self.finding(f"{self.rule.title}: agent proceeded without an answer", [gap_ev])]
            return []
        if is_question:
            item.question_end_s = ctx.event.end_s
            item.asks += 1
            item.agent_moved_on = False
            return []
        if self._proceeds(ctx):
            if item.replies[-1][1] in ("backchannel", "hedge"):
                return self._report_reply(item)
            self.item = None  # an unclear ("other") reply is not evidence of a missing confirmation
            return []
        item.agent_moved_on = True
        return []

    def finish(self, end_s: float) -> list[Finding]:
        item = self.item
        if item and item.agent_moved_on and item.replies and item.replies[-1][1] in ("backchannel", "hedge"):
            return self._report_reply(item)
        return []


class CardNumberRunner(Runner):
    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, CardNumberSpec)
        self.spec = rule.spec
        self.reported: set[tuple[int, str]] = set()

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        turn = ctx.turn
        if not speaker_ok(self.spec.speaker, turn.speaker):
            return []
        out = []
        for s in find_card_numbers(turn.text, allow_unverified=self.spec.allow_unverified):
            if s.end <= ctx.offset or (turn.index, s.value[-4:]) in self.reported:
                continue
            self.reported.add((turn.index, s.value[-4:]))
            note = "Luhn-valid" if s.luhn_valid else "16 digits near 'card', Luhn failed"
            out.append(self.finding(f"{self.rule.title} ({note})", [turn.evidence(s.start, s.end)]))
        return out


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
            runs = [r for r in digit_runs(turn.text) if r[-1].end > ctx.offset]
            if len(runs) == 1 and 3 <= len("".join(p.digits for p in runs[0])) <= 4 and not pans:
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
        self.refusal = PhraseMatcher(self.spec.refusal, normalizer, rule.match) if self.spec.refusal else None
        self.reported = False

    def _levels(self, turn: Turn, table: list[tuple[int, PhraseMatcher]]) -> list[tuple[int, Match]]:
        assert turn.nt is not None
        found = [(level, m) for level, matcher in table for m in matcher.find(turn.nt) if not is_negated(turn.nt, m)]
        kept = _longest_first([m for _, m in found])
        return [(level, m) for level, m in found if m in kept]

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        turn = ctx.turn
        if self.reported or not speaker_ok(self.spec.speaker, turn.speaker) or turn.nt is None:
            return []
        product = [x for x in self._levels(turn, self.product) if x[1].end > ctx.offset]
        if not product:
            return []
        window = [t for t in self.state.turns[: turn.index + 1] if speaker_ok(self.spec.speaker, t.speaker)]
        window = window[-self.spec.window_turns :]
        profile: list[tuple[int, Match, Turn]] = []
        for t in window:
            profile.extend((lvl, m, t) for lvl, m in self._levels(t, self.profile))
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
        self.reported = True
        evidence = [turn.evidence(prod_match.start, prod_match.end)]
        if prof_turn is turn:
            lo, hi = min(prof_match.start, prod_match.start), max(prof_match.end, prod_match.end)
            evidence = [turn.evidence(lo, hi)]
        else:
            evidence.append(prof_turn.evidence(prof_match.start, prof_match.end))
        return [self.finding(f"{self.rule.title}: profile level {prof_level} < product level {prod_level}", evidence)]


def _is_grade(phrase: str) -> bool:
    """True for level codes such as R4, C2, 四级, 4级 or 'risk rating 5' (not for 中高风险 / high-risk)."""
    p = phrase.lower()
    return "级" in p or any(ch.isdigit() for ch in p) or "rating" in p or "level" in p


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


def build_runner(rule: Rule, pack: PolicyPack, state: CallState, normalizer: TextNormalizer,
                 embedder: Embedder | None) -> Runner:
    """The runner for a rule's kind."""
    spec = rule.spec
    if isinstance(spec, ProhibitedPhraseSpec):
        return ProhibitedPhraseRunner(rule, pack, state, normalizer, embedder)
    if isinstance(spec, RequiredPhraseSpec):
        return RequiredPhraseRunner(rule, pack, state, normalizer, embedder)
    if isinstance(spec, OrderedStepsSpec):
        return OrderedStepsRunner(rule, pack, state)
    if isinstance(spec, ConfirmationSpec):
        return ConfirmationRunner(rule, pack, state, normalizer, embedder)
    if isinstance(spec, CardNumberSpec):
        return CardNumberRunner(rule, pack, state)
    if isinstance(spec, CvvSpec):
        return CvvRunner(rule, pack, state)
    if isinstance(spec, PiiSpec):
        return PiiRunner(rule, pack, state)
    if isinstance(spec, RiskMismatchSpec):
        return RiskMismatchRunner(rule, pack, state, normalizer)
    if isinstance(spec, SilenceSpec):
        return SilenceRunner(rule, pack, state, normalizer)
    if isinstance(spec, OvertalkSpec):
        return OvertalkRunner(rule, pack, state)
    if isinstance(spec, AnnotationSpec):
        return AnnotationRunner(rule, pack, state)
    raise ValueError(f"no runner for rule kind {rule.kind!r}")
