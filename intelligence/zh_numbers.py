"""Numbers in Mandarin text, both ways, with cn2an (a maintained converter) plus the reading rules it lacks.

- `spell_numbers`: Arabic digits to characters, as a reference transcript writes them: quantities as cardinals
  (180天 -> 一百八十天, 3.2% -> 百分之三点二, 20万 -> 二十万), identifiers read digit by digit (工号8623 ->
  工号八六二三, long digit runs, phone and card numbers), dates as cn2an reads them (2023年 -> 二零二三年). Used to
  score captions against such references (CER).
- `inverse_normalize`: characters to digits for captions, only where the characters are plainly a number (a run
  of numerals next to a unit, after an identifier word, or a percentage), so words such as 一下 or 统一 stay.
"""

from __future__ import annotations

import re
import warnings

ZH_DIGIT_CHARS = "零一二三四五六七八九"
# words after which a number is an identifier, read digit by digit
ID_WORDS = ("工号", "编号", "尾号", "卡号", "账号", "帐号", "电话", "手机", "号码", "验证码", "密码", "代码", "单号")
_ID_RE = re.compile("(" + "|".join(ID_WORDS) + r")(是|为|：|:)?\s*(\d+)")
_LONG_DIGITS_RE = re.compile(r"(?<![\d.])(\d{5,}|0\d{2,})(?![\d.%年])")


def _digit_by_digit(digits: str) -> str:
    return "".join(ZH_DIGIT_CHARS[int(d)] for d in digits)


def spell_numbers(text: str) -> str:
    """Arabic numerals in `text` written out in Chinese characters (see the module docstring)."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = _ID_RE.sub(lambda m: m.group(1) + (m.group(2) or "") + _digit_by_digit(m.group(3)), text)
    text = _LONG_DIGITS_RE.sub(lambda m: _digit_by_digit(m.group(1)), text)
    if not any(ch.isdigit() for ch in text):
        return text
    import cn2an

    with warnings.catch_warnings():  # cn2an warns on fragments it leaves alone; nothing to act on
        warnings.simplefilter("ignore")
        try:
            return cn2an.transform(text, "an2cn")
        except (ValueError, KeyError, IndexError):
            return text


_NUMERALS = "零〇一二两三四五六七八九十百千万亿点"
_UNITS = "天元块万岁个月日号年期份笔次张条分秒小时周%"
# two or more numerals before a unit (九十天, 二十万); a lone numeral (三天, 两个) reads better as a character
_QUANTITY_RE = re.compile(f"([{_NUMERALS}]{{2,}})(?=[{_UNITS}])")
_PERCENT_RE = re.compile(f"百分之[{_NUMERALS}]+")
_SPOKEN_DIGITS = {**{c: str(i) for i, c in enumerate(ZH_DIGIT_CHARS)}, "〇": "0", "幺": "1", "两": "2"}
_ID_CHARS_RE = re.compile("(" + "|".join(ID_WORDS) + f")(是|为)?([{''.join(_SPOKEN_DIGITS)}]{{2,}})")


def inverse_normalize(text: str) -> str:
    """Plain numbers in digits: 工号八六二三 -> 工号8623, 百分之三点二 -> 3.2%, 一百八十天 -> 180天."""
    import cn2an

    def to_digits(chars: str) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return str(cn2an.cn2an(chars, "smart"))
            except (ValueError, KeyError, IndexError):
                return chars

    def id_digits(m: re.Match) -> str:
        return m.group(1) + (m.group(2) or "") + "".join(_SPOKEN_DIGITS[c] for c in m.group(3))

    text = _ID_CHARS_RE.sub(id_digits, text)
    text = _PERCENT_RE.sub(lambda m: to_digits(m.group(0)[3:]) + "%", text)
    return _QUANTITY_RE.sub(lambda m: to_digits(m.group(1)), text)
