"""Clause examples taken from labelled scenario calls: sentences as agents and customers say them in a call.

The hand-written clause corpus holds one utterance per line, each written to show one meaning. Scenario calls
(../shared/data/calls/dev and eval/scenarios/dev*) hold the same meanings inside whole conversations, written by
many other writers, with the sentences around them that must not fire. Their ground truth names the turn of
every violation, so the sentences of those calls label three heads and the reply head:

- `guarantee`, `deposit_like`, `sensitive_auth`: a sentence of an agent turn labelled `prohibited_promise`,
  `product_misrepresentation` or `sensitive_auth_requested` that holds (part of) the evidence is a positive; the
  sentences of agent turns with no such label are negatives; the other sentences of a labelled turn are left out
  (a turn with two claims is sometimes labelled once).
- `customer_reply`: the customer's turn right after an agent's `confirmation_request` turn, typed by its intent
  label (confirm -> explicit_yes, backchannel, non_committal_response -> hedge) or by the ground truth (a
  reply labelled `customer_confirmation_missing` is never a clear yes).

Each call set is one writing group (`call-<set>`), so thresholds chosen out of fold are chosen on sets, and
writers, that the fold never saw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from intelligence.compliance.matching import CLAUSE_RE
from models.clauses.data import REPLY_FAMILY, ClauseExample

REPO_ROOT = Path(__file__).resolve().parents[2]
# The sets `harken train clauses` learns from by default. A set written after these is scored blind first (dev15 was:
# eval/scenarios/dev15/README.md, dev16 too) and joins the list only after its blind figure is recorded.
DEFAULT_CALL_SETS: tuple[str, ...] = ("../shared/data/calls/dev",) + tuple(
    f"eval/scenarios/dev{i}" for i in range(2, 24))
RULE_FAMILY: dict[str, str] = {
    "prohibited_promise": "guarantee",
    "product_misrepresentation": "deposit_like",
    "sensitive_auth_requested": "sensitive_auth",
}
_REPLY_BY_INTENT = {"confirm": "explicit_yes", "consent_given": "explicit_yes", "backchannel": "backchannel",
                    "non_committal_response": "hedge"}
_MIN_CHARS = 2
CALL_STYLE = "call"  # the `style` of every example taken from a call


def _sentences(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group().strip()) for m in CLAUSE_RE.finditer(text)
            if len(m.group().strip()) >= _MIN_CHARS]


def _scenario_files(directory: Path) -> list[Path]:
    folder = directory / "scenarios" if (directory / "scenarios").is_dir() else directory
    return sorted(folder.glob("*.yaml"))


def _reply_type(turn: dict[str, Any], flagged: bool) -> str | None:
    text = str(turn.get("text", ""))
    kind = _REPLY_BY_INTENT.get(str(turn.get("intent", "")))
    if flagged:
        if kind in (None, "explicit_yes"):
            kind = "question" if re.search(r"[?？]\s*$", text) else "hedge"
        return kind
    return kind


def examples_from_call(sc: dict[str, Any], group: str) -> Iterator[ClauseExample]:
    """The labelled sentences of one scenario call (parsed YAML)."""
    lang = str(sc.get("language", "en"))
    turns = sc.get("turns") or []
    labelled: dict[int, dict[str, list[str]]] = {}
    for f in sc.get("expected_findings") or []:
        labelled.setdefault(int(f["turn"]), {}).setdefault(str(f["rule"]), []).append(str(f.get("evidence", "")))
    for i, turn in enumerate(turns):
        text = str(turn.get("text", ""))
        rules = labelled.get(i, {})
        if turn.get("speaker") == "agent":
            for rule, family in RULE_FAMILY.items():
                spans = [(text.find(ev), text.find(ev) + len(ev)) for ev in rules.get(rule, []) if ev and ev in text]
                for start, end, sentence in _sentences(text):
                    if rule not in rules:
                        label = "neg"
                    elif any(start < e and s < end for s, e in spans):
                        label = "pos"
                    else:
                        continue
                    yield ClauseExample(sentence, lang, family, label, CALL_STYLE, group, "train")
        elif i > 0 and turns[i - 1].get("speaker") == "agent" and turns[i - 1].get("intent") == "confirmation_request":
            kind = _reply_type(turn, "customer_confirmation_missing" in rules)
            if kind is not None and text.strip():
                yield ClauseExample(text.strip(), lang, REPLY_FAMILY, kind, CALL_STYLE, group, "train")


def call_examples(directories: Iterable[Path]) -> list[ClauseExample]:
    """Examples from every scenario YAML of the given call sets (a set's folder or its scenarios/ folder)."""
    out: list[ClauseExample] = []
    for d in directories:
        d = Path(d)
        name = d.name if d.name != "scenarios" else d.parent.name
        for path in _scenario_files(d):
            sc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            out += examples_from_call(sc, f"call-{name}")
    return out


def default_call_sets() -> list[Path]:
    """The default training call sets that exist on this machine (the shared dev set may be absent)."""
    return [p for p in ((REPO_ROOT / d).resolve() for d in DEFAULT_CALL_SETS) if p.is_dir()]
