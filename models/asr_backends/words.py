"""Turn a non-Whisper recogniser's output (text, tokens, token times) into the pipeline's Words and hypothesis.

The commit policy (LocalAgreement) compares words between decodes and waits for audio after each word, so what a
"word" is matters: for Chinese it is one character (as Whisper's word timestamps give for zh), for Latin script a
space-separated word. Like Whisper's words, a Latin word carries its leading space and punctuation sticks to the
word before it, so `join_words` gives back readable text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from intelligence.text import to_simplified
from intelligence.types import Word
from models.asr import AsrHypothesis, compression_ratio

# These recognisers give no calibrated word confidence; the commit policy treats words under 0.5 as unsure (wait
# longer) and over 0.9 as sure (commit sooner). A value between the two leaves the default rule in charge
# (agreement of two decodes plus right context) instead of pretending to a confidence nobody measured.
NEUTRAL_PROBABILITY = 0.75
# A token is at most this long when the next one starts much later (a pause follows it): without the cap the last
# word before a pause would stretch over the pause and wait needlessly for right context.
MAX_TOKEN_S = 0.5
# Special tokens of SenseVoice / Paraformer / transducer vocabularies that are not text
_TAG = re.compile(r"<\|[^|]*\|>")
_SPECIAL = {"<s>", "</s>", "<unk>", "<blk>", "<blank>", "<sil>", "<eps>", "<pad>"}
# Scripts written without spaces, one character a word: CJK ideographs, kana, hangul syllables
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af\U00020000-\U0002ffff"
_CJK_CHAR = re.compile(f"[{_CJK_CLASS}]")
_RUNS = re.compile(f"[{_CJK_CLASS}]|[^{_CJK_CLASS}]+")


def is_cjk(ch: str) -> bool:
    return bool(_CJK_CHAR.fullmatch(ch))


def _is_punct(text: str) -> bool:
    return bool(text) and all(unicodedata.category(c).startswith("P") for c in text)


@dataclass
class Unit:
    """A word being built: its text (without a leading space), whether it is Latin script, its times or None."""

    text: str
    latin: bool
    start: float | None = None
    end: float | None = None


def _token_ends(starts: Sequence[float], duration_s: float) -> list[float]:
    ends = []
    for i, start in enumerate(starts):
        nxt = starts[i + 1] if i + 1 < len(starts) else duration_s
        ends.append(max(start, min(nxt, start + MAX_TOKEN_S, duration_s)))
    return ends


def _add_run(units: list[Unit], run: str, start: float | None, end: float | None, continues: bool) -> None:
    """Append one run of a token (a CJK character, punctuation, or Latin text) to the words built so far."""
    prev = units[-1] if units else None
    if _is_punct(run.strip()) and prev is not None:
        prev.text += run.strip()
        if prev.end is not None and end is not None:
            prev.end = max(prev.end, end)
        return
    if _CJK_CHAR.match(run):
        units.append(Unit(run, False, start, end))
        return
    for k, word in enumerate(run.split()):
        if k == 0 and continues and prev is not None and prev.latin and not run[0].isspace():
            prev.text += word
            prev.end = end if end is not None else prev.end
        else:
            units.append(Unit(word, True, start, end))


def units_from_tokens(tokens: Sequence[str], starts: Sequence[float] | None, duration_s: float) -> list[Unit]:
    """Group recogniser tokens into words, with times when `starts` (one per token, seconds) is given.

    Handles SentencePiece pieces ('▁' starts a word, any other piece continues it), Paraformer pieces ('@@' at
    the end joins the piece to the next) and CJK tokens (each character a word; a multi-character token's time
    is split evenly between its characters).
    """
    timed = starts is not None and len(starts) == len(tokens) and len(tokens) > 0
    ends = _token_ends([float(s) for s in starts], duration_s) if timed and starts is not None else []
    sentencepiece = any(t.startswith("▁") for t in tokens)
    units: list[Unit] = []
    joins_next = False  # the previous piece ended with "@@"
    for i, raw in enumerate(tokens):
        token = _TAG.sub("", raw)
        if token in _SPECIAL or not token.replace("▁", "").strip():
            continue
        starts_word = token.startswith(("▁", " "))
        runs = _RUNS.findall(token.replace("▁", " ").removesuffix("@@").strip())
        step = (ends[i] - float(starts[i])) / len(runs) if timed and starts is not None else 0.0
        for j, run in enumerate(runs):
            start = float(starts[i]) + j * step if timed and starts is not None else None
            end = start + step if start is not None else None
            continues = j == 0 and (joins_next or (sentencepiece and not starts_word))
            _add_run(units, run, start, end, continues)
        joins_next = token.endswith("@@")
    return units


def units_from_text(text: str) -> list[Unit]:
    """Split plain text into words when the recogniser gave no tokens: CJK characters and Latin words."""
    units: list[Unit] = []
    for run in _RUNS.findall(_TAG.sub("", text)):
        _add_run(units, run, None, None, continues=False)
    return units


def words_from_units(units: list[Unit], duration_s: float, language: str) -> tuple[Word, ...]:
    """Words with times: the units' own where the recogniser gave them, else spread evenly over the audio."""
    if not units:
        return ()
    if any(u.start is None or u.end is None for u in units):
        # No token times: spread the words evenly over the audio, the best guess without an alignment
        step = duration_s / len(units) if duration_s > 0 else 0.0
        for i, u in enumerate(units):
            u.start, u.end = i * step, (i + 1) * step
    words = []
    for u in units:
        text = to_simplified(u.text) if language == "zh" else u.text
        start = round(float(u.start or 0.0), 3)
        end = round(max(start, float(u.end or 0.0)), 3)
        words.append(Word(text=(" " + text) if u.latin else text, start_s=start, end_s=end,
                          probability=NEUTRAL_PROBABILITY))
    return tuple(words)


def hypothesis(words: tuple[Word, ...], *, language: str, model: str, decode_s: float = 0.0,
               language_probs: dict[str, float] | None = None) -> AsrHypothesis:
    """An AsrHypothesis for a recogniser without Whisper's quality scores.

    avg_logprob is 0.0 (no calibrated score: the hallucination filter's log-probability rules then stay out of the
    way) and no_speech_prob is 1.0 only for an empty result; compression_ratio is computed from the text as for
    Whisper, so a decoding loop is still caught.
    """
    text = "".join(w.text for w in words).strip()
    return AsrHypothesis(
        words=words, language=language, avg_logprob=0.0, no_speech_prob=0.0 if text else 1.0,
        compression_ratio=compression_ratio(text), model=model, decode_s=decode_s,
        language_probs=language_probs or {},
    )
