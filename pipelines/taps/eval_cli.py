"""`harken eval taps`: what the RTP path (codec + network + jitter buffer + concealment) does to real calls.

Each channel of the shared dev calls is encoded (PCMU, PCMA, G.722, Opus), packetised at 20 ms, sent through a
simulated network (independent loss, exponential delay jitter that reorders, a few duplicates), received by
the same `RtpStreamReceiver` the SIP server uses, and compared with the original: SNR of the delivered audio
(after the codec's delay), the timeline error (samples gained or lost; should be 0), the loss the receiver
counted, and the receive cost as a real-time factor. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.config import SessionConfig
from pipelines.taps import codecs
from pipelines.taps.media import RtpStreamReceiver, StreamFormat
from pipelines.taps.rtp import RtpPacket, build_rtp

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "calls" / "dev"
CODECS = {"PCMU": codecs.PCMU, "PCMA": codecs.PCMA, "G722": codecs.G722, "opus": codecs.OPUS}
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9, "opus": 111}


class _Sink:
    """A minimal session that only collects PCM (the eval measures the tap, not the pipeline)."""

    def __init__(self, sample_rate_hz: int) -> None:
        self.session_id = "eval"
        self.config = SessionConfig(channel_names=("x",), sample_rate_hz=sample_rate_hz)
        self.chunks: list[bytes] = []

    async def push_pcm(self, channel: int, pcm_s16le: bytes, sample_rate_hz: int) -> None:
        self.chunks.append(pcm_s16le)

    async def record_event(self, event_type: str, data: dict[str, Any]) -> None:
        return None

    def update_metadata(self, data: dict[str, Any]) -> None:
        return None

    async def close(self, reason: str = "hangup") -> None:
        return None

    def samples(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.chunks), dtype="<i2")


def _encode(spec: codecs.CodecSpec, pcm: np.ndarray) -> list[bytes]:
    frame = spec.sample_rate_hz // 50
    if spec.name in ("PCMU", "PCMA"):
        return [codecs.encode_frame(spec, pcm[i : i + frame]) for i in range(0, pcm.size - frame + 1, frame)]
    enc = codecs.PyAVEncoder(spec)
    out: list[bytes] = []
    for i in range(0, pcm.size - frame + 1, frame):
        packets = enc.encode(pcm[i : i + frame])
        out.append(packets[0] if packets else b"")
    return out


def _network(
    n: int, loss: float, jitter_ms: float, dup: float, rng: random.Random
) -> list[tuple[int, float]]:
    """(packet index, arrival time in s) after loss, duplication and delay jitter, in arrival order."""
    arrivals: list[tuple[int, float]] = []
    for i in range(n):
        if i > 0 and rng.random() < loss:  # the first packet always arrives, so the timeline has an origin
            continue
        copies = 2 if rng.random() < dup else 1
        for _ in range(copies):
            delay = 0.02 + (rng.expovariate(1000.0 / jitter_ms) if jitter_ms > 0 else 0.0)
            arrivals.append((i, i * 0.02 + delay))
    arrivals.sort(key=lambda a: a[1])
    return arrivals


def _snr_db(ref: np.ndarray, out: np.ndarray, lag: int) -> float:
    n = min(ref.size - lag, out.size - lag)
    r = ref[:n].astype(np.float64)
    e = r - out[lag : lag + n].astype(np.float64)
    err = (e**2).sum()
    # 99 dB stands for "identical": bit-exact delivery (G.711 without loss) has no error at all.
    return 99.0 if err == 0 else min(99.0, float(10 * np.log10((r**2).sum() / err)))


def _best_lag(ref: np.ndarray, out: np.ndarray, max_lag: int = 480) -> int:
    """The codec delay: the lag (0..max_lag samples) that maximises the cross-correlation (one FFT, no loops)."""
    n = min(ref.size, out.size, 48000)
    a = ref[:n].astype(np.float64)
    b = out[:n].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    return int(np.argmax(corr[:max_lag]))


async def _run_one(
    spec_name: str, pcm: np.ndarray, loss: float, jitter_ms: float, dup: float, seed: int, lag: int | None
) -> dict[str, Any]:
    spec = CODECS[spec_name]
    payloads = _encode(spec, pcm)
    pt = PAYLOAD_TYPES[spec_name]
    ticks = int(spec.rtp_clock_hz / 50)
    datagrams = [
        build_rtp(RtpPacket(pt, (7000 + i) & 0xFFFF, (1000 + i * ticks) & 0xFFFFFFFF, 99, p))
        for i, p in enumerate(payloads)
    ]
    sink = _Sink(spec.sample_rate_hz)
    rx = RtpStreamReceiver(sink, 0, StreamFormat({pt: spec}))
    arrivals = _network(len(datagrams), loss, jitter_ms, dup, random.Random(seed))
    t0 = time.perf_counter()
    for idx, at in arrivals:
        await rx.on_datagram(datagrams[idx], arrival_s=at)
    await rx.finish()
    cpu_s = time.perf_counter() - t0
    out = sink.samples()
    expected = len(payloads) * (spec.sample_rate_hz // 50)
    if lag is None:
        lag = _best_lag(pcm, out)
    return {
        "snr_db": _snr_db(pcm, out, lag),
        "lag": lag,
        "timeline_error_samples": int(out.size - expected),
        "sent": len(payloads),
        "lost_counted": rx.stats.packets_lost,
        "late": rx.stats.packets_late,
        "duplicates": rx.stats.packets_duplicate,
        "rtf": cpu_s / (len(payloads) * 0.02),
    }


def run_eval(
    data_dir: Path,
    n_calls: int,
    seconds: float,
    losses: list[float],
    jitter_ms: float,
    codec_names: list[str],
    seed: int,
) -> dict[str, Any]:
    import soundfile as sf
    import soxr

    files = sorted((data_dir / "audio").glob("*.stereo8k.wav"))[:n_calls]
    if not files:
        raise SystemExit(f"no calls under {data_dir / 'audio'}")
    rows: list[dict[str, Any]] = []
    for path in files:
        stereo, rate = sf.read(path, dtype="int16", always_2d=True)
        stereo = stereo[: int(seconds * rate)]
        for ch in range(stereo.shape[1]):
            narrow = np.ascontiguousarray(stereo[:, ch])
            for name in codec_names:
                spec = CODECS[name]
                pcm = (
                    narrow
                    if spec.sample_rate_hz == 8000
                    else soxr.resample(narrow, 8000, spec.sample_rate_hz)
                )
                lag: int | None = None
                for loss in losses:
                    r = asyncio.run(_run_one(name, pcm, loss, jitter_ms, 0.005, seed + ch, lag))
                    lag = r["lag"]
                    rows.append(
                        {"call": path.name.split(".")[0], "channel": ch, "codec": name, "loss": loss, **r}
                    )
    summary: dict[str, Any] = {}
    for name in codec_names:
        for loss in losses:
            sel = [r for r in rows if r["codec"] == name and r["loss"] == loss]
            summary[f"{name}@loss={loss:g}"] = {
                "snr_db_mean": round(float(np.mean([r["snr_db"] for r in sel])), 2),
                "timeline_error_samples_max": max(abs(r["timeline_error_samples"]) for r in sel),
                "loss_counted_pct": round(
                    100 * sum(r["lost_counted"] for r in sel) / sum(r["sent"] for r in sel), 2
                ),
                "late_pct": round(100 * sum(r["late"] for r in sel) / sum(r["sent"] for r in sel), 3),
                "rtf_mean": round(float(np.mean([r["rtf"] for r in sel])), 4),
            }
    return {
        "data": str(data_dir),
        "calls": len(files),
        "seconds_per_call": seconds,
        "jitter_ms_mean": jitter_ms,
        "seed": seed,
        "summary": summary,
    }


def _cmd(args: argparse.Namespace) -> int:
    result = run_eval(
        Path(args.data),
        args.calls,
        args.seconds,
        [float(x) for x in args.loss.split(",")],
        args.jitter_ms,
        args.codecs.split(","),
        args.seed,
    )
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


def register_eval(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`harken eval taps`."""
    p = subparsers.add_parser(
        "taps", help="RTP tap fidelity under loss/jitter per codec, on the shared calls"
    )
    p.add_argument("--data", default=str(DEFAULT_DATA), help="calls folder with audio/*.stereo8k.wav")
    p.add_argument("--calls", type=int, default=4, help="how many calls (sorted by name)")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds of each call")
    p.add_argument("--loss", default="0,0.01,0.03,0.05", help="comma-separated packet loss rates")
    p.add_argument("--jitter-ms", type=float, default=15.0, help="mean of the exponential extra delay")
    p.add_argument("--codecs", default="PCMU,PCMA,G722,opus")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="", help="also write the JSON here")
    p.set_defaults(func=_cmd)
