"""A final decode whose words stop well before its audio does gets the unheard tail decoded again (Whisper ends a
window after its first sentence when another speaker follows closely; in-room Mandarin lost whole replies)."""

from __future__ import annotations

import numpy as np
import pytest

from intelligence.types import Word
from models.asr import SAMPLE_RATE_HZ, AsrHypothesis, AsrRequest
from pipelines.channel import ChannelTranscriber, DecodeJob, StreamingParams


def _transcriber(tail_redecode_s: float) -> ChannelTranscriber:
    ct = ChannelTranscriber(session_id="s", channel=0, speaker="x", input_rate_hz=SAMPLE_RATE_HZ, language="zh",
                            params=StreamingParams(tail_redecode_s=tail_redecode_s, max_tail_redecodes=2))
    # five seconds of audio held for a final decode in flight (as take_job leaves it)
    ct._audio = np.zeros(5 * SAMPLE_RATE_HZ, dtype=np.int16)
    ct._received = 5 * SAMPLE_RATE_HZ
    ct._inflight_final_start = 0
    return ct


def _final(offset_s: float, end_s: float, redecodes: int = 0) -> DecodeJob:
    n = int((end_s - offset_s) * SAMPLE_RATE_HZ)
    return DecodeJob(channel=0, final=True, offset_s=offset_s, end_s=end_s,
                     request=AsrRequest(audio=np.zeros(n, dtype=np.float32), language="zh", complete=True),
                     tail_redecodes=redecodes)


def _hyp(*words: tuple[str, float, float]) -> AsrHypothesis:
    return AsrHypothesis(words=tuple(Word(t, a, b, 0.9) for t, a, b in words), language="zh", avg_logprob=-0.3,
                         no_speech_prob=0.1, compression_ratio=1.0, model="m")


def test_an_unheard_tail_is_decoded_again_with_the_prompt_kept() -> None:
    ct = _transcriber(1.2)
    events = ct.apply(_final(0.0, 5.0), _hyp(("收益", 0.2, 0.8), ("大概", 0.9, 1.5), ("多少呢", 1.5, 2.0)))
    assert [e.kind for e in events] == ["final"] and events[0].text == "收益大概多少呢"
    job = ct.take_job()
    assert job is not None and job.final and job.tail_redecodes == 1
    assert abs(job.offset_s - 1.95) < 0.01 and job.end_s == 5.0
    assert job.request.prompt == "收益大概多少呢"  # the tail continues the utterance
    # the tail's own decode hears the rest: the utterance ends there
    events = ct.apply(job, _hyp(("业绩", 0.3, 0.9), ("比较", 0.9, 1.4), ("基准", 1.4, 2.9)))
    assert events[0].text == "业绩比较基准" and events[0].start_s > 2.0
    assert ct.take_job() is None and ct._prompt_words == []


def test_a_stretched_last_word_counts_as_unheard_and_its_tail_words_are_kept() -> None:
    """A final decode that stops after a fragment of the previous sentence (元 spread over five seconds of a new
    one, seen on a rendered 双录 call that lost its closing sentence) gets the audio under the stretch decoded
    again, and the words found there are committed rather than dropped as already behind the committed time."""
    ct = _transcriber(1.2)
    events = ct.apply(_final(0.0, 5.0), _hyp(("元", 0.1, 4.9)))
    assert events[0].text == "元" and events[0].end_s < 1.0  # cut back to where it was plausibly said
    job = ct.take_job()
    assert job is not None and job.final and job.tail_redecodes == 1 and job.offset_s < 1.0
    events = ct.apply(job, _hyp(("好的", 0.2, 0.6), ("请您签字", 0.7, 1.6)))
    assert [e.kind for e in events] == ["final"] and events[0].text == "好的请您签字"


def test_a_final_decode_that_stops_inside_its_left_context_is_decoded_again_from_the_speech() -> None:
    """The final decode's window starts with the end of the previous sentence (left context); Whisper writes
    that fragment (多少?) and stops, so nothing new is heard although partials showed this utterance's words.
    The utterance is decoded again from where its speech starts (a rendered 双录 call lost a whole disclosure)."""
    ct = _transcriber(1.2)
    partial = DecodeJob(channel=0, final=False, offset_s=0.0, end_s=3.0,
                        request=AsrRequest(audio=np.zeros(3 * SAMPLE_RATE_HZ, dtype=np.float32), language="zh"))
    events = ct.apply(partial, _hyp(("业绩", 1.2, 1.7), ("比较", 1.7, 2.2)))
    assert [e.kind for e in events] == ["partial"]
    final = DecodeJob(channel=0, final=True, offset_s=0.0, end_s=5.0,
                      request=AsrRequest(audio=np.zeros(5 * SAMPLE_RATE_HZ, dtype=np.float32), language="zh",
                                         complete=True, context_s=1.0))
    ct.apply(final, _hyp())  # the context's words are dropped by the backend: nothing left
    job = ct.take_job()
    assert job is not None and job.final and job.tail_redecodes == 1
    assert abs(job.offset_s - 0.95) < 0.01 and job.end_s == 5.0


