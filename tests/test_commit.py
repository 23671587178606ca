"""LocalAgreement commit policy and Whisper failure-mode guards."""

from intelligence.commit import (
    HypothesisQuality,
    LocalAgreement,
    cut_repetition_loop,
    find_echoes,
    is_hallucination,
)
from intelligence.numbers import is_numeric_token
from intelligence.types import Word


def words(spec: str, start: float = 0.0, dur: float = 0.3) -> list[Word]:
    return [Word(t, start + i * dur, start + (i + 1) * dur) for i, t in enumerate(spec.split())]


def test_commits_only_what_two_hypotheses_agree_on():
    la = LocalAgreement()
    committed, tentative = la.update(words("the quick brown"))
    assert committed == [] and [w.text for w in tentative] == ["the", "quick", "brown"]
    committed, tentative = la.update(words("the quick brow fox"))
    assert [w.text for w in committed] == ["the", "quick"]
    assert [w.text for w in tentative] == ["brow", "fox"]
    # committed words never come back, even when a later hypothesis repeats them
    committed, tentative = la.update(words("the quick brown fox jumps"))
    assert committed == []
    assert [w.text for w in tentative] == ["brown", "fox", "jumps"]


def test_agreed_words_without_right_context_stay_tentative():
    la = LocalAgreement()
    la.update(words("ask not what"))  # ends at 0.3, 0.6, 0.9 s
    # the buffer ends at 0.9 s: with 0.4 s of audio required after a word, only "ask" (ends 0.3) may commit
    committed, tentative = la.update(words("ask not what"), commit_until_s=0.9 - 0.4)
    assert [w.text for w in committed] == ["ask"]
    assert [w.text for w in tentative] == ["not", "what"]
    # a later decode with more audio commits them once both agree again
    committed, _ = la.update(words("ask not what your"), commit_until_s=2.0 - 0.4)
    assert [w.text for w in committed] == ["not", "what"]


def test_agreement_ignores_case_and_punctuation():
    la = LocalAgreement()
    la.update(words("Hello, world"))
    committed, _ = la.update(words("hello world."))
    assert [w.text for w in committed] == ["hello", "world."]


def test_flush_commits_the_rest_once():
    la = LocalAgreement()
    la.update(words("red green blue"))
    la.update(words("red green blue pink"))
    rest = la.flush(words("red green blue pink gray"))
    assert [w.text for w in rest] == ["pink", "gray"]
    assert la.flush(words("red green blue pink gray")) == []


def test_overlap_with_shifted_times_is_not_committed_twice():
    la = LocalAgreement()
    la.update(words("alpha beta gamma"))
    la.update(words("alpha beta gamma delta"))  # commits alpha beta gamma (end 0.9)
    shifted = [Word("gamma", 0.95, 1.2), Word("delta", 1.2, 1.5), Word("epsilon", 1.5, 1.8)]
    committed, tentative = la.update(shifted)
    assert [w.text for w in committed] == ["delta"]  # agreed with the previous tentative; gamma not again
    assert [w.text for w in tentative] == ["epsilon"]


def test_repetition_loop_is_cut_after_first_copy():
    loop = words("I said " + "ah, " * 12 + "end")
    cut = cut_repetition_loop(loop)
    assert [w.text for w in cut] == ["I", "said", "ah,"]
    two_gram = words("thank you thank you thank you thank you")
    assert [w.text for w in cut_repetition_loop(two_gram)] == ["thank", "you"]
    normal = words("the cat sat on the mat")
    assert cut_repetition_loop(normal) == normal


