"""QA evaluation forms: loading and validation against the packs, answers from the detectors on real dev calls
(reference text), the weighted score, and the forms in the scorecard, the HTML report and the REST API."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from intelligence.compliance import ComplianceEngine, build_scorecard, load_packs
from intelligence.compliance.evaluation import events_from_reference, load_scenarios
from intelligence.compliance.forms import (
    NO_LLM_REASON,
    CallEvidence,
    EvaluationForm,
    FormQuestion,
    FormResult,
    QuestionResult,
    evaluate_forms,
    score_form,
)
from intelligence.compliance.forms_loader import (
    BUILTIN_FORMS,
    FormError,
    check_forms,
    forms_from_setting,
    load_forms,
    parse_form,
)
from intelligence.compliance.text import TextNormalizer
from intelligence.reports import build_report, render_html
from pipelines.settings import HarkenSettings

CALLS = ["dev_en_01", "dev_en_05", "dev_en_06", "dev_en_07", "dev_en_08", "dev_zh_01", "dev_zh_04", "dev_zh_08"]
LLM_ONLY_EN = ("empathy", "next_steps", "plain_language")


@pytest.fixture(scope="module")
def packs():
    return load_packs()


@pytest.fixture(scope="module")
def forms(packs):
    return load_forms(packs=packs)


@pytest.fixture(scope="module")
def calls(shared_data):
    return {c.call_id: c for c in load_scenarios(shared_data / "calls" / "dev", only=CALLS)}


@pytest.fixture(scope="module")
def normalizer():
    return TextNormalizer()


def _engine(packs, call, normalizer, *, mono: bool = False) -> ComplianceEngine:
    engine = ComplianceEngine(packs, session_id=call.call_id, language=call.language, normalizer=normalizer,
                              roles_known=not mono)
    events = events_from_reference(call)
    if mono:  # one mixed channel, as an in-room recording: no speaker labels
        events = [replace(e, channel=0, speaker="") for e in events]
    engine.run(events)
    return engine


@pytest.fixture(scope="module")
def filled(packs, forms, calls, normalizer) -> dict[str, FormResult]:
    """Each call's one applicable form, filled in by the detectors (no LLM)."""
    out = {}
    for cid, call in calls.items():
        (result,) = evaluate_forms(forms, CallEvidence.from_engine(_engine(packs, call, normalizer)),
                                   normalizer=normalizer)
        out[cid] = result
    return out


def _answers(result: FormResult) -> dict[str, QuestionResult]:
    return {a.question_id: a for a in result.answers}


def _turn(call, index: int) -> dict:
    return call.gt["turns"][index]


# -- loading ------------------------------------------------------------------------------------------------------


def test_builtin_forms_load_and_validate_against_the_packs(packs, forms) -> None:
    assert [f.id for f in forms] == list(BUILTIN_FORMS)
    rules = {r.id: p.id for p in packs for r in p.rules}
    for form in forms:
        assert form.questions and form.sha256 and Path(form.path).is_file()
        for q in form.questions:
            assert all(rules[r] in form.packs for r in q.rules)
        llm_only = [q.id for q in form.questions if not q.rules]
        assert len(llm_only) == 3 and all(form.question(q).llm for q in llm_only)
    en, zh = forms
    assert en.languages == ("en",) and zh.languages == ("zh",)
    assert {q.id for q in en.questions} >= {"greeting_name", "recording_notice", "identity_verification",
                                            "no_card_data", "risk_disclosure", "no_guarantees", "confirmation",
                                            "cooling_off", *LLM_ONLY_EN}
    assert any("录音录像" in q.text for q in zh.questions) and any("犹豫期" in q.text for q in zh.questions)
    # a session with only some packs gets only the forms whose packs are all there
    assert [f.id for f in load_forms(packs=[p for p in packs if p.id == "cn_dual_recording"])] == [
        "dual_recording_qa_zh"]
    assert forms_from_setting("none", packs) == []


FORM = """form: f1
version: "1"
languages: [en]
packs: [recording_notice]
questions:
  - id: notice
    text: Recording notice?
    weight: 5
    rules: [{rule}]
    only_if: [{only_if}]
"""


