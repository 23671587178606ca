"""Load QA evaluation forms from YAML and check them against the loaded policy packs.

Same discipline as the pack loader: every problem is reported with file, line and reason, unknown and
duplicate keys are errors, and nothing of a rejected set is loaded. `check_forms` resolves the references to
packs: each rule id must be a rule of one of the packs the form lists, each `only_if` name an event or context
of them. A form whose packs are not all loaded does not apply to the session and is skipped, unless it was named
explicitly (then the missing pack is an error).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from intelligence.compliance.forms import EvaluationForm, FormQuestion
from intelligence.compliance.loader import (
    PolicyError,
    PolicyProblem,
    _compose,
    _Map,
    _Problems,
    read_yaml_text,
    resolve_yaml_specs,
)
from intelligence.compliance.rules import PolicyPack

BUILTIN_FORMS = ("contact_center_qa_en", "dual_recording_qa_zh")
_SPEAKERS = ("agent", "customer", "any")


class FormError(PolicyError):
    """A form (or a set of forms) was rejected; nothing from it was loaded."""


def parse_form(text: str, file: str = "<form>") -> EvaluationForm:
    """Parse and validate one form on its own (references to packs are checked by `check_forms`)."""
    problems = _Problems(file)
    root = _compose(text, problems)
    if root is None:
        raise FormError(problems.items)
    fm = _Map(root, "form", problems)
    if not fm.ok:
        raise FormError(problems.items)
    form_id = fm.str("form", required=True) or ""
    version = fm.str("version", required=True) or ""
    title = fm.str("title", form_id) or form_id
    fm.str("description")
    domain = fm.str("domain", "") or ""
    languages = fm.strs("languages", required=True)
    packs = fm.strs("packs", required=True)
    pass_mark = fm.num("pass_mark", 80.0, lo=0, hi=100) or 0.0
    questions: list[FormQuestion] = []
    seen: dict[str, int] = {}
    for qm in fm.maps("questions"):
        qid = qm.str("id", required=True) or ""
        if qid in seen:
            qm.err("id", f"duplicate question id {qid!r} (first defined on line {seen[qid]})")
        seen[qid] = qm.line("id")
        text_ = (qm.str("text", required=True) or "").strip()
        weight = qm.num("weight", 1.0, lo=0, hi=1000)
        if weight is not None and weight <= 0:
            qm.err("weight", "'weight' must be above 0")
        rules = qm.strs("rules")
        only_if = qm.strs("only_if")
        met_evidence = qm.strs("met_evidence")
        speaker = qm.str("evidence_speaker", "agent", choices=_SPEAKERS) or "agent"
        llm = qm.boolean("llm", not rules)
        critical = qm.boolean("critical", False)
        if (only_if or met_evidence) and not rules:
            qm.err(None, "'only_if' and 'met_evidence' need 'rules' (they qualify a detector's answer)")
        qm.done()
        questions.append(FormQuestion(qid, text_, float(weight or 1.0), rules, only_if, met_evidence, speaker,
                                      llm, critical, qm.line("id")))
    if not questions and not problems.items:
        fm.err("questions", "a form needs at least one question")
    fm.done()
    if problems.items:
        raise FormError(problems.items)
    return EvaluationForm(form_id, version, title, domain, languages, packs, tuple(questions), pass_mark,
                          path=file, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def load_form(path: str | Path) -> EvaluationForm:
    """Load one form file; raises `FormError` (file, line, reason) on any problem."""
    p = Path(path)
    return parse_form(read_yaml_text(p, "form", FormError), str(p))


def builtin_form_path(name: str) -> Path:
    """Path of a form shipped in intelligence/compliance/qa_forms/."""
    return Path(str(resources.files("intelligence.compliance") / "qa_forms" / f"{name}.yaml"))


def check_forms(forms: Sequence[EvaluationForm], packs: Sequence[PolicyPack], *, require_packs: bool = False
                ) -> list[EvaluationForm]:
    """Check forms against the loaded packs; returns those whose packs are all loaded. Raises `FormError` for
    a rule id or `only_if` name the form's packs do not define, a duplicate form id, or (with `require_packs`)
    a pack the form needs that is not loaded."""
    by_id = {p.id: p for p in packs}
    problems: list[PolicyProblem] = []
    usable: list[EvaluationForm] = []
    seen: dict[str, str] = {}
    for form in forms:
        if form.id in seen:
            problems.append(PolicyProblem(form.path, 1, f"duplicate form id {form.id!r} (also in {seen[form.id]})"))
            continue
        seen[form.id] = form.path
        missing = [p for p in form.packs if p not in by_id]
        if missing:
            if require_packs:
                problems.append(PolicyProblem(form.path, 1, f"form {form.id!r} needs pack(s) "
                                              f"{', '.join(missing)}, which are not loaded"))
            continue
        own = [by_id[p] for p in form.packs]
        for q in form.questions:
            where = f"form {form.id!r} question {q.id!r}"
            for rid in q.rules:
                if any(p.rule(rid) is not None for p in own):
                    continue
                elsewhere = next((p.id for p in packs if p.rule(rid) is not None), None)
                reason = (f"rule {rid!r} is in pack {elsewhere!r}, which the form does not list in 'packs'"
                          if elsewhere else f"unknown rule id {rid!r} (not in packs {', '.join(form.packs)})")
                problems.append(PolicyProblem(form.path, q.line, f"{where}: {reason}"))
            for name in q.only_if:
                if not any(name in {e.name for e in p.events} or name in p.contexts for p in own):
                    problems.append(PolicyProblem(form.path, q.line, f"{where}: only_if {name!r} is not an event "
                                                  f"or context of packs {', '.join(form.packs)}"))
        usable.append(form)
    if problems:
        raise FormError(problems)
    return usable


def load_forms(specs: Iterable[str | Path] | None = None, packs: Sequence[PolicyPack] = (), *,
               require_packs: bool | None = None) -> list[EvaluationForm]:
    """Load forms by built-in name or file path (a directory loads every *.yaml in it), all or nothing, and check
    them against `packs`. With `specs` None: the built-in forms, keeping those whose packs are loaded; forms
    named explicitly must find all their packs (unless `require_packs=False`)."""
    explicit = specs is not None if require_packs is None else require_packs
    problems: list[PolicyProblem] = []
    forms: list[EvaluationForm] = []
    for p in resolve_yaml_specs(BUILTIN_FORMS if specs is None else specs, builtin_form_path):
        try:
            forms.append(load_form(p))
        except FormError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FormError(problems)
    return check_forms(forms, packs, require_packs=explicit)


def forms_from_setting(value: str, packs: Sequence[PolicyPack], *, require_packs: bool = True
                       ) -> list[EvaluationForm]:
    """The forms a `HARKEN_QA_FORMS` value names: "" for the built-in ones that fit the packs, "none" for none.
    `require_packs=False` skips a named form whose packs are not loaded instead of rejecting it."""
    value = value.strip()
    if value.lower() == "none":
        return []
    names = [s.strip() for s in value.split(",") if s.strip()]
    if not names:
        return load_forms(None, packs)
    return load_forms(names, packs, require_packs=require_packs)
