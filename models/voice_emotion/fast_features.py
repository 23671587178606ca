"""Fast acoustic features for voice emotion: spectral and prosodic frame descriptors and their functionals, in numpy.

Why not openSMILE: its ComParE 2016 functionals (6,373) cost ~40 ms of CPU for a 2 s utterance and ~115 ms for
10 s, and eGeMAPS is no cheaper (its pitch and formant trackers dominate), while the budget for voice emotion is
~20 ms per utterance. Measured with leave-one-speaker-out on the 8 EmoDB speakers in shared/ (same folds, same
per-speaker normalisation, same logistic regression), this set scores higher than ComParE at about a tenth of
the cost (see models/weights/voice_emotion/MODEL_CARD.md for the table and the commands).

What is computed (16 kHz mono float input, 25 ms Hann frames, 10 ms hop, pre-emphasis 0.97, 512-point FFT):
  frame descriptors   40 log-mel energies (50-8000 Hz), MFCC 0-19 and their deltas, log energy, zero-crossing
                      rate, spectral centroid, flatness, 85 % roll-off, flux, entropy, alpha ratio (< 1 kHz vs
                      1-5 kHz), Hammarberg index (peak < 2 kHz vs 2-5 kHz), and the deltas of those 9
  functionals         over the speech frames (within 40 dB of the loudest frame, so leading/trailing silence
                      and pauses do not dilute them): mean, standard deviation, 10/25/50/75/90th percentiles,
                      90-10 range, linear slope, skewness, kurtosis
  prosody             pitch from a normalised autocorrelation at 8 kHz (40 ms frames, 10 ms hop, 60-450 Hz,
                      Praat-style octave cost), in semitones over voiced frames: mean, sd, 10/50/90th
                      percentiles, range, slope; |delta| mean/median/sd (a jitter proxy); voiced share, mean
                      voicing strength (all and voiced frames), voiced segments per second, their mean and sd
                      length (a speaking-rate proxy); and the speech-frame share
No librosa and no openSMILE at run time: numpy, scipy.fft (float32, ~10x numpy's float64 FFT) and soxr.
Deterministic; one extractor is read-only after construction and safe to share between threads.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
import scipy.sparse
import soxr
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE_HZ = 16000
FRAME_LEN = 400  # 25 ms
HOP_LEN = 160  # 10 ms
N_FFT = 512
N_MELS = 40
N_MFCC = 20
PRE_EMPHASIS = 0.97
# Frames more than this below the loudest frame are pauses or silence: left out of the functionals.
SPEECH_RANGE_DB = 40.0

PITCH_RATE_HZ = 8000
PITCH_FRAME_LEN = 320  # 40 ms at 8 kHz: two periods of the lowest pitch searched
PITCH_HOP_LEN = 80  # 10 ms
PITCH_N_FFT = 512  # >= frame + longest lag: the autocorrelation does not wrap
PITCH_MIN_HZ = 60.0
PITCH_MAX_HZ = 450.0
VOICING_THRESHOLD = 0.45
PITCH_RANGE_DB = 35.0
OCTAVE_COST = 0.01  # per octave, as Praat: prefer the shorter lag when two peaks are nearly as high
# Only the last 8 s of a longer utterance are analysed: the cost is linear in duration (~1.5-2 ms of CPU per
# second), functionals over 8 s of speech are stable, and for escalation the most recent speech matters most.
MAX_ANALYSIS_S = 8.0

FUNCTIONALS: tuple[str, ...] = ("mean", "sd", "p10", "p25", "p50", "p75", "p90", "range", "slope", "skew",
                                "kurt")
SPECTRAL: tuple[str, ...] = ("log_energy", "zcr", "centroid_khz", "flatness", "rolloff_khz", "flux", "entropy",
                             "alpha_ratio", "hammarberg")
PROSODY: tuple[str, ...] = ("f0_st_mean", "f0_st_sd", "f0_st_p10", "f0_st_p50", "f0_st_p90", "f0_st_range",
                            "f0_st_slope", "f0_dst_abs_mean", "f0_dst_abs_p50", "f0_dst_abs_sd", "voiced_share",
                            "voicing_mean", "voicing_voiced_mean", "voiced_segments_per_s",
                            "voiced_segment_mean_s", "voiced_segment_sd_s")
_PERCENTILES = (0.10, 0.25, 0.50, 0.75, 0.90)
_EPS = 1e-10


def _mel_filterbank(n_mels: int, n_fft: int, sample_rate_hz: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """Triangular mel filters (HTK mel scale), (n_mels, n_fft // 2 + 1)."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin_hz)), hz_to_mel(np.array(fmax_hz)), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sample_rate_hz / n_fft
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        fb[i] = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return fb


def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II, (n_out, n_in)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m


def _deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over +-`width` frames along axis 0 (edges repeated), as HTK."""
    pad = np.pad(x, ((width, width), (0, 0)), mode="edge")
    n = len(x)
    out = np.zeros_like(x)
    for k in range(1, width + 1):
        out += k * (pad[width + k: width + k + n] - pad[width - k: width - k + n])
    return out / (2.0 * sum(k * k for k in range(1, width + 1)))


def _functionals(frames: np.ndarray) -> np.ndarray:
    """The 11 functionals of each column of (frames, descriptors), grouped by functional."""
    if len(frames) < 2:
        frames = np.repeat(frames if len(frames) else np.zeros((1, frames.shape[1]), np.float32), 2, axis=0)
    m = np.ascontiguousarray(frames.T, dtype=np.float32)  # sorting along the last axis is ~10x faster
    n = m.shape[1]
    q = np.sort(m, axis=1)[:, [int(round(p * (n - 1))) for p in _PERCENTILES]].T
    mean = m.mean(axis=1)
    z = m - mean[:, None]
    z2 = z * z
    var = z2.mean(axis=1)
    sd = np.sqrt(var)
    t = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    slope = (z * t).sum(axis=1) / (t * t).sum()
    skew = (z2 * z).mean(axis=1) / (var * sd + 1e-8)
    kurt = (z2 * z2).mean(axis=1) / (var * var + 1e-8)
    return np.concatenate([mean, sd, q[0], q[1], q[2], q[3], q[4], q[4] - q[0], slope, skew, kurt])


class FastFeatureExtractor:
    """Spectral + prosodic functionals of one utterance (1,095 float64 values), ~1.5-2 ms of CPU per second of audio.

    Utterances longer than `max_analysis_s` are analysed over their last `max_analysis_s` seconds only.
    Thread-safe: every array built here is read-only after construction.
    """

    feature_set = "harken-fast-v1"

    def __init__(self, max_analysis_s: float = MAX_ANALYSIS_S) -> None:
        self.max_analysis_s = max_analysis_s
        # Windows padded with zeros to the FFT length: the frames come out FFT-sized, so the FFT copies nothing.
        self._window = np.zeros(N_FFT, np.float32)
        self._window[:FRAME_LEN] = np.hanning(FRAME_LEN + 2)[1:-1]
        # No BLAS on this path: OpenBLAS spreads even these small products over every core and, on a busy
        # machine, a 0.1 ms product then takes several ms. The mel filters are sparse (491 non-zeros), so a
        # sparse product is also the cheapest; the DCT and the dot products are einsum or plain reductions.
        self._mel_t = scipy.sparse.csc_matrix(
            _mel_filterbank(N_MELS, N_FFT, SAMPLE_RATE_HZ, 50.0, 8000.0).T.astype(np.float32))
        self._dct = np.ascontiguousarray(_dct_matrix(N_MELS, N_MFCC).astype(np.float32))
        freqs_hz = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE_HZ / N_FFT
        self._freqs_khz = (freqs_hz / 1000.0).astype(np.float32)
        bin_of = (lambda hz: int(np.searchsorted(freqs_hz, hz)))  # noqa: E731 - a local shorthand
        self._below_1k, self._1k_5k = slice(0, bin_of(1000)), slice(bin_of(1000), bin_of(5000))
        self._below_2k, self._2k_5k = slice(0, bin_of(2000)), slice(bin_of(2000), bin_of(5000))
        self._pitch_window = np.zeros(PITCH_N_FFT, np.float32)
        self._pitch_window[:PITCH_FRAME_LEN] = np.hanning(PITCH_FRAME_LEN + 2)[1:-1]
        self._min_lag = int(PITCH_RATE_HZ // PITCH_MAX_HZ)
        self._max_lag = int(PITCH_RATE_HZ // PITCH_MIN_HZ)
        window_acf = sfft.dct(np.abs(sfft.rfft(self._pitch_window)) ** 2, type=1)[: self._max_lag + 2]
        # Dividing by the window's own autocorrelation undoes its taper (Boersma 1993).
        self._window_acf = (window_acf / window_acf[0]).astype(np.float32)
        self._lags = np.arange(self._min_lag, self._max_lag + 1)
        self._octave_cost = (OCTAVE_COST * np.log2(PITCH_MIN_HZ * self._lags / PITCH_RATE_HZ)).astype(np.float32)
        lld = ([f"mfcc{i}" for i in range(N_MFCC)] + [f"mfcc{i}_d" for i in range(N_MFCC)] + list(SPECTRAL)
               + [f"{s}_d" for s in SPECTRAL] + [f"logmel{i}" for i in range(N_MELS)])
        self.feature_names: tuple[str, ...] = (
            tuple(f"{d}_{f}" for f in FUNCTIONALS for d in lld) + ("speech_share",) + PROSODY)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    def extract(self, pcm_f32_16k: np.ndarray) -> np.ndarray:
        """Features of a prepared (mono, 16 kHz, >= 0.3 s) utterance; non-finite values become 0."""
        x = np.asarray(pcm_f32_16k, dtype=np.float32)
        x = x[-int(self.max_analysis_s * SAMPLE_RATE_HZ):]
        if len(x) < PITCH_FRAME_LEN * 2:
            x = np.pad(x, (0, PITCH_FRAME_LEN * 2 - len(x)))
        frames, speech = self._frame_descriptors(x)
        values = np.concatenate([
            _functionals(frames[speech] if speech.sum() >= 2 else frames),
            [speech.mean()],
            self._prosody(x),
        ]).astype(np.float64)
        return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)

    def _frame_descriptors(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frames, 98) descriptors and the speech-frame mask."""
        n_frames = (len(x) - FRAME_LEN) // HOP_LEN + 1
        emphasised = np.zeros(len(x) + N_FFT - FRAME_LEN, np.float32)
        emphasised[0] = x[0]
        emphasised[1: len(x)] = x[1:] - PRE_EMPHASIS * x[:-1]
        frames = sliding_window_view(emphasised, N_FFT)[::HOP_LEN][:n_frames] * self._window
        spec = sfft.rfft(frames)
        power = (spec.real * spec.real + spec.imag * spec.imag) + np.float32(_EPS)
        total = power.sum(axis=1)
        log_power = np.log(power)
        log_total = np.log(total)
        speech = log_total > log_total.max() - np.float32(SPEECH_RANGE_DB * np.log(10.0) / 10.0)
        log_mel = np.log(np.asarray(power @ self._mel_t) + np.float32(1e-8))
        mfcc = np.einsum("fm,cm->fc", log_mel, self._dct)
        # Zero crossings per frame from one pass over the raw signal (cumulative count of sign changes).
        crossings = np.concatenate([[0], np.cumsum(np.signbit(x[1:]) != np.signbit(x[:-1]))])
        starts = np.arange(len(frames)) * HOP_LEN
        zcr = (crossings[starts + FRAME_LEN - 1] - crossings[starts]) / np.float32(FRAME_LEN - 1)
        share = power / total[:, None]
        centroid = (share * self._freqs_khz).sum(axis=1)
        flatness = np.exp(log_power.mean(axis=1)) / power.mean(axis=1)
        cumulative = np.cumsum(power, axis=1)
        rolloff = (cumulative < 0.85 * cumulative[:, -1:]).sum(axis=1) * np.float32(SAMPLE_RATE_HZ / N_FFT / 1000)
        root = np.sqrt(share)
        flux = np.concatenate([[0.0], np.square(root[1:] - root[:-1]).sum(axis=1)])
        entropy = -(share * (log_power - log_total[:, None])).sum(axis=1)
        alpha = np.log(power[:, self._below_1k].sum(axis=1) / power[:, self._1k_5k].sum(axis=1))
        hammarberg = np.log(power[:, self._below_2k].max(axis=1) / power[:, self._2k_5k].max(axis=1))
        spectral = np.stack([log_total, zcr, centroid, flatness, rolloff, flux, entropy, alpha, hammarberg],
                            axis=1).astype(np.float32)
        descriptors = np.hstack([mfcc, _deltas(mfcc), spectral, _deltas(spectral), log_mel])
        return descriptors, speech

    def _prosody(self, x: np.ndarray) -> np.ndarray:
        """Pitch, voicing and voiced-segment statistics (16 values)."""
        narrow = soxr.resample(x, SAMPLE_RATE_HZ, PITCH_RATE_HZ)
        if len(narrow) < PITCH_FRAME_LEN:
            narrow = np.pad(narrow, (0, PITCH_FRAME_LEN - len(narrow)))
        n_frames = (len(narrow) - PITCH_FRAME_LEN) // PITCH_HOP_LEN + 1
        padded = np.concatenate([narrow, np.zeros(PITCH_N_FFT - PITCH_FRAME_LEN, np.float32)])
        frames = sliding_window_view(padded, PITCH_N_FFT)[::PITCH_HOP_LEN][:n_frames] * self._pitch_window
        spec = sfft.rfft(frames)
        # The autocorrelation is the inverse transform of the power spectrum; for a real, even spectrum that is a
        # DCT-I (up to a scale that the normalisation by lag 0 removes), with no complex copy as irfft needs.
        acf = sfft.dct(spec.real * spec.real + spec.imag * spec.imag, type=1, axis=1)[:, : self._max_lag + 2]
        energy = acf[:, 0] + np.float32(_EPS)
        search = (acf / energy[:, None] / self._window_acf)[:, self._min_lag: self._max_lag + 1]
        best = np.argmax(search - self._octave_cost, axis=1)
        rows = np.arange(len(best))
        strength = search[rows, best]
        # Parabolic interpolation of the peak for a sub-sample lag.
        k = np.clip(best, 1, search.shape[1] - 2)
        a, b, c = search[rows, k - 1], search[rows, k], search[rows, k + 1]
        curvature = a - 2.0 * b + c
        offset = np.where(np.abs(curvature) > 1e-9, 0.5 * (a - c) / np.where(curvature == 0, 1, curvature), 0.0)
        f0_hz = PITCH_RATE_HZ / (self._lags[k] + np.clip(offset, -1.0, 1.0))
        level_db = 10.0 * np.log10(energy)
        voiced = (strength > VOICING_THRESHOLD) & (level_db > level_db.max() - PITCH_RANGE_DB)
        semitones = 12.0 * np.log2(f0_hz / 27.5)
        st = semitones[voiced] if voiced.sum() >= 2 else np.full(2, np.median(semitones))
        both = voiced[1:] & voiced[:-1]
        step = np.abs(np.diff(semitones))[both] if both.any() else np.zeros(1)
        edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
        seg_s = (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)) * (PITCH_HOP_LEN / PITCH_RATE_HZ)
        if len(seg_s) == 0:
            seg_s = np.zeros(1)
        duration_s = len(voiced) * PITCH_HOP_LEN / PITCH_RATE_HZ
        p10, p50, p90 = np.percentile(st, [10, 50, 90])
        t = np.linspace(-1.0, 1.0, len(st))
        return np.array([
            st.mean(), st.std(), p10, p50, p90, p90 - p10, (t * (st - st.mean())).sum() / (t * t).sum(),
            step.mean(), np.median(step), step.std(), voiced.mean(), strength.mean(),
            strength[voiced].mean() if voiced.any() else 0.0, (edges == 1).sum() / duration_s,
            seg_s.mean(), seg_s.std(),
        ])