def test_hallucination_guard():
    unsure = HypothesisQuality(avg_logprob=-0.9, no_speech_prob=0.5, compression_ratio=1.0)
    sure = HypothesisQuality(avg_logprob=-0.2, no_speech_prob=0.05, compression_ratio=1.2)
    assert is_hallucination("Thanks for watching!", unsure)
    assert not is_hallucination("Thanks for watching!", sure)  # a confident decode of real speech stays
    assert is_hallucination("字幕由Amara.org社区提供", unsure)
    assert is_hallucination("anything", HypothesisQuality(-1.5, 0.8, 1.0))
    assert is_hallucination("la la la la la la la la la la la la la la", HypothesisQuality(-0.2, 0.0, 3.1))
    assert not is_hallucination("I would like to close my account", sure)
    assert is_hallucination("I'm", HypothesisQuality(avg_logprob=-1.95, no_speech_prob=0.59, compression_ratio=0.3))


def test_a_number_commits_whole_not_digit_by_digit():
    """Whisper regroups digits between decodes ("5 425" then "542-5"): committing "5" alone would strand the rest."""
    la = LocalAgreement()
    la.update(words("your debit card 5 425"))
    committed, tentative = la.update(words("your debit card 5 425 2334"))
    assert [w.text for w in committed] == ["your", "debit", "card"]
    assert [w.text for w in tentative] == ["5", "425", "2334"]
    # once a word follows the agreed number, all of it commits at once
    committed, tentative = la.update(words("your debit card 5 425 2334 in the"))
    assert [w.text for w in committed] == ["5", "425", "2334"]
    assert [w.text for w in tentative] == ["in", "the"]


def test_unsure_words_wait_for_more_audio():
    la = LocalAgreement()
    unsure = [Word("what", 0.0, 0.3, probability=0.3), Word("for", 0.3, 0.6, probability=0.9)]
    la.update(unsure)
    committed, tentative = la.update(unsure, commit_until_s=1.0, unsure_until_s=0.2, min_probability=0.5)
    assert committed == [] and [w.text for w in tentative] == ["what", "for"]
    committed, _ = la.update(unsure, commit_until_s=1.0, unsure_until_s=0.5, min_probability=0.5)
    assert [w.text for w in committed] == ["what", "for"]


def test_a_sure_word_with_enough_audio_after_it_commits_from_one_decode():
    la = LocalAgreement()
    hyp = [Word("ask", 0.0, 0.3, probability=0.97), Word("not", 0.3, 0.6, probability=0.6),
           Word("what", 0.6, 0.9, probability=0.99)]
    committed, tentative = la.update(hyp, commit_until_s=2.0, sure_until_s=0.5, sure_probability=0.9)
    assert [w.text for w in committed] == ["ask"]  # "not" is unsure, and "what" may not skip past it
    assert [w.text for w in tentative] == ["not", "what"]


def test_numbers_in_any_written_form_are_numeric_tokens():
    for t in ("1988.", "8th", "eighth", "eighty-eight", "nineteen", "542-5", "$600", "twenty-first", "3rd"):
        assert is_numeric_token(t), t
    for t in ("the", "May", "Laura", "th", "often", "tenth-grade"):
        assert not is_numeric_token(t), t


def test_a_phrase_echoed_into_the_end_of_an_utterance_is_not_committed_twice():
    """The SIPREC defect: the customer said "Laura Kim, the eighth of May, nineteen eighty-eight" once; partial
    decodes committed "Laura Kim, the 8th of May"; the final decode said the phrase twice, the second copy crammed
    into the 0.2 s after the speech, with the number written another way. Only "1988." is new."""
    la = LocalAgreement()
    spoken = [("Laura", 22.40, 22.75), ("Kim,", 22.75, 23.10), ("the", 23.40, 23.55), ("8th", 23.55, 23.85),
              ("of", 23.85, 23.95), ("May,", 23.95, 24.15)]
    committed = [Word(t, a, b, 0.9) for t, a, b in spoken]
    la.update(committed)
    assert la.update(committed)[0] == committed
    copy1 = [Word(t.replace("8th", "eighth"), a, b, 0.9) for t, a, b in spoken] + [Word("1988.", 24.3, 25.3, 0.8)]
    squeezed = [Word(w.text, 25.30 + 0.03 * i, 25.33 + 0.03 * i, 0.4) for i, w in enumerate(copy1)]
    final = la.flush(copy1 + squeezed)
    assert [w.text for w in final] == ["1988."]
    assert la.echoes_dropped == len(squeezed)


