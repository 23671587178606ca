"""Spoken-number vocabulary shared by the commit policy (which must not split a number) and the card-data rules
(which read numbers said as words)."""

from __future__ import annotations

from intelligence.text import normalize_token

UNITS = {
    "zero": 0, "oh": 0, "o": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9,
}
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
        "ninety": 90}
REPEAT = {"double": 2, "triple": 3}
ZH_DIGITS = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5",
             "六": "6", "七": "7", "八": "8", "九": "9", "拐": "7", "洞": "0"}

# "o" alone is too often the letter to hold a commit for
_NUMBER_WORDS = frozenset({*UNITS, *TEENS, *TENS, *REPEAT, "hundred", "thousand"} - {"o"})
_ZH_NUMERALS = frozenset({*ZH_DIGITS, "十", "百", "千", "万"})


def is_number_word(text: str) -> bool:
    """True for a digit group, an English number word or a run of Chinese numerals (one spoken number's piece)."""
    key = normalize_token(text)
    return bool(key) and (key.isdigit() or key in _NUMBER_WORDS or all(ch in _ZH_NUMERALS for ch in key))


ORDINALS = frozenset({
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
    "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth",
    "twentieth", "thirtieth", "fortieth", "fiftieth", "sixtieth", "seventieth", "eightieth", "ninetieth",
    "hundredth", "thousandth",
})
_ORDINAL_SUFFIXES = ("st", "nd", "rd", "th")


def is_numeric_token(text: str) -> bool:
    """Any written form of (a piece of) a number: digits ("1988", "542-5", "$600"), ordinals ("8th",
    "eighth"), number words and hyphenated compounds ("eighty-eight"). Whisper writes the same spoken number
    in any of these forms from one decode to the next, so comparisons of decodes treat them alike."""
    key = normalize_token(text)
    if not key:
        return False
    if is_number_word(text) or key in ORDINALS:
        return True
    if key[:-2].isdigit() and key.endswith(_ORDINAL_SUFFIXES):
        return True
    if any(ch.isdigit() for ch in key) and all(ch.isdigit() or ch in "stndrh" for ch in key):
        return True
    # compounds written as one token: "eightyeight" (from "eighty-eight"), "twentyfirst"
    for ten in TENS:
        rest = key[len(ten):]
        if key.startswith(ten) and (rest in UNITS or rest in ORDINALS):
            return True
    return False
