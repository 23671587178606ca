"""Risk levels said as numbers on a scale ("a three out of ten", "band two on our scale of seven", "level five, the
highest"), in English, and whose level each one is: the customer's profile or the product's rating.

Phrase lists name levels one scale at a time and miss the scale a firm actually uses (7-point SRRI bands, 10-point
questionnaire scores). Here every number is read against its scale and mapped onto the packs' 1-5 range, so "three
out of ten" (1.9) compares with "band six of seven" (4.3) and with a profile said in words (cautious = 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Role = Literal["profile", "product"]

_NUM_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
              "ten": 10}
_NUM = r"(?:10|[1-9]|one|two|three|four|five|six|seven|eight|nine|ten)"
_NOT_AFTER = r"(?!\s*(?:percent|per cent|%|years?|months?|weeks?|days?|people|customers|clients|of (?:us|them|you)))"
# "three out of ten", "a two on our scale of seven", "band six", "level one", "risk rating 5", "SRRI 6"
_OUT_OF_RE = re.compile(rf"\b(?P<n>{_NUM}) (?:out of|outta|in) (?P<m>{_NUM})\b{_NOT_AFTER}")
_ON_SCALE_RE = re.compile(
    rf"\b(?P<n>{_NUM}) on (?:our|the|a|its|their|that|this|your)(?: [a-z-]+){{0,3}} (?:scale|ladder|indicator|meter|"
    rf"spectrum)(?: (?:of (?:one|1) to|from (?:one|1) to|of|out of) (?P<m>{_NUM}))?")
_BAND_RE = re.compile(
    rf"\b(?:risk )?(?:band|level|tier|grade|bucket|risk class|risk category|risk rating|risk score|risk grade|"
    rf"srri|sri)(?: of)? (?P<n>{_NUM})\b(?: (?:out of|of) (?P<m>{_NUM})\b)?{_NOT_AFTER}")
# "that's a nine": a bare number, read only where the turn names its scale
_BARE_RE = re.compile(rf"\b(?:that's|it's|is|that one's|this one's|sits at|comes in at|rated|rated at) (?:a|an) "
                      rf"(?P<n>{_NUM})\b(?![ -]?(?:year|month|week|day|percent|per cent|%|star|point|hour))")
_TURN_SCALE_RE = re.compile(rf"\b(?:scale of (?:one|1) to|scale of|out of|one to|1 to|1-)\s?(?P<m>{_NUM})\b")
_TOP_RE = re.compile(r"\b(?:the )?(?:highest|top|riskiest|punchiest|most adventurous|most aggressive|most volatile) "
                     r"(?:level|band|rating|risk|tier|grade|category|one|on our scale|we (?:do|offer|have))\b"
                     r"|\b(?:class(?:es|ed|ifies|ified)?|rate[sd]?|grade[sd]?|categori[sz](?:es|ed)|flag(?:s|ged)?)"
                     r"(?: it| this(?: one)?| that(?: one)?| the (?:fund|product|portfolio|etf|note|bond|plan))? "
                     r"as (?:a |an )?(?:very |the )?(?:high|highest|higher)[- ]risk\b")

# Whose level a number is, from the words nearest before it (closest cue wins).
_PROFILE_CUES = re.compile(
    r"\b(?:profile|questionnaire|attitude|appetite|tolerance|assessment|on file|came back|came out|risk score|"
    r"suitability|your score|your rating|your result|"
    r"investor type|you scored|scored you|rated you|put you|puts you|placed you|you're|you are|you came|you sit)\b")
_PRODUCT_CUES = re.compile(
    r"\b(?:fund|funds|portfolio|product|etf|etfs|bond|bonds|plan|note|notes|tracker|trust|strategy|option|this one|"
    r"that one|that one's|this one's|classed|classes|classified|classifies|rates it|rated|rates|sits|sitting|"
    r"comes in|is rated|we rate|product team)\b")
_NEAR_YOU = re.compile(r"\b(?:you|your)\b")
_CONTEXT_CHARS = 90


@dataclass(frozen=True, slots=True)
class ScaleMention:
    """A risk level said as a number: its role, its level mapped onto 1-5, and its span in the text."""

    role: Role
    level: float
    start: int
    end: int
    # False when the scale's size was not said ("rated four on our scale"): the level assumes a 1-5 scale
    scale_stated: bool = True


def _num(word: str | None) -> int | None:
    if word is None:
        return None
    return int(word) if word.isdigit() else _NUM_WORDS.get(word)


def _on_five(n: int, m: int) -> float:
    """Level n of an m-point scale on the 1-5 range (1 -> 1, m -> 5)."""
    if m <= 1:
        return 5.0
    return round(1 + (min(n, m) - 1) * 4 / (m - 1), 2)


def _role(text: str, start: int, floor: int) -> Role | None:
    left = text[max(floor, start - _CONTEXT_CHARS): start]
    prof = [m.end() for m in _PROFILE_CUES.finditer(left)]
    prod = [m.end() for m in _PRODUCT_CUES.finditer(left)]
    if prof or prod:
        return "profile" if max(prof, default=-1) > max(prod, default=-1) else "product"
    # "you" close before the number: "you're a two", "it puts you at a three"
    if any(m.end() > len(left) - 25 for m in _NEAR_YOU.finditer(left)):
        return "profile"
    return None


def scale_mentions(text: str) -> list[ScaleMention]:
    """Risk levels said as numbers in `text` (lower-cased English), each with its role.

    Only texts that talk about risk are read (a scale, a band, a profile, a rating), so "two out of three payments"
    gives nothing. A number whose role the words around it do not tell is the product's when the turn's other number
    is the profile's, and otherwise the product's only when nothing ties it to "you"."""
    if not re.search(r"\b(?:risk|scale|band|profile|questionnaire|attitude|appetite|cautious|conservative|adventurous|"
                     r"aggressive|srri|sri|suitability|rated|rating)\b", text):
        return []
    scale_m = [_num(m.group("m")) for m in _TURN_SCALE_RE.finditer(text)]
    turn_scale = max((m for m in scale_m if m and m > 1), default=None)
    raw: list[tuple[int, int, int, int | None]] = []  # start, end, n, m
    taken: list[tuple[int, int]] = []
    for rx in (_OUT_OF_RE, _ON_SCALE_RE, _BAND_RE, _BARE_RE):
        if rx is _BARE_RE and not (turn_scale or raw):
            continue
        for m in rx.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            n = _num(m.group("n"))
            if n is None:
                continue
            taken.append((m.start(), m.end()))
            raw.append((m.start(), m.end(), n, _num(m.groupdict().get("m"))))
    out: list[ScaleMention] = []
    floor = 0
    roles: list[Role | None] = []
    for start, end, n, m in sorted(raw):
        scale = m or turn_scale or (5 if n <= 5 else 7 if n <= 7 else 10)
        if n > scale:
            continue
        roles.append(_role(text, start, floor))
        out.append(ScaleMention("product", _on_five(n, scale), start, end, bool(m or turn_scale)))
        floor = end
    for m in _TOP_RE.finditer(text):
        # "a six out of seven, the punchiest one we do" is one rating said twice
        if not any(m.start() < x.end + 40 and x.start < m.end() for x in out):
            roles.append("product")
            out.append(ScaleMention("product", 5.0, m.start(), m.end()))
    resolved: list[ScaleMention] = []
    for i, (mention, role) in enumerate(zip(out, roles, strict=True)):
        if role is None:
            earlier = [r for r in roles[:i] if r == "profile"]
            role = "product" if earlier or len(out) == 1 else "profile"
        resolved.append(ScaleMention(role, mention.level, mention.start, mention.end, mention.scale_stated))
    return sorted(resolved, key=lambda x: x.start)
