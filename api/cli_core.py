"""Core commands: `harken serve`, `harken transcribe`, `harken stream`, `harken models`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the service (HTTP + WebSocket, and configured taps)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data-dir", type=Path, default=None, help="where the SQLite file and audio live (var/)")
    p.add_argument("--role", choices=("all", "gateway", "worker"), default=None,
                   help="all: one process does everything (default); gateway: clients and taps, sessions placed on "
                        "workers; worker: runs sessions (needs HARKEN_BROKER_URL=redis://... and a shared "
                        "HARKEN_DATABASE_URL; docs/cluster.md)")
    p.add_argument("--worker-id", default=None, help="this worker's name in the cluster (default: host-pid)")
    p.set_defaults(func=_serve)

    p = sub.add_parser("transcribe", help="run a recorded file through the streaming pipeline")
    p.add_argument("file", type=Path)
    p.add_argument("--format", choices=("text", "json", "vtt", "srt"), default="text")
    p.add_argument("--language", choices=("en", "zh", "auto"), default="auto")
    p.add_argument("--channels", default=None,
                   help="comma-separated channel names (default: speaker, or agent,customer for stereo)")
    p.add_argument("--model", default=None, help="ASR model (packaged: base, tiny.en)")
    p.add_argument("--diarize", action="store_true",
                   help="label speakers by voice (mono audio; a stereo file keeps its channel roles)")
    p.add_argument("--max-speakers", type=int, default=None, help="at most this many speakers (with --diarize)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--keep-card-data", action="store_true",
                   help="print spoken card numbers and CVVs in the clear (only for a permitted use; by default "
                        "they are masked with #, as in every stored transcript)")
    p.add_argument("-o", "--output", type=Path, default=None)
    p.set_defaults(func=_transcribe)

    p = sub.add_parser("stream", help="replay a file to a running server over WebSocket and print the events")
    p.add_argument("file", type=Path)
    p.add_argument("--url", default="ws://127.0.0.1:8000/v1/stream")
    p.add_argument("--realtime", action="store_true", help="send at real-time speed")
    p.add_argument("--language", choices=("en", "zh", "auto"), default="auto")
    p.add_argument("--finals-only", action="store_true")
    p.add_argument("--agent", default=None, help="tag the call with this agent id (agents see their own calls)")
    p.add_argument("--api-key", default=os.environ.get("HARKEN_API_KEY"),
                   help="an API key with the ingest scope (default: $HARKEN_API_KEY)")
    p.set_defaults(func=_stream)

    p = sub.add_parser("models", help="list or pull ASR models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    q = msub.add_parser("pull", help="download a faster-whisper model (needs a network)")
    q.add_argument("name", help="e.g. small, large-v3-turbo, or a Hugging Face repo id")
    q.set_defaults(func=_models_pull)
    q = msub.add_parser("list", help="models available offline")
    q.set_defaults(func=_models_list)


def _settings(**overrides: Any):
    from pipelines.settings import HarkenSettings

    return HarkenSettings(**{k: v for k, v in overrides.items() if v is not None})


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    settings = _settings(data_dir=args.data_dir, role=args.role, worker_id=args.worker_id)
    if settings.auth:
        from api.cli_identity import _open, ensure_first_admin

        identity, audit = _open(args.data_dir)
        shown = ensure_first_admin(identity, audit, settings.admin_password)
        identity.engine.dispose()
        if shown:  # printed once, never logged
            print(f"\nharken: first admin created. Sign in at http://{args.host}:{args.port}/ as 'admin' with "
                  f"password: {shown}\n(shown once; set HARKEN_ADMIN_PASSWORD to choose it)\n", flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info", ws_max_size=1 << 20)
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from intelligence.captions import build_cues, plain_text, to_srt, to_webvtt
    from pipelines.audio_io import AudioFileError, read_audio
    from pipelines.offline import finals, replay
    from pipelines.runtime import build_runtime

    try:
        audio = read_audio(args.file)
    except AudioFileError as exc:
        print(f"harken: {exc}", file=sys.stderr)
        return 2
    names = tuple(n.strip() for n in args.channels.split(",")) if args.channels else None
    settings = _settings(database_url="sqlite://", store_audio=False, asr_model=args.model)

    async def run() -> tuple[str, list[dict]]:
        rt = build_runtime(settings)
        bar = None
        if not args.no_progress and audio.duration_s > 30 and sys.stderr.isatty():
            bar = tqdm(total=round(audio.duration_s, 1), unit="s", desc=args.file.name, file=sys.stderr)
        last = [0.0]

        def progress(done_s: float) -> None:
            if bar is not None:
                bar.update(round(done_s - last[0], 1))
                last[0] = done_s

        try:
            return await replay(rt.manager, audio, language=args.language, channel_names=names, progress=progress,
                                diarize=args.diarize, max_speakers=args.max_speakers)
        finally:
            if bar is not None:
                bar.close()
            await rt.aclose()

    session_id, events = asyncio.run(run())
    fin = finals(events)
    if not args.keep_card_data:
        from intelligence.redaction import redact_finals

        fin = redact_finals(fin)
    if args.format == "json":
        from intelligence.speakers import diarization_turns

        doc = {"session_id": session_id, "duration_s": audio.duration_s,
               "card_data": "kept" if args.keep_card_data else "masked",
               "segments": [{k: e[k] for k in ("segment_id", "channel", "speaker", "start_s", "end_s",
                                               "text", "words", "language")} for e in fin]}
        if args.diarize:
            doc["speaker_turns"] = diarization_turns(events)
        out = json.dumps(doc, ensure_ascii=False, indent=2)
    elif args.format == "vtt":
        out = to_webvtt(build_cues(fin))
    elif args.format == "srt":
        out = to_srt(build_cues(fin))
    else:
        channels = sorted({e["channel"] for e in fin})
        if len(channels) <= 1 and not args.diarize:
            out = plain_text(fin)
        else:
            out = "\n".join(f"[{c.speaker}] {c.text}" for c in build_cues(fin))
    if args.output:
        args.output.write_text(out + "\n", encoding="utf-8")
    else:
        print(out)
    return 0


def _stream(args: argparse.Namespace) -> int:
    from pipelines.audio_io import AudioFileError, read_audio

    try:
        audio = read_audio(args.file)
    except AudioFileError as exc:
        print(f"harken: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_stream_async(args, audio))


async def _stream_async(args: argparse.Namespace, audio) -> int:
    import websockets

    if audio.is_dual_mono():
        audio = audio.mono()
    headers = {"X-API-Key": args.api_key} if args.api_key else None
    start = {"type": "start", "sample_rate_hz": audio.sample_rate_hz, "encoding": "s16le",
             "channels": audio.channels, "language": args.language,
             "metadata": {"file": args.file.name, **({"agent": args.agent} if args.agent else {})}}
    chunk = int(audio.sample_rate_hz * 0.1)
    try:
        async with websockets.connect(args.url, additional_headers=headers, max_size=1 << 22) as ws:
            await ws.send(json.dumps(start))

            async def sender() -> None:
                t0 = time.monotonic()
                for i in range(0, audio.samples.shape[0], chunk):
                    await ws.send(audio.samples[i : i + chunk].astype("<i2").tobytes())
                    if args.realtime:
                        ahead = (i + chunk) / audio.sample_rate_hz - (time.monotonic() - t0)
                        if ahead > 0:
                            await asyncio.sleep(ahead)
                await ws.send(json.dumps({"type": "stop"}))

            send_task = asyncio.create_task(sender())
            rc = 0
            async for message in ws:
                ev = json.loads(message)
                if ev.get("type") == "error":
                    rc = 1
                if args.finals_only and ev.get("type") == "transcript" and ev.get("kind") == "partial":
                    continue
                print(json.dumps(ev, ensure_ascii=False), flush=True)
                if ev.get("type") == "session_end":
                    break
            await send_task
            return rc
    except websockets.exceptions.InvalidStatus as exc:
        status = exc.response.status_code
        hint = " (refused: pass an API key with the ingest scope, --api-key or HARKEN_API_KEY; create one with " \
               "`harken keys create --scopes ingest`)" if status in (401, 403) else ""
        print(f"harken: cannot stream to {args.url}: HTTP {status}{hint}", file=sys.stderr)
        return 2
    except (OSError, websockets.exceptions.WebSocketException) as exc:
        print(f"harken: cannot stream to {args.url}: {exc}", file=sys.stderr)
        return 2


def _models_pull(args: argparse.Namespace) -> int:
    from models.loader import pull_model

    settings = _settings()
    target = pull_model(args.name, settings.data_dir / "models")
    print(f"pulled {args.name} into {target}; use HARKEN_ASR_MODEL={args.name}")
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from models.packaged_whisper import PACKAGED_MODEL_NAMES

    settings = _settings()
    pulled = sorted(p.name for p in (settings.data_dir / "models").glob("*") if (p / "model.bin").is_file())
    print(json.dumps({"packaged": list(PACKAGED_MODEL_NAMES), "pulled": pulled}, indent=2))
    return 0
