"""`harken train intent`: fine-tune MiniLM on Banking77 with an out-of-scope class, export, tune rejection.

Data (from ../shared/data):
- Banking77 train.csv, its fixed `train` split (see models/classifiers/datasets.py): 77 banking intents.
- CLINC150 `train`, intents outside banking (CLINC_BANKING_INTENTS excluded), a fixed sample per intent:
  the extra class `out_of_scope`, so everyday talk has somewhere to go besides a banking intent.
Tuning (never reported): Banking77 `val` split, CLINC `oos_train` and a sample of CLINC `val` outside banking.
Report data left untouched: Banking77 `holdout` split and CLINC `oos_val` (see `harken eval intent`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from models.classifiers.datasets import (
    CLINC_BANKING_INTENTS,
    OUT_OF_SCOPE,
    LabelledText,
    hash_bucket,
    read_banking77,
    read_clinc150,
)
from models.classifiers.intent import IntentClassifier, tune_rejection_threshold
from models.classifiers.onnx_text import OnnxTextEncoder
from models.training import text_model as tm

log = logging.getLogger(__name__)

NEGATIVES_PER_CLINC_INTENT = 25
TUNING_NEGATIVES_PER_CLINC_INTENT = 5
MAX_TOKENS = 64
# Banking accuracy the rejection threshold may cost on validation data. The out-of-scope class alone already
# rejects about 94% of CLINC's oos_train at no cost; a threshold high enough to cost a full point only added two
# more points of recall and rejected long, rambling call-center turns that did carry a banking intent.
MAX_ACCURACY_DROP = 0.0025


def clinc_negatives(examples: list[LabelledText], per_intent: int, salt: str) -> list[LabelledText]:
    """A fixed sample of CLINC in-scope examples outside banking, relabelled out_of_scope."""
    by_intent: dict[str, list[LabelledText]] = {}
    for ex in examples:
        if ex.label != "oos" and ex.label not in CLINC_BANKING_INTENTS:
            by_intent.setdefault(ex.label, []).append(ex)
    out: list[LabelledText] = []
    for intent in sorted(by_intent):
        ranked = sorted(by_intent[intent], key=lambda e: hash_bucket(salt + e.text, 1 << 30))
        out.extend(LabelledText(e.text, OUT_OF_SCOPE) for e in ranked[:per_intent])
    return out


def train_intent(data_root: Path, out_dir: Path, epochs: int = 4, frozen_layers: int = 2, seed: int = 13) -> dict:
    """Train, export and tune; returns the validation report written to out_dir/training_report.json."""
    torch.set_num_threads(1)
    t_start = time.monotonic()
    banking_csv = data_root / "intent" / "banking77" / "train.csv"
    clinc = read_clinc150(data_root / "intent" / "clinc150" / "data_full_train_val.json")
    train_rows = read_banking77(banking_csv, "train") + clinc_negatives(clinc["train"], NEGATIVES_PER_CLINC_INTENT, "t")
    val_rows = read_banking77(banking_csv, "val")
    labels = sorted({r.label for r in val_rows + train_rows if r.label != OUT_OF_SCOPE}) + [OUT_OF_SCOPE]
    index = {name: i for i, name in enumerate(labels)}
    log.info("intent: %d training examples (%d labels), %d validation", len(train_rows), len(labels), len(val_rows))

    bert, tokenizer = tm.load_base(seed)
    model = tm.ClassifierModel(bert, len(labels), frozen_layers)
    train_set = tm.cache_lower(
        model, tm.encode_texts(tokenizer, [r.text for r in train_rows], MAX_TOKENS),
        torch.tensor([index[r.label] for r in train_rows]),
    )
    val_set = tm.cache_lower(
        model, tm.encode_texts(tokenizer, [r.text for r in val_rows], MAX_TOKENS),
        torch.tensor([index[r.label] for r in val_rows]),
    )
    n_banking = len(labels) - 1

    def val_accuracy(epoch: int) -> float:
        logits = tm.predict_cached(model, val_set)[:, :n_banking]
        return float((logits.argmax(1) == val_set.targets).float().mean())

    config = tm.TrainConfig(epochs=epochs, seed=seed)
    best = tm.fit(model, train_set, torch.nn.functional.cross_entropy, config, val_accuracy)
    log.info("best validation accuracy (torch, no rejection): %.4f", best)

    tm.copy_tokenizer(out_dir)
    (out_dir / "labels.json").write_text(
        json.dumps({"labels": labels, "out_of_scope_label": OUT_OF_SCOPE, "min_intent_probability": 0.0}, indent=1),
        encoding="utf-8",
    )
    torch.save({k: v for k, v in model.state_dict().items() if "word_embeddings" not in k},
               Path(tempfile.gettempdir()) / "harken_intent_checkpoint.pt")
    fp32_path = Path(tempfile.gettempdir()) / "harken_intent_fp32" / "encoder.onnx"
    tm.export_onnx(model, out_dir, keep_fp32=fp32_path)

    # Tune the rejection threshold on the exported (int8) model, i.e. on what is served.
    encoder = OnnxTextEncoder(out_dir)
    tune_negatives = clinc["oos_train"] + clinc_negatives(clinc["val"], TUNING_NEGATIVES_PER_CLINC_INTENT, "v")
    tuning = tune_rejection_threshold(encoder, [r.text for r in val_rows], [r.label for r in val_rows],
                                      [r.text for r in tune_negatives], max_accuracy_drop=MAX_ACCURACY_DROP)
    meta = json.loads((out_dir / "labels.json").read_text(encoding="utf-8"))
    meta["min_intent_probability"] = tuning["threshold"]
    (out_dir / "labels.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    check = IntentClassifier(OnnxTextEncoder(out_dir))
    # The same model unquantised, to show what int8 costs (kept out of out_dir: it is not shipped).
    for name in ("labels.json", "tokenizer.json", "word_embeddings.npz"):
        shutil.copy(out_dir / name, fp32_path.parent / name)
    fp32_check = IntentClassifier(OnnxTextEncoder(fp32_path.parent))
    report = {
        "train_examples": len(train_rows),
        "frozen_layers": frozen_layers,
        "config": asdict(config),
        "val_accuracy_torch_no_rejection": best,
        "tuning": tuning,
        "val_accuracy_onnx_int8_with_rejection": float(
            np.mean([p.label == g for p, g in zip(check.predict([r.text for r in val_rows]), [r.label for r in val_rows],
                                                   strict=True)])
        ),
        "val_accuracy_onnx_fp32_with_rejection": float(
            np.mean([p.label == g for p, g in zip(fp32_check.predict([r.text for r in val_rows]),
                                                   [r.label for r in val_rows], strict=True)])
        ),
        "train_seconds": round(time.monotonic() - t_start, 1),
    }
    (out_dir / "training_report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    log.info("intent model written to %s: %s", out_dir, json.dumps(report))
    return report
