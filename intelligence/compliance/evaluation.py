"""Scoring compliance findings against call-scenario ground truth (the calls/dev format); used by `harken eval compliance`.

Scenario calls come as a directory with manifest.jsonl, gt/<call_id>.json and audio/. A finding is scored by
its rule's `maps_to` name:
  - `present` rules: matched one-to-one with expected findings of the same rule and the same turn;
  - `absent` rules: scored once per call (the rule fired anywhere in the call or not), the turn is a hint.
Findings of rules without `maps_to` (QA-only rules) are not scored and are counted separately.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intelligence.compliance.rules import SCENARIO_RULES
from intelligence.types import Evidence, Finding, TranscriptEvent, Word


@dataclass(frozen=True, slots=True)
class ScenarioCall:
    """One call of a scenario set."""

    call_id: str
    language: str
    gt: dict[str, Any]
    audio_path: Path | None
    duration_s: float
    mix_path: Path | None = None  # the 16 kHz in-room mix, where the call has one (Mandarin 双录 recordings)


def load_scenarios(directory: Path, *, only: Sequence[str] = ()) -> list[ScenarioCall]:
    """Read manifest.jsonl and each call's gt JSON; a set that was never rendered (scenarios/*.yaml only) is read
    from its YAML, for evaluation from text."""
    calls = []
    manifest = directory / "manifest.jsonl"
    if not manifest.exists() and (directory / "scenarios").is_dir():
        return [c for c in map(call_from_yaml, sorted((directory / "scenarios").glob("*.yaml")))
                if not only or any(o in c.call_id for o in only)]
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        cid = row["call_id"]
        if only and not any(o in cid for o in only):
            continue
        gt_path = directory / row.get("gt", f"gt/{cid}.json")
        gt = json.loads(gt_path.read_text(encoding="utf-8"))
        audio = row.get("stereo_8k") or (gt.get("audio") or {}).get("stereo_8k")
        mix = row.get("mono_16k") or (gt.get("audio") or {}).get("mono_16k")
        calls.append(ScenarioCall(cid, row.get("language") or gt["language"], gt,
                                  directory / audio if audio else None, float(row.get("duration_s") or 0.0),
                                  directory / mix if mix and (directory / mix).exists() else None))
    return calls


# as the scenario renderer splits (../shared/tools/scenarios): an English sentence ends at . ? ! before a space, so
# 9.4% and $10.50 stay whole
_SENTENCE_RE = re.compile(r"(?<=[.?!])\s+|(?<=[。？！])\s*")
# speaking rates for the synthetic times of an unrendered call (only the order of segments matters to the rules)
_SECONDS_PER_CHAR = {"en": 0.06, "zh": 0.2}


def call_from_yaml(path: Path) -> ScenarioCall:
    """A scenario YAML as reference turns (one segment per sentence, synthetic times), without audio."""
    import yaml

    sc = yaml.safe_load(path.read_text(encoding="utf-8"))
    language = sc.get("language", "en")
    rate = _SECONDS_PER_CHAR.get(language, 0.1)
    t, turns = 0.5, []
    for i, turn in enumerate(sc.get("turns") or []):
        start, segments = t, []
        for sentence in (x.strip() for x in _SENTENCE_RE.split(turn["text"]) if x.strip()):
            d = max(0.5, len(sentence) * rate)
            segments.append({"text": sentence, "start_s": t, "end_s": t + d})
            t += d + 0.2
        turns.append({"index": i, "speaker": turn["speaker"], "channel": 0 if turn["speaker"] == "agent" else 1,
                      "start_s": start, "end_s": t, "language": language, "text": turn["text"],
                      "segments": segments})
        t += 0.5
    gt = {"call_id": sc["call_id"], "language": language, "turns": turns,
          "expected_findings": sc.get("expected_findings") or [], "compliant": not sc.get("expected_findings")}
    return ScenarioCall(sc["call_id"], language, gt, None, t)


def events_from_reference(call: ScenarioCall, text_field: str = "text") -> list[TranscriptEvent]:
    """Final transcript events built from the reference turns, one per reference segment (sentence/clause).

    `text` is the written form (digits, "$52.18") which is what Whisper outputs; `text_spoken` is what the TTS
    said (card numbers as digit words). With `text_spoken`, a turn whose spoken form differs becomes one event.
    """
    events = []
    for turn in call.gt["turns"]:
        idx, channel, speaker = turn["index"], int(turn["channel"]), turn["speaker"]
        words = [Word(w["w"], float(w["start_s"]), float(w["end_s"])) for w in turn.get("words", [])]
        segments = turn.get("segments") or [{"text": turn["text"], "start_s": turn["start_s"], "end_s": turn["end_s"]}]
        spoken = turn.get(text_field, turn["text"])
        if text_field != "text" and spoken != turn["text"]:
            segments = [{"text": spoken, "start_s": turn["start_s"], "end_s": turn["end_s"]}]
            words = []
        for k, seg in enumerate(segments):
            s0, s1 = float(seg["start_s"]), float(seg["end_s"])
            seg_words = tuple(w for w in words if s0 - 0.05 <= w.start_s < s1 + 0.05)
            events.append(TranscriptEvent(
                session_id=call.call_id, kind="final", segment_id=f"t{idx}.s{k}", channel=channel, speaker=speaker,
                start_s=s0, end_s=s1, text=seg["text"], words=seg_words, language=call.language, model="reference",
            ))
    events.sort(key=lambda e: (e.start_s, e.channel))
    return events


def turn_from_segment_id(segment_id: str) -> int | None:
    """Turn index encoded by `events_from_reference` ("t3.s0" -> 3)."""
    if segment_id.startswith("t") and "." in segment_id:
        head = segment_id[1:].split(".", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def turn_by_time(call: ScenarioCall, evidence: Evidence) -> int | None:
    """The reference turn on the evidence's channel that overlaps it most (nearest if none overlaps)."""
    turns = [t for t in call.gt["turns"] if int(t["channel"]) == evidence.channel] or call.gt["turns"]
    if not turns:
        return None
    s, e = evidence.start_s, max(evidence.end_s, evidence.start_s + 0.01)

    def overlap(t: dict[str, Any]) -> float:
        return min(e, t["end_s"]) - max(s, t["start_s"])

    best = max(turns, key=overlap)
    if overlap(best) > 0:
        return int(best["index"])
    mid = (s + e) / 2
    return int(min(turns, key=lambda t: min(abs(mid - t["start_s"]), abs(mid - t["end_s"])))["index"])


