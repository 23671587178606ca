"""Re-segment offline ASR output into utterances before the engine sees it.

Offline Whisper with a VAD filter often returns one segment per channel that spans several turns of the
conversation (a customer saying 同意 ... 嗯 ... 是的 over a minute). The engine reasons about turns, and the
order of agent and customer utterances matters (a confirmation must follow the question), so offline
callers split segments at pauses between word timestamps and merge both channels by start time. A live
pipeline that emits one final per VAD utterance does not need this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from intelligence.types import TranscriptEvent, Word


def _join(words: list[Word]) -> str:
    text = "".join(w.text for w in words).strip()
    return " ".join(text.split())


def split_at_pauses(event: TranscriptEvent, min_gap_s: float = 0.8) -> list[TranscriptEvent]:
    """Split one event at pauses of at least `min_gap_s` between consecutive words.

    Events without word timestamps are returned unchanged. Pieces get segment ids `<id>.<n>`.
    """
    words = [w for w in event.words if w.text.strip()]
    if len(words) < 2:
        return [event]
    groups: list[list[Word]] = [[words[0]]]
    for w in words[1:]:
        if w.start_s - groups[-1][-1].end_s >= min_gap_s:
            groups.append([w])
        else:
            groups[-1].append(w)
    if len(groups) == 1:
        return [event]
    out = []
    for i, g in enumerate(groups):
        text = _join(g)
        if not text:
            continue
        out.append(replace(event, segment_id=f"{event.segment_id}.{i}", start_s=g[0].start_s,
                           end_s=g[-1].end_s, text=text, words=tuple(g)))
    return out


def utterances(events: Iterable[TranscriptEvent], min_gap_s: float = 0.8) -> list[TranscriptEvent]:
    """Final events of all channels, split at pauses and ordered by start time (then channel)."""
    out: list[TranscriptEvent] = []
    for e in events:
        if e.kind == "final":
            out.extend(split_at_pauses(e, min_gap_s))
    out.sort(key=lambda e: (e.start_s, e.channel, e.end_s))
    return out
