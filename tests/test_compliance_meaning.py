"""`clause:<family>` phrases: the engine asks the injected clause detectors about each sentence, a meaning-level
match finds the claim nobody listed, never duplicates a listed one, and without detectors nothing changes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from intelligence.compliance import ComplianceEngine, load_packs
from intelligence.compliance.text import TextNormalizer
from intelligence.types import TranscriptEvent


class KeywordScorer:
    """A stand-in for models/clauses: a sentence means `family` when it contains one of its cue words."""

    def __init__(self, cues: dict[str, tuple[str, ...]]) -> None:
        self.cues = cues
        self.calls: list[str] = []

    def hits(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.calls += list(texts)
        return [{f: 0.97 for f, words in self.cues.items() if any(w in t.lower() for w in words)} for t in texts]


def _final(i: int, channel: int, text: str) -> TranscriptEvent:
    return TranscriptEvent(session_id="s", kind="final", segment_id=f"seg-{i}", channel=channel,
                           speaker="agent" if channel == 0 else "customer", start_s=5.0 * i, end_s=5.0 * i + 4,
                           text=text, language="en")


CALL = [
    (0, "Hi, this is Dana at Harbor Federal and this call is recorded."),
    (1, "I'd like to hear about the structured note."),
    (0, "This structured note is linked to the index. Come rain or shine, you walk away with more than you put in."),
]


def _promises(scorer: KeywordScorer | None) -> list:
    packs = load_packs(["retail_sales_en"])
    engine = ComplianceEngine(packs, session_id="s", language="en", normalizer=TextNormalizer(clause_scorer=scorer))
    findings = []
    for i, (ch, text) in enumerate(CALL):
        findings += engine.on_transcript(_final(i, ch, text))
    return [f for f in findings if engine.rule(f.rule_id).maps_to == "prohibited_promise"]


def test_a_claim_nobody_listed_is_found_by_meaning() -> None:
    scorer = KeywordScorer({"guarantee": ("rain or shine",), "sales_context": ("structured note",)})
    (finding,) = _promises(scorer)
    assert "promise_in_other_words" in finding.message
    assert "rain or shine" in finding.evidence[0].text
    assert scorer.calls  # the detectors read the sentences


def test_without_detectors_clause_phrases_never_match() -> None:
    assert _promises(None) == []


def test_meaning_does_not_duplicate_a_listed_phrase() -> None:
    packs = load_packs(["retail_sales_en"])
    scorer = KeywordScorer({"guarantee": ("guaranteed",), "sales_context": ("fund",)})
    engine = ComplianceEngine(packs, session_id="s", language="en", normalizer=TextNormalizer(clause_scorer=scorer))
    engine.on_transcript(_final(0, 0, "Let me tell you about our bond fund."))
    found = engine.on_transcript(_final(1, 0, "The fund has guaranteed returns of five percent."))
    promises = [f for f in found if engine.rule(f.rule_id).maps_to == "prohibited_promise"]
    assert len(promises) == 1 and "guaranteed_return" in promises[0].message


@pytest.mark.parametrize("text", ["Just the last four digits, please, never the full number.",
                                  "Please don't read out your card number or the code on the back."])
def test_the_rule_exclusions_still_apply_to_meaning_matches(text: str) -> None:
    packs = load_packs(["contact_center"])
    scorer = KeywordScorer({"sensitive_auth": ("digits", "card number", "code on the back")})
    engine = ComplianceEngine(packs, session_id="s", language="en", normalizer=TextNormalizer(clause_scorer=scorer))
    found = engine.on_transcript(_final(0, 0, text))
    assert not [f for f in found if engine.rule(f.rule_id).maps_to == "sensitive_auth_requested"]


class PairScorer:
    """Means `family` only when a text holds both cue words: a claim that two sentences make together."""

    def __init__(self, family: str, first: str, second: str) -> None:
        self.family, self.first, self.second = family, first, second

    def hits(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [{self.family: 0.97} if self.first in t and self.second in t else {} for t in texts]


def test_a_pair_of_sentences_is_quoted_by_its_second() -> None:
    # Two agent turns run together in the engine; the pair's claim belongs to the sentence that completes it,
    # so its evidence (and the turn a reviewer is sent to) is that sentence, not the one before.
    packs = load_packs(["contact_center"])
    engine = ComplianceEngine(packs, session_id="s", language="en",
                              normalizer=TextNormalizer(clause_scorer=PairScorer("sensitive_auth", "release", "six")))
    engine.on_transcript(_final(0, 0, "I can release the payment from here."))
    found = engine.on_transcript(_final(1, 0, "There are six numbers in the message on your phone."))
    (finding,) = [f for f in found if engine.rule(f.rule_id).maps_to == "sensitive_auth_requested"]
    assert finding.evidence[0].segment_id == "seg-1"
    assert finding.evidence[0].text.startswith("There are six numbers")


def test_a_pair_needs_more_confidence_than_a_sentence() -> None:
    # the heads learned from single sentences: a pair they are only fairly sure about is not a claim
    class Unsure(PairScorer):
        def hits(self, texts: Sequence[str]) -> list[dict[str, float]]:
            return [{self.family: 0.955} if h else {} for h in super().hits(texts)]

    packs = load_packs(["contact_center"])
    engine = ComplianceEngine(packs, session_id="s", language="en",
                              normalizer=TextNormalizer(clause_scorer=Unsure("sensitive_auth", "release", "six")))
    engine.on_transcript(_final(0, 0, "I can release the payment from here."))
    found = engine.on_transcript(_final(1, 0, "There are six numbers in the message on your phone."))
    assert not [f for f in found if engine.rule(f.rule_id).maps_to == "sensitive_auth_requested"]
