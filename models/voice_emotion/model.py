"""The packaged voice-emotion model: a multinomial logistic regression over normalised acoustic functionals.

Stored as one compressed .npz (weights, bias, normalisation prior, class names, feature set, provenance) and run
with numpy: a 7 x 1,095 matrix product needs no ONNX graph. The feature set named in the file picks the
extractor at load time (models/voice_emotion/features.py). Training lives in models/training_voice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.voice_emotion.normalization import FeaturePrior

EMOTIONS: tuple[str, ...] = ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness")
# Arousal of each EmoDB class: high for anger, fear, happiness; disgust in between; low for the rest.
AROUSAL_WEIGHTS: dict[str, float] = {
    "anger": 1.0,
    "fear": 1.0,
    "happiness": 1.0,
    "disgust": 0.5,
    "boredom": 0.0,
    "neutral": 0.0,
    "sadness": 0.0,
}
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "voice_emotion"
DEFAULT_MODEL_PATH = WEIGHTS_DIR / "voice_emotion.npz"


@dataclass(frozen=True, slots=True)
class VoiceEmotionModel:
    """Weights and provenance of one trained model. `weights` is (classes, features)."""

    classes: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    prior: FeaturePrior
    feature_set: str
    train_speakers: tuple[str, ...]
    name: str = "voice-emotion-fast-lr"
    version: str = "1"

    @property
    def model_id(self) -> str:
        """'name@version', as written into annotations."""
        return f"{self.name}@{self.version}"

    @property
    def num_features(self) -> int:
        return int(self.weights.shape[1])

    def probabilities(self, normalised: np.ndarray) -> np.ndarray:
        """Class probabilities for normalised features, (features,) -> (classes,) or (n, features) -> (n, classes)."""
        # einsum, not `@`: the service does not pin BLAS threads, and OpenBLAS may spread even a small product
        # over every core, which on a busy machine costs more than the product itself.
        logits = np.einsum("...f,cf->...c", np.asarray(normalised, dtype=np.float64), self.weights) + self.bias
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=-1, keepdims=True)

    def arousal(self, probabilities: np.ndarray) -> np.ndarray:
        """Expected arousal in [0, 1] under the class probabilities."""
        w = np.array([AROUSAL_WEIGHTS[c] for c in self.classes])
        return probabilities @ w

    def save(self, path: Path) -> None:
        """Write the model as a compressed .npz (float32 weights)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            classes=np.array(self.classes),
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            prior_mean=self.prior.mean.astype(np.float32),
            prior_var=self.prior.var.astype(np.float32),
            prior_weight=np.float32(self.prior.weight_utterances),
            feature_set=np.array(self.feature_set),
            train_speakers=np.array(self.train_speakers),
            name=np.array(self.name),
            version=np.array(self.version),
        )

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL_PATH) -> VoiceEmotionModel:
        """Read a model written by `save` (no pickles)."""
        with np.load(path, allow_pickle=False) as d:
            return cls(
                classes=tuple(str(c) for c in d["classes"]),
                weights=d["weights"].astype(np.float64),
                bias=d["bias"].astype(np.float64),
                prior=FeaturePrior(
                    mean=d["prior_mean"].astype(np.float64),
                    var=d["prior_var"].astype(np.float64),
                    weight_utterances=float(d["prior_weight"]),
                ),
                feature_set=str(d["feature_set"]),
                train_speakers=tuple(str(s) for s in d["train_speakers"]),
                name=str(d["name"]),
                version=str(d["version"]),
            )
