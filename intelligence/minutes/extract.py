"""Decisions, action items and open questions from a session's utterances (rule-based cues, English and Mandarin).

Every item comes from one sentence as said (its evidence), so an auditor can check it against the transcript.
The rules favour precision: a request with neither an addressee nor a due date ("can you share your screen?") is
not an action item, a hypothetical or negated cue ("if we decide…", "我们还没决定") is not a decision, and a
question counts as open only when nobody answered it.

Nothing here logs: the inputs are transcript text (personal data).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from intelligence.minutes.types import ActionItem, Decision, MinutesUtterance, OpenQuestion
from intelligence.text import has_cjk, to_simplified

__all__ = ["action_items", "decisions", "open_questions"]

# A reply this long after a question still counts as its answer; a proposal this old can still be confirmed.
_REPLY_WINDOW_S = 30.0

_HAN = r"\u4e00-\u9fff"
_EN_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
# Without "may", which is far more often the verb ("we may have to…") than the month.
_EN_MONTH_NAME = r"(?:january|february|march|april|june|july|august|september|october|november|december)"

# Owner placeholders until the speaker / the person who took the request on is known.
_SPEAKER = "\x00speaker"
_ADDRESSEE = "\x00addressee"


@dataclass(frozen=True)
class _Sent:
    """One sentence of an utterance."""

    idx: int  # index of its utterance in time order
    text: str  # as said, stripped (the evidence shown to people)
    key: str  # matching form: simplified Chinese, straight apostrophes, single spaces
    zh: bool
    speaker: str
    start_s: float
    end_s: float


# --------------------------------------------------------------------------------------------------------- sentences

# Whisper often writes Mandarin with spaces where the pauses are, and no punctuation: a space between two Chinese
# characters ends a sentence too.
_SENT_SPLIT = re.compile(rf"(?<=[。！？；])|(?<=[.!?;])\s+|(?<=[{_HAN}])\s+(?=[{_HAN}])")


def _key(text: str) -> str:
    t = to_simplified(text).replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"\s+", " ", t).strip()


def _prepare(utts: Sequence[MinutesUtterance]) -> tuple[list[MinutesUtterance], list[list[_Sent]]]:
    """Utterances in time order and, for each, its sentences."""
    order = sorted(utts, key=lambda u: (u.start_s, u.end_s))
    out: list[list[_Sent]] = []
    for i, u in enumerate(order):
        parts = [p.strip() for p in _SENT_SPLIT.split(u.text or "") if p and p.strip()]
        out.append([_Sent(i, p, _key(p), has_cjk(p), u.speaker, u.start_s, u.end_s) for p in parts])
    return order, out


def _is_question(s: _Sent) -> bool:
    k = s.key.rstrip()
    if k.endswith(("?", "？")):
        return True
    # Mandarin ASR often drops the question mark; a final particle still marks the question (呢 only after a
    # question word: "谁来写呢", not "我还在想呢").
    return s.zh and bool(re.search(r"(?:吗|么)[。！.]?$|(?:谁|什么|怎么|哪|多少|几|为什么|是否|是不是|要不要|能不能|有没有)"
                                   r".*呢[。.]?$", k))


def _clause_before(key: str, pos: int) -> str:
    """The text between the last clause break before `pos` and `pos`."""
    cut = max(key.rfind(c, 0, pos) for c in ",;:，；：。")
    return key[cut + 1 : pos]


_EN_COND = re.compile(r"\b(?:if|unless|whether|in case|suppose|supposing|assuming|once|when)\b", re.I)
_ZH_COND = re.compile(r"如果|要是|假如|万一|假设|是否|要不要|能不能|是不是|的话|等到|除非")


def _conditional(s: _Sent, pos: int) -> bool:
    """True when the cue at `pos` sits inside an if-clause ("if we decide to…", "如果决定…")."""
    before = _clause_before(s.key, pos)
    return bool((_ZH_COND if s.zh else _EN_COND).search(before))


_EN_NEG_BEFORE = re.compile(r"\b(?:not|never|no one|nobody|don't|doesn't|didn't|isn't|wasn't|haven't|hasn't)\b",
                            re.I)


# ------------------------------------------------------------------------------------------------------------- dates

_EN_MONTH = (r"(?:january|february|march|april|may|june|july|august|september|october|november|december"
             r"|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)")
_EN_ORD = (r"(?:(?:twenty|thirty)[- ])?(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh"
           r"|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth)"
           r"|\d{1,2}(?:st|nd|rd|th)")
_EN_WHEN = (rf"(?:(?:this|next)\s+(?:{_EN_DAY}|week|month|quarter|sprint|year)"
            rf"|{_EN_DAY}(?:\s+(?:morning|afternoon|evening|noon))?"
            r"|tomorrow(?:\s+(?:morning|afternoon|evening))?|tonight|today|this\s+(?:morning|afternoon|evening)"
            r"|later\s+today|(?:the\s+)?end\s+of\s+(?:the\s+|this\s+|next\s+)?(?:day|week|month|quarter|sprint|year)"
            r"|eod|eow|cob|eom"
            # A bare ordinal word is no date ("for a second"); "the second" or "March 3rd" is.
            rf"|{_EN_MONTH}\s+(?:the\s+)?(?:{_EN_ORD}|\d{{1,2}})|the\s+(?:{_EN_ORD})(?:\s+of\s+{_EN_MONTH})?"
            r"|\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|noon|midday"
            r"|(?:the\s+)?(?:next|following)\s+(?:meeting|call|sync|standup)"
            r"|within\s+(?:the\s+|an?\s+|\w+\s+)(?:hours?|days?|weeks?|business\s+days?)"
            r"|after\s+(?:this|the)\s+(?:call|meeting))")
_EN_DUE = re.compile(rf"\b(?:(?:right\s+)?(?:by|before|until|no later than|due(?:\s+on|\s+by)?|on)\s+)?"
                     rf"(?:{_EN_WHEN})\b", re.I)

_ZH_NUM = "一二三四五六七八九十两0-9"
_ZH_DAYNAME = r"(?:周|星期|礼拜)[一二三四五六日天1-7]"
_ZH_WHEN = (rf"(?:(?:下下|下|这|本)个?(?:周|星期|礼拜)[一二三四五六日天末1-7]?|{_ZH_DAYNAME}"
            r"|(?:明天|后天|今天|今晚|明早|明晚)(?:上午|下午|晚上|中午|早上)?|上午|下午|今晚"
            r"|(?:这个|下个|本)?月底|下个?月初?|年底|季度末|下班|会后|散会后|会议结束后"
            rf"|[{_ZH_NUM}]{{1,2}}月[{_ZH_NUM}]{{1,3}}[日号]|[{_ZH_NUM}]{{1,3}}[号]"
            rf"|[{_ZH_NUM}]+个?(?:小时|天|工作日|个工作日|周)内)")
_ZH_DUE = re.compile(rf"在?(?P<when>{_ZH_WHEN})(?P<tail>之前|以前|前|内|为止)?")


def _find_due(s: _Sent) -> re.Match[str] | None:
    """The first due-date phrase in the sentence, if any."""
    if s.zh:
        for m in _ZH_DUE.finditer(s.key):
            # A bare 上午/下午/下班 is only a deadline with 前 ("下班前"), not as a time of day in passing.
            if m.group("when") in ("上午", "下午", "下班") and not m.group("tail"):
                continue
            return m
        return None
    return _EN_DUE.search(s.key)


_EN_CAPS = re.compile(rf"\b({_EN_DAY}|{_EN_MONTH})\b", re.I)


def _normalise_due(s: _Sent, m: re.Match[str]) -> str:
    """The due phrase as said, tidied: "by Friday", "next week", "下周五前", "月底前"."""
    if s.zh:
        tail = m.group("tail") or ""
        tail = "前" if tail in ("之前", "以前") else tail
        return m.group("when") + tail
    phrase = re.sub(r"\s+", " ", m.group(0).strip().lower())
    return _EN_CAPS.sub(lambda c: c.group(1).capitalize(), phrase)


def _without(text: str, m: re.Match[str] | None) -> str:
    if m is None:
        return text
    return text[: m.start()] + text[m.end() :]


# --------------------------------------------------------------------------------------------------------- decisions

_EN_FILLER = (r"(?:(?:ok(?:ay)?|so|well|alright|all right|right|great|good|fine|yes|yeah|yep|and|um|uh|oh|also|then"
              r"|now|perfect|cool)\b[\s,.!-]*)*")
_EN_DECISION = [re.compile(p, re.I) for p in (
    r"\b(?:we|we'll|we will|we're|we are|let's|let us)\s+(?:going\s+to\s+|gonna\s+)?(?:go|going)\s+(?:ahead\s+)?with\b",
    r"\b(?:we|we'll|we will|we're going to|let's)\s+(?:stick|stay)\s+with\b",
    r"\bwe(?:'ve|\s+have)?\s+(?:now\s+|just\s+|finally\s+)?(?:decided|agreed|settled|signed off)\b",
    r"\b(?:it's|it is|it has been|it's been|that's|that is|that has been|(?:was|were|is|are|has been|have been|got)"
    r"(?:\s+(?:already|now|just))?)\s+(?:now\s+)?(?:decided|agreed|settled|approved|signed off|finali[sz]ed)\b",
    r"\b(?:approved|signed off on|green-?lit|greenlit)\b",
    r"\b(?:the|our|final)\s+decision\s+(?:is|was)\b|\bdecision\s*:",
    r"\b(?:we're|we are|we'll|we will|let's)\s+(?:moving|move|pushing|push|postponing|postpone|delaying|delay|bringing"
    r"|bring|shifting|shift)\s+(?:the\s+\w+(?:\s+\w+)?|it|this|that)\s+(?:back\s+|out\s+)?to\b",
    r"\blet's\s+(?:use|keep|adopt|launch|ship|cancel|drop|switch\s+to|approve|proceed|go\s+ahead|plan\s+on|freeze"
    r"|hire|buy|choose|pick|target|standardi[sz]e\s+on)\b",
    r"\b(?:we'll|we will|we're going to|we are going to)\s+(?:use|adopt|switch\s+to|standardi[sz]e\s+on|drop|cancel)\b",
    r"\bwe(?:'re|\s+are)\s+not\s+going\s+to\s+(?!be\b)",
    r"\bwe(?:'re|\s+are)\s+not\s+(?:moving|doing|launching|shipping|hiring|renewing|buying|using|changing|switching"
    r"|extending|going ahead|proceeding|offering|supporting)\b",
    r"\b(?:the plan is|that's settled|that's final|final answer|it's a go|green light)\b",
    r"\b(?:moves|moved|is moving|is pushed|pushed|postponed|deferred|slips|is delayed)\s+(?:back\s+|out\s+)?to\s+"
    rf"(?:next\s+\w+|the\s+\w+|{_EN_DAY}|{_EN_MONTH_NAME})\b",
)]
# A bare agreement ("Agreed." / "同意。") decides whatever was just proposed.
_EN_CONFIRM = re.compile(
    rf"^{_EN_FILLER}(?:agreed|i agree|we agree|deal|let's do (?:that|it|this)|let's go with (?:that|it|this)"
    r"|sounds good(?: to me)?|that works(?: for me)?|fine by me|works for me|approved|so be it"
    r"|let's do it)\b", re.I)
_EN_PROPOSAL = re.compile(
    r"\b(?:should we|shall we|can we|could we|why don't we|how about|what if we|let's|i propose|i suggest"
    r"|my proposal|we should|we could|i think we should|i'd go with|i'd say we|maybe we|go with|propose|suggest"
    r"|recommend)\b", re.I)

_ZH_DECISION = re.compile(
    r"(?:挪|推迟|延期|延后|改|放|推|提前)到(?=.{0,4}(?:下|周|月|号|迭代|版本|季度|年))"
    r"|决定|就这么定了?|就这么办|就这样定了?|定下来了|定了|敲定|拍板|最终方案|最终决定|达成一致|通过了|批准了|不改了|不变了|不再变"
    r"|(?:我们|那就|就|那)(?:采用|选用|选择|按照?(?=.{0,12}(?:来|办|执行)))|(?:那就|就|我们就)用|采用"
    r"|(?:我们|已经|最终)确定(?:了)?(?:用|采用|选|是|推迟|延期|在)")
_ZH_DECISION_NEG = re.compile(r"(?:没|未|不|别|再|待|难|无法|如何|怎么|谁|由谁|要不要|是否|还没有|尚未|需要|要|得)$")
_ZH_FILLER = r"(?:(?:好的?|行|嗯|对|那么|那|OK|ok|可以|没问题|是的?)[，,。！\s]*)*"
_ZH_CONFIRM = re.compile(
    rf"^{_ZH_FILLER}(?:我)?(?:同意|赞成|没意见|就这么办|就这么定了?|那就这样|就这样吧|就这么着|可以，就这么办)[。！!]*$")
_ZH_BARE = re.compile(rf"^{_ZH_FILLER}(?:那)?(?:就这么定了?|就这么办|就这样定了?|定了|就这样吧)[吧。！!]*$")
_ZH_PROPOSAL = re.compile(r"要不要|要不|不如|建议|提议|倾向|方案|是不是(?:可以|应该)|能不能|可以考虑|怎么样|行不行|好不好"
                          r"|我们.{0,12}吧|那就|就用")


def _decision_cue(s: _Sent) -> bool:
    """True when the sentence states a decision (not a question, not negated, not hypothetical)."""
    if _is_question(s):
        return False
    if s.zh:
        for m in _ZH_DECISION.finditer(s.key):
            before = s.key[: m.start()]
            if _ZH_DECISION_NEG.search(before[-3:]) or _conditional(s, m.start()):
                continue
            if re.match(r"(?:不了|吗|么|没有)", s.key[m.end() :]):
                continue
            return True
        return False
    for pat in _EN_DECISION:
        m = pat.search(s.key)
        if m and not _conditional(s, m.start()) and not _EN_NEG_BEFORE.search(_clause_before(s.key, m.start())):
            return True
    return False


def _is_confirmation(s: _Sent) -> bool:
    return bool((_ZH_CONFIRM if s.zh else _EN_CONFIRM).match(s.key))


def _is_proposal(s: _Sent) -> bool:
    if _open_cue(s) or (s.zh and re.search(r"没|未|不", s.key) and not re.search(r"不如|要不", s.key)):
        return False  # "we haven't agreed…, let's leave it" is no proposal to agree to
    return bool((_ZH_PROPOSAL if s.zh else _EN_PROPOSAL).search(s.key))


def decisions(utts: Sequence[MinutesUtterance]) -> list[Decision]:
    """Decisions stated in the session ("we'll go with…", "就这么定了"), and proposals that someone agreed to.

    A bare agreement ("Agreed." / "同意。" / "就这么定了") after a proposal gives one decision whose text is the
    proposal and the agreement, at the agreement's time and speaker (who settled it). Questions, negations and
    hypotheticals ("if we decide…", "我们还没决定") are not decisions.
    """
    _, per_utt = _prepare(utts)
    flat = [s for sents in per_utt for s in sents]
    out: list[Decision] = []
    direct = [_decision_cue(s) for s in flat]
    for i, s in enumerate(flat):
        if not direct[i] and not _is_confirmation(s):
            continue
        bare_zh = s.zh and _ZH_BARE.match(s.key) is not None  # "就这么定了": settles what was just said
        if not (bare_zh or _is_confirmation(s)):
            out.append(Decision(text=s.text, start_s=s.start_s, speaker=s.speaker))
            continue
        j = _proposal_for(flat, i, any_speaker=bare_zh)
        if j is None or direct[j]:
            continue  # nothing to confirm, or the proposal is already a decision of its own
        out.append(Decision(text=f"{flat[j].text} — {s.text}", start_s=s.start_s, speaker=s.speaker))
    return _merge_restatements(out)


_EN_STOP_SHORT = frozenset("the and for that this with it's let's we'll okay yes yeah then from into".split())


def _content(text: str) -> set[str]:
    """Content units for comparing two decisions: English words, or Chinese character bigrams."""
    han = re.findall(f"[{_HAN}]+", text)
    if han:
        return {run[k : k + 2] for run in han for k in range(len(run) - 1)}
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if len(w) > 2 and w not in _EN_STOP_SHORT}


def _merge_restatements(items: list[Decision]) -> list[Decision]:
    """A proposal decided and then restated by the chair ("let's push it to next sprint" / "search moves to next
    sprint") is one decision: keep the later, settled wording."""
    out: list[Decision] = []
    for d in items:
        if out and d.start_s - out[-1].start_s <= _REPLY_WINDOW_S:
            a, b = _content(out[-1].text), _content(d.text)
            if a and b and len(a & b) / min(len(a), len(b)) >= 0.3:
                out[-1] = d
                continue
        out.append(d)
    return out


def _proposal_for(flat: list[_Sent], i: int, *, any_speaker: bool) -> int | None:
    """Index of the proposal a bare agreement at `i` confirms, or None."""
    s = flat[i]
    for j in range(i - 1, -1, -1):
        p = flat[j]
        if s.start_s - p.end_s > _REPLY_WINDOW_S:
            return None
        if p.speaker == s.speaker and not any_speaker:
            continue
        if any_speaker:
            # "方案B吧。就这么定了。": what was said just before is what got settled, proposal-like or not.
            return j if not _open_cue(p) else None
        return j if _is_proposal(p) else None
    return None


# ---------------------------------------------------------------------------------------------------- open questions

_EN_OPEN = re.compile(
    r"\b(?:still open|open question|open issue|(?:need|have|got) to (?:figure|work) (?:out|that out|this out)"
    r"|(?:need|have) to decide|haven't (?:decided|agreed|settled)|have not (?:decided|agreed)|not (?:yet )?decided"
    r"|undecided|tbd|to be (?:decided|determined|confirmed)|still unclear|not clear yet|not sure yet|don't know yet"
    r"|parking lot|park (?:that|this|it)|come back to (?:that|this|it)|table (?:that|this|it)|remains to be seen"
    r"|unresolved|no decision yet|up in the air|still (?:need|have) to (?:decide|agree|figure)"
    r"|not (?:decide|settle) (?:that|this|it|on)|decide (?:that |this |it )?later|revisit)\b", re.I)
_ZH_OPEN = re.compile(
    r"待定|还没(?:有)?(?:确定|决定|定|谈好|想好|结论|搞清楚|敲定)|没有定论|没定论|尚未(?:确定|决定)|有待(?:讨论|确认|商榷)"
    r"|再(?:讨论|研究|议|商量)|下次再(?:议|说|讨论|定)|悬而未决|需要(?:再)?(?:讨论|研究|决定|商量)|还不确定|待讨论|遗留问题"
    r"|还说不准|目前说不准|还不好说")
# Said anywhere in the first sentence of the reply, these leave the question open ("Yes, but I'm not sure").
_EN_HEDGE = re.compile(
    r"\b(?:i'm not sure|i am not sure|not certain|no idea|i don't know|i'm guessing|(?:i'd|i would|i'll|i will|i need to"
    r"|i have to|i'd need to)\s+(?:have\s+to\s+|need\s+to\s+)?(?:check|confirm|find out|ask))\b", re.I)
_EN_UNANSWER = re.compile(
    rf"^{_EN_FILLER}(?:i'm not sure|i am not sure|not sure|no idea|i have no idea|i don't know|i do not know"
    r"|don't know|good question|nobody knows|unclear|not yet|we don't know|hard to say|i'll have to check"
    r"|let me check|let me get back to you|i need to check)\b", re.I)
_ZH_UNANSWER = re.compile(r"不(?:太)?(?:确定|清楚|知道)|没想好|不好说|说不好|说不准|不一定|待定|还没(?:定|确定)|不知道|回头再说|好问题"
                          r"|我得(?:先)?(?:跟|和|向)?[^，。]{0,6}(?:确认|核实|问)"
                          r"|^(?:还没有|还没呢|没有呢|暂时没有)")
_EN_TOPIC_CHANGE = re.compile(
    r"\b(?:let's move on|moving on|next item|next topic|next on the agenda|let's talk about|let's switch|"
    r"let's turn to|let's go to|let's jump to)\b", re.I)
_ZH_TOPIC_CHANGE = re.compile(r"下一个议题|下个议题|下一项|接下来(?:我们)?(?:说|讨论|看)|我们先说|先不说|换个话题|说下一个")
_EN_SOCIAL = re.compile(
    r"\b(?:hear me|hear us|see my screen|see the screen|make sense|any questions|anything else|how are you"
    r"|how can i help|how may i help|what can i do for you|can i help|shall we (?:start|begin|get started)"
    r"|ready to start|are we good|sound good|sounds good|you there|still there|is that (?:ok|okay|alright|clear)"
    r"|repeat that|say that again|everyone here)\b|(?:,\s*)?(?:right|okay|ok|correct|yeah|no)\?$", re.I)
_ZH_SOCIAL = re.compile(
    r"能听到|听得到|听得见|听到吗|看得到|看到我的屏幕|有什么可以帮|有什么需要|还有(?:别的|其他|什么)|对吧|是吧|好吗|好不好|行吗"
    r"|可以吗|明白吗|清楚吗|有问题吗|在吗|您好")
_REQUEST_Q = re.compile(r"\b(?:can|could|would|will)\s+you\s+(?:please\s+)?(?!tell\b)[a-z]+", re.I)
_ZH_REQUEST_Q = re.compile(r"麻烦|请(?!问)|你(?:能不能|能|可以)帮")
_EN_ANAPHOR = re.compile(rf"^{_EN_FILLER}(?:that|this|it)\b", re.I)
_ZH_ANAPHOR = re.compile(rf"^{_ZH_FILLER}(?:这个|那个|这件事|这事|这一点|这|那)")


def _join(texts: list[str]) -> str:
    """Sentences as one text: Chinese ones run on, English ones with a space."""
    return "".join(texts) if all(has_cjk(t) for t in texts) else " ".join(texts)


def _open_cue(s: _Sent) -> bool:
    """Explicitly open ("still open", "we need to figure out", "待定", "还没确定")."""
    return bool((_ZH_OPEN if s.zh else _EN_OPEN).search(s.key))


def _asks(s: _Sent) -> bool:
    """A real question: substantive, not small talk, not a request dressed as one ("can you send…?")."""
    if not _is_question(s):
        return False
    if s.zh:
        return len(re.findall(f"[{_HAN}]", s.key)) >= 4 and not _ZH_SOCIAL.search(s.key) \
            and not _ZH_REQUEST_Q.search(s.key)
    return len(s.key.split()) >= 3 and not _EN_SOCIAL.search(s.key) and not _REQUEST_Q.search(s.key)


def _replies(order: list[MinutesUtterance], i: int) -> list[int]:
    """Indices of the next utterances by other speakers within the reply window (at most two)."""
    out = []
    for j in range(i + 1, len(order)):
        if order[j].start_s - order[i].end_s > _REPLY_WINDOW_S:
            break
        if order[j].speaker != order[i].speaker:
            out.append(j)
            if len(out) == 2:
                break
    return out


def _unanswered(order: list[MinutesUtterance], per_utt: list[list[_Sent]], i: int) -> tuple[bool, int | None]:
    """Whether the question(s) of utterance `i` got no answer-like reply; and the reply that said "don't know"."""
    for j in _replies(order, i):
        sents = per_utt[j]
        if not sents:
            continue
        first = sents[0]
        if _ZH_UNANSWER.search(first.key) if first.zh else (_EN_UNANSWER.match(first.key)
                                                          or _EN_HEDGE.search(first.key)):
            return True, j
        if (_ZH_TOPIC_CHANGE if first.zh else _EN_TOPIC_CHANGE).search(first.key):
            return True, None
        if all(_is_question(s) for s in sents):
            continue  # a counter-question; the answer may come after it
        return False, None
    return True, None


def open_questions(utts: Sequence[MinutesUtterance]) -> list[OpenQuestion]:
    """Questions left open: said to be open ("still open", "待定"), or asked and not answered.

    A question counts as answered when another speaker replies within 30 s with a statement that is not "I don't
    know" / "不清楚" and not a change of topic, or when the asker goes on to answer it in the same utterance.
    Small talk ("can you hear me?") and requests ("can you send…?") are not questions here.
    """
    order, per_utt = _prepare(utts)
    out: list[OpenQuestion] = []
    covered: set[int] = set()  # replies whose "don't know" / "still open" is the question already listed
    last_open = -10
    for i, sents in enumerate(per_utt):
        asked: list[_Sent] = []
        for k, s in enumerate(sents):
            if _open_cue(s):
                anaphor = (_ZH_ANAPHOR if s.zh else _EN_ANAPHOR).match(s.key)
                if out and last_open == i:
                    # "Let's not decide that today. We'll revisit it." is one open point, not two.
                    prev = out[-1]
                    out[-1] = OpenQuestion(text=_join([prev.text, s.text]), start_s=prev.start_s,
                                           speaker=prev.speaker)
                elif i not in covered and not (anaphor and i - last_open <= 2):
                    out.append(OpenQuestion(text=s.text, start_s=s.start_s, speaker=s.speaker))
                    last_open = i
                asked = []
                continue
            if _asks(s):
                asked.append(s)
            elif asked and k > 0:
                asked = []  # the asker answered their own question ("What's the plan? We ship in May.")
        if not asked:
            continue
        unanswered, reply = _unanswered(order, per_utt, i)
        if reply is not None:
            covered.add(reply)
        if unanswered:
            text = _join([s.text for s in asked])
            out.append(OpenQuestion(text=text, start_s=asked[0].start_s, speaker=asked[0].speaker))
            last_open = i
    return out


# ------------------------------------------------------------------------------------------------------ action items

# After "I'll…" these verbs are talk about the meeting itself, not work to do, unless a due date is said.
_EN_NOT_ACTION = frozenset(
    "be say admit bet guess assume agree pass leave stop see look read start begin explain walk repeat hold put think "
    "wait hang show mute unmute jump stay keep give let go try answer summarize summarise recap introduce hear like "
    "mind know remember prefer want need hope wonder tell speak".split())
_EN_NOT_ACTION_PHRASE = re.compile(
    r"^(?:tell you|share (?:my|the|your) screen|put you on hold|do (?:it|that|this|so)\b|go first|move on"
    r"|see you|talk to you|let you go|leave it there|take a look(?! at (?:the|our|their))"
    r"|be (?:honest|quick|brief|right back))", re.I)
_EN_ADVERBS = re.compile(
    r"^(?:also|just|then|definitely|probably|actually|personally|quickly|certainly|go ahead and|make sure to|try to"
    r"|try and|have to|need to|be sure to|first|still)\s+", re.I)
_EN_FOLLOWUP = re.compile(r"^(?:get back|follow up|send|email|circulate|find out|check with|loop|forward|share the)\b",
                          re.I)
_EN_ACTION_VERBS = frozenset(
    "send share draft write prepare update review check follow schedule set book call email contact reach fix "
    "investigate look talk ask confirm finalize finalise circulate put create file submit order arrange organize "
    "organise test deploy merge document sync compile pull run coordinate escalate handle take own reply forward "
    "upload move cancel renew sign approve raise open close build get find chase collect clean migrate present "
    "invite train hire buy pay refund process deliver ship publish release pick".split())

_EN_FIRST = re.compile(
    r"\b(?P<cue>i(?:'ll|\s+will|\s+shall)|i(?:'m|\s+am)\s+(?:going\s+to|gonna)|i\s+can(?!'t|not|\s+not)|let\s+me)\s+"
    r"(?P<rest>.+)", re.I)
_EN_REQUEST = re.compile(
    r"\b(?:(?:can|could|would|will)\s+you\s+(?:please\s+|also\s+|kindly\s+)*|please\s+"
    r"|you(?:'ll|\s+will)?\s+need\s+to\s+|make\s+sure\s+(?:you\s+|to\s+))(?P<rest>[a-z].*)", re.I)
_EN_NAME = r"(?-i:[A-Z][a-z]+(?:\s[A-Z][a-z]+)?)"
_EN_VOCATIVE = re.compile(rf"^(?:(?:ok(?:ay)?|so|and|also|hey|right|then)[\s,]+)*(?P<name>{_EN_NAME}),\s", re.I)
_EN_VOCATIVE_LATE = re.compile(rf"\byou,?\s+(?P<name>{_EN_NAME})[,?]|,\s*(?P<name2>{_EN_NAME})\s*\?$", re.I)
_EN_THIRD = re.compile(
    rf"\b(?P<name>{_EN_NAME})\s+(?:will|is\s+going\s+to|is\s+gonna|is\s+to|to)\s+(?P<rest>[a-z].*)")
_EN_PRONOUN = re.compile(r"\b(?:he|she)(?:'ll|\s+will|\s+is\s+going\s+to)\s+(?P<rest>[a-z].*)", re.I)
_EN_ITEM = re.compile(
    rf"\baction\s+items?\b(?:\s+(?:for|to|on)\s+(?P<name>{_EN_NAME}|me))?\s*(?:[:\-–—]|,|is\s+(?:to\s+|that\s+)?)\s*"
    r"(?P<rest>.+)", re.I)
_EN_WE = re.compile(
    r"\bwe(?:'ll|\s+will|\s+need\s+to|\s+have\s+to|\s+must|\s+should|(?:'re|\s+are)\s+(?:going\s+to|gonna))\s+"
    r"(?P<rest>(?!go\s+with|stick\s+with|use\b)[a-z].*)", re.I)
_EN_NOT_NAME = frozenset(
    "okay ok so yes yeah sure thanks thank well right great hi hello also then now and but alright perfect fine good "
    "actually honestly sorry please everyone everybody guys folks team all i we you they he she it this that there "
    "what who which when where why how if someone somebody nobody anyone the a an my our your their sir madam maybe "
    "yep no not just first next last monday tuesday wednesday thursday friday saturday sunday january february "
    "march april may june july august september october november december".split())
_EN_ACCEPT = re.compile(rf"^{_EN_FILLER}(?:sure,?\s+)?(?:will do|i will|i'll do (?:it|that)|on it|i'm on it"
                        r"|consider it done|i'll take care of it|i can do that|i'll get (?:it|that) done)\b", re.I)

_ZH_NAME = (rf"(?:(?:小|老|阿)[{_HAN}]|[{_HAN}](?:总|工|姐|哥)|[{_HAN}]{{1,2}}(?:经理|老师|主管|主任|律师|总监|组长|会计))")
# Single characters are verbs only when not the start of another word (我建议, 我发现, 算了, 问题).
_ZH_VERB = (r"整理|准备|确认|跟进|联系|核实|处理|提交|安排|更新|申请|检查|沟通|回复|答复|回电话|打电话|通知|预订|排查|汇报|同步"
            r"|起草|对接|落实|推进|搞定|完成|过一遍|梳理|上传|预约|登记|审核|提供|核对|统计|汇总|评估|调研|协调|申报|采购|部署|发布"
            r"|重置|开通|关闭|取消|冻结|解冻|挂失|补办|修改|升级|办理|给您回|给你回"
            r"|发(?!现|生|言|烧|展|挥|表)|写|做(?!法)|约|订|拉|建(?!议)|改(?!变)|修|测|出(?!现|来|去|差)"
            r"|报(?!告)|算(?!了|是)|找|问(?!题)|催|补|转(?!变)|签|寄|交(?!流)|盯|退|办|买|搭")
# Words that may sit between the subject and the verb ("我这边马上帮您…", "我明天把…"). Used as `{_ZH_ADV}`, a
# possessive run: nested, backtracking runs of these took 28 s on a 50-character sentence.
_ZH_ADV_ONE = (r"这边|那边|散会后|会后|来|去|会|就|先|再|也|马上|立刻|尽快|回头|稍后|等会儿|等会|待会儿|待会|之后|下来|一会儿"
               r"|一会|负责|今天|明天|后天|今晚|上午|下午|晚上|中午|下班前|月底前|月底|下下个周|下下周|下个周|下周|下个星期"
               r"|下星期|这周|本周|周[一二三四五六日天]|星期[一二三四五六日天]|[一二三四五六日天]|之前|以前|前")
_ZH_ADV = rf"(?:{_ZH_ADV_ONE})*+"
_ZH_THINK = r"考虑|想想|看看|看一下|研究|商量"
_ZH_FIRST = re.compile(
    rf"我(?!们)(?:{_ZH_ADV})(?P<offer>可以)?(?P<hedge>可能|也许|或许|想|打算|应该|尽量|试试)?(?:{_ZH_ADV})"
    # "我帮您申请退款" is work; "我帮您查一下" is a look-up on the spot: 帮 needs a verb of work after it.
    rf"(?P<verb>{_ZH_VERB}|{_ZH_THINK}|把|(?:帮|跟|和|向|给)(?=[^，。]{{0,8}}(?:{_ZH_VERB})))")
_ZH_FIRST_OTHER = re.compile(r"我(?:来|去)?负责|交给我|包在我身上|我来(?:搞定|处理|跟进)")
_ZH_ASSIGN = re.compile(rf"(?P<name>{_ZH_NAME})?[，,]?\s*(?:你|您)(?:来)?负责|(?P<name2>{_ZH_NAME})(?:来)?负责")
_ZH_ASK_NAME = re.compile(rf"(?:让|请|叫|由|麻烦)(?P<name>{_ZH_NAME})(?:{_ZH_ADV})(?:{_ZH_VERB}|把)")
_ZH_YOU = re.compile(rf"(?<![给帮向跟和对为替让联系通知告诉])(?:你|您)(?!们)(?:能不能|可以|能|要|得|需要)?(?:{_ZH_ADV})"
                     rf"(?:帮我)?(?:{_ZH_VERB}|把|一下)")
_ZH_PLEASE = re.compile(rf"(?:麻烦|请)(?!问)(?:你|您)?(?:{_ZH_ADV})(?:{_ZH_VERB}|把|带)")
# "李工会在两个工作日内联系您" / "是李工，他会…联系您": a named third person's task.
_ZH_THIRD = re.compile(rf"(?P<name>{_ZH_NAME}|[他她])(?:会|将|要|负责|来|去)(?:在)?(?:{_ZH_ADV_ONE}|{_ZH_WHEN}|内)*+"
                       rf"(?:{_ZH_VERB}|把)")
_ZH_ASK_Q = re.compile(rf"(?:你|您)?(?:{_ZH_ADV})(?:能不能|能|可以|可不可以)(?:{_ZH_ADV})(?:把|{_ZH_VERB})")
_ZH_WE = re.compile(rf"我们(?:{_ZH_ADV})(?:要|得|需要|会)(?:{_ZH_ADV})(?:{_ZH_VERB}|把)")
_ZH_ITEM = re.compile(r"(?:待办(?:事项)?|行动项|action item)[：:，,\s]*(?P<rest>.+)", re.I)
_ZH_NOT_NAME = frozenset(
    "好的 那个 这个 然后 所以 对了 还有 另外 首先 其次 最后 不过 但是 可是 我们 大家 各位 谢谢 没问题 可以 明白 收到 是的 "
    "其实 那么 接下来 现在 今天 明天 这样 这边 那边 您好 你好 另外 老师们 同事们 领导 等一下 稍等 好吧 行吧".split())
_ZH_VOCATIVE = re.compile(rf"^{_ZH_FILLER}(?P<name>[{_HAN}]{{2,3}})[，,]")
_ZH_ACCEPT = re.compile(rf"^{_ZH_FILLER}(?:收到|我会的|一定|没问题，?我(?:会|来|马上)|好的?，?我(?:会|马上|这就|来)|我这就)")
_ZH_PAST = re.compile(r"^(?:已经|刚才|刚刚|上周|昨天|之前)")


@dataclass(frozen=True)
class _Hit:
    """Where an action cue matched: who owns it (_SPEAKER, a name, _ADDRESSEE, or None)."""

    owner: str | None
    start: int  # where the work description starts in the sentence key


def _en_zh_name_ok(name: str | None, zh: bool) -> bool:
    if not name:
        return False
    if zh:
        return name not in _ZH_NOT_NAME and not re.search("[的了是在有不这那么吗吧呢个们就也都还要会说]", name)
    return name.lower() not in _EN_NOT_NAME


def _en_rest_ok(rest: str, due: bool, loose: frozenset[str] | None = None) -> bool:
    """Whether the words after a cue describe work: not "be honest", "share my screen", "hear me"."""
    rest = rest.strip()
    while (m := _EN_ADVERBS.match(rest)) is not None:
        rest = rest[m.end() :]
    if _EN_NOT_ACTION_PHRASE.match(rest) and not due:
        return False
    verb = (rest.split() or [""])[0].lower().strip(",.?!")
    if verb in ("not", "never", "") or rest.lower().startswith("not "):
        return False
    if loose is not None:
        return verb in loose
    return due or verb not in _EN_NOT_ACTION


def _en_hit(s: _Sent, speakers: frozenset[str]) -> _Hit | None:
    key = s.key
    due = _find_due(s) is not None
    m = _EN_ITEM.search(key)
    if m:
        name = m.group("name")
        third = _EN_THIRD.match(m.group("rest"))
        if name and name.lower() == "me":
            return _Hit(_SPEAKER, m.start("rest"))
        if not name and third and _en_zh_name_ok(third.group("name"), False):
            return _Hit(third.group("name"), m.start("rest") + third.start("rest"))
        return _Hit(name, m.start("rest"))
    if _is_question(s) and not _EN_REQUEST.search(key):
        return None
    m = _EN_FIRST.search(key)
    if m and not _conditional(s, m.start()):
        cue = m.group("cue").lower()
        strict = cue.startswith("let") or cue.endswith("can")
        if strict and (due or _EN_FOLLOWUP.match(_strip_adverbs(m.group("rest")))
                       or (cue.endswith("can") and _en_rest_ok(m.group("rest"), False, _EN_ACTION_VERBS))):
            return _Hit(_SPEAKER, m.start("rest"))
        if not strict and _en_rest_ok(m.group("rest"), due):
            return _Hit(_SPEAKER, m.start("rest"))
    m = _EN_REQUEST.search(key)
    if m and not _conditional(s, m.start()) and _en_rest_ok(m.group("rest"), due):
        voc = _EN_VOCATIVE.match(key) or _EN_VOCATIVE_LATE.search(key)
        name = (voc.group("name") or voc.groupdict().get("name2")) if voc else None
        if _en_zh_name_ok(name, False):
            return _Hit(name, m.start("rest"))
        return _Hit(_ADDRESSEE, m.start("rest"))
    m = _EN_PRONOUN.search(key)
    if m and not _conditional(s, m.start()) and _en_rest_ok(m.group("rest"), due):
        names = [n for n in re.findall(_EN_NAME, key[: m.start()]) if _en_zh_name_ok(n, False)]
        if names:
            return _Hit(names[-1], m.start("rest"))
    m = _EN_THIRD.search(key)
    if m and _en_zh_name_ok(m.group("name"), False) and not _conditional(s, m.start()):
        known = m.group("name").lower() in speakers
        if _en_rest_ok(m.group("rest"), due) and (known or due or _en_rest_ok(m.group("rest"), False,
                                                                              _EN_ACTION_VERBS)):
            return _Hit(m.group("name"), m.start("rest"))
    m = _EN_WE.search(key)
    if m and due and not _conditional(s, m.start()) and _en_rest_ok(m.group("rest"), False, _EN_ACTION_VERBS):
        return _Hit(None, m.start("rest"))
    return None


def _strip_adverbs(rest: str) -> str:
    while (m := _EN_ADVERBS.match(rest)) is not None:
        rest = rest[m.end() :]
    return rest


def _zh_hit(s: _Sent, speakers: frozenset[str]) -> _Hit | None:
    key = s.key
    due = _find_due(s) is not None
    m = _ZH_ITEM.search(key)
    if m:
        rest = m.group("rest")
        a = _ZH_ASSIGN.search(rest)
        name = (a.group("name") or a.group("name2")) if a else None
        if rest.startswith("我"):
            return _Hit(_SPEAKER, m.start("rest"))
        return _Hit(name, m.start("rest"))
    voc = _ZH_VOCATIVE.match(key)
    voc_name = voc.group("name") if voc and _en_zh_name_ok(voc.group("name"), True) else None
    if voc_name is None:
        for sp in speakers:  # a known speaker's name at the start, e.g. "李娜你…"
            if sp and has_cjk(sp) and re.match(rf"^{_ZH_FILLER}{re.escape(sp)}", key):
                voc_name = sp
    if _is_question(s):
        m = _ZH_ASK_Q.search(key)
        if voc_name and m and _find_due(s) is not None:
            return _Hit(voc_name, m.start())
        return None
    m = _ZH_ASSIGN.search(key)
    if m and not _negated_zh(key, m.start()) and not _conditional(s, m.start()):
        name = m.group("name") or m.group("name2") or voc_name
        return _Hit(name, m.start()) if name else _Hit(_ADDRESSEE, m.start())
    m = _ZH_FIRST_OTHER.search(key)
    if m and not _conditional(s, m.start()):
        return _Hit(_SPEAKER, m.start())
    m = _ZH_FIRST.search(key)
    if m and not _conditional(s, m.start()) and _zh_first_ok(key, m, due):
        return _Hit(_SPEAKER, m.start())
    m = _ZH_ASK_NAME.search(key)
    if m and _en_zh_name_ok(m.group("name"), True) and not _conditional(s, m.start()):
        return _Hit(m.group("name"), m.start())
    m = _ZH_YOU.search(key) or _ZH_PLEASE.search(key)
    if m and not _negated_zh(key, m.start()) and not _conditional(s, m.start()):
        if voc_name:
            return _Hit(voc_name, m.start())
        return _Hit(_ADDRESSEE, m.start())
    m = _ZH_THIRD.search(key)
    if m and not _conditional(s, m.start()):
        name = m.group("name")
        if name in ("他", "她"):
            names = re.findall(_ZH_NAME, key[: m.start()])
            name = names[-1] if names else None
        if name and _en_zh_name_ok(name, True):
            return _Hit(name, m.start())
    m = _ZH_WE.search(key)
    if m and due and not _conditional(s, m.start()):
        return _Hit(None, m.start())
    return None


def _negated_zh(key: str, pos: int) -> bool:
    return bool(re.search(r"(?:不|没|别|未)$", key[max(0, pos - 2) : pos]))


def _zh_first_ok(key: str, m: re.Match[str], due: bool) -> bool:
    """A first-person cue is a commitment: not negated, not past, not a hedge or "let me think" without a date."""
    after = key[m.start() + 1 :]
    if re.match(rf"(?:{_ZH_ADV})(?:不|没|别)", after) or _ZH_PAST.match(after):
        return False
    if re.search(r"屏幕|说两句|介绍一下|讲一下", after[:10]):
        return False
    verb = m.group("verb")
    if (m.group("hedge") or re.fullmatch(_ZH_THINK, verb)) and not due:
        return False
    if m.group("offer") and re.fullmatch(r"帮|跟|和|向|给", verb) and not due:
        return False  # "我可以帮你看看" is help on the spot, "我可以把测试清理一下" is work taken on
    return not re.match(r"(?:了|过)", key[m.end() :])


def _accepted_by(order: list[MinutesUtterance], per_utt: list[list[_Sent]], idx: int) -> str | None:
    """The speaker who took on a request in the next reply ("Will do." / "收到，我马上…"), if any."""
    for j in _replies(order, idx)[:1]:
        if per_utt[j] and (_ZH_ACCEPT if per_utt[j][0].zh else _EN_ACCEPT).match(per_utt[j][0].key):
            return order[j].speaker
    return None


_ZH_WHAT_LEAD = re.compile(rf"^(?:{_ZH_NAME}|我|你|您|(?:让|请|叫|由|麻烦)(?:你|您)?)?(?:这边|那边)?(?:来|去)?(?:负责)?"
                           r"(?:[：:，,]\s*)?")


def _what(s: _Sent, hit: _Hit) -> str:
    """The work to do: the sentence from its cue on, without the owner, the cue words and the due phrase."""
    if s.zh:
        # From the start of the cue's clause when the cue is near it, to keep an object said first
        # ("数据保留的合规要求你周一前确认一下"); else from the cue, to drop what came before ("这个我不太确定，我去…").
        cut = max(s.key.rfind(c, 0, hit.start) for c in "，,；;：:")
        text = s.key[cut + 1 :] if hit.start - cut <= 12 or cut < 0 else s.key[hit.start :]
        voc = _ZH_VOCATIVE.match(text)
        if voc and _en_zh_name_ok(voc.group("name"), True):
            text = text[voc.end() :]
        # The addressee's "你" goes, not the one in "给您回电话" (the customer, not the owner).
        text = re.sub(rf"(?:{_ZH_NAME})?(?:你|您)(?:来)?负责|我(?:这边|那边)?(?:来|去)?负责|我(?:这边|那边)?(?:会|来|去)?"
                      r"|(?<![给帮向跟和对让请为替])(?:你|您)(?!们)|麻烦(?:你|您)?|请(?:你|您)?", "", text, count=1)
        text = _ZH_WHAT_LEAD.sub("", text)
        due = _find_due(_Sent(s.idx, text, text, True, s.speaker, s.start_s, s.end_s))
        text = _without(text, due)
        text = re.sub(r"[，,]{2,}", "，", text).strip(" ，,。！!；;")
        return text or s.text
    rest = _strip_adverbs(s.key[hit.start :])
    tmp = _Sent(s.idx, rest, rest, False, s.speaker, s.start_s, s.end_s)
    rest = _without(rest, _find_due(tmp))
    rest = re.sub(r"\s+([,.?!])", r"\1", re.sub(r"\s{2,}", " ", rest)).strip(" ,.;:!?")
    rest = re.sub(r",?\s*please$", "", rest, flags=re.I)
    return (rest[:1].upper() + rest[1:]) if rest else s.text


def action_items(utts: Sequence[MinutesUtterance]) -> list[ActionItem]:
    """Commitments and assignments: what, owner, due date when said.

    Owner: the speaker for a first-person commitment ("I'll send it", "我来负责"); the addressee when a name is
    said ("Mary, can you…", "小王你负责…"); the person who took it on when an unnamed request got "Will do." /
    "收到"; else None. A request with no name, no due date and no acceptance is not an item (it is usually about the
    call itself: "can you confirm your date of birth?"). Due is the phrase as said ("by Friday", "下周五前").
    """
    order, per_utt = _prepare(utts)
    speakers = frozenset(u.speaker.lower() for u in order if u.speaker) | frozenset(
        u.speaker for u in order if u.speaker and has_cjk(u.speaker))
    out: list[ActionItem] = []
    for i, sents in enumerate(per_utt):
        for s in sents:
            hit = _zh_hit(s, speakers) if s.zh else _en_hit(s, speakers)
            if hit is None:
                continue
            due_m = _find_due(s)
            owner = hit.owner
            if owner == _ADDRESSEE:
                owner = _accepted_by(order, per_utt, i)
                if owner is None and due_m is None:
                    continue
            elif owner == _SPEAKER:
                owner = s.speaker
            out.append(ActionItem(what=_what(s, hit), owner=owner, due=_normalise_due(s, due_m) if due_m else None,
                                  start_s=s.start_s, evidence=s.text))
    return out
