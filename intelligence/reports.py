"""Per-recording audit reports: a JSON document and a self-contained HTML page with an inline SVG timeline.

`build_report` assembles everything from transcript events, findings and the scorecard (with its QA
evaluation forms); `render_html` turns that document into one HTML file (no scripts, no external assets)
showing speech per channel, findings as markers, sentiment as a line, and each form's answers with evidence. All transcript and evidence text in the report is PCI-redacted.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from string import Template
from typing import Any

from intelligence.compliance.pci import redact_text
from intelligence.compliance.retention import retention_for
from intelligence.compliance.rules import PolicyPack, Rule
from intelligence.compliance.scorecard import Scorecard
from intelligence.text import clock_time
from intelligence.types import Finding, TranscriptEvent

_LANE_COLORS = ("#3f7dd8", "#2fa37a", "#a06cd5", "#d0892f")


@dataclass(frozen=True, slots=True)
class SentimentPoint:
    """Sentiment of one utterance in [-1, 1] (from a classifier annotation or a lexicon)."""

    start_s: float
    end_s: float
    channel: int
    score: float


def build_report(
    *,
    session_id: str,
    source: str,
    language: str,
    events: Sequence[TranscriptEvent],
    findings: Sequence[Finding],
    scorecard: Scorecard,
    packs: Sequence[PolicyPack],
    rule_lookup: Callable[[str], Rule | None],
    rule_errors: Sequence[Any] = (),
    channel_names: Sequence[str] = ("agent", "customer"),
    mono: bool = False,
    sentiment: Sequence[SentimentPoint] = (),
    generated_at: str | None = None,
) -> dict[str, Any]:
    """The JSON audit report of one recording (transcript and evidence text redacted)."""
    finals = [e for e in events if e.kind == "final"]
    duration = max((e.end_s for e in finals), default=0.0)
    out_findings = []
    for f in sorted(findings, key=lambda f: f.at_s):
        d = f.to_dict()
        d["evidence"] = [{**ev, "text": redact_text(ev.get("text", ""))[0]} for ev in d["evidence"]]
        rule = rule_lookup(f.rule_id)
        d["maps_to"] = rule.maps_to if rule else None
        d["rule_title"] = rule.title if rule else f.rule_id
        d["source"] = rule.source if rule else ""
        out_findings.append(d)
    retention = retention_for(packs)
    card = scorecard.to_dict()
    for form in card.get("forms", []):  # quotes are masked when answered; mask again, as for findings
        for a in form["answers"]:
            a["evidence"] = redact_text(a.get("evidence") or "")[0]
    return {
        "type": "audit_report",
        "session_id": session_id,
        "source": source,
        "language": language,
        "generated_at": generated_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(duration, 2),
        "channels": list(channel_names),
        "mono": mono,
        "packs": [{"id": p.id, "version": p.version, "title": p.title} for p in packs],
        "scorecard": card,
        "findings": out_findings,
        "segments": [
            {"segment_id": e.segment_id, "channel": e.channel, "speaker": e.speaker, "start_s": round(e.start_s, 2),
             "end_s": round(e.end_s, 2), "text": redact_text(e.text)[0]}
            for e in finals
        ],
        "sentiment": [asdict(s) for s in sentiment],
        "rule_errors": [asdict(e) if hasattr(e, "__dataclass_fields__") else dict(e) for e in rule_errors],
        "retention": asdict(retention),
    }


def timeline_svg(report: dict[str, Any], width: int = 1000) -> str:
    """Inline SVG: one lane of speech bars per channel, finding markers, a sentiment line."""
    channels = report.get("channels") or ["speaker"]
    duration = max(float(report.get("duration_s") or 0.0), 1.0)
    left, right, lane_h, top = 90, 15, 26, 24
    sent_h = 60
    height = top + lane_h * len(channels) + 20 + sent_h + 24
    plot_w = width - left - right

    def x(t: float) -> float:
        return left + plot_w * min(max(t, 0.0), duration) / duration

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="call timeline">']
    step = 10 if duration <= 120 else 30 if duration <= 600 else 120
    t = 0
    while t <= duration:
        parts.append(f'<line x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" y2="{height - 20}" stroke="#eef0f4"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{height - 6}" font-size="10" text-anchor="middle" fill="#5b6475">'
                     f'{clock_time(t)}</text>')
        t += step
    for i, name in enumerate(channels):
        y = top + i * lane_h
        parts.append(f'<text x="{left - 8}" y="{y + 16}" font-size="12" text-anchor="end" fill="#1d2330">'
                     f'{html.escape(str(name))}</text>')
        color = _LANE_COLORS[i % len(_LANE_COLORS)]
        for seg in report.get("segments", []):
            if int(seg["channel"]) != i:
                continue
            x0, x1 = x(seg["start_s"]), x(seg["end_s"])
            parts.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1.0):.1f}" height="{lane_h - 8}" '
                         f'rx="2" fill="{color}" opacity="0.8"><title>{clock_time(seg["start_s"])} '
                         f'{html.escape(seg["text"][:200])}</title></rect>')
    lanes_bottom = top + lane_h * len(channels)
    for f in report.get("findings", []):
        fx = x(float(f.get("at_s", 0.0)))
        color = {"high": "#c62828", "medium": "#e08a00"}.get(f.get("severity", ""), "#7a8599")
        label = html.escape(f"{clock_time(float(f.get('at_s', 0.0)))} {f.get('rule_title', f['rule_id'])}")
        parts.append(f'<g><title>{label}</title><line x1="{fx:.1f}" y1="{top - 4}" x2="{fx:.1f}" y2="{lanes_bottom}" '
                     f'stroke="{color}" stroke-width="2"/><path d="M{fx - 5:.1f},{top - 12} L{fx + 5:.1f},{top - 12} '
                     f'L{fx:.1f},{top - 3} Z" fill="{color}"/></g>')
    s_top = lanes_bottom + 20
    mid = s_top + sent_h / 2
    parts.append(f'<text x="{left - 8}" y="{mid + 4:.1f}" font-size="12" text-anchor="end" fill="#1d2330">sentiment</text>')
    parts.append(f'<line x1="{left}" y1="{mid:.1f}" x2="{width - right}" y2="{mid:.1f}" stroke="#cfd5df" '
                 f'stroke-dasharray="3,3"/>')
    for ch in sorted({int(p["channel"]) for p in report.get("sentiment", [])}):
        pts = sorted((p for p in report["sentiment"] if int(p["channel"]) == ch), key=lambda p: p["start_s"])
        coords = " ".join(f"{x((p['start_s'] + p['end_s']) / 2):.1f},{mid - (sent_h / 2 - 4) * max(-1.0, min(1.0, p['score'])):.1f}"
                          for p in pts)
        color = _LANE_COLORS[ch % len(_LANE_COLORS)]
        if coords:
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_ANSWER_LABELS = {
    "met": '<span class="ok">met</span>',
    "not_met": '<span class="ko">not met</span>',
    "not_applicable": '<span class="na">not applicable</span>',
    "unanswered": '<span class="na">unanswered</span>',
}


def forms_html(forms: Sequence[dict[str, Any]]) -> str:
    """The QA evaluation forms section: per form its verdict, each question's answer with the evidence quote and
    its time, who answered (detector or LLM), and the questions left unanswered."""
    if not forms:
        return ""
    esc = html.escape
    parts = ["<h2>QA evaluation forms</h2>"]
    for form in forms:
        score = form.get("score")
        passed = form.get("passed")
        verdict = ('<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'
                   if passed is False else '<span class="badge">not scored</span>')
        score_text = f"{score:g} / 100" if isinstance(score, (int, float)) else "no answered question"
        parts.append(f'<h3>{esc(str(form.get("title", "")))} <small>({esc(str(form.get("form_id", "")))} '
                     f'{esc(str(form.get("version", "")))})</small></h3>')
        parts.append(f"<p>{verdict} &nbsp; score <strong>{esc(score_text)}</strong> "
                     f"(pass mark {float(form.get('pass_mark') or 0):g})</p>")
        rows = []
        for a in form.get("answers", []):
            time_s = a.get("time_s")
            evidence = (f'<span class="ev">{esc(redact_text(str(a["evidence"]))[0])}</span>'
                        if a.get("evidence") else "")
            note = a.get("rationale") or (a.get("reason") if a.get("answer") != "met" else "")
            if note:
                evidence += f"{'<br>' if evidence else ''}<small>{esc(str(note))}</small>"
            rows.append([
                esc(str(a.get("text", a.get("question_id", "")))) + (" <small>(critical)</small>"
                                                                     if a.get("critical") else ""),
                _ANSWER_LABELS.get(str(a.get("answer")), esc(str(a.get("answer")))),
                evidence,
                f'<span class="t">{clock_time(float(time_s))}</span>' if isinstance(time_s, (int, float)) else "",
                esc(str(a.get("source") or "")),
            ])
        parts.append(_table(["question", "answer", "evidence", "time", "answered by"], rows, "No questions."))
        unanswered = form.get("unanswered") or []
        if unanswered:
            texts = {a.get("question_id"): a for a in form.get("answers", [])}
            items = "".join(
                f"<li>{esc(str(texts.get(q, {}).get('text', q)))} <small>({esc(str(q))}: "
                f"{esc(str(texts.get(q, {}).get('reason', '')))})</small></li>" for q in unanswered)
            parts.append(f'<p class="note">Unanswered ({len(unanswered)}), for a reviewer:</p><ul>{items}</ul>')
    return "".join(parts)


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page for a report from `build_report` (all text escaped)."""
    esc = html.escape
    card = report["scorecard"]
    channels = report.get("channels") or []
    findings_rows = []
    for f in report["findings"]:
        ev = f["evidence"][0] if f.get("evidence") else {}
        findings_rows.append([
            f'<span class="t">{clock_time(float(f.get("at_s", 0.0)))}</span>',
            f'<span class="sev-{esc(f["severity"])}">{esc(f["severity"])}</span>',
            f"{esc(f.get('rule_title', f['rule_id']))}<br><small>{esc(f['rule_id'])}"
            f"{' → ' + esc(f['maps_to']) if f.get('maps_to') else ''}</small>",
            f'<span class="ev">{esc(ev.get("text", ""))}</span>' if ev.get("text") else "<em>(not said)</em>",
            f"<small>{esc(f.get('source', ''))}</small>",
        ])
    score_rows = [
        [esc(i["label"]), esc(i["pack"]), f"{i['weight']:g}",
         '<span class="ok">pass</span>' if i["passed"] else '<span class="ko">fail</span>',
         "critical" if i["critical"] else ""]
        for i in card["items"]
    ]
    transcript_rows = []
    for s in report["segments"]:
        ch = int(s["channel"])
        who = channels[ch] if 0 <= ch < len(channels) else s.get("speaker", "")
        transcript_rows.append([f'<span class="t">{clock_time(s["start_s"])}</span>', esc(str(who)), esc(s["text"])])
    packs = "".join(f"<li>{esc(p['title'])} <small>({esc(p['id'])} {esc(p['version'])})</small></li>"
                    for p in report["packs"])
    errors = ""
    if report.get("rule_errors"):
        errors = "<h2>Rule errors</h2><ul>" + "".join(
            f"<li>{esc(str(e.get('rule_id')))}: {esc(str(e.get('error')))}</li>" for e in report["rule_errors"]) + "</ul>"
    meta = (f"{esc(report['source'])} · language {esc(report['language'])} · {clock_time(report['duration_s'])}"
            + (" · mono recording: speaker roles not separated" if report.get("mono") else ""))
    template = Template(resources.files("intelligence").joinpath("report_template.html").read_text(encoding="utf-8"))
    return template.substitute(
        lang="zh" if report["language"] == "zh" else "en",
        title=esc(report["session_id"]),
        meta=meta,
        verdict="PASS" if card["passed"] else "FAIL",
        verdict_class="pass" if card["passed"] else "fail",
        score=f"{card['score']:g}",
        pass_mark=f"{card['pass_mark']:g}",
        n_findings=str(len(report["findings"])),
        timeline_svg=timeline_svg(report),
        findings_table=_table(["time", "severity", "rule", "evidence", "source"], findings_rows, "No findings."),
        scorecard_table=_table(["item", "pack", "weight", "result", ""], score_rows, "No scorecard items."),
        forms_block=forms_html(card.get("forms") or []),
        transcript_table=_table(["time", "speaker", "text"], transcript_rows, "No speech transcribed."),
        packs_list=f"<ul>{packs}</ul>",
        errors_block=errors,
        generated_at=esc(report["generated_at"]),
    )


