"""Rule runners: one small class per rule kind, holding that rule's per-session state.

A runner sees each final segment after the engine has added it to its turn and updated events and
contexts (`on_segment`), each classifier annotation (`on_annotation`) and the end of the call (`finish`).
Runners return findings; they never raise on purpose (the engine catches, reports and disables a runner
that does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from intelligence.compliance.confirmation import ConfirmationRunner
from intelligence.compliance.matching import Embedder, Match, PhraseMatcher, crosses_clause, is_negated
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
from intelligence.compliance.runner_base import (
    ReportedSpans,
    Runner,
    SegmentContext,
    in_excluded_clause,
    in_question,
    matcher_for,
    new_matches,
    recent,
    speaker_ok,
)
from intelligence.compliance.signal_runners import (
    AnnotationRunner,
    CardNumberRunner,
    CvvRunner,
    OvertalkRunner,
    PiiRunner,
    RiskMismatchRunner,
    SilenceRunner,
)
from intelligence.compliance.state import CallState, EventState, Turn
from intelligence.compliance.text import NormText, TextNormalizer, fuzzy_parts
from intelligence.types import Evidence, Finding

__all__ = ["EventTracker", "Runner", "SegmentContext", "build_runner", "new_matches", "speaker_ok"]


class ProhibitedPhraseRunner(Runner):
    """One finding per distinct claim (phrase group) per turn; negated phrases do not count."""

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState, normalizer: TextNormalizer,
                 embedder: Embedder | None) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, ProhibitedPhraseSpec)
        self.spec = rule.spec
        # Listed phrases first; a meaning-only group (`clause:` phrases) speaks only for a turn that no other
        # group of this rule reported: it finds the claim nobody listed, not a second copy of a listed one.
        groups = sorted(self.spec.groups, key=lambda g: _meaning_only(g.phrases))
        self.groups = [(g, matcher_for(g.phrases, rule, normalizer, embedder, g.examples)) for g in groups]
        self.meaning_groups = {g.name for g in self.spec.groups if _meaning_only(g.phrases)}
        self.exclude = matcher_for(self.spec.exclude, rule, normalizer, None) if self.spec.exclude else None
        self.reported: set[tuple[int, str]] = set()
        # words that two groups both name are one claim, not two
        self.spans = ReportedSpans()
        # Claims heard before the call showed what it sells ("it's really just a savings account", said before
        # the agent names the bond fund): held until the context appears, and reported then.
        self.pending: dict[tuple[int, str], tuple[str, Evidence]] = {}

    def _flush_pending(self) -> list[Finding]:
        out = []
        for (turn_index, name), (context, evidence) in list(self.pending.items()):
            if not self.state.context_seen(self.pack.id, context):
                continue
            del self.pending[(turn_index, name)]
            if self._already(turn_index, name):
                continue
            self.reported.add((turn_index, name))
            out.append(self.finding(f"{self.rule.title} ({name})", [evidence]))
        return out

    def _already(self, turn_index: int, name: str) -> bool:
        return (turn_index, name) in self.reported or any(
            t == turn_index and (name in self.meaning_groups or n in self.meaning_groups) for t, n in self.reported)

    def finish(self, end_s: float) -> list[Finding]:
        return self._flush_pending()

    def on_segment(self, ctx: SegmentContext) -> list[Finding]:
        out = self._flush_pending() if self.pending else []
        turn = ctx.turn
        if not speaker_ok(self.spec.speaker, turn.speaker) or turn.nt is None:
            return out
        nt = turn.nt
        near = recent(nt, ctx.offset)
        excluded = self.exclude.find(near) if self.exclude else []
        for group, matcher in self.groups:
            if self._already(turn.index, group.name):
                continue
            waiting = bool(group.requires_context) and not self.state.context_seen(self.pack.id,
                                                                                  group.requires_context)
            if waiting and (turn.index, group.name) in self.pending:
                continue
            hits = [
                m for m in new_matches(matcher.find(near), ctx.offset)
                if not (self.spec.negation and is_negated(nt, m))
                and not crosses_clause(nt.original, m)
                and not in_excluded_clause(nt.original, m, excluded)
                and (self.state.roles_known or self.spec.match_questions or not in_question(nt.original, m))
                and not self.spans.taken(turn.index, m.start, m.end)
            ]
            if not hits:
                continue
            best = max(hits, key=lambda m: (m.score, m.end - m.start))
            self.spans.add(turn.index, best.start, best.end)
            if waiting:
                assert group.requires_context is not None
                self.pending[(turn.index, group.name)] = (group.requires_context, turn.evidence(*best.quote))
                continue
            self.reported.add((turn.index, group.name))
            out.append(self.finding(f"{self.rule.title} ({group.name})", [turn.evidence(*best.quote)]))
        return out


# Deposit products: a sentence about one (a GIC's guaranteed rate, an insured CD) is not a context of a sale.
_DEPOSIT_RE = re.compile(
    r"\b(?:gics?|cds?|certificates? of deposit|term deposits?|share certificates?|savings accounts?|savings bonds?"
    r"|fixed[- ](?:rate|term) (?:savings )?bonds?|fdic|ncua|cdic|fscs|deposit insurance|deposit guarantee)\b"
    r"|大额存单|定期存款|存款保险|储蓄国债|国债",
    re.IGNORECASE)


_DEPOSIT_PRODUCT_RE = re.compile(
    r"\b(?:gics?|cds?|certificates? of deposit|term deposits?|share certificates?"
    r"|fixed[- ](?:rate|term) (?:savings )?bonds?)\b|大额存单|定期存款|储蓄国债",
    re.IGNORECASE)


def _about_a_deposit(text: str, m: Match) -> bool:
    """True if the sentence of the match talks about a deposit product ("a GIC or a mutual fund", "insured by the
    CDIC"): such a sentence does not show that the call sells an investment, insurance or credit."""
    lo = max((x.end() for x in _SENTENCE_END_RE.finditer(text, 0, m.start)), default=0)
    hi = next((x.start() for x in _SENTENCE_END_RE.finditer(text, m.end)), len(text))
    # "it's an insurance contract, not a bank deposit, and it isn't FDIC insured" is a disclosure, not a deposit
    if any(not _DEPOSIT_DENIED_RE.search(text[max(lo, d.start() - 16) : d.start()])
           for d in _DEPOSIT_RE.finditer(text, lo, hi)):
        return True
    # a deposit product named earlier in the turn is still the subject ("Your term deposit matures on the
    # fourteenth. If you roll it over, the rate is 4.6%.")
    return any(not _DEPOSIT_DENIED_RE.search(text[max(0, d.start() - 16) : d.start()])
               for d in _DEPOSIT_PRODUCT_RE.finditer(text, 0, lo))


_SENTENCE_END_RE = re.compile(r"[.!?。！？](?!\d)")
# ("No, this is a term deposit" answers a question: a bare "no" negates only the word right after it)
_DEPOSIT_DENIED_RE = re.compile(r"(?:(?:\bnot|n't|\bnor|\bnever|不是|并非|非|不受|不属于|没有)[^.!?。！？]{0,12}|\bno\s+)$",
                                re.IGNORECASE)
# what the product is not ("not an investment", "can't lose money"); a "don't" right before a statement denies
# nothing ("Don't, the loan is finalised" is ASR's "Done, ...")
_DENIAL_RE = re.compile(r"(?:\bnot|(?<!\bdo)n't|\bnever|\bunlike|\brather than|\binstead of|不是|并非|并不是|非|"
                        r"不同于|不像)\s*"
                        r"(?:an?|the|your|a kind of)?\s*$", re.IGNORECASE)


def _denied(text: str, m: Match) -> bool:
    """True if the text says the product is not this ("a deposit, not an investment", 不是理财): such a mention
    does not make the call about it, while "I don't want to invest" still does."""
    return m.method != "meaning" and _DENIAL_RE.search(text[max(0, m.start - 20) : m.start]) is not None


def _meaning_only(phrases: Sequence[str]) -> bool:
    return bool(phrases) and all(p.startswith("clause:") for p in phrases)


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
        self.not_near = {ev.name: PhraseMatcher(ev.not_near, normalizer) for ev in pack.events if ev.not_near}

    def _near_exception(self, ev_name: str, turn: Turn) -> bool:
        """True if a `not_near` phrase of the event was said in `turn` or the two turns before it."""
        matcher = self.not_near.get(ev_name)
        if matcher is None:
            return False
        recent_turns = self.state.turns[max(0, turn.index - 2) : turn.index + 1]
        return any(t.nt is not None and matcher.find(t.nt) for t in recent_turns)

    def update(self, ctx: SegmentContext, language: str) -> None:
        turn = ctx.turn
        nt = turn.nt
        if nt is None:
            return
        near = recent(nt, ctx.offset)
        for name, matcher in self.context_matchers.items():
            # what the call sells is what the agent presents: a customer's "my dad lost money in the stock market"
            # does not turn a certificate-of-deposit call into an investment sale
            if self.state.roles_known and turn.speaker == "customer":
                continue
            if not self.state.context_seen(self.pack.id, name):
                # "it's a deposit, not an investment" says what the product is not
                hits = [m for m in new_matches(matcher.find(near), ctx.offset) if not _denied(nt.original, m)
                        and not _about_a_deposit(nt.original, m)]
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
                if alt.within_turns is not None and turn.index >= alt.within_turns:
                    continue
                new_in_seg: Evidence | None = None
                new_span: tuple[int, int] | None = None
                for el, matcher in zip(alt.elements, matchers, strict=True):
                    hits = [m for m in new_matches(matcher.find(near), ctx.offset) if not _denied(nt.original, m)
                            and not (ev.skip_questions and in_question(nt.original, m))]
                    if hits:
                        evidence = turn.evidence(hits[0].start, hits[0].end)
                        st.hits.setdefault((a, el.name), evidence)
                        new_in_seg = new_in_seg or evidence
                        if new_span is None or hits[0].start > new_span[0]:  # the element that completes it
                            new_span = (hits[0].start, hits[0].end)
                count = sum(1 for (alt_i, _), _ev in st.hits.items() if alt_i == a)
                if count >= alt.min_elements and new_in_seg is not None and self._near_exception(ev.name, turn):
                    for el in alt.elements:  # not this moment: forget the hits it would have counted
                        if st.hits.get((a, el.name)) is new_in_seg:
                            del st.hits[(a, el.name)]
                    continue
                if count >= alt.min_elements and new_in_seg is not None:
                    if st.first_turn is None:
                        st.first_turn, st.first_evidence = turn.index, new_in_seg
                        st.first_seq = self.state.segments_seen
                        st.first_span = new_span
                    if not st.occurrences or st.occurrences[-1][0] != turn.index:
                        st.occurrences.append((turn.index, new_in_seg))


class RequiredPhraseRunner(Runner):
    """Reports an absent disclosure when its deadline passes (or at the end of the call)."""

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState, normalizer: TextNormalizer,
                 embedder: Embedder | None) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, RequiredPhraseSpec)
        self.spec = rule.spec
        self.matchers = [matcher_for(el.phrases, rule, normalizer, embedder) for el in self.spec.elements]
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
        near = recent(nt, ctx.offset)
        for i, matcher in enumerate(self.matchers):
            if i not in self.hits and any(not is_negated(nt, m)
                                          for m in new_matches(matcher.find(near), ctx.offset)):
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
                if lt and lt.first_seq is not None and lt.first_evidence and (
                        lt.first_seq < now or self._earlier_in_segment(lt, st, ctx.turn.text)):
                    self.reported.add(step)
                    out.append(self.finding(f"{self.rule.title}: '{step}' came after '{later}'",
                                            [st.first_evidence, lt.first_evidence]))
                    break
        return out

    @staticmethod
    def _earlier_in_segment(later: EventState, step: EventState, text: str) -> bool:
        """Both first heard in this segment, the later step in an earlier clause ("30万认购成功，那我再补充说明一下，
        理财不是存款…" recognised as one segment); not a step announced ahead ("请您签字前，我先说明…")."""
        if later.first_seq != step.first_seq or later.first_span is None or step.first_span is None:
            return False
        (_ls, le), (ss, _se) = later.first_span, step.first_span
        return le <= ss and _CLAUSE_MARK_RE.search(text, le, ss) is not None and not _AHEAD_RE.match(text, le)


_CLAUSE_MARK_RE = re.compile(r"[，。；！,.;!]")
_AHEAD_RE = re.compile(r"\s*(前|之前|以前|before|first)", re.IGNORECASE)


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
