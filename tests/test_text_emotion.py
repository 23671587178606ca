"""Text emotion and sentiment: the GoEmotions mapping checked against the data set's own groupings, the shipped
ONNX model on held-out comments, Chinese sentiment through the multilingual head, the facade, bad input."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from api.cli import main
from intelligence.emotion_map import (
    CONTACT_CENTER_EMOTIONS,
    EMOTION_TO_CATEGORY,
    EMOTION_TO_GROUP,
    GOEMOTIONS_LABELS,
    SENTIMENT_GROUPS,
    category_scores,
    sentiment_of,
)
from models.classifiers.datasets import read_goemotions, read_goemotions_labels
from models.classifiers.emotion import TextEmotionClassifier, macro_f1, tune_thresholds
from models.classifiers.facade import ClassifierSetConfig, TextClassifierSet, default_emotion_dir
from models.classifiers.onnx_text import OnnxTextEncoder


@pytest.fixture(scope="module")
def clf() -> TextEmotionClassifier:
    return TextEmotionClassifier(OnnxTextEncoder(default_emotion_dir()))


@pytest.fixture(scope="module")
def classifier_set() -> TextClassifierSet:
    fixtures = Path(__file__).resolve().parent / "fixtures"
    classifiers = TextClassifierSet(ClassifierSetConfig(custom_intents=fixtures / "intents_zh.yaml"))
    classifiers.load()
    return classifiers


def test_mapping_agrees_with_goemotions_own_files(shared_data: Path) -> None:
    root = shared_data / "emotion" / "goemotions"
    assert tuple(read_goemotions_labels(root / "original" / "labels.txt")) == GOEMOTIONS_LABELS
    assert tuple(read_goemotions_labels(root / "group" / "labels.txt")) == SENTIMENT_GROUPS
    original = read_goemotions(root / "original" / "dev.tsv")
    grouped = {r.example_id: r.labels for r in read_goemotions(root / "group" / "dev.tsv")}
    for row in original:  # every comment's groups follow from its emotions by our table
        ours = {SENTIMENT_GROUPS.index(EMOTION_TO_GROUP[GOEMOTIONS_LABELS[j]]) for j in row.labels}
        assert ours == set(grouped[row.example_id]), row.example_id
    assert set(EMOTION_TO_CATEGORY.values()) == set(CONTACT_CENTER_EMOTIONS)
    assert sentiment_of("surprise") == "neutral" and sentiment_of("annoyance") == "negative"
    assert category_scores({"anger": 0.6, "disgust": 0.8, "joy": 0.1})["angry"] == 0.8


def test_threshold_tuning_and_macro_f1() -> None:
    gold = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], bool)
    probs = np.array([[0.3, 0.1], [0.25, 0.2], [0.1, 0.9], [0.05, 0.6]])
    thresholds = tune_thresholds(probs, gold)
    assert 0.05 < thresholds[0] <= 0.25 and 0.6 < thresholds[1] <= 0.9
    assert macro_f1(probs >= thresholds, gold) == 1.0


def test_holdout_comments(clf: TextEmotionClassifier, shared_data: Path) -> None:
    rows = read_goemotions(shared_data / "emotion" / "goemotions" / "original" / "train.tsv", "holdout")[::8]
    preds = clf.predict([r.text for r in rows])
    gold_groups = [{EMOTION_TO_GROUP[GOEMOTIONS_LABELS[j]] for j in r.labels} for r in rows]
    accuracy = np.mean([p.sentiment_group in g for p, g in zip(preds, gold_groups, strict=True)])
    assert accuracy >= 0.6, accuracy
    gratitude = [p for p, r in zip(preds, rows, strict=True) if r.labels == (GOEMOTIONS_LABELS.index("gratitude"),)]
    assert np.mean([p.category == "happy" for p in gratitude]) >= 0.8


def test_contact_center_utterances(clf: TextEmotionClassifier) -> None:
    preds = clf.predict([
        "This is the third time I'm calling and nobody has fixed it, I'm absolutely furious!",
        "Thank you so much, you've been really helpful.",
        "I'm really worried someone has been using my card.",
        "I don't understand, what does this charge mean?",
    ])
    assert preds[0].sentiment == "negative" and preds[0].category in ("angry", "frustrated")
    assert preds[1].sentiment == "positive" and preds[1].category == "happy"
    assert preds[2].sentiment == "negative" and preds[2].category == "anxious"
    assert preds[3].category == "confused"


def test_chinese_sentiment_via_multilingual_head(classifier_set: TextClassifierSet) -> None:
    texts = ["太好了，非常感谢你的帮助！", "你们的服务太差了，我非常生气", "我想查询一下我的账户余额"]
    results = classifier_set.classify(texts, language="zh")
    assert [r["sentiment"][0] for r in results] == ["positive", "negative", "neutral"]
    assert all("intent" not in r and "emotion" not in r for r in results)  # English-only models not run on Chinese
    assert results[2]["custom_intent"][0] == "check_balance"


def test_facade_tasks_auto_language_and_bad_input(classifier_set: TextClassifierSet) -> None:
    texts = ["I lost my card and I'm so angry about it", "我很满意，谢谢", "", "😀", "42", "hello " * 4000,
             "我想 check my balance"]
    results = classifier_set.classify(texts, language="auto")
    assert len(results) == len(texts)
    assert set(results[0]) == {"intent", "emotion", "sentiment", "custom_intent"}
    assert results[0]["intent"][0] == "lost_or_stolen_card" and results[0]["sentiment"][0] == "negative"
    assert set(results[1]) == {"sentiment", "custom_intent"} and results[1]["sentiment"][0] == "positive"
    for r in results[2:5]:  # nothing to classify: low-confidence defaults, never an exception
        assert all(score == 0.0 for _, score in r.values())
        assert r["intent"][0] == "unknown" and r["sentiment"][0] == "neutral"
    for r in results:
        assert all(0.0 <= score <= 1.0 for _, score in r.values())
    assert set(classifier_set.model_names) >= {"intent", "emotion", "sentiment", "custom_intent"}
    assert classifier_set.classify([], language="en") == []


def test_facade_is_thread_safe(classifier_set: TextClassifierSet) -> None:
    texts = ["I want to cancel a transfer", "why was I charged twice?", "great, thanks!", "我要转账"]
    expected = classifier_set.classify(texts, language="auto")
    results: list[list[dict]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(classifier_set.classify(texts, language="auto"))
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 12
    for r in results:
        assert [{k: v[0] for k, v in d.items()} for d in r] == [{k: v[0] for k, v in d.items()} for d in expected]


def test_eval_cli_emotion(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "emotion" / "goemotions" / "original" / "dev.tsv"
    folder = tmp_path / "original"
    folder.mkdir()
    (folder / "labels.txt").write_text((src.parent / "labels.txt").read_text())
    (folder / "dev.tsv").write_text("".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:300]))
    out = tmp_path / "r.json"
    assert main(["eval", "emotion", "--data", str(folder / "dev.tsv"), "--out", str(out),
                 "--latency-samples", "5"]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 300 and len(report["per_label_f1"]) == 28
    assert 0.2 < report["macro_f1"] <= 1.0 and report["sentiment_accuracy"] > 0.55
    assert report["latency_ms"]["p95"] > 0


def test_eval_cli_emotion_sentiment_group_layout(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "emotion" / "goemotions" / "group" / "dev.tsv"
    folder = tmp_path / "group"
    folder.mkdir()
    (folder / "labels.txt").write_text((src.parent / "labels.txt").read_text())
    (folder / "dev.tsv").write_text("".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:200]))
    out = tmp_path / "r.json"
    assert main(["eval", "emotion", "--data", str(folder / "dev.tsv"), "--out", str(out),
                 "--latency-samples", "3"]) == 0
    report = json.loads(out.read_text())
    assert report["layout"] == "group" and report["macro_f1"] is None
    assert report["sentiment_accuracy"] > 0.55


def test_eval_cli_emotion_rejects_other_layouts(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "emotion" / "goemotions" / "ekman"
    folder = tmp_path / "ekman"
    folder.mkdir()
    (folder / "labels.txt").write_text((src / "labels.txt").read_text())
    (folder / "dev.tsv").write_text("".join((src / "dev.tsv").read_text().splitlines(keepends=True)[:20]))
    assert main(["eval", "emotion", "--data", str(folder / "dev.tsv"), "--out", str(tmp_path / "r.json")]) == 2
