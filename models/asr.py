"""Whisper (faster-whisper / CTranslate2) backend for streaming decodes of short windows.

Streaming re-decodes a growing buffer of at most ~15 s many times a second across sessions, so the cost of one
decode is what matters. The Whisper encoder always sees a padded window; CTranslate2 accepts windows shorter than
the usual 30 s, and a 10-15 s window decodes short buffers 2-3x faster with nearly the same WER (measured in
../shared/MODELS.md and by `harken eval asr`, which compares against a plain 30 s offline decode); 7 s windows for
buffers up to 6.5 s cut a stream's decode time by another 20 % (WER +2 % on the clips they were chosen on, +8 % on
unseen ones: an option, `windows_s`; 5-6 s windows: +15 %). We therefore call
the model's encoder / generate / align steps directly rather than `WhisperModel.transcribe`, which always pads to
30 s. Whole-file offline decoding (the `offline_wer` baseline) still uses `transcribe`.

Batching across sessions: on this CPU, a batch of 4 windows costs about 4x one window (measured 2026-11-26:
0.53 vs 0.55 s a clip at 15 s; again 2026-12-06 at 10 s, one thread: encode 72 ms alone, 85 ms an item in a batch
of 4; generate 45 ms alone, 39 ms an item in 4, 32 ms in 8), so the executor does not batch, and the backend loops.
On a GPU, batches pay; there the executor runs several decodes on one model at once instead.
"""

from __future__ import annotations

import logging
import threading
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from intelligence.text import to_simplified
from intelligence.types import Word

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
ZH_PROMPT = "以下是普通话的句子。"
# Windows the encoder may use, shortest first; a buffer is decoded with the smallest window that holds it.
WINDOWS_S = (10, 15, 30)
VOCABULARY_MAX_TOKENS = 100


