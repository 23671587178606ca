"""Enrichment of live sessions: text classifiers, voice emotion, escalation alerts and compliance rules.

Shared per app (`EnrichmentResources`): the model weights and their executors. Text classification of utterances
from all sessions is micro-batched on one worker thread; voice emotion runs on another; compliance rules run in
worker threads too (pinyin and fuzzy matching cost milliseconds). Per session (`SessionEnricher`): the call's
state (compliance engine, rolling moods, per-call voice normalisation).

For each final caption: compliance rules (findings become `finding` and `alert` events at once). For each
utterance (a channel's finals between pauses): intent, emotion and sentiment of the text, voice emotion of the
audio, fused into the speaker's rolling mood; an escalation alert when a customer turns and stays negative.
Spoken card data found by the PCI rules is redacted in the stored transcript and muted in the stored audio.
A failure of any of this degrades the session (counted in its stats) and never stops the captions.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from intelligence.events import Mood, Redaction
from intelligence.types import Alert, Annotation, Finding, Severity, TranscriptEvent
from pipelines.batching import BatchingExecutor, Overloaded
from pipelines.session import EnricherFactory, StageContext, Utterance
from pipelines.settings import HarkenSettings

log = logging.getLogger(__name__)

PCI_RULES = ("pci_card_number_spoken", "pci_cvv_spoken")
REDACTION_LOOKBACK_S = 45.0  # how far back a card number read out in pieces is searched for


@dataclass
class EnrichmentResources:
    """Models and executors shared by all sessions of one app (loaded lazily, in worker threads)."""

    settings: HarkenSettings
    _text: Any = None
    _voice: Any = None
    _packs: list[Any] | None = None
    _text_exec: BatchingExecutor | None = None
    _voice_exec: BatchingExecutor | None = None
    _named_packs: dict[tuple[str, ...], list[Any]] = field(default_factory=dict)
    _normalizer: Any = None  # one compliance TextNormalizer per process: phrases are compiled once
    _forms: dict[tuple[str, ...], list[Any]] = field(default_factory=dict)  # QA forms per set of pack ids
    _llm: Any = None  # intelligence.llm.LlmClient when HARKEN_LLM_URL and HARKEN_LLM_MODEL are set
    _lock: threading.Lock = field(default_factory=threading.Lock)
    load_errors: dict[str, str] = field(default_factory=dict)
    # App-level services, set by create_app (None in one-off runs such as file transcription)
    tickets: Any = None  # intelligence.tickets.TicketService
    audit: Any = None  # intelligence.audit_chain.AuditChain
    webhooks: Any = None  # pipelines.webhooks.WebhookSender

    # -- loading (blocking: call in a thread) --------------------------------------------------------------
    def text_classifier(self):
        with self._lock:
            if self._text is None and "text" not in self.load_errors:
                try:
                    from models.classifiers.facade import ClassifierSetConfig, TextClassifierSet

                    cfg = ClassifierSetConfig(custom_intents=self.settings.custom_intents, intra_op_threads=1)
                    clf = TextClassifierSet(cfg)
                    clf.load()
                    self._text = clf
                    self._text_exec = BatchingExecutor(self._classify_batch, name="text-classifiers")
                except Exception as exc:  # missing weights etc.: run without, say so once
                    self.load_errors["text"] = repr(exc)
                    log.exception("text classifiers unavailable; sessions run without them")
            return self._text

    def voice_classifier(self):
        with self._lock:
            if self._voice is None and "voice" not in self.load_errors:
                try:
                    from models.voice_emotion.classifier import VoiceEmotionClassifier

                    self._voice = VoiceEmotionClassifier.from_packaged()
                    self._voice_exec = BatchingExecutor(self._voice_batch, name="voice-emotion", max_batch=8)
                except Exception as exc:
                    self.load_errors["voice"] = repr(exc)
                    log.exception("voice emotion unavailable; sessions run without it")
            return self._voice

    def packs(self) -> list[Any]:
        with self._lock:
            if self._packs is None:
                from intelligence.compliance.loader import BUILTIN_PACKS, load_packs

                names = [p for p in self.settings.policy_packs.split(",") if p.strip()] or list(BUILTIN_PACKS)
                self._packs = load_packs(names)  # raises PolicyError with file:line at start-up
            return self._packs

    def normalizer(self) -> Any:
        with self._lock:
            if self._normalizer is None:
                from intelligence.compliance.text import TextNormalizer

                scorer = None
                if self.settings.compliance_meaning:
                    try:
                        from models.clauses.scorer import load_clause_scorer

                        scorer = load_clause_scorer(encoder=self.settings.clause_encoder)
                    except Exception as exc:  # run on phrase lists alone, say so once
                        self.load_errors["clauses"] = repr(exc)
                        log.exception("clause detectors unavailable; compliance runs on phrase lists only")
                self._normalizer = TextNormalizer(clause_scorer=scorer)
            return self._normalizer

    def packs_for(self, names: Sequence[str]) -> list[Any]:
        """Packs a session names (loaded once per set of names: sessions open on the event loop)."""
        if not names:
            return self.packs()
        key = tuple(names)
        with self._lock:
            if key not in self._named_packs:
                from intelligence.compliance.loader import load_packs

                self._named_packs[key] = load_packs(key)
            return self._named_packs[key]

    def forms_for(self, packs: Sequence[Any], *, strict: bool = False) -> list[Any]:
        """The QA evaluation forms (HARKEN_QA_FORMS) that fit a session's packs, loaded once per set of packs.

        `strict` (at start-up, for the default packs) raises on a form that names an unknown rule or a pack
        that is not loaded; later, for the packs a client names, such a form is skipped with a warning."""
        key = tuple(p.id for p in packs)
        with self._lock:
            if key not in self._forms:
                from intelligence.compliance.forms_loader import FormError, forms_from_setting

                try:
                    self._forms[key] = forms_from_setting(self.settings.qa_forms, packs, require_packs=strict)
                except FormError as exc:
                    if strict:
                        raise
                    log.warning("QA forms skipped for packs %s: %s", ",".join(key), exc)
                    self._forms[key] = []
            return self._forms[key]

    def llm_client(self) -> Any:
        """The optional LLM client for form questions no detector answers (None when not configured)."""
        if self._llm is None:
            from intelligence.llm import client_from_settings

            self._llm = client_from_settings(self.settings) or False
        return self._llm or None

    # -- batch functions (worker threads) ------------------------------------------------------------------
    def _classify_batch(self, items: Sequence[tuple[str, str, Any]]) -> list[Any]:
        return self._text.classify_requests(items)

    def _voice_batch(self, items: Sequence[tuple[Any, Any]]) -> list[Any]:
        return [self._voice.classify(pcm, 16000, call_stats=stats) for pcm, stats in items]

    async def classify_text(self, text: str, language: str, tasks: tuple[str, ...] | None = None):
        """Classify one text on the shared worker (micro-batched across sessions); `tasks` limits the work."""
        if self._text_exec is None:
            return None
        return await self._text_exec.submit((text, language, tasks))

    async def classify_utterance_text(self, text: str, language: str):
        """What an utterance's text gets: every task on the whole text and, for an English turn of several
        sentences, the intent of each sentence (see `pick_intent`). Raises `Overloaded` past capacity."""
        from models.classifiers.facade import uses_english_models

        sentences = split_sentences(text) if uses_english_models(text, language) else []
        results = await asyncio.gather(
            self.classify_text(text, language),
            *(self.classify_text(t, language, ("intent",)) for t in sentences),
        )
        return pick_intent(results[0], results[1:])

    async def classify_voice(self, pcm, stats):
        if self._voice_exec is None:
            return None
        return await self._voice_exec.submit((pcm, stats))

    def close(self) -> None:
        for ex in (self._text_exec, self._voice_exec):
            if ex is not None:
                ex.close()


class SessionEnricher:
    """One session's enrichment state."""

    def __init__(self, ctx: StageContext, res: EnrichmentResources, engine: Any) -> None:
        from intelligence.escalation import EscalationTracker

        self.res = res
        self.engine = engine
        self._engine_lock = asyncio.Lock()
        self.escalation = EscalationTracker(ctx.session_id)
        self._voice_stats: dict[int, Any] = {}
        self._utterance_segments: dict[str, list[str]] = {}  # utterance id -> its finals' segment ids

    # -- compliance ----------------------------------------------------------------------------------------
    async def _engine_call(self, fn, *args) -> list[Finding]:
        if self.engine is None:
            return []
        async with self._engine_lock:
            return await asyncio.to_thread(fn, *args)

    async def on_final(self, ctx: StageContext, event: TranscriptEvent) -> None:
        # Rules read whole utterances (see on_utterance): streaming finals are fragments of a few words.
        return None

    async def _out(self, ctx: StageContext, event: dict[str, Any]) -> None:
        """Publish on the session (persisted, streamed) and export to the webhook if configured."""
        await ctx.publish(event)
        if self.res.webhooks is not None:
            self.res.webhooks.publish({**event, "session_id": ctx.session_id})

    async def _publish_findings(self, ctx: StageContext, findings: list[Finding]) -> None:
        for f in findings:
            rule = self.engine.rule(f.rule_id) if self.engine else None
            payload = f.to_dict()
            payload["maps_to"] = getattr(rule, "maps_to", None)
            await self._out(ctx, payload)
            if self.res.audit is not None:
                from intelligence.audit_chain import finding_payload

                await asyncio.to_thread(self.res.audit.append, "compliance-engine", "finding.raised",
                                        {**finding_payload(f), "tenant": ctx.config.tenant_id})
            if f.severity in (Severity.HIGH, Severity.MEDIUM):
                alert = Alert(ctx.session_id, "compliance", f.severity, f.message, f.at_s,
                              {"rule_id": f.rule_id, "pack": f.pack, "maps_to": payload["maps_to"],
                               "segment_ids": [e.segment_id for e in f.evidence]})
                await self._out(ctx, alert.to_dict())
            if payload["maps_to"] in PCI_RULES or f.rule_id.startswith("pci"):
                await self._redact(ctx, f)

    async def _redact(self, ctx: StageContext, finding: Finding) -> None:
        """Redact card data in the stored transcript and mute it in the stored audio.

        A card number is often read over several finals (even over a pause), so the channel's recent finals are
        searched as one text and each sensitive span is mapped back to the segments and word times it covers.
        """
        from intelligence.redaction import redact_channel, redacted_final

        channels = {e.channel for e in finding.evidence} or {0}
        since_s = min((e.start_s for e in finding.evidence), default=0.0) - REDACTION_LOOKBACK_S
        changed: dict[str, str] = {}  # segment id -> redacted text
        mutes: list[tuple[float, float]] = []
        for ch in channels:
            segs = [ev for ev in ctx.history if ev.get("type") == "transcript" and ev.get("kind") == "final"
                    and ev.get("channel") == ch and ev.get("end_s", 0.0) >= since_s]
            found = redact_channel(segs)
            changed.update(found.texts)
            mutes += found.mute_spans_s
        for ev in list(ctx.history):
            if ev.get("type") != "transcript" or ev.get("segment_id") not in changed:
                continue
            red_text = changed[ev["segment_id"]]
            await ctx.rewrite({**ev, **redacted_final(ev, red_text)})
            await ctx.publish(Redaction(ev["segment_id"], ev["channel"], red_text, finding.rule_id))
        for start_s, end_s in mutes:
            ctx.mute(start_s - 0.25, end_s + 0.25)
        # utterance events repeat their finals' text: rebuild them from the redacted finals
        by_id = {ev["segment_id"]: ev for ev in ctx.history if ev.get("type") == "transcript"}
        for ev in list(ctx.history):
            if ev.get("type") != "utterance" or not set(ev.get("segment_ids", ())) & changed.keys():
                continue
            from intelligence.captions import plain_text

            parts = [by_id[i] for i in ev["segment_ids"] if i in by_id]
            await ctx.rewrite({**ev, "text": plain_text(parts), "words": [w for p in parts for w in p["words"]],
                                         "redacted": True})

    # -- utterance-level classifiers -----------------------------------------------------------------------
    async def on_utterance(self, ctx: StageContext, utt: Utterance) -> None:
        from intelligence.escalation import UtteranceAffect
        from intelligence.fusion import TextAffect

        self._utterance_segments[utt.segment_id] = [s.segment_id for s in utt.segments]
        if self.engine is not None:
            await self._publish_findings(ctx, await self._engine_call(self.engine.on_transcript, utt.to_event()))
        text = utt.text
        language = utt.language or ctx.config.language
        pcm = ctx.audio_span(utt.channel, utt.start_s, utt.end_s)
        # Text and voice run at once on their own workers.
        text_job = self.res.classify_utterance_text(text, language)
        voice_job = self._classify_voice(utt.channel, pcm) if len(pcm) else _none()
        text_out, voice_res = await asyncio.gather(text_job, voice_job, return_exceptions=True)
        text_res = None
        if isinstance(text_out, Overloaded):
            ctx.count_error()
        elif isinstance(text_out, BaseException):
            raise text_out
        else:
            text_res = text_out
        if isinstance(voice_res, Overloaded):
            ctx.count_error()
            voice_res = None
        elif isinstance(voice_res, BaseException):
            raise voice_res
        base = {"segment_ids": [s.segment_id for s in utt.segments], "speaker": utt.speaker,
                "start_s": utt.start_s, "end_s": utt.end_s}
        annotations: list[Annotation] = []
        names = self.res._text.model_names if self.res._text is not None else {}
        text_affect = None
        if text_res is not None:
            for task, (label, score) in text_res.summary().items():
                model = text_res.models.get(task, names.get(task, task))  # e.g. the Chinese sentiment student
                annotations.append(Annotation(ctx.session_id, utt.segment_id, utt.channel, task, label,
                                              float(score), model, dict(base)))
            if text_res.sentiment is not None:
                emo = text_res.emotion
                text_affect = TextAffect(
                    sentiment=text_res.sentiment[0], sentiment_score=float(text_res.sentiment[1]),
                    emotion=emo.category if emo is not None else "neutral",
                    emotion_score=float(emo.category_score) if emo is not None else 1.0,
                )
        if voice_res is not None:
            ann = voice_res.to_annotation(ctx.session_id, utt.segment_id, utt.channel)
            annotations.append(replace(ann, extra={**ann.extra, **base}))
        for ann in annotations:
            await ctx.publish(ann)
            findings = await self._engine_call(self.engine.on_annotation, ann) if self.engine else []
            await self._publish_findings(ctx, findings)
        update = self.escalation.observe(UtteranceAffect(
            utt.segment_id, utt.speaker, utt.channel, utt.start_s, utt.end_s, text_affect,
            voice_res.to_cue() if voice_res is not None else None,
        ))
        mood = update.mood
        await ctx.publish(Mood(mood.speaker, utt.channel, utt.segment_id, utt.end_s, round(update.fused.valence, 3),
                                update.fused.emotion, round(mood.rolling_valence, 3), mood.state))
        for alert in update.alerts:
            await self._out(ctx, alert.to_dict())

    async def _classify_voice(self, channel: int, pcm: Any) -> Any:
        stats = self._voice_stats.get(channel)
        if stats is None and self.res._voice is not None:
            stats = self._voice_stats[channel] = self.res._voice.new_call_stats()
        return await self.res.classify_voice(pcm, stats)

    async def on_resume(self, ctx: StageContext) -> None:
        """A session taken over from a worker that died: feed the rules what was said before (the utterances and
        annotations it published, in order) so that rule windows and end-of-call checks see the whole call, and
        publish any finding those events raise that the old worker had not published yet (the others are known
        by rule, kind, evidence and time, and are not raised twice)."""
        if self.engine is None:
            return
        published = {_finding_key(ev) for ev in ctx.history if ev.get("type") == "finding"}
        missed: list[Finding] = []
        for ev in ctx.history:
            if ev.get("type") == "utterance":
                self._utterance_segments[ev["segment_id"]] = list(ev.get("segment_ids", ()))
                found = await self._engine_call(self.engine.on_transcript, TranscriptEvent.from_dict(ev))
            elif ev.get("type") == "annotation":
                found = await self._engine_call(self.engine.on_annotation, Annotation(
                    ctx.session_id, ev["segment_id"], int(ev.get("channel", 0)), ev["task"], ev["label"],
                    float(ev.get("score", 0.0)), ev.get("model", ""), dict(ev.get("extra") or {})))
            else:
                continue
            missed += [f for f in found if _finding_key(f.to_dict()) not in published]
        await self._publish_findings(ctx, missed)

    async def finish(self, ctx: StageContext) -> None:
        """End of call: resolve absent-disclosure rules, score the call, open tickets for violations."""
        if self.engine is None:
            return
        findings = await self._engine_call(self.engine.finish, None)
        await self._publish_findings(ctx, findings)
        from intelligence.compliance.scorecard import build_scorecard

        all_findings = list(self.engine.findings)
        card = build_scorecard(self.engine.packs, all_findings, session_id=ctx.session_id,
                               language=self.engine.language)
        forms = await self._fill_forms(ctx)
        if forms:
            card = replace(card, forms=tuple(forms))
        await self._out(ctx, card.to_dict())
        if self.res.tickets is None:
            return
        for f in all_findings:
            if f.severity not in (Severity.HIGH, Severity.MEDIUM):
                continue
            ticket = await asyncio.to_thread(self.res.tickets.create_from_finding, f,
                                             tenant_id=ctx.config.tenant_id,
                                             agent=ctx.metadata.get("agent") or None)
            await self._out(ctx, {"type": "ticket", **ticket.to_dict()})

    async def _fill_forms(self, ctx: StageContext) -> list[Any]:
        """Fill in the QA forms that apply to this call: detectors in a worker thread, then the optional LLM
        (httpx.AsyncClient, bounded by llm_timeout_s) for the questions they leave. Never raises."""
        from intelligence.compliance.forms import CallEvidence, complete_form, draft_forms, transcript_lines

        try:
            forms = await asyncio.to_thread(self.res.forms_for, self.engine.packs)
            if not forms:
                return []
            llm = self.res.llm_client()
            async with self._engine_lock:
                call = CallEvidence.from_engine(self.engine)
                drafts = await asyncio.to_thread(lambda: draft_forms(forms, call, self.res.normalizer()))
                wanted = llm is not None and any(d.llm_questions() for d in drafts)
                lines = await asyncio.to_thread(transcript_lines, call.state) if wanted else []
            results = []
            for d in drafts:
                questions = d.llm_questions()
                batch = await llm.aanswer(questions, lines, call.language) if llm is not None and questions else None
                results.append(complete_form(d, batch))
            return results
        except Exception as exc:  # noqa: BLE001 - forms are an extra: the scorecard goes out without them
            ctx.count_error()
            log.warning("QA forms could not be filled in for session %s: %s", ctx.session_id,
                        type(exc).__name__)
            return []


