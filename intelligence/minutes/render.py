"""Minutes rendered for people and programs: Markdown, one self-contained HTML page, and a JSON-ready dict.

Headings follow the minutes' language (English, or Chinese for `zh*`). Every section is always present; an empty
one says "None" / "无", so a reader can tell "nothing was decided" from "this part is missing". All text from the
transcript is escaped (HTML entities; Markdown punctuation and raw HTML), and the HTML page loads nothing: inline
CSS, no scripts, no fonts or images from elsewhere.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from intelligence.minutes.types import Minutes, SentimentPoint
from intelligence.text import clock_time, has_cjk

__all__ = ["to_html", "to_json", "to_markdown"]

_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Meeting minutes", "summary": "Summary", "decisions": "Decisions", "actions": "Action items",
        "open": "Open questions", "chapters": "Chapters", "speakers": "Speakers", "sentiment": "Sentiment",
        "warnings": "Warnings", "none": "None", "what": "What", "owner": "Owner", "due": "Due", "time": "Time",
        "speaker": "Speaker", "talk": "Talk time", "share": "Share", "turns": "Turns",
        "interruptions": "Interruptions", "language": "Language", "duration": "Duration", "method": "Method",
        "window": "Window", "score": "Score", "mean": "mean", "lowest": "lowest", "highest": "highest",
        "windows": "windows", "sep": ", ", "at": "{score} at {time}", "colon": ": ",
    },
    "zh": {
        "title": "会议纪要", "summary": "摘要", "decisions": "决定事项", "actions": "待办事项", "open": "待解决问题",
        "chapters": "章节", "speakers": "发言统计", "sentiment": "情绪走势", "warnings": "提示", "none": "无",
        "what": "事项", "owner": "负责人", "due": "截止", "time": "时间", "speaker": "发言人", "talk": "发言时长",
        "share": "占比", "turns": "轮次", "interruptions": "插话次数", "language": "语言", "duration": "时长",
        "method": "方法", "window": "时段", "score": "得分", "mean": "平均", "lowest": "最低", "highest": "最高",
        "windows": "时段", "sep": "，", "at": "{score}（{time}）", "colon": "：",
    },
}
_METHOD_ZH = {"extractive": "抽取式", "llm": "大模型"}
_SPARK = "▁▂▃▄▅▆▇█"
_DASH = "—"


# ------------------------------------------------------------------------------------------------------- helpers

def _is_zh(m: Minutes) -> bool:
    """Chinese headings for zh*, cmn or Mandarin; for an unknown tag ("auto"), by what the minutes' text is in."""
    lang = (m.language or "").strip().lower()
    if lang.startswith(("zh", "cmn")) or lang in ("chinese", "mandarin"):
        return True
    if lang.startswith("en"):
        return False
    texts = [s.text for s in m.summary] + [d.text for d in m.decisions] + [a.what for a in m.action_items]
    return sum(has_cjk(t) for t in texts) * 2 > len(texts) > 0


def _labels(m: Minutes) -> dict[str, str]:
    return _LABELS["zh" if _is_zh(m) else "en"]