@dataclass(frozen=True)
class AsrRequest:
    """One decode of a mono 16 kHz float32 buffer. `language` is 'en', 'zh' or None (detect among en/zh)."""

    audio: np.ndarray
    language: str | None
    prompt: str = ""
    # Text already committed for the start of this audio: forced as the decoder's prefix, so only the new tail
    # is generated token by token (forced tokens cost one parallel step).
    prefix: str = ""
    # The speech of this audio is complete (an utterance's final decode): the encoder window is then padded with
    # real silence, which is what the audio after it is.
    complete: bool = False
    # Beam width for this decode only (None: the backend's setting); the executor narrows it under load
    beam_size: int | None = None
    # May the executor narrow the beam (and drop context_s) under load? Not for paced replays: a file's
    # transcript (an audit's evidence) must not depend on how busy the machine was.
    sheddable: bool = True
    # Seconds at the start of `audio` that only give context (speech already committed before a pause)
    context_s: float = 0.0
    # Domain vocabulary (product names, the bank's name, regulated phrases) put before the context prompt, so the
    # decoder prefers these spellings among sound-alikes (faster-whisper's "hotwords" do the same)
    vocabulary: str = ""

    def without_context(self) -> tuple[AsrRequest, float]:
        """This request minus its context audio, and the seconds dropped (add them back to word times)."""
        skip = min(int(round(self.context_s * SAMPLE_RATE_HZ)), max(0, self.audio.shape[0] - SAMPLE_RATE_HZ // 2))
        if skip <= 0:
            return self, 0.0
        return replace(self, audio=self.audio[skip:], context_s=0.0), skip / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class AsrHypothesis:
    """Decode result; word times are relative to the start of the request's audio."""

    words: tuple[Word, ...]
    language: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    model: str
    decode_s: float = 0.0
    language_probs: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return join_words(self.words, self.language)

    def shifted(self, seconds: float) -> AsrHypothesis:
        """The same hypothesis with word times moved later by `seconds`."""
        if not seconds:
            return self
        words = tuple(replace(w, start_s=w.start_s + seconds, end_s=w.end_s + seconds) for w in self.words)
        return replace(self, words=words)


def join_words(words: tuple[Word, ...] | list[Word], language: str) -> str:
    """Join recogniser words into display text. Whisper words carry their own leading spaces."""
    text = "".join(w.text for w in words).strip()
    return text


def compression_ratio(text: str) -> float:
    """Whisper's repetition heuristic: highly compressible text is usually a decoding loop."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def _features(model, audio: np.ndarray) -> np.ndarray:
    """Log-mel features as (n_mels, frames) whatever the faster-whisper version returns."""
    feats = np.asarray(model.feature_extractor(audio))
    while feats.ndim > 2:
        feats = feats[0]
    return feats


class WhisperBackend:
    """A shared faster-whisper model. Thread-safe: at most `num_workers` decodes run at once."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        model_name: str,
        compute_type: str = "int8",
        cpu_threads: int = 2,
        device: str = "cpu",
        beam_size: int = 1,
        num_workers: int = 1,
        pad_audio: str = "complete",
        final_beam_size: int | None = None,
        windows_s: tuple[float, ...] = WINDOWS_S,
    ) -> None:
        from faster_whisper import WhisperModel  # lazy: keep import-time light

        if not windows_s or sorted(windows_s) != list(windows_s) or windows_s[-1] > 30 or windows_s[0] < 2:
            raise ValueError(f"encoder windows must be ascending seconds between 2 and 30, got {windows_s}")
        self.windows_s = tuple(windows_s)

        self.model_name = model_name
        self.device = device
        self.beam_size = beam_size
        self.final_beam_size = final_beam_size or beam_size
        self._model = WhisperModel(
            str(model_dir), device=device, compute_type=compute_type, cpu_threads=cpu_threads,
            num_workers=num_workers,
        )
        # CTranslate2 runs `num_workers` model replicas in parallel (each with `cpu_threads` threads)
        self._lock = threading.BoundedSemaphore(num_workers)
        self._tokenizers: dict[str, object] = {}
        self.is_multilingual = bool(self._model.model.is_multilingual)
        # "complete": silence-pad the encoder window of final decodes only; "always"; "never" (zero features)
        self.pad_audio = pad_audio
        self._vocab_cache: dict[tuple[int, str], list[int]] = {}

    # -- helpers -------------------------------------------------------------------------------------------
    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        tok = self._tokenizers.get(language)
        if tok is None:
            tok = Tokenizer(
                self._model.hf_tokenizer, self.is_multilingual, task="transcribe",
                language=language if self.is_multilingual else "en",
            )
            self._tokenizers[language] = tok
        return tok

    def window_frames(self, num_samples: int) -> int:
        """Encoder frames (100 a second) of the shortest window that holds `num_samples` with 0.5 s to spare."""
        duration_s = num_samples / SAMPLE_RATE_HZ
        for w in self.windows_s:
            if duration_s <= w - 0.5:
                return int(round(w * 100))
        return int(round(self.windows_s[-1] * 100))

    def _detect(self, encoder_output) -> tuple[str, dict[str, float]]:
        """Pick en or zh (the product's languages) from Whisper's language-ID head."""
        if not self.is_multilingual:
            return "en", {"en": 1.0}
        results = self._model.model.detect_language(encoder_output)[0]
        probs = {tok[2:-2]: float(p) for tok, p in results}
        en, zh = probs.get("en", 0.0), probs.get("zh", 0.0)
        return ("zh" if zh > en else "en"), {"en": en, "zh": zh}

    # -- decoding ------------------------------------------------------------------------------------------
    def decode(self, request: AsrRequest) -> AsrHypothesis:
        """Decode one buffer (<= 30 s) greedily with a short encoder window, with word timestamps."""
        import time

        t0 = time.perf_counter()
        audio = np.asarray(request.audio, dtype=np.float32)
        max_samples = WINDOWS_S[-1] * SAMPLE_RATE_HZ
        if audio.shape[0] > max_samples:
            audio = audio[-max_samples:]
        with self._lock:
            hyp = self._decode_locked(audio, request)
        return AsrHypothesis(
            words=hyp.words, language=hyp.language, avg_logprob=hyp.avg_logprob,
            no_speech_prob=hyp.no_speech_prob, compression_ratio=hyp.compression_ratio,
            model=hyp.model, decode_s=time.perf_counter() - t0, language_probs=hyp.language_probs,
        )

    def _decode_locked(self, audio: np.ndarray, request: AsrRequest) -> AsrHypothesis:
        m = self._model
        frames = self.window_frames(audio.shape[0])
        if self.pad_audio == "always" or (self.pad_audio == "complete" and request.complete):
            # Pad with real silence, not zero features (faster-whisper's default): when the speech has truly
            # ended, the encoder then sees what follows it and the last words decode better (telephone WER
            # 0.179 -> 0.169 on 40 clips that end abruptly, 2026-11-27). Not for partial decodes: a buffer cut
            # mid-word, followed by silence, makes Whisper complete the cut word ("ask n" -> "asked").
            audio = np.pad(audio, (0, max(0, frames * 160 - audio.shape[0])))
        feats = _features(m, audio)
        num_frames = min(feats.shape[-1], frames)
        feats = feats[:, :frames]
        if feats.shape[-1] < frames:
            feats = np.pad(feats, ((0, 0), (0, frames - feats.shape[-1])))
        enc = m.encode(feats)
        language = request.language
        lang_probs: dict[str, float] = {}
        if language is None:
            language, lang_probs = self._detect(enc)
        tok = self._tokenizer(language)
        prompt_text = request.prompt
        if language == "zh" and not prompt_text:
            prompt_text = ZH_PROMPT
        previous = tok.encode(" " + prompt_text.strip()) if prompt_text.strip() else []
        previous = previous[-100:]
        if request.vocabulary.strip():
            previous = self._vocabulary_tokens(tok, request.vocabulary) + previous
        prefix = request.prefix.strip() or None
        prompt = m.get_prompt(tok, previous, without_timestamps=True, prefix=prefix)
        max_length = 200
        best = None
        # Fallback when the greedy result looks like a loop or is unsure: beam search, not Whisper's temperature
        # sampling, so the same audio always gives the same transcript (reproducible audits).
        first_beam = request.beam_size or (self.final_beam_size if request.complete else self.beam_size)
        for beam in (first_beam, max(5, first_beam)):
            kwargs = dict(
                beam_size=beam,
                max_length=max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=[-1],
                repetition_penalty=1.0,
                no_repeat_ngram_size=0,
            )
            result = m.model.generate(enc, [prompt], **kwargs)[0]
            tokens = [t for t in result.sequences_ids[0] if t < tok.eot]
            text = tok.decode(tokens)
            # CTranslate2 scores are length-normalised; convert to Whisper's average log-probability
            cum_logprob = float(result.scores[0]) * max(len(tokens), 1)
            avg_logprob = cum_logprob / (len(tokens) + 1)
            ratio = compression_ratio(text)
            best = (tokens, text, avg_logprob, float(result.no_speech_prob), ratio)
            if ratio <= 2.4 and avg_logprob >= -1.0:
                break
            prompt = m.get_prompt(tok, previous, without_timestamps=True)  # fall back without prefix
        assert best is not None
        tokens, text, avg_logprob, no_speech_prob, ratio = best
        words = self._align(tok, enc, tokens, num_frames, language)
        return AsrHypothesis(
            words=tuple(words), language=language, avg_logprob=avg_logprob, no_speech_prob=no_speech_prob,
            compression_ratio=ratio, model=self.model_name, language_probs=lang_probs,
        )

    def _vocabulary_tokens(self, tok, vocabulary: str) -> list[int]:
        """The vocabulary's prompt tokens, capped (Whisper's previous-text budget is ~223 tokens in all)."""
        key = (id(tok), vocabulary)
        cached = self._vocab_cache.get(key)
        if cached is None:
            cached = tok.encode(" " + vocabulary.strip())[:VOCABULARY_MAX_TOKENS]
            if len(self._vocab_cache) > 64:
                self._vocab_cache.clear()
            self._vocab_cache[key] = cached
        return list(cached)

    def _align(self, tok, enc, tokens: list[int], num_frames: int, language: str) -> list[Word]:
        if not tokens:
            return []
        segments = [[{"seek": 0, "start": 0.0, "end": num_frames / 100.0, "tokens": tokens}]]
        self._model.add_word_timestamps(
            segments, tok, enc, num_frames,
            "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、", last_speech_timestamp=0.0,
        )
        out: list[Word] = []
        for w in segments[0][0].get("words", []):
            text = w["word"]
            if language == "zh":
                text = to_simplified(text)
            out.append(Word(text=text, start_s=float(w["start"]), end_s=float(w["end"]),
                            probability=float(w["probability"])))
        return out

    def transcribe_offline(self, audio: np.ndarray, language: str | None, beam_size: int = 5,
                           vocabulary: str = "") -> str:
        """Whole-file decode with faster-whisper's standard 30 s pipeline: the offline baseline."""
        kwargs: dict = {"beam_size": beam_size, "vad_filter": False, "condition_on_previous_text": False}
        if language == "zh":
            kwargs["initial_prompt"] = ZH_PROMPT
        if vocabulary.strip():
            kwargs["hotwords"] = vocabulary.strip()
        with self._lock:
            segments, _info = self._model.transcribe(audio, language=language, **kwargs)
            # the generator decodes lazily: consume it here, in the worker thread
            text = "".join(s.text for s in list(segments)).strip()
        return to_simplified(text) if language == "zh" else text
