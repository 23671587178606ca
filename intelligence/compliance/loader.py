"""Load policy packs from YAML: all or nothing, every problem reported with file, line and reason.

The YAML is composed into nodes first (so each value keeps its line), duplicate keys and unknown keys are
errors (a typo such as `within_turn:` must not silently disable a deadline), and cross-references are
checked: events named by rules exist, scorecard items name real rules, ordered steps do not contradict each
other across packs, and no phrase is both required and prohibited for the same language.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from intelligence.compliance.matching import MatchOptions
from intelligence.compliance.rules import (
    RULE_KINDS,
    SCENARIO_RULES,
    AnnotationSpec,
    CardNumberSpec,
    ConfirmationSpec,
    CvvSpec,
    Element,
    EventAlternative,
    EventDef,
    LevelPattern,
    OrderedStepsSpec,
    OvertalkSpec,
    PhraseGroup,
    PiiSpec,
    PolicyPack,
    ProhibitedPhraseSpec,
    RequiredPhraseSpec,
    Retention,
    RiskMismatchSpec,
    Rule,
    RuleSpec,
    ScorecardItem,
    SilenceSpec,
)
from intelligence.types import Severity

BUILTIN_PACKS = ("pci_dss", "recording_notice", "contact_center", "retail_sales_en", "cn_dual_recording")
_SPEAKERS = ("agent", "customer", "any")


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One reason a policy file was rejected."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class PolicyError(ValueError):
    """A policy pack (or a set of packs) was rejected; nothing from it was loaded."""

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class _Node:
    """A YAML value with the line (1-based) it starts on."""

    __slots__ = ("value", "line")

    def __init__(self, value: Any, line: int) -> None:
        self.value = value
        self.line = line


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[PolicyProblem] = []

    def add(self, line: int, reason: str) -> None:
        self.items.append(PolicyProblem(self.file, line, reason))


def _compose(text: str, problems: _Problems) -> _Node | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = ""
        if exc.context and exc.context_mark is not None:
            context = f" ({exc.context}, started on line {exc.context_mark.line + 1})"
        problems.add(mark.line + 1 if mark else 0, f"invalid YAML: {exc.problem or exc}{context}")
        return None
    except yaml.YAMLError as exc:
        problems.add(0, f"invalid YAML: {exc}")
        return None
    if root is None:
        problems.add(1, "empty policy file")
        return None
    return _convert(root, problems)


def _convert(node: yaml.Node, problems: _Problems) -> _Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if not isinstance(key_node, yaml.ScalarNode):
                problems.add(key_node.start_mark.line + 1, "mapping keys must be plain strings")
                continue
            if key in out:
                problems.add(key_node.start_mark.line + 1, f"duplicate key {key!r}")
                continue
            out[key] = _convert(value_node, problems)
        return _Node(out, line)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_convert(v, problems) for v in node.value], line)
    return _Node(_scalar(node), line)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


class _Map:
    """Typed access to a YAML mapping; records problems instead of raising, and flags unknown keys."""

    def __init__(self, node: _Node, where: str, problems: _Problems) -> None:
        self.node = node
        self.where = where
        self.problems = problems
        self.ok = isinstance(node.value, dict)
        if not self.ok:
            problems.add(node.line, f"{where}: expected a mapping")
        self.data: dict[str, _Node] = node.value if self.ok else {}
        self.used: set[str] = set()

    def line(self, key: str | None = None) -> int:
        if key and key in self.data:
            return self.data[key].line
        return self.node.line

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> _Node | None:
        self.used.add(key)
        return self.data.get(key)

    def err(self, key: str | None, reason: str) -> None:
        self.problems.add(self.line(key), f"{self.where}: {reason}")

    def str(self, key: str, default: str | None = None, *, required: bool = False, choices: Sequence[str] = ()) -> str | None:
        n = self.raw(key)
        if n is None or n.value is None:
            if required:
                self.err(None, f"missing required key {key!r}")
            return default
        if isinstance(n.value, (dict, list)) or isinstance(n.value, bool):
            self.err(key, f"{key!r} must be a string")
            return default
        value = str(n.value)
        if choices and value not in choices:
            self.err(key, f"{key!r} must be one of {', '.join(choices)} (got {value!r})")
            return default
        return value

    def num(self, key: str, default: float | None = None, *, lo: float | None = None, hi: float | None = None,
            required: bool = False) -> float | None:
        n = self.raw(key)
        if n is None or n.value is None:
            if required:
                self.err(None, f"missing required key {key!r}")
            return default
        if isinstance(n.value, bool) or not isinstance(n.value, (int, float)):
            self.err(key, f"{key!r} must be a number")
            return default
        value = float(n.value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.err(key, f"{key!r} must be between {lo} and {hi} (got {value})")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        n = self.raw(key)
        if n is None:
            return default
        if not isinstance(n.value, bool):
            self.err(key, f"{key!r} must be true or false")
            return default
        return n.value

    def strs(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        n = self.raw(key)
        if n is None or n.value is None:
            if required:
                self.err(None, f"missing required key {key!r}")
            return ()
        items = n.value if isinstance(n.value, list) else [n]
        out = []
        for item in items:
            if isinstance(item.value, (dict, list)) or item.value is None:
                self.problems.add(item.line, f"{self.where}: {key!r} must be a list of strings")
                continue
            text = str(item.value).strip()
            if not text:
                self.problems.add(item.line, f"{self.where}: empty phrase in {key!r}")
                continue
            if text.startswith(("re:", "py:", "cs:")):
                import re

                try:
                    re.compile(text[3:])
                except re.error as exc:
                    self.problems.add(item.line, f"{self.where}: bad regular expression {text!r}: {exc}")
                    continue
            out.append(text)
        if required and not out:
            self.err(key, f"{key!r} must not be empty")
        return tuple(out)

    def maps(self, key: str) -> list[_Map]:
        n = self.raw(key)
        if n is None or n.value is None:
            return []
        if not isinstance(n.value, list):
            self.err(key, f"{key!r} must be a list")
            return []
        return [_Map(item, f"{self.where}.{key}[{i}]", self.problems) for i, item in enumerate(n.value)]

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                self.problems.add(self.data[key].line, f"{self.where}: unknown key {key!r}")


def _match_options(m: _Map, base: MatchOptions) -> MatchOptions:
    """`match: {exact: true, fuzzy: 0.88, pinyin: 0.78, semantic: 0.9}`; `false` turns a matcher off."""
    n = m.raw("match")
    if n is None:
        return base
    mm = _Map(n, f"{m.where}.match", m.problems)
    exact = mm.boolean("exact", base.exact)
    values: dict[str, float | None] = {"fuzzy": base.fuzzy, "pinyin": base.pinyin, "semantic": base.semantic}
    for key in values:
        raw = mm.data.get(key)
        if raw is None:
            continue
        if raw.value is False:
            mm.used.add(key)
            values[key] = None
        else:
            values[key] = mm.num(key, values[key], lo=0.5, hi=1.0)
    mm.done()
    return MatchOptions(exact=exact, fuzzy=values["fuzzy"], pinyin=values["pinyin"], semantic=values["semantic"])


def _elements(m: _Map, key: str) -> tuple[Element, ...]:
    n = m.raw(key)
    if n is None:
        return ()
    if not isinstance(n.value, list):
        m.err(key, f"{key!r} must be a list")
        return ()
    out = []
    for i, item in enumerate(n.value):
        where = f"{m.where}.{key}[{i}]"
        if isinstance(item.value, dict):
            em = _Map(item, where, m.problems)
            name = em.str("name", f"element{i + 1}") or f"element{i + 1}"
            phrases = em.strs("phrases", required=True)
            em.done()
        else:
            sub = _Map(_Node({"phrases": item}, item.line), where, m.problems)
            name, phrases = f"element{i + 1}", sub.strs("phrases", required=True)
        out.append(Element(name, phrases))
    return out and tuple(out) or ()


def _levels(m: _Map, key: str, required: bool = True) -> tuple[LevelPattern, ...]:
    out = []
    for lm in m.maps(key):
        phrase = lm.str("phrase", required=True)
        level = lm.num("level", required=True, lo=0, hi=10)
        lm.done()
        if phrase and level is not None:
            out.append(LevelPattern(phrase, int(level)))
    if not out and required:
        m.err(key, f"{key!r} must list at least one {{phrase, level}}")
    return tuple(out)


def _speaker(m: _Map, default: str = "agent") -> Any:
    return m.str("speaker", default, choices=_SPEAKERS) or default


def _spec(kind: str, m: _Map) -> RuleSpec | None:
    if kind == "prohibited_phrase":
        groups = []
        for i, gm in enumerate(m.maps("groups")):
            groups.append(
                PhraseGroup(
                    gm.str("name", f"group{i + 1}") or f"group{i + 1}",
                    gm.strs("phrases", required=True),
                    gm.str("requires_context"),
                    gm.strs("examples"),
                )
            )
            gm.done()
        if m.has("phrases"):
            groups.append(PhraseGroup("phrases", m.strs("phrases", required=True), m.str("requires_context")))
        if not groups:
            m.err(None, "a prohibited_phrase rule needs 'phrases' or 'groups'")
        return ProhibitedPhraseSpec(_speaker(m), tuple(groups), m.boolean("negation", True), m.strs("exclude"),
                                    m.boolean("match_questions", False))
    if kind == "required_phrase":
        elements = _elements(m, "elements")
        event = m.str("event")
        script = m.str("script", "") or ""
        coverage = m.num("coverage", 0.8, lo=0.1, hi=1.0) or 0.8
        if sum(map(bool, (elements, event, script))) != 1:
            m.err(None, "a required_phrase rule needs exactly one of 'elements', 'event' or 'script'")
        min_elements = int(m.num("min_elements", 1, lo=1) or 1)
        if elements and min_elements > len(elements):
            m.err("min_elements", f"min_elements {min_elements} exceeds the {len(elements)} elements listed")
        within_turns = m.num("within_turns", lo=1)
        within_s = m.num("within_s", lo=0)
        before_event = m.str("before_event")
        if before_event and (within_turns or within_s):
            m.err("before_event", "use either a 'before_event' or a 'within_*' deadline, not both")
        return RequiredPhraseSpec(
            _speaker(m), elements, min_elements, event, script, coverage,
            int(within_turns) if within_turns else None, within_s, before_event,
            m.str("only_if_event"), m.str("only_if_context"),
        )
    if kind == "ordered_steps":
        steps = m.strs("steps", required=True)
        if len(steps) < 2:
            m.err("steps", "ordered_steps needs at least two steps")
        if len(set(steps)) != len(steps):
            m.err("steps", "a step is listed twice")
        return OrderedStepsSpec(steps)
    if kind == "confirmation":
        return ConfirmationSpec(
            m.strs("questions", required=True), m.strs("explicit", required=True), m.strs("weak_yes"),
            m.strs("hedges"), m.strs("negative"), m.strs("proceed"), m.str("proceed_event"),
            m.num("min_gap_s", 0.8, lo=0) or 0.8, m.strs("backchannels"), m.strs("assumed"),
        )
    if kind == "card_number":
        return CardNumberSpec(_speaker(m, "any"), m.boolean("allow_unverified", True))
    if kind == "cvv":
        return CvvSpec(_speaker(m, "any"))
    if kind == "pii":
        kinds = m.strs("kinds") or ("ssn", "cn_id")
        bad = [k for k in kinds if k not in ("email", "ssn", "cn_id", "phone")]
        if bad:
            m.err("kinds", f"unknown PII kinds {bad}; expected email, ssn, cn_id, phone")
        return PiiSpec(_speaker(m, "any"), kinds)
    if kind == "risk_level_mismatch":
        return RiskMismatchSpec(
            _speaker(m), _levels(m, "profile_levels"), _levels(m, "product_levels"), m.strs("refusal"),
            int(m.num("window_turns", 2, lo=1) or 2), m.boolean("scales", False),
            _levels(m, "customer_profile_levels", required=False),
        )
    if kind == "silence":
        return SilenceSpec(m.num("max_gap_s", required=True, lo=0.5) or 10.0, m.strs("hold_phrases"),
                           m.num("max_hold_s", lo=1))
    if kind == "overtalk":
        return OvertalkSpec(m.num("min_overlap_s", required=True, lo=0.1) or 1.0)
    if kind == "annotation":
        return AnnotationSpec(
            m.str("task", required=True) or "", m.strs("labels", required=True), m.num("min_score", 0.5, lo=0, hi=1) or 0.0,
            _speaker(m, "any"), int(m.num("min_count", 1, lo=1) or 1), m.num("window_s", lo=1),
        )
    return None


def _events(pm: _Map, base: MatchOptions, pack_langs: tuple[str, ...]) -> tuple[EventDef, ...]:
    n = pm.raw("events")
    if n is None:
        return ()
    if not isinstance(n.value, dict):
        pm.err("events", "'events' must be a mapping of name -> definition")
        return ()
    out = []
    for name, node in n.value.items():
        em = _Map(node, f"events.{name}", pm.problems)
        alternatives = []
        if em.has("any_of"):
            for am in em.maps("any_of"):
                els = _elements(am, "elements")
                k = int(am.num("min_elements", 1, lo=1) or 1)
                if els and k > len(els):
                    am.err("min_elements", f"min_elements {k} exceeds the {len(els)} elements listed")
                alt_speaker = am.str("speaker", None, choices=_SPEAKERS) if am.has("speaker") else None
                alt_turns = am.num("within_turns", lo=1)
                alternatives.append(EventAlternative(els, k, alt_speaker,  # type: ignore[arg-type]
                                                     int(alt_turns) if alt_turns else None))
                am.done()
        elif em.has("elements"):
            els = _elements(em, "elements")
            k = int(em.num("min_elements", 1, lo=1) or 1)
            if els and k > len(els):
                em.err("min_elements", f"min_elements {k} exceeds the {len(els)} elements listed")
            alternatives.append(EventAlternative(els, k))
        elif em.has("phrases"):
            alternatives.append(EventAlternative((Element(name, em.strs("phrases", required=True)),), 1))
        else:
            em.err(None, "an event needs 'phrases', 'elements' or 'any_of'")
        out.append(
            EventDef(name, _speaker(em, "any"), tuple(alternatives), _match_options(em, base),
                     em.str("requires_context"), em.strs("languages") or pack_langs,
                     em.boolean("skip_questions", False), em.strs("not_near"))
        )
        em.done()
    return tuple(out)


def parse_pack(text: str, file: str = "<policy>") -> PolicyPack:
    """Parse and validate one pack. Raises `PolicyError` listing every problem (file, line, reason)."""
    problems = _Problems(file)
    root = _compose(text, problems)
    if root is None:
        raise PolicyError(problems.items)
    pm = _Map(root, "pack", problems)
    if not pm.ok:
        raise PolicyError(problems.items)
    pack_id = pm.str("pack", required=True) or ""
    version = pm.str("version", required=True) or ""
    title = pm.str("title", pack_id) or pack_id
    pm.str("description")
    languages = pm.strs("languages")
    sources = pm.strs("sources")
    base = _match_options(pm, MatchOptions())
    contexts: dict[str, tuple[str, ...]] = {}
    cn = pm.raw("contexts")
    if cn is not None:
        if isinstance(cn.value, dict):
            cm = _Map(cn, "contexts", problems)
            for key in list(cm.data):
                contexts[key] = cm.strs(key, required=True)
            cm.done()
        else:
            pm.err("contexts", "'contexts' must be a mapping of name -> phrases")
    events = _events(pm, base, languages)
    event_names = {e.name for e in events}
    rules: list[Rule] = []
    seen_ids: dict[str, int] = {}
    for rm in pm.maps("rules"):
        rid = rm.str("id", required=True) or ""
        if rid in seen_ids:
            rm.err("id", f"duplicate rule id {rid!r} (first defined on line {seen_ids[rid]})")
        seen_ids[rid] = rm.line("id")
        kind = rm.str("kind", required=True, choices=RULE_KINDS) or ""
        severity_s = rm.str("severity", "medium", choices=[s.value for s in Severity]) or "medium"
        source = rm.str("source", required=True) or ""
        maps_to = rm.str("maps_to")
        if maps_to is not None and maps_to not in SCENARIO_RULES:
            rm.err("maps_to", f"maps_to {maps_to!r} is not in the scenario vocabulary")
        title = rm.str("title", rid) or rid
        rm.boolean("enabled", True)
        langs = rm.strs("languages") or languages
        spec = _spec(kind, rm) if kind else None
        match = _match_options(rm, base)
        rm.done()
        if spec is None:
            continue
        if maps_to is not None and maps_to in SCENARIO_RULES:
            expected = SCENARIO_RULES[maps_to]
            actual = "absent" if isinstance(spec, RequiredPhraseSpec) else "present"
            if expected != actual:
                rm.err("maps_to", f"{maps_to!r} is an '{expected}' finding but a {kind} rule reports '{actual}'")
        refs = _event_refs(spec)
        for ref in refs:
            if ref not in event_names:
                rm.err(None, f"unknown event {ref!r} (defined: {', '.join(sorted(event_names)) or 'none'})")
        for ctx in _context_refs(spec):
            if ctx not in contexts:
                rm.err(None, f"unknown context {ctx!r} (defined: {', '.join(sorted(contexts)) or 'none'})")
        if rm.data.get("enabled") is not None and rm.data["enabled"].value is False:
            continue
        rules.append(
            Rule(rid, kind, title, Severity(severity_s), source, maps_to, spec, match, langs, pack_id, version,
                 rm.line())
        )
    for ev in events:
        if ev.requires_context and ev.requires_context not in contexts:
            problems.add(pm.line("events"), f"events.{ev.name}: unknown context {ev.requires_context!r}")
    retention = Retention()
    rn = pm.raw("retention")
    if rn is not None:
        rtm = _Map(rn, "retention", problems)
        a = rtm.num("audio_days", lo=1)
        t = rtm.num("transcript_days", lo=1)
        retention = Retention(int(a) if a else None, int(t) if t else None, rtm.str("source", "") or "")
        rtm.done()
    scorecard: list[ScorecardItem] = []
    pass_mark = 80.0
    sn = pm.raw("scorecard")
    if sn is not None:
        sm = _Map(sn, "scorecard", problems)
        pass_mark = sm.num("pass_mark", 80.0, lo=0, hi=100) or 0.0
        for im in sm.maps("items"):
            iid = im.str("id", required=True) or ""
            item_rules = im.strs("rules", required=True)
            for r in item_rules:
                if r not in seen_ids:
                    im.err("rules", f"scorecard item {iid!r} names unknown rule {r!r}")
            scorecard.append(
                ScorecardItem(iid, im.str("label", iid) or iid, im.num("weight", 1.0, lo=0) or 0.0, item_rules,
                              im.boolean("critical", False))
            )
            im.done()
        if scorecard and sum(i.weight for i in scorecard) <= 0:
            sm.err("items", "scorecard weights must not all be zero")
        sm.done()
    pm.done()
    _check_contradictions_in_pack(rules, events, problems, pm.line("rules"))
    if problems.items:
        raise PolicyError(problems.items)
    return PolicyPack(pack_id, version, title, languages, sources, tuple(rules), events, contexts,
                      tuple(scorecard), pass_mark, retention, file, hashlib.sha256(text.encode("utf-8")).hexdigest())


def _event_refs(spec: RuleSpec) -> list[str]:
    if isinstance(spec, RequiredPhraseSpec):
        return [e for e in (spec.event, spec.before_event, spec.only_if_event) if e]
    if isinstance(spec, OrderedStepsSpec):
        return list(spec.steps)
    if isinstance(spec, ConfirmationSpec) and spec.proceed_event:
        return [spec.proceed_event]
    return []


def _context_refs(spec: RuleSpec) -> list[str]:
    if isinstance(spec, ProhibitedPhraseSpec):
        return [g.requires_context for g in spec.groups if g.requires_context]
    if isinstance(spec, RequiredPhraseSpec) and spec.only_if_context:
        return [spec.only_if_context]
    return []


def _required_phrases(rule: Rule, events: dict[str, EventDef]) -> set[str]:
    spec = rule.spec
    if not isinstance(spec, RequiredPhraseSpec):
        return set()
    out = {p.lower() for el in spec.elements for p in el.phrases}
    if spec.event and spec.event in events:
        out |= {p.lower() for alt in events[spec.event].alternatives for el in alt.elements for p in el.phrases}
    return out


def _check_contradictions_in_pack(rules: list[Rule], events: tuple[EventDef, ...], problems: _Problems,
                                  line: int) -> None:
    ev = {e.name: e for e in events}
    for r in rules:
        if isinstance(r.spec, RequiredPhraseSpec) and r.spec.before_event and r.spec.event == r.spec.before_event:
            problems.add(r.line, f"rule {r.id!r}: event {r.spec.event!r} cannot be required before itself")
    _check_phrase_conflicts(rules, ev, problems.add)


def _check_phrase_conflicts(rules: Iterable[Rule], events: dict[str, EventDef], add: Any) -> None:
    rules = list(rules)
    for req in rules:
        required = _required_phrases(req, events)
        if not required:
            continue
        for pro in rules:
            if not isinstance(pro.spec, ProhibitedPhraseSpec):
                continue
            if pro.spec.speaker != req.spec.speaker and "any" not in (pro.spec.speaker, req.spec.speaker):  # type: ignore[union-attr]
                continue
            if req.languages and pro.languages and not set(req.languages) & set(pro.languages):
                continue
            both = required & {p.lower() for g in pro.spec.groups for p in g.phrases}
            if both:
                add(pro.line, f"rule {pro.id!r} prohibits {sorted(both)[0]!r}, which rule {req.id!r} requires")


def check_pack_set(packs: Sequence[PolicyPack]) -> None:
    """Reject a set of packs that contradict each other (duplicate rule ids, opposite step orders)."""
    problems: list[PolicyProblem] = []
    seen: dict[str, PolicyPack] = {}
    for pack in packs:
        if pack.id in seen:
            problems.append(PolicyProblem(pack.path, 1, f"pack {pack.id!r} is loaded twice (also {seen[pack.id].path})"))
        seen[pack.id] = pack
    owner: dict[str, PolicyPack] = {}
    for pack in packs:
        for rule in pack.rules:
            if rule.id in owner and owner[rule.id] is not pack:
                problems.append(PolicyProblem(pack.path, rule.line,
                                              f"rule id {rule.id!r} is also defined in {owner[rule.id].path}"))
            owner.setdefault(rule.id, pack)
    order: dict[tuple[str, str], tuple[PolicyPack, Rule]] = {}
    for pack in packs:
        for rule in pack.rules:
            if isinstance(rule.spec, OrderedStepsSpec):
                steps = rule.spec.steps
                for i, a in enumerate(steps):
                    for b in steps[i + 1 :]:
                        if (b, a) in order:
                            other_pack, other = order[(b, a)]
                            problems.append(PolicyProblem(
                                pack.path, rule.line,
                                f"rule {rule.id!r} orders {a!r} before {b!r} but rule {other.id!r} "
                                f"({other_pack.path}:{other.line}) orders {b!r} before {a!r}"))
                        order[(a, b)] = (pack, rule)
    for pack in packs:
        ev = {e.name: e for e in pack.events}
        for other in packs:
            if other is pack:
                continue
            def add(line: int, reason: str, _p: PolicyPack = other) -> None:
                problems.append(PolicyProblem(_p.path, line, reason))
            pro_rules = [r for r in other.rules if isinstance(r.spec, ProhibitedPhraseSpec)]
            req_rules = [r for r in pack.rules if isinstance(r.spec, RequiredPhraseSpec)]
            _check_phrase_conflicts([*req_rules, *pro_rules], ev, add)
    if problems:
        raise PolicyError(problems)


def read_yaml_text(path: Path, what: str, error: type[PolicyError] = PolicyError) -> str:
    """The text of a policy or form file; an unreadable file raises `error` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error([PolicyProblem(str(path), 0, f"cannot read {what} file: {exc}")]) from exc


