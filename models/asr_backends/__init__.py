"""Pluggable ASR backends (issue 11): Mandarin-native models from a local directory next to Whisper.

- `AsrBackend`: the interface the pipeline relies on (decode, transcribe_offline, model_name);
- `SherpaOnnxBackend`: sherpa-onnx directories (streaming / offline Zipformer transducer, Paraformer, SenseVoice);
- `FunAsrOnnxBackend`: FunASR ONNX exports (Paraformer, SenseVoiceSmall) through `funasr_onnx`;
- `LanguageRouter`: Chinese to the Mandarin backend, everything else to Whisper.

Runtimes are optional (`pip install 'harken[mandarin]'` for sherpa-onnx; funasr-onnx as funasr.py says) and
imported only when a model is loaded. Configure with HARKEN_ASR_ZH_BACKEND (see `models.loader.load_zh_backend`).
"""

from models.asr_backends.base import AsrBackend, AsrBackendError
from models.asr_backends.funasr import FunAsrOnnxBackend
from models.asr_backends.router import LanguageRouter
from models.asr_backends.sherpa import SherpaOnnxBackend

__all__ = ["AsrBackend", "AsrBackendError", "FunAsrOnnxBackend", "LanguageRouter", "SherpaOnnxBackend"]
