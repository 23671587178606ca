"""Streaming denoisers on real audio: a telephone-band LJ Speech clip with a real tap-noise recording mixed in.

The test signal is 1 s of noise alone, then the clip with the noise under it at 5 dB SNR, then 0.5 s of noise,
so each backend can be judged on what it leaves in a speech-free stretch and on how closely its output
follows the clean speech.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from models.denoise import (
    DEFAULT_DENOISER,
    DENOISER_NAMES,
    Denoiser,
    create_denoiser,
    denoise_pcm,
)

RATE_HZ = 16000
LEAD_S = 1.0
TAIL_S = 0.5
SNR_DB = 5.0

# DeepFilterNet runs at a few times real time on this 2-core box: its cases are marked slow.
REAL_BACKENDS = [
    "webrtc",
    "webrtc:4",
    "speex",
    "rnnoise",
    pytest.param("deepfilter", marks=pytest.mark.slow),
]


@dataclass(frozen=True)
class Signals:
    """Clean speech and the noisy mix, both 16 kHz, with the sample index where speech starts and ends."""

    clean: np.ndarray  # float64 in [-1, 1)
    noisy_pcm: bytes  # int16 LE
    speech_start: int
    speech_end: int

    @property
    def noisy(self) -> np.ndarray:
        return _to_float(self.noisy_pcm)


def _to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


@pytest.fixture(scope="module")
def signals(shared_data: Path) -> Signals:
    import soundfile as sf
    import soxr

    speech, rate_hz = sf.read(shared_data / "asr/ljspeech-dev-tel/audio/LJ001-0002.flac", dtype="float64")
    speech = soxr.resample(speech, rate_hz, RATE_HZ, quality="HQ")
    noise, noise_rate_hz = sf.read(shared_data / "noise/speech-commands-bg/running_tap.flac", dtype="float64")
    assert noise_rate_hz == RATE_HZ
    lead, tail = int(LEAD_S * RATE_HZ), int(TAIL_S * RATE_HZ)
    clean = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    excerpt = noise[5 * RATE_HZ : 5 * RATE_HZ + len(clean)]
    gain = np.sqrt(np.mean(speech**2) / (np.mean(excerpt**2) * 10 ** (SNR_DB / 10)))
    noisy = np.clip(np.rint((clean + gain * excerpt) * 32768.0), -32768, 32767).astype("<i2")
    return Signals(clean, noisy.tobytes(), lead, lead + len(speech))


def _stream(denoiser: Denoiser, pcm: bytes, chunk_samples: int) -> list[bytes]:
    step = 2 * chunk_samples
    return [denoiser.process(pcm[i : i + step]) for i in range(0, len(pcm), step)]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _best_lag(reference: np.ndarray, delayed: np.ndarray, max_lag: int) -> int:
    """The lag (in samples, may be negative) at which ``delayed`` best matches ``reference``."""
    lags = range(-max_lag, max_lag + 1)
    n = len(reference)
    scores = [
        float(np.dot(reference[max_lag : n - max_lag], delayed[max_lag + lag : n - max_lag + lag]))
        for lag in lags
    ]
    return lags[int(np.argmax(scores))]


@pytest.mark.parametrize("name", REAL_BACKENDS)
def test_every_chunk_returns_its_length_and_flush_returns_the_latency(name: str, signals: Signals) -> None:
    denoiser = create_denoiser(name)
    assert isinstance(denoiser, Denoiser)
    assert denoiser.latency_samples > 0
    assert denoiser.latency_s == pytest.approx(denoiser.latency_samples / RATE_HZ)
    chunks = _stream(denoiser, signals.noisy_pcm, 320)
    fed = [len(signals.noisy_pcm[i : i + 640]) for i in range(0, len(signals.noisy_pcm), 640)]
    assert [len(c) for c in chunks] == fed
    tail = denoiser.flush()
    assert len(tail) == 2 * denoiser.latency_samples


@pytest.mark.parametrize("name", REAL_BACKENDS)
def test_output_is_aligned_cleaner_speech(name: str, signals: Signals) -> None:
    out = _to_float(denoise_pcm(create_denoiser(name), signals.noisy_pcm, 320))
    assert len(out) == len(signals.clean)
    speech = slice(signals.speech_start, signals.speech_end)

    # The documented latency is exact: once removed, the output lines up with the clean speech.
    assert abs(_best_lag(signals.clean[speech], out[speech], max_lag=400)) <= 1

    # Not garbage: the output follows the clean speech at least as well as the noisy input does.
    noisy_corr = _correlation(signals.noisy[speech], signals.clean[speech])
    out_corr = _correlation(out[speech], signals.clean[speech])
    assert out_corr > 0.8
    assert out_corr >= noisy_corr - 0.02

    # And the noise is suppressed where nobody speaks (the second half of the lead-in, after adaptation).
    quiet = slice(signals.speech_start // 2, signals.speech_start - 400)
    reduction_db = 10 * np.log10(np.mean(signals.noisy[quiet] ** 2) / max(np.mean(out[quiet] ** 2), 1e-12))
    assert reduction_db > 6.0


@pytest.mark.parametrize("name", REAL_BACKENDS)
def test_output_does_not_depend_on_chunk_size(name: str, signals: Signals) -> None:
    pcm = signals.noisy_pcm[: 2 * int(1.5 * RATE_HZ)]
    d7, d20 = create_denoiser(name), create_denoiser(name)
    out_7ms = b"".join(_stream(d7, pcm, 112)) + d7.flush()
    out_20ms = b"".join(_stream(d20, pcm, 320)) + d20.flush()
    assert out_7ms == out_20ms
    assert any(out_7ms)


@pytest.mark.parametrize("name", REAL_BACKENDS)
def test_flush_and_reset_start_a_fresh_stream(name: str, signals: Signals) -> None:
    pcm = signals.noisy_pcm[: 2 * RATE_HZ]
    denoiser = create_denoiser(name)
    first = denoise_pcm(denoiser, pcm, 320)
    second = denoise_pcm(denoiser, pcm, 320)  # same instance, after the first stream's flush
    assert first == second
    denoiser.process(signals.noisy_pcm[-4000:])  # half a stream of something else, then abandon it
    denoiser.reset()
    assert denoise_pcm(denoiser, pcm, 320) == first


@pytest.mark.parametrize("name", REAL_BACKENDS)
def test_streams_on_worker_threads_do_not_interfere(name: str, signals: Signals) -> None:
    half = len(signals.noisy_pcm) // 4 * 2
    inputs = [signals.noisy_pcm[:half], signals.noisy_pcm[half:]]
    expected = [denoise_pcm(create_denoiser(name), pcm, 320) for pcm in inputs]
    results: list[bytes] = [b"", b""]

    def work(i: int) -> None:
        results[i] = denoise_pcm(create_denoiser(name), inputs[i], 160)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_none_is_pass_through(signals: Signals) -> None:
    denoiser = create_denoiser("none")
    assert denoiser.latency_samples == 0
    assert b"".join(_stream(denoiser, signals.noisy_pcm, 112)) + denoiser.flush() == signals.noisy_pcm


class _IdentityModel48k:
    hop_samples = 480
    delay_samples = 0

    def process_hop(self, x: np.ndarray) -> np.ndarray:
        return x

    def reset(self) -> None:
        return None


@pytest.mark.parametrize("rate_hz", [16000, 8000])
def test_resampler_round_trip_keeps_speech_band_tone_and_its_delay(rate_hz: int) -> None:
    from models.denoise import StreamingDenoiser, _Resampled48k

    denoiser = StreamingDenoiser("identity", rate_hz, _Resampled48k(_IdentityModel48k(), rate_hz))
    assert denoiser.latency_samples == (480 * rate_hz // 48000 - 1) + 64
    t = np.arange(rate_hz) / rate_hz
    tone = 0.3 * np.sin(2 * np.pi * 1000.0 * t)
    pcm = np.rint(tone * 32768).astype("<i2").tobytes()
    out = _to_float(denoise_pcm(denoiser, pcm, 7 * rate_hz // 1000))
    steady = slice(rate_hz // 10, -rate_hz // 10)  # away from the filter's start-up and the zero-padded end
    assert np.max(np.abs(out[steady] - _to_float(pcm)[steady])) < 0.003  # < -50 dB of full scale


def test_speex_runs_at_8_khz(signals: Signals) -> None:
    import soxr

    narrow = soxr.resample(signals.noisy, RATE_HZ, 8000, quality="HQ")
    pcm = np.clip(np.rint(narrow * 32768), -32768, 32767).astype("<i2").tobytes()
    denoiser = create_denoiser("speex", sample_rate_hz=8000)
    assert denoiser.latency_samples == 79 + 80
    out = _to_float(denoise_pcm(denoiser, pcm, 160))
    quiet = slice(4000, 7600)
    assert np.mean(out[quiet] ** 2) < np.mean(_to_float(pcm)[quiet] ** 2) / 4


def test_mix_at_snr_hits_the_requested_snr_on_real_noise(shared_data: Path) -> None:
    import soundfile as sf

    from eval.denoise_cli import mix_at_snr

    speech, _ = sf.read(shared_data / "asr/ljspeech-dev/audio/LJ001-0002.flac", dtype="float64")
    noise, _ = sf.read(shared_data / "noise/speech-commands-bg/exercise_bike.flac", dtype="float64")
    mixed_a = mix_at_snr(speech, noise, 5.0, np.random.default_rng([0, 3]))
    mixed_b = mix_at_snr(speech, noise, 5.0, np.random.default_rng([0, 3]))
    assert np.array_equal(mixed_a, mixed_b), "seeded mixing must be reproducible"
    added = mixed_a - speech
    snr_db = 10 * np.log10(np.mean(speech**2) / np.mean(added**2))
    assert snr_db == pytest.approx(5.0, abs=0.05)


def test_load_manifest_resolves_audio_relative_to_manifest(shared_data: Path) -> None:
    from eval.denoise_cli import load_manifest

    clips = load_manifest(shared_data / "asr/ljspeech-dev-tel/manifest.jsonl", limit=5)
    assert len(clips) == 5
    assert all(c.audio_path.is_file() for c in clips)
    assert clips[0].clip_id == "LJ001-0002" and clips[0].text == "in being comparatively modern."


def test_names_and_errors() -> None:
    assert DEFAULT_DENOISER.split(":")[0] in DENOISER_NAMES
    with pytest.raises(ValueError, match="unknown denoiser 'krisp'"):
        create_denoiser("krisp")
    with pytest.raises(ValueError, match="takes no parameter"):
        create_denoiser("speex:3")
    with pytest.raises(ValueError, match="level must be 1..4"):
        create_denoiser("webrtc:9")
    with pytest.raises(ValueError, match="16000 Hz only"):
        create_denoiser("webrtc", sample_rate_hz=8000)
    with pytest.raises(ValueError, match="even number of bytes"):
        create_denoiser("speex").process(b"\x00\x01\x02")


@pytest.mark.model
@pytest.mark.slow
def test_eval_denoise_command_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    import json

    from api.cli import main

    out = tmp_path / "report.json"
    manifest = shared_data / "asr/ljspeech-dev-tel/manifest.jsonl"
    noise = shared_data / "noise/speech-commands-bg/running_tap.flac"
    argv = ["eval", "denoise", "--manifest", str(manifest), "--out", str(out), "--limit", "2"]
    argv += ["--backends", "none,speex", "--noise", str(noise), "--snr-db", "10", "--threads", "1"]
    assert main(argv) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["n_clips"] == 2
    assert report["condition"]["snr_db"] == 10.0
    for name in ("none", "speex"):
        summary = report["backends"][name]
        assert summary["errors"] == sum(c["backends"][name]["errors"] for c in report["clips"])
        assert summary["ref_words"] == sum(c["ref_words"] for c in report["clips"]) > 0
        # Whisper base gets most of two read sentences right, denoised or not.
        assert summary["wer"] < 0.5
    assert report["backends"]["speex"]["latency_ms"] == pytest.approx(19.94, abs=0.01)
    assert report["backends"]["speex"]["denoise_rtf_cpu"] > 0.0
    low, high = report["backends"]["speex"]["wer_delta_vs_none_ci95"]
    assert low <= report["backends"]["speex"]["wer_delta_vs_none"] <= high


def test_paired_bootstrap_delta() -> None:
    from eval.denoise_cli import paired_bootstrap_delta

    words = [10, 12, 8, 15, 9, 11, 10, 14]
    base = [2, 1, 0, 3, 1, 2, 1, 2]
    # Identical systems: no difference, and a degenerate interval at zero.
    assert paired_bootstrap_delta(base, base, words) == (0.0, 0.0, 0.0)
    # One more error on every clip: delta is exactly 8 / 89 and the interval stays strictly above zero.
    worse = [e + 1 for e in base]
    delta, low, high = paired_bootstrap_delta(base, worse, words)
    assert delta == pytest.approx(8 / 89, abs=1e-5)
    assert 0.0 < low <= delta <= high
    # A single clip carrying the whole difference: the interval must include zero.
    lucky = [*base[:-1], base[-1] + 6]
    _, low, high = paired_bootstrap_delta(base, lucky, words)
    assert low <= 0.0 < high
