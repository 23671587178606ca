"""`harken eval denoise`: does a denoiser help the recogniser? WER after each streaming backend, clean and noisy.

For every clip of a NeMo manifest, and for every backend named in ``--backends``:

1. the clip is read at its own rate and, with ``--noise``, a seeded random stretch of a real noise recording
   is mixed in at ``--snr-db`` (relative to the clip's mean power). The noise is resampled to the clip's rate
   first, so on the 8 kHz telephone set it is band-limited like noise on the caller's side of a phone line;
   with several noise files, clip ``i`` gets file ``i mod n``;
2. the mix is resampled to 16 kHz (as taps do at ingress) and fed to a fresh denoiser in ``--chunk-ms``
   chunks, exactly as a live stream would be, then flushed and realigned (`models.denoise.denoise_pcm`);
3. the result is decoded offline by the packaged Whisper model (beam 5, English by default), and scored
   against the reference with Whisper's EnglishTextNormalizer (corpus WER: all errors / all reference words).

The report (JSON) holds the WER per backend, per noise file, the denoiser's real-time factor (wall clock and
thread CPU time, denoising only) and every clip's hypotheses, so a surprising number can be inspected.
Only counts are logged; transcripts go to the report file, never to the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_BACKENDS = "none,webrtc,speex,rnnoise,deepfilter"
_ASR_RATE_HZ = 16_000


@dataclass(frozen=True, slots=True)
class Clip:
    """One manifest entry."""

    clip_id: str
    audio_path: Path
    text: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class NoiseCondition:
    """Real noise recordings mixed into every clip at a fixed SNR, with a seed for the excerpt positions."""

    paths: tuple[Path, ...]
    snr_db: float
    seed: int


@dataclass(slots=True)
class BackendScore:
    """Running totals for one backend over the clips scored so far."""

    name: str
    latency_samples: int = 0
    errors: int = 0
    ref_words: int = 0
    denoise_wall_s: float = 0.0
    denoise_cpu_s: float = 0.0
    audio_s: float = 0.0
    by_noise: dict[str, list[int]] = field(default_factory=dict)  # noise file -> [errors, ref words]

    def summary(self) -> dict[str, Any]:
        return {
            "wer": _ratio(self.errors, self.ref_words),
            "errors": self.errors,
            "ref_words": self.ref_words,
            "latency_ms": round(1000.0 * self.latency_samples / _ASR_RATE_HZ, 2),
            "denoise_rtf_wall": _ratio(self.denoise_wall_s, self.audio_s),
            "denoise_rtf_cpu": _ratio(self.denoise_cpu_s, self.audio_s),
            "wer_by_noise": {k: _ratio(e, n) for k, (e, n) in sorted(self.by_noise.items())},
        }


def register_eval(subparsers: argparse._SubParsersAction) -> None:
    """Add `harken eval denoise`."""
    p = subparsers.add_parser(
        "denoise",
        help="WER of packaged Whisper after each streaming denoiser, optionally with real noise mixed in",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--manifest", type=Path, help="NeMo manifest.jsonl")
    p.add_argument("--out", type=Path, required=True, help="report JSON to write")
    p.add_argument("--limit", type=int, default=0, help="first N clips only (0 = all)")
    p.add_argument(
        "--backends", default=DEFAULT_BACKENDS, help=f"comma-separated (default {DEFAULT_BACKENDS})"
    )
    p.add_argument(
        "--noise", default="", help="noise file(s) to mix in, comma-separated; clip i gets file i mod n"
    )
    p.add_argument(
        "--snr-db", type=float, default=None, help="SNR of the mixed noise (required with --noise)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the noise excerpt positions")
    p.add_argument("--chunk-ms", type=float, default=20.0, help="streaming chunk size fed to the denoiser")
    p.add_argument("--model", default="base", help="packaged Whisper model: base or tiny.en")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--language", default="en")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the recogniser")
    p.add_argument(
        "--from-report",
        type=Path,
        default=None,
        help="re-summarise an earlier report (its per-clip results; no decoding) instead of measuring",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of `harken eval denoise`; returns a process exit code."""
    from faster_whisper import WhisperModel
    from whisper_normalizer.english import EnglishTextNormalizer

    from models.denoise import create_denoiser, denoise_pcm
    from models.packaged_whisper import packaged_model_dir

    if args.from_report is not None:
        return _resummarise(args.from_report, args.out)
    if args.manifest is None:
        raise SystemExit("--manifest is required (or --from-report)")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for name in backends:
        create_denoiser(name)  # fail fast on a bad name or a missing package, before loading the model
    condition = _noise_condition(args)
    clips = load_manifest(args.manifest, args.limit)
    if not clips:
        logger.error("no clips in %s", args.manifest)
        return 1
    chunk_samples = max(1, round(args.chunk_ms * _ASR_RATE_HZ / 1000.0))
    # faster-whisper logs every call at INFO; this command reports its own progress.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)

    model = WhisperModel(
        str(packaged_model_dir(args.model)), device="cpu", compute_type="int8", cpu_threads=args.threads
    )
    normalize = EnglishTextNormalizer()
    scores = {name: BackendScore(name) for name in backends}
    noise_cache: dict[tuple[Path, int], np.ndarray] = {}
    clip_reports: list[dict[str, Any]] = []
    started = time.perf_counter()

    for index, clip in enumerate(clips):
        pcm, noise_name = load_clip_16k(clip, condition, index, noise_cache)
        reference = normalize(clip.text)
        ref_words = len(reference.split())
        report: dict[str, Any] = {
            "id": clip.clip_id,
            "noise": noise_name,
            "ref_words": ref_words,
            "backends": {},
        }
        for name in backends:
            denoiser = create_denoiser(name)
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            cleaned = denoise_pcm(denoiser, pcm, chunk_samples)
            cpu_s, wall_s = time.thread_time() - cpu0, time.perf_counter() - wall0
            audio = np.frombuffer(cleaned, dtype="<i2").astype(np.float32) / 32768.0
            segments, _info = model.transcribe(audio, beam_size=args.beam_size, language=args.language)
            hypothesis = " ".join(s.text.strip() for s in segments)  # consumes the lazy generator
            errors = _word_errors(reference, normalize(hypothesis))
            score = scores[name]
            score.latency_samples = denoiser.latency_samples
            score.errors += errors
            score.ref_words += ref_words
            score.denoise_wall_s += wall_s
            score.denoise_cpu_s += cpu_s
            score.audio_s += len(pcm) / 2 / _ASR_RATE_HZ
            bucket = score.by_noise.setdefault(noise_name, [0, 0])
            bucket[0] += errors
            bucket[1] += ref_words
            report["backends"][name] = {"errors": errors, "hypothesis": hypothesis}
        clip_reports.append(report)
        if (index + 1) % 10 == 0 or index + 1 == len(clips):
            logger.info("%d/%d clips, %.0f s elapsed", index + 1, len(clips), time.perf_counter() - started)

    result = {
        "command": shlex.join(["harken", *sys.argv[1:]]) if sys.argv else "",
        "date": datetime.now(UTC).date().isoformat(),
        "manifest": str(args.manifest),
        "n_clips": len(clips),
        "audio_s": round(sum(c.duration_s for c in clips), 2),
        "condition": _describe_condition(condition),
        "chunk_ms": args.chunk_ms,
        "asr": {
            "model": f"whisper-{args.model} (packaged, int8)",
            "beam_size": args.beam_size,
            "language": args.language,
        },
        "normalizer": "whisper_normalizer EnglishTextNormalizer",
        "backends": {name: score.summary() for name, score in scores.items()},
        "clips": clip_reports,
    }
    add_paired_deltas(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_table(result))
    return 0