def _lang_attr(m: Minutes) -> str:
    """A BCP 47 tag for the page: the minutes' own when it is one ("en", "zh-CN"), else en / zh."""
    lang = (m.language or "").strip()
    if re.fullmatch(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*", lang):
        return lang
    return "zh" if _is_zh(m) else "en"


def mmss(seconds: float | None) -> str:
    """A position as m:ss ("1:05"): `clock_time` at whole seconds, without its tenths."""
    if seconds is None or not math.isfinite(seconds):
        return _DASH
    # Whole seconds first: clock_time rounds tenths, and 59.96 s would otherwise read "0:60".
    return clock_time(float(math.floor(max(0.0, seconds))))[:-2]


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%" if math.isfinite(share) else _DASH


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def sparkline(points: list[SentimentPoint]) -> str:
    """Sentiment as block characters on a fixed -1..+1 scale (▁ negative, ▄▅ neutral, █ positive); a space for each
    window without scores between two that have them."""
    if not points:
        return ""
    width = max(p.end_s - p.start_s for p in points) or 1.0
    out = []
    for i, p in enumerate(points):
        if i:
            gap = round((p.start_s - points[i - 1].start_s) / width) - 1
            out.append(" " * max(0, min(gap, 20)))
        score = max(-1.0, min(1.0, p.score)) if math.isfinite(p.score) else 0.0
        out.append(_SPARK[min(len(_SPARK) - 1, int((score + 1) / 2 * len(_SPARK)))])
    return "".join(out)


def _sentiment_line(points: list[SentimentPoint], lab: dict[str, str]) -> str:
    """"mean +0.12, lowest −0.40 at 3:00, highest +0.50 at 6:00" (plain text, nothing from the transcript)."""
    scores = [p.score for p in points if math.isfinite(p.score)]
    if not scores:
        return ""
    lo = min(points, key=lambda p: p.score)
    hi = max(points, key=lambda p: p.score)
    mean = sum(scores) / len(scores)
    at = lab["at"]
    return lab["sep"].join([f"{lab['mean']} {_signed(mean)}",
                            f"{lab['lowest']} {at.format(score=_signed(lo.score), time=mmss(lo.start_s))}",
                            f"{lab['highest']} {at.format(score=_signed(hi.score), time=mmss(hi.start_s))}"])


def _meta(m: Minutes, lab: dict[str, str]) -> list[tuple[str, str]]:
    method = _METHOD_ZH.get(m.method, m.method) if lab is _LABELS["zh"] else m.method
    return [(lab["language"], m.language or _DASH), (lab["duration"], mmss(m.duration_s)), (lab["method"], method)]


# ------------------------------------------------------------------------------------------------------ markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}#|!~])")


def _md(text: str | None) -> str:
    """Transcript text made inert in Markdown: one line, punctuation escaped, raw HTML shown as text."""
    if text is None:
        return _DASH
    t = re.sub(r"\s+", " ", str(text)).strip()
    t = t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    t = _MD_SPECIAL.sub(r"\\\1", t)
    # A leading "1." or "-" would start a list, "+" too.
    return re.sub(r"^(\d+)\.", r"\1\\.", re.sub(r"^([-+])", r"\\\1", t))


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _md_item(start_s: float | None, speaker: str | None, text: str) -> str:
    who = f" {_md(speaker)}:" if speaker else ""
    when = f"**{mmss(start_s)}**" if start_s is not None else ""
    lead = f"{when}{who} ".lstrip()
    return f"- {lead}{_md(text)}"


def to_markdown(m: Minutes) -> str:
    """The minutes as Markdown: summary, decisions, action items (table), open questions, chapters, speakers
    (table), sentiment (sparkline) and warnings, with headings in the minutes' language."""
    lab = _labels(m)
    none = f"_{lab['none']}_"
    out = [f"# {lab['title']}", "", " · ".join(f"{k}{lab['colon']}{_md(v)}" for k, v in _meta(m, lab)), ""]

    def section(key: str, body: list[str]) -> None:
        out.extend([f"## {lab[key]}", "", *(body or [none]), ""])

    section("summary", [_md_item(s.start_s, s.speaker, s.text) for s in m.summary])
    section("decisions", [_md_item(d.start_s, d.speaker, d.text) for d in m.decisions])
    section("actions", _md_table([lab["what"], lab["owner"], lab["due"], lab["time"]],
                                 [[_md(a.what), _md(a.owner), _md(a.due), mmss(a.start_s)] for a in m.action_items])
            if m.action_items else [])
    section("open", [_md_item(q.start_s, q.speaker, q.text) for q in m.open_questions])
    section("chapters", [f"- **{mmss(c.start_s)}** {_md(c.title)}" for c in m.chapters])
    section("speakers", _md_table([lab["speaker"], lab["talk"], lab["share"], lab["turns"], lab["interruptions"]],
                                  [[_md(s.speaker), mmss(s.talk_s), _pct(s.share), str(s.turns), str(s.interruptions)]
                                   for s in m.speakers]) if m.speakers else [])
    arc = m.sentiment_arc
    section("sentiment", [f"`{sparkline(arc)}` ({mmss(arc[0].start_s)}–{mmss(arc[-1].end_s)})", "",
                          _sentiment_line(arc, lab)] if arc else [])
    section("warnings", [f"- {_md(w)}" for w in m.warnings])
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------- html

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;color:#1d2330;
margin:0;background:#f6f7f9}
main{max-width:60rem;margin:0 auto;padding:1.5rem;background:#fff}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem;border-bottom:1px solid #e3e6eb}
.meta{color:#5b6472;margin:0}.none{color:#8a93a0;font-style:italic}
ul{padding-left:1.2rem}li{margin:.2rem 0}.at{font-variant-numeric:tabular-nums;color:#3f7dd8;margin-right:.4rem}
.who{font-weight:600;margin-right:.3rem}
table{border-collapse:collapse;width:100%;font-size:.95em}th,td{text-align:left;padding:.3rem .5rem;
border-bottom:1px solid #eceef2;vertical-align:top}th{background:#f2f4f7}
td.num{font-variant-numeric:tabular-nums;text-align:right}
.spark{font-size:1.4rem;letter-spacing:1px;color:#2fa37a;white-space:pre}
""".strip()


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_item(start_s: float | None, speaker: str | None, text: str) -> str:
    when = f'<span class="at">{_e(mmss(start_s))}</span>' if start_s is not None else ""
    who = f'<span class="who">{_e(speaker)}</span>' if speaker else ""
    return f"<li>{when}{who}{_e(text)}</li>"


def _html_list(items: list[str], none: str) -> str:
    return f"<ul>{''.join(items)}</ul>" if items else f'<p class="none">{_e(none)}</p>'


def _html_table(header: list[str], rows: list[list[tuple[str, bool]]], none: str) -> str:
    """Rows of (already escaped cell, numeric?)."""
    if not rows:
        return f'<p class="none">{_e(none)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if num else f"<td>{c}</td>" for c, num in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_sentiment(arc: list[SentimentPoint], lab: dict[str, str]) -> str:
    if not arc:
        return f'<p class="none">{_e(lab["none"])}</p>'
    rows = [[(f"{_e(mmss(p.start_s))}–{_e(mmss(p.end_s))}", False), (_e(_signed(p.score)), True)] for p in arc]
    return (f'<p><span class="spark" role="img" aria-label="{_e(_sentiment_line(arc, lab))}">{_e(sparkline(arc))}'
            f"</span></p><p>{_e(_sentiment_line(arc, lab))}</p>"
            f"<details><summary>{_e(lab['windows'])}</summary>"
            f"{_html_table([lab['window'], lab['score']], rows, lab['none'])}</details>")


def to_html(m: Minutes) -> str:
    """The minutes as one self-contained HTML page (inline CSS, no scripts or external assets, all text escaped,
    `lang` set), with the same sections as the Markdown."""
    lab = _labels(m)
    none = lab["none"]
    meta = " · ".join(f"{_e(k)}{_e(lab['colon'])}{_e(v)}" for k, v in _meta(m, lab))
    actions = [[(_e(a.what), False), (_e(a.owner or _DASH), False), (_e(a.due or _DASH), False),
                (_e(mmss(a.start_s)), True)] for a in m.action_items]
    speakers = [[(_e(s.speaker), False), (_e(mmss(s.talk_s)), True), (_e(_pct(s.share)), True),
                 (_e(s.turns), True), (_e(s.interruptions), True)] for s in m.speakers]
    sections = [
        ("summary", _html_list([_html_item(s.start_s, s.speaker, s.text) for s in m.summary], none)),
        ("decisions", _html_list([_html_item(d.start_s, d.speaker, d.text) for d in m.decisions], none)),
        ("actions", _html_table([lab["what"], lab["owner"], lab["due"], lab["time"]], actions, none)),
        ("open", _html_list([_html_item(q.start_s, q.speaker, q.text) for q in m.open_questions], none)),
        ("chapters", _html_list([_html_item(c.start_s, None, c.title) for c in m.chapters], none)),
        ("speakers", _html_table([lab["speaker"], lab["talk"], lab["share"], lab["turns"], lab["interruptions"]],
                                 speakers, none)),
        ("sentiment", _html_sentiment(m.sentiment_arc, lab)),
        ("warnings", _html_list([f"<li>{_e(w)}</li>" for w in m.warnings], none)),
    ]
    body = "".join(f'<section id="{key}"><h2>{_e(lab[key])}</h2>{content}</section>' for key, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="{_e(_lang_attr(m))}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(lab["title"])}</title>\n'
            f"<style>\n{_CSS}\n</style>\n</head>\n<body>\n<main>\n<h1>{_e(lab['title'])}</h1>\n"
            f'<p class="meta">{meta}</p>\n{body}\n</main>\n</body>\n</html>\n')


# ---------------------------------------------------------------------------------------------------------- json

def _jsonable(value: Any) -> Any:
    """Floats to 3 decimals (milliseconds; sentiment to a thousandth), and NaN/inf to None: strict JSON."""
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def to_json(m: Minutes) -> dict[str, Any]:
    """The minutes as a JSON-ready dict (the dataclass fields; floats rounded to 3 decimals, NaN as null)."""
    return _jsonable(m.to_dict())