def resolve_yaml_specs(specs: Iterable[str | Path], builtin: Callable[[str], Path]) -> list[Path]:
    """File paths for specs that are files, directories (every *.yaml in it) or built-in names."""
    paths: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            paths.extend(sorted(p.glob("*.yaml")))
        elif p.suffix in (".yaml", ".yml") or p.exists():
            paths.append(p)
        else:
            paths.append(builtin(str(spec)))
    return paths


def load_pack(path: str | Path) -> PolicyPack:
    """Load one pack file; raises `PolicyError` (file, line, reason) on any problem."""
    p = Path(path)
    return parse_pack(read_yaml_text(p, "policy"), str(p))


def builtin_pack_path(name: str) -> Path:
    """Path of a pack shipped in intelligence/compliance/packs/."""
    return Path(str(resources.files("intelligence.compliance") / "packs" / f"{name}.yaml"))


def load_packs(specs: Iterable[str | Path] = BUILTIN_PACKS) -> list[PolicyPack]:
    """Load packs by built-in name or file path, all or nothing; a directory loads every *.yaml in it."""
    problems: list[PolicyProblem] = []
    packs: list[PolicyPack] = []
    for p in resolve_yaml_specs(specs, builtin_pack_path):
        try:
            packs.append(load_pack(p))
        except PolicyError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyError(problems)
    check_pack_set(packs)
    return packs