def load_manifest(path: Path, limit: int = 0) -> list[Clip]:
    """Read a NeMo manifest; audio paths are relative to the manifest's folder."""
    clips: list[Clip] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            audio_path = (path.parent / row["audio_filepath"]).resolve()
            clips.append(Clip(audio_path.stem, audio_path, row["text"], float(row.get("duration", 0.0))))
            if limit and len(clips) >= limit:
                break
    return clips


def load_clip_16k(
    clip: Clip,
    condition: NoiseCondition | None,
    index: int,
    noise_cache: dict[tuple[Path, int], np.ndarray],
) -> tuple[bytes, str]:
    """Return the clip as 16 kHz int16 PCM (noise mixed in at the clip's own rate) and the noise file's name."""
    import soundfile as sf
    import soxr

    speech, rate_hz = sf.read(clip.audio_path, dtype="float64", always_2d=True)
    speech = speech.mean(axis=1)
    noise_name = "none"
    if condition is not None:
        noise_path = condition.paths[index % len(condition.paths)]
        noise_name = noise_path.stem
        key = (noise_path, rate_hz)
        if key not in noise_cache:
            noise, noise_rate_hz = sf.read(noise_path, dtype="float64", always_2d=True)
            noise_cache[key] = soxr.resample(noise.mean(axis=1), noise_rate_hz, rate_hz, quality="HQ")
        rng = np.random.default_rng([condition.seed, index])
        speech = mix_at_snr(speech, noise_cache[key], condition.snr_db, rng)
    if rate_hz != _ASR_RATE_HZ:
        speech = soxr.resample(speech, rate_hz, _ASR_RATE_HZ, quality="HQ")
    pcm = np.clip(np.rint(speech * 32768.0), -32768, 32767).astype("<i2")
    return pcm.tobytes(), noise_name


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add a random excerpt of ``noise`` to ``speech`` so that mean speech power / noise power = ``snr_db``."""
    if len(noise) < len(speech):
        noise = np.tile(noise, int(np.ceil(len(speech) / len(noise))))
    start = int(rng.integers(0, len(noise) - len(speech) + 1))
    excerpt = noise[start : start + len(speech)]
    speech_power = float(np.mean(speech**2))
    noise_power = float(np.mean(excerpt**2))
    if speech_power == 0.0 or noise_power == 0.0:
        return speech.copy()
    gain = np.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return np.clip(speech + gain * excerpt, -1.0, 32767.0 / 32768.0)


def paired_bootstrap_delta(
    errors_base: Sequence[int],
    errors_other: Sequence[int],
    ref_words: Sequence[int],
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """WER(other) - WER(base) over the same clips, with a 95% paired-bootstrap interval (clips resampled).

    A denoiser is only worth defaulting to if the interval lies below zero on noisy audio and does not lie
    above zero on clean audio.
    """
    base = np.asarray(errors_base, dtype=np.float64)
    other = np.asarray(errors_other, dtype=np.float64)
    words = np.asarray(ref_words, dtype=np.float64)
    if words.sum() == 0:
        return 0.0, 0.0, 0.0
    delta = float((other.sum() - base.sum()) / words.sum())
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(words), size=(n_resamples, len(words)))
    resampled = (other[picks].sum(axis=1) - base[picks].sum(axis=1)) / np.maximum(
        words[picks].sum(axis=1), 1.0
    )
    low, high = np.percentile(resampled, [2.5, 97.5])
    return round(delta, 5), round(float(low), 5), round(float(high), 5)


def add_paired_deltas(result: dict[str, Any], baseline: str = "none") -> None:
    """Add ``wer_delta_vs_<baseline>`` and its 95% interval to every other backend's summary, in place."""
    if baseline not in result["backends"]:
        return
    clips = result["clips"]
    ref_words = [c["ref_words"] for c in clips]
    base = [c["backends"][baseline]["errors"] for c in clips]
    for name, summary in result["backends"].items():
        if name == baseline:
            continue
        other = [c["backends"][name]["errors"] for c in clips]
        delta, low, high = paired_bootstrap_delta(base, other, ref_words)
        summary[f"wer_delta_vs_{baseline}"] = delta
        summary[f"wer_delta_vs_{baseline}_ci95"] = [low, high]


