"""Live sessions: one call or meeting flowing through ingress -> channel transcribers -> events -> sinks.

The `SessionManager` admits sessions up to a channel budget (past it: `CapacityExceeded`), owns the shared ASR
executor, and hands every session its own transcribers, queues and bus (nothing per-session is shared).

Ingress queues are bounded. Their overflow policy is chosen by the source: `block` (the WebSocket client and file
replays get TCP/await back-pressure; nothing is lost) or `drop_oldest` (live RTP-style taps that cannot be paused:
the oldest audio is dropped and counted in `audio_dropped_s`). Feeding is cheap DSP done in worker threads; the
model runs in the executor. Every durable event is persisted as it is produced, so a client that vanishes loses
nothing already captioned.

Replay pacing: a `paced` session (file transcription and `harken eval asr` without --realtime) feeds audio as fast
as decoding allows and simulates the real-time clock: a decode is issued when the simulated decoder is free and
stamped done `decode_s` later, exactly as one real-time stream on an idle machine would see it. Its events carry
that simulated clock in `media_clock_s`, so latency figures from replays and from live streams compare.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

import numpy as np

from intelligence.events import (
    DiarizationResult,
    SessionEnded,
    SessionError,
    SessionEvent,
    SpeakerUpdate,
    TapEvent,
    to_json,
)
from intelligence.types import TranscriptEvent
from intelligence.zh_homophones import HomophoneParams
from pipelines.bus import SessionBus, Subscriber
from pipelines.channel import ChannelTranscriber, DecodeJob, StreamingParams
from pipelines.cluster import ResumeState
from pipelines.config import SessionConfig
from pipelines.diarize import LiveDiarizer
from pipelines.errors import BadAudio, CapacityExceeded, SessionClosed
from pipelines.executor import AsrExecutor
from pipelines.recorder import CallRecorder
from pipelines.ring import AudioRing
from pipelines.sink import PersistenceSink
from pipelines.vocabulary import domain_glossary

log = logging.getLogger(__name__)

Overflow = Literal["block", "drop_oldest"]
MAX_UTTERANCE_S = 20.0  # a monologue without pauses is handed to enrichment in pieces of about this length
# A caption's speaker label may be revised once, while the diarizer's evidence is still growing; past this much
# audio after the caption, its live label stands (the end-of-session relabelling is separate and final).
SPEAKER_REVISION_WINDOW_S = 30.0
_EOS = object()
ENRICHMENT_QUEUE = 1000  # finals + utterances the enrichment stage may be behind before a channel waits for it


@dataclass(frozen=True)
class Utterance:
    """The finals of one channel between two VAD pauses: what classifiers and escalation look at."""

    channel: int
    speaker: str
    segments: tuple[TranscriptEvent, ...]

    @property
    def text(self) -> str:
        from intelligence.captions import plain_text

        return plain_text([{"start_s": s.start_s, "text": s.text} for s in self.segments])

    @property
    def start_s(self) -> float:
        return self.segments[0].start_s

    @property
    def end_s(self) -> float:
        return self.segments[-1].end_s

    @property
    def segment_id(self) -> str:
        """The utterance is identified by its last segment (annotations attach there)."""
        return self.segments[-1].segment_id

    @property
    def language(self) -> str:
        return self.segments[-1].language

    def to_event(self) -> TranscriptEvent:
        """The utterance as one final transcript event (id of its last segment, all its words)."""
        last = self.segments[-1]
        return TranscriptEvent(
            session_id=last.session_id, kind="final", segment_id=last.segment_id, channel=self.channel,
            speaker=self.speaker, start_s=self.start_s, end_s=self.end_s, text=self.text,
            words=tuple(w for s in self.segments for w in s.words), language=last.language, model=last.model,
            emitted_at=last.emitted_at, media_clock_s=last.media_clock_s,
        )

    def to_dict(self) -> dict[str, Any]:
        d = self.to_event().to_dict()
        d["type"] = "utterance"
        d["segment_ids"] = [s.segment_id for s in self.segments]
        return d


class StageContext:
    """What an enrichment stage sees of its session and may do to it, and nothing else: the session's id, config,
    metadata and durable events so far (read-only), a span of a channel's recent audio; and its outbox: publish
    an event, rewrite a published one (redaction), mute a span of the recording, count an error. A stage never
    holds the session itself."""

    def __init__(self, session: LiveSession) -> None:
        self._session = session
        self.session_id = session.session_id
        self.config = session.config
        self.history: Sequence[dict[str, Any]] = _ReadOnlyList(session.history_ref)

    @property
    def metadata(self) -> Mapping[str, Any]:
        return MappingProxyType(self._session.metadata)

    def audio_span(self, channel: int, start_s: float, end_s: float) -> np.ndarray:
        """The channel's 16 kHz audio between two session times, as far as the last 60 s still hold it."""
        return self._session.recent_audio[channel].span(start_s, end_s)

    async def publish(self, event: SessionEvent | dict[str, Any]) -> None:
        await self._session.emit(event)

    async def rewrite(self, event: dict[str, Any]) -> None:
        await self._session.rewrite_event(event)

    def mute(self, start_s: float, end_s: float) -> None:
        """Silence a span of the stored recording (spoken card data); nothing when audio is not kept."""
        if self._session.recorder is not None:
            self._session.recorder.mute(start_s, end_s)

    def count_error(self) -> None:
        self._session.stats.enrichment_errors += 1


