"""Homophone correction of Mandarin captions with a word-frequency language model (保险 written 报显, 犹豫期 as 由于七).

Whisper base usually hears the right syllables and writes the wrong characters for them: most of its Mandarin
substitutions are homophones. This module re-chooses the characters of each run of Chinese text the way a pinyin
input method does, restricted to what was heard: the run is segmented into dictionary words (jieba's dictionary,
350,000 words with corpus frequencies, shipped inside the PyPI package), where a word may replace the characters
under it only if it is read the same way (toneless pinyin) and is at least two characters long. A replacement
costs `change_cost` (log-probability) per changed character, so text is changed only where the replacement makes
the sentence far more likely: "报显" (two rare single characters) becomes "保险"; a name or any single character is
never touched, and a correct word is kept because the other reading gains nothing.

The language model can be weighted towards a domain (`HomophoneParams.domain_terms`: the packaged glossary of
wealth management and insurance sales, models/lexicon/zh_finance_glossary.txt, and the deployment's own terms).
A domain word counts as frequent, may be longer than four characters, and may also replace a span that reads
alike only once the initials and finals ASR confuses are merged (撤拼 -> 测评, at a further cost): a call about
a 稳健型 product is not a sample of the general corpus.

The costs were chosen on the dev calls and on clean text (the reference transcripts and meeting transcripts, where
every change is a false correction); see docs/results-log.md.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from intelligence.compliance.text import fuzzy_key
from intelligence.zh_correct import Correction, PhoneticCorrector

_HAN_LO, _HAN_HI = "\u4e00", "\u9fff"
MAX_WORD_CHARS = 4
# The most common surnames: a span starting with one, or right after one, is left alone, since a name (李明, 韩磊,
# 李思琪) is rarely in the dictionary and its homophone word (黎明, 含泪, 四起) always is
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔"
    "钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤易常温康施文牛樊葛邢"
)


def _is_han(ch: str) -> bool:
    return _HAN_LO <= ch <= _HAN_HI


def _han_runs(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each maximal run of Chinese characters."""
    i, n = 0, len(text)
    while i < n:
        if _is_han(text[i]):
            j = i
            while j < n and _is_han(text[j]):
                j += 1
            yield i, j
            i = j
        else:
            i += 1


