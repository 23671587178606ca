"""`VoiceEmotionClassifier`: voice emotion and arousal of one utterance, from its audio alone.

How the pipeline uses it (from a worker thread, never on the event loop):

    clf = VoiceEmotionClassifier.from_packaged()          # once per process; loads ~40 kB, no import-time work
    stats = clf.new_call_stats()                           # once per call and speaker channel
    result = clf.classify(segment_pcm_f32, sample_rate_hz=16000, call_stats=stats)   # on each final segment
    annotation = result.to_annotation(session_id, segment_id, channel)
    cue = result.to_cue()                                  # for intelligence.escalation / fusion

`classify` is thread-safe: the model and the extractor are read-only, and `CallFeatureStats` has its own lock.
It never raises on bad audio: silence, less than 0.3 s or empty input gives label 'unknown' with confidence 0
(and does not touch the call's statistics); clipped or over-long (> 20 s, the last 20 s are kept) input is
classified and flagged in `issues`. The extractor is the one the model was trained with (its `feature_set`):
for the packaged model (harken-fast-v1) it analyses at most the last 8 s, and classification costs about
3-5 ms of CPU for a 2 s utterance and ~9-13 ms at or beyond the 8 s cap, on one core (`harken eval
voice-emotion`, key latency_by_duration; see the model card).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from intelligence.fusion import VoiceCue
from intelligence.types import Annotation
from models.voice_emotion.features import (
    MODEL_SAMPLE_RATE_HZ,
    FeatureExtractor,
    PreparedAudio,
    extractor_for,
    prepare_audio,
)
from models.voice_emotion.model import DEFAULT_MODEL_PATH, VoiceEmotionModel
from models.voice_emotion.normalization import CallFeatureStats

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class VoiceEmotionResult:
    """Voice emotion of one utterance.

    `label`: an EmoDB class (anger, boredom, disgust, fear, happiness, neutral, sadness) or 'unknown'.
    `confidence`: the label's probability (0 for unknown). `arousal`: expected arousal in [0, 1] (0.5 when
    unknown, i.e. no information). `issues`: what the input checks found (see features.PreparedAudio).
    """

    label: str
    confidence: float
    probabilities: dict[str, float]
    arousal: float
    duration_s: float
    issues: tuple[str, ...]
    model: str
    normalised_with_utterances: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.label != UNKNOWN

    @property
    def anger(self) -> float:
        """Voice anger evidence in [0, 1]: P(anger) plus half of P(disgust)."""
        return min(1.0, self.probabilities.get("anger", 0.0) + 0.5 * self.probabilities.get("disgust", 0.0))

    def to_cue(self) -> VoiceCue:
        """The part fusion needs (intelligence.fusion)."""
        return VoiceCue(label=self.label, confidence=self.confidence, arousal=self.arousal, anger=self.anger,
                        usable=self.usable, duration_s=self.duration_s)

    def to_annotation(self, session_id: str, segment_id: str, channel: int) -> Annotation:
        """An `Annotation` with task 'voice_emotion' (probabilities, arousal and issues in `extra`)."""
        return Annotation(
            session_id=session_id,
            segment_id=segment_id,
            channel=channel,
            task="voice_emotion",
            label=self.label,
            score=round(self.confidence, 4),
            model=self.model,
            extra={
                "arousal": round(self.arousal, 4),
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
                "issues": list(self.issues),
            },
        )


class VoiceEmotionClassifier:
    """Classifies utterances with a `VoiceEmotionModel`, normalising per call when given `CallFeatureStats`."""

    def __init__(self, model: VoiceEmotionModel, extractor: FeatureExtractor | None = None) -> None:
        self.model = model
        self._extractor = extractor or extractor_for(model.feature_set)
        if self._extractor.feature_set != model.feature_set:
            raise ValueError(f"model was trained on {model.feature_set}, extractor gives {self._extractor.feature_set}")
        if self._extractor.num_features != model.num_features:
            raise ValueError(
                f"model expects {model.num_features} features, extractor gives {self._extractor.num_features}"
            )

    @classmethod
    def from_packaged(cls, path: Path = DEFAULT_MODEL_PATH) -> VoiceEmotionClassifier:
        """Load the model shipped in models/weights/voice_emotion (or another .npz written by training)."""
        return cls(VoiceEmotionModel.load(path))

    def new_call_stats(self) -> CallFeatureStats:
        """Fresh per-call statistics for one speaker channel."""
        return CallFeatureStats(self.model.num_features)

    def prepare(self, pcm: np.ndarray, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ) -> PreparedAudio:
        """Input checks and conditioning only (exposed for eval and tests)."""
        return prepare_audio(pcm, sample_rate_hz)

    def raw_features(self, prepared: PreparedAudio) -> np.ndarray:
        """Unnormalised features (the model's feature set) of a usable prepared utterance."""
        return self._extractor.extract(prepared.pcm_f32)

    def classify(self, pcm: np.ndarray, sample_rate_hz: int = MODEL_SAMPLE_RATE_HZ,
                 call_stats: CallFeatureStats | None = None) -> VoiceEmotionResult:
        """Voice emotion of one utterance (int16 or float PCM, mono). Never raises on bad audio.

        With `call_stats`, the utterance updates that call's statistics and is normalised with them (blended
        with the global prior); without, it is normalised with the prior alone.
        """
        prepared = self.prepare(pcm, sample_rate_hz)
        if not prepared.usable:
            return self._unknown(prepared)
        features = self.raw_features(prepared)
        return self.classify_features(features, prepared.duration_s, prepared.issues, call_stats)

    def classify_features(self, features: np.ndarray, duration_s: float, issues: tuple[str, ...] = (),
                          call_stats: CallFeatureStats | None = None) -> VoiceEmotionResult:
        """Classify already extracted raw features (lets eval time extraction and normalisation apart)."""
        if call_stats is not None:
            normalised = call_stats.update_and_normalise(features, self.model.prior)
            used = call_stats.count
        else:
            normalised = self.model.prior.normalise(features)
            used = 0
        probs = self.model.probabilities(normalised)
        best = int(np.argmax(probs))
        return VoiceEmotionResult(
            label=self.model.classes[best],
            confidence=float(probs[best]),
            probabilities={c: float(p) for c, p in zip(self.model.classes, probs, strict=True)},
            arousal=float(self.model.arousal(probs)),
            duration_s=duration_s,
            issues=issues,
            model=self.model.model_id,
            normalised_with_utterances=used,
        )

    def _unknown(self, prepared: PreparedAudio) -> VoiceEmotionResult:
        return VoiceEmotionResult(
            label=UNKNOWN,
            confidence=0.0,
            probabilities={c: 0.0 for c in self.model.classes},
            arousal=0.5,
            duration_s=prepared.duration_s,
            issues=prepared.issues,
            model=self.model.model_id,
        )
