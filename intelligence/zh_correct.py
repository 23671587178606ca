"""Phonetic correction of Mandarin captions towards a domain lexicon (工号 heard as 功耗, 理财 as 李财).

Whisper base writes many domain words as homophones. Where a span of a final caption *sounds* like a lexicon
term and is not written as one, the term replaces it, within a budget chosen on dev data so that correct text is
left alone:
- two-syllable terms only on an exact match of the toned pinyin (功耗 gōng hào = 工号 gōng hào; 年华 nián huá is
  not 年化 nián huà);
- terms of three or more syllables also on a fuzzy match (tones ignored, the initials and finals ASR confuses
  merged, as in the compliance matcher), with at least one character already right.
Each correction is reported (`Correction`: what was written, what replaced it, where), so captions can keep the
original beside the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from intelligence.compliance.text import fuzzy_key

_HAN_LO, _HAN_HI = "\u4e00", "\u9fff"


def _is_han(ch: str) -> bool:
    return _HAN_LO <= ch <= _HAN_HI


@dataclass(frozen=True, slots=True)
class Correction:
    """One replacement: characters `start`..`end` of the original text, `original` written there, now `term`.
    `kind`: "lexicon" (a domain term, this module), "homophone" (a likelier word, intelligence/zh_homophones) or
    "number" (a spoken number written in digits, intelligence/zh_numbers)."""

    start: int
    end: int
    original: str
    term: str
    kind: str = "lexicon"


@lru_cache(maxsize=4096)
def _toned(text: str) -> tuple[str, ...]:
    from pypinyin import Style, lazy_pinyin

    return tuple(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True))


def _toneless(toned: Sequence[str]) -> tuple[str, ...]:
    return tuple(fuzzy_key(s.rstrip("012345")) for s in toned)


@dataclass(frozen=True)
class _Term:
    text: str
    toned: tuple[str, ...]
    fuzzy: tuple[str, ...]


class PhoneticCorrector:
    """Corrects spans of Mandarin text that sound like a term of `lexicon` (terms of two characters or more)."""

    def __init__(self, lexicon: Iterable[str]) -> None:
        terms = []
        for t in dict.fromkeys(x.strip() for x in lexicon):
            if len(t) >= 2 and all(_is_han(c) for c in t):
                toned = _toned(t)
                terms.append(_Term(t, toned, _toneless(toned)))
        # longer terms first: 录音录像 before a two-character term inside it
        self.terms = sorted(terms, key=lambda x: -len(x.text))

    def correct(self, text: str) -> tuple[str, list[Correction]]:
        """The corrected text and the corrections made (in text order)."""
        if not self.terms or not any(_is_han(c) for c in text):
            return text, []
        han_pos = [i for i, c in enumerate(text) if _is_han(c)]
        han = "".join(text[i] for i in han_pos)
        toned = _toned(han)
        if len(toned) != len(han):  # pypinyin kept a non-han run together: no reliable per-character reading
            return text, []
        fuzzy = _toneless(toned)
        taken = [False] * len(han)
        found: list[tuple[int, int, str]] = []  # (han start, han end, term)
        for term in self.terms:
            n = len(term.text)
            for k in range(len(han) - n + 1):
                if any(taken[k:k + n]):
                    continue
                window = han[k:k + n]
                if window == term.text:
                    for j in range(k, k + n):  # already right: protect it from shorter terms
                        taken[j] = True
                    continue
                if han_pos[k + n - 1] - han_pos[k] != n - 1:  # the span crosses punctuation or a space
                    continue
                if toned[k:k + n] == term.toned or (
                        n >= 3 and fuzzy[k:k + n] == term.fuzzy and any(a == b for a, b in zip(window, term.text,
                                                                                                strict=True))):
                    found.append((k, k + n, term.text))
                    for j in range(k, k + n):
                        taken[j] = True
        if not found:
            return text, []
        found.sort()
        out, corrections, at = [], [], 0
        for k, end, term in found:
            start_c, end_c = han_pos[k], han_pos[end - 1] + 1
            out.append(text[at:start_c])
            out.append(term)
            corrections.append(Correction(start_c, end_c, text[start_c:end_c], term))
            at = end_c
        out.append(text[at:])
        return "".join(out), corrections


@lru_cache(maxsize=32)
def corrector_for(terms: tuple[str, ...]) -> PhoneticCorrector:
    """A shared corrector per lexicon (sessions of one deployment mostly share it; building one reads pinyin)."""
    return PhoneticCorrector(terms)
