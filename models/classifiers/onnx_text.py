"""ONNX Runtime text encoder-classifier: tokenizer.json + int8 word-embedding table + encoder.onnx -> logits.

A model directory holds:
  tokenizer.json        WordPiece tokenizer (the `tokenizers` library, no transformers)
  word_embeddings.npz   int8 word-embedding table `q` [vocab, 384] with one float32 `scale` per row
  encoder.onnx          (word_embeds [B,T,384] float32, attention_mask [B,T] int64) -> logits [B,K]
  labels.json           output names and the model's decision settings (see the classifier modules)

A model fine-tuned with the word-embedding table frozen shares that table and the tokenizer with every other such
model: its directory may name `"assets": "<sibling directory>"` in labels.json instead of holding its own copies.

The word vectors are looked up in numpy (see models/training/text_model.py for why), then the transformer runs
in ONNX Runtime. Sessions are created once; `logits()` is safe to call from several threads at once
(ONNX Runtime's `run` is thread-safe, and the tokenizer is used read-only).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MAX_TOKENS = 64
# Longest utterance we embed, in characters: longer text is cut before tokenising (the tokenizer would cut it
# at DEFAULT_MAX_TOKENS anyway; this only bounds the work done on pathological input).
MAX_CHARS = 2000


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """How an ONNX session runs: threads per session and the token limit per utterance."""

    intra_op_threads: int = 1
    max_tokens: int = DEFAULT_MAX_TOKENS


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class OnnxTextEncoder:
    """Loads one model directory and turns a batch of texts into logits."""

    def __init__(self, model_dir: Path, options: RuntimeOptions | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self.options = options or RuntimeOptions()
        self.meta: dict[str, Any] = json.loads((self.model_dir / "labels.json").read_text(encoding="utf-8"))
        assets = self.model_dir / str(self.meta["assets"]) if "assets" in self.meta else self.model_dir
        tokenizer = Tokenizer.from_file(str(assets / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self.options.max_tokens)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        table = np.load(assets / "word_embeddings.npz")
        self._emb_q: np.ndarray = table["q"]
        self._emb_scale: np.ndarray = table["scale"]
        self._session = ort.InferenceSession(
            str(self.model_dir / "encoder.onnx"),
            sess_options=_session_options(self.options.intra_op_threads),
            providers=["CPUExecutionProvider"],
        )

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with [CLS]/[SEP]; empty or blank text becomes just [CLS] [SEP]."""
        cleaned = [(t or "")[:MAX_CHARS] for t in texts]
        return [enc.ids for enc in self._tokenizer.encode_batch(cleaned)]

    def logits(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """[len(texts), K] float32 logits; batches are formed from texts of similar length."""
        n = len(texts)
        out = np.zeros((n, len(self.meta["labels"])), dtype=np.float32)
        if n == 0:
            return out
        ids = self.token_ids(texts)
        order = sorted(range(n), key=lambda i: len(ids[i]))
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            width = max(len(ids[i]) for i in batch)
            tok = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                tok[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            embeds = self._emb_q[tok].astype(np.float32) * self._emb_scale[tok][..., None]
            (logits,) = self._session.run(["logits"], {"word_embeds": embeds, "attention_mask": mask})
            out[batch] = logits
        return out


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def default_threads() -> int:
    """Threads per ONNX session: HARKEN_CLASSIFIER_THREADS, else 1 (the executor runs sessions in parallel)."""
    try:
        return max(1, int(os.environ.get("HARKEN_CLASSIFIER_THREADS", "1")))
    except ValueError:
        return 1
