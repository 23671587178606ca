"""`harken minutes FILE|SESSION_ID`: the minutes of a recording (transcribed here) or of a stored session."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("minutes", help="minutes of a recording or of a stored session")
    p.add_argument("source", help="an audio file, or the id of a session in the data directory's store")
    p.add_argument("--format", choices=("md", "json", "html"), default="md")
    p.add_argument("--language", choices=("en", "zh", "auto"), default="auto")
    p.add_argument("--diarize", action="store_true", help="label speakers by voice (mono audio)")
    p.add_argument("--max-speakers", type=int, default=None)
    p.add_argument("--data-dir", type=Path, default=None, help="where the store is (for a session id)")
    p.add_argument("-o", "--output", type=Path, default=None)
    p.set_defaults(func=_minutes)


def _events_of_file(args: argparse.Namespace) -> list[dict[str, Any]]:
    from pipelines.audio_io import read_audio
    from pipelines.offline import replay
    from pipelines.runtime import build_runtime
    from pipelines.settings import HarkenSettings

    audio = read_audio(args.source)
    settings = HarkenSettings(database_url="sqlite://", store_audio=False, classifiers=False, compliance=False)

    async def run() -> list[dict[str, Any]]:
        rt = build_runtime(settings)
        try:
            _sid, events = await replay(rt.manager, audio, language=args.language, diarize=args.diarize,
                                        max_speakers=args.max_speakers)
            return events
        finally:
            await rt.aclose()

    return asyncio.run(run())


def _events_of_session(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str] | None:
    from pipelines.settings import HarkenSettings
    from pipelines.store import Store

    settings = HarkenSettings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    store = Store(settings.resolved_database_url())
    row = store.get_session(args.source)
    if row is None:
        return None
    return store.events(args.source), row.language


def _minutes(args: argparse.Namespace) -> int:
    from intelligence.minutes.render import to_html, to_json, to_markdown
    from intelligence.minutes.types import minutes_from_dict
    from pipelines.audio_io import AudioFileError
    from pipelines.minutes_stage import minutes_of

    language = args.language
    if Path(args.source).is_file():
        try:
            events = _events_of_file(args)
        except AudioFileError as exc:
            print(f"harken: {exc}", file=sys.stderr)
            return 2
    else:
        found = _events_of_session(args)
        if found is None:
            print(f"harken: {args.source} is neither a file nor a stored session id", file=sys.stderr)
            return 2
        events, stored_language = found
        language = stored_language if language == "auto" else language
    stored = [e for e in events if e.get("type") == "minutes"]
    m = minutes_from_dict(stored[-1]["minutes"]) if stored else minutes_of(events, language)
    if args.format == "md":
        out = to_markdown(m)
    elif args.format == "html":
        out = to_html(m)
    else:
        import json

        out = json.dumps(to_json(m), ensure_ascii=False, indent=2)
    if args.output:
        args.output.write_text(out + "\n", encoding="utf-8")
    else:
        print(out)
    return 0
