"""What the recogniser does to calls (splits a card number over segments, drops "'ve", writes 二级 as 耳机, 签个名
as 千个名) does not cost a finding or add one."""

from __future__ import annotations

from intelligence.compliance import ComplianceEngine, load_packs
from intelligence.types import TranscriptEvent


def _run(language: str, segments: list[tuple[int, str]]) -> list[tuple[str, str]]:
    engine = ComplianceEngine(load_packs(), session_id="s", language=language)
    found, t = [], 0.5
    for i, (channel, text) in enumerate(segments):
        event = TranscriptEvent("s", "final", f"seg{i}", channel, "agent" if channel == 0 else "customer", t, t + 2.0,
                                text, language=language)
        found += engine.on_transcript(event)
        t += 2.5
    found += engine.finish(t)
    return [(engine.rule(f.rule_id).maps_to or f.rule_id, f.evidence[0].text) for f in found]


def test_a_card_number_over_two_segments_is_one_finding() -> None:
    found = _run("en", [
        (0, "Hi, Sam at Larchmont Bank, this call is recorded. Read me the number on the front of the card."),
        (1, "Okay, I've got it here The number on the front is 4485-207-3396."),
        (1, "3396"),
        (1, "1 1 8 0"),
    ])
    assert len([f for f in found if f[0] == "pci_card_number_spoken"]) == 1, found


def test_a_submitted_application_heard_without_its_have_concludes_the_sale() -> None:
    found = _run("en", [
        (0, "Hello, it's Maya from Ferris Life, this call is recorded."),
        (0, "I'd suggest our Growth Bond, it's an investment fund that tracks the markets."),
        (1, "Alright."),
        (0, "Lovely, I submitted the application for the bond."),
    ])
    assert "risk_disclosure_missing" in {rule for rule, _ in found}


def test_a_grade_heard_as_a_homophone_still_reads() -> None:
    found = _run("zh", [
        (0, "您好，我是清河银行理财经理周宁，工号四四一二，全程录音录像。"),
        (1, "好。"),
        (0, "您的风险评估结果是耳机，这款基金风险等级是四级，问题不大。"),
    ])
    assert "risk_assessment_mismatch" in {rule for rule, _ in found}


def test_signing_heard_as_qian_ge_ming_concludes_the_sale() -> None:
    found = _run("zh", [
        (0, "您好，我是清河银行理财经理周宁，工号四四一二，全程录音录像。"),
        (1, "好。"),
        (0, "这款理财产品收益不错，那就给您办了，请在右下角千个名就行。"),
    ])
    assert "risk_disclosure_missing" in {rule for rule, _ in found}


def test_a_name_written_in_lower_case_after_the_desk_still_counts() -> None:
    found = _run("en", [
        (0, "Herb online bank customer care tower speaking. Calls are recorded. What can I help you with?"),
        (1, "Hi, I need a new card."),
    ])
    assert "agent_identity_missing" not in {rule for rule, _ in found}


def test_a_staff_number_heard_with_latin_letters_still_counts() -> None:
    found = _run("zh", [
        (0, "您好，我是佳和银行客户经理曹影，Goo号2951，接下来的销售过程会全程录音录像，您同意吗？"),
        (1, "同意。"),
    ])
    assert "agent_identity_missing" not in {rule for rule, _ in found}


def test_speaking_with_a_name_counts_but_not_as_a_question() -> None:
    said = _run("en", [(0, "Call the book, thank you, speaking with Zoe. We record every call on this line."),
                       (1, "Hi, I need some help.")])
    asked = _run("en", [(0, "Good morning, we record every call on this line. Am I speaking with Daniel?"),
                        (1, "Yes, that's me.")])
    assert "agent_identity_missing" not in {rule for rule, _ in said}
    assert "agent_identity_missing" in {rule for rule, _ in asked}


def test_a_bank_heard_as_yan_xing_is_still_an_institution() -> None:
    found = _run("zh", [
        (0, "邢先生您好，我是北辰言行理财经理邱雅，工号九零三六，接下来的销售过程我们会全程录音录像，您同意吗？"),
        (1, "同意。"),
    ])
    assert "agent_identity_missing" not in {rule for rule, _ in found}