async def _none() -> None:
    return None


def split_sentences(text: str, max_sentences: int = 4) -> list[str]:
    """The sentences of a multi-sentence utterance (none for a single sentence): call turns often state the
    request in one sentence among small talk, which dilutes a whole-turn intent into out-of-scope."""
    parts = [p.strip() for p in re.split(r"(?<=[.?!。？！])\s*", text) if len(p.strip()) > 3]
    return parts[:max_sentences] if len(parts) > 1 else []


def pick_intent(whole: Any, per_sentence: Sequence[Any]) -> Any:
    """Emotion and sentiment of the whole utterance; intent of the most confident in-scope sentence, if the
    whole utterance was rejected as out of scope."""
    if whole is None or whole.intent is None or whole.intent.label != "out_of_scope":
        return whole
    candidates = [r.intent for r in per_sentence if r is not None and r.intent is not None
                  and r.intent.label not in ("out_of_scope", "unknown")]
    if not candidates:
        return whole
    return replace(whole, intent=max(candidates, key=lambda p: p.score))


def enricher_factories(settings: HarkenSettings, app_state: Any = None,
                       resources: EnrichmentResources | None = None) -> list[EnricherFactory]:
    """The per-session enricher factories for these settings: classifiers and compliance, then minutes (last,
    so they see the session's moods and findings)."""
    from pipelines.minutes_stage import minutes_factory

    tail = [minutes_factory(settings)] if settings.minutes else []
    if not settings.classifiers and not settings.compliance:
        return tail
    res = resources or EnrichmentResources(settings)
    if app_state is not None:
        app_state.extras["enrichment"] = res

    def make(ctx: StageContext) -> SessionEnricher:
        engine = None
        if settings.compliance:
            from intelligence.compliance.engine import ComplianceEngine

            packs = res.packs_for(ctx.config.policy_packs)
            names = ctx.config.channel_names
            roles_known = {"agent", "customer"} <= set(names)
            # a single mixed channel (an in-room 双录 recording, a meeting) has no known roles: the engine then
            # infers turns from pauses and skips rules that need to know who spoke
            roles = dict(enumerate(names)) if roles_known else {i: "agent" for i in range(len(names))}
            engine = ComplianceEngine(packs, session_id=ctx.session_id, language=ctx.config.language,
                                      channel_roles=roles, normalizer=res.normalizer(), roles_known=roles_known)
        return SessionEnricher(ctx, res, engine)

    return [make, *tail]


async def warm_up(res: EnrichmentResources) -> None:
    """Load models and packs in worker threads (at app start, so the first call does not wait)."""
    if res.settings.classifiers:
        await asyncio.to_thread(res.text_classifier)
        await asyncio.to_thread(res.voice_classifier)
    if res.settings.compliance:
        packs = await asyncio.to_thread(res.packs)
        await asyncio.to_thread(res.normalizer)
        # a form naming an unknown rule fails the start, with file and line, like a broken pack
        await asyncio.to_thread(lambda: res.forms_for(packs, strict=True))


def _finding_key(d: dict[str, Any]) -> tuple:
    """A finding's identity across workers: rule, kind, evidence segments and time."""
    return (d.get("rule_id"), d.get("kind"), tuple(e.get("segment_id") for e in d.get("evidence", ())),
            round(float(d.get("at_s", 0.0)), 2))
