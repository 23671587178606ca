"""Speaker labels of captions as they stand after live revisions and the end-of-session relabelling.

A diarized session streams each final with a provisional `speaker`, may send one `speaker_update` per final, and
ends with a `diarization` event whose `relabel` map gives the final label of every caption that changed. Exports,
minutes and reports read captions through these helpers so they all agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def current_speakers(events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """segment_id -> the speaker label the events establish, in order (finals, updates, relabelling)."""
    labels: dict[str, str] = {}
    for ev in events:
        kind = ev.get("type")
        if kind == "transcript" and ev.get("kind") == "final":
            labels[str(ev["segment_id"])] = str(ev.get("speaker", ""))
        elif kind == "speaker_update":
            labels[str(ev["segment_id"])] = str(ev["speaker"])
        elif kind == "diarization":
            labels.update({str(k): str(v) for k, v in (ev.get("relabel") or {}).items()})
    return labels


def relabelled_finals(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The final caption events with their speaker as finally established."""
    events = list(events)
    labels = current_speakers(events)
    out = []
    for ev in events:
        if ev.get("type") == "transcript" and ev.get("kind") == "final":
            d = dict(ev)
            d["speaker"] = labels.get(str(ev["segment_id"]), d.get("speaker", ""))
            out.append(d)
    return out


def diarization_turns(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The session's speaker turns from its `diarization` event ([] when it was not diarized)."""
    for ev in events:
        if ev.get("type") == "diarization":
            return list(ev.get("turns") or [])
    return []
