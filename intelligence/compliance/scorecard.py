"""QA scorecard for one session: weighted items from the packs, pass/fail per item, a 0-100 score.

An item passes when none of its rules raised a finding. Items whose rules do not apply to the session's
language are left out (not counted as passed). The session passes when the score reaches the pass mark
(the strictest of the packs involved) and no critical item failed. `forms` carries the QA evaluation forms
filled in for the session (see forms.py), added by the caller once they are answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from intelligence.compliance.forms import FormResult
from intelligence.compliance.rules import PolicyPack
from intelligence.types import Finding


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One scorecard line."""

    pack: str
    item_id: str
    label: str
    weight: float
    passed: bool
    critical: bool
    finding_rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scorecard:
    """The QA result of one session."""

    session_id: str
    language: str
    items: tuple[ItemResult, ...]
    score: float
    pass_mark: float
    passed: bool
    forms: tuple[FormResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["forms"] = [f.to_dict() for f in self.forms]
        d["type"] = "scorecard"
        return d


def build_scorecard(
    packs: Sequence[PolicyPack], findings: Iterable[Finding], *, session_id: str = "", language: str = "en"
) -> Scorecard:
    """Score a session from the findings its engine raised."""
    fired: dict[str, list[str]] = {}
    for f in findings:
        fired.setdefault(f.rule_id, []).append(f.rule_id)
    items: list[ItemResult] = []
    pass_marks = []
    for pack in packs:
        if pack.languages and language not in pack.languages:
            continue
        used = False
        for item in pack.scorecard:
            applicable = [r for r in item.rules if (rule := pack.rule(r)) is not None and rule.applies_to(language)]
            if not applicable:
                continue
            used = True
            hit = tuple(r for r in applicable if r in fired)
            items.append(ItemResult(pack.id, item.id, item.label, item.weight, not hit, item.critical, hit))
        if used:
            pass_marks.append(pack.pass_mark)
    total = sum(i.weight for i in items)
    score = 100.0 * sum(i.weight for i in items if i.passed) / total if total > 0 else 100.0
    pass_mark = max(pass_marks, default=80.0)
    passed = score >= pass_mark and not any(i.critical and not i.passed for i in items)
    return Scorecard(session_id, language, tuple(items), round(score, 1), pass_mark, passed)
