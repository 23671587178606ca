"""Caption export formats."""

from intelligence.captions import build_cues, plain_text, to_srt, to_webvtt


def seg(start, end, text, ch=0, speaker="agent"):
    return {"start_s": start, "end_s": end, "text": text, "channel": ch, "speaker": speaker}


def test_short_finals_merge_into_sentence_cues_per_speaker():
    finals = [seg(0.0, 0.5, "Hello"), seg(0.5, 1.2, "how are you?"), seg(1.5, 2.0, "Fine", 1, "customer"),
              seg(1.3, 2.5, "I am calling"), seg(2.5, 3.0, "about my card.")]
    cues = build_cues(finals)
    texts = [(c.speaker, c.text) for c in cues]
    assert texts == [("agent", "Hello how are you?"), ("agent", "I am calling about my card."),
                     ("customer", "Fine")]


def test_webvtt_and_srt_render_timestamps_and_speakers():
    cues = build_cues([seg(61.5, 63.25, "A <b> & c.")])
    vtt = to_webvtt(cues)
    assert vtt.startswith("WEBVTT\n")
    assert "00:01:01.500 --> 00:01:03.250" in vtt
    assert "<v agent>A &lt;b&gt; &amp; c." in vtt
    srt = to_srt(cues)
    assert "1\n00:01:01,500 --> 00:01:03,250\n[agent] A <b> & c." in srt


def test_chinese_joins_without_spaces():
    finals = [seg(0, 1, "您好"), seg(1, 2, "我是客户经理")]
    assert plain_text(finals) == "您好我是客户经理"
    assert build_cues(finals)[0].text == "您好我是客户经理"
