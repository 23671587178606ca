"""Policy pack loading: the shipped packs are valid and cover the vocabulary; bad packs are rejected whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from intelligence.compliance import SCENARIO_RULES, PolicyError, load_pack, load_packs, parse_pack

FIXTURES = Path(__file__).parent / "fixtures" / "policies"


def test_builtin_packs_load_and_cover_the_vocabulary() -> None:
    packs = load_packs()
    ids = {p.id for p in packs}
    assert {"pci_dss", "recording_notice", "contact_center", "retail_sales_en", "cn_dual_recording"} <= ids
    mapped = {r.maps_to for p in packs for r in p.rules if r.maps_to}
    assert mapped == set(SCENARIO_RULES)
    for p in packs:
        assert p.version and p.sources
        for r in p.rules:
            assert r.source.strip(), r.id
            assert r.pack == p.id and r.pack_version == p.version


@pytest.mark.parametrize(("name", "line", "reason"), [
    ("bad_syntax.yaml", 8, "invalid YAML"),
    ("unknown_key.yaml", 8, "unknown key 'within_turn'"),
    ("duplicate_rule.yaml", 8, "duplicate rule id 'promise'"),
    ("contradictory.yaml", 11, "prohibits 'capital is protected'"),
    ("unknown_event.yaml", 7, "unknown event 'risk_told'"),
])
def test_bad_pack_is_rejected_with_file_line_and_reason(name: str, line: int, reason: str) -> None:
    path = FIXTURES / name
    with pytest.raises(PolicyError) as info:
        load_pack(path)
    problems = info.value.problems
    assert any(p.file == str(path) and p.line == line and reason in p.reason for p in problems), problems
    assert f"{path}:{line}:" in str(info.value)


def test_every_problem_is_reported_not_just_the_first() -> None:
    with pytest.raises(PolicyError) as info:
        load_pack(FIXTURES / "unknown_event.yaml")
    reasons = " | ".join(p.reason for p in info.value.problems)
    assert "unknown event" in reasons and "not in the scenario vocabulary" in reasons and "regular expression" in reasons


def test_contradictory_packs_are_rejected_as_a_set() -> None:
    a, b = FIXTURES / "order_a.yaml", FIXTURES / "order_b.yaml"
    assert load_pack(a).rules and load_pack(b).rules  # each alone is fine
    with pytest.raises(PolicyError) as info:
        load_packs([a, b])
    assert "orders 'signed' before 'disclosed'" in str(info.value)


def test_set_load_is_all_or_nothing() -> None:
    with pytest.raises(PolicyError) as info:
        load_packs(["pci_dss", FIXTURES / "duplicate_rule.yaml"])
    assert all("duplicate_rule.yaml" in p.file for p in info.value.problems)


def test_same_pack_twice_is_rejected() -> None:
    with pytest.raises(PolicyError, match="loaded twice"):
        load_packs(["pci_dss", "pci_dss"])


def test_maps_to_kind_must_agree() -> None:
    text = """
pack: p
version: "1"
rules:
  - id: r
    kind: prohibited_phrase
    source: s
    maps_to: consent_notice_missing
    phrases: [x y z]
"""
    with pytest.raises(PolicyError, match="'absent' finding"):
        parse_pack(text, "inline.yaml")


def test_disabled_rule_is_not_loaded() -> None:
    text = """
pack: p
version: "1"
rules:
  - {id: r_on, kind: cvv, source: s}
  - {id: r_off, kind: cvv, source: s, enabled: false}
"""
    assert [r.id for r in parse_pack(text).rules] == ["r_on"]


def test_yaml_boolean_ids_are_rejected() -> None:
    # YAML 1.1 reads `on`/`off`/`yes` as booleans: a rule id must be a string, not silently True.
    with pytest.raises(PolicyError, match="'id' must be a string"):
        parse_pack('pack: p\nversion: "1"\nrules:\n  - {id: on, kind: cvv, source: s}\n', "inline.yaml")
