"""One audio channel's streaming recogniser state: resample -> denoise -> VAD -> utterance buffer -> commits.

`ChannelTranscriber` is synchronous and holds no threads; the session drives it. `feed` (cheap DSP) and
`take_job` may be called from worker threads, `apply` from anywhere: a lock guards the state. It never calls the
ASR model itself: `take_job` returns an `AsrRequest` snapshot of the freshest audio, and `apply` turns the
model's hypothesis into caption events.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from intelligence.commit import HypothesisQuality, LocalAgreement, cut_repetition_loop, is_hallucination
from intelligence.types import TranscriptEvent, Word
from models.asr import SAMPLE_RATE_HZ, AsrHypothesis, AsrRequest, join_words
from models.vad import StreamingVad, VadParams
from pipelines.resample import Int16ResampleStream


class Denoiser(Protocol):
    def process(self, pcm_s16le: bytes) -> bytes: ...


COMMIT_RULE_FIELDS = frozenset({"min_right_context_s", "unsure_probability", "unsure_right_context_s",
                                "sure_probability", "sure_right_context_s", "settle_right_context_s",
                                "agree_gap_s", "doubt_probability", "step_s",
                                "partial_beam_size"})


@dataclass(frozen=True)
class StreamingParams:
    """Decode scheduling. `step_s`: least new audio between two decodes of an utterance (the executor may make
    it longer under load). `max_buffer_s`: longest audio one decode sees before the committed head is trimmed.

    These defaults are the plain policy (each refinement off), for experiments and tests; the service's
    defaults, each with the measurement behind it, live in one place: `HarkenSettings` (pipelines/settings.py),
    turned into these by `pipelines.runtime.streaming_params`."""

    step_s: float = 0.6
    min_decode_s: float = 0.4
    max_buffer_s: float = 12.0
    force_commit_lag_s: float = 4.0
    # A word is committed only once a decode has heard this much audio after it (a word cut by the buffer's end
    # is often misheard the same way twice, and LocalAgreement alone would commit it)
    min_right_context_s: float = 0.0
    min_commit_audio_s: float = 0.0  # no commit before the utterance's buffer holds this much audio
    # A word either agreeing decode was unsure of (probability under unsure_probability) needs this much audio
    # after it before it commits
    unsure_probability: float = 0.0
    unsure_right_context_s: float = 1.0
    # A word one decode is this sure of, heard with sure_right_context_s of audio after it, commits at once
    sure_probability: float = 1.1
    sure_right_context_s: float = 1.0
    # A word heard with this much audio after it commits as the latest decode has it, agreed or not (0: off)
    settle_right_context_s: float = 0.0
    # Agreement is with the latest decode whose audio ended at least this much earlier (0: the previous decode):
    # lets decodes come more often than agreement can be trusted
    agree_gap_s: float = 0.0
    # A word this decode gives a probability under doubt_probability commits only when settled (or at the end)
    doubt_probability: float = 0.0
    # Beam width of the decodes inside an utterance (0: the backend's); its final decode keeps the final beam
    partial_beam_size: int = 0
    prefix_committed: bool = False  # measured: WER 0.205 vs 0.181 on 15 tel clips, no speed gain
    # An utterance that starts at most this long after the previous one ended also decodes this much audio before
    # its start (words already committed there are re-decoded as context only and dropped by time)
    left_context_s: float = 0.0
    # A final decode whose last word ends this long before its audio does gets its tail decoded again (0: off)
    tail_redecode_s: float = 0.0
    max_tail_redecodes: int = 3
    # A last word longer than this was stretched over audio Whisper did not transcribe (a final decode that stops
    # after a fragment of the previous sentence, 元 spread over five seconds): its tail counts as unheard
    stretched_word_s: float = 1.5
    # Keep the committed text of earlier utterances as the decoder's prompt (as an offline decode conditions on
    # the previous window), per language: {"zh"} = Mandarin only
    carry_prompt_languages: frozenset[str] = frozenset()
    vad: VadParams = VadParams()
    # Fields set per language (COMMIT_RULE_FIELDS: the commit rule's, the decode step and the partial decodes' beam),
    # e.g. {"en": {"sure_probability": 0.8, "step_s": 0.3}}: each was measured on one language's speech
    commit_by_language: dict[str, dict[str, float]] = field(default_factory=dict, hash=False)

    def for_language(self, language: str) -> StreamingParams:
        """These parameters with `language`'s commit-rule overrides applied."""
        overrides = self.commit_by_language.get(language)
        return replace(self, **overrides) if overrides else self

    def __post_init__(self) -> None:
        unknown = {k for o in self.commit_by_language.values() for k in o} - COMMIT_RULE_FIELDS
        if unknown:
            raise ValueError(f"commit_by_language: not commit-rule fields: {sorted(unknown)}; "
                             f"expected some of {sorted(COMMIT_RULE_FIELDS)}")