def finding_turn(call: ScenarioCall, finding: Finding) -> int | None:
    if not finding.evidence:
        return None
    ev = finding.evidence[0]
    idx = turn_from_segment_id(ev.segment_id)
    return idx if idx is not None else turn_by_time(call, ev)


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def as_dict(self) -> dict[str, Any]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "support": self.tp + self.fn}


@dataclass
class CallScore:
    call_id: str
    per_rule: dict[str, Counts] = field(default_factory=dict)
    expected: list[dict[str, Any]] = field(default_factory=list)
    predicted: list[dict[str, Any]] = field(default_factory=list)
    misses: list[dict[str, Any]] = field(default_factory=list)
    false_alarms: list[dict[str, Any]] = field(default_factory=list)


def score_call(call: ScenarioCall, scored: Sequence[tuple[str, int | None, Finding]]) -> CallScore:
    """Compare (maps_to, turn, finding) predictions for one call with its expected findings."""
    out = CallScore(call.call_id)
    expected = call.gt.get("expected_findings", [])
    out.expected = [{"rule": e["rule"], "turn": e["turn"], "kind": e.get("kind")} for e in expected]
    out.predicted = [{"rule": r, "turn": t, "rule_id": f.rule_id, "evidence": f.evidence[0].text if f.evidence else ""}
                     for r, t, f in scored]
    rules = set(SCENARIO_RULES) | {e["rule"] for e in expected} | {r for r, _, _ in scored}
    for rule in sorted(rules):
        c = Counts()
        kind = SCENARIO_RULES.get(rule, "present")
        exp = [e for e in expected if e["rule"] == rule]
        pred = [(t, f) for r, t, f in scored if r == rule]
        if kind == "absent":
            if exp and pred:
                c.tp = 1
            elif exp:
                c.fn = 1
                out.misses.append({"rule": rule, "turn": exp[0]["turn"]})
            elif pred:
                c.fp = 1
                out.false_alarms.append({"rule": rule, "turn": pred[0][0]})
        else:
            want = Counter(int(e["turn"]) for e in exp)
            for t, _f in pred:
                if t is not None and want[t] > 0:
                    want[t] -= 1
                    c.tp += 1
                else:
                    c.fp += 1
                    out.false_alarms.append({"rule": rule, "turn": t})
            for t, n in want.items():
                for _ in range(n):
                    c.fn += 1
                    out.misses.append({"rule": rule, "turn": t})
        if c.tp or c.fp or c.fn:
            out.per_rule[rule] = c
    return out


def summarize(scores: Sequence[CallScore]) -> dict[str, Any]:
    """Micro and per-rule precision/recall over all calls (top-level precision/recall = micro)."""
    micro = Counts()
    per_rule: dict[str, Counts] = {}
    for s in scores:
        for rule, c in s.per_rule.items():
            per_rule.setdefault(rule, Counts()).add(c)
            micro.add(c)
    m = micro.as_dict()
    return {
        "micro": m,
        "per_rule": {r: c.as_dict() for r, c in sorted(per_rule.items())},
        "calls": len(scores),
        "precision": m["precision"],
        "recall": m["recall"],
        "f1": m["f1"],
    }