def test_form_problems_are_reported_with_file_and_line(packs) -> None:
    ok = parse_form(FORM.format(rule="recording_notice_missing", only_if="recording_notice"), "ok.yaml")
    assert check_forms([ok], packs) == [ok]
    with pytest.raises(FormError) as exc:
        check_forms([parse_form(FORM.format(rule="no_such_rule", only_if="recording_notice"), "f.yaml")], packs)
    assert str(exc.value) == ("f.yaml:6: form 'f1' question 'notice': unknown rule id 'no_such_rule' "
                              "(not in packs recording_notice)")
    with pytest.raises(FormError, match="rule 'pci_pan_spoken' is in pack 'pci_dss', which the form does not list"):
        check_forms([parse_form(FORM.format(rule="pci_pan_spoken", only_if="recording_notice"))], packs)
    with pytest.raises(FormError, match="only_if 'sale_concluded' is not an event or context"):
        check_forms([parse_form(FORM.format(rule="recording_notice_missing", only_if="sale_concluded"))], packs)
    with pytest.raises(FormError) as exc:
        parse_form(FORM.format(rule="x", only_if="y").replace("    weight: 5", "    wieght: 5\n    weight: -1"),
                   "typo.yaml")
    reasons = [p.reason for p in exc.value.problems]
    assert "form.questions[0]: unknown key 'wieght'" in reasons and any("'weight' must be" in r for r in reasons)
    assert [p.line for p in exc.value.problems if "wieght" in p.reason] == [8]
    with pytest.raises(FormError, match="need 'rules'"):
        parse_form("form: f\nversion: '1'\nlanguages: [en]\npacks: [pci_dss]\nquestions:\n"
                   "  - {id: q, text: t, met_evidence: [hello]}\n")
    # a form named explicitly must find its packs; a built-in one is skipped when they are not loaded
    only_pci = [p for p in packs if p.id == "pci_dss"]
    with pytest.raises(FormError, match="needs pack"):
        check_forms([ok], only_pci, require_packs=True)
    assert check_forms([ok], only_pci) == []


# -- answers from the detectors -------------------------------------------------------------------------------------


def test_violating_call_answers_not_met_with_evidence_and_time(filled, calls) -> None:
    # dev_en_07: guaranteed returns promised in turn 2, and the sale closed with no risk disclosure
    r = filled["dev_en_07"]
    a = _answers(r)
    promise = a["no_guarantees"]
    turn = _turn(calls["dev_en_07"], 2)
    assert promise.answer == "not_met" and promise.source == "detector"
    assert "sales_prohibited_promise" in promise.rule_ids
    assert "guaranteed returns" in promise.evidence.lower() and promise.evidence in turn["text"]
    assert turn["start_s"] <= promise.time_s <= turn["end_s"]
    assert a["risk_disclosure"].answer == "not_met" and "sales_risk_disclosure_missing" in a["risk_disclosure"].rule_ids
    assert a["recording_notice"].answer == "met"
    assert r.passed is False and r.score is not None and r.score < r.pass_mark

    # dev_en_08: no recording notice, due at the agent's first turn
    notice = _answers(filled["dev_en_08"])["recording_notice"]
    first = _turn(calls["dev_en_08"], 0)
    assert notice.answer == "not_met" and notice.rule_ids == ("recording_notice_missing",)
    assert notice.time_s == pytest.approx(first["start_s"], abs=0.5) and notice.evidence in first["text"]
    assert filled["dev_en_08"].passed is False  # a critical question

    # dev_zh_08: conservative customer sold a level-4 fund, "长期肯定能赚钱", no recording notice
    z = _answers(filled["dev_zh_08"])
    assert z["suitability"].answer == "not_met" and "保守型" in z["suitability"].evidence
    assert _turn(calls["dev_zh_08"], 4)["start_s"] <= z["suitability"].time_s <= _turn(calls["dev_zh_08"], 4)["end_s"]
    assert z["no_promise"].answer == "not_met" and z["no_promise"].evidence == "肯定能赚钱"
    assert _turn(calls["dev_zh_08"], 6)["start_s"] <= z["no_promise"].time_s <= _turn(calls["dev_zh_08"], 6)["end_s"]
    assert z["recording_notice"].answer == "not_met" and filled["dev_zh_08"].passed is False


def test_compliant_call_answers_met_with_supporting_quotes(filled, calls) -> None:
    call = calls["dev_en_06"]
    r = filled["dev_en_06"]
    a = _answers(r)
    notice = a["recording_notice"]
    assert notice.answer == "met" and "call is recorded" in notice.evidence.lower()
    assert _turn(call, 0)["start_s"] <= notice.time_s <= _turn(call, 0)["end_s"]
    confirmation = a["confirmation"]  # quoted from the customer's own words
    customer_turns = [t for t in call.gt["turns"] if t["speaker"] == "customer"]
    assert confirmation.answer == "met" and confirmation.evidence in ("I understand", "I confirm")
    assert any(t["start_s"] <= confirmation.time_s <= t["end_s"] and confirmation.evidence in t["text"]
               for t in customer_turns)
    assert a["risk_disclosure"].answer == "met" and a["no_guarantees"].answer == "met"
    assert a["cooling_off"].answer == "not_applicable" and "insurance" in a["cooling_off"].reason  # a fund sale
    assert r.score == 100.0 and r.passed is True

    zh = _answers(filled["dev_zh_01"])
    assert zh["recording_notice"].answer == "met" and "录音录像" in zh["recording_notice"].evidence
    assert zh["confirmation"].answer == "met" and "已阅读并理解" in zh["confirmation"].evidence
    assert zh["no_promise"].answer == "met" and filled["dev_zh_01"].passed is True


