"""`harken eval taps-e2e`: captions through each telephony tap vs. the same audio decoded from the file.

Issue 5's acceptance: a known recording sent through a tap yields, per channel, captions whose WER is within
1.2 x that of the same audio decoded from the file, with agent and customer on the right channels.

For each of the first N English dev calls (../shared/data/calls/dev: stereo 8 kHz, agent left, customer right)
a real harken app is started in this process (uvicorn on a loopback port, SIP and AudioSocket listeners on),
and the call is placed through every tap by its protocol peer (eval/taps_clients.py: streamdouble for Twilio,
SIPp for SIPREC, byte-exact clients for AudioSocket, FreeSWITCH fork and AudioHook). Captions are read back over
REST (`/v1/sessions`, `/v1/sessions/{id}/transcript`). The reference is the same audio, cut the same way, replayed
through `pipelines.offline.replay` with the same model and language in the same process.

WER is computed per channel against the ground-truth turns' `text_spoken` (turns of that channel, words cut at
`--seconds` by their timings), after Whisper's EnglishTextNormalizer; per tap it is pooled over calls and
channels (total errors / total reference words). `ratio` = wer / file_wer, `delta` = wer - file_wer (with
few reference words and a WER near zero the ratio is noise: read both). `swapped` counts channels whose
captions match the other speaker's reference better than their own (should be 0).
AudioSocket carries one leg per connection: only the customer leg is sent, so only that channel is scored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eval import taps_clients as peers

log = logging.getLogger("harken.eval.taps_e2e")

TAPS = ("twilio", "audiosocket", "siprec", "freeswitch", "audiohook")
CHANNELS = ("agent", "customer")
DEFAULT_CALLS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calls" / "dev"
API_KEY = "harken-eval-audiohook-key"
SECRET_B64 = "aGFya2VuIGV2YWwgYXVkaW9ob29rIHNlY3JldCAzMmI="


# --- scoring -------------------------------------------------------------------------------------------------


def _normalizer() -> Any:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def reference_by_channel(gt: dict[str, Any], seconds: float | None = None) -> dict[str, str]:
    """Ground-truth text per speaker: each turn's `text_spoken`; a turn cut by `seconds` keeps its words
    that end before the cut (their timings come with the ground truth)."""
    out: dict[str, list[str]] = {name: [] for name in CHANNELS}
    for turn in gt["turns"]:
        speaker = turn["speaker"]
        if speaker not in out:
            continue
        if seconds is None or turn["end_s"] <= seconds:
            out[speaker].append(turn["text_spoken"])
        elif turn["start_s"] < seconds:
            out[speaker].append(" ".join(w["w"] for w in turn.get("words", []) if w["end_s"] <= seconds))
    return {k: " ".join(v) for k, v in out.items()}


@dataclass
class WordErrors:
    """Edit operations against a reference, to pool WER over calls and channels."""

    errors: int = 0
    words: int = 0

    @property
    def wer(self) -> float | None:
        return self.errors / self.words if self.words else None

    def add(self, other: WordErrors) -> None:
        self.errors += other.errors
        self.words += other.words


def word_errors(reference: str, hypothesis: str, normalizer: Any | None = None) -> WordErrors:
    """Substitutions + deletions + insertions of `hypothesis` against `reference`, after normalisation."""
    import jiwer

    norm = normalizer or _normalizer()
    ref, hyp = norm(reference).split(), norm(hypothesis).split()
    if not ref:
        return WordErrors(len(hyp), 0)
    out = jiwer.process_words(" ".join(ref), " ".join(hyp) if hyp else "")
    return WordErrors(out.substitutions + out.deletions + out.insertions, len(ref))


def text_by_channel(finals: list[dict[str, Any]], channel_names: list[str]) -> dict[str, str]:
    """Final captions joined per channel name (in segment order)."""
    out: dict[str, list[str]] = {name: [] for name in channel_names}
    for seg in sorted(finals, key=lambda s: (s.get("channel", 0), s.get("start_s", 0.0))):
        ch = int(seg.get("channel", 0))
        if 0 <= ch < len(channel_names):
            out[channel_names[ch]].append(str(seg.get("text", "")))
    return {k: " ".join(v) for k, v in out.items()}


# --- the server ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Server:
    base_url: str
    settings: Any
    app: Any


@contextlib.asynccontextmanager
async def serve(data_dir: Path, model: str) -> AsyncIterator[_Server]:
    """A real harken app (lifespan on: SIP + AudioSocket listeners) under uvicorn in this event loop."""
    import uvicorn

    from api.app import create_app
    from pipelines.settings import HarkenSettings

    settings = HarkenSettings(
        data_dir=data_dir, asr_model=model, classifiers=False, store_audio=False, max_channels=8,
        audiosocket_port=_free_port(), sip_port=_free_port(),
        audiohook_api_key=API_KEY, audiohook_client_secret=SECRET_B64,
    )
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", ws_max_size=1 << 20))
    task = asyncio.create_task(server.serve())
    for _ in range(1200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        raise RuntimeError("harken did not start")
    try:
        yield _Server(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 120)


async def ended_session(client: Any, call_ref: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """The ended session whose metadata call_id is `call_ref` (polls GET /v1/sessions)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = (await client.get("/v1/sessions", params={"limit": 1000})).json()
        for row in rows:
            if str(row.get("metadata", {}).get("call_id")) == call_ref and row["status"] == "ended":
                return row
        await asyncio.sleep(0.25)
    raise TimeoutError(f"no ended session for call {call_ref}")


