"""Assemble a session's minutes: from its events to utterances, then every part of `Minutes`.

Extractive and offline by default. With an OpenAI-compatible LLM endpoint the summary, decisions, action items
and open questions are written by the model instead (chapters, talk time and the sentiment arc stay measured);
any failure of the endpoint falls back to the extractive minutes with a warning in the result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from intelligence.minutes.extract import action_items, decisions, open_questions
from intelligence.minutes.structure import chapters, sentiment_arc, speaker_stats
from intelligence.minutes.summarize import summarize
from intelligence.minutes.types import (
    ActionItem,
    Decision,
    Minutes,
    MinutesUtterance,
    OpenQuestion,
    SummarySentence,
)
from intelligence.text import clock_time, has_cjk

log = logging.getLogger(__name__)

MERGE_GAP_S = 1.5  # one speaker's finals closer than this read as one utterance
LITTLE_SPEECH_CHARS = 40  # below this there is nothing to summarise


def utterances_from_events(events: Iterable[Mapping[str, Any]]) -> list[MinutesUtterance]:
    """A session's final captions (speaker labels as finally established) merged per speaker turn, with the
    valence of the session's `mood` events as sentiment."""
    from intelligence.speakers import relabelled_finals

    events = list(events)
    valence = {str(e["segment_id"]): float(e["valence"]) for e in events
               if e.get("type") == "mood" and e.get("segment_id") is not None and e.get("valence") is not None}
    finals = sorted(relabelled_finals(events), key=lambda e: (float(e["start_s"]), int(e.get("channel", 0))))
    out: list[MinutesUtterance] = []
    for f in finals:
        text = str(f.get("text", "")).strip()
        if not text:
            continue
        speaker = str(f.get("speaker") or f"ch{f.get('channel', 0)}")
        score = valence.get(str(f["segment_id"]))
        last = out[-1] if out else None
        if last is not None and last.speaker == speaker and float(f["start_s"]) - last.end_s < MERGE_GAP_S:
            joiner = "" if has_cjk(last.text[-1:]) or has_cjk(text[:1]) else " "
            out[-1] = MinutesUtterance(last.start_s, max(last.end_s, float(f["end_s"])), speaker,
                                       last.text + joiner + text, last.language,
                                       score if score is not None else last.sentiment_score)
            continue
        out.append(MinutesUtterance(float(f["start_s"]), float(f["end_s"]), speaker, text,
                                    str(f.get("language") or "en"), score))
    return out


def session_language(utts: Sequence[MinutesUtterance], hint: str = "auto") -> str:
    """zh or en: the session's configured language, else what most of the text is written in."""
    if hint in ("en", "zh"):
        return hint
    chars = "".join(u.text for u in utts)
    cjk = sum(1 for c in chars if has_cjk(c))
    return "zh" if cjk > 0.3 * max(len(chars.replace(" ", "")), 1) else "en"


def build_minutes(utts: Sequence[MinutesUtterance], *, language: str = "auto", embedder: Any = None,
                  llm: Any = None) -> Minutes:
    """The minutes of one session. `llm`: an `intelligence.llm.LlmClient` (optional)."""
    lang = session_language(utts, language)
    duration = max((u.end_s for u in utts), default=0.0) - min((u.start_s for u in utts), default=0.0)
    m = Minutes(language=lang, duration_s=round(max(duration, 0.0), 3), method="extractive")
    if not utts:
        m.warnings.append("no speech was transcribed: little to summarise" if lang == "en"
                          else "没有转写到语音，无可总结")
        return m
    m.speakers = speaker_stats(utts)
    m.sentiment_arc = sentiment_arc(utts)
    m.chapters = chapters(utts, embedder=embedder)
    if sum(len(u.text) for u in utts) < LITTLE_SPEECH_CHARS:
        m.warnings.append("little was said: nothing to summarise" if lang == "en" else "内容很少，无可总结")
        m.summary = [SummarySentence(u.text, u.start_s, u.speaker) for u in utts]
        return m
    m.summary = summarize(utts, language=lang, embedder=embedder)
    m.decisions = decisions(utts)
    m.action_items = action_items(utts)
    m.open_questions = open_questions(utts)
    if llm is not None:
        _apply_llm(m, utts, llm)
    return m


_LLM_PROMPT = (
    "You write meeting minutes from a transcript. Reply with one JSON object with keys: summary (a list of "
    "sentences), decisions (a list of strings), action_items (a list of objects with what, owner, due; owner and "
    "due null when not said), open_questions (a list of strings). Use only what the transcript says. Write in "
    "the transcript's language."
)


def _apply_llm(m: Minutes, utts: Sequence[MinutesUtterance], llm: Any) -> None:
    lines = "\n".join(f"[{clock_time(u.start_s)}] {u.speaker}: {u.text}" for u in utts)
    try:
        reply = llm.complete([{"role": "system", "content": _LLM_PROMPT}, {"role": "user", "content": lines}])
        data = _json_object(reply)
        summary = [SummarySentence(str(s)) for s in data.get("summary") or [] if str(s).strip()]
        if not summary:
            raise ValueError("the reply has no summary")
        m.summary = summary
        m.decisions = [Decision(str(d), 0.0, "") for d in data.get("decisions") or [] if str(d).strip()]
        m.action_items = [ActionItem(str(a.get("what", "")), a.get("owner"), a.get("due"), 0.0, "")
                          for a in data.get("action_items") or [] if isinstance(a, dict) and a.get("what")]
        m.open_questions = [OpenQuestion(str(q), 0.0, "") for q in data.get("open_questions") or []
                            if str(q).strip()]
        m.method = "llm"
    except Exception as exc:  # unreachable, slow, or unusable: the extractive minutes stand
        log.warning("LLM minutes failed (%s); keeping the extractive minutes", type(exc).__name__)
        m.warnings.append(f"LLM endpoint unavailable ({type(exc).__name__}): extractive minutes")


def _json_object(text: str) -> dict[str, Any]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the reply")
    data = json.loads(text[start : end + 1])
    if not isinstance(data, dict):
        raise ValueError("the reply is not a JSON object")
    return data
