"""Who spoke when on one channel: clustering speaker-embedding windows into speakers and turns.

Pure numpy / scikit-learn; the embeddings come from the caller (models/speaker.py in production). The method:
1. embed overlapping windows (1.6 s, 0.4 s hop) that are mostly speech;
2. agglomerative clustering (average linkage, cosine distance) with a tight threshold, so one speaker may be
   split in several clusters but two speakers are rarely joined;
3. clusters with too little speech to be a participant (stray windows of noise, laughter, a word of crosstalk)
   are absorbed into the nearest large cluster;
4. large clusters whose centroids are still very similar are merged (the same voice split by the tight
   threshold); `max_speakers` caps the count by merging the closest pair;
5. each speech frame takes the label of the nearest window centre; short gaps inside one speaker are filled.
The thresholds were chosen on ../shared/data/calls/dev mixed to one channel and on single-speaker channels (see
eval/diarization_cli.py and README).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DiarizationParams:
    """Clustering and segmentation settings (times in seconds, similarities as cosine)."""

    window_s: float = 1.6
    hop_s: float = 0.4
    min_speech_fraction: float = 0.5  # a window is used when at least this much of it is speech ...
    max_inner_pause_s: float = 0.25  # it shapes the clusters when it has no longer pause inside
    ahc_distance: float = 0.3  # tight first pass: 1 - cosine similarity
    merge_similarity: float = 0.86  # centroids closer than this are one voice
    min_cluster_s: float = 4.0  # a participant speaks at least this long ...
    min_cluster_fraction: float = 0.05  # ... and at least this share of the speech,
    distinct_similarity: float = 0.78  # ... unless its voice is this far from every larger cluster
    min_distinct_windows: int = 3  # (and it has a few windows of its own)
    max_speakers: int = 8
    fill_gap_s: float = 0.5  # a pause shorter than this inside one speaker's speech stays in the turn
    max_cluster_points: int = 1500  # past this, cluster a stride sample and assign the rest to centroids


@dataclass(frozen=True)
class SpeakerTurn:
    """One speaker's continuous speech."""

    start_s: float
    end_s: float
    speaker: str


