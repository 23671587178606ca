"""Caption export: final transcript segments -> readable cues -> WebVTT / SRT / plain JSON.

Streaming finals are short (each LocalAgreement commit is one); for reading they are merged per speaker into cues
that end at sentence punctuation, a pause, a speaker change, or a length limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from intelligence.text import has_cjk

MAX_CUE_S = 7.0
MAX_CUE_CHARS = 84
PAUSE_S = 0.8
SENTENCE_END = (".", "?", "!", "。", "？", "！")


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    speaker: str
    channel: int
    text: str


def _join(a: str, b: str) -> str:
    if not a:
        return b
    if has_cjk(a[-1:]) or has_cjk(b[:1]):
        return a + b
    return f"{a} {b}"


def build_cues(finals: list[dict[str, Any]], multi_speaker: bool | None = None) -> list[Cue]:
    """Merge final segments (dicts with start_s, end_s, text, channel, speaker) into cues, in time order."""
    segs = sorted((f for f in finals if f.get("text", "").strip()), key=lambda f: (f["start_s"], f["channel"]))
    by_channel: dict[int, list[Cue]] = {}
    for seg in segs:
        ch = int(seg.get("channel", 0))
        cues = by_channel.setdefault(ch, [])
        text = seg["text"].strip()
        if cues:
            last = cues[-1]
            mergeable = (
                not last.text.endswith(SENTENCE_END)
                and str(seg.get("speaker", "")) == last.speaker  # diarized: one channel, several voices
                and seg["start_s"] - last.end_s < PAUSE_S
                and seg["end_s"] - last.start_s <= MAX_CUE_S
                and len(last.text) + len(text) < MAX_CUE_CHARS
            )
            if mergeable:
                cues[-1] = Cue(last.start_s, max(last.end_s, seg["end_s"]), last.speaker, ch, _join(last.text, text))
                continue
        cues.append(Cue(float(seg["start_s"]), float(seg["end_s"]), str(seg.get("speaker", "")), ch, text))
    out = [c for cues in by_channel.values() for c in cues]
    return sorted(out, key=lambda c: (c.start_s, c.channel))


def _ts(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(cues: list[Cue], with_speakers: bool = True) -> str:
    lines = ["WEBVTT", ""]
    for i, c in enumerate(cues, 1):
        lines.append(str(i))
        lines.append(f"{_ts(c.start_s, '.')} --> {_ts(max(c.end_s, c.start_s + 0.05), '.')}")
        body = _escape_vtt(c.text)
        lines.append(f"<v {_escape_vtt(c.speaker)}>{body}" if with_speakers and c.speaker else body)
        lines.append("")
    return "\n".join(lines)


def to_srt(cues: list[Cue], with_speakers: bool = True) -> str:
    lines = []
    for i, c in enumerate(cues, 1):
        lines.append(str(i))
        lines.append(f"{_ts(c.start_s, ',')} --> {_ts(max(c.end_s, c.start_s + 0.05), ',')}")
        lines.append(f"[{c.speaker}] {c.text}" if with_speakers and c.speaker else c.text)
        lines.append("")
    return "\n".join(lines)


def plain_text(finals: list[dict[str, Any]]) -> str:
    """All final text of one channel-ordered transcript, joined for reading or WER."""
    text = ""
    for f in sorted(finals, key=lambda f: f["start_s"]):
        text = _join(text, f.get("text", "").strip())
    return text