def test_sales_questions_not_applicable_without_a_sale(filled) -> None:
    a = _answers(filled["dev_en_01"])  # a lost debit card: nothing is sold
    for qid in ("risk_disclosure", "confirmation", "cooling_off", "no_guarantees"):
        assert a[qid].answer == "not_applicable", qid
        assert a[qid].source == "detector" and a[qid].weight > 0
    assert "sale_concluded did not happen" in a["risk_disclosure"].reason
    assert "only if sales" in a["no_guarantees"].reason
    assert a["greeting_name"].answer == "met" and a["identity_verification"].answer == "met"


def test_llm_only_questions_unanswered_without_an_llm(filled) -> None:
    r = filled["dev_en_01"]
    assert r.unanswered == LLM_ONLY_EN
    for qid in LLM_ONLY_EN:
        a = _answers(r)[qid]
        assert (a.answer, a.source, a.reason) == ("unanswered", None, NO_LLM_REASON)
    assert r.score == 100.0 and r.passed is True  # scored on the answered questions
    assert filled["dev_zh_04"].unanswered == ("polite_language", "patient_answers", "product_terms")


def test_card_data_is_never_quoted(filled) -> None:
    r = filled["dev_en_05"]
    pan = _answers(r)["no_card_data"]
    assert pan.answer == "not_met" and "pci_pan_spoken" in pan.rule_ids
    assert pan.evidence.count("#") >= 12 and not re.search(r"\d", pan.evidence)
    assert r.passed is False
    assert "4539" not in json.dumps([f.to_dict() for f in filled.values()], ensure_ascii=False)


def test_detectors_that_cannot_run_leave_the_question_open(packs, forms, calls, normalizer) -> None:
    # an in-room mono 双录 mix: who answered is unknown, so customer confirmation cannot be judged by rules
    mono = _engine(packs, calls["dev_zh_04"], normalizer, mono=True)
    (r,) = evaluate_forms(forms, CallEvidence.from_engine(mono), normalizer=normalizer)
    confirmation = _answers(r)["confirmation"]
    assert confirmation.answer == "unanswered" and "who spoke" in confirmation.reason
    assert "confirmation" in r.unanswered
    # a rule that failed at run time proves nothing either way
    call = CallEvidence.from_engine(_engine(packs, calls["dev_en_01"], normalizer))
    (r,) = evaluate_forms(forms, replace(call, failed_rules=frozenset({"recording_notice_missing"})),
                          normalizer=normalizer)
    notice = _answers(r)["recording_notice"]
    assert notice.answer == "unanswered" and "failed at run time" in notice.reason


def test_score_is_the_weighted_share_of_met_among_answered() -> None:
    qs = tuple(FormQuestion(i, i, w, critical=(i == "c")) for i, w in
               (("a", 10), ("b", 30), ("n", 5), ("u", 5), ("c", 1)))
    form = EvaluationForm("f", "1", "F", "", ("en",), (), qs, pass_mark=20)

    def result(**answers: str) -> FormResult:
        return score_form(form, [QuestionResult(q.id, q.text, q.weight, answers[q.id], critical=q.critical)  # type: ignore[arg-type]
                                 for q in qs if q.id in answers], "en")

    r = result(a="met", b="not_met", n="not_applicable", u="unanswered", c="met")
    assert r.score == pytest.approx(100 * 11 / 41, abs=0.05) and r.passed is True and r.unanswered == ("u",)
    assert result(a="met", b="met", c="not_met").passed is False  # a critical question not met
    empty = result(n="not_applicable", u="unanswered")
    assert empty.score is None and empty.passed is None


# -- scorecard, HTML report, REST ----------------------------------------------------------------------------------


