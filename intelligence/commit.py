"""Streaming commit policy: which recognised words become final, and guards against Whisper's failure modes.

LocalAgreement-2 (Macháček et al., ufal/whisper_streaming): a word is committed once two consecutive decodes of the
growing buffer agree on it (longest common prefix of the uncommitted parts). At the end of an utterance (VAD
silence) the last hypothesis is committed whole. Times are absolute (media clock), so re-decodes of a buffer that
still contains committed audio are reconciled by time and by n-gram overlap.

Guards (their users report loops and silence hallucinations):
- a hypothesis that loops (the same 1-4 word n-gram three or more times in a row) is cut after the first copy;
- a hypothesis flagged by the decoder as probably non-speech, or with a known silence-hallucination phrase and low
  confidence, is discarded;
- words that the aligner places beyond the audio actually decoded are dropped.

Echoes: a decode sometimes says a phrase twice when it was said once ("Laura Kim, the eighth of May 1988. Laura
Kim, the eighth of May 1988."), the second copy crammed into the audio left after the first, often with its
numbers written differently from what was committed ("8th" / "eighth"), so neither the time filter nor a word
comparison removes it. A span that repeats the words just before it (numbers compared in any written form) while
taking less than half their audio time is dropped: a person who repeats a phrase takes about as long again.

Numbers: Whisper regroups a spoken digit string from one decode to the next ("5 425" -> "542-5"), so a commit
inside a number strands half of it and the time filter then drops the regrouped rest. A commit never ends on a
number word while the hypothesis goes on with another number (or ends there): the whole number commits at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from intelligence.numbers import is_number_word, is_numeric_token
from intelligence.text import normalize_token
from intelligence.types import Word

# Phrases Whisper emits on silence or noise (its subtitle-heavy training data). Matched case-insensitively on the
# whole hypothesis, only when the decoder is not confident.
HALLUCINATION_PATTERNS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^\W*(thanks|thank you) (so much )?for watching\W*$",
        r"^\W*(please )?(like and )?subscribe\W*",
        r"subtitles? (by|made by)",
        r"^\W*(thank you|thanks|bye|you)\W*$",
        r"amara\.org",
        r"字幕",
        r"请不吝点赞",
        r"订阅",
        r"^\W*(谢谢观看|谢谢大家|谢谢)\W*$",
    )
)


@dataclass(frozen=True)
class HypothesisQuality:
    """Decoder confidence signals for one hypothesis."""

    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


def is_hallucination(text: str, quality: HypothesisQuality) -> bool:
    """True when a hypothesis should be discarded as non-speech or a known silence hallucination."""
    if quality.compression_ratio > 2.4:
        return True
    if quality.no_speech_prob > 0.5 and quality.avg_logprob < -1.0:
        return True
    if quality.avg_logprob < -1.5:  # the decoder itself does not believe it (typical of noise-only input)
        return True
    if quality.avg_logprob < -0.7 or quality.no_speech_prob > 0.4:
        stripped = text.strip()
        if any(p.search(stripped) for p in HALLUCINATION_PATTERNS):
            return True
    return False


def cut_repetition_loop(words: list[Word], min_repeats: int = 3, max_ngram: int = 4) -> list[Word]:
    """Cut a hypothesis at the start of a decoding loop (an n-gram repeated `min_repeats` times in a row)."""
    keys = [normalize_token(w.text) for w in words]
    n_words = len(keys)
    for start in range(n_words):
        for n in range(1, max_ngram + 1):
            if start + n * min_repeats > n_words:
                break
            gram = keys[start : start + n]
            if not any(gram):
                continue
            repeats = 1
            pos = start + n
            while pos + n <= n_words and keys[pos : pos + n] == gram:
                repeats += 1
                pos += n
            if repeats >= min_repeats:
                return words[: start + n]
    return words


def _hold_open_number(committed: list[Word], rest: list[Word]) -> int:
    """How many of `committed` may commit without ending inside a number that `rest` continues (or may)."""
    n = len(committed)
    following = rest[0] if rest else None
    while n and is_number_word(committed[n - 1].text) and (following is None or is_number_word(following.text)):
        following = committed[n - 1]
        n -= 1
    return n


def _join_digit_groups(keys: list[str]) -> tuple[list[str], list[int]]:
    """Word keys with each run of digit groups joined into one ("19", "74" -> "1974"), and how many words each
    joined key stands for."""
    out: list[str] = []
    sizes: list[int] = []
    for key in keys:
        if key.isdigit() and out and out[-1].isdigit():
            out[-1] += key
            sizes[-1] += 1
        else:
            out.append(key)
            sizes.append(1)
    return out, sizes


def _units(words: list[Word]) -> list[tuple[str, int, int]]:
    """(key, first word index, last word index): a run of number words is one unit with key '#'."""
    units: list[tuple[str, int, int]] = []
    for i, w in enumerate(words):
        if is_numeric_token(w.text):
            if units and units[-1][0] == "#" and units[-1][2] == i - 1:
                units[-1] = ("#", units[-1][1], i)
            else:
                units.append(("#", i, i))
        else:
            key = normalize_token(w.text)
            if key:
                units.append((key, i, i))
    return units


def find_echoes(context: list[Word], new: list[Word], *, min_units: int = 3, max_units: int = 16,
                squeeze: float = 0.5) -> set[int]:
    """Indices into `new` of words that echo the words just before them (in `context` + `new`).

    An echo is a span of at least `min_units` units (two of them not numbers) equal to the span right before it
    and taking less than `squeeze` times its duration.
    """
    seq = list(context) + list(new)
    units = _units(seq)
    keys = [u[0] for u in units]
    drop: set[int] = set()
    u = next((k for k, unit in enumerate(units) if unit[1] >= len(context)), len(units))
    while u < len(units):
        found = 0
        for length in range(min(max_units, u, len(units) - u), min_units - 1, -1):
            first, second = keys[u - length : u], keys[u : u + length]
            if first != second or sum(k != "#" for k in first) < 2:
                continue
            a0, a1 = seq[units[u - length][1]], seq[units[u - 1][2]]
            b0, b1 = seq[units[u][1]], seq[units[u + length - 1][2]]
            if b1.end_s - b0.start_s < squeeze * (a1.end_s - a0.start_s):
                found = length
                break
        if found:
            for unit in units[u : u + found]:
                drop.update(i - len(context) for i in range(unit[1], unit[2] + 1) if i >= len(context))
            u += found
        else:
            u += 1
    return drop


@dataclass
class LocalAgreement:
    """LocalAgreement-2 over absolute-time words for one channel.

    `update` returns (newly committed words, tentative words). `flush` commits everything tentative (end of an
    utterance). Committed words never change.
    """

    tolerance_s: float = 0.1
    hold_numbers: bool = True
    committed_end_s: float = 0.0
    echoes_dropped: int = 0  # words removed by the echo guard (a statistic)
    _committed_tail: list[str] = field(default_factory=list)
    _committed_words: list[Word] = field(default_factory=list)  # the last committed words, for the echo guard
    _previous: list[Word] = field(default_factory=list)
    _history: list[tuple[float, list[Word]]] = field(default_factory=list)  # (audio end, words) of recent decodes

    def _new_words(self, hypothesis: list[Word]) -> list[Word]:
        new = [w for w in hypothesis if w.start_s > self.committed_end_s - self.tolerance_s]
        # A re-decode may repeat the last committed words with slightly shifted times: drop that overlap. Digit
        # groups are compared joined, as Whisper regroups them between decodes ("1974." then "19" "74.").
        if new and self._committed_tail and abs(new[0].start_s - self.committed_end_s) < 1.0:
            keys, sizes = _join_digit_groups([normalize_token(w.text) for w in new])
            tail, _ = _join_digit_groups(self._committed_tail)
            for n in range(min(5, len(tail), len(keys)), 0, -1):
                if tail[-n:] == keys[:n]:
                    new = new[sum(sizes[:n]):]
                    break
        echoes = find_echoes(self._committed_words, new) if new else set()
        if echoes:
            self.echoes_dropped += len(echoes)
            new = [w for i, w in enumerate(new) if i not in echoes]
        return new

    def _commit(self, words: list[Word]) -> None:
        if not words:
            return
        self.committed_end_s = max(self.committed_end_s, words[-1].end_s)
        self._committed_tail.extend(normalize_token(w.text) for w in words)
        del self._committed_tail[:-8]
        self._committed_words.extend(words)
        del self._committed_words[:-24]

    def update(
        self,
        hypothesis: list[Word],
        commit_until_s: float | None = None,
        *,
        unsure_until_s: float | None = None,
        min_probability: float = 0.0,
        sure_until_s: float | None = None,
        sure_probability: float = 1.1,
        settled_until_s: float | None = None,
        decode_end_s: float | None = None,
        agree_gap_s: float = 0.0,
        doubt_probability: float = 0.0,
    ) -> tuple[list[Word], list[Word]]:
        """Commit the prefix on which this hypothesis and the previous one agree.

        Words ending after `commit_until_s` stay tentative (heard without enough audio after them). A word that
        either decode gave a probability under `min_probability` must also end before `unsure_until_s`: an
        unsure word waits for more context instead of being committed on two short, alike guesses. A word this
        decode is sure of (`sure_probability`) that ends before `sure_until_s` commits without waiting for a
        second decode. A word ending before `settled_until_s` commits as this decode has it, agreed or not: a
        word the decodes keep changing (a name, a mumble) would otherwise hold back every word after it until
        the utterance ends, and the latest decode, with the most audio after the word, is the best guess.
        With `agree_gap_s`, agreement is with the latest decode whose audio ended at least that long before this
        one's (`decode_end_s`), not simply the previous one: frequent decodes then shorten the wait without two
        nearly identical inputs agreeing on the same mistake; an agreed word then ends where the shorter of the two
        decodes ends it. A word this decode gives under `doubt_probability` commits only when settled.
        """
        new = self._new_words(hypothesis)
        reference = self._previous
        if agree_gap_s and decode_end_s is not None:
            older = next((ws for end, ws in reversed(self._history) if end <= decode_end_s - agree_gap_s + 1e-6),
                         None)
            reference = [w for w in older or () if (w.start_s + w.end_s) / 2 > self.committed_end_s]
            self._history.append((decode_end_s, new))
            del self._history[:-12]
        committed: list[Word] = []
        for i, word in enumerate(new):
            if settled_until_s is not None and word.end_s <= settled_until_s:
                committed.append(word)
                continue
            if commit_until_s is not None and word.end_s > commit_until_s:
                break
            if word.probability < doubt_probability:
                break
            previous = reference[i] if i < len(reference) else None
            if previous is not None and normalize_token(word.text) == normalize_token(previous.text):
                unsure = min(word.probability, previous.probability) < min_probability
                if unsure and unsure_until_s is not None and word.end_s > unsure_until_s:
                    break
                if agree_gap_s and previous.end_s < word.end_s:
                    # the aligner stretches a word over the sound after it ("card" over the first digits of a
                    # card number); with the shorter end of the two decodes, what follows is not taken as committed
                    word = replace(word, end_s=max(previous.end_s, word.start_s))
            elif not (sure_until_s is not None and word.probability >= sure_probability
                      and word.end_s <= sure_until_s):
                break
            committed.append(word)
        if self.hold_numbers:
            del committed[_hold_open_number(committed, new[len(committed) :]) :]
        self._commit(committed)
        tentative = new[len(committed) :]
        self._previous = tentative
        return committed, tentative

    def flush(self, hypothesis: list[Word] | None = None) -> list[Word]:
        """Commit all of `hypothesis` beyond what is committed (or the last tentative words if None)."""
        words = self._new_words(hypothesis) if hypothesis is not None else list(self._previous)
        self._commit(words)
        self._previous = []
        self._history = []
        return words

    def force_commit_until(self, until_s: float) -> list[Word]:
        """Commit tentative words ending before `until_s` (used when a long buffer never reaches agreement)."""
        words = [w for w in self._previous if w.end_s <= until_s]
        self._commit(words)
        self._previous = self._previous[len(words) :]
        return words

    @property
    def tentative(self) -> list[Word]:
        return list(self._previous)
