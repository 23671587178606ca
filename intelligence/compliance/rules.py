"""Policy pack and rule specifications (what the YAML says, validated and frozen).

A pack is versioned and cites its sources; each rule has an `id`, a `kind`, a severity, the regulation it
implements (`source`) and `maps_to`, the call-scenario vocabulary name it is scored as (or None for QA-only
rules such as greeting or silence). Kind-specific settings live in one spec dataclass per kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from intelligence.compliance.matching import MatchOptions
from intelligence.types import Severity

Speaker = Literal["agent", "customer", "any"]

# The call-scenario rule vocabulary (calls/dev/README.md): rule name -> finding kind.
SCENARIO_RULES: dict[str, Literal["present", "absent"]] = {
    "consent_notice_missing": "absent",
    "agent_identity_missing": "absent",
    "risk_disclosure_missing": "absent",
    "risk_disclosure_out_of_order": "present",
    "prohibited_promise": "present",
    "product_misrepresentation": "present",
    "pci_card_number_spoken": "present",
    "pci_cvv_spoken": "present",
    "sensitive_auth_requested": "present",
    "customer_confirmation_missing": "present",
    "cooling_off_notice_missing": "absent",
    "risk_assessment_mismatch": "present",
}

RULE_KINDS = (
    "prohibited_phrase",
    "required_phrase",
    "ordered_steps",
    "confirmation",
    "card_number",
    "cvv",
    "pii",
    "risk_level_mismatch",
    "silence",
    "overtalk",
    "annotation",
)


@dataclass(frozen=True, slots=True)
class PhraseGroup:
    """Phrases that express one distinct claim; a rule reports at most one finding per group per turn."""

    name: str
    phrases: tuple[str, ...]
    requires_context: str | None = None
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Element:
    """One required element of a disclosure (any of its phrases satisfies it)."""

    name: str
    phrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventAlternative:
    """A way an event can happen: at least `min_elements` of `elements`, accumulated over `speaker`'s turns."""

    elements: tuple[Element, ...]
    min_elements: int
    speaker: Speaker | None = None  # overrides the event's speaker for this alternative
    within_turns: int | None = None  # counts only in the call's first N speaker turns


@dataclass(frozen=True, slots=True)
class EventDef:
    """A named moment in a call (a sale concluded, the risk disclosure given) that rules refer to."""

    name: str
    speaker: Speaker
    alternatives: tuple[EventAlternative, ...]
    match: MatchOptions
    requires_context: str | None = None
    languages: tuple[str, ...] = ()
    # "Shall I set it up for you?" offers the sale; it does not conclude it
    skip_questions: bool = False
    # phrases that, said in this turn or the two before it, mean the moment is something else: "Done." after
    # agreeing to a payment holiday concludes a change to an existing loan, not a sale
    not_near: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProhibitedPhraseSpec:
    speaker: Speaker
    groups: tuple[PhraseGroup, ...]
    negation: bool = True
    exclude: tuple[str, ...] = ()
    # In a mono recording (speaker roles unknown) matches inside questions are ignored unless this is set
    # (a request for a PIN is a question by nature; a customer asking "like a deposit?" is not a promise).
    match_questions: bool = False


@dataclass(frozen=True, slots=True)
class RequiredPhraseSpec:
    """A disclosure that must be said: inline `elements` or a named `event`.

    A `script` is a mandated text that must be read in full: it counts as said once at least `coverage` of its
    words (English) or syllables (Chinese, by sound) were said in order by the speaker (over two turns).
    Deadline: within the speaker's first `within_turns` turns or first `within_s` seconds (whichever is later),
    or before `before_event`; with neither, anywhere in the call. `only_if_event` / `only_if_context` make the
    requirement conditional (a risk disclosure is due only when a sale is concluded).
    """

    speaker: Speaker
    elements: tuple[Element, ...] = ()
    min_elements: int = 1
    event: str | None = None
    script: str = ""
    coverage: float = 0.8
    within_turns: int | None = None
    within_s: float | None = None
    before_event: str | None = None
    only_if_event: str | None = None
    only_if_context: str | None = None


@dataclass(frozen=True, slots=True)
class OrderedStepsSpec:
    """Events that must happen in this order; a step first seen after a later step is reported there."""

    steps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConfirmationSpec:
    """After the agent asks for a confirmation, the customer must answer explicitly before the agent goes on."""

    questions: tuple[str, ...]
    explicit: tuple[str, ...]
    weak_yes: tuple[str, ...]
    hedges: tuple[str, ...]
    negative: tuple[str, ...]
    proceed: tuple[str, ...]
    proceed_event: str | None = None
    min_gap_s: float = 0.8
    backchannels: tuple[str, ...] = ()
    # The agent saying it assumes consent ("I'll take that as a yes", 那我们就先办理了) is itself evidence
    # that the answer was not explicit, whatever the (possibly misrecognised) reply was.
    assumed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CardNumberSpec:
    speaker: Speaker = "any"
    allow_unverified: bool = True


