"""sherpa-onnx models from a local directory: streaming / offline Zipformer transducers, Paraformer, SenseVoice.

The runtime is optional: `pip install 'harken[mandarin]'` (or `pip install sherpa-onnx`). The weights are never
downloaded here; point the backend at a directory unpacked from https://github.com/k2-fsa/sherpa-onnx/releases
(tag asr-models), e.g. sherpa-onnx-paraformer-zh-2023-09-14 or sherpa-onnx-sense-voice-zh-en-ja-ko-yue-2024-07-17.

Loading is defensive because sherpa-onnx's native code ends the process (exit status 255, or a segfault) when an
ONNX file lacks the metadata it expects, instead of raising. So `SherpaOnnxBackend.from_dir`:

1. checks the directory without importing sherpa-onnx: the files the kind needs, tokens.txt's format, that every
   .onnx file is an ONNX protobuf (a few reads, see files.py), and the metadata keys known to be fatal if absent;
2. loads the model, and decodes half a second of silence with it, in a child process (the "probe"), so a model
   sherpa-onnx rejects costs an AsrBackendError carrying sherpa's own message, not the service;
3. then loads it in this process and decodes the same silence (the first decode allocates buffers).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.asr import SAMPLE_RATE_HZ, AsrHypothesis, AsrRequest
from models.asr_backends.base import AsrBackendError
from models.asr_backends.files import check_tokens_txt, read_onnx_info, require_directory
from models.asr_backends.words import hypothesis, units_from_text, units_from_tokens, words_from_units

log = logging.getLogger(__name__)

KINDS = ("transducer", "streaming-transducer", "paraformer", "sense-voice")
_ALIASES = {
    "zipformer": "transducer", "offline-transducer": "transducer",
    "streaming-zipformer": "streaming-transducer", "online-transducer": "streaming-transducer",
    "sensevoice": "sense-voice", "sense_voice": "sense-voice",
}
# Metadata without which sherpa-onnx 2.0 exits instead of raising (seen with a valid ONNX graph lacking it)
_REQUIRED_METADATA = {"paraformer": ("vocab_size",), "sense-voice": ("vocab_size",)}
_REQUIRED_ENCODER_METADATA = {"streaming-transducer": ("model_type",)}
# Keys only streaming (chunked) encoders carry: tells a streaming Zipformer from an offline one
_STREAMING_KEYS = {"T", "decode_chunk_len"}
# A streaming transducer only emits the last words once frames after them arrive: sherpa-onnx's examples feed
# this much silence after the audio for the same reason
_TAIL_PADDING_S = 0.66
# Offline models are trained on utterances; a whole file is fed to them in pieces of at most this length
_OFFLINE_CHUNK_S = 20.0
_MIN_AUDIO_S = 0.1  # shorter buffers give no frames to some front ends; nothing to recognise there anyway
_INSTALL_HINT = "install the runtime: pip install 'harken[mandarin]' (or pip install sherpa-onnx)"


def normalise_kind(kind: str) -> str:
    """'auto' or one of KINDS (aliases such as 'zipformer', 'sensevoice' accepted); ValueError otherwise."""
    k = kind.strip().lower()
    k = _ALIASES.get(k, k)
    if k != "auto" and k not in KINDS:
        raise ValueError(f"unknown sherpa-onnx model kind {kind!r}; expected auto or one of {', '.join(KINDS)}")
    return k


@dataclass(frozen=True)
class SherpaModelFiles:
    """A validated sherpa-onnx model directory: its kind and the files it will be loaded from."""

    directory: Path
    kind: str
    models: dict[str, str]  # role ("encoder", "decoder", "joiner" or "model") -> file name
    tokens: str = "tokens.txt"

    @property
    def main_file(self) -> str:
        return self.models.get("model") or self.models["encoder"]


def _pick(directory: Path, role: str, prefer_int8: bool) -> str:
    """The one `<role>*.onnx` file, preferring (or avoiding) the int8-quantised variant when both exist."""
    found = sorted(p.name for p in directory.glob(f"{role}*.onnx") if p.is_file())
    if not found:
        raise AsrBackendError(directory, f"no {role}*.onnx file (a transducer needs encoder, decoder and joiner)")
    int8 = [n for n in found if n.endswith(".int8.onnx")]
    full = [n for n in found if n not in int8]
    group = (int8 or full) if prefer_int8 else (full or int8)
    if len(group) > 1:
        raise AsrBackendError(directory, f"several {role} files ({', '.join(group)}); keep one per role")
    return group[0]


def _single_model(directory: Path, prefer_int8: bool) -> str | None:
    names = ["model.int8.onnx", "model.onnx"] if prefer_int8 else ["model.onnx", "model.int8.onnx"]
    return next((n for n in names if (directory / n).is_file()), None)


def _looks_like_sense_voice(directory: Path) -> bool:
    """SenseVoice and Paraformer directories hold the same file names; tell them apart by the directory's name, or
    by SenseVoice's language / text-normalisation control tokens in tokens.txt."""
    name = directory.name.lower()
    if "sense" in name and "voice" in name:
        return True
    if "paraformer" in name:
        return False
    try:
        text = (directory / "tokens.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "<|zh|>" in text or "<|withitn|>" in text


def detect_kind(path: str | Path, *, prefer_int8: bool = True) -> str:
    """The kind of a sherpa-onnx model directory, from its file names (and tokens.txt, and the encoder's metadata
    where readable): transducer, streaming-transducer, paraformer or sense-voice. Validates nothing else."""
    directory = require_directory(path)
    if any(directory.glob("encoder*.onnx")) or any(directory.glob("joiner*.onnx")):
        if "streaming" in directory.name.lower():
            return "streaming-transducer"
        try:
            encoder = _pick(directory, "encoder", prefer_int8)
            if _STREAMING_KEYS & read_onnx_info(directory, encoder).metadata.keys():
                return "streaming-transducer"
        except AsrBackendError:
            pass  # inspect_model_dir reports the file properly
        return "transducer"
    if _single_model(directory, prefer_int8) is not None:
        return "sense-voice" if _looks_like_sense_voice(directory) else "paraformer"
    found = sorted(p.name for p in directory.glob("*.onnx")) or ["no .onnx file"]
    raise AsrBackendError(
        directory, f"no sherpa-onnx model found ({', '.join(found)}); expected encoder*.onnx, decoder*.onnx and "
        "joiner*.onnx (Zipformer transducer) or model.onnx / model.int8.onnx (Paraformer, SenseVoice), with "
        "tokens.txt")


def inspect_model_dir(path: str | Path, kind: str = "auto", *, prefer_int8: bool = True) -> SherpaModelFiles:
    """Validate a sherpa-onnx model directory without importing sherpa-onnx; detect its kind when 'auto'.

    Raises AsrBackendError naming the directory and the offending file.
    """
    directory = require_directory(path)
    kind = normalise_kind(kind)
    if kind == "auto":
        kind = detect_kind(directory, prefer_int8=prefer_int8)
    check_tokens_txt(directory)
    if kind in ("transducer", "streaming-transducer"):
        models = {role: _pick(directory, role, prefer_int8) for role in ("encoder", "decoder", "joiner")}
        infos = {role: read_onnx_info(directory, name) for role, name in models.items()}
        for key in _REQUIRED_ENCODER_METADATA.get(kind, ()):
            if key not in infos["encoder"].metadata:
                raise AsrBackendError(
                    directory, f"has no '{key}' metadata, which sherpa-onnx needs for a {kind}",
                    file=models["encoder"], hint="export it with icefall's export-onnx-streaming.py")
    else:
        single = _single_model(directory, prefer_int8)
        if single is None:
            raise AsrBackendError(directory, f"no model.onnx or model.int8.onnx (a {kind} model)")
        models = {"model": single}
        metadata = read_onnx_info(directory, single).metadata
        for key in _REQUIRED_METADATA.get(kind, ()):
            if key not in metadata:
                raise AsrBackendError(
                    directory, f"has no '{key}' metadata, so it is not a sherpa-onnx {kind} export", file=single,
                    hint="use a model from sherpa-onnx's asr-models releases; a FunASR export needs 'funasr:<dir>'")
    return SherpaModelFiles(directory=directory, kind=kind, models=models)


def runtime_installed() -> bool:
    """Is the sherpa-onnx package importable? (Checked without importing it.)"""
    return importlib.util.find_spec("sherpa_onnx") is not None


def create_recognizer(kind: str, directory: str, models: dict[str, str], tokens: str, num_threads: int,
                      language: str):
    """Build the sherpa-onnx recogniser (also run in the probe's child process, hence plain arguments)."""
    import sherpa_onnx

    d = Path(directory)
    tok = str(d / tokens)
    path = {role: str(d / name) for role, name in models.items()}
    if kind == "streaming-transducer":
        return sherpa_onnx.OnlineRecognizer.from_transducer(
            tokens=tok, encoder=path["encoder"], decoder=path["decoder"], joiner=path["joiner"],
            num_threads=num_threads, sample_rate=SAMPLE_RATE_HZ, feature_dim=80, decoding_method="greedy_search",
        )
    if kind == "transducer":
        return sherpa_onnx.OfflineRecognizer.from_transducer(
            encoder=path["encoder"], decoder=path["decoder"], joiner=path["joiner"], tokens=tok,
            num_threads=num_threads, sample_rate=SAMPLE_RATE_HZ, feature_dim=80, decoding_method="greedy_search",
        )
    if kind == "paraformer":
        return sherpa_onnx.OfflineRecognizer.from_paraformer(
            paraformer=path["model"], tokens=tok, num_threads=num_threads, sample_rate=SAMPLE_RATE_HZ,
        )
    if kind == "sense-voice":
        # Inverse text normalisation on: digits and punctuation as Whisper writes them (card numbers, amounts and
        # dates are matched as digits downstream)
        return sherpa_onnx.OfflineRecognizer.from_sense_voice(
            model=path["model"], tokens=tok, num_threads=num_threads, sample_rate=SAMPLE_RATE_HZ,
            language=language if language in ("zh", "en", "ja", "ko", "yue") else "auto", use_itn=True,
        )
    raise ValueError(f"unknown sherpa-onnx model kind {kind!r}")


def recognise(recognizer, audio: np.ndarray, streaming: bool) -> tuple[str, list[str], list[float]]:
    """Run a sherpa-onnx recogniser over one whole buffer: (text, tokens, token start times in seconds)."""
    stream = recognizer.create_stream()
    stream.accept_waveform(SAMPLE_RATE_HZ, audio)
    if streaming:
        stream.accept_waveform(SAMPLE_RATE_HZ, np.zeros(int(_TAIL_PADDING_S * SAMPLE_RATE_HZ), np.float32))
        stream.input_finished()
        while recognizer.is_ready(stream):
            recognizer.decode_stream(stream)
        result = recognizer.get_result_all(stream)
    else:
        recognizer.decode_stream(stream)
        result = stream.result
    return str(result.text), [str(t) for t in result.tokens], [float(t) for t in result.timestamps]


def _warm_up_audio() -> np.ndarray:
    return np.zeros(SAMPLE_RATE_HZ // 2, np.float32)


def probe_main(args: dict) -> None:
    """The probe's child process: load the model and decode half a second of silence (decoding, too, may end
    the process on a model whose graph does not fit the recogniser)."""
    recognizer = create_recognizer(**args)
    recognise(recognizer, _warm_up_audio(), args["kind"] == "streaming-transducer")


_PROBE = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); "
    "from models.asr_backends.sherpa import probe_main; probe_main(json.loads(sys.argv[2]))"
)


