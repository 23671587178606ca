"""`harken eval diarization`: speaker diarization of calls mixed to one channel, scored against their turns.

Each call of a ../shared/data/calls/dev-format directory is taken as one channel (its `mono16k` file where it has
one, else the two stereo channels summed), fed to the live diarizer in 100 ms chunks as a stream would be, and
scored with pyannote.metrics (collar 0.25 s, overlap scored) against the ground-truth turns:
- `der`, `jer`: the labels after the session's end-of-call relabelling;
- `der_live`: the label each second of speech carried 2 s after it was spoken (what a live caption showed);
- `speaker_count_accuracy`: share of calls whose estimated number of speakers is right;
- `cpu_s_per_audio_s`: the diarizer's own CPU time (VAD, embeddings, clustering) per second of audio.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_S = 0.1
LIVE_LAG_S = 2.0  # a live caption's label is judged as it stood this long after the speech


@dataclass(frozen=True)
class CallAudio:
    call_id: str
    samples: np.ndarray  # int16, 16 kHz mono
    turns: list[dict[str, Any]]  # ground truth: speaker, start_s, end_s


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diarization", help="DER / JER / speaker count of calls mixed to one channel")
    p.add_argument("--calls", type=Path, required=True, help="a calls directory (manifest.jsonl, audio/, gt/)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--max-speakers", type=int, default=None)
    p.set_defaults(func=_run)


def load_calls(calls_dir: Path, limit: int | None = None) -> list[CallAudio]:
    """The calls of a manifest, each as one 16 kHz channel with its ground-truth turns."""
    from pipelines.audio_io import read_audio
    from pipelines.resample import Int16ResampleStream

    manifest = calls_dir / "manifest.jsonl"
    if not manifest.is_file():
        raise SystemExit(f"harken: {manifest} not found (expected a calls directory)")
    out = []
    for line in manifest.read_text(encoding="utf-8").splitlines()[:limit]:
        if not line.strip():
            continue
        row = json.loads(line)
        gt = json.loads((calls_dir / row["gt"]).read_text(encoding="utf-8"))
        if row.get("mono_16k"):
            audio = read_audio(calls_dir / row["mono_16k"]).mono()
            mixed = audio.samples[:, 0]
        else:
            audio = read_audio(calls_dir / row["stereo_8k"])
            mixed = np.clip(audio.samples.astype(np.int32).sum(axis=1), -32768, 32767).astype(np.int16)
        if audio.sample_rate_hz != 16000:
            mixed = Int16ResampleStream(audio.sample_rate_hz, 16000).resample_chunk(mixed, last=True)
        out.append(CallAudio(row["call_id"], mixed, [
            {"speaker": t["speaker"], "start_s": float(t["start_s"]), "end_s": float(t["end_s"])}
            for t in gt["turns"]]))
    return out


def diarize_stream(encoder: Any, samples: np.ndarray, max_speakers: int | None = None
                   ) -> tuple[list[Any], list[tuple[float, float, str]], float]:
    """Feed one call to a live diarizer; returns (final turns, live labels per second of audio, CPU seconds)."""
    from pipelines.diarize import LiveDiarizer

    d = LiveDiarizer(encoder, max_speakers=max_speakers)
    chunk = int(16000 * CHUNK_S)
    live: list[tuple[float, float, str]] = []
    next_second = 0
    cpu = 0.0
    for i in range(0, len(samples), chunk):
        t0 = time.process_time()
        d.feed(samples[i : i + chunk])
        cpu += time.process_time() - t0
        heard_s = (i + chunk) / 16000
        while next_second + 1 + LIVE_LAG_S <= heard_s:  # outside the CPU count: this is the scorer looking
            live.append((float(next_second), float(next_second + 1), d.speaker_at(next_second, next_second + 1)))
            next_second += 1
    t0 = time.process_time()
    turns = d.finish()
    cpu += time.process_time() - t0
    return turns, live, cpu


def _annotation(items: list[tuple[float, float, str]]):
    from pyannote.core import Annotation, Segment

    ann = Annotation()
    for start, end, label in items:
        if end > start:
            ann[Segment(start, end)] = label
    return ann


def _live_hypothesis(live: list[tuple[float, float, str]], turns: list[Any]) -> list[tuple[float, float, str]]:
    """Live labels restricted to where the final turns found speech (the live view labels captions, which
    exist only where someone spoke)."""
    out = []
    for t in turns:
        for start, end, label in live:
            a, b = max(start, t.start_s), min(end, t.end_s)
            if b > a:
                out.append((a, b, label))
    return out


def evaluate(calls: list[CallAudio], max_speakers: int | None = None) -> dict[str, Any]:
    """Score every call; keys as documented in the module docstring."""
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    from models.speaker import SpeakerEncoder

    encoder = SpeakerEncoder()
    der, der_live = DiarizationErrorRate(collar=0.25, skip_overlap=False), DiarizationErrorRate(collar=0.25)
    jer = JaccardErrorRate(collar=0.25)
    rows, correct, cpu_total, audio_total = [], 0, 0.0, 0.0
    diarize_stream(encoder, np.zeros(16000 * 3, dtype=np.int16))  # load librosa / ORT outside the timing
    for call in calls:
        turns, live, cpu = diarize_stream(encoder, call.samples, max_speakers)
        ref = _annotation([(t["start_s"], t["end_s"], t["speaker"]) for t in call.turns])
        hyp = _annotation([(t.start_s, t.end_s, t.speaker) for t in turns])
        with warnings.catch_warnings():  # pyannote warns when a hypothesis is empty; that is a score, not a bug
            warnings.simplefilter("ignore")
            d = der(ref, hyp)
            j = jer(ref, hyp)
            dl = der_live(ref, _annotation(_live_hypothesis(live, turns)))
        n_ref = len({t["speaker"] for t in call.turns})
        n_hyp = len({t.speaker for t in turns})
        correct += n_ref == n_hyp
        duration = len(call.samples) / 16000
        cpu_total += cpu
        audio_total += duration
        rows.append({"call_id": call.call_id, "der": round(d, 4), "jer": round(j, 4), "der_live": round(dl, 4),
                     "speakers_ref": n_ref, "speakers_hyp": n_hyp, "duration_s": round(duration, 1),
                     "cpu_s_per_audio_s": round(cpu / max(duration, 1e-9), 4)})
    return {
        "der": round(abs(der), 4),
        "jer": round(abs(jer), 4),
        "der_live": round(abs(der_live), 4),
        "speaker_count_accuracy": round(correct / max(len(calls), 1), 4),
        "cpu_s_per_audio_s": round(cpu_total / max(audio_total, 1e-9), 4),
        "calls": len(calls),
        "audio_s": round(audio_total, 1),
        "collar_s": 0.25,
        "scorer": "pyannote.metrics",
        "per_call": rows,
    }


def _run(args: argparse.Namespace) -> int:
    calls = load_calls(args.calls, args.limit)
    result = evaluate(calls, args.max_speakers)
    result["data"] = str(args.calls)
    result["date"] = time.strftime("%Y-%m-%d")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"{result['calls']} calls, {result['audio_s']:.0f} s: DER {result['der']:.3f}  JER {result['jer']:.3f}  "
          f"live DER {result['der_live']:.3f}  speaker count {result['speaker_count_accuracy']:.2f}  "
          f"CPU {result['cpu_s_per_audio_s']:.3f} s per audio s")
    return 0
