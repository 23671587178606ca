"""The explicit-confirmation rule: a customer's answer to a confirmation question must be a clear yes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from intelligence.compliance.matching import Embedder, is_negated
from intelligence.compliance.rules import ConfirmationSpec, PolicyPack, Rule
from intelligence.compliance.runner_base import Runner, SegmentContext, matcher_for, new_matches, recent
from intelligence.compliance.state import CallState, Turn
from intelligence.compliance.text import NormText, TextNormalizer
from intelligence.types import Evidence, Finding

# Probability the reply head must give a hedge, refusal or backchannel before a reply no phrase list explains
# counts as one (its macro-F1 on unseen styles is 0.76: only confident answers are used)
REPLY_MEANING_MIN = 0.8


_SENTENCE_END_RE = re.compile(r"[.!。！]")
_CLAUSE_END_RE = re.compile(r"[,，、.!。！…]")
_QUESTION_RE = re.compile(r"[?？]")
_ECHO_MAX_CHARS = 12  # an echo after a backchannel is a few words ("说明书啊", "the forms"), not an answer
# Replies that leave a confirmation open when the agent proceeds: a backchannel, a hedge or refusal, a question back.
WEAK_REPLIES = ("backchannel", "hedge", "question")
# What a confirmation question asks the customer to confirm. A question about another of these, after a weak
# answer, is a new item (the agent moved on); one about the same, or asking for a clear answer, asks again.
_TOPIC_RE = re.compile(r"阅读|看过|理解|明白|清楚|了解|知晓|同意|自愿|确认|风险|损失|\b(?:read|understood|understand|"
                       r"agree|accept|consent|clear|happy|risks?|exclu\w*|terms|conditions)\b", re.IGNORECASE)
_QUOTE = "[\u2018\u2019\u201c\u201d\"']?"
_ASK_AGAIN_RE = re.compile(r"明确|是或者否|是还是否|再问|亲口|(?:得|要|需要|麻烦)您(?:亲口)?(?:说|回答|讲)一下|您(?:说|回答)一下"
                           r"|\b(?:clear answer|yes or no|again|just to be clear|clearly|in your own words|hear it|"
                           r"hear you say|need you to say|out loud)\b",
                           re.IGNORECASE)
# the agent coaching the answer (您就说'是'就行, "just say yes"): the question is still open, not moved on from
_COACH_RE = re.compile(f"说{_QUOTE}(是|对|同意|确认|理解){_QUOTE}就(行|可以|好)"
                       + r"|\bjust say (yes|i (do|agree|understand))\b", re.IGNORECASE)


# a yes asked as a rhetorical question: 有啥不同意的, 介有嘛不明白的, "why wouldn't I agree"
_RHETORICAL_YES_RE = re.compile(r"(?:(?:有|还有)(?:啥|嘛|什么|么|哈)(?:好|可)?|没有|没啥|没什么)不(?:同意|愿意|明白|清楚|理解|可以|行)的"
                                r"|\bwhy (?:wouldn't|would not) i\b", re.IGNORECASE)
_HESITANT_RE = re.compile(r"^\W*(?:嗯|呃|额|唔|啊|um+|uh+|er+|erm|hmm+|mm+|well)\W*(?:…|\.\.\.|⋯)", re.IGNORECASE)


# Below this similarity a question that shares a topic word with the open one still asks something else:
# "是否阅读并理解…风险揭示书" then "是否了解本产品可能损失本金，并愿意承担相应的风险" share 风险, not the question
_SAME_QUESTION_MIN_RATIO = 0.5


_CJK_RE = re.compile(r"[\u4e00-\u9fff]")


def _another_question(previous: str, text: str) -> bool:
    """True if `text` asks a different question from `previous`: little of the wording repeats and most of what
    it asks about is new ("do you understand the terms and want to go ahead?" asked again as "tell me whether you
    understand the terms and agree to take the loan" is the same question)."""
    if not previous:
        return False
    before, now = question_topics(previous), question_topics(text)
    if before and now and len(before & now) * 2 >= len(before | now):
        return False
    a, b = previous.lower(), text.lower()
    if _CJK_RE.search(a + b):  # Chinese: compare characters
        return SequenceMatcher(None, a, b, autojunk=False).ratio() < _SAME_QUESTION_MIN_RATIO
    return SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio() < _SAME_QUESTION_MIN_RATIO


def question_topics(text: str) -> frozenset[str]:
    """The things a confirmation question asks about (阅读, 同意, understand, ...), lowercased."""
    return frozenset(m.group(0).lower() for m in _TOPIC_RE.finditer(text))


def _split_first_clause(text: str) -> tuple[str, str]:
    """The first clause of a reply (up to a comma or sentence mark) and the rest."""
    m = _CLAUSE_END_RE.search(text)
    if m is None:
        return text.strip(), ""
    return text[: m.start()].strip(), text[m.end() :].strip()


def _split_first_sentence(text: str) -> tuple[str, str]:
    """The first sentence of a reply and the rest ("" when there is one sentence)."""
    m = _SENTENCE_END_RE.search(text)
    if m is None:
        return text.strip(), ""
    return text[: m.start()].strip(), text[m.end() :].strip()


@dataclass
class _Item:
    """An open confirmation question and what the customer said since."""

    question_end_s: float
    replies: list[tuple[Turn, str]] = field(default_factory=list)
    asks: int = 1
    agent_moved_on: bool = False
    asked_in_turn: int | None = None  # the agent turn that last asked the question
    topics: frozenset[str] = frozenset()  # what the question asks about (question_topics)
    question: str = ""  # the text of the question as last asked


class ConfirmationRunner(Runner):
    """Explicit customer confirmation after a confirmation question ("do you understand...", 是否已阅读并理解).

    Each customer reply turn is classed `explicit` (yes / I confirm / 是的 / 已阅读并理解, no hedging), `hedge`
    (I guess, 差不多吧, or a negative such as 不明白), `backchannel` (a short 嗯 / mm / okay, also with a short
    echo: 哦，说明书啊), `question` (a question back with no answer: 那你说呢？) or `other` (words ASR garbled,
    unrelated words). The item closes on an explicit reply. It is reported, at the customer's
    last reply, when the agent proceeds anyway after a backchannel, hedge or question back (a proceed phrase, or the
    proceed event, e.g. the signature), when the agent says it assumes consent ("I'll take that as a yes") whatever
    the reply looked like, or, after a weak reply, when the agent moves on and the customer speaks again without
    the question being asked again (after a question back, a clear yes then confirms). Asking again, or coaching
    the answer (您就说'是'就行), keeps the item open. An agent who records consent right after a weak reply with no
    question asked at all ("I'll put you down as a yes" after "I guess") is reported too.
    If nothing from the customer was transcribed, the silent gap is reported only on strong evidence.
    """

    def __init__(self, rule: Rule, pack: PolicyPack, state: CallState, normalizer: TextNormalizer,
                 embedder: Embedder | None) -> None:
        super().__init__(rule, pack, state)
        assert isinstance(rule.spec, ConfirmationSpec)
        self.spec = rule.spec
        self._normalizer = normalizer
        self.questions = matcher_for(self.spec.questions, rule, normalizer, embedder)
        self.explicit = matcher_for(self.spec.explicit, rule, normalizer, None)
        self.weak_yes = matcher_for(self.spec.weak_yes, rule, normalizer, None) if self.spec.weak_yes else None
        self.hedges = matcher_for(self.spec.hedges, rule, normalizer, None) if self.spec.hedges else None
        self.negative = matcher_for(self.spec.negative, rule, normalizer, None) if self.spec.negative else None
        self.proceed = matcher_for(self.spec.proceed, rule, normalizer, None) if self.spec.proceed else None
        self.assumed = matcher_for(self.spec.assumed, rule, normalizer, None) if self.spec.assumed else None
        self.backchannels = (matcher_for(self.spec.backchannels, rule, normalizer, None)
                             if self.spec.backchannels else None)
        self.item: _Item | None = None
        self._last_reply: Turn | None = None  # the customer's last turn while no question was open
        self._clauses = normalizer.clause_scorer

    def classify(self, turn: Turn) -> str:
        """explicit | hedge | backchannel | question | other for a customer's reply turn.

        Only `backchannel`, `hedge` and `question` replies are violations when the agent proceeds; `other` (words
        ASR garbled beyond recognition) never is, so a misrecognised "是的" does not raise a finding.
        """
        nt = turn.nt
        if nt is None or not nt.tokens:
            return "backchannel"
        if _RHETORICAL_YES_RE.search(turn.text):  # 同意，介有嘛不同意的 ("what's there not to agree to")
            return "explicit"
        if self.negative and self.negative.find(nt):
            return "hedge"
        hedges = self.hedges.find(nt) if self.hedges else []
        explicit = [m for m in self.explicit.find(nt) if not is_negated(nt, m)]  # 眼神不好 is no 好
        # a hedge heard only by its sound does not outweigh a clear word (同意，你录吧 is not 你弄吧)
        if any(m.method in ("exact", "regex") for m in hedges) or (
                hedges and not any(m.method in ("exact", "regex") for m in explicit)):
            return "hedge"
        if explicit:
            return "explicit"
        weak = [m for m in (self.weak_yes.find(nt) if self.weak_yes else []) if not is_negated(nt, m)]
        if weak:
            # "嗯……行。", "Um... yeah.": a yes after a trailing hesitation is not a clear answer
            return "hedge" if _HESITANT_RE.search(turn.text) else "explicit"
        if self.backchannels:
            if self._only_backchannels(nt):
                return "backchannel"
            # "Mm-hmm. Sofia, put that down, please.": a bare backchannel, then words to someone else (no
            # question back, nothing that confirms)
            first, rest = _split_first_sentence(turn.text)
            if first and rest and not _QUESTION_RE.search(rest) and self._only_backchannels(first):
                return "backchannel"
            # "哦，说明书啊": a backchannel clause and an echo of the agent's words, no answer and no question
            first, rest = _split_first_clause(turn.text)
            if (first and rest and len(rest) <= _ECHO_MAX_CHARS and not _QUESTION_RE.search(rest)
                    and self._only_backchannels(first)):
                return "backchannel"
        if _QUESTION_RE.search(turn.text):
            # "那你说呢？", "Why do you need me to say this?": a question back answers nothing
            return "question"
        return self._classify_by_meaning(turn.text)

    def _only_backchannels(self, text: NormText | str) -> bool:
        """True if backchannel phrases cover every token of the text (嗯嗯, "mm-hmm, okay")."""
        assert self.backchannels is not None
        nt = self._normalizer.normalize(text) if isinstance(text, str) else text
        covered = {i for m in self.backchannels.find(nt) for i, t in enumerate(nt.tokens)
                   if t.start >= m.start and t.end <= m.end}
        return bool(nt.tokens) and len(covered) == len(nt.tokens)

    def _classify_by_meaning(self, text: str) -> str:
        """A reply no listed phrase explains, read by the clause detectors' reply head: only a confident hedge,
        refusal or backchannel counts ("you people know best", "if you say so"); anything else stays `other`."""
        if self._clauses is None or not text.strip():
            return "other"
        found = self._clauses.hits([text.strip()])[0]
        for reply, cls in (("reply:hedge", "hedge"), ("reply:refusal", "hedge"), ("reply:backchannel", "backchannel"),
                           ("reply:explicit_yes", "explicit")):
            if found.get(reply, 0.0) >= REPLY_MEANING_MIN:
                return cls
        return "other"

    def _assumes_consent(self, ctx: SegmentContext) -> bool:
        return bool(self.assumed and ctx.turn.nt and new_matches(self.assumed.find(recent(ctx.turn.nt, ctx.offset)), ctx.offset))

    def _proceeds(self, ctx: SegmentContext) -> bool:
        if self._assumes_consent(ctx):
            return True
        if self.proceed and ctx.turn.nt and new_matches(self.proceed.find(recent(ctx.turn.nt, ctx.offset)), ctx.offset):
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
            self._last_reply = turn  # for an agent who records a yes nobody was asked for
            return []
        if item.agent_moved_on and item.replies and item.replies[-1][0] is not turn:
            # The agent went on after a weak answer and the conversation continued: the item stayed unconfirmed.
            # After a question back the agent's next words are usually the answer, and a clear yes then confirms.
            last = item.replies[-1][1]
            if last == "question" and self.classify(turn) == "explicit":
                self.item = None
                return []
            if last in WEAK_REPLIES:
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
        is_question = bool(new_matches(self.questions.find(recent(ctx.turn.nt, ctx.offset)), ctx.offset))
        if item is None:
            if is_question:
                self.item = _Item(ctx.event.end_s, topics=question_topics(ctx.event.text), question=ctx.event.text)
                self._last_reply = None
            elif (self._last_reply is not None and self._last_reply.index == ctx.turn.index - 1
                  and self._assumes_consent(ctx)):
                # "I'll put you down as a yes" after "I guess, if everybody gets it": consent recorded from a
                # hedge, with no confirmation question at all
                reply, self._last_reply = self._last_reply, None
                # (a question back with no question asked is small talk: 是我，弄啥嘞？ at the start of a call)
                if self.classify(reply) in ("backchannel", "hedge"):
                    return [self.finding(f"{self.rule.title}: no explicit answer", [reply.whole_evidence()])]
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
                (item.asks >= 2 and self._proceeds(ctx)) or self._assumes_consent(ctx)
            ):
                self.item = None
                channel = 1 - ctx.event.channel if ctx.event.channel in (0, 1) else ctx.event.channel
                gap_ev = Evidence(f"{ctx.event.segment_id}#gap", channel, round(item.question_end_s, 3),
                                  round(ctx.event.start_s, 3), "")
                return [self.finding(f"{self.rule.title}: agent proceeded without an answer", [gap_ev])]
            return []
        if is_question:
            topics = question_topics(ctx.event.text)
            if (item.replies[-1][1] in WEAK_REPLIES and topics and item.topics
                    and (not topics & item.topics
                         # (after a question back, the agent answers it and asks again in other words)
                         or (item.replies[-1][1] != "question" and _another_question(item.question, ctx.event.text)))
                    and not _ASK_AGAIN_RE.search(ctx.turn.text)):
                # "第二个问题，您是否同意…" after a 你说了算 to "是否已阅读并理解": the first item was left unconfirmed
                found = self._report_reply(item)
                self.item = _Item(ctx.event.end_s, topics=topics, question=ctx.event.text)
                return found
            item.question_end_s = ctx.event.end_s
            item.asks += 1
            item.agent_moved_on = False
            item.asked_in_turn = ctx.turn.index
            item.topics |= topics
            if topics:  # ("这个问题需要您明确回答是或者否。" asks for an answer, not a new question)
                item.question = ctx.event.text
            return []
        if item.asked_in_turn == ctx.turn.index and not self._proceeds(ctx):
            return []  # the rest of the turn that asked again ("...是否已经阅读并理解？没看明白的话我们再看一遍。")
        if self._proceeds(ctx):
            if item.replies[-1][1] in WEAK_REPLIES or self._assumes_consent(ctx):
                return self._report_reply(item)
            self.item = None  # an unclear ("other") reply is not evidence of a missing confirmation
            return []
        if _COACH_RE.search(ctx.event.text):
            item.asks += 1
            item.agent_moved_on = False
            item.asked_in_turn = ctx.turn.index
            return []
        item.agent_moved_on = True
        return []

    def finish(self, end_s: float) -> list[Finding]:
        item = self.item
        if item and item.agent_moved_on and item.replies and item.replies[-1][1] in WEAK_REPLIES:
            return self._report_reply(item)
        return []
