"""Homophone correction of Mandarin captions (intelligence/zh_homophones.py): real jieba dictionary, real pinyin."""

from __future__ import annotations

import pytest

from intelligence.zh_correct import corrector_for
from intelligence.zh_homophones import HomophoneCorrector, HomophoneParams, correct_mandarin, homophone_model
from pipelines.vocabulary import domain_glossary, vocabulary_terms


@pytest.fixture(scope="module")
def corrector() -> HomophoneCorrector:
    return HomophoneCorrector(homophone_model())


@pytest.fixture(scope="module")
def domain() -> HomophoneCorrector:
    """The corrector as sessions build it: its language model weighted towards the packaged domain glossary."""
    return HomophoneCorrector(homophone_model(HomophoneParams(domain_terms=domain_glossary("zh"))))


@pytest.mark.parametrize(("decoded", "expected"), [
    ("您的风险测评结果是稳健行", "您的风险测评结果是稳健型"),  # 行 and 型 read xíng: a single character
    ("业绩比较基准是年花百分之三", "业绩比较基准是年化百分之三"),  # another tone on one character
    ("按我的撤拼结果能买吗", "按我的测评结果能买吗"),  # ch/c and in/ing confused: only domain words go that far
    ("三十万任购成功", "三十万认购成功"),  # 任 starts names, but 认购 reads exactly the same
    ("我是瑞丰银行理财经历侯静", "我是瑞丰银行理财经理侯静"),
])
def test_domain_words_weight_the_language_model(corrector: HomophoneCorrector, domain: HomophoneCorrector,
                                                decoded: str, expected: str) -> None:
    assert corrector.correct(decoded)[0] == decoded  # the general corpus alone does not make the change
    text, corrections = domain.correct(decoded)
    assert text == expected and all(c.kind == "homophone" for c in corrections)


@pytest.mark.parametrize("clean", [
    "那些美好的年华",  # 年化 reads alike with another tone, but the written words are right
    "我叫任小明",
    "客户经理李思琪为您服务",  # a given name after a surname (思琪 reads like 四起)
    "他的人生经历很丰富",
    "理财非存款，产品有风险，投资须谨慎",
    "我们进行了讨论，这个行不行",
    "请您把身份证放在镜头前",
])
def test_domain_weighting_leaves_correct_text_alone(domain: HomophoneCorrector, clean: str) -> None:
    assert domain.correct(clean) == (clean, [])


@pytest.mark.parametrize(("decoded", "expected"), [
    # Whisper base output on the dev calls: right syllables, wrong characters
    ("本次销售过成将全程录音录像", "本次销售过程将全程录音录像"),
    ("产品在九十天七线内不能提前赎回", "产品在九十天期限内不能提前赎回"),
    ("请您在风险揭示书上超路这句话", "请您在风险揭示书上抄录这句话"),
    ("那就认构八万元", "那就认购八万元"),
    ("我是理财经李张丽", "我是理财经理张丽"),
])
def test_homophones_of_common_words_are_rechosen(corrector: HomophoneCorrector, decoded: str, expected: str) -> None:
    text, corrections = corrector.correct(decoded)
    assert text == expected
    assert corrections and all(c.kind == "homophone" for c in corrections)
    for c in corrections:  # positions index the decoded text; the replacement has the same length
        assert decoded[c.start:c.end] == c.original and text[c.start:c.end] == c.term


@pytest.mark.parametrize("clean", [
    "今天天气很好，我们去公园散步吧。",
    "这句话请您读一遍。",
    "我叫李明，来自华信银行。",  # a name: 黎明 is a likelier word, but a surname starts the span
    "客户经理韩磊为您服务。",
    "这款产品不保证本金，也不承诺收益。",
    "Hello, 这是 English 和中文 mixed 123。",
])
def test_correct_text_is_left_alone(corrector: HomophoneCorrector, clean: str) -> None:
    assert corrector.correct(clean) == (clean, [])


def test_protected_positions_are_never_changed(corrector: HomophoneCorrector) -> None:
    decoded = "本次销售过成"
    assert corrector.correct(decoded)[0] == "本次销售过程"
    assert corrector.correct(decoded, frozenset({5}))[0] == decoded


def test_lexicon_first_then_homophones() -> None:
    lexicon = corrector_for(tuple(vocabulary_terms("", True, ())["zh"]))
    text, corrections = correct_mandarin("我是理财经李张丽，功耗五三一七，本次销售过成将全程录音录相",
                                         lexicon, HomophoneCorrector(homophone_model()))
    assert text == "我是理财经理张丽，工号五三一七，本次销售过程将全程录音录像"
    assert [(c.original, c.term, c.kind) for c in corrections] == [
        ("经李", "经理", "homophone"), ("功耗", "工号", "lexicon"), ("过成", "过程", "homophone"),
        ("录音录相", "录音录像", "lexicon")]
    assert [c.start for c in corrections] == sorted(c.start for c in corrections)


def test_numbers_written_in_digits_after_the_fixes_with_offsets_in_the_new_text() -> None:
    lexicon = corrector_for(tuple(vocabulary_terms("", True, ())["zh"]))
    text, corrections = correct_mandarin("功耗五三一七，年化百分之二点九，期限一百八十天，本次销售过成将全程录音录相",
                                         lexicon, HomophoneCorrector(homophone_model()), written_numbers=True)
    assert text == "工号5317，年化2.9%，期限180天，本次销售过程将全程录音录像"
    assert [(c.original, c.term, c.kind) for c in corrections] == [
        ("功耗", "工号", "lexicon"), ("五三一七", "5317", "number"), ("百分之二点九", "2.9%", "number"),
        ("一百八十", "180", "number"), ("过成", "过程", "homophone"), ("录音录相", "录音录像", "lexicon")]
    for c in corrections:  # every offset points into the returned caption
        assert text[c.start:c.end] == c.term
