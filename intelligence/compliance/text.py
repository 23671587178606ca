"""Text normalisation for rule matching: one token stream for English words and Chinese characters.

Matching works on tokens, not raw strings, so ASR punctuation, spacing, case and Traditional/Simplified
variants do not matter. Every token keeps its character span in the *original* text so evidence can quote
the transcript exactly and redaction can map back to audio time.

Chinese tokens also carry their toneless pinyin and a "fuzzy" pinyin key (zh/z, ch/c, sh/s, l/n, ing/in,
eng/en merged). Whisper-base Mandarin output has a character error rate around 0.4 on call audio and most of
its errors are homophones or near-homophones (录像 -> 路相, 非 -> 飞, 工号 -> 公号), so comparing sounds rather
than characters recovers most of what was said.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff"
_TOKEN_RE = re.compile(rf"[a-z0-9]+(?:'[a-z]+)?|[{_HAN}]")
_HAN_RE = re.compile(rf"[{_HAN}]")
_HAN_RUN_RE = re.compile(rf"[{_HAN}]+")

_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z",
             "c", "s", "y", "w")
_FUZZY_INITIAL = {"zh": "z", "ch": "c", "sh": "s", "l": "n"}
_FUZZY_FINAL = {"ing": "in", "eng": "en"}


def split_syllable(syllable: str) -> tuple[str, str]:
    """Split a toneless pinyin syllable into (initial, final); the initial may be empty."""
    for initial in _INITIALS:
        if syllable.startswith(initial) and len(syllable) > len(initial):
            return initial, syllable[len(initial):]
    return "", syllable


@lru_cache(maxsize=8192)  # a pure function of a short string: memoised, not shared state
def fuzzy_parts(syllable: str) -> tuple[str, str]:
    """(initial, final) after merging the pairs that Mandarin speakers and ASR confuse most."""
    initial, final = split_syllable(syllable)
    return _FUZZY_INITIAL.get(initial, initial), _FUZZY_FINAL.get(final, final)


def fuzzy_key(syllable: str) -> str:
    """A comparison key for a pinyin syllable that ignores the common near-homophone distinctions."""
    initial, final = fuzzy_parts(syllable)
    return initial + final


def contains_han(text: str) -> bool:
    """True if the text has at least one CJK ideograph."""
    return _HAN_RE.search(text) is not None


def han_ratio(text: str) -> float:
    """Share of CJK ideographs among the letters and ideographs of `text` (0 for empty text)."""
    han = len(_HAN_RE.findall(text))
    latin = len(re.findall(r"[A-Za-z]", text))
    return han / (han + latin / 4.0) if han + latin else 0.0


@dataclass(frozen=True, slots=True)
class Token:
    """One normalised token: a lowercase English word or digit run, or a single Chinese character."""

    text: str
    start: int
    end: int
    pinyin: str = ""
    key: str = ""

    @property
    def is_han(self) -> bool:
        return bool(self.pinyin)


@dataclass(frozen=True, slots=True)
class SpokenView:
    """The normalised text with its Arabic numbers as said in Mandarin (3.2% -> 百分之三点二), for regex phrases
    written as said; `starts`/`ends` give each character's span in the original text."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class NormText:
    """A text with its normalised form (same length as the original) and its tokens.

    In Mandarin text, numbers written in digits are tokenised as said (工号8623 gives the tokens 工 号 八 六 二 三,
    each spanning the digits), so phrases and pinyin patterns written as said match captions written in digits;
    `spoken` is the same for regex phrases (None where the text has no such number)."""

    original: str
    norm: str
    tokens: tuple[Token, ...]
    spoken: SpokenView | None = None

    def extend(self, other: NormText, sep: str = " ") -> NormText:
        """This text, a separator and `other`, with `other`'s tokens shifted (no re-normalisation)."""
        shift = len(self.original) + len(sep)
        moved = tuple(Token(t.text, t.start + shift, t.end + shift, t.pinyin, t.key) for t in other.tokens)
        spoken = None
        if self.spoken is not None or other.spoken is not None:
            a, b = self.spoken or _identity_view(self.norm), other.spoken or _identity_view(other.norm)
            gap = tuple(range(len(self.original), shift))
            spoken = SpokenView(a.text + sep + b.text, a.starts + gap + tuple(s + shift for s in b.starts),
                                a.ends + tuple(g + 1 for g in gap) + tuple(e + shift for e in b.ends))
        return NormText(self.original + sep + other.original, self.norm + sep + other.norm, self.tokens + moved,
                        spoken)

    def span_text(self, start: int, end: int) -> str:
        """The original text between two character offsets, stripped."""
        return self.original[start:end].strip()

    def token_span(self, first: int, last: int) -> tuple[int, int]:
        """Character span covering tokens first..last (inclusive)."""
        return self.tokens[first].start, self.tokens[last].end


def _identity_view(norm: str) -> SpokenView:
    return SpokenView(norm, tuple(range(len(norm))), tuple(range(1, len(norm) + 1)))


