"""Acoustic features for voice emotion: input checks and the feature extractors a model can be trained on.

Two feature sets, chosen by the model file (its `feature_set`), so a model always runs with what it was trained on:
  harken-fast-v1  numpy spectral + prosodic functionals (models/voice_emotion/fast_features.py), 1,095 values,
                  ~3-4 ms of CPU for a 2 s utterance; the packaged model
  ComParE_2016    openSMILE ComParE 2016 functionals, 6,373 values, ~40 ms for 2 s and ~115 ms for 10 s; kept
                  for comparison (`harken train voice-emotion --features compare --out X.npz`)
  eGeMAPSv02      openSMILE eGeMAPS functionals, 88 values, no cheaper than ComParE (its pitch and formant
                  trackers); kept for comparison only
Measured with leave-one-speaker-out on the 8 EmoDB speakers in shared/ (logistic regression, per-speaker
normalisation), the fast set scored higher than ComParE on both bands; the table is in the model card.
openSMILE ships its C++ library inside the `opensmile` wheel (offline, no torch) and builds a fresh native
instance for every call, so both extractors are safe to share between threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import soxr

MODEL_SAMPLE_RATE_HZ = 16000
MIN_DURATION_S = 0.3
MAX_DURATION_S = 20.0
# Loudest 25 ms frame below this is treated as silence: nothing to classify.
SILENCE_PEAK_DBFS = -50.0
# More than this share of samples at full scale: the signal is clipped (still classified, flagged).
CLIPPED_SHARE = 0.005
_FULL_SCALE = 0.999
_FRAME_S = 0.025
# openSMILE converts float audio with int16(x * 32768): keep +1.0 from wrapping round to -32768.
_INT16_SAFE_MAX = 32767.0 / 32768.0


@dataclass(frozen=True, slots=True)
class PreparedAudio:
    """Mono float32 audio at 16 kHz ready for feature extraction, and what the checks found.

    `issues` may hold 'too_short', 'silence', 'empty' (nothing usable: do not classify), and 'clipped' or
    'truncated' (classified anyway). `duration_s` is the input's duration before truncation.
    """

    pcm_f32: np.ndarray
    duration_s: float
    issues: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return not ({"too_short", "silence", "empty"} & set(self.issues))


def to_mono_f32(pcm: np.ndarray) -> np.ndarray:
    """Float32 mono in [-1, 1] from int16 or float input, 1-D or (samples, channels); NaN/inf become 0."""
    x = np.asarray(pcm)
    if x.ndim == 2:
        x = x.mean(axis=1) if x.shape[1] <= x.shape[0] else x.mean(axis=0)
    x = x.reshape(-1)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / 32768.0
    x = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(x, -1.0, 1.0)


def peak_frame_dbfs(pcm_f32: np.ndarray, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> float:
    """RMS level of the loudest 25 ms frame, in dBFS (-inf for digital silence)."""
    frame = max(1, int(_FRAME_S * sample_rate_hz))
    n = len(pcm_f32) // frame
    if n == 0:
        rms = float(np.sqrt(np.mean(np.square(pcm_f32)))) if len(pcm_f32) else 0.0
    else:
        frames = pcm_f32[: n * frame].reshape(n, frame).astype(np.float64)
        rms = float(np.sqrt(np.square(frames).mean(axis=1)).max())
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def prepare_audio(pcm: np.ndarray, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ,
                  max_duration_s: float | None = MAX_DURATION_S) -> PreparedAudio:
    """Check and condition one utterance: mono, 16 kHz, at most `max_duration_s` (its last part is kept)."""
    x = to_mono_f32(pcm)
    if sample_rate_hz != MODEL_SAMPLE_RATE_HZ and len(x):
        x = soxr.resample(x, sample_rate_hz, MODEL_SAMPLE_RATE_HZ).astype(np.float32)
    duration_s = len(x) / MODEL_SAMPLE_RATE_HZ
    issues: list[str] = []
    if len(x) == 0:
        return PreparedAudio(x, 0.0, ("empty",))
    if duration_s < MIN_DURATION_S:
        issues.append("too_short")
    if peak_frame_dbfs(x) < SILENCE_PEAK_DBFS:
        issues.append("silence")
    if float(np.mean(np.abs(x) >= _FULL_SCALE)) > CLIPPED_SHARE:
        issues.append("clipped")
    max_samples = len(x) if max_duration_s is None else int(max_duration_s * MODEL_SAMPLE_RATE_HZ)
    if len(x) > max_samples:
        # The most recent speech matters most for escalation, and functionals need no more than ~20 s.
        x = x[-max_samples:]
        issues.append("truncated")
    return PreparedAudio(x, duration_s, tuple(issues))


class FeatureExtractor(Protocol):
    """What the classifier and training need from a feature extractor."""

    feature_set: str
    feature_names: tuple[str, ...]

    @property
    def num_features(self) -> int: ...

    def extract(self, pcm_f32_16k: np.ndarray) -> np.ndarray:
        """Raw features (float64, finite) of one prepared utterance."""
        ...


FAST_FEATURE_SET = "harken-fast-v1"
COMPARE_FEATURE_SET = "ComParE_2016"
EGEMAPS_FEATURE_SET = "eGeMAPSv02"
# Short names for the command line.
FEATURE_SETS: dict[str, str] = {"fast": FAST_FEATURE_SET, "compare": COMPARE_FEATURE_SET,
                                "egemaps": EGEMAPS_FEATURE_SET}


def extractor_for(feature_set: str) -> FeatureExtractor:
    """The extractor of a model's feature set (a full name, or 'fast' / 'compare' / 'egemaps')."""
    name = FEATURE_SETS.get(feature_set, feature_set)
    if name == FAST_FEATURE_SET:
        from models.voice_emotion.fast_features import FastFeatureExtractor

        return FastFeatureExtractor()
    if name in (COMPARE_FEATURE_SET, EGEMAPS_FEATURE_SET):
        return OpenSmileExtractor(name)
    raise ValueError(f"unknown voice-emotion feature set {feature_set!r} (known: {sorted(FEATURE_SETS.values())})")


class OpenSmileExtractor:
    """openSMILE functionals for one utterance: ComParE 2016 (6,373 values) or eGeMAPS v02 (88). Thread-safe."""

    def __init__(self, feature_set: str = COMPARE_FEATURE_SET) -> None:
        import opensmile  # lazy: keeps `import models.voice_emotion` cheap, and opensmile off the default path

        self.feature_set = feature_set
        self._smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, feature_set),
            feature_level=opensmile.FeatureLevel.Functionals,
        )
        self.feature_names: tuple[str, ...] = tuple(self._smile.feature_names)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    def extract(self, pcm_f32_16k: np.ndarray) -> np.ndarray:
        """Functionals of a prepared (mono, 16 kHz, >= 0.3 s) utterance; non-finite values become 0."""
        x = np.clip(pcm_f32_16k.astype(np.float32), -1.0, _INT16_SAFE_MAX)
        frame = self._smile.process_signal(x, MODEL_SAMPLE_RATE_HZ)
        values = frame.to_numpy(dtype=np.float64)[0]
        return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
