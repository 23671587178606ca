"""EmoDB as laid out in shared/data/emotion/emodb: `labels.csv` (file, speaker, text_id, emotion) + FLAC audio."""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from models.voice_emotion.features import FeatureExtractor, prepare_audio
from models.voice_emotion.telephone import telephone_band

log = logging.getLogger(__name__)
BANDS: tuple[str, ...] = ("wideband", "telephone")


@dataclass(frozen=True, slots=True)
class EmoUtterance:
    """One labelled EmoDB recording."""

    audio_path: Path
    speaker: str
    text_id: str
    emotion: str


@dataclass(frozen=True, slots=True)
class FeatureTable:
    """Raw features of a list of utterances in one or more bands, in the utterances' order.

    `features[band]` is (n, features); `extract_ms[band]` the per-utterance extraction wall time (prepare +
    extractor), `extract_cpu_ms[band]` the same in this thread's CPU time (what contention on a shared machine
    does not inflate). `feature_set` names the extractor.
    """

    utterances: tuple[EmoUtterance, ...]
    features: dict[str, np.ndarray]
    extract_ms: dict[str, np.ndarray]
    feature_set: str = ""
    extract_cpu_ms: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def speakers(self) -> np.ndarray:
        return np.array([u.speaker for u in self.utterances])

    @property
    def labels(self) -> np.ndarray:
        return np.array([u.emotion for u in self.utterances])


def read_labels(labels_csv: Path) -> list[EmoUtterance]:
    """Rows of an EmoDB labels.csv, audio paths resolved against the CSV's folder."""
    root = labels_csv.parent
    with labels_csv.open(newline="", encoding="utf-8") as f:
        return [
            EmoUtterance(root / row["file"], str(row["speaker"]), str(row["text_id"]), str(row["emotion"]))
            for row in csv.DictReader(f)
        ]


def load_audio(utterance: EmoUtterance) -> tuple[np.ndarray, int]:
    """Mono float32 audio and its sample rate."""
    pcm, rate_hz = sf.read(utterance.audio_path, dtype="float32", always_2d=False)
    return pcm, int(rate_hz)


def band_audio(pcm: np.ndarray, rate_hz: int, band: str) -> tuple[np.ndarray, int]:
    """The utterance as heard in `band`: unchanged (wideband) or through the telephone channel simulation."""
    if band == "wideband":
        return pcm, rate_hz
    if band == "telephone":
        prepared = prepare_audio(pcm, rate_hz, max_duration_s=None)
        return telephone_band(prepared.pcm_f32, 16000), 16000
    raise ValueError(f"unknown band {band!r}")


def extract_table(utterances: list[EmoUtterance], extractor: FeatureExtractor,
                  bands: tuple[str, ...] = BANDS) -> FeatureTable:
    """Extract raw features for every utterance in every band (fast set: a few ms each; ComParE: ~40-80 ms)."""
    feats: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    times: dict[str, list[float]] = {b: [] for b in bands}
    cpu_times: dict[str, list[float]] = {b: [] for b in bands}
    for i, utt in enumerate(utterances):
        pcm, rate_hz = load_audio(utt)
        for band in bands:
            audio, audio_rate_hz = band_audio(pcm, rate_hz, band)
            t0, c0 = time.perf_counter(), time.thread_time()
            prepared = prepare_audio(audio, audio_rate_hz)
            feats[band].append(extractor.extract(prepared.pcm_f32))
            cpu_times[band].append((time.thread_time() - c0) * 1000.0)
            times[band].append((time.perf_counter() - t0) * 1000.0)
        if (i + 1) % 100 == 0:
            log.info("features: %d/%d utterances", i + 1, len(utterances))
    return FeatureTable(
        utterances=tuple(utterances),
        features={b: np.stack(v) for b, v in feats.items()},
        extract_ms={b: np.array(v) for b, v in times.items()},
        feature_set=extractor.feature_set,
        extract_cpu_ms={b: np.array(v) for b, v in cpu_times.items()},
    )
