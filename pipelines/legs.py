"""Who spoke from the speaker legs, what was said from the wideband mix.

A 双录 room, like many recorders, can keep both: one leg per speaker at telephone quality (8 kHz G.711, each
person's microphone or line) and a 16 kHz mix of the room. Whisper base reads Mandarin far better from the
wideband mix, while the rules need to know who spoke. `wideband_legs` gives one 16 kHz channel per speaker: the
mix, kept where that speaker's leg is active and silenced elsewhere, so each channel is transcribed as that
speaker with the mix's quality.
"""

from __future__ import annotations

import numpy as np

from pipelines.audio_io import DecodedAudio

FRAME_S = 0.02
# a leg is active where its level is this far above its own noise floor ...
ACTIVE_ABOVE_FLOOR_DB = 12.0
# ... and not far below the other leg (bleed from the other speaker's microphone is not speech of this one)
BLEED_MARGIN_DB = 10.0
# activity is widened on both sides so that word onsets and soft endings are not cut
HANG_S = 0.25


class LegsMismatch(ValueError):
    """The legs and the mix cannot be combined (channel count, rate or length)."""


def _frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    n = len(x) // frame
    f = x[: n * frame].astype(np.float64).reshape(n, frame)
    rms = np.sqrt((f * f).mean(axis=1)) + 1e-3
    return 20.0 * np.log10(rms / 32768.0)


def leg_activity(legs: DecodedAudio) -> np.ndarray:
    """(frames, channels) booleans: each leg's speech activity per FRAME_S frame."""
    frame = max(1, int(round(FRAME_S * legs.sample_rate_hz)))
    db = np.stack([_frame_db(legs.samples[:, ch], frame) for ch in range(legs.channels)], axis=1)
    floor = np.percentile(db, 20, axis=0)
    active = db > floor + ACTIVE_ABOVE_FLOOR_DB
    if legs.channels > 1:
        loudest = db.max(axis=1, keepdims=True)
        active &= db >= loudest - BLEED_MARGIN_DB
    hang = int(round(HANG_S / FRAME_S))
    if hang:
        kernel = np.ones(2 * hang + 1)
        active = np.stack([np.convolve(active[:, ch], kernel, mode="same") > 0 for ch in range(active.shape[1])],
                          axis=1)
    return active


def wideband_legs(legs: DecodedAudio, mix: DecodedAudio) -> DecodedAudio:
    """One channel per leg at the mix's rate: the mix where that leg is active, silence elsewhere."""
    if mix.channels != 1:
        raise LegsMismatch(f"the mix must be mono, it has {mix.channels} channels")
    if abs(legs.duration_s - mix.duration_s) > 0.5:
        raise LegsMismatch(f"legs last {legs.duration_s:.2f} s and the mix {mix.duration_s:.2f} s")
    active = leg_activity(legs)
    per_frame = int(round(FRAME_S * mix.sample_rate_hz))
    n = mix.samples.shape[0]
    mask = np.repeat(active, per_frame, axis=0)[:n]
    if mask.shape[0] < n:  # the legs' last partial frame: hold the last decision
        mask = np.concatenate([mask, np.repeat(mask[-1:], n - mask.shape[0], axis=0)])
    # 10 ms ramps at each switch, so gating adds no clicks that the recogniser could hear as sounds
    ramp = max(1, int(0.01 * mix.sample_rate_hz))
    kernel = np.ones(ramp) / ramp
    gain = np.stack([np.convolve(mask[:, ch].astype(np.float64), kernel, mode="same") for ch in range(mask.shape[1])],
                    axis=1)
    out = (mix.samples[:, :1].astype(np.float64) * gain).round().clip(-32768, 32767).astype(np.int16)
    return DecodedAudio(out, mix.sample_rate_hz)
