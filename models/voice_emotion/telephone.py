"""Telephone-band simulation: what a wideband utterance sounds like after a narrowband phone call.

Calls reach the live pipeline as 8 kHz G.711 mu-law, band-limited to 300-3400 Hz and upsampled to 16 kHz. The
voice-emotion model is trained with this augmentation and evaluated on both bands, so this is the one place that
defines the channel (training, eval and tests must use the same one).
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy.signal import butter, sosfilt

TELEPHONE_RATE_HZ = 8000
TELEPHONE_BAND_HZ = (300.0, 3400.0)
_MU = 255.0


def mulaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """Encode to 8-bit mu-law and decode again (the G.711 quantisation noise), for float audio in [-1, 1]."""
    y = np.clip(x.astype(np.float64), -1.0, 1.0)
    companded = np.sign(y) * np.log1p(_MU * np.abs(y)) / np.log1p(_MU)
    quantised = np.round(companded * 127.0) / 127.0
    return (np.sign(quantised) * ((1.0 + _MU) ** np.abs(quantised) - 1.0) / _MU).astype(np.float32)


def telephone_band(pcm_f32: np.ndarray, sample_rate_hz: int = 16000) -> np.ndarray:
    """Resample to 8 kHz, band-pass 300-3400 Hz, mu-law round trip, and resample back to `sample_rate_hz`."""
    narrow = soxr.resample(pcm_f32.astype(np.float32), sample_rate_hz, TELEPHONE_RATE_HZ)
    sos = butter(4, TELEPHONE_BAND_HZ, btype="band", fs=TELEPHONE_RATE_HZ, output="sos")
    narrow = mulaw_roundtrip(sosfilt(sos, narrow))
    return soxr.resample(narrow, TELEPHONE_RATE_HZ, sample_rate_hz).astype(np.float32)