def _resummarise(report_path: Path, out: Path) -> int:
    result = json.loads(report_path.read_text(encoding="utf-8"))
    add_paired_deltas(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_table(result))
    return 0


def format_table(result: dict[str, Any]) -> str:
    """A plain-text summary of a report: one row per backend."""
    lines = [
        f"{result['n_clips']} clips, {result['audio_s']:.0f} s, condition: {result['condition']}",
        f"{'backend':<14} {'WER':>7} {'vs none [95% CI]':>26} {'latency ms':>11} {'RTF wall':>9} {'RTF cpu':>8}",
    ]
    for name, s in result["backends"].items():
        if "wer_delta_vs_none" in s:
            low, high = s["wer_delta_vs_none_ci95"]
            delta = f"{s['wer_delta_vs_none']:+.4f} [{low:+.4f}, {high:+.4f}]"
        else:
            delta = ""
        lines.append(
            f"{name:<14} {s['wer']:>7.4f} {delta:>26} {s['latency_ms']:>11.1f} {s['denoise_rtf_wall']:>9.4f} "
            f"{s['denoise_rtf_cpu']:>8.4f}"
        )
    return "\n".join(lines)


def _noise_condition(args: argparse.Namespace) -> NoiseCondition | None:
    if not args.noise:
        return None
    if args.snr_db is None:
        raise SystemExit("--noise needs --snr-db")
    paths = tuple(Path(p.strip()) for p in args.noise.split(",") if p.strip())
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"noise file not found: {path}")
    return NoiseCondition(paths=paths, snr_db=float(args.snr_db), seed=int(args.seed))


def _describe_condition(condition: NoiseCondition | None) -> dict[str, Any] | str:
    if condition is None:
        return "as recorded (no noise added)"
    return {"noise": [p.name for p in condition.paths], "snr_db": condition.snr_db, "seed": condition.seed}


def _word_errors(reference: str, hypothesis: str) -> int:
    import jiwer

    if not reference.split():
        return len(hypothesis.split())
    out = jiwer.process_words(reference, hypothesis)
    return int(out.substitutions + out.deletions + out.insertions)


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 5) if denominator else 0.0
