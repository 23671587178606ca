"""QA evaluation forms: plain-language questions with weights, answered per call by the detectors (or an LLM).

A form (YAML in intelligence/compliance/qa_forms/, loaded by `forms_loader`) lists questions such as "Did the agent
tell the customer the call is recorded?". A question mapped to pack rules (`rules: [...]`) is answered from what
the compliance engine established about the call:

* `not_met` when any of its rules raised a finding (evidence: the finding's quote and time);
* `not_applicable` when the question's `only_if` events/contexts never happened, or none of its rules applied
  (the rule is for another language, its `only_if_event` / `only_if_context` never happened, its speaker never
  spoke, or fewer than two steps of an ordered sequence happened);
* `met` otherwise, quoting the supporting utterance when one is known (the question's `met_evidence` phrases,
  the event a required-phrase rule waits for, or the phrases of its elements);
* left for the LLM (or `unanswered`) when a rule could not run: it failed at run time, or needs speaker roles
  that a mono recording does not have.

Questions with no rules go to the optional LLM (`intelligence.llm`); without one they are `unanswered` and the
form lists them. The score is the weighted share of `met` among the answered applicable questions (met and
not_met), 0-100; a form passes when it reaches its pass mark and no critical question is not met.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from intelligence.compliance.matching import PhraseMatcher, is_negated
from intelligence.compliance.pci import redact_text
from intelligence.compliance.rules import (
    CardNumberSpec,
    ConfirmationSpec,
    CvvSpec,
    OrderedStepsSpec,
    PiiSpec,
    PolicyPack,
    ProhibitedPhraseSpec,
    RequiredPhraseSpec,
    Rule,
)
from intelligence.compliance.runner_base import speaker_ok
from intelligence.compliance.state import CallState, Turn
from intelligence.compliance.text import TextNormalizer
from intelligence.llm import LlmBatchResult, LlmQuestion, TranscriptLine
from intelligence.types import Evidence, Finding

Answer = Literal["met", "not_met", "not_applicable", "unanswered"]
AnswerSource = Literal["detector", "llm"]

# National-id and card data never leave the process in a prompt (same masking as stored transcripts: `#`).
LLM_MASKED_KINDS: tuple[str, ...] = ("pan", "cvv", "ssn", "cn_id")
_CARD_DATA_SPECS = (CardNumberSpec, CvvSpec, PiiSpec)

MAX_QUOTE_CHARS = 300  # an absent-disclosure finding quotes the whole turn where it was due: keep cells short
NO_LLM_REASON = "no detector answers this question and no LLM is configured (HARKEN_LLM_URL, HARKEN_LLM_MODEL)"


# -- the form (what the YAML says) ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormQuestion:
    """One question of a form.

    `rules`: pack rule ids that answer it (see the module docstring). `only_if`: names of pack events or
    contexts (e.g. `sale_concluded`, `insurance`); unless one of them happened the question is not applicable
    (a finding of its rules still makes it not met). `met_evidence`: phrases (same syntax as packs) quoted as
    the evidence of a met answer, said by `evidence_speaker`. `llm`: the LLM may answer it when the detectors
    cannot (always so for a question without rules, unless `llm: false` keeps it for a human reviewer).
    """

    id: str
    text: str
    weight: float
    rules: tuple[str, ...] = ()
    only_if: tuple[str, ...] = ()
    met_evidence: tuple[str, ...] = ()
    evidence_speaker: str = "agent"
    llm: bool = False
    critical: bool = False
    line: int = 0


@dataclass(frozen=True, slots=True)
class EvaluationForm:
    """A versioned QA form for calls in `languages` of sessions that load all of `packs`."""

    id: str
    version: str
    title: str
    domain: str
    languages: tuple[str, ...]
    packs: tuple[str, ...]
    questions: tuple[FormQuestion, ...]
    pass_mark: float = 80.0
    path: str = ""
    sha256: str = ""

    def applies_to(self, pack_ids: Iterable[str], language: str) -> bool:
        """True if every pack the form reads is loaded and the call is in one of the form's languages."""
        return language in self.languages and set(self.packs) <= set(pack_ids)

    def question(self, question_id: str) -> FormQuestion | None:
        return next((q for q in self.questions if q.id == question_id), None)


def forms_for(forms: Iterable[EvaluationForm], packs: Iterable[PolicyPack], language: str) -> list[EvaluationForm]:
    """The forms that apply to a call with these packs in this language."""
    ids = {p.id for p in packs}
    return [f for f in forms if f.applies_to(ids, language)]


