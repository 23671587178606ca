"""Banking intent classifier with out-of-scope rejection: data splits, the shipped ONNX model on real held-out
data, bad input, and the `harken eval intent` command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from api.cli import main
from models.classifiers.datasets import (
    CLINC_BANKING_INTENTS,
    banking77_split_of,
    read_banking77,
    read_clinc150,
)
from models.classifiers.facade import default_intent_dir
from models.classifiers.intent import IntentClassifier, rejection_mask
from models.classifiers.onnx_text import OnnxTextEncoder


@pytest.fixture(scope="module")
def clf() -> IntentClassifier:
    return IntentClassifier(OnnxTextEncoder(default_intent_dir()))


def test_banking77_splits_are_disjoint_stable_and_cover_every_intent(shared_data: Path) -> None:
    csv_path = shared_data / "intent" / "banking77" / "train.csv"
    splits = {s: read_banking77(csv_path, s) for s in ("train", "val", "holdout")}
    assert sum(len(v) for v in splits.values()) == len(read_banking77(csv_path))
    texts = {s: {(r.text, r.label) for r in v} for s, v in splits.items()}
    assert not texts["train"] & texts["holdout"] and not texts["val"] & texts["holdout"]
    assert 0.06 < len(splits["holdout"]) / len(read_banking77(csv_path)) < 0.10
    assert len({r.label for r in splits["holdout"]}) == 77  # every intent is measured
    assert all(banking77_split_of(r) == "holdout" for r in splits["holdout"])


def test_holdout_accuracy_on_real_banking_queries(clf: IntentClassifier, shared_data: Path) -> None:
    rows = read_banking77(shared_data / "intent" / "banking77" / "train.csv", "holdout")[::4]
    preds = clf.predict([r.text for r in rows])
    accuracy = np.mean([p.label == r.label for p, r in zip(preds, rows, strict=True)])
    assert accuracy >= 0.85, accuracy
    assert np.mean([p.in_scope for p in preds]) >= 0.9  # banking queries are rarely rejected


def test_everyday_requests_are_rejected_as_out_of_scope(clf: IntentClassifier, shared_data: Path) -> None:
    # CLINC150's oos_val is never used in training or threshold tuning.
    oos = read_clinc150(shared_data / "intent" / "clinc150" / "data_full_train_val.json", ["oos_val"])["oos_val"]
    preds = clf.predict([r.text for r in oos])
    assert np.mean([p.label == "out_of_scope" for p in preds]) >= 0.7


def test_clear_cases(clf: IntentClassifier) -> None:
    preds = clf.predict(["I think someone stole my card, what do I do?", "what's the weather like in Paris tomorrow"])
    assert preds[0].label == "lost_or_stolen_card" and preds[0].score > 0.5
    assert preds[1].label == "out_of_scope" and preds[1].best_intent != "out_of_scope"


def test_bad_input_never_raises(clf: IntentClassifier) -> None:
    texts = ["", "   ", "😀😀😀", "1234 5678", "card " * 3000, "我想 check my balance please", "?!", "\x00\ufeff"]
    preds = clf.predict(texts)
    assert len(preds) == len(texts)
    for text, pred in zip(texts, preds, strict=True):
        assert 0.0 <= pred.score <= 1.0
        if not any(ch.isalpha() for ch in text):
            assert pred.label == "unknown" and pred.score == 0.0
    assert clf.predict([]) == []


def test_rejection_mask_rules() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.2, 0.5], [0.4, 0.35, 0.25]])  # last column: out of scope
    assert rejection_mask(probs, 2, 0.0).tolist() == [False, True, False]
    assert rejection_mask(probs, 2, 0.5).tolist() == [False, True, True]


def test_eval_cli_clinc_format(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "r.json"
    full = json.loads((shared_data / "intent" / "clinc150" / "data_full_train_val.json").read_text())
    small = {"oos_val": full["oos_val"][:60], "val": full["val"][::15], "oos_train": full["oos_train"][:10]}
    data = tmp_path / "clinc_small.json"
    data.write_text(json.dumps(small))
    rc = main(["eval", "intent", "--data", str(data), "--format", "clinc150", "--out", str(out),
               "--latency-samples", "5"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["splits"] == ["oos_val", "val"]  # *train* keys are skipped by default
    assert report["oos_n"] == 60 and report["n"] == 60 + len(small["val"])
    for key in ("oos_recall", "accuracy", "macro_f1", "banking_acceptance", "non_banking_rejection"):
        assert 0.0 <= report[key] <= 1.0
    assert report["oos_recall"] >= 0.7 and report["non_banking_rejection"] >= 0.8
    assert report["latency_ms"]["p50"] > 0
    assert any(i in CLINC_BANKING_INTENTS for _, i in small["val"])  # counted by banking_acceptance


def test_eval_cli_banking77_format(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "r.json"
    csv_path = shared_data / "intent" / "banking77" / "train.csv"
    small = tmp_path / "small.csv"
    rows = read_banking77(csv_path, "holdout")[::8]
    with small.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows([r.text, r.label] for r in rows)
    assert main(["eval", "intent", "--data", str(small), "--format", "banking77", "--out", str(out),
                 "--latency-samples", "5"]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == len(rows)
    assert report["accuracy"] <= report["accuracy_no_rejection"]
    assert report["accuracy"] >= 0.8 and report["macro_f1"] > 0.7


def test_a_model_dir_can_share_the_tokenizer_and_word_table(tmp_path: Path) -> None:
    """A fine-tuned model with the frozen table names the directory that holds it (`assets`) and gives the same
    logits as with its own copies."""
    src = default_intent_dir()
    own = OnnxTextEncoder(src)
    shared = tmp_path / "models" / "shared_intent"
    shared.mkdir(parents=True)
    (shared / "encoder.onnx").write_bytes((src / "encoder.onnx").read_bytes())
    meta = json.loads((src / "labels.json").read_text(encoding="utf-8"))
    meta["assets"] = str(src)  # absolute here; the shipped form is relative ("../intent")
    (shared / "labels.json").write_text(json.dumps(meta), encoding="utf-8")
    texts = ["I still haven't received my new card", "how do I top up by bank transfer"]
    assert np.allclose(OnnxTextEncoder(shared).logits(texts), own.logits(texts))