def report_from_events(
    *,
    session_id: str,
    source: str,
    language: str,
    channel_names: Sequence[str],
    events: Sequence[dict[str, Any]],
    packs: Sequence[PolicyPack],
    rule_lookup: Callable[[str], Rule | None],
) -> dict[str, Any]:
    """The audit report of a stored session, from its persisted events (finals, findings, scorecard, moods).

    Same document as `build_report`; a session that ended before it was scored gets an empty, failing card."""
    finals = [e for e in events if e.get("type") == "transcript" and e.get("kind") == "final"]
    findings = []
    for f in sorted((e for e in events if e.get("type") == "finding"), key=lambda e: float(e.get("at_s") or 0)):
        d = {k: v for k, v in f.items() if k not in ("seq", "session_id", "type")}
        d["evidence"] = [{**ev, "text": redact_text(ev.get("text", ""))[0]} for ev in d.get("evidence") or []]
        rule = rule_lookup(d.get("rule_id", ""))
        d["maps_to"] = d.get("maps_to") or (rule.maps_to if rule else None)
        d["rule_title"] = rule.title if rule else d.get("rule_id", "")
        d["source"] = rule.source if rule else ""
        findings.append(d)
    cards = [e for e in events if e.get("type") == "scorecard"]
    card = dict(cards[-1]) if cards else {"items": [], "score": 0.0, "pass_mark": 0.0, "passed": False, "forms": []}
    for form in card.get("forms") or []:
        for a in form.get("answers") or []:
            a["evidence"] = redact_text(a.get("evidence") or "")[0]
    used = {f.get("pack") for f in findings} | {i.get("pack") for i in card.get("items") or []}
    shown = [p for p in packs if p.id in used] or list(packs)
    sentiment = [{"start_s": float(m.get("at_s") or 0.0), "end_s": float(m.get("at_s") or 0.0),
                  "channel": int(m.get("channel") or 0), "score": float(m.get("valence") or 0.0)}
                 for m in events if m.get("type") == "mood"]
    return {
        "type": "audit_report",
        "session_id": session_id,
        "source": source,
        "language": language,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(max((float(e.get("end_s") or 0.0) for e in finals), default=0.0), 2),
        "channels": list(channel_names),
        "mono": len(channel_names) == 1,
        "packs": [{"id": p.id, "version": p.version, "title": p.title} for p in shown],
        "scorecard": card,
        "findings": findings,
        "segments": [
            {"segment_id": e.get("segment_id"), "channel": int(e.get("channel") or 0), "speaker": e.get("speaker"),
             "start_s": round(float(e.get("start_s") or 0.0), 2), "end_s": round(float(e.get("end_s") or 0.0), 2),
             "text": redact_text(e.get("text") or "")[0]}
            for e in finals
        ],
        "sentiment": sentiment,
        "rule_errors": [],
        "retention": asdict(retention_for(shown)),
    }
