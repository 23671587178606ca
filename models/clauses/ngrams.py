"""Text features of the clause heads: character 1-4-grams inside words plus word 1-2-grams, L2-normalised.

Characters carry Chinese (no spaces) and ASR-mangled English ("garanteed", "p i n"); word pairs carry English
phrasing ("not guaranteed", "can't lose"). The same function serves training (as scikit-learn's analyzer) and
inference (numpy lookups into the shipped vocabulary), so the two can never disagree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

MAX_CHARS = 1000
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9']+|[\u3400-\u9fff]")
_PUNCT = re.compile(r"[^\w\s']")


def normalise(text: str) -> str:
    """NFKC (full-width to half-width, Traditional left as is), lower case, punctuation to spaces."""
    t = unicodedata.normalize("NFKC", (text or "")[:MAX_CHARS]).lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", t)).strip()


def ngrams(text: str) -> list[str]:
    """The distinct features of one text (order kept only for determinism)."""
    t = normalise(text)
    feats: dict[str, None] = {}
    for word in t.split(" "):
        w = f" {word} "
        for n in (1, 2, 3, 4):
            for i in range(len(w) - n + 1):
                g = w[i : i + n]
                if g.strip():
                    feats["c:" + g] = None
    words = _WORD.findall(t)
    for i, w in enumerate(words):
        feats["w:" + w] = None
        if i + 1 < len(words):
            feats["w:" + w + "_" + words[i + 1]] = None
    return list(feats)


def indices(texts: Sequence[str], vocab: Mapping[str, int]) -> list[np.ndarray]:
    """Per text, the vocabulary indices of its features (unknown n-grams dropped); each weighs
    1/sqrt(count), which is the L2 normalisation of a binary row."""
    return [np.fromiter((vocab[g] for g in ngrams(t) if g in vocab), dtype=np.int64) for t in texts]


def sparse_logits(rows: Sequence[np.ndarray], weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[N, K] logits of linear heads `weight` [K, V] over the normalised binary rows given as index arrays."""
    out = np.tile(bias.astype(np.float32), (len(rows), 1))
    for r, idx in enumerate(rows):
        if idx.size:
            out[r] += weight[:, idx].sum(axis=1) / np.sqrt(idx.size)
    return out
