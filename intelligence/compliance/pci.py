"""Spoken payment-card data and other PII: detection (digits or number words, Luhn-checked) and redaction.

Callers say card numbers digit by digit ("four five three nine"), in pairs ("forty-five thirty-nine"), with
"oh" for zero, "double seven", or ASR writes them as digits with any spacing. Everything is turned into
*digit pieces* with their character spans, then runs of pieces separated only by spaces or punctuation are
searched for 13-19 digit card numbers (PAN) that pass the Luhn check. The last four digits alone, a cut-off
first group or a six-digit reference never make a PAN.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from intelligence.numbers import REPEAT, TEENS, TENS, UNITS, ZH_DIGITS
from intelligence.types import TranscriptEvent

_PIECE_TOKEN_RE = re.compile(r"[A-Za-z]+|\d+|[零〇一幺二两三四五六七八九拐洞]|\S")
_SEPARATOR_RE = re.compile(r"^[\s,.\-/:;、，。]*$")

CVV_KEYWORDS_RE = re.compile(
    r"\b(?:cvv2?|cvc2?|cvn|csc|c ?[vb] ?[vb]|security code|(?<!social )security number|card verification (?:value|code|number)"
    r"|(?:code|number|digits) (?:on|from|off) the back|back of (?:the|your|my|that|this) card|three[- ]digit (?:code|number)"
    r"|3[- ]digit (?:code|number)|on the back|the back (?:says|reads|has|shows)|signature (?:strip|panel|box)|(?:digits|numbers) (?:printed )?(?:above|over) the (?:long |card )?number)\b|安全码|校验码|验证码|背面|背后|反面|末三位|后三位|后面那三|签名条|签名栏|翻过来",
    re.IGNORECASE,
)
CARD_CONTEXT_RE = re.compile(r"\b(?:card|visa|mastercard|amex|debit|credit)\b|卡号|银行卡|信用卡|借记卡"
                             r"|(?<!社保)(?<!医保)(?<!会员)(?<!公交)(?<!电话)卡(?!通|片机|车|住|顿)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DigitPiece:
    """Digits read from one number word, digit run or Chinese numeral, with its character span."""

    digits: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SensitiveSpan:
    """A detected piece of sensitive data: kind (pan, cvv, email, ssn, cn_id, phone), span and digits."""

    kind: str
    start: int
    end: int
    value: str = ""
    luhn_valid: bool = False


def luhn_valid(digits: str) -> bool:
    """True if `digits` passes the Luhn (mod 10) check used by payment card numbers."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def digit_pieces(text: str) -> list[DigitPiece]:
    """Read every number in `text` (digits, English number words, Chinese numerals) as digit pieces."""
    tokens = [(m.group(), m.start(), m.end()) for m in _PIECE_TOKEN_RE.finditer(text)]
    pieces: list[DigitPiece] = []
    i = 0
    while i < len(tokens):
        tok, s, e = tokens[i]
        low = tok.lower()
        if tok.isdigit():
            pieces.append(DigitPiece(tok, s, e))
        elif tok in ZH_DIGITS:
            pieces.append(DigitPiece(ZH_DIGITS[tok], s, e))
        elif low in REPEAT and i + 1 < len(tokens) and tokens[i + 1][0].lower() in UNITS:
            unit = str(UNITS[tokens[i + 1][0].lower()])
            pieces.append(DigitPiece(unit * REPEAT[low], s, tokens[i + 1][2]))
            i += 1
        elif low in TENS:
            value, end = str(TENS[low] // 10), e
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            nxt2 = tokens[i + 2] if i + 2 < len(tokens) else None
            if nxt and nxt[0].lower() in UNITS and nxt[0].lower() not in ("oh", "o") and UNITS[nxt[0].lower()]:
                value += str(UNITS[nxt[0].lower()])
                end = nxt[2]
                i += 1
            elif nxt and nxt[0] == "-" and nxt2 and nxt2[0].lower() in UNITS:
                value += str(UNITS[nxt2[0].lower()])
                end = nxt2[2]
                i += 2
            else:
                value += "0"
            pieces.append(DigitPiece(value, s, end))
        elif low in TEENS:
            pieces.append(DigitPiece(str(TEENS[low]), s, e))
        elif low in UNITS and (low not in ("o", "oh") or _next_to_number(tokens, i)):
            pieces.append(DigitPiece(str(UNITS[low]), s, e))
        elif low == "hundred" and pieces and len(pieces[-1].digits) == 1 and pieces[-1].end <= s:
            # "three hundred eighty one" -> 381; "three hundred and five" -> 305; "three hundred" -> 300
            head = pieces.pop()
            j = i + 1
            if j < len(tokens) and tokens[j][0].lower() == "and":
                j += 1
            rest = digit_pieces(text[tokens[j][1] :]) if j < len(tokens) else []
            if rest and rest[0].start == 0 and len(rest[0].digits) <= 2:
                first = rest[0]
                value = head.digits + first.digits.rjust(2, "0")
                end = tokens[j][1] + first.end
                while i + 1 < len(tokens) and tokens[i + 1][2] <= end:
                    i += 1
                pieces.append(DigitPiece(value, head.start, end))
            else:
                pieces.append(DigitPiece(head.digits + "00", head.start, e))
        i += 1
    return pieces


def _next_to_number(tokens: list[tuple[str, int, int]], i: int) -> bool:
    """'oh'/'o' means zero only between other number words ("four oh seven")."""

    def numeric(k: int) -> bool:
        if not 0 <= k < len(tokens):
            return False
        t = tokens[k][0].lower()
        return t.isdigit() or (t in UNITS and t not in ("o", "oh")) or t in TEENS or t in TENS

    def neighbour(k: int, step: int) -> int:
        while 0 <= k < len(tokens) and tokens[k][0] in (",", "-", "，", "、"):
            k += step
        return k

    # between commas it needs numbers on both sides: "seven, oh, four" is read digit by digit, "Oh, four" is not
    return numeric(i - 1) or numeric(i + 1) or (numeric(neighbour(i - 1, -1)) and numeric(neighbour(i + 1, 1)))


def digit_runs(text: str) -> list[list[DigitPiece]]:
    """Group digit pieces into runs separated only by spaces or punctuation (one spoken number each)."""
    runs: list[list[DigitPiece]] = []
    for piece in digit_pieces(text):
        if runs and _SEPARATOR_RE.match(text[runs[-1][-1].end : piece.start]):
            runs[-1].append(piece)
        else:
            runs.append([piece])
    return runs


def find_card_numbers(text: str, *, allow_unverified: bool = True, card_context: bool = False) -> list[SensitiveSpan]:
    """Card numbers (PAN, 13-19 digits) spoken or written in `text`.

    A run passes if some span of whole pieces has 13-19 digits and a valid Luhn check digit. With
    `allow_unverified`, a 14-19 digit run starting like a card number (3-6) that fails Luhn still counts when
    the text talks about a card: one misheard, dropped or doubled digit breaks Luhn, and a 16-digit number next
    to the word "card" is a card number. `card_context`: the question just before asked for the card.
    """
    out: list[SensitiveSpan] = []
    has_card_context = card_context or CARD_CONTEXT_RE.search(text) is not None
    for run in digit_runs(text):
        best: SensitiveSpan | None = None
        for i in range(len(run)):
            digits = ""
            for j in range(i, len(run)):
                digits += run[j].digits
                if len(digits) > 19:
                    break
                if 13 <= len(digits) and luhn_valid(digits):
                    cand = SensitiveSpan("pan", run[i].start, run[j].end, digits, True)
                    if best is None or len(cand.value) > len(best.value):
                        best = cand
        if best is None:
            best = _long_piece_pan(run)
        if best is not None and _identity_number(run, text):
            continue
        if best is None and allow_unverified and has_card_context:
            total = "".join(p.digits for p in run)
            if 14 <= len(total) <= 19 and total[0] in "3456":
                best = SensitiveSpan("pan", run[0].start, run[-1].end, total, False)
        if best is not None:
            out.append(best)
    if not out:
        out.extend(_pan_across_asides(digit_runs(text), text, unverified=allow_unverified and has_card_context))
    return out


# "5191 0115, hang on, my glasses, 2449 3900", "4716, hold on, the cat's on the desk, 0382, um, 5519, and then
# 2046": a card number read in groups around short asides
_ASIDE_MAX_CHARS = 40
_GROUP_MIN_DIGITS = 3


def _digits(run: Sequence[DigitPiece]) -> str:
    return "".join(p.digits for p in run)


def _aside(text: str, runs: Sequence[Sequence[DigitPiece]], a: Sequence[DigitPiece], b: Sequence[DigitPiece]) -> bool:
    """True if the text between groups `a` and `b` is a short aside: no CVV keyword and no number of 2+ digits
    (a lone digit is a word there: 等一下, "one sec")."""
    lo, hi = a[-1].end, b[0].start
    if hi - lo > _ASIDE_MAX_CHARS or CVV_KEYWORDS_RE.search(text[lo:hi]):
        return False
    return not any(r[0].start >= lo and r[-1].end <= hi and len(_digits(r)) > 1 for r in runs)


def _pan_across_asides(runs: Sequence[Sequence[DigitPiece]], text: str, *,
                       unverified: bool = False) -> list[SensitiveSpan]:
    """Consecutive groups of 3+ digits, each pair apart by a short aside, that together make a Luhn-valid 13-19
    digit number. Without a valid checksum the asides could be anything, so with `unverified` (the text talks
    about a card) only 16 digits starting like a card number in groups of four, apart by a filler or a pause
    ("4929 3810, um, 7765 2043"), count."""
    # (an amount or a year is no group of a card number: "the fees from 2020 and 2021, so the balance is $1,246.47")
    groups = [r for r in runs if len(_digits(r)) >= _GROUP_MIN_DIGITS and not _amount_or_year(r, text)]
    out: list[SensitiveSpan] = []
    i = 0
    while i < len(groups):
        found: tuple[int, SensitiveSpan] | None = None
        digits = _digits(groups[i])
        for j in range(i + 1, len(groups)):
            if not _aside(text, runs, groups[j - 1], groups[j]):
                break
            digits += _digits(groups[j])
            if len(digits) > 19:
                break
            # the longest valid chain, except that a 16-digit one (most cards) is kept over a longer one that
            # took in the next number by chance
            if len(digits) >= 13 and luhn_valid(digits) and (found is None or len(found[1].value) != 16):
                chain = [p for g in groups[i : j + 1] for p in g]
                if not _identity_number(chain, text):
                    found = (j, SensitiveSpan("pan", groups[i][0].start, groups[j][-1].end, digits, True))
        if found is None and unverified:
            found = _unverified_chain(groups, i, runs, text)
        if found is not None:
            out.append(found[1])
            i = found[0] + 1
        else:
            i += 1
    return out


_YEAR_RE = re.compile(r"(?:19|20)\d\d")
_YEAR_BEFORE_RE = re.compile(r"\b(?:in|from|since|of|and|until|till|to|year|years)\s*$", re.IGNORECASE)


def _amount_or_year(run: Sequence[DigitPiece], text: str) -> bool:
    """True for a run said as money ($1,246.47, 500元) or as a year (from 2020)."""
    start, end = run[0].start, run[-1].end
    if re.search(r"[$£€¥]\s*$", text[max(0, start - 2) : start]) or re.match(r"\.\d\d\b|\s*(?:元|块|dollars?|pounds?|euros?)",
                                                                         text[end : end + 8], re.IGNORECASE):
        return True
    return len(run) == 1 and _YEAR_RE.fullmatch(run[0].digits) is not None and \
        _YEAR_BEFORE_RE.search(text[max(0, start - 8) : start]) is not None


_FILLER_RE = re.compile(r"^[\s,.;:…-]*(?:(?:um+|uh+|er+|erm|hmm+|ah|sorry|hang on|hold on|one sec(?:ond)?|wait|"
                        r"let me see|嗯|呃|那个|等一下)[\s,.;:…-]*)*$", re.IGNORECASE)


def _unverified_chain(groups: Sequence[Sequence[DigitPiece]], i: int, runs: Sequence[Sequence[DigitPiece]],
                      text: str) -> tuple[int, SensitiveSpan] | None:
    """Groups of four digits from `i`, 16 in all, apart only by fillers, starting with 3-6."""
    pieces = [p for g in groups[i:] for p in g][:4]
    if len(pieces) < 4 or any(len(p.digits) != 4 for p in pieces) or pieces[0].digits[0] not in "3456":
        return None
    for a, b in zip(pieces, pieces[1:], strict=False):
        if not _FILLER_RE.match(text[a.end : b.start]):
            return None
    last = next(j for j in range(i, len(groups)) if pieces[-1] in groups[j])
    if _identity_number(pieces, text):
        return None
    return last, SensitiveSpan("pan", pieces[0].start, pieces[-1].end, "".join(p.digits for p in pieces), False)


_ID_CONTEXT_RE = re.compile(r"身份证|证件号|手机号|电话|\bid number\b|\bpassport\b|\b(?:phone|mobile|cell) number\b",
                            re.IGNORECASE)


def _identity_number(run: Sequence[DigitPiece], text: str) -> bool:
    """An 18-digit PRC resident id (valid checksum), or any number read where an id or phone number was asked for
    and no card was: a Luhn-valid stretch inside it is chance, not a card."""
    digits = "".join(p.digits for p in run)
    if len(digits) == 18 and cn_id_valid(digits):
        return True
    return _ID_CONTEXT_RE.search(text) is not None and CARD_CONTEXT_RE.search(text) is None


def _long_piece_pan(run: Sequence[DigitPiece]) -> SensitiveSpan | None:
    """ASR sometimes glues a PAN to the next number ("4539148803436467381"): try 13-19 digit prefixes."""
    for piece in run:
        if len(piece.digits) > 19:
            for size in (16, 15, 19, 18, 17, 14, 13):
                if luhn_valid(piece.digits[:size]):
                    return SensitiveSpan("pan", piece.start, piece.end, piece.digits[:size], True)
    return None


NOT_CVV_BEFORE_RE = re.compile(
    r"\b(?:reference|ref|case|claim|ticket|extension|ext|order|member|account|policy|branch|sort code)\b"
    r"[^.?!]{0,12}$|参考号|编号|工号|尾号"
    # the card's last four, said to pick the card: "your card ending 2290", "it ends in 4417"
    r"|\b(?:ending|ends|ended) (?:in |with )?$|\blast (?:four|4)(?: digits)?(?: are| is)?:? $", re.IGNORECASE)


_ROUND_THE_CLOCK_RE = re.compile(r"(?:twenty[- ]four[- ]seven|24 ?[/-]? ?7)$", re.IGNORECASE)


def find_cvv(text: str, pans: Sequence[SensitiveSpan] = ()) -> list[SensitiveSpan]:
    """A 3-4 digit number said right after (or just before) a CVV/CVC/'code on the back' phrase."""
    out: list[SensitiveSpan] = []
    keywords = list(CVV_KEYWORDS_RE.finditer(text))
    if not keywords:
        return out
    for run in digit_runs(text):
        digits = "".join(p.digits for p in run)
        start, end = run[0].start, run[-1].end
        if not 3 <= len(digits) <= 4 or any(p.start <= start < p.end for p in pans):
            continue
        if NOT_CVV_BEFORE_RE.search(text[max(0, start - 30) : start]):
            continue  # "quote reference FR 2291", "extension 4410"
        if _ROUND_THE_CLOCK_RE.match(text[start:end]):
            continue  # "the number on the back of the card, it's staffed twenty-four seven"
        for kw in keywords:
            after = 0 <= start - kw.end() <= 40
            before = 0 <= kw.start() - end <= 25
            if after or before:
                out.append(SensitiveSpan("cvv", start, end, digits, False))
                break
    return out


_EMAIL_RE = re.compile(
    r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b|\b[a-z0-9]+(?:\s+(?:dot|underscore)\s+[a-z0-9]+)*\s+at\s+[a-z0-9]+"
    r"(?:\s+dot\s+(?:com|net|org|co|uk|cn|edu|gov|io|de|fr))+\b",
    re.IGNORECASE,
)
_SSN_RE = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_PHONE_RE = re.compile(r"(?<!\d)(?:1[3-9]\d{9}|\(?\d{3}\)?[ -]\d{3}-\d{4})(?!\d)")
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id_valid(value: str) -> bool:
    """Checksum (ISO 7064 MOD 11-2) of an 18-character PRC resident identity card number."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _CN_ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == value[17].upper()


def find_pii(text: str) -> list[SensitiveSpan]:
    """Emails (written or spoken 'x dot y at z dot com'), US SSNs, PRC ID numbers and phone numbers."""
    out = [SensitiveSpan("email", m.start(), m.end(), m.group()) for m in _EMAIL_RE.finditer(text)]
    out += [SensitiveSpan("ssn", m.start(), m.end(), m.group()) for m in _SSN_RE.finditer(text)]
    out += [SensitiveSpan("phone", m.start(), m.end(), m.group()) for m in _PHONE_RE.finditer(text)]
    for m in re.finditer(r"(?<!\d)\d{17}[\dXx](?!\d)", text):
        if cn_id_valid(m.group()):
            out.append(SensitiveSpan("cn_id", m.start(), m.end(), m.group()))
    return out


def find_sensitive(text: str, kinds: Iterable[str] = ("pan", "cvv")) -> list[SensitiveSpan]:
    """All sensitive spans of the requested kinds, sorted, overlaps resolved in favour of the longer."""
    wanted = set(kinds)
    spans: list[SensitiveSpan] = []
    pans = find_card_numbers(text)
    if "pan" in wanted:
        spans += pans
    if "cvv" in wanted:
        spans += find_cvv(text, pans)
    if wanted - {"pan", "cvv"}:
        spans += [s for s in find_pii(text) if s.kind in wanted]
    spans.sort(key=lambda s: (s.start, -(s.end - s.start)))
    merged: list[SensitiveSpan] = []
    for s in spans:
        if merged and s.start < merged[-1].end:
            continue
        merged.append(s)
    return merged


def redact_text(text: str, kinds: Iterable[str] = ("pan", "cvv")) -> tuple[str, list[SensitiveSpan]]:
    """Replace card numbers and CVVs (and any other requested kinds) with ``[PAN]``, ``[CVV]``...

    Returns the redacted text and the spans, in the *original* text's character offsets, that were
    replaced, so the caller can also mute the matching audio (see `redaction_time_spans`).
    """
    spans = find_sensitive(text, kinds)
    out, at = [], 0
    for s in spans:
        out.append(text[at : s.start])
        out.append(f"[{s.kind.upper()}]")
        at = s.end
    out.append(text[at:])
    return "".join(out), spans


def char_times(event: TranscriptEvent) -> list[tuple[int, int, float, float]]:
    """Character span and media time of each word of `event` (by locating the words in its text)."""
    out, cursor = [], 0
    for w in event.words:
        needle = w.text.strip()
        if not needle:
            continue
        at = event.text.find(needle, cursor)
        if at < 0:
            continue
        out.append((at, at + len(needle), w.start_s, w.end_s))
        cursor = at + len(needle)
    return out


def time_of_chars(event: TranscriptEvent, start: int, end: int) -> tuple[float, float]:
    """Media time covered by characters start..end of `event.text`.

    Uses word timestamps when they cover the span, else interpolates over the segment by character position.
    """
    words = [t for t in char_times(event) if t[1] > start and t[0] < end]
    if words:
        return min(t[2] for t in words), max(t[3] for t in words)
    n = max(len(event.text), 1)
    dur = event.end_s - event.start_s
    return event.start_s + dur * start / n, event.start_s + dur * min(end, n) / n


def redaction_time_spans(
    event: TranscriptEvent, kinds: Iterable[str] = ("pan", "cvv"), pad_s: float = 0.25
) -> list[tuple[float, float]]:
    """Audio spans (seconds, padded) to mute for the sensitive data spoken in a final transcript event."""
    out = []
    for s in find_sensitive(event.text, kinds):
        t0, t1 = time_of_chars(event, s.start, s.end)
        out.append((max(event.start_s, t0 - pad_s), min(event.end_s, t1 + pad_s)))
    return out
