"""Cheap checks of model files, run before any runtime is imported or any weight is loaded.

A wrong file should fail with a message naming it, at start-up, not deep inside a native library: sherpa-onnx in
particular ends the whole process (exit status 255, or a segfault) on an ONNX file it cannot use, so the checks
here, and the probe in sherpa.py, run first. None of them reads more than a few bytes of a weight file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from models.asr_backends.base import AsrBackendError

# The first line of a Git LFS pointer file: what a model repository cloned without `git lfs` contains
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"

# ModelProto fields (onnx.proto) and the wire type each must have: enough to tell an ONNX file from anything else
_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5
_MODEL_FIELDS = {1: _WIRE_VARINT, 2: _WIRE_LEN, 3: _WIRE_LEN, 4: _WIRE_LEN, 5: _WIRE_VARINT, 6: _WIRE_LEN,
                 7: _WIRE_LEN, 8: _WIRE_LEN, 14: _WIRE_LEN, 20: _WIRE_LEN, 25: _WIRE_LEN}
_IR_VERSION, _GRAPH, _METADATA_PROPS = 1, 7, 14
# A real model has a few dozen top-level fields (metadata entries included); random bytes parse into many tiny ones
_MAX_TOP_LEVEL_FIELDS = 100_000


@dataclass(frozen=True)
class OnnxInfo:
    """What the cheap parse of an ONNX file found: its IR version and its metadata (key -> value)."""

    ir_version: int
    metadata: dict[str, str] = field(default_factory=dict)


class _NotOnnx(Exception):
    pass


def _varint(f) -> int:
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            raise _NotOnnx("ends inside a field")
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise _NotOnnx("malformed varint")


def _metadata_entry(data: bytes) -> tuple[str, str]:
    """Parse a StringStringEntryProto (key = field 1, value = field 2)."""
    import io

    key = value = ""
    buf = io.BytesIO(data)
    while buf.tell() < len(data):
        tag = _varint(buf)
        if tag & 7 != _WIRE_LEN:
            raise _NotOnnx("malformed metadata entry")
        raw = buf.read(_varint(buf))
        text = raw.decode("utf-8", errors="replace")
        if tag >> 3 == 1:
            key = text
        elif tag >> 3 == 2:
            value = text
    return key, value


def read_onnx_info(directory: Path, name: str) -> OnnxInfo:
    """Check that `directory/name` is an ONNX model (a ModelProto with an IR version and a graph) and read its
    metadata, by walking the protobuf's top-level fields and seeking over the graph, so a 500 MB model costs a
    few reads. Raises AsrBackendError naming the file otherwise (empty, a Git LFS pointer, not ONNX, truncated).
    """
    path = directory / name
    if not path.is_file():
        raise AsrBackendError(directory, "file is missing", file=name)
    size = path.stat().st_size
    if size == 0:
        raise AsrBackendError(directory, "file is empty, not an ONNX model", file=name)
    seen: set[int] = set()
    ir_version = 0
    metadata: dict[str, str] = {}
    with path.open("rb") as f:
        if f.read(len(LFS_POINTER)) == LFS_POINTER:
            raise AsrBackendError(directory, "is a Git LFS pointer, not the model", file=name,
                                  hint="fetch the weights with `git lfs pull` in the model repository")
        f.seek(0)
        try:
            for _ in range(_MAX_TOP_LEVEL_FIELDS):
                if f.tell() >= size:
                    break
                tag = _varint(f)
                number, wire = tag >> 3, tag & 7
                if number == 0 or _MODEL_FIELDS.get(number, wire) != wire:
                    raise _NotOnnx(f"unexpected field {number} (wire type {wire})")
                if wire == _WIRE_VARINT:
                    value = _varint(f)
                    if number == _IR_VERSION:
                        ir_version = value
                elif wire == _WIRE_I64 or wire == _WIRE_I32:
                    f.seek(8 if wire == _WIRE_I64 else 4, os.SEEK_CUR)
                elif wire == _WIRE_LEN:
                    length = _varint(f)
                    if f.tell() + length > size:
                        raise _NotOnnx("a field runs past the end of the file (truncated download?)")
                    if number == _METADATA_PROPS:
                        key, value = _metadata_entry(f.read(length))
                        metadata[key] = value
                    else:
                        f.seek(length, os.SEEK_CUR)
                else:  # groups (3, 4) are not used by onnx.proto; 6 and 7 are not wire types
                    raise _NotOnnx(f"invalid wire type {wire}")
                seen.add(number)
            else:
                raise _NotOnnx("too many top-level fields")
            if f.tell() != size:
                raise _NotOnnx("a field runs past the end of the file")
        except _NotOnnx as exc:
            raise AsrBackendError(directory, f"is not an ONNX model ({exc})", file=name) from None
    if _IR_VERSION not in seen or _GRAPH not in seen or ir_version <= 0:
        raise AsrBackendError(directory, "is not an ONNX model (no IR version or no graph)", file=name)
    return OnnxInfo(ir_version=ir_version, metadata=metadata)


def _read_text(directory: Path, name: str) -> str:
    path = directory / name
    if not path.is_file():
        raise AsrBackendError(directory, "file is missing", file=name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AsrBackendError(directory, f"cannot be read ({exc.strerror or exc})", file=name) from None
    if data.startswith(LFS_POINTER):
        raise AsrBackendError(directory, "is a Git LFS pointer, not the file", file=name,
                              hint="fetch it with `git lfs pull` in the model repository")
    if b"\0" in data:
        raise AsrBackendError(directory, "is binary, expected text", file=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AsrBackendError(directory, f"is not UTF-8 text (byte {exc.start})", file=name) from None


def check_tokens_txt(directory: Path, name: str = "tokens.txt") -> int:
    """Validate a sherpa-onnx symbol table (one `<token> <integer id>` per line); returns the number of tokens.

    A line holding only an id is sherpa's way of writing the space token, so it is accepted too.
    """
    text = _read_text(directory, name)
    ids: set[int] = set()
    # split on newlines only, as sherpa-onnx does: str.splitlines() would also split tokens such as U+2028
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        token_id = line.rsplit(maxsplit=1)[-1]
        if not token_id.isascii() or not token_id.isdigit():
            shown = line if len(line) <= 40 else line[:40] + "..."
            raise AsrBackendError(directory, f"line {number} is not '<token> <id>': {shown!r}", file=name)
        if int(token_id) in ids:
            raise AsrBackendError(directory, f"line {number}: id {token_id} appears twice", file=name)
        ids.add(int(token_id))
    if not ids:
        raise AsrBackendError(directory, "holds no tokens", file=name)
    return len(ids)


def check_tokens_json(directory: Path, name: str = "tokens.json") -> int:
    """Validate a FunASR token list (a JSON array of strings); returns its length."""
    text = _read_text(directory, name)
    try:
        tokens = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AsrBackendError(directory, f"is not JSON ({exc.msg}, line {exc.lineno})", file=name) from None
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise AsrBackendError(directory, "must be a non-empty JSON array of token strings", file=name)
    return len(tokens)


def check_yaml_mapping(directory: Path, name: str, required: tuple[str, ...]) -> dict:
    """Parse a YAML file that must be a mapping holding mappings under `required` keys."""
    import yaml

    text = _read_text(directory, name)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AsrBackendError(directory, f"is not valid YAML ({str(exc).splitlines()[0]})", file=name) from None
    if not isinstance(data, dict):
        raise AsrBackendError(directory, "must be a YAML mapping", file=name)
    for key in required:
        if not isinstance(data.get(key), dict):
            raise AsrBackendError(directory, f"has no '{key}' section", file=name)
    return data


def check_cmvn(directory: Path, name: str = "am.mvn") -> None:
    """Validate a Kaldi-style CMVN file as FunASR reads it: <AddShift> and <Rescale> blocks of numbers."""
    text = _read_text(directory, name)
    lines = [line.split() for line in text.splitlines()]
    for marker in ("<AddShift>", "<Rescale>"):
        at = next((i for i, parts in enumerate(lines) if parts[:1] == [marker]), None)
        if at is None:
            raise AsrBackendError(directory, f"has no {marker} block (not a FunASR CMVN file)", file=name)
        following = lines[at + 1] if at + 1 < len(lines) else []
        if following[:1] != ["<LearnRateCoef>"] or len(following) < 5:
            raise AsrBackendError(directory, f"the {marker} block has no <LearnRateCoef> row of values", file=name)
        try:
            [float(v) for v in following[3:-1]]
        except ValueError:
            raise AsrBackendError(directory, f"the {marker} values are not numbers", file=name) from None


def check_nonempty_file(directory: Path, name: str) -> None:
    """A binary side file (e.g. a SentencePiece model) that must exist, be non-empty and not an LFS pointer."""
    path = directory / name
    if not path.is_file():
        raise AsrBackendError(directory, "file is missing", file=name)
    with path.open("rb") as f:
        head = f.read(len(LFS_POINTER))
    if not head:
        raise AsrBackendError(directory, "file is empty", file=name)
    if head == LFS_POINTER:
        raise AsrBackendError(directory, "is a Git LFS pointer, not the file", file=name,
                              hint="fetch it with `git lfs pull` in the model repository")


def require_directory(path: str | Path) -> Path:
    """The model directory as a Path; AsrBackendError when it does not exist or is not a directory."""
    directory = Path(path).expanduser()
    if not str(path).strip():
        raise AsrBackendError(directory, "no model directory given")
    if not directory.exists():
        raise AsrBackendError(directory, "does not exist")
    if not directory.is_dir():
        raise AsrBackendError(directory, "is not a directory")
    return directory
