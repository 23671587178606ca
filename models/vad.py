"""Voice activity detection for streaming: WebRTC VAD frames smoothed into speech segments.

One `StreamingVad` per channel (it holds state). WebRTC's GMM VAD is fast (~3 µs a frame) and robust enough
on telephone audio when smoothed with start/end hysteresis; an energy VAD exists for deterministic unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_MS = 30


@dataclass(frozen=True)
class VadParams:
    """Hysteresis: speech starts after `start_ms` of mostly-voiced frames and ends after `end_silence_ms`."""

    aggressiveness: int = 2
    start_ms: int = 90
    end_silence_ms: int = 500
    preroll_ms: int = 300
    backend: str = "webrtc"  # webrtc | energy
    energy_threshold_dbfs: float = -45.0


@dataclass(frozen=True)
class VadEvent:
    """A change of state at media sample index `sample` (16 kHz samples since channel start)."""

    kind: str  # "start" | "end"
    sample: int


class StreamingVad:
    """Consumes 16 kHz int16 samples in any block size and reports speech start/end events."""

    def __init__(self, params: VadParams, sample_rate_hz: int = 16000) -> None:
        self.params = params
        self.sample_rate_hz = sample_rate_hz
        self.frame_samples = sample_rate_hz * FRAME_MS // 1000
        self._pending = np.zeros(0, dtype=np.int16)
        self._samples_seen = 0  # samples consumed into whole frames
        self.in_speech = False
        self._voiced_run = 0
        self._silence_run = 0
        self._start_frames = max(1, params.start_ms // FRAME_MS)
        self._end_frames = max(1, params.end_silence_ms // FRAME_MS)
        if params.backend == "webrtc":
            import webrtcvad

            self._vad = webrtcvad.Vad(params.aggressiveness)
        elif params.backend == "energy":
            self._vad = None
        else:
            raise ValueError(f"unknown VAD backend {params.backend!r}; expected webrtc or energy")

    def start_at(self, sample: int) -> None:
        """Count samples from `sample` on (a stream resumed part-way through: events keep absolute positions)."""
        self._samples_seen = sample

    def _is_speech(self, frame: np.ndarray) -> bool:
        if self._vad is not None:
            return bool(self._vad.is_speech(frame.tobytes(), self.sample_rate_hz))
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) + 1e-9
        return 20 * np.log10(rms / 32768.0) > self.params.energy_threshold_dbfs

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Feed int16 samples; returns state changes, positioned at frame boundaries."""
        events: list[VadEvent] = []
        buf = np.concatenate([self._pending, samples.astype(np.int16, copy=False)])
        n_frames = len(buf) // self.frame_samples
        for i in range(n_frames):
            frame = buf[i * self.frame_samples : (i + 1) * self.frame_samples]
            voiced = self._is_speech(frame)
            frame_end = self._samples_seen + self.frame_samples
            if voiced:
                self._voiced_run += 1
                self._silence_run = 0
            else:
                self._silence_run += 1
                self._voiced_run = 0
            if not self.in_speech and self._voiced_run >= self._start_frames:
                self.in_speech = True
                start = frame_end - self._voiced_run * self.frame_samples
                events.append(VadEvent("start", max(0, start)))
            elif self.in_speech and self._silence_run >= self._end_frames:
                self.in_speech = False
                end = frame_end - self._silence_run * self.frame_samples
                events.append(VadEvent("end", end))
            self._samples_seen = frame_end
        self._pending = buf[n_frames * self.frame_samples :].copy()
        return events
