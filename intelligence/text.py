"""Text helpers shared by captions, rules and evaluation (pure; OpenCC is a data library, not a model)."""

from __future__ import annotations

import functools
import re
import unicodedata

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese characters to Simplified (Whisper drifts to Traditional without a prompt)."""
    if not text or not _CJK.search(text):
        return text
    return _t2s().convert(text)


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def normalize_token(text: str) -> str:
    """Comparison key for a recognised word: case-folded, punctuation and spaces stripped."""
    t = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in t if ch.isalnum())


def clock_time(seconds: float) -> str:
    """A call position as m:ss.s ("1:05.3"), for reports and transcripts shown to people and models."""
    tenths = int(round(max(0.0, seconds) * 10))  # round first, so 59.96 s reads 1:00.0, not 0:60.0
    m, t = divmod(tenths, 600)
    return f"{m}:{t / 10:04.1f}"
