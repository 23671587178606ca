"""Compliance: policy packs (YAML), phrase matchers tolerant to ASR errors, PCI/PII detection, the
incremental rule engine and QA scorecards. Pure domain code: no web framework, no model loading."""

from intelligence.compliance.engine import ComplianceEngine, RuleError
from intelligence.compliance.loader import (
    BUILTIN_PACKS,
    PolicyError,
    PolicyProblem,
    load_pack,
    load_packs,
    parse_pack,
)
from intelligence.compliance.matching import Embedder, MatchOptions
from intelligence.compliance.pci import redact_text, redaction_time_spans
from intelligence.compliance.rules import SCENARIO_RULES, PolicyPack, Rule
from intelligence.compliance.scorecard import Scorecard, build_scorecard

__all__ = [
    "BUILTIN_PACKS",
    "SCENARIO_RULES",
    "ComplianceEngine",
    "Embedder",
    "MatchOptions",
    "PolicyError",
    "PolicyPack",
    "PolicyProblem",
    "Rule",
    "RuleError",
    "Scorecard",
    "build_scorecard",
    "load_pack",
    "load_packs",
    "parse_pack",
    "redact_text",
    "redaction_time_spans",
]