@dataclass(frozen=True)
class DecodeJob:
    """A snapshot handed to the ASR executor."""

    channel: int
    final: bool
    offset_s: float
    end_s: float
    request: AsrRequest
    tail_redecodes: int = 0  # how many times this utterance's unheard tail has already been decoded again


class ChannelTranscriber:
    """Streaming captions for one channel (one speaker or one mixed stream)."""

    def __init__(
        self,
        *,
        session_id: str,
        channel: int,
        speaker: str,
        input_rate_hz: int,
        language: str | None,
        params: StreamingParams,
        denoiser: Denoiser | None = None,
        vocabularies: dict[str, str] | None = None,
    ) -> None:
        self.session_id = session_id
        # domain terms steering every decode, per language (see AsrRequest.vocabulary, pipelines/vocabulary.py)
        self.vocabularies = vocabularies or {}
        self.channel = channel
        self.speaker = speaker
        self.params = params
        self.language = language  # None = detect (en/zh), then locked
        self._language_locked = language is not None
        self._lock = threading.RLock()
        self._resampler = (
            Int16ResampleStream(input_rate_hz, SAMPLE_RATE_HZ)
            if input_rate_hz != SAMPLE_RATE_HZ
            else None
        )
        self._denoiser = denoiser
        # a denoiser delays its output by a fixed number of samples: shift word times back by as much
        self._shift_s = float(getattr(denoiser, "latency_samples", 0)) / SAMPLE_RATE_HZ if denoiser else 0.0
        self._vad = StreamingVad(params.vad)
        self._audio = np.zeros(0, dtype=np.int16)
        self._audio_base = 0  # sample index of self._audio[0]
        self._received = 0  # total 16 kHz samples received
        self._utt_start: int | None = None  # decode buffer start (sample), None when idle
        # (buffer start, end, speech start) of utterances awaiting a final decode
        # (buffer start, end, speech start, tail re-decodes so far) of utterances awaiting a final decode
        self._final_due: list[tuple[int, int, int, int]] = []
        self._inflight_final_start: int | None = None  # keep its audio until its result is applied
        self._utt_speech_start = 0  # where the current utterance's own audio starts (after any left context)
        self._last_utt: tuple[int, int] | None = None  # (buffer start, end) of the last ended utterance
        self._left_context = int(params.left_context_s * SAMPLE_RATE_HZ)  # samples
        self._last_decode_end = 0
        self._policy = LocalAgreement()
        self._prompt_words: list[Word] = []  # committed words of the current utterance
        self._rules: dict[str, StreamingParams] = {}
        self._seg_counter = itertools.count(1)
        self._pending_segment = self._new_segment_id()
        self._partial_shown = False
        self.ended = False
        self.decodes = 0
        self.discarded_hypotheses = 0

    # -- ingest --------------------------------------------------------------------------------------------
    def _new_segment_id(self) -> str:
        return f"c{self.channel}-{next(self._seg_counter):05d}"

    def _rule(self, language: str) -> StreamingParams:
        """The parameters with `language`'s overrides (cached: the scheduler asks on every audio chunk)."""
        rule = self._rules.get(language)
        if rule is None:
            rule = self._rules[language] = self.params.for_language(language)
        return rule

    def resume_at(self, start_s: float, last_segment: int = 0, language: str | None = None) -> None:
        """Start this channel's clock at `start_s` instead of 0: a session taken over by another worker resumes
        after its committed captions, and its words, segment ids and VAD positions continue from there."""
        sample = int(round(start_s * SAMPLE_RATE_HZ))
        with self._lock:
            self._received = self._audio_base = self._last_decode_end = sample
            self._vad.start_at(sample)
            self._seg_counter = itertools.count(last_segment + 1)
            self._pending_segment = self._new_segment_id()
            if language and not self._language_locked:
                self.language, self._language_locked = language, True

    @property
    def echoes_dropped(self) -> int:
        """Words the commit policy dropped as echoes of the phrase before them (see intelligence/commit.py)."""
        return self._policy.echoes_dropped

    @property
    def received_s(self) -> float:
        return self._received / SAMPLE_RATE_HZ

    def feed(self, pcm_s16le: bytes) -> np.ndarray:
        """Add raw PCM at the channel's input rate; returns the same audio at 16 kHz (for recording)."""
        samples = np.frombuffer(pcm_s16le, dtype="<i2")
        with self._lock:
            if self._resampler is not None:
                samples = self._resampler.resample_chunk(samples)
            self._ingest(samples)
            return samples

    def end_of_stream(self) -> None:
        """No more audio: close any open utterance so its final decode can run."""
        with self._lock:
            if self._resampler is not None:
                tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
                if len(tail):
                    self._ingest(tail)
            if self._denoiser is not None and hasattr(self._denoiser, "flush"):
                # the denoiser holds back its fixed delay: let the last few ms reach the recogniser
                held = np.frombuffer(self._denoiser.flush(), dtype="<i2")
                if len(held):
                    self._append(held)
            if self._utt_start is not None:
                self._final_due.append((self._utt_start, self._received, self._utt_speech_start, 0))
                self._utt_start = None
            self.ended = True

    def _ingest(self, samples: np.ndarray) -> None:
        if len(samples) == 0:
            return
        if self._denoiser is not None:
            samples = np.frombuffer(self._denoiser.process(samples.astype("<i2").tobytes()), dtype="<i2")
        self._append(samples)

    def _append(self, samples: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, samples.astype(np.int16, copy=False)])
        self._received += len(samples)
        preroll = int(self.params.vad.preroll_ms * SAMPLE_RATE_HZ / 1000)
        for ev in self._vad.feed(samples):
            if ev.kind == "start" and self._utt_start is None:
                self._utt_start = max(self._audio_base, ev.sample - preroll, self._last_decode_floor())
                self._utt_speech_start = self._utt_start
                context = self._left_context
                if context and self._last_utt is not None and ev.sample - self._last_utt[1] <= context:
                    # a short pause: reach back into the previous utterance (not before its start)
                    self._utt_start = max(self._audio_base, self._last_utt[0],
                                          min(self._utt_start, ev.sample - context))
            elif ev.kind == "end" and self._utt_start is not None:
                end = min(self._received, ev.sample + preroll // 2)
                self._final_due.append((self._utt_start, end, self._utt_speech_start, 0))
                self._last_utt = (self._utt_start, end)
                self._utt_start = None
        self._trim_audio(max(preroll, self._left_context))

    def _last_decode_floor(self) -> int:
        return self._final_due[-1][1] if self._final_due else 0

    def _trim_audio(self, preroll: int) -> None:
        keep_from = self._received - preroll
        if self._utt_start is not None:
            keep_from = min(keep_from, self._utt_start)
        if self._final_due:
            keep_from = min(keep_from, self._final_due[0][0])
        if self._inflight_final_start is not None:
            keep_from = min(keep_from, self._inflight_final_start)
        drop = keep_from - self._audio_base
        if drop > SAMPLE_RATE_HZ:  # trim in >= 1 s steps to keep copies rare
            self._audio = self._audio[drop:]
            self._audio_base = keep_from

    def _slice(self, start: int, end: int) -> np.ndarray:
        a = self._audio[start - self._audio_base : end - self._audio_base]
        return a.astype(np.float32) / 32768.0

    # -- scheduling ----------------------------------------------------------------------------------------
    def has_work(self) -> bool:
        with self._lock:
            if self._final_due:
                return True
            if self._utt_start is None:
                return False
            new_s = (self._received - max(self._last_decode_end, self._utt_start)) / SAMPLE_RATE_HZ
            have_s = (self._received - self._utt_start) / SAMPLE_RATE_HZ
            return new_s >= self._rule(self.language or "").step_s and have_s >= self.params.min_decode_s

    def take_job(self) -> DecodeJob | None:
        """Snapshot the freshest audio for a decode, or None if nothing is due."""
        with self._lock:
            if not self.has_work():
                return None
            if self._final_due:
                start, end, speech_start, redecodes = self._final_due.pop(0)
                self._inflight_final_start = start
                final = True
            else:
                assert self._utt_start is not None
                self._maybe_trim_buffer()
                start, end, speech_start = self._utt_start, self._received, self._utt_speech_start
                final, redecodes = False, 0
            self._last_decode_end = end
            # Prompt only with committed text that precedes the buffer: text inside the buffer would make
            # Whisper skip those words and squash their timestamps.
            start_s = start / SAMPLE_RATE_HZ
            before = [w.text.strip() for w in self._prompt_words if w.end_s <= start_s + 0.05]
            inside = [w.text.strip() for w in self._prompt_words if w.end_s > start_s + 0.05]
            sep = "" if self.language == "zh" else " "
            prompt = sep.join(before[-60:] if self.language == "zh" else before[-40:])
            prefix = sep.join(inside) if self.params.prefix_committed else ""
            return DecodeJob(
                channel=self.channel,
                final=final,
                offset_s=start / SAMPLE_RATE_HZ,
                end_s=end / SAMPLE_RATE_HZ,
                request=AsrRequest(audio=self._slice(start, end), language=self.language, prompt=prompt,
                                   prefix=prefix, complete=final,
                                   context_s=max(0, speech_start - start) / SAMPLE_RATE_HZ,
                                   vocabulary=self.vocabularies.get(self.language or "", ""),
                                   beam_size=None if final else int(self._rule(self.language or "").partial_beam_size)
                                   or None),
                tail_redecodes=redecodes,
            )

    def _maybe_trim_buffer(self) -> None:
        """Keep decode buffers short: drop the committed head once the buffer is longer than max_buffer_s."""
        assert self._utt_start is not None
        length_s = (self._received - self._utt_start) / SAMPLE_RATE_HZ
        if length_s <= self.params.max_buffer_s:
            return
        committed = int(self._policy.committed_end_s * SAMPLE_RATE_HZ)
        if committed <= self._utt_start:
            return
        self._utt_start = min(committed, self._received)

    # -- results -------------------------------------------------------------------------------------------
    def apply(self, job: DecodeJob, hyp: AsrHypothesis, media_clock_s: float | None = None) -> list[TranscriptEvent]:
        """Turn a hypothesis for `job` into caption events (finals for newly committed words, then a partial)."""
        with self._lock:
            self.decodes += 1
            if not self._language_locked and hyp.language:
                self.language = hyp.language
                if job.end_s - job.offset_s >= 2.0:
                    self._language_locked = True
            language = hyp.language or (self.language or "")
            words = self._absolute_words(job, hyp)
            clock = self.received_s if media_clock_s is None else media_clock_s
            events: list[TranscriptEvent] = []
            redecode_tail = False
            reason = "utterance_end" if job.final else "agreement"
            if job.final:
                expected = bool(self._policy.tentative)  # a partial showed words this final decode must keep
                words = self._unstretch_last(words)
                committed = self._policy.flush(words)
                tentative: list[Word] = []
                redecode_tail = self._schedule_tail(job, words, expected)
            else:
                rule = self._rule(language)
                until_s = job.end_s - rule.min_right_context_s
                if job.end_s - job.offset_s < self.params.min_commit_audio_s:
                    until_s = job.offset_s  # too little audio yet: the first words are guessed without context
                committed, tentative = self._policy.update(
                    words, until_s, unsure_until_s=job.end_s - rule.unsure_right_context_s,
                    decode_end_s=job.end_s, agree_gap_s=rule.agree_gap_s,
                    doubt_probability=rule.doubt_probability,
                    min_probability=rule.unsure_probability,
                    sure_until_s=job.end_s - rule.sure_right_context_s,
                    sure_probability=rule.sure_probability,
                    settled_until_s=(job.end_s - rule.settle_right_context_s
                                     if rule.settle_right_context_s else None))
                if not committed and job.end_s - job.offset_s > self.params.max_buffer_s:
                    # No agreement on a long buffer: commit what is well behind the live edge, then trim.
                    committed = self._policy.force_commit_until(job.end_s - self.params.force_commit_lag_s)
                    tentative = self._policy.tentative
                    reason = "forced"
            if committed:
                events.append(replace(self._event("final", self._pending_segment, committed, language, hyp.model,
                                                  clock), commit=reason))
                self._prompt_words.extend(committed)
                del self._prompt_words[:-80]
                self._pending_segment = self._new_segment_id()
                self._partial_shown = False
            if tentative:
                events.append(self._event("partial", self._pending_segment, tentative, language, hyp.model, clock))
                self._partial_shown = True
            elif self._partial_shown:
                # Clear a stale partial (its words were discarded or committed under another id).
                events.append(self._event("partial", self._pending_segment, [], language, hyp.model, clock))
                self._partial_shown = False
            if job.final:
                self._inflight_final_start = None
                # the tail's decode continues this utterance: keep its prompt
                if not redecode_tail and (self.language or "") not in self.params.carry_prompt_languages:
                    self._prompt_words.clear()
            return events

    def _unstretch_last(self, words: list[Word]) -> list[Word]:
        """The words with a stretched last word cut back to where it was plausibly said, so the audio it covered
        counts as unheard: a decode that stops after a fragment (元 of the previous sentence spread over five
        seconds of a new one) then has its tail decoded again, and the words found there are not dropped as
        already committed."""
        if not words or words[-1].end_s - words[-1].start_s <= self.params.stretched_word_s:
            return words
        last = words[-1]
        return [*words[:-1], replace(last, end_s=round(last.start_s + self.params.stretched_word_s / 2, 3))]

    def _schedule_tail(self, job: DecodeJob, words: list[Word], expected: bool = False) -> bool:
        """After a final decode whose words stop well before the end of its audio, decode the rest again.

        Whisper often ends a window after its first sentence when a second speaker or sentence follows closely
        (in-room Mandarin mixes lost whole replies this way: 13 % of reference characters deleted, against
        0.2 % offline). The unheard tail gets its own final decode, a few times at most per utterance."""
        if not self.params.tail_redecode_s or job.tail_redecodes >= self.params.max_tail_redecodes:
            return False
        if words:
            heard_until = words[-1].end_s
        elif expected:
            # nothing new, yet partials had shown words: the decode stopped inside its left context (the end of
            # the previous sentence, 多少?), so decode again from where this utterance's speech starts
            heard_until = job.offset_s + job.request.context_s
        else:
            return False  # nothing heard at all (silence, or discarded as noise): decoding again would not help
        if job.end_s - heard_until < self.params.tail_redecode_s:
            return False
        start = max(int(round((heard_until - 0.05) * SAMPLE_RATE_HZ)), self._audio_base,
                    int(round(job.offset_s * SAMPLE_RATE_HZ)) + 1)
        end = int(round(job.end_s * SAMPLE_RATE_HZ))
        if end - start < int(self.params.tail_redecode_s * SAMPLE_RATE_HZ) or start < self._audio_base:
            return False
        self._final_due.insert(0, (start, end, start, job.tail_redecodes + 1))
        return True

    def _absolute_words(self, job: DecodeJob, hyp: AsrHypothesis) -> list[Word]:
        quality = HypothesisQuality(hyp.avg_logprob, hyp.no_speech_prob, hyp.compression_ratio)
        if not hyp.words or is_hallucination(hyp.text, quality):
            if hyp.words:
                self.discarded_hypotheses += 1
            return []
        words = cut_repetition_loop(list(hyp.words))
        duration = job.end_s - job.offset_s
        out: list[Word] = []
        for w in words:
            if w.start_s >= duration - 0.02 or not w.text.strip():
                continue
            out.append(
                Word(
                    text=w.text,
                    start_s=round(max(0.0, job.offset_s + w.start_s - self._shift_s), 3),
                    end_s=round(max(0.0, job.offset_s + min(w.end_s, duration) - self._shift_s), 3),
                    probability=w.probability,
                )
            )
        return out

    def _event(
        self, kind: str, segment_id: str, words: list[Word], language: str, model: str, clock: float
    ) -> TranscriptEvent:
        start = words[0].start_s if words else clock
        end = words[-1].end_s if words else clock
        return TranscriptEvent(
            session_id=self.session_id,
            kind=kind,  # type: ignore[arg-type]
            segment_id=segment_id,
            channel=self.channel,
            speaker=self.speaker,
            start_s=start,
            end_s=end,
            text=join_words(words, language),
            words=tuple(words),
            language=language,
            model=model,
            emitted_at=time.time(),
            media_clock_s=round(clock, 3),
        )
