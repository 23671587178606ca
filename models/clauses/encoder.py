"""English clause heads on a fine-tuned MiniLM encoder (ONNX Runtime), beside the n-gram heads.

The n-gram heads see words; on wording they were not trained on ("the worst case is you get it all back plus a
bit") they stay silent. all-MiniLM-L6-v2 fine-tuned on the clause corpus (models/training/train_clauses_encoder.py)
carries meaning across wordings: on the clause test split (styles no training text has) English micro recall
0.38 -> 0.64 at the same precision. On whole calls it found two more violations on a blind set but raised as many
false alarms on ordinary speech (models/weights/clauses/MODEL_CARD.md), so it is off unless
HARKEN_CLAUSE_ENCODER=on, and its weights are not shipped: `harken train clauses-encoder` writes them. It reads
English only: MiniLM's vocabulary has no Chinese, so Mandarin stays with the n-gram heads.

Model directory (models/weights/clauses_en): encoder.onnx, labels.json with
  labels       the K logits' names: the families, then `reply:<type>` for each reply type
  families     binary heads (sigmoid), thresholds {family: probability} chosen on held-out writing groups
  reply_types  the softmax over reply types
  assets       directory holding the shared tokenizer and frozen word-embedding table (the intent model's)
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENCODER_DIR = Path(__file__).resolve().parents[1] / "weights" / "clauses_en"
_CJK = re.compile(r"[\u3400-\u9fff]")


def is_english(text: str) -> bool:
    """Text the English encoder may read: no Chinese characters (digits and Latin only)."""
    return not _CJK.search(text)


@dataclass(frozen=True)
class EncoderScores:
    """Probabilities for a batch: families [N, F] (sigmoid) and reply types [N, R] (softmax)."""

    families: np.ndarray
    replies: np.ndarray


class EncoderClauseHeads:
    """The fine-tuned encoder's heads. Thread-safe (ONNX Runtime sessions are; the lock only guards lazy load)."""

    def __init__(self, model_dir: Path = ENCODER_DIR, threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self.threads = threads
        self._encoder = None
        self._lock = threading.Lock()
        meta = json.loads((self.model_dir / "labels.json").read_text(encoding="utf-8"))
        self.families: tuple[str, ...] = tuple(meta["families"])
        self.reply_types: tuple[str, ...] = tuple(meta.get("reply_types", ()))
        self.threshold = np.array([float(meta["thresholds"][f]) for f in self.families], dtype=np.float32)
        self.version = str(meta.get("version", "1"))

    @classmethod
    def packaged(cls, threads: int = 1) -> EncoderClauseHeads | None:
        """The shipped English heads, or None if this checkout has none."""
        return cls(ENCODER_DIR, threads) if (ENCODER_DIR / "encoder.onnx").is_file() else None

    def _model(self):
        with self._lock:
            if self._encoder is None:
                from models.classifiers.onnx_text import OnnxTextEncoder, RuntimeOptions

                self._encoder = OnnxTextEncoder(self.model_dir, RuntimeOptions(intra_op_threads=self.threads))
            return self._encoder

    def scores(self, texts: Sequence[str]) -> EncoderScores:
        """Family and reply probabilities of each text."""
        f = len(self.families)
        if not texts:
            return EncoderScores(np.zeros((0, f), np.float32), np.zeros((0, len(self.reply_types)), np.float32))
        from models.classifiers.onnx_text import sigmoid, softmax

        logits = self._model().logits(list(texts))
        rep = logits[:, f:]
        return EncoderScores(sigmoid(logits[:, :f]), softmax(rep) if rep.shape[1] else rep)
