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
    p.set_defaults(func=_asr)

    p = sub.add_parser("capacity", help="concurrent real-time channels sustained with final p95 < 3 s")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--duration", type=float, default=45.0, help="seconds of audio per channel per level")
    p.add_argument("--max-channels", type=int, default=12)
    p.add_argument("--levels", default=None, help="comma-separated channel counts to try, e.g. 2,4,6")
    p.add_argument("--model", default=None)
    p.set_defaults(func=_capacity)


def _settings(model: str | None):
    from pipelines.settings import HarkenSettings

    kw = {"database_url": "sqlite://", "store_audio": False}
    if model:
        kw["asr_model"] = model
    return HarkenSettings(**kw)


def _write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {k: v for k, v in result.items() if k not in ("samples", "levels")}
    print(json.dumps(summary, indent=2, ensure_ascii=False))


def _asr(args: argparse.Namespace) -> int:
    from eval.asr import run_asr_eval

    result = run_asr_eval(args.manifest, limit=args.limit, realtime=args.realtime, settings=_settings(args.model),
                          offline=not args.no_offline, offline_beam=args.offline_beam)
    _write(args.out, result)
    return 0


def _capacity(args: argparse.Namespace) -> int:
    from eval.capacity import run_capacity

    levels = [int(x) for x in args.levels.split(",")] if args.levels else None
    result = run_capacity(args.manifest, settings=_settings(args.model), duration_s=args.duration,
                          max_channels=args.max_channels, levels=levels)
    _write(args.out, result)
    return 0
