"""Mandarin caption text: numbers both ways, phonetic correction towards the domain lexicon, decoder vocabulary,
and the CER normalisation of `harken eval asr`."""

from __future__ import annotations

import pytest

from eval.asr import error_ops, error_rate
from intelligence.zh_correct import PhoneticCorrector
from intelligence.zh_numbers import inverse_normalize, spell_numbers
from pipelines.vocabulary import build_vocabularies, packaged_terms, vocabulary_terms


@pytest.mark.parametrize(("digits", "spelled"), [
    ("工号8623", "工号八六二三"),  # identifiers digit by digit
    ("年化3.2%", "年化百分之三点二"),
    ("期限180天", "期限一百八十天"),
    ("买20万", "买二十万"),
    ("电话13812345678", "电话一三八一二三四五六七八"),
    ("尾号6467的卡", "尾号六四六七的卡"),
    ("没有数字", "没有数字"),
])
def test_spell_numbers(digits: str, spelled: str) -> None:
    assert spell_numbers(digits) == spelled


@pytest.mark.parametrize(("spoken", "written"), [
    ("工号八六二三", "工号8623"),
    ("我的工号是幺三五七", "我的工号是1357"),
    ("业绩比较基准为年化百分之三点二", "业绩比较基准为年化3.2%"),
    ("期限一百八十天", "期限180天"),
    ("我买二十万吧", "我买20万吧"),
    ("稍等一下", "稍等一下"),  # not numbers
    ("统一", "统一"),
    ("两个工作日内", "两个工作日内"),  # a lone numeral reads better as a character
])
def test_inverse_normalize_and_round_trip(spoken: str, written: str) -> None:
    assert inverse_normalize(spoken) == written
    assert spell_numbers(written) == spoken.replace("幺", "一")


def test_phonetic_correction_fixes_homophones_and_keeps_the_rest() -> None:
    c = PhoneticCorrector([*packaged_terms("zh"), "销售过程"])
    text, fixes = c.correct("我是李财经理，功耗八六二三。本次销售国成将全程录音录相")
    assert text == "我是理财经理，工号八六二三。本次销售过程将全程录音录像"
    assert [(f.original, f.term) for f in fixes] == [("李财", "理财"), ("功耗", "工号"), ("销售国成", "销售过程"),
                                                     ("录音录相", "录音录像")]
    assert c.correct("美好年华")[0] == "美好年华"  # 年华 nián huá is not 年化 nián huà
    assert c.correct("这是理财产品")[1] == []
    assert c.correct("李，财")[1] == []  # never across punctuation
    assert c.correct("hello world") == ("hello world", [])
    assert PhoneticCorrector([]).correct("李财") == ("李财", [])


def test_vocabularies_put_the_most_specific_terms_first() -> None:
    terms = vocabulary_terms("华信银行, Northbridge", packaged=True, session_terms=["稳盈九十天", "Sam"])
    assert terms["zh"][:2] == ["稳盈九十天", "华信银行"] and "工号" in terms["zh"]
    assert terms["en"] == ["Sam", "Northbridge"]
    vocab = build_vocabularies("", packaged=False)
    assert vocab == {"en": "", "zh": ""}
    assert "、" in build_vocabularies("", packaged=True)["zh"]


def test_cer_normalisation_and_error_kinds() -> None:
    ref = "工号八六二三，年化百分之三点二。"
    assert error_rate([ref], ["工号8623 年化3.2%"], "zh") == 0.0  # digits, punctuation and spaces do not count
    assert error_rate(["理財產品"], ["理财产品"], "zh") == 0.0  # Traditional = Simplified
    assert error_rate(["ＡＢ理财"], ["AB理财"], "zh") == 0.0  # full-width forms
    ops = error_ops(["一二三四"], ["一二"], "zh")
    assert ops == {"substitutions": 0.0, "deletions": 0.5, "insertions": 0.0}


def test_written_numbers_read_back_as_said_on_every_dev_reference(shared_data) -> None:
    """Captions write numbers in digits; scoring and the compliance matcher read them back as said. On the
    Mandarin dev references (numbers spelled as characters) the round trip must give the reference back."""
    import json

    lines = (shared_data / "asr" / "zh-calls-dev" / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    refs = [json.loads(line)["text"] for line in lines if line.strip()]
    written = [inverse_normalize(r) for r in refs]
    assert sum(w != r for w, r in zip(written, refs, strict=True)) >= len(refs) // 2  # numbers were rewritten
    assert [spell_numbers(w) for w in written] == refs


@pytest.mark.parametrize(("written", "said"), [
    ("每年交2万元", "每年交两万元"),  # a leading 2 before 万 is 两
    ("交20年", "交二十年"),  # a count of years, not a date
    ("公号2046", "公号二零四六"),  # after 号 (工号 misheard) an identifier
    ("工号R690", "工号R六九零"),
    ("转账52528", "转账五二五二八"),
    ("认购80000元", "认购八万元"),  # an amount before 元, however long
    ("三分之一是1/3", "三分之一是三分之一"),
    ("风险等级R2", "风险等级R2"),  # glued to letters: a code, as written
])
def test_spell_numbers_reading_rules(written: str, said: str) -> None:
    assert spell_numbers(written) == said


@pytest.mark.parametrize(("said", "written"), [
    ("认购八万元", "认购8万元"),
    ("三百万元", "300万元"),
    ("三五天", "三五天"),  # a range said as adjacent numerals
    ("年化百分之二点", "年化百分之二点"),  # a dangling 点 is not a decimal
])
def test_inverse_normalize_reading_rules(said: str, written: str) -> None:
    assert inverse_normalize(said) == written