class _ReadOnlyList(Sequence):
    """A live, read-only view of a list (the session's history grows; a stage reads it, never edits it)."""

    def __init__(self, ref: Callable[[], list[dict[str, Any]]]) -> None:
        self._ref = ref

    def __getitem__(self, i):  # type: ignore[override]
        return self._ref()[i]

    def __len__(self) -> int:
        return len(self._ref())


class Enricher(Protocol):
    """A per-session stage that reacts to captions (classifiers, compliance, alerts, minutes).

    Called in caption order from the session's enrichment task (never from a channel's decode task, so a slow
    classifier delays no caption), with the session's `StageContext`; must not block the loop (model work goes
    to executors)."""

    async def on_final(self, ctx: StageContext, event: TranscriptEvent) -> None: ...
    async def on_utterance(self, ctx: StageContext, utterance: Utterance) -> None: ...
    async def finish(self, ctx: StageContext) -> None: ...


EnricherFactory = Callable[[StageContext], Enricher]


@dataclass
class SessionStats:
    audio_s: list[float] = field(default_factory=list)
    audio_dropped_s: float = 0.0
    finals: int = 0
    partials: int = 0
    decodes: int = 0
    discarded_hypotheses: int = 0
    echoes_dropped: int = 0
    enrichment_errors: int = 0
    enrichment_waits: int = 0  # times a channel waited for the enrichment stage (it was ENRICHMENT_QUEUE behind)


