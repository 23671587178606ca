"""Banking intent classification with out-of-scope rejection (ONNX Runtime, no torch).

The model has the 77 Banking77 intents plus one `out_of_scope` class (trained on everyday requests from
CLINC150 that are not banking). An utterance is rejected as out of scope when that class wins, or when the
best banking intent's probability is below `min_intent_probability` (tuned on validation data so that banking
accuracy drops by at most a quarter of a point; see `tune_rejection_threshold` and train_intent.py). Input without any letter (empty,
numbers only, emoji only) gets `unknown` with score 0: there is nothing to classify.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.classifiers.onnx_text import OnnxTextEncoder, softmax
from models.classifiers.textutil import has_letters

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class IntentPrediction:
    """One utterance's intent. `label` is a banking intent, `out_of_scope` or `unknown`.

    `score` is the probability of the returned banking intent; for `out_of_scope` it is 1 minus the best banking
    intent's probability; for `unknown` it is 0. `best_intent` is the best banking intent even when rejected.
    """

    label: str
    score: float
    best_intent: str
    best_intent_probability: float

    @property
    def in_scope(self) -> bool:
        return self.label not in (UNKNOWN, self.out_of_scope_label())

    @staticmethod
    def out_of_scope_label() -> str:
        return "out_of_scope"


def rejection_mask(probs: np.ndarray, oos_index: int, threshold: float) -> np.ndarray:
    """Which rows are out of scope: the out-of-scope class wins, or no banking intent reaches `threshold`."""
    banking = np.delete(probs, oos_index, axis=1)
    return (probs.argmax(axis=1) == oos_index) | (banking.max(axis=1) < threshold)


class IntentClassifier:
    """Banking77 intents + out-of-scope rejection over an `OnnxTextEncoder` model directory."""

    def __init__(self, encoder: OnnxTextEncoder, threshold: float | None = None) -> None:
        self.encoder = encoder
        self.labels = encoder.labels
        self.oos_label: str = encoder.meta.get("out_of_scope_label", "out_of_scope")
        self.oos_index = self.labels.index(self.oos_label)
        self.banking_labels = [lab for lab in self.labels if lab != self.oos_label]
        self.threshold = float(encoder.meta.get("min_intent_probability", 0.0) if threshold is None else threshold)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 78] class probabilities (77 intents and out_of_scope, in `labels` order)."""
        return softmax(self.encoder.logits(texts))

    def predict(self, texts: Sequence[str], reject: bool = True) -> list[IntentPrediction]:
        """Intent per text. With reject=False every text with letters gets its best banking intent."""
        if not texts:
            return []
        probs = self.probabilities(texts)
        banking = np.delete(probs, self.oos_index, axis=1)
        best = banking.argmax(axis=1)
        rejected = rejection_mask(probs, self.oos_index, self.threshold) if reject else np.zeros(len(texts), bool)
        out: list[IntentPrediction] = []
        for i, text in enumerate(texts):
            name, p = self.banking_labels[int(best[i])], float(banking[i, best[i]])
            if not has_letters(text):
                out.append(IntentPrediction(UNKNOWN, 0.0, name, p))
            elif rejected[i]:
                out.append(IntentPrediction(self.oos_label, 1.0 - p, name, p))
            else:
                out.append(IntentPrediction(name, p, name, p))
        return out


def tune_rejection_threshold(
    encoder: OnnxTextEncoder,
    in_scope_texts: Sequence[str],
    in_scope_labels: Sequence[str],
    out_of_scope_texts: Sequence[str],
    max_accuracy_drop: float = 0.01,
) -> dict[str, float]:
    """Pick the highest `min_intent_probability` whose banking accuracy stays within `max_accuracy_drop` of the
    no-rejection accuracy (a rejected in-scope utterance counts as an error). Use validation data only."""
    clf = IntentClassifier(encoder, threshold=0.0)
    p_in = clf.probabilities(in_scope_texts)
    p_out = clf.probabilities(out_of_scope_texts)
    gold = np.array([clf.banking_labels.index(lab) for lab in in_scope_labels])
    correct = np.delete(p_in, clf.oos_index, axis=1).argmax(axis=1) == gold
    base_accuracy = float(correct.mean())
    best = {"threshold": 0.0}
    for threshold in np.round(np.arange(0.0, 0.951, 0.01), 2):
        accuracy = float((correct & ~rejection_mask(p_in, clf.oos_index, threshold)).mean())
        if accuracy + 1e-9 < base_accuracy - max_accuracy_drop:
            break
        best = {
            "threshold": float(threshold),
            "val_accuracy_no_rejection": base_accuracy,
            "val_accuracy_with_rejection": accuracy,
            "val_oos_recall": float(rejection_mask(p_out, clf.oos_index, threshold).mean()),
        }
    return best
