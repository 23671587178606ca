"""Side-by-side streaming ASR: WhisperLiveKit on the same Whisper weights, audio and metrics as `eval/asr.py`.

`run_whisperlivekit` drives WhisperLiveKit's own streaming pipeline in-process (`TranscriptionEngine` +
`AudioProcessor`, the library API its server wraps; no browser or websocket): each clip is resampled to 16 kHz,
sent as s16le PCM (the `pcm_input` format the processor takes; it converts to float32 itself) in 100 ms chunks
paced at real time by the wall clock, and every response the processor yields is stamped with wall seconds since
the first chunk. Committed words are the ASR tokens in the response's lines (WhisperLiveKit's word timestamps,
in the audio's time base); shown-but-uncommitted words are the LocalAgreement hypothesis behind
`buffer_transcription`. Both become harken-style transcript events, so `eval.asr.word_latencies`, `error_rate`
and `pct` give numbers defined exactly as ours.

Offline set-up (no model hub): policy LocalAgreement with the faster-whisper backend on our CTranslate2 directory
(WhisperLiveKit's default SimulStreaming policy needs PyTorch Whisper weights, which would be downloaded);
Silero VAC from the ONNX file packaged in the wheel; warm-up on a local clip instead of its downloaded JFK
sample; diarization and translation off.

Install (never an unpinned torch, which pulls a CUDA build)::

    .venv/bin/pip install torch==2.13.0 tiktoken
    .venv/bin/pip install --no-deps whisperlivekit==0.2.26
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.asr import error_rate, load_manifest, pct, word_latencies
from pipelines.audio_io import read_audio

INSTALL_HINT = ("pip install torch==2.13.0 tiktoken && pip install --no-deps whisperlivekit==0.2.26 "
                "(into /work/main/.venv)")
SAMPLE_RATE = 16000
CHUNK_S = 0.1


def _pcm16k(path: Path) -> np.ndarray:
    """A clip as mono float32 at 16 kHz (soxr, as harken's offline path resamples)."""
    audio = read_audio(path).mono()
    pcm = audio.samples[:, 0].astype(np.float32) / 32768.0
    if audio.sample_rate_hz != SAMPLE_RATE:
        import soxr

        pcm = soxr.resample(pcm, audio.sample_rate_hz, SAMPLE_RATE).astype(np.float32)
    return pcm


def _words(tokens: list[Any]) -> list[dict[str, Any]]:
    return [{"text": t.text.strip(), "start_s": float(t.start), "end_s": float(t.end)}
            for t in tokens if t.text and t.text.strip()]


async def _stream_clip(engine: Any, pcm: np.ndarray) -> tuple[list[dict[str, Any]], str, float]:
    """Feed one clip at real time to a fresh WhisperLiveKit session.

    Returns (harken-style transcript events stamped with `wall_s`, committed text, summed decode seconds)."""
    from whisperlivekit import AudioProcessor

    proc = AudioProcessor(transcription_engine=engine, pcm_input=True)
    online = proc.transcription
    get_buffer = online.get_buffer

    def get_buffer_with_tokens() -> Any:
        # keep the hypothesis tokens (with times) behind the buffer text, so partials can be matched by time
        tr = get_buffer()
        tr.wlk_tokens = list(getattr(getattr(online, "transcript_buffer", None), "buffer", []) or [])
        return tr

    online.get_buffer = get_buffer_with_tokens
    results = await proc.create_tasks()
    events: list[dict[str, Any]] = []
    committed: list[Any] = []
    t0 = time.monotonic()

    async def collect() -> None:
        async for front in results:
            wall = time.monotonic() - t0
            if front.status == "error":
                raise RuntimeError(f"whisperlivekit: {front.error}")
            toks = [t for line in front.lines for t in (line.tokens or []) if not t.is_silence()]
            new = toks[len(committed):]
            committed.extend(new)
            if new:
                events.append({"type": "transcript", "kind": "final", "channel": 0, "wall_s": wall,
                               "words": _words(new)})
            shown = proc.state.buffer_transcription
            if front.buffer_transcription.strip() and shown is not None:
                events.append({"type": "transcript", "kind": "partial", "channel": 0, "wall_s": wall,
                               "words": _words(getattr(shown, "wlk_tokens", []))})

    collector = asyncio.create_task(collect())
    step = int(SAMPLE_RATE * CHUNK_S)
    s16 = (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2")
    for i in range(0, s16.shape[0], step):
        await proc.process_audio(s16[i: i + step].tobytes())
        ahead = (i + step) / SAMPLE_RATE - (time.monotonic() - t0)
        if ahead > 0:
            await asyncio.sleep(ahead)
    await proc.process_audio(b"")  # end of stream: flush, then finish() commits the remaining hypothesis
    try:
        await collector
    finally:
        await proc.cleanup()
    text = "".join(t.text for t in committed).strip()
    return events, text, float(sum(proc.metrics.transcription_durations))


def run_whisperlivekit(manifest: Path, *, limit: int | None, model_dir: Path, language: str = "en",
                       vac: bool = True) -> dict[str, Any]:
    """Stream each clip of `manifest` through WhisperLiveKit in real time; WER and word latencies as eval/asr.py.

    `model_dir`: a faster-whisper (CTranslate2) Whisper directory, e.g. `packaged_model_dir("base")`.
    `vac`: WhisperLiveKit's default voice-activity controller (Silero, ONNX file shipped in its wheel)."""
    try:
        import whisperlivekit  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"whisperlivekit is not installed: {INSTALL_HINT}") from exc
    from whisperlivekit import TranscriptionEngine

    version = importlib.metadata.version("whisperlivekit")
    quiet = [n for n in ["whisperlivekit", "faster_whisper", *logging.root.manager.loggerDict]
             if n.startswith(("whisperlivekit", "faster_whisper"))]  # they log every chunk at INFO
    levels = {n: logging.getLogger(n).level for n in quiet}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    clips = load_manifest(manifest, limit)
    if not clips:
        raise ValueError(f"{manifest}: no clips")
    settings: dict[str, Any] = {
        "backend_policy": "localagreement", "backend": "faster-whisper", "model_dir": str(model_dir),
        "lan": language, "vac": vac, "min_chunk_size": 0.1, "buffer_trimming": "segment",
        "buffer_trimming_sec": 15.0, "diarization": False, "target_language": "", "pcm_input": True,
        "warmup_file": str(clips[0].path),
    }
    TranscriptionEngine.reset()  # a process-wide singleton: make sure these settings are the ones in force
    engine = TranscriptionEngine(**settings)
    ct2 = engine.asr.model.model

    async def run() -> dict[str, Any]:
        refs, hyps, final_lat, first_lat = [], [], [], []
        audio_s = decode_s = 0.0
        for clip in clips:
            pcm = _pcm16k(clip.path)
            audio_s += pcm.shape[0] / SAMPLE_RATE
            events, text, dec = await _stream_clip(engine, pcm)
            decode_s += dec
            fl, pl = word_latencies(events, "wall_s")
            final_lat += fl
            first_lat += pl
            refs.append(clip.text)
            hyps.append(text)
        return {
            "system": f"whisperlivekit {version}",
            "backend": "faster-whisper (LocalAgreement policy)",
            "manifest": str(manifest),
            "clips": len(clips),
            "audio_s": round(audio_s, 2),
            "wer": round(error_rate(refs, hyps, language), 4),
            "final_latency_s": pct(final_lat),
            "first_partial_latency_s": pct(first_lat),
            "rtf": round(decode_s / audio_s, 3) if audio_s else None,
            "settings": {**settings, "device": ct2.device, "compute_type": ct2.compute_type,
                         "beam_size": 5, "cpu_threads": "ctranslate2 default",
                         "chunk_s": CHUNK_S, "feed": "s16le 16 kHz, wall-clock paced",
                         "word_times": "committed ASR tokens (faster-whisper word timestamps)"},
            "date": time.strftime("%Y-%m-%d"),
            "samples": [{"ref": r, "hyp": h} for r, h in zip(refs, hyps, strict=True)],
        }

    try:
        return asyncio.run(run())
    finally:
        TranscriptionEngine.reset()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
