"""The `harken` command line.

Each feature area owns one small module that registers its commands, so this file only wires them together.
A module may define any of:
  register(subparsers)        top-level commands (harken serve, harken audit ...)
  register_eval(subparsers)   `harken eval <what>` commands
  register_train(subparsers)  `harken train <what>` commands
Each registered parser sets `func` (a callable taking the parsed args and returning an exit code).
Modules are imported here, at call time, so `harken --help` stays cheap and nothing loads at import.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "api.cli_core",
    "api.cli_minutes",
    "api.cli_identity",
    "api.cli_db",
    "eval.asr_cli",
    "eval.denoise_cli",
    "eval.classifiers_cli",
    "eval.classify_latency_cli",
    "eval.voice_emotion_cli",
    "pipelines.taps.eval_cli",
    "eval.taps_e2e_cli",
    "eval.compliance_cli",
    "eval.clauses_cli",
    "eval.diarization_cli",
    "eval.minutes_cli",
    "eval.broker_cli",
    "eval.cluster_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harken", description="Self-hosted real-time speech intelligence")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    eval_parser = sub.add_parser("eval", help="rerunnable measurements on real data")
    eval_sub = eval_parser.add_subparsers(dest="eval_command", metavar="WHAT")
    train_parser = sub.add_parser("train", help="reproduce the shipped classifier weights from ../shared/data")
    train_sub = train_parser.add_subparsers(dest="train_command", metavar="WHAT")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(sub)
        if hasattr(module, "register_eval"):
            module.register_eval(eval_sub)
        if hasattr(module, "register_train"):
            module.register_train(train_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