class LiveSession:
    """One call or meeting. Push audio per channel; subscribe to events; close when it ends."""

    def __init__(
        self,
        manager: SessionManager,
        config: SessionConfig,
        session_id: str,
        *,
        overflow: Overflow,
        paced: bool,
        denoiser_factory: Callable[[], Any] | None,
        paced_decode_s: float | None = None,
        resume: ResumeState | None = None,
    ) -> None:
        self.manager = manager
        self.config = config
        self.session_id = session_id
        self.metadata: dict[str, Any] = dict(config.metadata)
        self.overflow = overflow
        self.paced = paced
        # Replays normally advance their simulated clock by each decode's measured compute time; a fixed value
        # makes the transcript independent of machine load (reproducible audits and tests).
        self.paced_decode_s = paced_decode_s
        self.bus = SessionBus()
        self.stats = SessionStats(audio_s=[0.0] * config.num_channels)
        # per channel, where its last final ends: the audio a worker taking the session over would skip
        self.committed_s = [resume.committed_s.get(ch, 0.0) if resume else 0.0 for ch in range(config.num_channels)]
        # durable events, for late subscribers (a session taken over from another worker starts with its events)
        self.history: list[dict[str, Any]] = list(resume.history) if resume else []
        self._seq = resume.next_seq if resume else 0
        self.resumed = resume is not None
        self._closed = False
        self._closing: asyncio.Task | None = None
        self.end_reason: str | None = None
        language = None if config.language == "auto" else config.language
        from pipelines.vocabulary import join_terms, vocabulary_terms

        terms = vocabulary_terms(manager.vocabulary, manager.packaged_vocabulary, config.vocabulary)
        vocabularies = {lang: join_terms(lang, t) for lang, t in terms.items()} if manager.vocabulary_prompt else {}
        # Mandarin captions that sound like a domain term but are not written as one get the term (see
        # intelligence/zh_correct.py); the words keep what was decoded
        self._corrector = None
        if manager.phonetic_correction and terms["zh"]:
            from intelligence.zh_correct import corrector_for

            self._corrector = corrector_for(tuple(terms["zh"]))
        self._homophones = manager.homophone_correction  # its model is built on the first Mandarin caption
        self.transcribers = [
            ChannelTranscriber(
                session_id=session_id, channel=i, speaker=name, input_rate_hz=config.sample_rate_hz,
                language=language, params=manager.streaming,
                denoiser=denoiser_factory() if denoiser_factory else None,
                vocabularies=vocabularies,
            )
            for i, name in enumerate(config.channel_names)
        ]
        if resume is not None:
            for ct in self.transcribers:
                ct.resume_at(resume.committed_s.get(ct.channel, 0.0), resume.segment_numbers.get(ct.channel, 0),
                             resume.languages.get(ct.channel))
                self.stats.audio_s[ct.channel] = resume.committed_s.get(ct.channel, 0.0)
        self._queues: list[asyncio.Queue] = [asyncio.Queue(maxsize=manager.ingress_queue_chunks)
                                             for _ in config.channel_names]
        self.recorder: CallRecorder | None = None
        self._recording_error: str | None = None  # reported once as an error event; captions go on
        self._recording_reported = False
        if manager.audio_dir:
            try:
                self.recorder = CallRecorder(manager.audio_dir, session_id, config.num_channels)
            except OSError as exc:  # a full or missing volume costs the recording, never the call
                log.error("session %s: audio not recorded (%s)", session_id, exc.strerror or exc)
                self._recording_error = str(exc.strerror or exc)
        self.audio_path: Path | None = None
        self.recent_audio = [AudioRing(60.0) for _ in config.channel_names]
        self._open_utterance: list[list[TranscriptEvent]] = [[] for _ in config.channel_names]
        if resume is not None:  # finals already captioned whose utterance had not ended
            for ch, finals in resume.open_finals.items():
                if 0 <= ch < config.num_channels:
                    self._open_utterance[ch] = [TranscriptEvent.from_dict(f) for f in finals]
        self.diarizer: LiveDiarizer | None = (
            LiveDiarizer(manager.speaker_encoder, max_speakers=config.max_speakers) if config.diarized else None
        )
        self._unrevised: dict[str, tuple[float, float, str]] = {}  # finals whose speaker may still be revised
        self.stage_context = StageContext(self)
        self.enrichers: list[Enricher] = [f(self.stage_context) for f in manager.enricher_factories]
        # the enrichment stage's input (see _to_enrichment): bounded; a full queue holds the channel back
        self._enrich_q: asyncio.Queue = asyncio.Queue(maxsize=ENRICHMENT_QUEUE)
        self._enrich_task: asyncio.Task | None = None
        self._tasks = [asyncio.create_task(self._channel_loop(i), name=f"{session_id}-ch{i}")
                       for i in range(config.num_channels)]
        self.started_at = time.time()

    # -- input ---------------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def push_pcm(self, channel: int, pcm_s16le: bytes, sample_rate_hz: int | None = None) -> None:
        """Queue int16 LE mono PCM for one channel (at the session's sample rate)."""
        if self._closed:
            raise SessionClosed(self.session_id)
        self.config.check_pcm(channel, pcm_s16le, sample_rate_hz)
        if not pcm_s16le:
            return
        q = self._queues[channel]
        if self.overflow == "drop_oldest":
            while q.full():
                dropped = q.get_nowait()
                if dropped is not _EOS:
                    self.stats.audio_dropped_s += len(dropped) / 2 / self.config.sample_rate_hz
            q.put_nowait(pcm_s16le)
        else:
            await q.put(pcm_s16le)
        self.stats.audio_s[channel] += len(pcm_s16le) / 2 / self.config.sample_rate_hz

    async def push_interleaved(self, pcm_s16le: bytes) -> None:
        """Queue interleaved multi-channel int16 PCM (frame = one sample per channel)."""
        n = self.config.num_channels
        if len(pcm_s16le) % (2 * n):
            raise BadAudio(f"interleaved PCM must be a whole number of {n}-channel frames")
        if n == 1:
            await self.push_pcm(0, pcm_s16le)
            return
        frames = np.frombuffer(pcm_s16le, dtype="<i2").reshape(-1, n)
        for ch in range(n):
            await self.push_pcm(ch, np.ascontiguousarray(frames[:, ch]).tobytes())

    async def record_event(self, event_type: str, data: dict[str, Any]) -> None:
        """A durable non-caption event (DTMF, tap stats, marks): persisted and streamed."""
        await self.emit(TapEvent(event_type, data))

    def update_metadata(self, data: dict[str, Any]) -> None:
        self.metadata.update(data)
        self.manager.sink.update_session(self.session_id, metadata=dict(self.metadata))

    def history_ref(self) -> list[dict[str, Any]]:
        """The current history list (rewrite_event replaces entries, never the list)."""
        return self.history

    # -- output --------------------------------------------------------------------------------------------
    def subscribe(self) -> tuple[list[dict[str, Any]], Subscriber]:
        """History so far plus a live subscription (history first, then live, no gap)."""
        return list(self.history), self.bus.subscribe()

    async def emit(self, event: SessionEvent | dict[str, Any]) -> None:
        """Publish an event; durable ones are sequenced, kept and persisted. Typed events become JSON here."""
        event = dict(to_json(event))
        durable = not (event.get("type") == "transcript" and event.get("kind") == "partial")
        event.setdefault("session_id", self.session_id)
        # wall-clock publish time (captions carry their decode time already): subscribers measure delivery
        event.setdefault("emitted_at", time.time())
        if durable:
            event["seq"] = self._seq
            self._seq += 1
            self.history.append(event)
        # history and live fan-out change together (no await in between), so a new subscriber sees no gap
        # and no duplicate
        self.bus.publish(event)
        if durable:
            await self.manager.sink.put(self.session_id, event["seq"], event)
        if self.manager.broker is not None:  # subscribers on other gateways (bounded outbox, never unbounded)
            await self.manager.broker.publish(self.session_id, event["seq"] if durable else None, event)

    async def rewrite_event(self, event: dict[str, Any]) -> None:
        """Replace a durable event already published (redaction of card data), by its `seq`: the history gets a
        new object (what subscribers already hold is not edited under them) and the sink rewrites the stored
        one in order with the writes queued before it."""
        for i in range(len(self.history) - 1, -1, -1):
            if self.history[i].get("seq") == event["seq"]:
                self.history[i] = event
                break
        else:
            raise KeyError(f"no event {event['seq']} in session {self.session_id}")
        await self.manager.sink.replace(self.session_id, event["seq"], event)

    async def _emit_transcripts(self, events: list[TranscriptEvent], utterance_end: bool = False,
                                channel: int | None = None) -> None:
        for ev in events:
            if self.diarizer is not None:
                ev = replace(ev, speaker=self.diarizer.speaker_at(ev.start_s, ev.end_s))
            if ev.kind == "final":
                self.stats.finals += 1
                self.committed_s[ev.channel] = max(self.committed_s[ev.channel], ev.end_s)
            else:
                self.stats.partials += 1
            if ev.kind == "final":
                pending = self._open_utterance[ev.channel]
                if pending and pending[-1].speaker != ev.speaker:  # a new voice starts a new utterance
                    await self._close_utterance(ev.channel)
            corrections = []
            if ev.language == "zh" and (self._corrector is not None or self._homophones
                                        or self.manager.written_numbers):
                text, corrections = await asyncio.to_thread(self._correct_mandarin, ev.text)
                ev = replace(ev, text=text)
            out = ev.to_dict()
            if corrections:
                out["corrections"] = [{"original": c.original, "term": c.term, "start": c.start, "end": c.end,
                                       "kind": c.kind} for c in corrections]
            await self.emit(out)
            if ev.kind == "final":
                if self.diarizer is not None:
                    await self._revise_speakers(ev.end_s)
                    self._unrevised[ev.segment_id] = (ev.start_s, ev.end_s, ev.speaker)
                self._open_utterance[ev.channel].append(ev)
                await self._to_enrichment(("final", ev))
        if channel is not None:
            pending = self._open_utterance[channel]
            long_enough = pending and pending[-1].end_s - pending[0].start_s >= MAX_UTTERANCE_S
            if pending and (utterance_end or long_enough):
                await self._close_utterance(channel)

    def _correct_mandarin(self, text: str) -> tuple[str, list]:
        """Domain-term then homophone correction of one Mandarin caption (worker thread: the first call builds
        the homophone model, a few seconds)."""
        from intelligence.zh_homophones import HomophoneCorrector, correct_mandarin, homophone_model

        homophones = HomophoneCorrector(homophone_model(self.manager.homophone_params)) if self._homophones else None
        return correct_mandarin(text, self._corrector, homophones, self.manager.written_numbers)

    async def _close_utterance(self, channel: int) -> None:
        pending = self._open_utterance[channel]
        if not pending:
            return
        utt = Utterance(channel, pending[0].speaker, tuple(pending))
        self._open_utterance[channel] = []
        await self.emit(utt.to_dict())
        await self._to_enrichment(("utterance", utt))

    async def _to_enrichment(self, item: tuple[str, Any]) -> None:
        """Hand a final or an utterance to the enrichment stage. Decoding goes on meanwhile; only when the stage
        is `ENRICHMENT_QUEUE` items behind (minutes of speech) does the channel wait for it (counted): findings
        are never dropped to keep captions flowing."""
        if not self.enrichers:
            return
        if self._enrich_task is None:
            self._enrich_task = asyncio.create_task(self._enrichment_loop(), name=f"{self.session_id}-enrich")
        if self._enrich_q.full():
            self.stats.enrichment_waits += 1
        await self._enrich_q.put(item)

    async def _enrichment_loop(self) -> None:
        """The session's enrichment stage: finals and utterances in the order they were captioned, one at a time
        (enrichers keep per-call state), off the channels' decode tasks."""
        while True:
            item = await self._enrich_q.get()
            try:
                if item is _EOS:
                    return
                kind, payload = item
                for enricher in self.enrichers:
                    if kind == "final":
                        await self._safely(enricher.on_final(self.stage_context, payload))
                    else:
                        await self._safely(enricher.on_utterance(self.stage_context, payload))
            finally:
                self._enrich_q.task_done()

    async def _revise_speakers(self, now_s: float) -> None:
        """Revise, once, the speaker of earlier finals whose label the growing evidence now contradicts."""
        assert self.diarizer is not None
        for segment_id, (start_s, end_s, speaker) in list(self._unrevised.items()):
            label = self.diarizer.speaker_at(start_s, end_s)
            if label != speaker:
                del self._unrevised[segment_id]
                await self.emit(SpeakerUpdate(segment_id, start_s, end_s, label, speaker))
            elif now_s - end_s > SPEAKER_REVISION_WINDOW_S:
                del self._unrevised[segment_id]

    async def _finish_diarization(self) -> None:
        """Cluster the whole session once more and publish its speaker turns and the final label of every
        caption whose label changes (the consistent relabelling after the call)."""
        if self.diarizer is None:
            return
        turns = await asyncio.to_thread(self.diarizer.finish)
        from intelligence.diarization import majority_speaker
        from intelligence.speakers import current_speakers

        shown = current_speakers(self.history)
        relabel: dict[str, str] = {}
        for ev in self.history:
            if ev.get("type") == "transcript" and ev.get("kind") == "final":
                label = majority_speaker(turns, ev["start_s"], ev["end_s"])
                if label is not None and label != shown.get(ev["segment_id"]):
                    relabel[ev["segment_id"]] = label
        await self.emit(DiarizationResult(
            # silence still has one (silent) speaker: consumers never divide by zero speakers
            speakers=sorted({t.speaker for t in turns}, key=lambda x: int(x[1:])) or ["S1"],
            turns=[{"start_s": t.start_s, "end_s": t.end_s, "speaker": t.speaker} for t in turns],
            relabel=relabel, windows=self.diarizer.windows_embedded))

    async def _safely(self, coro) -> None:
        try:
            await coro
        except Exception:  # enrichment degrades the session, never drops the call
            self.stats.enrichment_errors += 1
            log.exception("enrichment failed (session %s)", self.session_id)

    # -- processing ----------------------------------------------------------------------------------------
    async def _channel_loop(self, channel: int) -> None:
        ct = self.transcribers[channel]
        q = self._queues[channel]
        try:
            if self.paced:
                await self._paced_loop(ct, q)
            else:
                await self._live_loop(ct, q)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("channel %d of session %s failed", channel, self.session_id)
            await self.emit(SessionError("channel_failed", channel=channel))
            # keep taking (and counting) the channel's audio: a blocked producer would hang the whole session
            # (close() sets _closed before it queues the end marker, which this loop may already have taken)
            while not (self._closed and q.empty()):
                item = await q.get()
                if item is _EOS:
                    break
                self.stats.audio_dropped_s += len(item) / 2 / self.config.sample_rate_hz

    async def _drain(self, q: asyncio.Queue) -> tuple[bytes, bool]:
        first = await q.get()
        chunks, eos = [], first is _EOS
        if not eos:
            chunks.append(first)
        while not eos and not q.empty():
            item = q.get_nowait()
            if item is _EOS:
                eos = True
            else:
                chunks.append(item)
        return b"".join(chunks), eos

    async def _report_recording(self) -> None:
        """Once, tell subscribers and the store that the call's audio stopped being recorded (disk full...)."""
        if self.recorder is not None and self.recorder.failed is not None and self._recording_error is None:
            self._recording_error = str(self.recorder.failed.strerror or self.recorder.failed)
            log.error("session %s: recording stopped (%s); captions continue", self.session_id,
                      self._recording_error)
        if self._recording_error and not self._recording_reported:
            self._recording_reported = True
            await self.emit(SessionError("recording_failed",
                                         f"call audio is no longer recorded: {self._recording_error}"))

    def _feed(self, ct: ChannelTranscriber, data: bytes) -> None:
        samples = ct.feed(data)
        self.recent_audio[ct.channel].write(samples)
        if self.diarizer is not None:
            self.diarizer.feed(samples)
        if self.recorder is not None:
            self.recorder.write(ct.channel, samples)

    async def _decode_once(self, ct: ChannelTranscriber) -> tuple[DecodeJob, Any] | None:
        def factory():
            job = ct.take_job()
            if job is None:
                return None
            return job, (replace(job.request, sheddable=False) if self.paced else job.request)

        final = bool(ct._final_due)
        return await self.manager.executor.submit(factory, final=final)  # type: ignore[return-value]

    async def _live_loop(self, ct: ChannelTranscriber, q: asyncio.Queue) -> None:
        decoder: asyncio.Task | None = None

        async def decode_until_idle() -> None:
            while ct.has_work():
                res = await self._decode_once(ct)
                if res is None:
                    continue
                job, hyp = res
                await self._emit_transcripts(ct.apply(job, hyp), job.final, ct.channel)

        while True:
            data, eos = await self._drain(q)
            if data:
                await asyncio.to_thread(self._feed, ct, data)
                await self._report_recording()
            if eos:
                ct.end_of_stream()
            if (decoder is None or decoder.done()) and ct.has_work():
                if decoder is not None:
                    decoder.result()  # surface a failure
                decoder = asyncio.create_task(decode_until_idle())
            if eos:
                break
        if decoder is not None:
            await decoder
        await self._flush_channel(ct)

    async def _paced_loop(self, ct: ChannelTranscriber, q: asyncio.Queue) -> None:
        decoder_free_s = 0.0  # simulated time at which the (simulated) decoder finishes its current job
        # Feed in exact 100 ms steps counted from the stream's start, whatever sizes the queue hands over, so
        # decodes are issued at the same simulated moments on every run (reproducible transcripts under load).
        step = max(2, int(self.config.sample_rate_hz * 0.1) * 2)
        pending = b""
        while True:
            data, eos = await self._drain(q)
            pending += data
            offset = 0
            while len(pending) - offset >= step or (eos and offset < len(pending)):
                await asyncio.to_thread(self._feed, ct, pending[offset : offset + step])
                await self._report_recording()
                offset += step
                decoder_free_s = await self._paced_decodes(ct, decoder_free_s)
            pending = pending[offset:]
            if eos:
                ct.end_of_stream()
                decoder_free_s = await self._paced_decodes(ct, decoder_free_s, draining=True)
                break
        await self._flush_channel(ct)

    async def _paced_decodes(self, ct: ChannelTranscriber, free_s: float, draining: bool = False) -> float:
        while ct.has_work() and (draining or free_s <= ct.received_s):
            issued_s = max(free_s, ct.received_s)
            res = await self._decode_once(ct)
            if res is None:
                break
            job, hyp = res
            free_s = issued_s + (hyp.decode_s if self.paced_decode_s is None else self.paced_decode_s)
            await self._emit_transcripts(ct.apply(job, hyp, media_clock_s=free_s), job.final, ct.channel)
        return free_s

    async def _flush_channel(self, ct: ChannelTranscriber) -> None:
        while ct.has_work():
            res = await self._decode_once(ct)
            if res is None:
                break
            job, hyp = res
            await self._emit_transcripts(ct.apply(job, hyp), job.final, ct.channel)
        await self._emit_transcripts([], True, ct.channel)  # close a trailing open utterance

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def close(self, reason: str = "normal") -> None:
        """End the session: decode what is buffered, finish enrichers, persist. Idempotent."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(reason))
        await asyncio.shield(self._closing)

    async def _close(self, reason: str) -> None:
        self._closed = True
        self.end_reason = reason
        for q in self._queues:
            await q.put(_EOS)
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                log.error("session %s channel task ended with %r", self.session_id, r)
        try:
            await self._finish_diarization()
        except Exception:  # the captions stand with their live labels
            log.exception("diarization failed at the end of session %s", self.session_id)
        if self._enrich_task is not None:  # let enrichment catch up with the last captions before it finishes
            await self._enrich_q.put(_EOS)
            await asyncio.gather(self._enrich_task, return_exceptions=True)
        for enricher in self.enrichers:
            await self._safely(enricher.finish(self.stage_context))
        for ct in self.transcribers:
            self.stats.decodes += ct.decodes
            self.stats.discarded_hypotheses += ct.discarded_hypotheses
            self.stats.echoes_dropped += ct.echoes_dropped
        if self.recorder is not None:
            try:
                self.audio_path = await asyncio.to_thread(self.recorder.finish)
            except Exception:
                log.exception("could not finalise stored audio (session %s)", self.session_id)
        await self.emit(SessionEnded(reason, max(self.stats.audio_s, default=0.0)))
        self.bus.close()
        self.manager.sink.update_session(
            self.session_id, status="ended", end_reason=reason, ended_at=time.time(),
            audio_s=max(self.stats.audio_s, default=0.0), stats=self._stats_dict(),
        )
        await self.manager.sink.flush()
        self.manager._release(self)

    def _stats_dict(self) -> dict[str, Any]:
        s = self.stats
        return {"audio_s": s.audio_s, "audio_dropped_s": s.audio_dropped_s, "finals": s.finals,
                "partials": s.partials, "decodes": s.decodes, "discarded_hypotheses": s.discarded_hypotheses,
                "echoes_dropped": s.echoes_dropped,
                "enrichment_errors": s.enrichment_errors, "enrichment_waits": s.enrichment_waits}

    async def wait_closed(self) -> None:
        if self._closing is not None:
            await asyncio.shield(self._closing)


class SessionManager:
    """Admits, tracks and ends live sessions; shares the model executor among them."""

    def __init__(
        self,
        *,
        executor_factory: Callable[[], AsrExecutor],
        sink: PersistenceSink,
        streaming: StreamingParams | None = None,
        max_channels: int = 8,
        ingress_queue_chunks: int = 500,
        denoiser_factory: Callable[[], Any] | None = None,
        enricher_factories: list[EnricherFactory] | None = None,
        audio_dir: Path | None = None,
        speaker_encoder_factory: Callable[[], Any] | None = None,
        vocabulary: str = "",
        packaged_vocabulary: bool = False,
        phonetic_correction: bool = False,
        vocabulary_prompt: bool = False,
        homophone_correction: bool = False,
        written_numbers: bool = False,
        broker: Any = None,
    ) -> None:
        self._executor_factory = executor_factory
        self._speaker_encoder_factory = speaker_encoder_factory
        self._speaker_encoder: Any = None
        self._executor: AsrExecutor | None = None
        self.sink = sink
        self.streaming = streaming or StreamingParams()
        self.max_channels = max_channels
        self.ingress_queue_chunks = ingress_queue_chunks
        self.denoiser_factory = denoiser_factory
        self.enricher_factories = list(enricher_factories or [])
        self.audio_dir = audio_dir
        self.vocabulary = vocabulary  # the deployment's decoder vocabulary (comma-separated terms)
        self.packaged_vocabulary = packaged_vocabulary  # add the packaged domain lexicon (models/lexicon)
        self.phonetic_correction = phonetic_correction  # Mandarin sound-alikes of vocabulary terms -> the terms
        self.vocabulary_prompt = vocabulary_prompt  # also put the terms in the decoder's prompt
        # Mandarin homophones re-chosen by word frequency (intelligence/zh_homophones.py)
        self.homophone_correction = homophone_correction
        # its language model weighted towards the domain's words (the packaged glossary, the deployment's terms)
        self.homophone_params = HomophoneParams(
            domain_terms=domain_glossary("zh", vocabulary, packaged_vocabulary)) if homophone_correction else None
        self._homophones_warm: asyncio.Future | None = None
        self.written_numbers = written_numbers  # Mandarin numbers in captions as digits (intelligence/zh_numbers.py)
        # pipelines.broker.EventBroker shared by the gateways, or None (this process's subscribers only)
        self.broker = broker
        self.sessions: dict[str, LiveSession] = {}
        self.refused = 0

    @property
    def executor(self) -> AsrExecutor:
        if self._executor is None:
            self._executor = self._executor_factory()
        return self._executor

    @property
    def speaker_encoder(self) -> Any:
        """The shared speaker-embedding model (loaded by `open_session` when a session diarizes)."""
        if self._speaker_encoder is None:
            self._speaker_encoder = self._make_speaker_encoder()
        return self._speaker_encoder

    def _make_speaker_encoder(self) -> Any:
        if self._speaker_encoder_factory is not None:
            return self._speaker_encoder_factory()
        from models.speaker import SpeakerEncoder

        return SpeakerEncoder()

    @property
    def channels_in_use(self) -> int:
        return sum(s.config.num_channels for s in self.sessions.values())

    async def warm_up(self) -> float:
        """Load the ASR model and run one short decode in worker threads; returns the seconds it took.

        CTranslate2 allocates its buffers on the first decode, so loading alone leaves the first call slow.
        """
        from models.asr import SAMPLE_RATE_HZ, AsrRequest

        t0 = time.perf_counter()
        executor = await self._loaded_executor()
        silence = np.zeros(SAMPLE_RATE_HZ, dtype=np.float32)
        request = AsrRequest(audio=silence, language="en", complete=True, sheddable=False)
        await executor.submit(lambda: (None, request), final=True)
        return time.perf_counter() - t0

    async def _loaded_executor(self) -> AsrExecutor:
        if self._executor is None:
            # loading the model takes seconds: do it in a thread, not on the event loop
            self._executor = await asyncio.to_thread(self._executor_factory)
        return self._executor

    async def open_session(self, config: SessionConfig, *, overflow: Overflow = "block",
                           paced: bool = False, paced_decode_s: float | None = None,
                           resume: ResumeState | None = None, row_exists: bool = False) -> LiveSession:
        """Admit a session or raise `CapacityExceeded`. `resume`: the session was started by a worker that
        died; carry on from its published events (pipelines/worker.py). `row_exists`: a gateway already stored the
        session's record."""
        over = self.channels_in_use + config.num_channels > self.max_channels
        if over and resume is not None:  # a call under way that lost its worker: taken even over budget
            log.warning("resuming session %s over the channel budget (%d of %d in use)", config.session_id,
                        self.channels_in_use, self.max_channels)
        elif over:
            self.refused += 1
            raise CapacityExceeded(
                f"{self.channels_in_use} of {self.max_channels} channels busy; {config.num_channels} requested"
            )
        session_id = config.session_id or uuid.uuid4().hex
        if session_id in self.sessions:
            raise ValueError(f"session {session_id} is already live")
        await self._loaded_executor()
        if config.diarized and self._speaker_encoder is None:
            self._speaker_encoder = await asyncio.to_thread(self._make_speaker_encoder)
        if resume is None and not row_exists:
            await self.sink.create_session(session_id, config, self.executor.decoder.model_name)
        if self.homophone_correction and config.language == "zh" and self._homophones_warm is None:
            # build the homophone model (seconds) while the call's first words are decoded, not after them
            from intelligence.zh_homophones import homophone_model

            self._homophones_warm = asyncio.ensure_future(asyncio.to_thread(homophone_model, self.homophone_params))
        session = LiveSession(self, config, session_id, overflow=overflow, paced=paced,
                              denoiser_factory=self.denoiser_factory, paced_decode_s=paced_decode_s, resume=resume)
        self.sessions[session_id] = session
        if resume is not None:
            for enricher in session.enrichers:  # rebuild their state from what was said before the takeover
                on_resume = getattr(enricher, "on_resume", None)
                if on_resume is not None:
                    await session._safely(on_resume(session.stage_context))
        return session

    def get(self, session_id: str) -> LiveSession | None:
        return self.sessions.get(session_id)

    def _release(self, session: LiveSession) -> None:
        self.sessions.pop(session.session_id, None)

    async def close_all(self, reason: str = "shutdown") -> None:
        for s in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await s.close(reason)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.close()

