"""Clause examples from labelled scenario calls (models/clauses/calls.py) and how training uses them."""

from __future__ import annotations

from pathlib import Path

import yaml

from models.clauses.calls import CALL_STYLE, DEFAULT_CALL_SETS, call_examples, default_call_sets
from models.clauses.data import ClauseExample
from models.clauses.train import binary_targets

_CALL = {
    "call_id": "t_en_01", "language": "en",
    "turns": [
        {"speaker": "agent", "intent": "greeting", "text": "Hi, it's Dana from Northgate. This call is recorded."},
        {"speaker": "customer", "intent": "confirm", "text": "Okay."},
        {"speaker": "agent", "intent": "product_pitch",
         "text": "It's a bond fund. Honestly, you'll never get back less than you put in. Rates are 4.5% now."},
        {"speaker": "agent", "intent": "confirmation_request", "text": "Do you understand the risks?"},
        {"speaker": "customer", "intent": "non_committal_response", "text": "I suppose, if you say so."},
        {"speaker": "agent", "intent": "confirmation_request", "text": "And do you agree to go ahead?"},
        {"speaker": "customer", "intent": "confirm", "text": "Yes, I agree."},
    ],
    "expected_findings": [
        {"rule": "prohibited_promise", "turn": 2, "evidence": "you'll never get back less than you put in"},
        {"rule": "customer_confirmation_missing", "turn": 4, "evidence": "I suppose"},
    ],
}


def _write_set(tmp_path: Path) -> Path:
    folder = tmp_path / "devX" / "scenarios"
    folder.mkdir(parents=True)
    (folder / "t_en_01.yaml").write_text(yaml.safe_dump(_CALL, allow_unicode=True))
    return tmp_path / "devX"


def test_call_sentences_are_labelled_from_the_ground_truth(tmp_path: Path) -> None:
    ex = call_examples([_write_set(tmp_path)])
    assert {e.group for e in ex} == {"call-devX"} and {e.style for e in ex} == {CALL_STYLE}
    guarantee = {(e.text, e.label) for e in ex if e.family == "guarantee"}
    # the evidence sentence is a positive; the labelled turn's other sentences are left out (a turn with two
    # claims is sometimes labelled once); the sentences of unlabelled agent turns are negatives
    assert ("Honestly, you'll never get back less than you put in.", "pos") in guarantee
    assert not any(t.startswith(("It's a bond fund", "Rates are")) for t, _ in guarantee)
    assert ("This call is recorded.", "neg") in guarantee
    # the reply head: a weak reply to a confirmation question, and a clear yes
    replies = {(e.text, e.label) for e in ex if e.family == "customer_reply"}
    assert replies == {("I suppose, if you say so.", "hedge"), ("Yes, I agree.", "explicit_yes")}
    # a reply to something other than a confirmation question is not a reply example
    assert not any(e.text == "Okay." for e in ex)


def test_call_sentences_train_only_their_own_head() -> None:
    call = ClauseExample("Your money can't go down.", "en", "guarantee", "pos", CALL_STYLE, "call-devX", "train")
    written = ClauseExample("Your capital is safe.", "en", "guarantee", "pos", "plain", "g1", "train")
    rows, y = binary_targets([call, written], "guarantee")
    assert rows.tolist() == [0, 1] and y.tolist() == [1, 1]
    # a written positive is a negative of another head; a call sentence says nothing about other heads
    rows, y = binary_targets([call, written], "recording_notice")
    assert rows.tolist() == [1] and y.tolist() == [0]


def test_default_call_sets_exist_and_hold_labelled_calls() -> None:
    sets = default_call_sets()
    in_repo = [d for d in DEFAULT_CALL_SETS if d.startswith("eval/")]
    assert len(sets) >= len(in_repo) and all((Path(__file__).parents[1] / d).is_dir() for d in in_repo)
    ex = call_examples([s for s in sets if s.name == "dev14"])
    assert sum(e.label == "pos" for e in ex if e.family == "guarantee") >= 5