# -- results ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """The answer to one question for one call. `reason` says why a question is unanswered or not applicable,
    or what the finding behind a not-met answer said; `rule_ids` are the rules that raised findings."""

    question_id: str
    text: str
    weight: float
    answer: Answer
    source: AnswerSource | None = None
    evidence: str = ""
    time_s: float | None = None
    rationale: str = ""
    reason: str = ""
    rule_ids: tuple[str, ...] = ()
    critical: bool = False


@dataclass(frozen=True, slots=True)
class FormResult:
    """A form filled in for one call. `score` is None when no applicable question was answered."""

    form_id: str
    version: str
    title: str
    language: str
    score: float | None
    pass_mark: float
    passed: bool | None
    answers: tuple[QuestionResult, ...]
    unanswered: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["answers"] = [{**asdict(a), "rule_ids": list(a.rule_ids)} for a in self.answers]  # JSON-shaped
        d["unanswered"] = list(self.unanswered)
        return d


def score_form(form: EvaluationForm, answers: Sequence[QuestionResult], language: str) -> FormResult:
    """Weighted share of met among met + not_met, and the pass verdict."""
    answered = [a for a in answers if a.answer in ("met", "not_met")]
    total = sum(a.weight for a in answered)
    score = round(100.0 * sum(a.weight for a in answered if a.answer == "met") / total, 1) if total > 0 else None
    critical_failed = any(a.critical and a.answer == "not_met" for a in answers)
    passed = None if score is None else (score >= form.pass_mark and not critical_failed)
    if critical_failed:
        passed = False
    unanswered = tuple(a.question_id for a in answers if a.answer == "unanswered")
    return FormResult(form.id, form.version, form.title, language, score, form.pass_mark, passed, tuple(answers),
                      unanswered)


# -- what the detectors established about a call ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallEvidence:
    """A finished call as the detectors saw it: packs, per-call state, findings and failed rules.

    Built from a `ComplianceEngine` after `finish()` (`from_engine`); read only."""

    language: str
    packs: tuple[PolicyPack, ...]
    state: CallState
    findings: tuple[Finding, ...]
    failed_rules: frozenset[str] = frozenset()

    @classmethod
    def from_engine(cls, engine: Any) -> CallEvidence:
        return cls(engine.language, tuple(engine.packs), engine.state, tuple(engine.findings),
                   frozenset(e.rule_id for e in engine.rule_errors))

    @property
    def roles_known(self) -> bool:
        return self.state.roles_known

    def rule(self, rule_id: str) -> tuple[Rule, PolicyPack] | None:
        for pack in self.packs:
            rule = pack.rule(rule_id)
            if rule is not None:
                return rule, pack
        return None

    def happened(self, packs: Iterable[str], name: str) -> bool:
        """True if an event or context of this name, in any of `packs`, happened in the call."""
        for pack in packs:
            st = self.state.events.get((pack, name))
            if (st is not None and st.happened) or self.state.context_seen(pack, name):
                return True
        return False


_RuleStatus = Literal["applies", "not_applicable", "cannot_run"]


def rule_status(rule: Rule, pack: PolicyPack, call: CallEvidence) -> tuple[_RuleStatus, str]:
    """Whether a rule that raised nothing means "met": it ran and its precondition held (`applies`), its
    precondition never happened (`not_applicable`), or it could not run (`cannot_run`). With a reason."""
    state = call.state
    if rule.id in call.failed_rules:
        return "cannot_run", f"rule {rule.id} failed at run time"
    if not rule.applies_to(call.language):
        return "not_applicable", f"rule {rule.id} is for {'/'.join(rule.languages)} calls"
    spec = rule.spec
    speaker = getattr(spec, "speaker", "any")
    if not call.roles_known and (isinstance(spec, ConfirmationSpec) or speaker == "customer"):
        return "cannot_run", f"rule {rule.id} needs to know who spoke (mono recording)"
    if not any(speaker_ok(speaker, t.speaker) for t in state.turns):
        return "not_applicable", f"no {speaker} speech" if speaker != "any" else "no speech"
    if isinstance(spec, RequiredPhraseSpec):
        if spec.only_if_event and not call.happened([pack.id], spec.only_if_event):
            return "not_applicable", f"{spec.only_if_event} did not happen"
        if spec.only_if_context and not call.happened([pack.id], spec.only_if_context):
            return "not_applicable", f"no {spec.only_if_context} context in the call"
    elif isinstance(spec, OrderedStepsSpec):
        # An order can only be wrong between two steps that both happened.
        if sum(1 for s in spec.steps if call.happened([pack.id], s)) < 2:
            return "not_applicable", f"fewer than two of {', '.join(spec.steps)} happened"
    elif isinstance(spec, ConfirmationSpec) and spec.proceed_event:
        if not call.happened([pack.id], spec.proceed_event):
            return "not_applicable", f"{spec.proceed_event} did not happen"
    elif isinstance(spec, ProhibitedPhraseSpec) and spec.groups and all(g.requires_context for g in spec.groups):
        contexts = sorted({g.requires_context for g in spec.groups if g.requires_context})
        if not any(call.happened([pack.id], c) for c in contexts):
            return "not_applicable", f"no {'/'.join(contexts)} context in the call"
    return "applies", ""


def _mask_quote(text: str, rule: Rule | None) -> str:
    if rule is not None and isinstance(rule.spec, _CARD_DATA_SPECS):
        # The quote of a card-number finding *is* the card number: keep its shape only.
        masked = "".join("#" if c.isalnum() else c for c in text)
    else:
        masked = redact_text(text, LLM_MASKED_KINDS)[0]
    masked = " ".join(masked.split())
    return masked if len(masked) <= MAX_QUOTE_CHARS else masked[: MAX_QUOTE_CHARS - 1].rstrip() + "…"


def _first_phrase(phrases: Sequence[str], speaker: str, call: CallEvidence, normalizer: TextNormalizer,
                  rule: Rule | None = None) -> Evidence | None:
    """Evidence of the earliest non-negated match of `phrases` in `speaker`'s turns."""
    if not phrases:
        return None
    matcher = PhraseMatcher(phrases, normalizer, rule.match if rule is not None else None)
    # Without speaker roles every turn is labelled agent: search all of them.
    turns: list[Turn] = [t for t in call.state.turns if not call.roles_known or speaker_ok(speaker, t.speaker)]
    for turn in turns:
        if turn.nt is None:
            continue
        hits = [m for m in matcher.find(turn.nt) if not is_negated(turn.nt, m)]
        if hits:
            best = min(hits, key=lambda m: (m.start, -(m.end - m.start)))
            return turn.evidence(best.start, best.end)
    return None


