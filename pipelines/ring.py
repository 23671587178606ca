"""A bounded buffer of a channel's most recent 16 kHz audio, addressable by media time (for per-segment models)."""

from __future__ import annotations

import threading

import numpy as np

RATE_HZ = 16000


class AudioRing:
    def __init__(self, seconds: float = 60.0) -> None:
        self._cap = int(seconds * RATE_HZ)
        self._buf = np.zeros(self._cap, dtype=np.int16)
        self._total = 0  # samples written since the start of the channel
        self._lock = threading.Lock()

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            s = samples[-self._cap :]
            n = len(s)
            pos = (self._total + len(samples) - n) % self._cap
            first = min(n, self._cap - pos)
            self._buf[pos : pos + first] = s[:first]
            self._buf[: n - first] = s[first:]
            self._total += len(samples)

    def span(self, start_s: float, end_s: float) -> np.ndarray:
        """int16 samples between two media times; the part older than the ring's capacity is not returned."""
        with self._lock:
            start = max(int(start_s * RATE_HZ), self._total - self._cap, 0)
            end = min(int(end_s * RATE_HZ), self._total)
            if end <= start:
                return np.zeros(0, dtype=np.int16)
            idx = np.arange(start, end) % self._cap
            return self._buf[idx].copy()
