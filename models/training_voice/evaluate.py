"""Scoring of the voice-emotion model: leave-one-speaker-out on seen speakers, or the shipped model on unseen ones.

Three normalisation modes, all per speaker (one speaker = one call channel live):
  call-running  each utterance normalised with the speaker's utterances so far, in file order (what the live
                pipeline does with `CallFeatureStats`)
  call-batch    each utterance normalised with all of that speaker's utterances (the end-of-call view)
  global        the training prior only (no adaptation: a first utterance)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from models.training_voice.data import FeatureTable
from models.training_voice.train import DEFAULT_C, DEFAULT_PRIOR_WEIGHT, fit_model
from models.voice_emotion.model import AROUSAL_WEIGHTS, VoiceEmotionModel
from models.voice_emotion.normalization import group_normalise, running_normalise

NORM_MODES: tuple[str, ...] = ("call-running", "call-batch", "global")


@dataclass(frozen=True, slots=True)
class Predictions:
    """Per-utterance probabilities for every (band, normalisation mode), aligned with the table's utterances."""

    classes: tuple[str, ...]
    probabilities: dict[tuple[str, str], np.ndarray]
    classify_ms: np.ndarray  # normalise + predict wall time per utterance (call-running, wideband)
    protocol: str
    model_ids: tuple[str, ...]
    classify_cpu_ms: np.ndarray | None = None  # the same in thread CPU time


def normalise_speaker(model: VoiceEmotionModel, raw: np.ndarray, mode: str) -> np.ndarray:
    """Normalise one speaker's rows (file order) under `mode`."""
    if mode == "call-running":
        return running_normalise(raw, model.prior)
    if mode == "call-batch":
        return group_normalise(raw, model.prior)
    if mode == "global":
        return model.prior.normalise(raw.astype(np.float64))
    raise ValueError(f"unknown normalisation mode {mode!r}")


def _predict_speaker(model: VoiceEmotionModel, table: FeatureTable, idx: np.ndarray,
                     out: dict[tuple[str, str], np.ndarray], classify_ms: np.ndarray,
                     classify_cpu_ms: np.ndarray) -> None:
    for band, feats in table.features.items():
        for mode in NORM_MODES:
            if band == "wideband" and mode == "call-running":
                # Time the live path one utterance at a time: running normalisation + softmax.
                from models.voice_emotion.normalization import CallFeatureStats

                stats = CallFeatureStats(model.num_features)
                for i in idx:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    p = model.probabilities(stats.update_and_normalise(feats[i], model.prior))
                    classify_cpu_ms[i] = (time.thread_time() - c0) * 1000.0
                    classify_ms[i] = (time.perf_counter() - t0) * 1000.0
                    out[(band, mode)][i] = p
            else:
                out[(band, mode)][idx] = model.probabilities(normalise_speaker(model, feats[idx], mode))


def predict_loso(table: FeatureTable, c: float = DEFAULT_C,
                 prior_weight: float = DEFAULT_PRIOR_WEIGHT) -> Predictions:
    """Leave-one-speaker-out: for each speaker, train on the others (both bands) and predict that speaker."""
    speakers = table.speakers
    labels = table.labels
    n = len(labels)
    out: dict[tuple[str, str], np.ndarray] = {}
    classify_ms = np.zeros(n)
    classify_cpu_ms = np.zeros(n)
    classes: tuple[str, ...] = ()
    for spk in sorted(set(speakers)):
        test = speakers == spk
        train = ~test
        model = fit_model({b: f[train] for b, f in table.features.items()}, labels[train], speakers[train],
                          c=c, prior_weight=prior_weight, feature_set=table.feature_set)
        classes = model.classes
        if not out:
            out = {(b, m): np.zeros((n, len(classes))) for b in table.features for m in NORM_MODES}
        _predict_speaker(model, table, np.where(test)[0], out, classify_ms, classify_cpu_ms)
    return Predictions(classes, out, classify_ms, "loso", (f"loso-{table.feature_set}-c{c}-n0{prior_weight}",),
                       classify_cpu_ms)


def predict_held_out(table: FeatureTable, model: VoiceEmotionModel) -> Predictions:
    """The shipped model on speakers it was not trained on (refuses speakers it has seen)."""
    seen = sorted(set(table.speakers) & set(model.train_speakers))
    if seen:
        raise ValueError(f"speakers {seen} were used to train {model.model_id}: use the LOSO protocol")
    n = len(table.utterances)
    out = {(b, m): np.zeros((n, len(model.classes))) for b in table.features for m in NORM_MODES}
    if table.feature_set and table.feature_set != model.feature_set:
        raise ValueError(f"features are {table.feature_set}, {model.model_id} needs {model.feature_set}")
    classify_ms = np.zeros(n)
    classify_cpu_ms = np.zeros(n)
    speakers = table.speakers
    for spk in sorted(set(speakers)):
        _predict_speaker(model, table, np.where(speakers == spk)[0], out, classify_ms, classify_cpu_ms)
    return Predictions(model.classes, out, classify_ms, "held_out", (model.model_id,), classify_cpu_ms)


def score(labels: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...]) -> dict[str, object]:
    """UAR over the classes present, anger F1, per-class recall, confusion matrix and arousal AUC."""
    from sklearn.metrics import confusion_matrix, f1_score, recall_score, roc_auc_score

    pred = np.array(classes)[probabilities.argmax(axis=1)]
    present = [c for c in classes if c in set(labels)]
    recalls = recall_score(labels, pred, labels=present, average=None, zero_division=0)
    result: dict[str, object] = {
        "uar": round(float(np.mean(recalls)), 4),
        "anger_f1": round(float(f1_score(labels, pred, labels=["anger"], average="macro", zero_division=0)), 4),
        "accuracy": round(float(np.mean(pred == labels)), 4),
        "per_class_recall": {c: round(float(r), 4) for c, r in zip(present, recalls, strict=True)},
        "confusion": {"labels": list(classes),
                      "matrix": confusion_matrix(labels, pred, labels=list(classes)).tolist()},
    }
    # Arousal: high (anger, fear, happiness) vs low (boredom, neutral, sadness); disgust left out.
    weights = np.array([AROUSAL_WEIGHTS[c] for c in classes])
    arousal = probabilities @ weights
    high = np.isin(labels, ["anger", "fear", "happiness"])
    low = np.isin(labels, ["boredom", "neutral", "sadness"])
    if high.any() and low.any():
        keep = high | low
        result["arousal_auc"] = round(float(roc_auc_score(high[keep], arousal[keep])), 4)
    return result


def per_speaker_uar(labels: np.ndarray, speakers: np.ndarray, probabilities: np.ndarray,
                    classes: tuple[str, ...]) -> dict[str, float]:
    """UAR of each speaker on their own (classes that speaker has)."""
    out = {}
    for spk in sorted(set(speakers)):
        m = speakers == spk
        out[str(spk)] = score(labels[m], probabilities[m], classes)["uar"]
    return out  # type: ignore[return-value]
