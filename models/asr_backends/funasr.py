"""FunASR ONNX exports (Paraformer, SenseVoiceSmall) from a local directory, run with the `funasr_onnx` package.

A FunASR export directory holds model.onnx (or model_quant.onnx), config.yaml, am.mvn and either tokens.json
(Paraformer) or chn_jpn_yue_eng_ko_spectok.bpe.model (SenseVoiceSmall). It is what `funasr`'s
`AutoModel(...).export(type="onnx")` writes, and what the "-onnx" model repositories on ModelScope contain.

The runtime is NOT in the `mandarin` extra: funasr-onnx 0.4.3 declares `numpy<=1.26.4`, so installing it with its
dependencies would downgrade this project's numpy. It imports and runs with numpy 2 (checked 2026-12-05), so
install it without them: `pip install --no-deps funasr-onnx kaldi-native-fbank sentencepiece` (librosa, scipy,
PyYAML and jieba, its other imports, are already installed here). A directory with tokens.txt instead of
tokens.json is a sherpa-onnx export: load it with `sherpa:<dir>` instead.

funasr_onnx, given a directory that does not exist, tries to download from ModelScope, and given one without
model.onnx, tries to export it with the full `funasr` package: the validation here runs first so neither happens.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.asr import SAMPLE_RATE_HZ, AsrHypothesis, AsrRequest
from models.asr_backends.base import AsrBackendError
from models.asr_backends.files import (
    check_cmvn,
    check_nonempty_file,
    check_tokens_json,
    check_yaml_mapping,
    read_onnx_info,
    require_directory,
)
from models.asr_backends.words import hypothesis, units_from_text, words_from_units

log = logging.getLogger(__name__)

KINDS = ("paraformer", "sense-voice")
SENSE_VOICE_BPE = "chn_jpn_yue_eng_ko_spectok.bpe.model"
_INSTALL_HINT = "pip install --no-deps funasr-onnx kaldi-native-fbank sentencepiece (see models/asr_backends/funasr.py)"
_LANG_TAG = re.compile(r"<\|(zh|en|yue|ja|ko|nospeech)\|>")
_TAG = re.compile(r"<\|[^|]*\|>")
_MIN_AUDIO_S = 0.1  # FunASR's LFR front end needs several 10 ms frames; shorter buffers hold nothing to recognise


def normalise_kind(kind: str) -> str:
    k = kind.strip().lower().replace("_", "-")
    k = {"sensevoice": "sense-voice", "sensevoicesmall": "sense-voice", "sense-voice-small": "sense-voice"}.get(k, k)
    if k != "auto" and k not in KINDS:
        raise ValueError(f"unknown FunASR model kind {kind!r}; expected auto or one of {', '.join(KINDS)}")
    return k


@dataclass(frozen=True)
class FunAsrModelFiles:
    """A validated FunASR ONNX export directory."""

    directory: Path
    kind: str
    model: str  # model.onnx or model_quant.onnx
    quantize: bool


def inspect_model_dir(path: str | Path, kind: str = "auto", *, quantize: bool | None = None) -> FunAsrModelFiles:
    """Validate a FunASR ONNX export without importing funasr_onnx; detect Paraformer vs SenseVoice when 'auto'.

    `quantize`: use model_quant.onnx (True), model.onnx (False), or whichever exists, preferring the quantised
    one (None: int8 is what this project runs on CPU). Raises AsrBackendError naming the directory and file.
    """
    directory = require_directory(path)
    kind = normalise_kind(kind)
    candidates = {True: "model_quant.onnx", False: "model.onnx"}
    if quantize is None:
        if not any((directory / name).is_file() for name in candidates.values()):
            raise AsrBackendError(directory, "no model.onnx or model_quant.onnx (a FunASR ONNX export)")
        quantize = (directory / candidates[True]).is_file()
    model = candidates[quantize]
    if not (directory / model).is_file():
        other = candidates[not quantize]
        hint = f"{other} is there: pass quantize={not quantize}" if (directory / other).is_file() else None
        raise AsrBackendError(directory, "file is missing (a FunASR ONNX export)", file=model, hint=hint)
    read_onnx_info(directory, model)
    config = check_yaml_mapping(directory, "config.yaml", ("frontend_conf",))
    check_cmvn(directory, "am.mvn")
    declared = str(config.get("model", ""))
    if kind == "auto":
        if "sensevoice" in declared.lower() or (directory / SENSE_VOICE_BPE).is_file():
            kind = "sense-voice"
        else:
            kind = "paraformer"
    if kind == "paraformer":
        if declared and declared not in ("Paraformer", "BiCifParaformer"):
            # Contextual / SeACo Paraformer take hotword inputs; funasr_onnx runs them through other classes
            raise AsrBackendError(directory, f"declares model {declared!r}; only Paraformer, BiCifParaformer and "
                                  "SenseVoiceSmall exports are supported", file="config.yaml")
        if not isinstance(config.get("model_conf"), dict):
            raise AsrBackendError(directory, "has no 'model_conf' section (a Paraformer config)", file="config.yaml")
        if not (directory / "tokens.json").is_file() and (directory / "tokens.txt").is_file():
            raise AsrBackendError(directory, "file is missing; tokens.txt is there, which makes this a sherpa-onnx "
                                  "export", file="tokens.json", hint="load it with 'sherpa:<dir>'")
        check_tokens_json(directory, "tokens.json")
    else:
        check_nonempty_file(directory, SENSE_VOICE_BPE)
    return FunAsrModelFiles(directory=directory, kind=kind, model=model, quantize=quantize)


def runtime_installed() -> bool:
    """Is the funasr_onnx package importable? (Checked without importing it.)"""
    return importlib.util.find_spec("funasr_onnx") is not None


class FunAsrOnnxBackend:
    """A FunASR ONNX export run by `funasr_onnx` (AsrBackend). Re-recognises the whole buffer on each decode.

    Paraformer exports with a timestamp head (BiCifParaformer) give character times; otherwise, and for
    SenseVoiceSmall, the words are spread evenly over the buffer. `prompt`, `prefix` and `beam_size` are ignored.
    """

    def __init__(self, model, files: FunAsrModelFiles, *, language: str = "zh") -> None:
        self._model = model
        self.files = files
        self.kind = files.kind
        self.language = language
        self.model_name = f"funasr-{files.kind}:{files.directory.name}"
        # One decode at a time, with num_threads onnxruntime threads: funasr_onnx does not promise that its model
        # objects may be shared between threads (its streaming classes keep state on them)
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, path: str | Path, kind: str = "auto", *, num_threads: int = 2, language: str = "zh",
                 quantize: bool | None = None) -> FunAsrOnnxBackend:
        """Validate `path`, then load it with funasr_onnx. Raises AsrBackendError on any problem."""
        files = inspect_model_dir(path, kind, quantize=quantize)
        if not runtime_installed():
            raise AsrBackendError(files.directory, "the funasr-onnx package is not installed", hint=_INSTALL_HINT)
        try:
            import funasr_onnx

            cls_ = funasr_onnx.SenseVoiceSmall if files.kind == "sense-voice" else funasr_onnx.Paraformer
            model = cls_(model_dir=str(files.directory), batch_size=1, quantize=files.quantize,
                         intra_op_num_threads=num_threads)
        except ImportError as exc:  # a dependency of funasr_onnx (kaldi_native_fbank, sentencepiece) is missing
            raise AsrBackendError(files.directory, f"funasr-onnx cannot be imported ({exc})",
                                  hint=_INSTALL_HINT) from exc
        except Exception as exc:  # onnxruntime / yaml / tokenizer errors, with their own messages
            raise AsrBackendError(files.directory, f"funasr-onnx cannot load this {files.kind} model: {exc}",
                                  file=files.model) from exc
        # FunASR front ends add random dither by default: the same audio must give the same transcript (audits)
        frontend = getattr(model, "frontend", None)
        if frontend is not None and hasattr(frontend, "opts"):
            frontend.opts.frame_opts.dither = 0.0
        backend = cls(model, files, language=language)
        try:
            # A graph that loads may still not fit the front end or decoder: find out now, and warm the buffers
            silence = np.zeros(SAMPLE_RATE_HZ // 2, np.float32)
            backend.decode(AsrRequest(audio=silence, language=language, complete=True, sheddable=False))
        except Exception as exc:
            raise AsrBackendError(files.directory, f"funasr-onnx loads this {files.kind} model but cannot decode "
                                  f"with it: {exc}", file=files.model) from exc
        log.info("loaded FunASR %s model from %s", files.kind, files.directory)
        return backend

    def _recognise(self, audio: np.ndarray, language: str) -> tuple[str, list[str], list[list[float]] | None, str]:
        """(text, words, [start_ms, end_ms] per word or None, detected language or '')."""
        if self.kind == "sense-voice":
            lid = language if language in ("zh", "en", "yue", "ja", "ko") else "auto"
            try:
                out = self._model(audio, language=lid, textnorm="withitn")
            except ValueError:  # "Empty speech detected": nothing to recognise
                return "", [], None, ""
            raw = str(out[0]) if out else ""
            tag = _LANG_TAG.search(raw)
            return _TAG.sub("", raw).strip(), [], None, (tag.group(1) if tag else "")
        out = self._model(audio)
        if not out:  # funasr_onnx returns nothing when onnxruntime fails on silence or noise
            return "", [], None, ""
        res = out[0]
        preds = res.get("preds", "")
        if isinstance(preds, tuple):  # (sentence, words) from a model without a timestamp head
            return str(preds[0]), [str(w) for w in preds[1]] if len(preds) > 1 else [], None, ""
        text = str(preds)
        stamps = res.get("timestamp")
        # with timestamps, the sentence is its words joined by spaces, one [start_ms, end_ms] each
        return text, text.split(), stamps if isinstance(stamps, list) else None, ""

    def decode(self, request: AsrRequest) -> AsrHypothesis:
        """Recognise the request's buffer; character-level words for Chinese."""
        t0 = time.perf_counter()
        audio = np.ascontiguousarray(request.audio, dtype=np.float32).reshape(-1)
        language = request.language or self.language
        duration_s = audio.shape[0] / SAMPLE_RATE_HZ
        if duration_s < _MIN_AUDIO_S:
            return hypothesis((), language=language, model=self.model_name)
        with self._lock:
            text, words, stamps, _detected = self._recognise(audio, language)
        if words and stamps is not None and len(stamps) == len(words):
            units = []
            for word, (start_ms, end_ms) in zip(words, stamps, strict=True):
                for unit in units_from_text(word):
                    unit.start, unit.end = start_ms / 1000.0, end_ms / 1000.0
                    units.append(unit)
        else:
            units = units_from_text(" ".join(words) if words else text)
        out = words_from_units(units, duration_s, language)
        return hypothesis(out, language=language, model=self.model_name, decode_s=time.perf_counter() - t0)

    def transcribe_offline(self, audio: np.ndarray, language: str | None, beam_size: int = 5,
                           vocabulary: str = "") -> str:
        """Whole-file transcript in pieces of at most 20 s (the models are trained on utterances)."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        step = 20 * SAMPLE_RATE_HZ
        parts = [self.decode(AsrRequest(audio=audio[s:s + step], language=language, complete=True,
                                        sheddable=False)).text for s in range(0, max(audio.shape[0], 1), step)]
        sep = "" if (language or self.language) == "zh" else " "
        return sep.join(p for p in parts if p).strip()
