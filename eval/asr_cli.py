"""`harken eval asr` and `harken eval capacity`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("asr", help="streaming WER vs offline WER, latency and RTF on a NeMo manifest")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--realtime", action="store_true", help="feed audio at real-time speed (wall-clock latency)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--no-offline", action="store_true", help="skip the offline baseline")
    p.add_argument("--offline-beam", type=int, default=5)
    p.add_argument("--fixed-decode-s", type=float, default=None,
                   help="replay: each decode advances the simulated clock by this much instead of its measured "
                        "time, so transcripts do not depend on machine load (code A/B comparisons)")
    p.add_argument("--compare", choices=("whisperlivekit",), default=None,
                   help="also stream the same clips through another system on the same Whisper weights, in the "
                        "same run (key side_by_side; needs `make compare-deps`)")
    p.add_argument("--compare-vac", action="store_true",
                   help="keep WhisperLiveKit's voice-activity controller on (its Silero onset cuts first words)")
    _device_args(p)
    p.set_defaults(func=_asr)

    p = sub.add_parser("capacity", help="concurrent real-time channels sustained with final p95 < 3 s")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--duration", type=float, default=45.0, help="seconds of audio per channel per level")
    # past what a 2-core CPU sustains, so the answer is a measured limit rather than the top level
    p.add_argument("--max-channels", type=int, default=32)
    p.add_argument("--levels", default=None, help="comma-separated channel counts to try, e.g. 2,4,6")
    p.add_argument("--model", default=None)
    _device_args(p)
    p.set_defaults(func=_capacity)


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, choices=("cpu", "cuda"),
                   help="where Whisper runs (default: HARKEN_ASR_DEVICE, cpu)")
    p.add_argument("--compute-type", default=None,
                   help="CTranslate2 compute type (default: float16 on cuda, else HARKEN_ASR_COMPUTE_TYPE)")
    p.add_argument("--workers", type=int, default=None,
                   help="decodes run at once (default: HARKEN_ASR_WORKERS; on cuda, 4 on the one model)")


def _settings(model: str | None, args: argparse.Namespace | None = None):
    from pipelines.settings import HarkenSettings

    kw: dict = {"database_url": "sqlite://", "store_audio": False}
    if model:
        kw["asr_model"] = model
    device = getattr(args, "device", None)
    if device:
        kw["asr_device"] = device
    if device == "cuda":
        # one model per GPU serving every session: half precision, several decodes in flight on it
        kw["asr_compute_type"] = "float16"
        kw["asr_workers"] = 4
    if getattr(args, "compute_type", None):
        kw["asr_compute_type"] = args.compute_type
    if getattr(args, "workers", None):
        kw["asr_workers"] = args.workers
    return HarkenSettings(**kw)


def _write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {k: v for k, v in result.items() if k not in ("samples", "levels", "side_by_side_samples")}
    print(json.dumps(summary, indent=2, ensure_ascii=False))


def _asr(args: argparse.Namespace) -> int:
    from eval.asr import run_asr_eval

    result = run_asr_eval(args.manifest, limit=args.limit, realtime=args.realtime, settings=_settings(args.model, args),
                          offline=not args.no_offline, offline_beam=args.offline_beam,
                          fixed_decode_s=args.fixed_decode_s)
    if args.compare == "whisperlivekit":
        from eval.side_by_side import run_whisperlivekit
        from models.packaged_whisper import PACKAGED_MODEL_NAMES, packaged_model_dir

        name = args.model or "base"
        if name not in PACKAGED_MODEL_NAMES:
            raise SystemExit(f"--compare runs on a packaged model ({', '.join(PACKAGED_MODEL_NAMES)}), not {name!r}")
        other = run_whisperlivekit(args.manifest, limit=args.limit, model_dir=packaged_model_dir(name),
                                   language=result["language"], vac=args.compare_vac)
        result["side_by_side"] = {
            "harken": {k: result.get(k) for k in ("wer", "offline_wer", "final_latency_s",
                                                  "first_partial_latency_s", "rtf", "mode")},
            "whisperlivekit": {**{k: v for k, v in other.items() if k != "samples"},
                               "wer_ratio": round(other["wer"] / result["offline_wer"], 3)
                               if result.get("offline_wer") else None},
        }
        result["side_by_side_samples"] = other["samples"]
    _write(args.out, result)
    return 0


def _capacity(args: argparse.Namespace) -> int:
    from eval.capacity import run_capacity

    levels = [int(x) for x in args.levels.split(",")] if args.levels else None
    result = run_capacity(args.manifest, settings=_settings(args.model, args), duration_s=args.duration,
                          max_channels=args.max_channels, levels=levels)
    _write(args.out, result)
    return 0