def _met_evidence(q: FormQuestion, call: CallEvidence, normalizer: TextNormalizer) -> Evidence | None:
    found = _first_phrase(q.met_evidence, q.evidence_speaker, call, normalizer)
    if found is not None:
        return found
    for rid in q.rules:
        hit = call.rule(rid)
        if hit is None:
            continue
        rule, pack = hit
        spec = rule.spec
        if not isinstance(spec, RequiredPhraseSpec):
            continue
        if spec.event:
            st = call.state.events.get((pack.id, spec.event))
            if st is not None and st.first_evidence is not None:
                return st.first_evidence
        elif spec.elements:
            # listed phrases only: a quote is a nicety, not worth running the clause detectors on every turn
            phrases = [p for el in spec.elements for p in el.phrases if not p.startswith("clause:")]
            found = _first_phrase(phrases, spec.speaker, call, normalizer, rule)
            if found is not None:
                return found
    return None


def answer_by_detectors(q: FormQuestion, form: EvaluationForm, call: CallEvidence,
                        normalizer: TextNormalizer) -> tuple[QuestionResult | None, str]:
    """The detectors' answer to one question, or (None, why not) when they cannot answer it."""
    base = {"question_id": q.id, "text": q.text, "weight": q.weight, "critical": q.critical}
    if not q.rules:
        return None, "no detector is mapped to this question"
    fired = sorted((f for f in call.findings if f.rule_id in q.rules), key=lambda f: f.at_s)
    if fired:
        first = fired[0]
        hit = call.rule(first.rule_id)
        ev = first.evidence[0] if first.evidence else None
        quote = _mask_quote(ev.text, hit[0] if hit else None) if ev is not None else ""
        return QuestionResult(**base, answer="not_met", source="detector", evidence=quote,
                              time_s=ev.start_s if ev is not None else first.at_s, reason=first.message,
                              rule_ids=tuple(dict.fromkeys(f.rule_id for f in fired))), ""
    if q.only_if and not any(call.happened(form.packs, name) for name in q.only_if):
        return QuestionResult(**base, answer="not_applicable", source="detector",
                              reason=f"only if {' or '.join(q.only_if)}: did not happen"), ""
    statuses = []
    for rid in q.rules:
        hit = call.rule(rid)
        statuses.append(rule_status(*hit, call) if hit else ("cannot_run", f"rule {rid} is not loaded"))
    blocked = [reason for status, reason in statuses if status == "cannot_run"]
    if blocked:
        return None, "; ".join(blocked)
    if all(status == "not_applicable" for status, _ in statuses):
        return QuestionResult(**base, answer="not_applicable", source="detector",
                              reason="; ".join(dict.fromkeys(r for _, r in statuses))), ""
    ev = _met_evidence(q, call, normalizer)
    return QuestionResult(**base, answer="met", source="detector",
                          evidence=_mask_quote(ev.text, None) if ev is not None else "",
                          time_s=ev.start_s if ev is not None else None), ""


