"""Voice emotion (arousal) from the audio itself: features, per-call normalisation, numpy runtime.

See `classifier.VoiceEmotionClassifier` for the API the pipeline calls, and
models/weights/voice_emotion/MODEL_CARD.md for the data, metrics and how to retrain.
"""

from models.voice_emotion.classifier import UNKNOWN, VoiceEmotionClassifier, VoiceEmotionResult
from models.voice_emotion.model import AROUSAL_WEIGHTS, EMOTIONS, VoiceEmotionModel
from models.voice_emotion.normalization import CallFeatureStats, FeaturePrior

__all__ = [
    "AROUSAL_WEIGHTS",
    "EMOTIONS",
    "UNKNOWN",
    "CallFeatureStats",
    "FeaturePrior",
    "VoiceEmotionClassifier",
    "VoiceEmotionModel",
    "VoiceEmotionResult",
]
