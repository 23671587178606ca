"""Speaker embeddings for diarization: Resemblyzer's GE2E encoder (256-d) run by ONNX Runtime.

The weights come from the `resemblyzer` wheel (Apache-2.0), converted once by
`models/training/export_speaker_encoder.py` (checked equal to Resemblyzer to 1e-4 cosine). The front end is the
encoder's own: 40-band power mel spectrogram, 25 ms windows, 10 ms hop at 16 kHz (librosa), 1.6 s windows.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE_HZ = 16000
HOP_SAMPLES = 160  # 10 ms mel hop
WINDOW_FRAMES = 160  # 1.6 s per embedding, as the encoder was trained
EMBEDDING_DIM = 256
TARGET_DBFS = -30.0  # Resemblyzer's volume normalisation (raise quiet audio only)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "speaker" / "ge2e.onnx"


class SpeakerModelError(RuntimeError):
    """The speaker model file is missing or not a usable ONNX encoder."""


@dataclass(frozen=True)
class WindowEmbeddings:
    """Embeddings of consecutive windows; window i covers [start_s[i], start_s[i] + window_s)."""

    start_s: np.ndarray  # (n,)
    window_s: float
    vectors: np.ndarray  # (n, 256), L2-normalised


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=400, n_mels=40).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window("hann", 400, fftbins=True).astype(np.float32)


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram of 16 kHz float audio, one frame per 10 ms.

    Equal (to float rounding) to `librosa.feature.melspectrogram(sr=16000, n_fft=400, hop_length=160,
    n_mels=40)`, what the encoder was trained on, with the filter bank built once and the STFT done directly with
    numpy: librosa's per-call checks cost ~20 ms on a 1.6 s window, more than the encoder itself.
    """
    x = np.pad(wav.astype(np.float32, copy=False), 200)  # center=True, zero padding (librosa's default)
    n = 1 + (len(x) - 400) // HOP_SAMPLES
    if n <= 0:
        return np.zeros((0, 40), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::HOP_SAMPLES][:n] * _window()
    power = np.abs(np.fft.rfft(frames, axis=1)).astype(np.float32) ** 2
    return np.ascontiguousarray(power @ _mel_basis().T, dtype=np.float32)


def normalize_volume(wav: np.ndarray) -> np.ndarray:
    """Raise quiet audio to -30 dBFS (never lower it), as the encoder's training data was."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms <= 1e-6:
        return wav
    gain_db = TARGET_DBFS - 20.0 * np.log10(rms)
    return wav * np.float32(10 ** (gain_db / 20.0)) if gain_db > 0 else wav


class SpeakerEncoder:
    """Thread-safe ONNX speaker encoder. One instance can serve every session."""

    def __init__(self, weights: str | Path = DEFAULT_WEIGHTS, num_threads: int = 1) -> None:
        path = Path(weights)
        if not path.is_file():
            raise SpeakerModelError(f"speaker model not found: {path}")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for corrupt or foreign files
            raise SpeakerModelError(f"{path} is not a usable ONNX speaker encoder: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].shape[-1] != 40:
            raise SpeakerModelError(f"{path}: expected one input of 40 mel bands, got {inputs}")
        self._lock = threading.Lock()

    def embed_mels(self, windows: np.ndarray) -> np.ndarray:
        """(n, frames, 40) mel windows -> (n, 256) L2-normalised embeddings."""
        if len(windows) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        with self._lock:  # one ORT run at a time keeps per-session CPU use predictable on small machines
            out = self._session.run(None, {"mels": windows.astype(np.float32, copy=False)})[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)

    def embed_windows(self, wav: np.ndarray, hop_s: float = 0.4, window_s: float = 1.6,
                      offset_s: float = 0.0, batch: int = 64) -> WindowEmbeddings:
        """Embed every `window_s` window of `wav` (16 kHz float) stepping `hop_s`; times offset by `offset_s`."""
        frames_per_window = int(round(window_s * 100))
        hop_frames = max(1, int(round(hop_s * 100)))
        mel = mel_frames(normalize_volume(wav))
        if len(mel) < frames_per_window:
            return WindowEmbeddings(np.zeros(0), window_s, np.zeros((0, EMBEDDING_DIM), dtype=np.float32))
        starts = np.arange(0, len(mel) - frames_per_window + 1, hop_frames)
        vecs = []
        for i in range(0, len(starts), batch):
            chunk = np.stack([mel[s : s + frames_per_window] for s in starts[i : i + batch]])
            vecs.append(self.embed_mels(chunk))
        return WindowEmbeddings(offset_s + starts / 100.0, window_s, np.concatenate(vecs))