def _toneless(toned: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(t.rstrip("12345") for t in toned)


def _fuzzy(toned: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(fuzzy_key(t.rstrip("12345")) for t in toned)


@dataclass(frozen=True)
class HomophoneParams:
    """`change_cost`: log-probability a replacement must gain per changed character. `min_freq`: dictionary
    words rarer than this are never proposed (rare entries are mostly names and terms Whisper did not mean)."""

    change_cost: float = 2.0
    tone_cost: float = 3.0  # more per changed character read with another tone (Whisper mostly keeps tones)
    min_freq: int = 100
    known_word_cost: float = 2.0  # more again where the written span is itself a dictionary word
    # Words of the deployment's domain (a glossary: 稳健型, 认购, 积存金), weighted as if frequent: the language
    # model of a wealth-management call is not that of the general corpus the dictionary counts. They may also
    # replace a span that reads alike only after merging the initials and finals ASR confuses (撤拼 -> 测评),
    # at `fuzzy_cost` more per such syllable.
    domain_terms: tuple[str, ...] = ()
    domain_freq: int = 20_000
    fuzzy_cost: float = 2.0


def _dictionary_path() -> Path:
    import jieba

    return Path(jieba.__file__).parent / "dict.txt"


class HomophoneModel:
    """Word log-probabilities and a toneless-pinyin index of the dictionary's multi-character words."""

    def __init__(self, params: HomophoneParams = HomophoneParams()) -> None:
        from pypinyin import Style, lazy_pinyin

        self.params = params
        freqs: dict[str, int] = {}
        self.names: set[str] = set()  # person names (jieba tag nr): never rewritten
        with open(_dictionary_path(), encoding="utf-8") as f:
            for line in f:
                parts = line.split(" ")
                if len(parts) < 2:
                    continue
                word = parts[0]
                if len(parts) > 2 and parts[2].strip() == "nr":
                    self.names.add(word)
                if 1 <= len(word) <= MAX_WORD_CHARS and all(_is_han(c) for c in word):
                    freqs[word] = freqs.get(word, 0) + int(parts[1])
        total = float(sum(freqs.values()))
        self.logp = {w: math.log(c / total) for w, c in freqs.items()}
        self.unknown_logp = math.log(0.5 / total)  # a character the dictionary lacks
        domain = {t for t in params.domain_terms if len(t) >= 2 and all(_is_han(c) for c in t)}
        domain_logp = math.log(params.domain_freq / total)
        for word in domain:
            self.logp[word] = max(self.logp.get(word, -math.inf), domain_logp)
        self.domain = frozenset(domain)
        self.max_word_chars = max([MAX_WORD_CHARS, *map(len, domain)])
        # toneless reading -> [(word, toned reading)]
        self.by_sound: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
        # fuzzy reading (confusable initials and finals merged) -> [(domain word, toned reading)]
        self.by_fuzzy_sound: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
        for word, count in freqs.items():
            if len(word) >= 2 and count >= params.min_freq and word not in domain:
                toned = tuple(lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore"))
                if len(toned) == len(word):
                    self.by_sound[_toneless(toned)].append((word, toned))
        for word in sorted(domain):
            toned = tuple(lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore"))
            if len(toned) == len(word):
                self.by_sound[_toneless(toned)].append((word, toned))
                self.by_fuzzy_sound[_fuzzy(toned)].append((word, toned))

    def word_logp(self, word: str) -> float | None:
        return self.logp.get(word)


@lru_cache(maxsize=2)
def _model(params: HomophoneParams) -> HomophoneModel:
    return HomophoneModel(params)


_model_lock = threading.Lock()


def homophone_model(params: HomophoneParams = HomophoneParams()) -> HomophoneModel:
    """The shared model for `params` (built once per process: reading the dictionary takes a few seconds)."""
    with _model_lock:
        return _model(params)


class HomophoneCorrector:
    """Re-chooses homophone characters of Chinese text by word frequency; see the module docstring."""

    def __init__(self, model: HomophoneModel | None = None) -> None:
        self.model = model or homophone_model()

    def correct(self, text: str, protected: frozenset[int] = frozenset()) -> tuple[str, list[Correction]]:
        """The corrected text and the replacements made (positions in `text`, same length: one character for
        one syllable). Characters at `protected` positions are never changed (domain terms)."""
        out = list(text)
        corrections: list[Correction] = []
        for start, end in _han_runs(text):
            fixed = frozenset(p - start for p in protected if start <= p < end)
            for i, j, word in self._correct_run(text[start:end], fixed):
                original = text[start + i : start + j]
                out[start + i : start + j] = list(word)
                corrections.append(Correction(start + i, start + j, original, word, kind="homophone"))
        return "".join(out), corrections

    def _correct_run(self, run: str, fixed: frozenset[int] = frozenset()) -> list[tuple[int, int, str]]:
        from pypinyin import Style, lazy_pinyin

        m = self.model
        n = len(run)
        if n < 2:
            return []
        toned = lazy_pinyin(run, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore")
        if len(toned) != n:
            return []
        sounds = _toneless(toned)
        fuzzy = _fuzzy(toned)
        cost, tone_cost, fuzzy_cost = m.params.change_cost, m.params.tone_cost, m.params.fuzzy_cost
        best = [-math.inf] * (n + 1)
        back: list[tuple[int, str] | None] = [None] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            if best[i] == -math.inf:
                continue
            # a given name follows a surname that does not end a word (李|思琪, but 经理|...)
            after_surname = i > 0 and run[i - 1] in SURNAMES and (i < 2 or run[i - 2:i] not in m.logp)
            for length in range(1, min(m.max_word_chars, n - i) + 1):
                j = i + length
                span = run[i:j]
                options: list[tuple[float, str]] = []
                lp = m.word_logp(span)
                if lp is not None:
                    options.append((lp, span))
                elif length == 1:
                    options.append((m.unknown_logp, span))
                if length >= 2 and span not in m.names and not after_surname:
                    extra = m.params.known_word_cost if lp is not None else 0.0
                    candidates = dict(m.by_sound.get(sounds[i:j], ()))
                    for word, reading in m.by_fuzzy_sound.get(fuzzy[i:j], ()):
                        candidates.setdefault(word, reading)
                    for word, reading in candidates.items():
                        if word == span:
                            continue
                        if span[0] in SURNAMES and not (word in m.domain and reading == tuple(toned[i:j])):
                            continue  # a name, unless a domain word reads exactly the same (任购 -> 认购)
                        penalty = 0.0
                        for k, (a, b) in enumerate(zip(word, span, strict=True)):
                            if a != b:
                                if i + k in fixed:
                                    penalty = math.inf
                                    break
                                heard = toned[i + k]
                                penalty += cost + (tone_cost if reading[k][-1:] != heard[-1:] else 0.0)
                                if reading[k].rstrip("12345") != sounds[i + k]:
                                    penalty += fuzzy_cost
                        options.append((m.logp[word] - penalty - extra, word))
                for score, word in options:
                    total = best[i] + score
                    if total > best[j]:
                        best[j] = total
                        back[j] = (i, word)
        pieces: list[tuple[int, int, str]] = []
        j = n
        while j > 0:
            step = back[j]
            assert step is not None
            i, word = step
            if word != run[i:j]:
                pieces.append((i, j, word))
            j = i
        return pieces[::-1]


def correct_mandarin(text: str, lexicon: PhoneticCorrector | None, homophones: HomophoneCorrector | None,
                     written_numbers: bool = False) -> tuple[str, list[Correction]]:
    """A Mandarin caption corrected towards the domain lexicon first, then towards likelier homophones (which
    never touch a lexicon term, corrected or already right), then, with `written_numbers`, its plain numbers
    written in digits (工号八六二三 -> 工号8623, kind "number"). Corrections come in text order, with offsets in the
    returned text."""
    corrections: list[Correction] = []
    if lexicon is not None:
        text, corrections = lexicon.correct(text)
    if homophones is not None:
        protected = set()
        for term in lexicon.terms if lexicon is not None else ():
            at = text.find(term.text)
            while at >= 0:
                protected.update(range(at, at + len(term.text)))
                at = text.find(term.text, at + 1)
        text, more = homophones.correct(text, frozenset(protected))
        corrections = sorted(corrections + more, key=lambda c: c.start)
    if written_numbers:
        text, corrections = _write_numbers(text, corrections)
    return text, corrections


def _write_numbers(text: str, corrections: list[Correction]) -> tuple[str, list[Correction]]:
    """Inverse text normalisation of numbers, with the earlier corrections' offsets moved to the new text."""
    from intelligence.zh_numbers import apply_spans, written_spans

    spans = written_spans(text)
    if not spans:
        return text, corrections

    def moved(pos: int) -> int:
        shift = 0
        for s in spans:
            if pos <= s.start:
                break
            if pos < s.end:  # inside a rewritten number: its end in the new text
                return s.start + shift + len(s.replacement)
            shift += len(s.replacement) - (s.end - s.start)
        return pos + shift

    numbers = [Correction(moved(s.start), moved(s.start) + len(s.replacement), text[s.start:s.end], s.replacement,
                          "number") for s in spans]
    earlier = [Correction(moved(c.start), moved(c.end), c.original, c.term, c.kind) for c in corrections]
    return apply_spans(text, spans), sorted(earlier + numbers, key=lambda c: c.start)