def test_forms_in_scorecard_html_report_and_rest(packs, forms, calls, normalizer, tmp_path) -> None:
    call = calls["dev_en_07"]
    events = events_from_reference(call)
    engine = ComplianceEngine(packs, session_id=call.call_id, language="en", normalizer=normalizer)
    findings = engine.run(events)
    results = evaluate_forms(forms, CallEvidence.from_engine(engine), normalizer=normalizer)
    card = replace(build_scorecard(packs, findings, session_id=call.call_id, language="en"), forms=tuple(results))
    stored = json.loads(json.dumps(card.to_dict()))  # as stored and streamed
    assert stored["type"] == "scorecard" and stored["forms"][0]["form_id"] == "contact_center_qa_en"

    report = build_report(session_id=call.call_id, source="dev_en_07.stereo8k.wav", language="en", events=events,
                          findings=findings, scorecard=card, packs=packs, rule_lookup=engine.rule)
    assert report["scorecard"]["forms"] == stored["forms"]
    page = render_html(report)
    HTMLParser().feed(page)
    promise = _answers(results[0])["no_guarantees"]
    assert "QA evaluation forms" in page and "Contact-center call quality (English)" in page
    section = page[page.index("QA evaluation forms"):]
    row = section[section.index("Did the agent avoid promising guaranteed returns"):]
    row = row[: row.index("</tr>")]
    m, s = divmod(promise.time_s, 60)
    assert "not met" in row and "guaranteed returns" in row and f"{int(m)}:{s:04.1f}" in row and "detector" in row
    assert "Unanswered (3)" in section and "Did the agent summarise the next steps" in section

    settings = HarkenSettings(auth=False, data_dir=tmp_path, classifiers=False, compliance=False, store_audio=False,
                              api_key="k3y")
    with TestClient(create_app(settings)) as client:
        store = client.app.state.harken.store
        store.create_session("s-forms", "test", "en", ["agent", "customer"], {})
        store.create_session("s-live", "test", "en", ["agent", "customer"], {})
        store.add_events([("s-forms", 0, {"type": "transcript", "kind": "final", "text": "hi"}),
                          ("s-forms", 1, stored)])
        h = {"X-API-Key": "k3y"}
        assert client.get("/v1/sessions/s-forms/forms").status_code == 401
        r = client.get("/v1/sessions/s-forms/forms", headers=h)
        assert r.status_code == 200
        body = r.json()
        assert body["forms"] == stored["forms"] and body["scorecard_seq"] == 1 and body["language"] == "en"
        not_scored = client.get("/v1/sessions/s-live/forms", headers=h)
        assert not_scored.status_code == 404 and not_scored.json()["detail"]["code"] == "not_scored"
        assert client.get("/v1/sessions/nope/forms", headers=h).json()["detail"]["code"] == "not_found"


def test_audit_cli_reports_forms(shared_data, tmp_path, monkeypatch, capsys) -> None:
    """`harken audit` (ASR replaced by the reference turns) puts the forms in the JSON and HTML reports."""
    import eval.compliance_cli as cli
    from api.cli import main as harken

    dev = shared_data / "calls" / "dev"
    call = load_scenarios(dev, only=["dev_zh_08"])[0]
    monkeypatch.setattr(cli, "_transcribe", lambda path, language, cache, names: events_from_reference(call))
    monkeypatch.delenv("HARKEN_LLM_URL", raising=False)
    monkeypatch.delenv("HARKEN_QA_FORMS", raising=False)
    wav = str(dev / "audio" / "dev_zh_08.stereo8k.wav")
    out = tmp_path / "reports"
    assert harken(["audit", wav, "--policy", "cn_dual_recording", "--out", str(out), "--no-meaning"]) == 0
    report = json.loads((out / "dev_zh_08.stereo8k.json").read_text(encoding="utf-8"))
    (form,) = report["scorecard"]["forms"]
    answers = {a["question_id"]: a for a in form["answers"]}
    assert form["form_id"] == "dual_recording_qa_zh" and form["passed"] is False
    assert answers["no_promise"]["answer"] == "not_met" and answers["no_promise"]["evidence"] == "肯定能赚钱"
    assert form["unanswered"] == ["polite_language", "patient_answers", "product_terms"]
    page = (out / "dev_zh_08.stereo8k.html").read_text(encoding="utf-8")
    assert "QA evaluation forms" in page and "肯定能赚钱" in page and "是否告知客户本次销售全程录音录像" in page
    assert "form dual_recording_qa_zh: score" in capsys.readouterr().out
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["audited"][0]["forms"]["dual_recording_qa_zh"]["unanswered"] == 3

    assert harken(["audit", wav, "--policy", "cn_dual_recording", "--out", str(out), "--no-meaning",
                   "--forms", "none"]) == 0
    assert json.loads((out / "dev_zh_08.stereo8k.json").read_text(encoding="utf-8"))["scorecard"]["forms"] == []
    bad = tmp_path / "bad_form.yaml"
    bad.write_text(FORM.format(rule="no_such_rule", only_if="recording_notice"), encoding="utf-8")
    assert harken(["audit", wav, "--policy", "recording_notice", "--out", str(out), "--forms", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "form error:" in err and "bad_form.yaml:6" in err and "unknown rule id 'no_such_rule'" in err


def test_eval_compliance_can_report_form_answers(shared_data) -> None:
    import eval.compliance_cli as cli

    result = cli.evaluate(shared_data / "calls" / "dev", from_text=True, only=["dev_en_07"], meaning=False,
                          forms=True)
    (entry,) = result["per_call"]
    (form,) = entry["forms"]
    assert form["form_id"] == "contact_center_qa_en" and form["answers"]["no_guarantees"] == "not_met"
    assert form["answers"]["empathy"] == "unanswered"
