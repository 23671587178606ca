"""Structure of the minutes (intelligence.minutes.structure: chapters, speaker statistics, sentiment arc) and their
rendering (intelligence.minutes.render: Markdown, self-contained HTML, JSON), English and Mandarin."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser

import numpy as np
import pytest

from intelligence.minutes.render import mmss, sparkline, to_html, to_json, to_markdown
from intelligence.minutes.structure import chapters, sentiment_arc, speaker_stats
from intelligence.minutes.types import (
    ActionItem,
    Chapter,
    Decision,
    Minutes,
    MinutesUtterance,
    OpenQuestion,
    SentimentPoint,
    SpeakerStats,
    SummarySentence,
)

# ---------------------------------------------------------------------------------------------------------- chapters

TOPICS_EN = {
    "budget": ["The marketing budget for next quarter is tight.",
               "We spent most of the budget on paid search last quarter.",
               "Can we move some budget from events to paid social?",
               "Finance wants the budget forecast by the end of the month.",
               "Paid search costs went up twenty percent.", "The events budget was underspent anyway.",
               "I think the forecast should assume flat spend.", "Paid social brought the cheapest leads."],
    "candidates": ["We have two open engineering roles.", "The backend engineer candidates were strong this round.",
               "Recruiting says the offer for the senior engineer went out yesterday.",
               "We should interview the frontend candidates next.", "The hiring panel needs one more interviewer.",
               "Salary bands for engineers changed in January.", "Two candidates declined because of the commute.",
               "Maybe we open the roles to remote candidates."],
    "office": ["The office lease ends in June.", "The landlord offered a renewal with higher rent.",
               "The new office near the station has more meeting rooms.",
               "Moving costs would be around forty thousand.", "People like the current office kitchen.",
               "The new building has bike parking and showers.", "We need to give the landlord notice by March.",
               "The lease renewal is three years minimum."],
}
TOPICS_ZH = {
    "预算": ["下个季度的市场预算比较紧。", "上个季度大部分预算花在搜索广告上了。", "能不能把活动预算挪一部分到信息流广告？",
           "财务要我们月底前交预算预测。", "搜索广告的成本涨了百分之二十。", "活动预算本来就没花完。", "预算预测按持平来做吧。",
           "信息流广告的线索成本最低。"],
    "候选人": ["我们现在有两个研发岗位在招。", "这一轮后端工程师的候选人都不错。", "招聘那边说高级工程师的录用通知昨天发出去了。",
            "接下来面试前端的候选人。", "面试官还差一个人。", "工程师的薪资范围一月份调整了。", "有两个候选人因为通勤拒了。",
            "岗位可以考虑开放远程。"],
    "办公室": ["办公室租约六月份到期。", "房东提出续租但是租金要涨。", "地铁站旁边的新办公室会议室更多。", "搬家成本大概四万左右。",
            "大家都喜欢现在办公室的茶水间。", "新楼有自行车停车位和淋浴间。", "三月份之前要通知房东。", "续租最少签三年。"],
}


def _meeting(topics: dict[str, list[str]], language: str, per_topic_s: float = 180.0,
             step: float = 7.5) -> list[MinutesUtterance]:
    """Two people talking through each topic in turn, one utterance every `step` seconds."""
    utts, t = [], 0.0
    for sents in topics.values():
        end, k = t + per_topic_s, 0
        while t < end - 1e-9:
            utts.append(MinutesUtterance(t, t + step - 1.0, "AB"[k % 2], sents[k % len(sents)], language))
            t, k = t + step, k + 1
    return utts


@pytest.mark.parametrize(("topics", "language"), [(TOPICS_EN, "en"), (TOPICS_ZH, "zh")])
def test_chapters_follow_the_topics(topics: dict[str, list[str]], language: str) -> None:
    utts = _meeting(topics, language)
    got = chapters(utts)
    assert len(got) == 3
    for c, truth_start, keyword in zip(got, (0.0, 180.0, 360.0), topics, strict=True):
        assert abs(c.start_s - truth_start) <= 10.0
        assert keyword in c.title.lower()
    assert got[-1].end_s == max(u.end_s for u in utts)
    assert all(a.end_s == b.start_s for a, b in zip(got, got[1:], strict=False))


def test_no_chapter_shorter_than_the_minimum() -> None:
    utts = _meeting(TOPICS_EN, "en", per_topic_s=100.0)
    for min_s in (60.0, 120.0, 200.0):
        got = chapters(utts, min_chapter_s=min_s)
        assert all(c.end_s - c.start_s >= min_s for c in got[:-1]), (min_s, got)
        assert got[0].start_s == 0.0


def test_short_or_single_topic_session_is_one_chapter() -> None:
    short = _meeting(TOPICS_EN, "en")[:12]  # 90 s
    assert len(chapters(short)) == 1
    one_topic = _meeting({"office": TOPICS_EN["office"]}, "en", per_topic_s=540.0)
    assert [c.title.split(",")[0] for c in chapters(one_topic)] == ["Office"]
    assert chapters([]) == []


class _TopicEmbedder:
    """Embeds a text as its topic (the first keyword it contains), plus a little noise: tests the plumbing."""

    def __init__(self, topics: dict[str, list[str]]) -> None:
        self.topics = topics
        self.calls = 0

    def passage(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        rng = np.random.default_rng(0)
        rows = []
        for t in texts:
            v = np.array([sum(s in t for s in sents) for sents in self.topics.values()], dtype=float)
            v = v + 0.05 * rng.standard_normal(len(v))
            rows.append(v / np.linalg.norm(v))
        return np.array(rows)


def test_chapters_with_an_embedder() -> None:
    emb = _TopicEmbedder(TOPICS_EN)
    got = chapters(_meeting(TOPICS_EN, "en"), embedder=emb)
    assert emb.calls == 1
    assert [round(c.start_s / 30) * 30 for c in got] == [0, 180, 360]


# ----------------------------------------------------------------------------------------------------- speaker stats

def test_speaker_stats() -> None:
    utts = [MinutesUtterance(0.0, 10.0, "A", "x"), MinutesUtterance(8.0, 12.0, "A", "x"),  # own overlap: 12 s
            MinutesUtterance(9.0, 11.0, "B", "x"),  # starts with 1 s of A left: an interruption
            MinutesUtterance(11.8, 15.0, "B", "x"),  # 0.2 s of A left: a quick overlap, not an interruption
            MinutesUtterance(15.0, 16.0, "C", "x"), MinutesUtterance(16.5, 18.0, "C", "x")]
    got = {s.speaker: s for s in speaker_stats(utts)}
    assert [s.speaker for s in speaker_stats(utts)] == ["A", "B", "C"]
    assert got["A"].talk_s == pytest.approx(12.0) and got["B"].talk_s == pytest.approx(5.2)
    assert (got["A"].turns, got["B"].turns, got["C"].turns) == (1, 1, 1)  # in start order: A A B B C C
    assert (got["A"].interruptions, got["B"].interruptions, got["C"].interruptions) == (0, 1, 0)
    assert sum(s.share for s in got.values()) == pytest.approx(1.0)
    assert speaker_stats([]) == []


def test_turns_count_runs_of_one_speaker() -> None:
    utts = [MinutesUtterance(float(i), i + 0.9, sp, "x") for i, sp in enumerate("AABABBBA")]
    assert {s.speaker: s.turns for s in speaker_stats(utts)} == {"A": 3, "B": 2}


# ----------------------------------------------------------------------------------------------------- sentiment arc

def test_sentiment_arc() -> None:
    utts = [MinutesUtterance(0, 10, "A", "x", sentiment_score=0.5), MinutesUtterance(20, 30, "B", "x",
                                                                                     sentiment_score=-0.1),
            MinutesUtterance(40, 50, "A", "x"),  # no score: skipped
            MinutesUtterance(130, 140, "A", "x", sentiment_score=-0.8)]
    got = sentiment_arc(utts, window_s=60.0)
    assert [(p.start_s, p.end_s) for p in got] == [(0.0, 60.0), (120.0, 140.0)]  # 60-120 had no score
    assert got[0].score == pytest.approx(0.2) and got[1].score == pytest.approx(-0.8)
    assert sentiment_arc([MinutesUtterance(0, 1, "A", "x")]) == []
    with pytest.raises(ValueError):
        sentiment_arc(utts, window_s=0)


# ------------------------------------------------------------------------------------------------------------ render

def _minutes(language: str) -> Minutes:
    zh = language == "zh"
    return Minutes(
        language=language, duration_s=725.4, method="extractive",
        summary=[SummarySentence("我们讨论了上线时间。" if zh else "We discussed the launch date.", 5.0, "Alice")],
        decisions=[Decision("就用阿里云，就这么定了。" if zh else "We'll go with <b>vendor</b> B & C.", 65.2, "Bob")],
        action_items=[ActionItem("把联调做完" if zh else "Update | the plan", "陈工" if zh else None,
                                 "下周五前" if zh else "by Friday", 125.9, "evidence")],
        open_questions=[OpenQuestion("谁来写文案？" if zh else "Who writes the copy?", 300.0, "Mary")],
        chapters=[Chapter(0.0, 400.0, "上线、排期" if zh else "Launch, timeline"),
                  Chapter(400.0, 725.4, "客服、排班" if zh else "Support, staffing")],
        speakers=[SpeakerStats("Alice", 400.0, 10, 1, 0.625), SpeakerStats("Bob", 240.0, 8, 0, 0.375)],
        sentiment_arc=[SentimentPoint(0.0, 60.0, 0.4), SentimentPoint(60.0, 120.0, -0.6),
                       SentimentPoint(180.0, 240.0, 1.0)],
        warnings=["Speaker labels come from diarization <auto>."],
    )


EN_HEADINGS = ["Summary", "Decisions", "Action items", "Open questions", "Chapters", "Speakers", "Sentiment",
               "Warnings"]
ZH_HEADINGS = ["摘要", "决定事项", "待办事项", "待解决问题", "章节", "发言统计", "情绪走势", "提示"]


@pytest.mark.parametrize(("language", "headings"), [("en", EN_HEADINGS), ("zh", ZH_HEADINGS), ("zh-CN", ZH_HEADINGS)])
def test_markdown_sections_in_the_minutes_language(language: str, headings: list[str]) -> None:
    md = to_markdown(_minutes(language))
    assert [line[3:] for line in md.splitlines() if line.startswith("## ")] == headings
    assert "- **0:00** " in md and "2:05" in md and "12:05" in md  # times as m:ss
    assert "62%" in md or "63%" in md


def test_markdown_escapes_transcript_text() -> None:
    md = to_markdown(_minutes("en"))
    assert "| Update \\| the plan | — | by Friday | 2:05 |" in md
    assert "<b>" not in md and "&lt;b&gt;vendor&lt;/b&gt; B &amp; C" in md


@pytest.mark.parametrize(("language", "none"), [("en", "None"), ("zh", "无")])
def test_empty_minutes_render_cleanly(language: str, none: str) -> None:
    m = Minutes(language=language, duration_s=0.0, method="extractive")
    md = to_markdown(m)
    assert md.count(f"_{none}_") == 8
    page = to_html(m)
    assert page.count(f'<p class="none">{none}</p>') == 8
    _check_html(page)
    assert json.loads(json.dumps(to_json(m)))["decisions"] == []


class _TagChecker(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()


def _check_html(page: str) -> _TagChecker:
    p = _TagChecker()
    p.feed(page)
    p.close()
    assert p.stack == []
    return p


@pytest.mark.parametrize(("language", "lang_attr"), [("en", "en"), ("zh", "zh"), ("zh-CN", "zh-CN"), ("auto", "en")])
def test_html_is_self_contained_escaped_and_tagged(language: str, lang_attr: str) -> None:
    m = _minutes(language)
    m.decisions.append(Decision('<script>alert("x")</script>', 70.0, '<img src=x onerror=alert(1)>'))
    page = to_html(m)
    checker = _check_html(page)
    assert checker.tags[0] == ("html", {"lang": lang_attr})
    assert {t for t, _ in checker.tags} <= {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "p",
                                             "section", "ul", "li", "span", "table", "thead", "tbody", "tr",
                                             "th", "td", "details", "summary"}
    assert "<script" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert "http" not in page and "src=" not in page.replace("src=x", "")  # nothing loaded from elsewhere
    for heading in ZH_HEADINGS if language.startswith("zh") else EN_HEADINGS:
        assert f"<h2>{heading}</h2>" in page


def test_json_is_strict_and_rounded() -> None:
    m = _minutes("en")
    m.sentiment_arc.append(SentimentPoint(240.0, 300.0, math.nan))
    m.duration_s = 725.123456
    d = to_json(m)
    text = json.dumps(d, allow_nan=False, ensure_ascii=False)
    assert d["duration_s"] == 725.123 and d["sentiment_arc"][-1]["score"] is None
    assert json.loads(text)["action_items"][0]["due"] == "by Friday"


def test_times_and_sparkline() -> None:
    assert [mmss(x) for x in (0.0, 59.96, 65.3, 3725.0, -3.0)] == ["0:00", "0:59", "1:05", "62:05", "0:00"]
    assert mmss(None) == "—" and mmss(math.inf) == "—"
    pts = [SentimentPoint(0, 60, -1.0), SentimentPoint(60, 120, 0.0), SentimentPoint(180, 240, 1.0)]
    assert sparkline(pts) == "▁▅ █"  # fixed scale; one blank for the window without scores
    assert sparkline([]) == ""
