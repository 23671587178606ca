"""Send each decode to the backend for its language: Whisper for English, a Mandarin-native model for Chinese."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from models.asr import SAMPLE_RATE_HZ, AsrHypothesis, AsrRequest
from models.asr_backends.base import AsrBackend

# Language detection for an offline transcript looks at this much of the file (Whisper's own window)
_DETECT_S = 30


class LanguageRouter:
    """A decoder that routes by language (AsrBackend).

    A request whose `language` has a route (e.g. "zh") goes to that backend; any other language goes to the
    default backend (Whisper). A request with language None ("auto") is decoded by the default backend, which
    detects the language; when it detects a routed language, the request is decoded again by that backend with
    the language set, and the detection's language probabilities are kept. That second decode costs a Whisper
    decode per auto-language buffer that turns out Chinese: sessions that know their language should say so.

    Attributes other than the ones defined here (`beam_size`, `is_multilingual`, ...) are the default backend's,
    so code written against WhisperBackend keeps working.
    """

    def __init__(self, default: AsrBackend, routes: Mapping[str, AsrBackend]) -> None:
        if not routes:
            raise ValueError("LanguageRouter needs at least one language route")
        self.default = default
        self.routes = dict(routes)
        names = [default.model_name] + [b.model_name for b in self.routes.values() if b is not default]
        self.model_name = "+".join(names)

    def __getattr__(self, name: str):
        # Only called for attributes not found normally; guard against recursion before __init__ has run
        if name.startswith("__") or name in ("default", "routes"):
            raise AttributeError(name)
        return getattr(self.default, name)

    def backend_for(self, language: str | None) -> AsrBackend:
        """The backend a request in `language` goes to (the default one for None and unrouted languages)."""
        return self.routes.get(language, self.default) if language else self.default

    def decode(self, request: AsrRequest) -> AsrHypothesis:
        """Decode with the backend for the request's language; for an auto-language request, detect first."""
        if request.language is not None:
            return self.backend_for(request.language).decode(request)
        detected = self.default.decode(request)
        target = self.routes.get(detected.language)
        if target is None or target is self.default:
            return detected
        routed = target.decode(replace(request, language=detected.language))
        return replace(routed, language_probs=detected.language_probs or routed.language_probs,
                       decode_s=detected.decode_s + routed.decode_s)

    def detect_language(self, audio: np.ndarray) -> str:
        """The language the default backend hears in the first 30 s of `audio`."""
        head = np.asarray(audio, dtype=np.float32)[: _DETECT_S * SAMPLE_RATE_HZ]
        return self.default.decode(AsrRequest(audio=head, language=None, complete=True, sheddable=False)).language

    def transcribe_offline(self, audio: np.ndarray, language: str | None, beam_size: int = 5,
                           vocabulary: str = "") -> str:
        """Whole-file transcript by the backend for `language` (detected by the default backend when None)."""
        if language is None:
            detected = self.detect_language(audio)
            if detected in self.routes:
                language = detected
        return self.backend_for(language).transcribe_offline(audio, language, beam_size, vocabulary)
