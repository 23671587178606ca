"""`harken eval asr` / `harken eval capacity` device options: the GPU benchmark is one flag away, and the default
levels reach past what a CPU sustains."""

from __future__ import annotations

import argparse

from eval.asr_cli import _settings, register_eval


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register_eval(parser.add_subparsers())
    return parser.parse_args(list(argv))


def test_cuda_selects_half_precision_and_several_decodes_on_one_model() -> None:
    args = _parse("capacity", "--manifest", "m.jsonl", "--out", "r.json", "--device", "cuda")
    s = _settings(args.model, args)
    assert (s.asr_device, s.asr_compute_type, s.asr_workers) == ("cuda", "float16", 4)
    args = _parse("capacity", "--manifest", "m.jsonl", "--out", "r.json", "--device", "cuda",
                  "--compute-type", "int8_float16", "--workers", "8")
    s = _settings(args.model, args)
    assert (s.asr_compute_type, s.asr_workers) == ("int8_float16", 8)


def test_cpu_defaults_are_the_service_defaults() -> None:
    from pipelines.settings import HarkenSettings

    args = _parse("asr", "--manifest", "m.jsonl", "--out", "r.json")
    s, default = _settings(args.model, args), HarkenSettings()
    assert (s.asr_device, s.asr_compute_type, s.asr_workers) == (
        default.asr_device, default.asr_compute_type, default.asr_workers)
    args = _parse("capacity", "--manifest", "m.jsonl", "--out", "r.json")
    assert args.max_channels > 12  # the levels tried go past the 12 channels the issue asks for
