"""`harken eval asr` / `harken eval capacity` device options: the GPU benchmark is one flag away, and the default
levels reach past what a CPU sustains."""

from __future__ import annotations

import argparse

import pytest

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
    assert args.max_channels > 16  # the levels tried go past the 16 channels this CPU sustains (2026-12-06)


def test_capacity_streams_know_what_is_said_and_score_their_finals(shared_data) -> None:
    from eval.capacity import build_streams, stream_wer

    streams = build_streams(shared_data / "asr" / "ljspeech-dev-tel" / "manifest.jsonl", 2, 20.0)
    assert len(streams) == 2 and streams[0].texts != streams[1].texts  # each channel says something else
    for st in streams:
        assert len(st.pcm) == 20 * 16000 and st.texts and len(st.texts) == len(st.text_ends_s)
        assert st.text_ends_s[-1] <= 20.0  # only clips that fit whole are scored
    # finals that say exactly the scored clips (and words after them, cut by the stream's end) score 0
    def finals(st, extra):
        words = [{"text": w, "start_s": 0.0} for w in " ".join(st.texts).split()]
        words.append({"text": extra, "start_s": st.text_ends_s[-1] + 1.0})
        return [{"type": "transcript", "kind": "final", "words": words}]

    assert stream_wer(streams, [finals(st, "cut") for st in streams], "en") == 0.0
    assert stream_wer(streams, [[] for _ in streams], "en") == 1.0


@pytest.mark.model
def test_fixed_decode_time_makes_the_streamed_transcript_independent_of_load(shared_data, tmp_path) -> None:
    """With a fixed simulated decode time, two runs give the same transcript even when one shares the CPU."""
    import threading

    from eval.asr import run_asr_eval
    from eval.asr_cli import _settings as settings_for

    manifest = shared_data / "asr" / "ljspeech-dev-tel" / "manifest.jsonl"

    def run() -> dict:
        return run_asr_eval(manifest, limit=1, realtime=False, settings=settings_for(None), offline=False,
                            progress=False, fixed_decode_s=0.35)

    quiet = run()
    stop = threading.Event()

    def burn() -> None:  # load the machine: measured decode times would change, simulated ones do not
        x = 0
        while not stop.is_set():
            x += 1

    burners = [threading.Thread(target=burn) for _ in range(2)]
    for t in burners:
        t.start()
    try:
        busy = run()
    finally:
        stop.set()
        for t in burners:
            t.join()
    assert [s["hyp"] for s in quiet["samples"]] == [s["hyp"] for s in busy["samples"]]
    assert quiet["wer"] < 0.5 and "fixed decode time 0.35 s" in quiet["mode"]
