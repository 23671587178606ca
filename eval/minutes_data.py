"""Loaders for the meeting-summary sets that `harken eval minutes` scores: QMSum (English) and VCSum (Mandarin).

Both turn a meeting into `MinutesUtterance`s plus its reference summary. Neither set has timestamps, so start
times are synthesised from position at a typical speaking rate (2.5 words a second in English, 4 characters a
second in Mandarin): they only order the sentences and give the summary plausible positions; no score uses them.

QMSum: a folder of meeting JSON files (or one file, or a JSONL file of meetings) with `meeting_transcripts`
[{speaker, content}] and `general_query_list`, whose first answer summarises the whole meeting.

VCSum: `long_<split>.txt`, one JSON meeting a line with `id` and `summary`. The transcript is either in the line
itself (`context`: a list of paragraphs, each a list of sentences or one string, with `speaker` one id a
paragraph) or in the sibling `short_<split>.txt`, whose rows `<id>_<k>` are the meeting's segments in order.
Values may arrive JSON-encoded as strings (`"[1, 1, 2]"`) and are decoded.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intelligence.minutes.types import MinutesUtterance

EN_WORDS_PER_S = 2.5
ZH_CHARS_PER_S = 4.0

# QMSum marks non-speech and disfluencies in braces ({disfmarker}, {vocalsound}, {gap}) and keeps PTB spacing
# ("we 're", "that , uh ,"): strip the marks and re-attach clitics and punctuation so the text reads like ASR output.
_QMSUM_MARK = re.compile(r"\{[^{}]*\}")
_SPACE_BEFORE = re.compile(r"\s+(?=(?:n't|'s|'re|'ve|'ll|'d|'m|[,.?!;:%)])(?:\s|$))", re.IGNORECASE)
_SPACE_AFTER_OPEN = re.compile(r"([($])\s+")
_SPACES = re.compile(r"\s+")


class MinutesDataError(ValueError):
    """A data file is missing, truncated or not in the expected format (the message says which and where)."""


@dataclass(frozen=True)
class MinutesExample:
    """One meeting: its transcript as utterances and its reference summary."""

    meeting_id: str
    language: str
    utterances: tuple[MinutesUtterance, ...]
    reference: str


def load_minutes(path: Path, fmt: str, limit: int | None = None) -> list[MinutesExample]:
    """Load `limit` meetings (all when None) of a QMSum (`fmt="qmsum"`) or VCSum (`fmt="vcsum"`) set."""
    if fmt == "qmsum":
        return load_qmsum(path, limit)
    if fmt == "vcsum":
        return load_vcsum(path, limit)
    raise MinutesDataError(f"unknown format {fmt!r} (expected qmsum or vcsum)")


# -- QMSum ------------------------------------------------------------------------------------------------------


def load_qmsum(path: Path, limit: int | None = None) -> list[MinutesExample]:
    """Meetings from a QMSum folder of `*.json` (or the one folder below it that holds them), a file, or JSONL."""
    examples: list[MinutesExample] = []
    for name, meeting in _qmsum_records(Path(path)):
        examples.append(_qmsum_example(name, meeting))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise MinutesDataError(f"{path}: no QMSum meetings found")
    return examples


def _qmsum_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if not path.exists():
        raise MinutesDataError(f"{path}: not found")
    if path.is_dir():
        files = sorted(path.glob("*.json")) + sorted(path.glob("*.jsonl"))
        if not files:  # a set's root: use its one split folder, but never mix splits
            folders = sorted({f.parent for f in path.glob("**/*.json")})
            if len(folders) > 1:
                names = ", ".join(str(f.relative_to(path)) for f in folders)
                raise MinutesDataError(f"{path}: meetings in several folders ({names}); pass one")
            files = sorted(folders[0].glob("*.json")) if folders else []
    else:
        files = [path]
    for file in files:
        if file.suffix == ".jsonl":
            for lineno, row in _json_lines(file):
                yield f"{file.stem}:{lineno}", row
        else:
            yield file.stem, _json_file(file)


def _qmsum_example(name: str, meeting: dict[str, Any]) -> MinutesExample:
    turns = meeting.get("meeting_transcripts")
    queries = meeting.get("general_query_list")
    if not isinstance(turns, list) or not isinstance(queries, list):
        raise MinutesDataError(f"{name}: not a QMSum meeting (needs meeting_transcripts and general_query_list)")
    answers = [q.get("answer", "") for q in queries if isinstance(q, dict)]
    reference = next((a.strip() for a in answers if isinstance(a, str) and a.strip()), "")
    if not reference:
        raise MinutesDataError(f"{name}: general_query_list has no answer to use as the reference summary")
    utterances: list[MinutesUtterance] = []
    clock_s = 0.0
    for turn in turns:
        if not isinstance(turn, dict):
            raise MinutesDataError(f"{name}: a meeting_transcripts entry is not an object")
        text = clean_qmsum_text(str(turn.get("content", "")))
        if not text:
            continue
        dur_s = max(len(text.split()), 1) / EN_WORDS_PER_S
        utterances.append(MinutesUtterance(start_s=round(clock_s, 2), end_s=round(clock_s + dur_s, 2),
                                           speaker=str(turn.get("speaker", "")), text=text, language="en"))
        clock_s += dur_s
    return MinutesExample(meeting_id=name, language="en", utterances=tuple(utterances), reference=reference)


def clean_qmsum_text(text: str) -> str:
    """QMSum's PTB-spaced text with {marks} as plain ASR-like text ("we 're {disfmarker} ok ." -> "we're ok.")."""
    text = _QMSUM_MARK.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_BEFORE.sub("", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    return text.strip(" ,")


# -- VCSum ------------------------------------------------------------------------------------------------------


def load_vcsum(path: Path, limit: int | None = None) -> list[MinutesExample]:
    """Meetings from a VCSum `long_<split>.txt` (or a folder holding exactly one), joined with `short_<split>.txt`
    when the long file carries no transcript."""
    long_path = _vcsum_long_file(Path(path))
    rows = [row for _, row in _json_lines(long_path)]
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise MinutesDataError(f"{long_path}: no meetings")
    segments: dict[str, list[tuple[int, dict[str, Any]]]] | None = None
    if any(_decoded(row.get("context")) in (None, "", []) for row in rows):
        segments = _vcsum_segments(_vcsum_short_file(long_path))
    examples = []
    for row in rows:
        meeting_id = str(row.get("id", ""))
        summary = row.get("summary")
        if not meeting_id or not isinstance(summary, str) or not summary.strip():
            raise MinutesDataError(f"{long_path}: meeting {meeting_id or '?'} has no id or no summary")
        if _decoded(row.get("context")) not in (None, "", []):
            paragraphs = _vcsum_paragraphs(row, f"{long_path}:{meeting_id}")
        else:
            assert segments is not None
            parts = sorted(segments.get(meeting_id, []), key=lambda kv: kv[0])
            if not parts:
                raise MinutesDataError(f"meeting {meeting_id} of {long_path} has no segments in its short file")
            paragraphs = [p for k, seg in parts for p in _vcsum_paragraphs(seg, f"segment {meeting_id}_{k}")]
        examples.append(MinutesExample(meeting_id=meeting_id, language="zh",
                                       utterances=tuple(_vcsum_utterances(paragraphs)), reference=summary.strip()))
    return examples


def _vcsum_long_file(path: Path) -> Path:
    if path.is_dir():
        found = sorted(path.glob("long_*.txt"))
        if len(found) != 1:
            raise MinutesDataError(f"{path}: expected one long_<split>.txt, found {len(found)}; pass the file")
        return found[0]
    if not path.is_file():
        raise MinutesDataError(f"{path}: not found")
    return path


def _vcsum_short_file(long_path: Path) -> Path:
    if not long_path.name.startswith("long_"):
        raise MinutesDataError(f"{long_path}: meetings carry no `context` and the file is not named long_<split>.txt,"
                               " so its short_<split>.txt cannot be found")
    short = long_path.with_name("short_" + long_path.name[len("long_"):])
    if not short.is_file():
        raise MinutesDataError(f"{long_path}: meetings carry no `context` and {short.name} (their transcripts) is "
                               "not beside it")
    return short


def _vcsum_segments(short_path: Path) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Short rows by meeting id, each with its segment number (`13_1` is segment 1 of meeting 13)."""
    out: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for lineno, row in _json_lines(short_path):
        meeting, _, k = str(row.get("id", "")).rpartition("_")
        if not meeting or not k.isdigit():
            raise MinutesDataError(f"{short_path}:{lineno}: id {row.get('id')!r} is not <meeting>_<segment>")
        out[meeting].append((int(k), row))
    return out


def _vcsum_paragraphs(row: dict[str, Any], where: str) -> list[tuple[str, str]]:
    """(speaker, paragraph text) for each paragraph of a row's `context`."""
    context = _decoded(row.get("context"))
    speakers = _decoded(row.get("speaker"))
    if not isinstance(context, list):
        raise MinutesDataError(f"{where}: `context` is not a list of paragraphs")
    if not isinstance(speakers, list):
        speakers = []
    out = []
    for i, para in enumerate(context):
        para = _decoded(para)
        if isinstance(para, list):
            text = "".join(str(s).strip() for s in para)
        elif isinstance(para, str):
            text = para.strip()
        else:
            raise MinutesDataError(f"{where}: paragraph {i} is neither a list of sentences nor a string")
        if text:
            speaker = f"S{speakers[i]}" if i < len(speakers) else "S?"
            out.append((speaker, text))
    return out


def _vcsum_utterances(paragraphs: list[tuple[str, str]]) -> list[MinutesUtterance]:
    utterances = []
    clock_s = 0.0
    for speaker, text in paragraphs:
        dur_s = max(len(text), 1) / ZH_CHARS_PER_S
        utterances.append(MinutesUtterance(start_s=round(clock_s, 2), end_s=round(clock_s + dur_s, 2),
                                           speaker=speaker, text=text, language="zh"))
        clock_s += dur_s
    return utterances


# -- JSON helpers -----------------------------------------------------------------------------------------------


def _decoded(value: Any) -> Any:
    """A value that may be JSON-encoded in a string ("[1, 2]") as the structure it encodes; others unchanged."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MinutesDataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); truncated?") from None
    except UnicodeDecodeError:
        raise MinutesDataError(f"{path}: not UTF-8 text") from None
    if not isinstance(data, dict):
        raise MinutesDataError(f"{path}: expected a JSON object")
    return data


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON-lines file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise MinutesDataError(f"{path}: not UTF-8 text") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MinutesDataError(f"{path}:{lineno}: not valid JSON ({exc.msg}); truncated or malformed?") from None
        if not isinstance(row, dict):
            raise MinutesDataError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, row
