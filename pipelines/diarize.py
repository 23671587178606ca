"""Live diarization of one 16 kHz channel: speaker labels while captions are produced, one relabelling at the end.

Audio is fed from the channel's worker thread (the same thread that feeds the recogniser); each complete 1.6 s
window is embedded there as soon as it exists, and assigned to the nearest known speaker. Every so often (more
often early in the call, when labels are least settled) all windows are clustered again and the new labels are
mapped onto the old names, so a speaker keeps the name a viewer has already seen. `speaker_at` is called from the
event loop and only reads state swapped in under a lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from intelligence.diarization import (
    DiarizationParams,
    SpeakerTurn,
    cluster_windows,
    frame_labels,
    match_labels,
    speaker_name,
    turns_from_frames,
)

SAMPLE_RATE_HZ = 16000
FRAME_S = 0.03  # WebRTC VAD frame
FRAME_SAMPLES = int(SAMPLE_RATE_HZ * FRAME_S)
EMBED_BATCH = 4  # windows per encoder run (4 x 0.4 s hop: labels lag the audio by at most 1.6 s more)


def _single_region(speech: np.ndarray, max_gap_frames: int) -> bool:
    """True when the window's speech is one stretch: no pause inside it longer than `max_gap_frames` (leading
    and trailing silence allowed). A window spanning a pause may span a change of speaker."""
    idx = np.nonzero(speech)[0]
    if len(idx) < 2:
        return True
    return int(np.max(np.diff(idx))) - 1 <= max_gap_frames


class Encoder(Protocol):
    def embed_mels(self, windows: np.ndarray) -> np.ndarray: ...


@dataclass
class _State:
    """What `speaker_at` reads: window centres and their speaker indices (swapped whole under the lock)."""

    centres_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


class LiveDiarizer:
    """Streaming speaker labels for one mixed channel (meeting room, mono recording, in-room 双录 microphone)."""

    def __init__(self, encoder: Encoder, params: DiarizationParams | None = None,
                 max_speakers: int | None = None, vad_aggressiveness: int = 2) -> None:
        import webrtcvad

        self.encoder = encoder
        self.params = params or DiarizationParams()
        self.max_speakers = max_speakers
        self._vad = webrtcvad.Vad(vad_aggressiveness)
        self._speech = bytearray()  # one 0/1 flag per 30 ms frame since the stream began (O(1) append)
        self._pending_vad = np.zeros(0, dtype=np.int16)
        self._audio = np.zeros(0, dtype=np.int16)  # recent audio, enough for the next window
        self._audio_base = 0  # sample index of _audio[0]
        self._received = 0
        self._next_window = 0  # index of the next window to embed
        self._vectors: list[np.ndarray] = []
        self._centres: list[float] = []
        self._labels: list[int] = []
        self._clean: list[bool] = []
        self._sums: dict[int, np.ndarray] = {}  # per speaker, the sum of its window vectors (for assignment)
        self._since_recluster = 0
        self._lock = threading.Lock()
        self._state = _State()
        self.windows_embedded = 0
        self._queued: list[tuple[float, np.ndarray]] = []  # (start_s, mel) of windows waiting to be embedded

    # -- feeding (worker thread) ---------------------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> None:
        """Add 16 kHz int16 samples; embeds every window they complete."""
        if len(samples) == 0:
            return
        samples = samples.astype(np.int16, copy=False)
        self._run_vad(samples)
        self._audio = np.concatenate([self._audio, samples])
        self._received += len(samples)
        self._embed_ready_windows()
        if self._since_recluster >= max(5, len(self._vectors) // 10):
            self._recluster()

    def _run_vad(self, samples: np.ndarray) -> None:
        buf = np.concatenate([self._pending_vad, samples])
        n = len(buf) // FRAME_SAMPLES
        for i in range(n):
            frame = buf[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
            self._speech.append(1 if self._vad.is_speech(frame.tobytes(), SAMPLE_RATE_HZ) else 0)
        self._pending_vad = buf[n * FRAME_SAMPLES :]

    def _embed_ready_windows(self) -> None:
        from models.speaker import mel_frames, normalize_volume

        p = self.params
        win = int(p.window_s * SAMPLE_RATE_HZ)
        hop = int(p.hop_s * SAMPLE_RATE_HZ)
        batch, starts = [], []
        while self._next_window * hop + win <= self._received:
            start = self._next_window * hop
            a, b = int(start / SAMPLE_RATE_HZ / FRAME_S), int((start + win) / SAMPLE_RATE_HZ / FRAME_S)
            if b > len(self._speech):
                break  # its last VAD frame is not complete yet
            self._next_window += 1
            # only this window's VAD flags: copying the whole session's flags on every feed grows with the call
            window_speech = self._speech_mask(a, b)
            fraction = float(window_speech.mean())
            if fraction < p.min_speech_fraction:
                continue
            self._clean.append(_single_region(window_speech, int(p.max_inner_pause_s / FRAME_S)))
            wav = self._audio[start - self._audio_base : start + win - self._audio_base].astype(np.float32) / 32768
            mel = mel_frames(normalize_volume(wav))[: int(round(p.window_s * 100))]
            batch.append(mel)
            starts.append(start / SAMPLE_RATE_HZ)
        keep_from = self._next_window * hop
        if keep_from > self._audio_base:
            self._audio = self._audio[keep_from - self._audio_base :]
            self._audio_base = keep_from
        self._queued.extend(zip(starts, batch, strict=True))
        # one ONNX run per few windows: batch 1 costs about twice as much per window
        if len(self._queued) >= EMBED_BATCH:
            self._embed_queued()

    def _embed_queued(self) -> None:
        if not self._queued:
            return
        starts = [s for s, _ in self._queued]
        vecs = self.encoder.embed_mels(np.stack([m for _, m in self._queued]))
        self._queued = []
        self.windows_embedded += len(vecs)
        for s, v in zip(starts, vecs, strict=True):
            self._vectors.append(v)
            self._centres.append(s + self.params.window_s / 2)
            lab = self._nearest(v)
            self._labels.append(lab)
            self._sums[lab] = self._sums.get(lab, 0.0) + v
            self._since_recluster += 1
        self._publish()

    def _nearest(self, v: np.ndarray) -> int:
        """The known speaker closest to a new window (0 for the very first)."""
        best, best_sim = 0, -2.0
        for lab, total in self._sums.items():
            sim = float(v @ total / max(float(np.linalg.norm(total)), 1e-9))
            if sim > best_sim:
                best, best_sim = lab, sim
        return best

    def _recluster(self) -> None:
        self._since_recluster = 0
        if len(self._vectors) < 3:
            return
        new = cluster_windows(np.stack(self._vectors), self.params, self.max_speakers,
                              clean=np.array(self._clean[: len(self._vectors)], dtype=bool))
        mapping = match_labels(np.array(self._labels), new)
        self._labels = [mapping[int(x)] for x in new]
        vecs = np.stack(self._vectors)
        labels = np.array(self._labels)
        self._sums = {int(lab): vecs[labels == lab].sum(axis=0) for lab in np.unique(labels)}
        self._publish()

    def _publish(self) -> None:
        state = _State(np.array(self._centres), np.array(self._labels, dtype=int))
        with self._lock:
            self._state = state

    def _speech_mask(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """VAD flags of frames [start, end) as booleans."""
        return np.frombuffer(bytes(self._speech[start:end]), dtype=np.uint8).astype(bool)

    def finish(self) -> list[SpeakerTurn]:
        """End of stream: cluster everything once more and return the session's speaker turns."""
        self._embed_queued()
        self._recluster()
        return self.turns()

    # -- reading (event loop) ------------------------------------------------------------------------------
    def turns(self) -> list[SpeakerTurn]:
        """Current speaker turns over the whole stream so far."""
        with self._lock:
            state = self._state
        speech = self._speech_mask()
        frames = frame_labels(speech, FRAME_S, state.centres_s, state.labels)
        return turns_from_frames(frames, FRAME_S, self.params.fill_gap_s)

    def speaker_at(self, start_s: float, end_s: float) -> str:
        """The speaker who talks most in [start_s, end_s] by the current labels (S1 before any evidence)."""
        with self._lock:
            state = self._state
        if len(state.labels) == 0:
            return speaker_name(0)
        a = max(0, int(start_s / FRAME_S))
        b = max(a + 1, int(np.ceil(end_s / FRAME_S)))
        speech = np.ones(b - a, dtype=bool)  # frames the VAD has not seen yet count as speech
        known = self._speech_mask(a, b)
        speech[: len(known)] = known
        if not speech.any():
            speech = np.ones(b - a, dtype=bool)  # no VAD speech in the span: label it by position alone
        t = (np.arange(a, b)[speech] + 0.5) * FRAME_S
        idx = np.clip(np.searchsorted(state.centres_s, t), 0, len(state.centres_s) - 1)
        prev = np.maximum(idx - 1, 0)
        nearer = np.where(np.abs(state.centres_s[prev] - t) < np.abs(state.centres_s[idx] - t), prev, idx)
        counts = np.bincount(state.labels[nearer])
        return speaker_name(int(np.argmax(counts)))
