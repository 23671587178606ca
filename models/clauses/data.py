"""The compliance clause corpus: hand-written utterances per rule family, labelled and split by writing style.

One JSON object per line (eval/data/clauses/*.jsonl, see its DATA_CARD.md):
  text, lang (en|zh), family, label (pos|neg, or a reply type for `customer_reply`), style, group, split
Train and test are split by `group` (a batch written in one style), never by utterance, so a test figure says
how a detector does on wording it has not seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPLY_FAMILY = "customer_reply"
REPLY_TYPES: tuple[str, ...] = ("explicit_yes", "backchannel", "hedge", "refusal", "question")
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "eval" / "data" / "clauses"


class ClauseDataError(ValueError):
    """A corpus line is malformed (the message names the file and line)."""


@dataclass(frozen=True, slots=True)
class ClauseExample:
    """One labelled utterance."""

    text: str
    lang: str
    family: str
    label: str
    style: str
    group: str
    split: str

    @property
    def positive(self) -> bool:
        return self.label == "pos"


def load_clauses(paths: Iterable[Path]) -> list[ClauseExample]:
    """All examples of the given JSONL files (or of every *.jsonl in a directory)."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        files += sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    if not files:
        raise ClauseDataError("no clause files given")
    out: list[ClauseExample] = []
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                ex = ClauseExample(str(d["text"]), str(d["lang"]), str(d["family"]), str(d["label"]),
                                   str(d.get("style", "")), str(d["group"]), str(d["split"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ClauseDataError(f"{f}:{n}: {exc}") from None
            if ex.split not in ("train", "test"):
                raise ClauseDataError(f"{f}:{n}: split must be train or test, not {ex.split!r}")
            valid = REPLY_TYPES if ex.family == REPLY_FAMILY else ("pos", "neg")
            if ex.label not in valid:
                raise ClauseDataError(f"{f}:{n}: label {ex.label!r} is not one of {', '.join(valid)}")
            out.append(ex)
    return out


def families(examples: Sequence[ClauseExample]) -> list[str]:
    """Binary families present (sorted), without the reply family."""
    return sorted({e.family for e in examples if e.family not in (REPLY_FAMILY, "background")})