def test_an_echo_of_committed_words_alone_is_dropped_but_a_real_repeat_is_kept():
    la = LocalAgreement()
    said = words("please cancel the transfer now", start=1.0, dur=0.3)  # 1.0 .. 2.5 s
    la.update(said)
    la.update(said)
    # a later decode (beyond the time filter) repeats them, squeezed into 0.4 s: an echo
    echo = words("please cancel the transfer now", start=2.6, dur=0.08)
    assert la.flush(echo) == []
    # the speaker really says it again after a pause, as slowly as the first time: kept
    again = words("please cancel the transfer now", start=3.6, dur=0.28)
    assert [w.text for w in la.flush(again)] == ["please", "cancel", "the", "transfer", "now"]


def test_echo_needs_two_content_words_and_a_whole_span():
    ctx = words("card ending 1234", start=0.0, dur=0.4)
    # "1234" again, fast: one number unit is not a phrase
    assert find_echoes(ctx, words("1234", start=1.3, dur=0.05)) == set()
    # two words repeated fast ("thank you thank you") stay: below the three-unit floor
    assert find_echoes(words("thank you", dur=0.3), words("thank you", start=0.6, dur=0.05)) == set()
    # numbers written differently still match: "the 8th of May" echoed as "the eighth of May"
    ctx = words("born on the 8th of May", dur=0.3)
    assert find_echoes(ctx, words("the eighth of May", start=1.9, dur=0.05)) == {0, 1, 2, 3}


def test_a_number_regrouped_by_the_tail_decode_is_not_committed_twice():
    # seen under load on a SIPREC call: a final decode committed "1974." too early, the decode of the utterance's
    # unheard tail heard it again as "19" "74." (digit groups regrouped), and both went out as finals
    la = LocalAgreement()
    la.flush([Word("the", 11.75, 11.89), Word("12th", 11.89, 12.29), Word("of", 12.29, 12.33),
              Word("March", 12.33, 12.77), Word("1974.", 12.77, 13.52)])
    again = la.flush([Word("19", 13.47, 13.69), Word("74.", 13.69, 14.49)])
    assert again == []
    # a different number said next is new speech, kept whole
    assert [w.text for w in la.flush([Word("47", 14.6, 14.9), Word("192,", 14.9, 15.3)])] == ["47", "192,"]


def test_a_word_the_decodes_keep_changing_settles_once_well_heard():
    la = LocalAgreement()
    # "type" / "tights" / "tape": never agreed, so without a settle rule every later word waits behind it
    la.update(words("the type of this"), commit_until_s=1.2 - 0.4)
    committed, _ = la.update(words("the tights of this book"), commit_until_s=1.5 - 0.4)
    assert [w.text for w in committed] == ["the"]
    committed, tentative = la.update(words("the tape of this book may"), commit_until_s=2.4 - 0.4,
                                     settled_until_s=2.4 - 1.2)
    # "tape", "of" and "this" (ending by 1.2 s) had 1.2 s of audio after them: this decode's words commit;
    # then "book" is agreed by both decodes as before, and "may" (heard once) waits
    assert [w.text for w in committed] == ["tape", "of", "this", "book"]
    assert [w.text for w in tentative] == ["may"]
    committed, _ = la.update(words("the tape of this book may be"), commit_until_s=3.0 - 0.4)
    assert [w.text for w in committed] == ["may"]


def test_commit_rules_per_language_override_only_their_fields():
    import pytest

    from pipelines.channel import StreamingParams

    params = StreamingParams(sure_probability=0.9, settle_right_context_s=0.0,
                             commit_by_language={"en": {"sure_probability": 0.8, "settle_right_context_s": 2.0}})
    en, zh = params.for_language("en"), params.for_language("zh")
    assert (en.sure_probability, en.settle_right_context_s, en.step_s) == (0.8, 2.0, params.step_s)
    assert zh is params
    with pytest.raises(ValueError, match="not commit-rule fields"):
        StreamingParams(commit_by_language={"en": {"max_buffer_s": 6.0}})
    assert StreamingParams(commit_by_language={"en": {"step_s": 0.3}}).for_language("en").step_s == 0.3