def test_no_redecode_when_heard_to_the_end_silent_or_exhausted() -> None:
    ct = _transcriber(1.2)
    ct.apply(_final(0.0, 5.0), _hyp(("收益", 0.2, 1.4), ("好的", 3.8, 4.4)))
    assert ct.take_job() is None  # heard to the end
    ct = _transcriber(1.2)
    ct.apply(_final(0.0, 5.0), _hyp())
    assert ct.take_job() is None  # nothing heard (silence, or discarded as noise): again would not help
    ct = _transcriber(1.2)
    ct.apply(_final(0.0, 5.0, redecodes=2), _hyp(("好的", 0.2, 0.6)))
    assert ct.take_job() is None  # at most max_tail_redecodes per utterance
    ct = _transcriber(0.0)
    ct.apply(_final(0.0, 5.0), _hyp(("好的", 0.2, 0.6)))
    assert ct.take_job() is None  # off


def test_carried_prompt_spans_utterances_only_for_the_languages_named() -> None:
    """With carry_prompt_languages, the next utterance is prompted with the text of the ones before (as an
    offline decode conditions on its previous window); other languages start each utterance afresh."""
    for languages, expected in ((frozenset({"zh"}), "理财产品不是存款"), (frozenset(), "")):
        ct = ChannelTranscriber(session_id="s", channel=0, speaker="x", input_rate_hz=SAMPLE_RATE_HZ,
                                language="zh", params=StreamingParams(carry_prompt_languages=languages))
        ct._audio = np.zeros(8 * SAMPLE_RATE_HZ, dtype=np.int16)
        ct._received = 8 * SAMPLE_RATE_HZ
        ct.apply(_final(0.0, 3.0), _hyp(("理财产品", 0.2, 1.2), ("不是存款", 1.2, 2.5)))
        ct._final_due.append((4 * SAMPLE_RATE_HZ, 8 * SAMPLE_RATE_HZ, 4 * SAMPLE_RATE_HZ, 0))
        job = ct.take_job()
        assert job is not None and job.request.prompt == expected


def test_finals_say_why_they_were_committed_and_eval_splits_latency_by_it() -> None:
    from eval.asr import latency_by_commit

    ct = ChannelTranscriber(session_id="s", channel=0, speaker="x", input_rate_hz=SAMPLE_RATE_HZ, language="zh",
                            params=StreamingParams(min_right_context_s=0.4))
    ct._audio = np.zeros(8 * SAMPLE_RATE_HZ, dtype=np.int16)
    ct._received = 8 * SAMPLE_RATE_HZ

    def partial(end_s: float) -> DecodeJob:
        n = int(end_s * SAMPLE_RATE_HZ)
        return DecodeJob(channel=0, final=False, offset_s=0.0, end_s=end_s,
                         request=AsrRequest(audio=np.zeros(n, dtype=np.float32), language="zh"))

    words = (("理财产品", 0.2, 1.0), ("不是存款", 1.0, 1.8))
    assert [e.kind for e in ct.apply(partial(2.4), _hyp(*words), media_clock_s=2.4)] == ["partial"]
    agreed = [e for e in ct.apply(partial(3.0), _hyp(*words), media_clock_s=3.0) if e.kind == "final"]
    assert agreed and agreed[0].commit == "agreement" and agreed[0].text == "理财产品不是存款"
    ended = ct.apply(_final(2.0, 5.0), _hyp(("好的", 2.2, 2.8)), media_clock_s=5.5)
    assert ended[0].kind == "final" and ended[0].commit == "utterance_end"
    split = latency_by_commit([e.to_dict() for e in agreed + ended], "media_clock_s")
    assert split == {"agreement": pytest.approx([2.0, 1.2]), "utterance_end": pytest.approx([0.7])}