def _spoken_view(norm: str, spans: Sequence[Any]) -> SpokenView:
    text, starts, ends, at = [], [], [], 0
    for s in spans:
        text.append(norm[at:s.start])
        starts.extend(range(at, s.start))
        ends.extend(range(at + 1, s.start + 1))
        text.append(s.replacement)
        starts.extend([s.start] * len(s.replacement))
        ends.extend([s.end] * len(s.replacement))
        at = s.end
    text.append(norm[at:])
    starts.extend(range(at, len(norm)))
    ends.extend(range(at + 1, len(norm) + 1))
    return SpokenView("".join(text), tuple(starts), tuple(ends))


class Converter(Protocol):
    def convert(self, text: str) -> str: ...


class PinyinFn(Protocol):
    def __call__(self, text: str) -> list[str]: ...


def _default_pinyin(text: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(text, style=Style.NORMAL, errors=lambda chars: list(chars))


class ClauseScorer(Protocol):
    """Meaning-level detectors injected by the caller (models/clauses: sentence embedding + trained heads)."""

    def hits(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """For each text, the families it expresses (over their thresholds) with their probabilities."""
        ...


class TextNormalizer:
    """Normalises transcript text for matching. Holds its own OpenCC converter (created on first use) and a
    memo of normalised policy phrases, so matchers for many sessions compile their phrases once: share one
    normaliser across the engines of a process (pass it to `ComplianceEngine(normalizer=...)`).
    """

    def __init__(self, clause_scorer: ClauseScorer | None = None) -> None:
        """`clause_scorer`: the meaning-level detectors that answer `clause:<family>` phrases (see
        matching.py); shared like the normaliser itself. Without one such phrases never match."""
        self._t2s: Converter | None = None
        self._phrases: dict[str, NormText] = {}
        # Compiled matcher forms of policy phrases (owned by matching.PhraseMatcher, memoised here).
        self.compiled_phrases: dict[str, Any] = {}
        self.clause_scorer = clause_scorer

    def normalize_phrase(self, phrase: str) -> NormText:
        """`normalize` for policy phrases, memoised (phrases repeat across rules and sessions)."""
        nt = self._phrases.get(phrase)
        if nt is None:
            nt = self.normalize(phrase)
            if len(self._phrases) < 50_000:
                self._phrases[phrase] = nt
        return nt

    def _converter(self) -> Converter:
        if self._t2s is None:
            import opencc

            self._t2s = opencc.OpenCC("t2s")
        return self._t2s

    def _to_simplified(self, text: str) -> str:
        if not contains_han(text):
            return text
        converted = self._converter().convert(text)
        if len(converted) == len(text):
            return converted
        # Phrase-level conversions that change length would break offsets: fall back to char by char.
        conv = self._converter()
        out = []
        for ch in text:
            c = conv.convert(ch)
            out.append(c if len(c) == 1 else ch)
        return "".join(out)

    def normalize(self, text: str) -> NormText:
        """Lowercase, NFKC (full-width forms), Simplified Chinese, curly quotes; offsets preserved 1:1."""
        chars = []
        for ch in text:
            c = unicodedata.normalize("NFKC", ch)
            if len(c) != 1:
                c = ch
            c = c.lower() if len(c.lower()) == 1 else c
            if c in "\u2019\u2018`\u00b4":
                c = "'"
            chars.append(c)
        norm = self._to_simplified("".join(chars))
        spoken = None
        if contains_han(norm) and any(ch.isdigit() for ch in norm):
            from intelligence.zh_numbers import spoken_spans

            spans = spoken_spans(norm)
            if spans:
                spoken = _spoken_view(norm, spans)
        if spoken is None:
            return NormText(text, norm, self._tokens(norm))
        # tokens of the spoken form, each at the original span of what it reads
        tokens = tuple(Token(t.text, spoken.starts[t.start], spoken.ends[t.end - 1], t.pinyin, t.key)
                       for t in self._tokens(spoken.text))
        return NormText(text, norm, tokens, spoken)

    @staticmethod
    def _tokens(norm: str) -> tuple[Token, ...]:
        pinyin_at: dict[int, str] = {}
        for run in _HAN_RUN_RE.finditer(norm):
            syllables = _default_pinyin(run.group())
            if len(syllables) != len(run.group()):  # defensive: never misalign offsets
                syllables = [(_default_pinyin(c) or [c])[0] for c in run.group()]
            for i, syl in enumerate(syllables):
                pinyin_at[run.start() + i] = syl
        tokens = []
        for m in _TOKEN_RE.finditer(norm):
            py = pinyin_at.get(m.start(), "") if len(m.group()) == 1 else ""
            tokens.append(Token(m.group(), m.start(), m.end(), py, fuzzy_key(py) if py else ""))
        return tuple(tokens)


_CONTRACTIONS = (
    ("can't", ("cannot", "can not")),
    ("won't", ("will not",)),
    ("n't", (" not",)),
    ("'re", (" are",)),
    ("'m", (" am",)),
    ("'ll", (" will",)),
    ("'ve", (" have",)),
    ("'s", (" is",)),
    ("'d", (" would",)),
)


def phrase_variants(phrase: str) -> list[str]:
    """An English phrase plus its expanded forms ("can't" -> "cannot"), so pack authors write each phrase once."""
    variants = {phrase}
    for short, longs in _CONTRACTIONS:
        for v in list(variants):
            if short in v:
                for long in longs:
                    variants.add(v.replace(short, long))
    return sorted(variants)