def speaker_name(index: int) -> str:
    """Labels are numbered in order of first appearance: S1, S2, ..."""
    return f"S{index + 1}"


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _centroids(vectors: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    return {int(c): _normalise(vectors[labels == c].mean(axis=0)) for c in np.unique(labels)}


def cluster_windows(vectors: np.ndarray, params: DiarizationParams, max_speakers: int | None = None,
                    clean: np.ndarray | None = None) -> np.ndarray:
    """Speaker index per window (0, 1, ... in order of first appearance).

    `clean` marks windows whose speech is one stretch (no pause inside). Only those shape the clusters when there are enough of
    them: a window that straddles a pause often straddles a change of speaker too, and a handful of such mixed
    windows otherwise form a phantom speaker between the real two. The others are assigned to the nearest
    speaker afterwards.
    """
    n = len(vectors)
    if n < 3:
        return np.zeros(n, dtype=int)
    limit = max(1, min(max_speakers or params.max_speakers, params.max_speakers))
    core = np.ones(n, dtype=bool) if clean is None or clean.sum() < max(3, n // 4) else clean
    labels = _first_pass(vectors[core], params)
    labels = _absorb_small(vectors[core], labels, params)
    labels = _merge_similar(vectors[core], labels, params.merge_similarity, limit)
    full = np.empty(n, dtype=int)
    full[core] = labels
    if not core.all():
        cents = _centroids(vectors[core], labels)
        keys = np.array(list(cents))
        full[~core] = keys[np.argmax(vectors[~core] @ np.stack([cents[k] for k in keys]).T, axis=1)]
    return _in_order_of_appearance(full)


def _first_pass(vectors: np.ndarray, params: DiarizationParams) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    n = len(vectors)
    stride = int(np.ceil(n / params.max_cluster_points))
    sample = vectors[::stride]
    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=params.ahc_distance)
    sample_labels = model.fit(sample).labels_
    if stride == 1:
        return sample_labels
    cents = _centroids(sample, sample_labels)
    keys = np.array(list(cents))
    return keys[np.argmax(vectors @ np.stack([cents[k] for k in keys]).T, axis=1)]


def _absorb_small(vectors: np.ndarray, labels: np.ndarray, params: DiarizationParams) -> np.ndarray:
    """Fold clusters too small to be a participant into the nearest large one, unless the voice is clearly
    different from every large cluster (a customer who only says "yes" three times is still a speaker)."""
    counts = np.bincount(labels)
    min_windows = max(params.min_cluster_s / params.hop_s, params.min_cluster_fraction * len(labels))
    big = [int(c) for c in np.nonzero(counts >= min_windows)[0]] or [int(np.argmax(counts))]
    cents = _centroids(vectors, labels)
    for c in np.nonzero((counts > 0) & (counts < min_windows))[0]:
        distinct = max(float(cents[int(c)] @ cents[b]) for b in big) < params.distinct_similarity
        if distinct and counts[c] >= params.min_distinct_windows:
            big.append(int(c))
    big_c = np.stack([cents[c] for c in big])
    out = labels.copy()
    small = ~np.isin(labels, big)
    if small.any():
        out[small] = np.array(big)[np.argmax(vectors[small] @ big_c.T, axis=1)]
    return out


def _merge_similar(vectors: np.ndarray, labels: np.ndarray, similarity: float, limit: int) -> np.ndarray:
    labels = labels.copy()
    while True:
        cents = _centroids(vectors, labels)
        keys = list(cents)
        if len(keys) < 2:
            return labels
        mat = np.stack([cents[k] for k in keys])
        sims = mat @ mat.T
        np.fill_diagonal(sims, -1.0)
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[i, j] < similarity and len(keys) <= limit:
            return labels
        labels[labels == keys[j]] = keys[i]


def _in_order_of_appearance(labels: np.ndarray) -> np.ndarray:
    order: dict[int, int] = {}
    for lab in labels:
        order.setdefault(int(lab), len(order))
    return np.array([order[int(lab)] for lab in labels], dtype=int)


def frame_labels(speech: np.ndarray, frame_s: float, centres_s: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Label per VAD frame: the nearest window centre's speaker; -1 for non-speech (or no windows)."""
    out = np.full(len(speech), -1, dtype=int)
    if len(centres_s) == 0:
        return out
    idx = np.nonzero(speech)[0]
    t = (idx + 0.5) * frame_s
    pos = np.clip(np.searchsorted(centres_s, t), 1, len(centres_s)) if len(centres_s) > 1 else np.zeros(
        len(t), dtype=int)
    if len(centres_s) > 1:
        left = pos - 1
        right = np.minimum(pos, len(centres_s) - 1)
        pos = np.where(np.abs(centres_s[left] - t) <= np.abs(centres_s[right] - t), left, right)
    out[idx] = labels[pos]
    return out


def turns_from_frames(frames: np.ndarray, frame_s: float, fill_gap_s: float) -> list[SpeakerTurn]:
    """Runs of one label -> turns; a short gap between two runs of the same speaker is bridged."""
    turns: list[list[float | int]] = []
    for i, lab in enumerate(frames):
        if lab < 0:
            continue
        start, end = i * frame_s, (i + 1) * frame_s
        if turns and turns[-1][2] == lab and start - float(turns[-1][1]) <= fill_gap_s + 1e-9:
            turns[-1][1] = end
        else:
            turns.append([start, end, int(lab)])
    return [SpeakerTurn(round(float(s), 3), round(float(e), 3), speaker_name(int(lab))) for s, e, lab in turns]


def window_speech_fraction(speech: np.ndarray, frame_s: float, starts_s: np.ndarray, window_s: float) -> np.ndarray:
    """Share of each window's frames that are speech."""
    if len(starts_s) == 0:
        return np.zeros(0)
    csum = np.concatenate([[0], np.cumsum(speech.astype(float))])
    a = np.clip((starts_s / frame_s).astype(int), 0, len(speech))
    b = np.clip(((starts_s + window_s) / frame_s).astype(int), 0, len(speech))
    return (csum[b] - csum[a]) / np.maximum(b - a, 1)


def majority_speaker(turns: Sequence[SpeakerTurn], start_s: float, end_s: float) -> str | None:
    """The speaker who talks most within [start_s, end_s]; the nearest turn's speaker if none overlaps."""
    if not turns:
        return None
    talk: dict[str, float] = {}
    for t in turns:
        overlap = min(t.end_s, end_s) - max(t.start_s, start_s)
        if overlap > 0:
            talk[t.speaker] = talk.get(t.speaker, 0.0) + overlap
    if talk:
        return max(talk, key=lambda k: talk[k])
    mid = (start_s + end_s) / 2
    return min(turns, key=lambda t: min(abs(t.start_s - mid), abs(t.end_s - mid))).speaker


def match_labels(previous: np.ndarray, current: np.ndarray) -> dict[int, int]:
    """Map the new clustering's labels onto the previous ones (Hungarian on shared windows), so labels already
    shown to a viewer keep their names; new speakers get fresh numbers."""
    from scipy.optimize import linear_sum_assignment

    n = min(len(previous), len(current))
    cur_ids = sorted(set(int(c) for c in current))
    if n == 0:
        return {c: c for c in cur_ids}
    prev_ids = sorted(set(int(p) for p in previous[:n]))
    overlap = np.zeros((len(cur_ids), len(prev_ids)))
    for c, p in zip(current[:n], previous[:n], strict=True):
        overlap[cur_ids.index(int(c)), prev_ids.index(int(p))] += 1
    rows, cols = linear_sum_assignment(-overlap)
    mapping = {cur_ids[r]: prev_ids[c] for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0}
    next_id = max(int(previous.max()) + 1 if len(previous) else 0, max(mapping.values(), default=-1) + 1)
    for c in cur_ids:
        if c not in mapping:
            mapping[c] = next_id
            next_id += 1
    return mapping