# --- one call through one tap --------------------------------------------------------------------------------


async def place_call(tap: str, srv: _Server, call: peers.CallAudio, speed: float, workdir: Path) -> peers.PeerCall:
    """Send `call` through `tap` with its protocol peer (see eval/taps_clients.py)."""
    ws = srv.base_url.replace("http://", "ws://")
    s = srv.settings
    if tap == "twilio":
        return await peers.twilio_streamdouble(f"{ws}/v1/taps/twilio", call, speed=speed,
                                               custom_parameters={"language": "en", "tenant": "eval"})
    if tap == "audiosocket":
        return await peers.audiosocket_call("127.0.0.1", s.audiosocket_port, call, speed=speed)
    if tap == "siprec":
        sipp = shutil.which("sipp")
        if sipp is None:
            raise RuntimeError("sipp is not installed (scripts/install-peers.sh)")
        return await peers.siprec_sipp("127.0.0.1", s.sip_port, call, workdir / "sipp", speed=speed, sipp=sipp)
    if tap == "freeswitch":
        return await peers.freeswitch_fork(f"{ws}/v1/taps/freeswitch", call, speed=speed,
                                           metadata={"call_id": f"fs-{call.call_id}-{time.monotonic_ns()}"})
    if tap == "audiohook":
        return await peers.audiohook_call(f"{ws}/v1/taps/audiohook", call, api_key=API_KEY,
                                          secret_b64=SECRET_B64, speed=speed)
    raise ValueError(f"unknown tap {tap!r}")


@dataclass
class TapCallResult:
    call_id: str
    tap: str
    session_id: str
    language: str
    channel_names: list[str]
    end_reason: str | None
    wall_s: float
    per_channel: dict[str, dict[str, Any]] = field(default_factory=dict)


async def _file_finals(srv: _Server, call: peers.CallAudio, language: str) -> list[dict[str, Any]]:
    import numpy as np

    from pipelines.audio_io import DecodedAudio
    from pipelines.offline import finals, replay

    audio = DecodedAudio(np.stack([call.agent, call.customer], axis=1), peers.RATE_HZ)
    _sid, events = await replay(srv.app.state.harken.manager, audio, language=language, channel_names=CHANNELS,
                                metadata={"call_id": f"file-{call.call_id}"}, source="file")
    return finals(events)


@dataclass
class EvalCall:
    """One dev call as sent: its audio (possibly cut) and its per-channel reference text."""

    call_id: str
    audio: peers.CallAudio
    refs: dict[str, str]


def load_calls(calls_dir: Path, limit: int, seconds: float | None) -> list[EvalCall]:
    """The first `limit` English calls of a calls folder (manifest.jsonl, audio/, gt/)."""
    manifest = [json.loads(x) for x in (calls_dir / "manifest.jsonl").read_text().splitlines() if x.strip()]
    out = []
    for row in [r for r in manifest if r.get("language") == "en"][:limit]:
        audio = peers.load_call_audio(calls_dir / row["stereo_8k"], seconds=seconds)
        gt = json.loads((calls_dir / row["gt"]).read_text())
        out.append(EvalCall(row["call_id"], audio, reference_by_channel(gt, audio.duration_s if seconds else None)))
    return out


