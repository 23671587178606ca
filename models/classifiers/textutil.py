"""Small text checks shared by the classifiers (pure, no models)."""

from __future__ import annotations

import unicodedata


def has_letters(text: str) -> bool:
    """True when the text holds at least one letter of any script (so numbers, emoji, punctuation do not)."""
    return any(unicodedata.category(ch).startswith("L") for ch in text or "")


def cjk_share(text: str) -> float:
    """Share of CJK ideographs among the letters of `text` (0 when it has no letters)."""
    letters = [ch for ch in text or "" if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff") / len(letters)


def mostly_cjk(text: str) -> bool:
    """At least 30% of the letters are CJK ideographs: Chinese (possibly with English words mixed in)."""
    return cjk_share(text) >= 0.3


def head_tail(text: str, max_chars: int, tail_share: float = 0.35) -> str:
    """`text` cut to `max_chars` characters keeping its head and its tail (a turn states its request at the
    start or sums up at the end; the middle is the part to lose). Short text is returned unchanged."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    tail = int(max_chars * tail_share)
    head = max_chars - tail
    return text[:head] + " " + text[len(text) - tail:] if tail else text[:head]