def probe_load(files: SherpaModelFiles, args: dict, timeout_s: float) -> None:
    """Load the model (and decode silence with it) in a child process first: sherpa-onnx exits or crashes on some
    bad models instead of raising, and that must cost an AsrBackendError here, not the service. It costs one
    extra load at start-up, and the child's memory while it runs."""
    root = str(Path(__file__).resolve().parents[2])
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, root, json.dumps(args)], capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise AsrBackendError(files.directory, f"sherpa-onnx took over {timeout_s:.0f} s to load the model",
                              file=files.main_file) from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
        detail = " / ".join(lines[-4:]) or "no message"
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        raise AsrBackendError(files.directory, f"sherpa-onnx cannot load this {files.kind} model ({how}): {detail}",
                              file=files.main_file)


class SherpaOnnxBackend:
    """A sherpa-onnx recogniser over a local model directory, decoding one buffer at a time (AsrBackend).

    Each decode recognises the whole request buffer from scratch, as the Whisper backend does; the pipeline's
    LocalAgreement commit policy works unchanged. Request fields that steer Whisper (`prompt`, `prefix`,
    `beam_size`) are ignored: these decoders run greedy search. Word times come from the recogniser's token
    timestamps where the model gives them, else the words are spread evenly over the buffer.
    """

    def __init__(self, recognizer, files: SherpaModelFiles, *, language: str = "zh") -> None:
        self._recognizer = recognizer
        self.files = files
        self.kind = files.kind
        self.language = language
        self.model_name = f"sherpa-{files.kind}:{files.directory.name}"
        self.streaming = files.kind == "streaming-transducer"
        # One decode at a time, using num_threads cores: sherpa-onnx does not document its recognisers as safe
        # to share between threads, and a serial decode with all threads costs the same as parallel ones
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, path: str | Path, kind: str = "auto", *, num_threads: int = 2, language: str = "zh",
                 prefer_int8: bool = True, probe: bool = True, probe_timeout_s: float = 300.0) -> SherpaOnnxBackend:
        """Validate `path`, then load it. `kind`: auto, transducer, streaming-transducer, paraformer, sense-voice.

        Raises AsrBackendError (naming the directory and file) for a missing or malformed directory, a model
        sherpa-onnx rejects, or a missing sherpa-onnx package.
        """
        files = inspect_model_dir(path, kind, prefer_int8=prefer_int8)
        if not runtime_installed():
            raise AsrBackendError(files.directory, "the sherpa-onnx package is not installed", hint=_INSTALL_HINT)
        args = {"kind": files.kind, "directory": str(files.directory), "models": files.models,
                "tokens": files.tokens, "num_threads": num_threads, "language": language}
        if probe:
            probe_load(files, args, probe_timeout_s)
        try:
            recognizer = create_recognizer(**args)
        except Exception as exc:  # sherpa-onnx raises RuntimeError/AssertionError with its own message
            raise AsrBackendError(files.directory, f"sherpa-onnx cannot load this {files.kind} model: {exc}",
                                  file=files.main_file) from exc
        backend = cls(recognizer, files, language=language)
        try:
            # The first decode allocates onnxruntime's buffers: pay for it now, not on the first Chinese call
            backend.decode(AsrRequest(audio=_warm_up_audio(), language=language, complete=True, sheddable=False))
        except Exception as exc:
            raise AsrBackendError(files.directory, f"sherpa-onnx loads this {files.kind} model but cannot decode "
                                  f"with it: {exc}", file=files.main_file) from exc
        log.info("loaded sherpa-onnx %s model from %s", files.kind, files.directory)
        return backend

    # -- decoding ------------------------------------------------------------------------------------------

    def decode(self, request: AsrRequest) -> AsrHypothesis:
        """Recognise the request's buffer; character-level words for Chinese, token times where available."""
        t0 = time.perf_counter()
        audio = np.ascontiguousarray(request.audio, dtype=np.float32).reshape(-1)
        language = request.language or self.language
        duration_s = audio.shape[0] / SAMPLE_RATE_HZ
        if duration_s < _MIN_AUDIO_S:
            return hypothesis((), language=language, model=self.model_name)
        with self._lock:
            text, tokens, starts = recognise(self._recognizer, audio, self.streaming)
        units = units_from_tokens(tokens, starts, duration_s) if tokens else []
        if not units and text.strip():
            units = units_from_text(text)
        words = words_from_units(units, duration_s, language)
        return hypothesis(words, language=language, model=self.model_name, decode_s=time.perf_counter() - t0)

    def transcribe_offline(self, audio: np.ndarray, language: str | None, beam_size: int = 5,
                           vocabulary: str = "") -> str:
        """Whole-file transcript (the offline baseline): offline models get the file in pieces of at most 20 s."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        step = audio.shape[0] if self.streaming else int(_OFFLINE_CHUNK_S * SAMPLE_RATE_HZ)
        parts = []
        for start in range(0, max(audio.shape[0], 1), max(step, 1)):
            hyp = self.decode(AsrRequest(audio=audio[start:start + step], language=language, complete=True,
                                         sheddable=False))
            parts.append(hyp.text)
        sep = "" if (language or self.language) == "zh" else " "
        return sep.join(p for p in parts if p).strip()