async def run(calls: list[EvalCall], speed: float, taps: tuple[str, ...], model: str,
              workdir: Path) -> dict[str, Any]:
    """Every call through every tap, then the same audio from the file; pooled WER per tap."""
    import httpx

    norm = _normalizer()
    results: list[TapCallResult] = []
    pooled = {t: {"tap": WordErrors(), "file": WordErrors()} for t in taps}
    swapped = dict.fromkeys(taps, 0)
    t_start = time.monotonic()
    async with serve(workdir / "harken", model) as srv, \
            httpx.AsyncClient(base_url=srv.base_url, timeout=60) as client:
        for c in calls:
            call, refs = c.audio, c.refs
            file_text: dict[str, dict[str, str]] = {}  # language -> channel -> text
            for tap in taps:
                t0 = time.monotonic()
                peer = await place_call(tap, srv, call, speed, workdir)
                session = await ended_session(client, peer.call_ref)
                tr = (await client.get(f"/v1/sessions/{session['id']}/transcript")).json()
                hyp = text_by_channel(tr["segments"], session["channel_names"])
                lang = session["language"]
                if lang not in file_text:
                    file_text[lang] = text_by_channel(await _file_finals(srv, call, lang), list(CHANNELS))
                res = TapCallResult(c.call_id, tap, session["id"], lang, session["channel_names"],
                                    session.get("end_reason"), round(time.monotonic() - t0, 1))
                for name in peer.channels_sent:
                    tap_e = word_errors(refs[name], hyp.get(name, ""), norm)
                    file_e = word_errors(refs[name], file_text[lang][name], norm)
                    other = "customer" if name == "agent" else "agent"
                    cross = word_errors(refs[other], hyp.get(name, ""), norm)
                    is_swapped = bool(cross.wer is not None and tap_e.wer is not None and cross.wer < tap_e.wer)
                    swapped[tap] += is_swapped
                    pooled[tap]["tap"].add(tap_e)
                    pooled[tap]["file"].add(file_e)
                    res.per_channel[name] = {"wer": tap_e.wer, "file_wer": file_e.wer, "ref_words": tap_e.words,
                                             "swapped": is_swapped}
                results.append(res)
                log.info("%s via %s: %s", c.call_id, tap,
                         {k: (round(v["wer"] or 0, 3), round(v["file_wer"] or 0, 3))
                          for k, v in res.per_channel.items()})
    summary: dict[str, Any] = {}
    for tap in taps:
        w, f = pooled[tap]["tap"].wer, pooled[tap]["file"].wer
        summary[tap] = {
            "wer": None if w is None else round(w, 4),
            "file_wer": None if f is None else round(f, 4),
            "ratio": None if w is None or not f else round(w / f, 3),
            "delta": None if w is None or f is None else round(w - f, 4),
            "within_1_2x": None if w is None or f is None else bool(w <= 1.2 * f + 1e-9),
            "ref_words": pooled[tap]["tap"].words,
            "swapped_channels": swapped[tap],
            "hangup_ends": sum(1 for r in results if r.tap == tap and r.end_reason == "hangup"),
            "calls": sum(1 for r in results if r.tap == tap),
        }
    return {
        "command": "harken eval taps-e2e",
        "calls": [c.call_id for c in calls],
        "speed": speed,
        "model": model,
        "wall_s": round(time.monotonic() - t_start, 1),
        "taps": summary,
        "per_call": [asdict(r) for r in results],
    }


def _cmd(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per REST poll otherwise
    taps = tuple(t.strip() for t in args.taps.split(",") if t.strip())
    unknown = set(taps) - set(TAPS)
    if unknown:
        print(f"unknown taps: {sorted(unknown)} (known: {', '.join(TAPS)})", file=sys.stderr)
        return 2
    calls = load_calls(Path(args.calls), args.limit, args.seconds)
    with tempfile.TemporaryDirectory(prefix="harken-taps-e2e-") as tmp:
        report = asyncio.run(run(calls, args.speed, taps, args.model, Path(tmp)))
    report["seconds"] = args.seconds
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({"taps": report["taps"], "calls": report["calls"], "wall_s": report["wall_s"]}, indent=2))
    return 0


def register_eval(sub: Any) -> None:
    p = sub.add_parser("taps-e2e", help="captions through each telephony tap (real peers, real server) "
                                        "vs. the same audio decoded from the file")
    p.add_argument("--calls", default=str(DEFAULT_CALLS), help="calls folder with manifest.jsonl, audio/, gt/")
    p.add_argument("--out", required=True, help="where to write the JSON report")
    p.add_argument("--limit", type=int, default=2, help="first N English calls")
    p.add_argument("--seconds", type=float, default=None, help="send only the first S seconds of each call")
    p.add_argument("--speed", type=float, default=4.0, help="send at this multiple of real time (1 = live)")
    p.add_argument("--taps", default=",".join(TAPS), help=f"comma-separated subset of {','.join(TAPS)}")
    p.add_argument("--model", default="base", help="ASR model (the same for taps and file)")
    p.set_defaults(func=_cmd)
