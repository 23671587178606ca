"""The interface every ASR backend offers the pipeline, and the error a backend's loading raises.

What the pipeline reads from the backend object (the executor's `decoder`), found by grepping pipelines/, api/ and
eval/ for uses of it:

- `decode(AsrRequest) -> AsrHypothesis`: every streaming decode (pipelines/executor.py);
- `model_name`: stored with each session as the model that produced its transcript (pipelines/session.py) and
  reported by `harken eval asr` (eval/asr.py);
- `transcribe_offline(audio, language, beam_size)`: the whole-file baseline of `harken eval asr --offline`.

`beam_size`, `final_beam_size`, `is_multilingual`, `device`, `pad_audio` and `window_frames` are WhisperBackend
internals: nothing outside models/asr.py reads them, so a backend need not have them (LanguageRouter still
forwards them to its default backend for code that inspects a Whisper backend directly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from models.asr import AsrHypothesis, AsrRequest


@runtime_checkable
class AsrBackend(Protocol):
    """A speech recogniser the pipeline can run: WhisperBackend, SherpaOnnxBackend, FunAsrOnnxBackend, LanguageRouter.

    `decode` is called from several executor worker threads at once and must be thread-safe; word times of its
    hypothesis are relative to the start of `request.audio` (mono 16 kHz float32). A backend may ignore request
    fields it has no use for (`prompt`, `prefix`, `beam_size` and the like): they steer Whisper's decoder.
    """

    model_name: str

    def decode(self, request: AsrRequest) -> AsrHypothesis: ...

    def transcribe_offline(self, audio: np.ndarray, language: str | None, beam_size: int = 5,
                           vocabulary: str = "") -> str: ...


class AsrBackendError(RuntimeError):
    """A model directory cannot serve as an ASR backend: missing, incomplete, malformed, or its runtime is absent.

    The message names the directory and, where one is at fault, the file, so an operator can fix the deployment
    without reading a stack trace.
    """

    def __init__(self, directory: str | Path, problem: str, *, file: str | None = None,
                 hint: str | None = None) -> None:
        self.directory = Path(directory)
        self.file = file
        self.problem = problem
        message = f"ASR model directory {self.directory}: " + (f"{file}: {problem}" if file else problem)
        if hint:
            message += f" ({hint})"
        super().__init__(message)