# -- the transcript the LLM sees ----------------------------------------------------------------------------------


def transcript_lines(state: CallState) -> list[TranscriptLine]:
    """One line per speaker turn, card data and national ids masked (same length, so offsets still hold)."""
    from intelligence.redaction import redact_finals

    segs = [seg for turn in state.turns for seg in turn.segments]
    masked = redact_finals([s.to_dict() for s in segs], LLM_MASKED_KINDS)
    texts = iter(m["text"] for m in masked)
    lines = []
    for turn in state.turns:
        parts = [next(texts) for _ in turn.segments]
        lines.append(TranscriptLine(turn.index, turn.speaker, turn.start_s, turn.end_s, " ".join(parts),
                                    tuple((off, seg.start_s) for off, seg in zip(turn.offsets, turn.segments,
                                                                                   strict=True))))
    return lines


# -- filling in forms ---------------------------------------------------------------------------------------------


@dataclass
class FormDraft:
    """A form after the detectors: answers so far, and the questions left for the LLM (with why)."""

    form: EvaluationForm
    language: str
    answers: dict[str, QuestionResult] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)  # question id -> why the detectors did not answer

    def llm_questions(self) -> list[LlmQuestion]:
        out = []
        for qid in self.pending:
            q = self.form.question(qid)
            if q is not None and q.llm:
                out.append(LlmQuestion(q.id, q.text))
        return out


def draft_forms(forms: Iterable[EvaluationForm], call: CallEvidence,
                normalizer: TextNormalizer | None = None) -> list[FormDraft]:
    """Answer what the detectors can for every form that applies to the call (blocking: a worker thread)."""
    normalizer = normalizer or TextNormalizer()
    drafts = []
    for form in forms_for(forms, call.packs, call.language):
        draft = FormDraft(form, call.language)
        for q in form.questions:
            result, why = answer_by_detectors(q, form, call, normalizer)
            if result is not None:
                draft.answers[q.id] = result
            else:
                draft.pending[q.id] = why
        drafts.append(draft)
    return drafts


def complete_form(draft: FormDraft, llm: LlmBatchResult | None) -> FormResult:
    """Merge the LLM's answers (None: no LLM configured) and score the form."""
    out = []
    for q in draft.form.questions:
        if q.id in draft.answers:
            out.append(draft.answers[q.id])
            continue
        base = {"question_id": q.id, "text": q.text, "weight": q.weight, "critical": q.critical}
        why = draft.pending.get(q.id, "")
        if not q.llm:
            out.append(QuestionResult(**base, answer="unanswered", reason=f"{why}; left for a reviewer (llm: false)"
                                      if q.rules else "left for a reviewer (llm: false)"))
            continue
        if llm is None:
            reason = NO_LLM_REASON if not q.rules else f"{why}; no LLM is configured"
            out.append(QuestionResult(**base, answer="unanswered", reason=reason))
            continue
        got = llm.answers.get(q.id)
        if got is None:
            out.append(QuestionResult(**base, answer="unanswered",
                                      reason=llm.unanswered.get(q.id, "the LLM did not answer")))
            continue
        out.append(QuestionResult(**base, answer=got.answer, source="llm", evidence=got.evidence,
                                  time_s=got.time_s, rationale=got.rationale))
    return score_form(draft.form, out, draft.language)


def evaluate_forms(forms: Iterable[EvaluationForm], call: CallEvidence, *, llm: Any = None,
                   normalizer: TextNormalizer | None = None) -> list[FormResult]:
    """Fill in every applicable form for a finished call (blocking). `llm`: an `intelligence.llm.LlmClient`."""
    drafts = draft_forms(forms, call, normalizer)
    lines = transcript_lines(call.state) if llm is not None and any(d.llm_questions() for d in drafts) else []
    out = []
    for d in drafts:
        questions = d.llm_questions()
        batch = llm.answer(questions, lines, call.language) if llm is not None and questions else None
        out.append(complete_form(d, batch))
    return out