@dataclass(frozen=True, slots=True)
class CvvSpec:
    speaker: Speaker = "any"


@dataclass(frozen=True, slots=True)
class PiiSpec:
    speaker: Speaker = "any"
    kinds: tuple[str, ...] = ("ssn", "cn_id")


@dataclass(frozen=True, slots=True)
class LevelPattern:
    phrase: str
    level: int


@dataclass(frozen=True, slots=True)
class RiskMismatchSpec:
    """Customer risk profile (e.g. 保守型 = 1) below the product risk level (e.g. R4 = 4) and no refusal."""

    speaker: Speaker
    profile_levels: tuple[LevelPattern, ...]
    product_levels: tuple[LevelPattern, ...]
    refusal: tuple[str, ...] = ()
    window_turns: int = 2
    # numbers on a scale ("three out of ten", "band six") read by intelligence/compliance/risk_scale.py (English)
    scales: bool = False
    # a profile in the customer's own words ("I can't afford to lose it"), in the last 2 x window_turns turns
    customer_profile_levels: tuple[LevelPattern, ...] = ()


@dataclass(frozen=True, slots=True)
class SilenceSpec:
    """Dead air longer than `max_gap_s`; after a hold phrase, a hold longer than `max_hold_s`."""

    max_gap_s: float
    hold_phrases: tuple[str, ...] = ()
    max_hold_s: float | None = None


@dataclass(frozen=True, slots=True)
class OvertalkSpec:
    """Both parties speaking at once for longer than `min_overlap_s`."""

    min_overlap_s: float


@dataclass(frozen=True, slots=True)
class AnnotationSpec:
    """Classifier labels (intent, emotion, sentiment) that trigger a finding, e.g. repeated customer anger."""

    task: str
    labels: tuple[str, ...]
    min_score: float = 0.5
    speaker: Speaker = "any"
    min_count: int = 1
    window_s: float | None = None


RuleSpec = (
    ProhibitedPhraseSpec
    | RequiredPhraseSpec
    | OrderedStepsSpec
    | ConfirmationSpec
    | CardNumberSpec
    | CvvSpec
    | PiiSpec
    | RiskMismatchSpec
    | SilenceSpec
    | OvertalkSpec
    | AnnotationSpec
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a pack. `maps_to` is its scenario-vocabulary name (None: QA only, not scored)."""

    id: str
    kind: str
    title: str
    severity: Severity
    source: str
    maps_to: str | None
    spec: RuleSpec
    match: MatchOptions = field(default_factory=MatchOptions)
    languages: tuple[str, ...] = ()
    pack: str = ""
    pack_version: str = ""
    line: int = 0

    @property
    def finding_kind(self) -> Literal["present", "absent"]:
        return "absent" if isinstance(self.spec, RequiredPhraseSpec) else "present"

    def applies_to(self, language: str) -> bool:
        """True if the rule is for calls in `language` (rules with no languages apply to all)."""
        return not self.languages or language in self.languages


@dataclass(frozen=True, slots=True)
class ScorecardItem:
    """A weighted QA item: it passes when none of `rules` fired (critical items fail the whole scorecard)."""

    id: str
    label: str
    weight: float
    rules: tuple[str, ...]
    critical: bool = False


@dataclass(frozen=True, slots=True)
class Retention:
    """How long stored recordings and transcripts are kept under this pack (days; None = no limit set)."""

    audio_days: int | None = None
    transcript_days: int | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class PolicyPack:
    """A versioned set of rules, events and a QA scorecard, loaded from one YAML file."""

    id: str
    version: str
    title: str
    languages: tuple[str, ...]
    sources: tuple[str, ...]
    rules: tuple[Rule, ...]
    events: tuple[EventDef, ...] = ()
    contexts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scorecard: tuple[ScorecardItem, ...] = ()
    pass_mark: float = 80.0
    retention: Retention = field(default_factory=Retention)
    path: str = ""
    sha256: str = ""  # of the YAML text, for the audit trail's configuration records

    def describe(self) -> dict[str, str]:
        """What an audit record of a configuration change should say about this pack."""
        return {"id": self.id, "version": self.version, "sha256": self.sha256, "path": self.path}

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)
