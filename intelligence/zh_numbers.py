"""Numbers in Mandarin text, both ways, with cn2an (a maintained converter) plus the reading rules it lacks.

- `spoken_spans` / `spell_numbers`: Arabic digits as they are said, in characters: quantities as cardinals
  (180天 -> 一百八十天, 3.2% -> 百分之三点二, 20万 -> 二十万, 2万 -> 两万), identifiers read digit by digit
  (工号8623 -> 工号八六二三, long digit runs, phone and card numbers), four-digit years digit by digit
  (2023年 -> 二零二三年). Used to score captions against references written that way (CER) and by the
  compliance matcher, whose Mandarin phrases are written as said (百分之, 两万).
- `written_spans` / `inverse_normalize`: characters to digits for captions, only where the characters are plainly
  a number (a run of numerals next to a unit, after an identifier word, or a percentage), so words such as 一下
  or 统一 stay, and ranges said as adjacent numerals (三五天) are left as said.
Both directions report spans of the text they read, so callers can map offsets between the two forms; spelling
what `inverse_normalize` wrote gives back what was said (tested on every Mandarin reference we hold).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

ZH_DIGIT_CHARS = "零一二三四五六七八九"
# words after which a number is an identifier, read digit by digit
ID_WORDS = ("工号", "编号", "尾号", "卡号", "账号", "帐号", "电话", "手机", "号码", "验证码", "密码", "代码", "单号")
# (工号R690: letters of a staff code are said as letters, its digits one by one; 号 alone covers misheard
# identifier words such as 公号)
_ID_RE = re.compile("(?:" + "|".join(ID_WORDS) + r")(?:是|为|：|:)?\s*[A-Za-z]{0,3}(\d+)|号(?:是|为|：|:)?\s*[A-Za-z]{0,3}(\d{3,})")
# a number not glued to Latin letters (R2, C3 and model names stay as written)
_NUMBER_RE = re.compile(r"(?<![A-Za-z\d.])(\d+(?:\.\d+)?)(%?)(?![A-Za-z\d])")
_FRACTION_RE = re.compile(r"(?<![\d.])(\d+)/(\d+)(?![\d.])")
_AFTER_QUANTITY = "元块万亿天个份年月岁倍"  # a long run before these is an amount, not an identifier
_LEADING_TWO_RE = re.compile("(?<![零一二三四五六七八九十百千万亿点])二(?=[千万亿])")


@dataclass(frozen=True, slots=True)
class NumberSpan:
    """Characters `start`..`end` of a text, read as `replacement` (spoken characters or written digits)."""

    start: int
    end: int
    replacement: str


def _digit_by_digit(digits: str) -> str:
    return "".join(ZH_DIGIT_CHARS[int(d)] for d in digits)


def _cardinal(number: str) -> str:
    import cn2an

    with warnings.catch_warnings():  # cn2an warns on input it reads anyway; nothing to act on
        warnings.simplefilter("ignore")
        try:
            spelled = cn2an.an2cn(number)
        except (ValueError, KeyError, IndexError):
            return number
    # a leading 2 before 千/万/亿 is said 两 (2万 -> 两万), as references write it
    return _LEADING_TWO_RE.sub("两", spelled)


class _Spans:
    """Non-overlapping spans collected in rule order: the first rule to claim characters keeps them."""

    def __init__(self) -> None:
        self.spans: list[NumberSpan] = []
        self._taken: set[int] = set()

    def add(self, start: int, end: int, replacement: str | None) -> None:
        if replacement is not None and not self._taken.intersection(range(start, end)):
            self.spans.append(NumberSpan(start, end, replacement))
            self._taken.update(range(start, end))

    def in_order(self) -> list[NumberSpan]:
        return sorted(self.spans, key=lambda s: s.start)


def apply_spans(text: str, spans: list[NumberSpan]) -> str:
    """`text` with each span replaced by its `replacement` (spans in text order, not overlapping)."""
    out, at = [], 0
    for s in spans:
        out.append(text[at:s.start])
        out.append(s.replacement)
        at = s.end
    out.append(text[at:])
    return "".join(out)


def spoken_spans(text: str) -> list[NumberSpan]:
    """Every Arabic number in `text` with how it is said in Mandarin, in text order, never overlapping."""
    if not any(ch.isdigit() for ch in text):
        return []
    found = _Spans()
    add = found.add
    for m in _ID_RE.finditer(text):
        g = 1 if m.group(1) is not None else 2  # after 号 alone only a run of 3+ (一号是R5 is a product's level)
        add(m.start(g), m.end(g), _digit_by_digit(m.group(g)))
    for m in _FRACTION_RE.finditer(text):  # 1/3 -> 三分之一
        add(m.start(), m.end(), _cardinal(m.group(2)) + "分之" + _cardinal(m.group(1)))
    for m in _NUMBER_RE.finditer(text):
        number, percent = m.group(1), m.group(2)
        after = text[m.end():m.end() + 1]
        if percent:
            said = "百分之" + _cardinal(number)
        elif "." not in number and after == "年" and len(number) == 4:
            said = _digit_by_digit(number)  # a year: 2023年 -> 二零二三年
        elif "." not in number and (len(number) >= 5 or (number[0] == "0" and len(number) >= 3)) \
                and not (after and after in _AFTER_QUANTITY):
            said = _digit_by_digit(number)  # phone, card, account and reference numbers
        else:
            said = _cardinal(number)
            if said == "二" and after and after in "千万亿":
                said = "两"  # 2万 -> 两万
        add(m.start(), m.end(), said)
    return found.in_order()


def spell_numbers(text: str) -> str:
    """Arabic numerals in `text` written out in Chinese characters (see the module docstring)."""
    return apply_spans(text, spoken_spans(text))


_NUMERALS = "零〇一二两三四五六七八九十百千万亿点"
_UNITS = "天元块万岁个月日号年期份笔次张条分秒小时周%"
# two or more numerals before a unit (九十天, 二十万); a lone numeral (三天, 两个) reads better as a character
_QUANTITY_RE = re.compile(f"([{_NUMERALS}]{{2,}})(?=[{_UNITS}])")
_PERCENT_RE = re.compile(f"百分之([{_NUMERALS}]*[{_NUMERALS.replace('点', '')}])(?!点)")  # no dangling 点
_SPOKEN_DIGITS = {**{c: str(i) for i, c in enumerate(ZH_DIGIT_CHARS)}, "〇": "0", "幺": "1", "两": "2"}
_ID_CHARS_RE = re.compile("(?:" + "|".join(ID_WORDS) + f")(?:是|为)?([{''.join(_SPOKEN_DIGITS)}]{{2,}})")


def _to_digits(chars: str) -> str | None:
    """A numeral run as digits (八万 -> 8万, 三百万 -> 300万 as written Chinese does), None if not a number."""
    import cn2an

    unit = ""
    if len(chars) > 1 and chars[-1] in "万亿" and not any(c in "万亿" for c in chars[:-1]):
        chars, unit = chars[:-1], chars[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = cn2an.cn2an(chars, "smart")
        except (ValueError, KeyError, IndexError):
            return None
    written = str(value)
    return (written[:-2] if written.endswith(".0") else written) + unit


def written_spans(text: str) -> list[NumberSpan]:
    """Spans of spoken Mandarin numbers in `text` with their digit form, in text order, never overlapping."""
    found = _Spans()
    add = found.add
    for m in _ID_CHARS_RE.finditer(text):
        add(m.start(1), m.end(1), "".join(_SPOKEN_DIGITS[c] for c in m.group(1)))
    for m in _PERCENT_RE.finditer(text):
        digits = _to_digits(m.group(1))
        add(m.start(), m.end(), digits + "%" if digits is not None else None)
    for m in _QUANTITY_RE.finditer(text):
        chars = m.group(1)
        if len(chars) < 4 and not any(c in "十百千万亿点" for c in chars):
            continue  # 三五天, 七八个: a range said as adjacent numerals, not a number
        add(m.start(1), m.end(1), _to_digits(chars))
    return found.in_order()


def inverse_normalize(text: str) -> str:
    """Plain numbers in digits: 工号八六二三 -> 工号8623, 百分之三点二 -> 3.2%, 一百八十天 -> 180天."""
    return apply_spans(text, written_spans(text))
