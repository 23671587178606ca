"""Streaming int16 resampling that gives the same samples for the same input, every run.

libsoxr dithers int16 output with a generator seeded from the clock and a heap address (chirlu/soxr#8), so
`soxr.ResampleStream(..., dtype="int16")` returns slightly different audio each time. Whisper's greedy decode
then flips near-tied words, and a replayed recording's transcript (an audit's evidence) changes from run to run.
Resampling in float32 (never dithered) and rounding ourselves removes that.
"""

from __future__ import annotations

import numpy as np

_SCALE = 32768.0


class Int16ResampleStream:
    """int16 in, int16 out, one channel; chunk edges are seamless (soxr keeps state between chunks)."""

    def __init__(self, in_rate_hz: int, out_rate_hz: int, quality: str = "HQ") -> None:
        import soxr

        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._stream = soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32", quality=quality)

    def resample_chunk(self, pcm: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next chunk (`last=True` also returns what the filter still holds)."""
        x = np.asarray(pcm, dtype=np.int16).astype(np.float32) / _SCALE
        y = self._stream.resample_chunk(x, last=last)
        return np.clip(np.rint(y * _SCALE), -32768, 32767).astype(np.int16)
