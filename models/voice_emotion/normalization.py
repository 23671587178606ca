"""Per-call feature normalisation with a global prior (speaker adaptation without enrolment).

Speaker-independent emotion recognition gains a lot from normalising each speaker's features by that speaker's
own statistics (a loud, high-pitched speaker is not angry all the time). Live, the speaker is the caller on one
channel of one call, and we only see the utterances so far. `CallFeatureStats` keeps running statistics for one
channel of one call (Welford) and blends them with the training set's within-speaker prior as if the prior were
`prior_weight` extra utterances: the first utterance of a call is normalised almost globally, later ones more
and more by the caller's own voice. Training normalises each (speaker, band) group the same way, from the
group's full statistics; the eval reports both that and the running (live) variant.

A caveat worth knowing: a caller who is angry from the first to the last word pulls the running mean towards
anger; the prior damps that for the first few utterances, and fusion with the words covers the rest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class FeaturePrior:
    """Global prior for normalisation: mean and within-speaker variance of each feature, and its weight."""

    mean: np.ndarray
    var: np.ndarray
    weight_utterances: float

    def normalise(self, features: np.ndarray, count: int = 0, call_mean: np.ndarray | None = None,
                  call_m2: np.ndarray | None = None) -> np.ndarray:
        """Z-score `features` (1-D or 2-D) with the prior blended with a call's (count, mean, M2) statistics."""
        n0 = float(self.weight_utterances)
        if count == 0 or call_mean is None or call_m2 is None:
            mean, var = self.mean, self.var
        else:
            total = n0 + count
            delta = call_mean - self.mean
            mean = self.mean + delta * (count / total)
            var = (n0 * self.var + call_m2 + np.square(delta) * (n0 * count / total)) / total
        # Floor relative to the prior so a feature that never moves in one call does not explode.
        std = np.sqrt(np.maximum(var, 1e-6 * self.var + 1e-12))
        return (features - mean) / std


class CallFeatureStats:
    """Running feature statistics for one speaker channel of one call. Thread-safe; one per channel per call.

    Create it with `VoiceEmotionClassifier.new_call_stats()` when a session starts and pass it to every
    `classify` call for that channel. Only usable utterances (not silence, not too short) update it.
    """

    def __init__(self, num_features: int) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._mean = np.zeros(num_features, dtype=np.float64)
        self._m2 = np.zeros(num_features, dtype=np.float64)

    @property
    def count(self) -> int:
        """Number of utterances folded in so far."""
        with self._lock:
            return self._count

    def update_and_normalise(self, features: np.ndarray, prior: FeaturePrior) -> np.ndarray:
        """Fold one utterance's raw features in, then normalise them with the stats including it."""
        x = features.astype(np.float64)
        with self._lock:
            self._count += 1
            delta = x - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (x - self._mean)
            count, mean, m2 = self._count, self._mean.copy(), self._m2.copy()
        return prior.normalise(x, count, mean, m2)


def group_normalise(features: np.ndarray, prior: FeaturePrior) -> np.ndarray:
    """Normalise all rows of one group (a speaker in one band) with the group's full statistics and the prior."""
    x = features.astype(np.float64)
    mean = x.mean(axis=0)
    m2 = np.square(x - mean).sum(axis=0)
    return prior.normalise(x, len(x), mean, m2)


def running_normalise(features: np.ndarray, prior: FeaturePrior) -> np.ndarray:
    """Normalise rows in order as the live pipeline would: each row with the stats of itself and those before."""
    stats = CallFeatureStats(features.shape[1])
    return np.stack([stats.update_and_normalise(row, prior) for row in features])


def fit_prior(features: np.ndarray, groups: np.ndarray, weight_utterances: float) -> FeaturePrior:
    """Prior from training groups: the mean of group means and the mean within-group variance."""
    labels = np.unique(groups)
    means = np.stack([features[groups == g].mean(axis=0) for g in labels])
    variances = np.stack([features[groups == g].var(axis=0) for g in labels])
    return FeaturePrior(mean=means.mean(axis=0), var=variances.mean(axis=0), weight_utterances=weight_utterances)