def test_agreement_with_a_gap_compares_decodes_far_enough_apart():
    la = LocalAgreement()
    # decodes every 0.3 s; agreement needs a decode whose audio ended at least 0.6 s earlier
    la.update(words("the wards in"), commit_until_s=0.0, decode_end_s=1.0, agree_gap_s=0.6)
    committed, tentative = la.update(words("the wards in this"), commit_until_s=0.9, decode_end_s=1.3,
                                     agree_gap_s=0.6)
    # the decode 0.3 s before agrees, but two nearly identical inputs are no evidence: nothing commits
    assert committed == [] and [w.text for w in tentative][:2] == ["the", "wards"]
    committed, _ = la.update(words("the wards in this part"), commit_until_s=1.2, decode_end_s=1.6,
                             agree_gap_s=0.6)
    # the decode 0.6 s before (audio to 1.0 s) agrees on the words it had
    assert [w.text for w in committed] == ["the", "wards", "in"]
    # the next comparison is with the decode of audio to 1.3 s, after what is committed
    committed, tentative = la.update(words("the wards in this part were"), commit_until_s=1.5,
                                     decode_end_s=1.9, agree_gap_s=0.6)
    assert [w.text for w in committed] == ["this"] and [w.text for w in tentative] == ["part", "were"]
    committed, _ = la.update(words("the wards in this part were five"), commit_until_s=1.8, decode_end_s=2.2,
                             agree_gap_s=0.6)
    assert [w.text for w in committed] == ["part"]


def test_a_doubtful_word_commits_only_once_settled():
    la = LocalAgreement()
    hyp = [Word("awards", 0.0, 0.4, probability=0.05), Word("in", 0.4, 0.6, probability=0.9)]
    la.update(hyp)
    # two decodes agree, but the decoder all but guessed the first word: it and everything after it wait
    committed, tentative = la.update(hyp, commit_until_s=2.0, doubt_probability=0.2)
    assert committed == [] and [w.text for w in tentative] == ["awards", "in"]
    fixed = [Word("the", 0.0, 0.1, probability=0.3), Word("wards", 0.1, 0.4, probability=0.9),
             Word("in", 0.4, 0.6, probability=0.9)]
    committed, _ = la.update(fixed, commit_until_s=2.4, settled_until_s=0.45, doubt_probability=0.2)
    assert [w.text for w in committed] == ["the", "wards"]


def test_an_agreed_word_ends_where_the_shorter_decode_ends_it():
    la = LocalAgreement()
    # the aligner stretched "card" over the first digit group in the later decode; the earlier one ended it sooner
    la.update([Word("card", 3.32, 3.56, probability=0.9), Word("5", 3.56, 3.86, probability=0.5)],
              commit_until_s=3.0, decode_end_s=4.0, agree_gap_s=0.6)
    committed, _ = la.update([Word("card", 3.26, 3.78, probability=0.9), Word("5425.", 3.78, 4.18, probability=0.5)],
                             commit_until_s=4.1, decode_end_s=4.6, agree_gap_s=0.6)
    assert [w.text for w in committed] == ["card"] and committed[0].end_s == 3.56
    # a later decode puts the digits from 3.58 s: they are new words, not part of what was committed
    _, tentative = la.update([Word("card", 3.24, 3.58, probability=0.9), Word("5425", 3.58, 4.38, probability=0.6),
                              Word("-2333.", 4.38, 5.58, probability=0.6)], commit_until_s=4.6, decode_end_s=5.1,
                             agree_gap_s=0.6)
    assert [w.text for w in tentative] == ["5425", "-2333."]
