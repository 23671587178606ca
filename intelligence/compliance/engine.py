"""The compliance engine: incremental, pure and deterministic.

    engine = ComplianceEngine(packs, session_id="s1", language="zh", embedder=None)
    engine.on_transcript(event)   -> findings raised by this final segment (partials are ignored)
    engine.on_annotation(ann)     -> findings raised by a classifier label
    engine.finish(end_s)          -> findings that resolve at the end (absent disclosures)

One engine belongs to one session (it holds that call's state); the packs it reads are immutable and can be
shared. A rule that raises is reported in `rule_errors`, disabled for the rest of the session, and never
stops the others. Nothing here logs transcript text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from intelligence.compliance.matching import Embedder
from intelligence.compliance.rules import PolicyPack, Rule
from intelligence.compliance.runners import EventTracker, Runner, SegmentContext, build_runner
from intelligence.compliance.state import CallState, Turn
from intelligence.compliance.text import TextNormalizer, contains_han
from intelligence.types import Annotation, Finding, TranscriptEvent

log = logging.getLogger(__name__)

DEFAULT_CHANNEL_ROLES: Mapping[int, str] = {0: "agent", 1: "customer"}
MONO_TURN_GAP_S = 0.7


@dataclass(frozen=True, slots=True)
class RuleError:
    """A rule that failed at run time; it was skipped for the rest of the session."""

    rule_id: str
    pack: str
    error: str
    at_s: float


class ComplianceEngine:
    """Evaluates policy packs on one session's final transcript events and annotations."""

    def __init__(
        self,
        packs: Sequence[PolicyPack],
        *,
        session_id: str = "",
        language: str = "auto",
        embedder: Embedder | None = None,
        channel_roles: Mapping[int, str] = DEFAULT_CHANNEL_ROLES,
        normalizer: TextNormalizer | None = None,
        roles_known: bool = True,
    ) -> None:
        """`normalizer`: share one `TextNormalizer` across the sessions of a process so each policy phrase is
        normalised once (building an engine then takes milliseconds instead of about half a second).

        `roles_known=False` is for a mono recording of both parties (an in-room 双录 mix): all speech is
        treated as the agent's, rules that need to tell the customer's answer from the agent's question
        (confirmation) are not run, and prohibited phrases inside questions are ignored (a customer asking
        "跟存款一样？" is not the agent saying it)."""
        self.packs = tuple(packs)
        self.state = CallState(session_id, forced_language=None if language in ("", "auto") else language,
                               roles_known=roles_known)
        self.channel_roles = dict(channel_roles)
        self._normalizer = normalizer or TextNormalizer()
        self._trackers = [EventTracker(p, self.state, self._normalizer) for p in self.packs]
        self._runners: list[Runner] = []
        self._rules: dict[str, Rule] = {}
        for pack in self.packs:
            for rule in pack.rules:
                self._rules[rule.id] = rule
                if not roles_known and rule.kind == "confirmation":
                    continue
                self._runners.append(build_runner(rule, pack, self.state, self._normalizer, embedder))
        self._disabled: set[str] = set()
        self.rule_errors: list[RuleError] = []
        self.findings: list[Finding] = []
        self._finished = False

    # -- public API -----------------------------------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self.state.session_id

    @property
    def language(self) -> str:
        """The session language: forced at construction, or detected from the text so far."""
        return self.state.language

    @property
    def turns(self) -> list[Turn]:
        return self.state.turns

    def rule(self, rule_id: str) -> Rule | None:
        """The loaded rule with this id (e.g. to read `maps_to` of a finding)."""
        return self._rules.get(rule_id)

    def turn_of(self, segment_id: str) -> int | None:
        """Index of the speaker turn a segment was assigned to."""
        return self.state.segment_turn.get(segment_id)

    def on_transcript(self, event: TranscriptEvent) -> list[Finding]:
        """Feed one transcript event; partials are ignored, finals are evaluated by every applicable rule."""
        if event.kind != "final" or not event.text.strip() or self._finished:
            return []
        role = self._role(event)
        self.state.segments_seen += 1
        turn, offset = self._add_to_turn(event, role)
        self._count_language(event.text)
        language = event.language or self.language
        ctx = SegmentContext(event, turn, offset)
        for tracker in self._trackers:
            try:
                tracker.update(ctx, language)
            except Exception as exc:  # noqa: BLE001 - a broken event definition must not stop the session
                self._error(f"events:{tracker.pack.id}", tracker.pack.id, exc, event.end_s)
        out: list[Finding] = []
        for runner in self._runners:
            if runner.rule.id in self._disabled or not runner.rule.applies_to(language):
                continue
            out.extend(self._run(runner, lambda r=runner: r.on_segment(ctx), event.end_s))
        self.state.last_end_s = max(self.state.last_end_s, event.end_s)
        self.findings.extend(out)
        return out

    def on_annotation(self, ann: Annotation) -> list[Finding]:
        """Feed one classifier annotation (intent, emotion, sentiment) for a final segment."""
        if self._finished:
            return []
        role = self.channel_roles.get(ann.channel, "other")
        out: list[Finding] = []
        for runner in self._runners:
            if runner.rule.id in self._disabled or not runner.rule.applies_to(self.language):
                continue
            out.extend(self._run(runner, lambda r=runner: r.on_annotation(ann, role), self.state.last_end_s))
        self.findings.extend(out)
        return out

    def finish(self, end_s: float | None = None) -> list[Finding]:
        """Resolve end-of-call rules (absent disclosures). Further input is ignored afterwards."""
        if self._finished:
            return []
        end = self.state.last_end_s if end_s is None else end_s
        language = self.language
        out: list[Finding] = []
        for runner in self._runners:
            if runner.rule.id in self._disabled or not runner.rule.applies_to(language):
                continue
            out.extend(self._run(runner, lambda r=runner: r.finish(end), end))
        self._finished = True
        self.findings.extend(out)
        return out

    def run(self, events: Iterable[TranscriptEvent], annotations: Iterable[Annotation] = (),
            end_s: float | None = None) -> list[Finding]:
        """Offline convenience: feed all events (annotations right after their segment) and finish."""
        by_segment: dict[str, list[Annotation]] = {}
        for ann in annotations:
            by_segment.setdefault(ann.segment_id, []).append(ann)
        out: list[Finding] = []
        for event in events:
            out.extend(self.on_transcript(event))
            for ann in by_segment.get(event.segment_id, []):
                out.extend(self.on_annotation(ann))
        out.extend(self.finish(end_s))
        return out

    # -- internals ------------------------------------------------------------------------------------------

    def _role(self, event: TranscriptEvent) -> str:
        if event.speaker in ("agent", "customer"):
            return event.speaker
        return self.channel_roles.get(event.channel, event.speaker or "other")

    def _add_to_turn(self, event: TranscriptEvent, role: str) -> tuple[Turn, int]:
        turns = self.state.turns
        same_speaker = bool(turns) and turns[-1].speaker == role and turns[-1].channel == event.channel
        if same_speaker and not self.state.roles_known and event.start_s - turns[-1].end_s >= MONO_TURN_GAP_S:
            same_speaker = False  # one channel for both parties: a pause is the best guess at a new turn
        if same_speaker:
            turn = turns[-1]
        else:
            turn = Turn(len(turns), role, event.channel)
            turns.append(turn)
        offset = turn.append(event, self._normalizer)
        self.state.segment_turn[event.segment_id] = turn.index
        return turn, offset

    def _count_language(self, text: str) -> None:
        if contains_han(text):
            self.state.han_chars += sum(1 for c in text if "\u3400" <= c <= "\u9fff")
        self.state.latin_chars += sum(1 for c in text if c.isascii() and c.isalpha())

    def _run(self, runner: Runner, call: object, at_s: float) -> list[Finding]:
        try:
            return list(call())  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - one broken rule must never stop the session
            self._error(runner.rule.id, runner.rule.pack, exc, at_s)
            self._disabled.add(runner.rule.id)
            return []

    def _error(self, rule_id: str, pack: str, exc: Exception, at_s: float) -> None:
        # The exception type and message only: rule errors must not echo transcript text into logs.
        message = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("compliance rule %s (%s) failed and is skipped for session %s: %s", rule_id, pack,
                    self.state.session_id, type(exc).__name__)
        self.rule_errors.append(RuleError(rule_id, pack, message, at_s))
