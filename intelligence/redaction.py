"""Card-data redaction of a channel's final captions: one policy for live sessions, the CLI and batch outputs.

A card number is often read over several finals (Whisper splits "5425 2334 ... 9903" across commits, and people
pause between digit groups), so the finals of one channel are searched as one text and each sensitive span is
mapped back to the segments and word times it covers. Redacted characters become `#`, so the shape of what was
said (and the text's length) survives for a reviewer while the digits do not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from intelligence.compliance.pci import find_sensitive, time_of_chars
from intelligence.types import TranscriptEvent

CARD_DATA_KINDS: tuple[str, ...] = ("pan", "cvv")


@dataclass
class ChannelRedaction:
    """What redacting one channel's finals changed: new texts by segment id, and media spans to mute."""

    texts: dict[str, str] = field(default_factory=dict)
    mute_spans_s: list[tuple[float, float]] = field(default_factory=list)


def _mask(text: str) -> str:
    return "".join("#" if c.isalnum() else c for c in text)


def redact_channel(finals: Sequence[Mapping[str, Any]], kinds: Iterable[str] = CARD_DATA_KINDS,
                   ) -> ChannelRedaction:
    """Find card data in one channel's finals (in order) read as one text; returns what to change."""
    out = ChannelRedaction()
    text, offsets = "", []
    for ev in finals:
        if text:
            text += " "
        offsets.append((len(text), ev))
        text += ev["text"]
    for span in find_sensitive(text, tuple(kinds)):
        times: list[tuple[float, float]] = []
        for off, ev in offsets:
            lo, hi = max(span.start, off) - off, min(span.end, off + len(ev["text"])) - off
            if lo >= hi:
                continue
            current = out.texts.get(ev["segment_id"], ev["text"])
            out.texts[ev["segment_id"]] = current[:lo] + _mask(current[lo:hi]) + current[hi:]
            times.append(time_of_chars(TranscriptEvent.from_dict(ev), lo, hi))
        if times:  # one interval from the first to the last digit, pauses between groups included
            out.mute_spans_s.append((min(t[0] for t in times), max(t[1] for t in times)))
    return out


def redacted_final(ev: Mapping[str, Any], text: str) -> dict[str, Any]:
    """A copy of a final caption dict with its redacted text (same length as the original: masking keeps
    positions); a word that covers any masked character is masked whole, and stray digits in words too."""
    original = str(ev["text"])
    changed = [i for i, (a, b) in enumerate(zip(original, text, strict=False)) if a != b]
    words = [dict(w) for w in ev.get("words", ())]
    cursor = 0
    for w in words:
        needle = str(w["text"]).strip()
        at = original.find(needle, cursor) if needle else -1
        if at >= 0:
            cursor = at + len(needle)
            if any(at <= i < at + len(needle) for i in changed):
                w["text"] = _mask(w["text"])
                continue
        w["text"] = "".join("#" if c.isdigit() else c for c in w["text"])
    return {**ev, "text": text, "words": words, "redacted": True}


def redact_finals(finals: Sequence[Mapping[str, Any]], kinds: Iterable[str] = CARD_DATA_KINDS,
                  ) -> list[dict[str, Any]]:
    """All finals of a transcript (any channels, any order) with card data masked channel by channel."""
    kinds = tuple(kinds)
    changed: dict[str, str] = {}
    for channel in sorted({int(ev.get("channel", 0)) for ev in finals}):
        segs = sorted((ev for ev in finals if int(ev.get("channel", 0)) == channel), key=lambda e: e["start_s"])
        changed.update(redact_channel(segs, kinds).texts)
    return [redacted_final(ev, changed[ev["segment_id"]]) if ev["segment_id"] in changed else dict(ev)
            for ev in finals]


CARD_DATA_PACKS = frozenset({"pci_dss"})


def _masked_evidence(items: Any, whole: bool) -> list[dict[str, Any]]:
    from intelligence.compliance.pci import redact_text

    out = []
    for ev in items or ():
        ev = dict(ev)
        text = str(ev.get("text") or "")
        ev["text"] = _mask(text) if whole else redact_text(text)[0]
        out.append(ev)
    return out


def redact_event_evidence(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a finding or ticket event whose evidence quotes carry no card data (a card-data rule's quote is
    masked whole, any other quote has card numbers and codes replaced). Other events come back unchanged."""
    kind = event.get("type")
    if kind == "finding":
        whole = event.get("pack") in CARD_DATA_PACKS
        return {**event, "evidence": _masked_evidence(event.get("evidence"), whole)}
    if kind == "ticket" and isinstance(event.get("finding"), Mapping):
        finding = event["finding"]
        whole = finding.get("pack") in CARD_DATA_PACKS or event.get("pack") in CARD_DATA_PACKS
        return {**event, "finding": {**finding, "evidence": _masked_evidence(finding.get("evidence"), whole)}}
    return dict(event)
