"""A small client for an OpenAI-compatible chat-completions endpoint that answers QA-form questions.

Optional: harken never needs it. When `HARKEN_LLM_URL` and `HARKEN_LLM_MODEL` are set, the questions of an
evaluation form that no detector answers (empathy, a summary of next steps) are sent in one request per form
with the call's transcript (speaker-labelled lines with times; card data already masked by the caller). The
reply must be one JSON object `{question_id: {answer, evidence, rationale}}`. It is parsed defensively: an
answer is kept only if it is one of met / not_met / not_applicable and, when it quotes evidence, the quote is
found (normalised) in the transcript; the evidence time is then taken from that line, never from the model.
Anything else (a timeout, an HTTP error, malformed JSON, an invented quote) leaves the question unanswered with
a reason. Nothing here logs transcript text or replies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from intelligence.text import clock_time

log = logging.getLogger(__name__)

LlmAnswerValue = Literal["met", "not_met", "not_applicable"]

MAX_RATIONALE_CHARS = 300
MAX_EVIDENCE_CHARS = 400
MIN_QUOTE_CHARS = 2  # normalised characters: a one-letter "quote" proves nothing

_ANSWER_SYNONYMS: dict[str, LlmAnswerValue] = {
    "met": "met", "yes": "met", "true": "met", "pass": "met", "passed": "met", "是": "met", "符合": "met",
    "not_met": "not_met", "not met": "not_met", "notmet": "not_met", "no": "not_met", "false": "not_met",
    "fail": "not_met", "failed": "not_met", "否": "not_met", "不符合": "not_met",
    "not_applicable": "not_applicable", "not applicable": "not_applicable", "n/a": "not_applicable",
    "na": "not_applicable", "不适用": "not_applicable",
}

SYSTEM_PROMPT = (
    "You are a quality-assurance evaluator for recorded customer calls. Answer each question about the call "
    "using only the transcript. For each question answer \"met\" (the agent or call did what the question asks), "
    "\"not_met\" (it did not), or \"not_applicable\" (the situation the question is about never arose). "
    "Quote the evidence exactly as it appears in one transcript line (the words only, without the line's time "
    "or speaker label); a \"met\" answer must quote evidence; a \"not_met\" answer quotes it when something was "
    "said, and leaves it empty when the answer is that something was never said. Give a one-sentence rationale. "
    "Reply with one JSON object and nothing else, shaped as "
    "{\"<question_id>\": {\"answer\": \"met|not_met|not_applicable\", \"evidence\": \"...\", \"rationale\": \"...\"}} "
    "with one entry for every question id."
)


@dataclass(frozen=True, slots=True)
class LlmConfig:
    """Where and how to reach the endpoint (from HarkenSettings: llm_url, llm_model, llm_api_key, llm_timeout_s)."""

    url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 20.0
    max_tokens: int = 1500

    @property
    def endpoint(self) -> str:
        """The chat-completions URL; `url` may be the server root, its `/v1`, or the full endpoint."""
        base = self.url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        if base.endswith("/v1"):
            return f"{base}/chat/completions"
        return f"{base}/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One speaker turn as the model sees it. `text` is already masked (card data as `#`); `segment_starts`
    are (character offset in `text`, start time) of the turn's segments, to time a quote found in the line."""

    index: int
    speaker: str
    start_s: float
    end_s: float
    text: str
    segment_starts: tuple[tuple[int, float], ...] = ()

    def time_at(self, char: int) -> float:
        """Start time of the segment that holds character `char` of the line's text."""
        t = self.start_s
        for offset, start_s in self.segment_starts:
            if offset <= char:
                t = start_s
        return t

    def render(self) -> str:
        return f"[{clock_time(self.start_s)}] {self.speaker}: {self.text}"


@dataclass(frozen=True, slots=True)
class LlmQuestion:
    """A question sent to the model: its id in the reply, and the plain-language text."""

    id: str
    text: str


@dataclass(frozen=True, slots=True)
class LlmAnswer:
    """An accepted answer: evidence is a quote found in the transcript (or empty), timed from its line."""

    question_id: str
    answer: LlmAnswerValue
    evidence: str = ""
    time_s: float | None = None
    rationale: str = ""


@dataclass(frozen=True, slots=True)
class LlmBatchResult:
    """What one request produced: accepted answers, and for every other question the reason it has none."""

    answers: dict[str, LlmAnswer] = field(default_factory=dict)
    unanswered: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # the request as a whole failed (timeout, HTTP status, malformed reply)


class LlmError(RuntimeError):
    """The endpoint could not be reached or did not reply with a chat completion."""


# -- prompt and reply handling (pure) ---------------------------------------------------------------------------


def build_messages(questions: Sequence[LlmQuestion], lines: Sequence[TranscriptLine],
                   language: str = "en") -> list[dict[str, str]]:
    """The chat messages for one batch of questions about one call."""
    qs = "\n".join(f"- {q.id}: {q.text}" for q in questions)
    transcript = "\n".join(line.render() for line in lines) or "(no speech transcribed)"
    lang = "Chinese" if language == "zh" else "English"
    user = (f"Call language: {lang}. Write the rationale in {lang}; quote evidence in the transcript's words.\n\n"
            f"Questions:\n{qs}\n\nTranscript (time, speaker: words; # marks masked card data):\n{transcript}")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def normalise_for_quote(text: str) -> tuple[str, list[int]]:
    """Letters, digits, Han characters and the mask character, NFKC and case-folded, with each kept character's
    index in `text`: quotes are compared ignoring case, spacing and punctuation."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        c = unicodedata.normalize("NFKC", ch).casefold()
        for part in c:
            if part.isalnum() or part == "#":
                out.append(part)
                index.append(i)
    return "".join(out), index


def locate_quote(quote: str, lines: Sequence[TranscriptLine]) -> tuple[TranscriptLine, str, float] | None:
    """The line that holds `quote` (normalised), the quote as written in that line, and its time; None if the
    quote is not in the transcript (the model invented or paraphrased it)."""
    needle, _ = normalise_for_quote(quote)
    if len(needle) < MIN_QUOTE_CHARS:
        return None
    for line in lines:
        hay, index = normalise_for_quote(line.text)
        pos = hay.find(needle)
        if pos < 0:
            continue
        start, end = index[pos], index[pos + len(needle) - 1] + 1
        return line, line.text[start:end], round(line.time_at(start), 3)
    return None


def _extract_json(content: str) -> Any:
    """The JSON object in a reply, tolerating code fences and text around it. Raises ValueError."""
    text = content.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the reply")
    return json.loads(text[start : end + 1])


def parse_reply(content: str, questions: Sequence[LlmQuestion], lines: Sequence[TranscriptLine]) -> LlmBatchResult:
    """Check the model's reply question by question (never raises)."""
    ids = [q.id for q in questions]
    try:
        data = _extract_json(content)
    except (ValueError, json.JSONDecodeError):
        return _all_unanswered(ids, "the LLM reply was not valid JSON")
    if isinstance(data, dict) and isinstance(data.get("answers"), dict) and not any(i in data for i in ids):
        data = data["answers"]  # a common wrapping: {"answers": {...}}
    if not isinstance(data, dict):
        return _all_unanswered(ids, "the LLM reply was not a JSON object")
    answers: dict[str, LlmAnswer] = {}
    unanswered: dict[str, str] = {}
    for qid in ids:
        item = data.get(qid)
        if item is None:
            unanswered[qid] = "the LLM reply has no answer for this question"
            continue
        if isinstance(item, str):
            item = {"answer": item}
        if not isinstance(item, Mapping):
            unanswered[qid] = "the LLM answer is not an object"
            continue
        raw = str(item.get("answer", "")).strip().lower().replace("-", "_")
        value = _ANSWER_SYNONYMS.get(raw) or _ANSWER_SYNONYMS.get(raw.replace("_", " "))
        if value is None:
            unanswered[qid] = "the LLM answer is not met, not_met or not_applicable"
            continue
        rationale = str(item.get("rationale") or "").strip()[:MAX_RATIONALE_CHARS]
        quote = str(item.get("evidence") or "").strip()[:MAX_EVIDENCE_CHARS]
        if value == "not_applicable" or not quote:
            if value == "met":
                unanswered[qid] = "the LLM answered met without quoting evidence"
                continue
            answers[qid] = LlmAnswer(qid, value, "", None, rationale)
            continue
        found = locate_quote(quote, lines)
        if found is None:
            unanswered[qid] = "the LLM's evidence quote is not in the transcript"
            continue
        _line, text, time_s = found
        answers[qid] = LlmAnswer(qid, value, text, time_s, rationale)
    return LlmBatchResult(answers, unanswered)


def _all_unanswered(ids: Sequence[str], reason: str) -> LlmBatchResult:
    return LlmBatchResult({}, {qid: reason for qid in ids}, reason)


# -- the client -----------------------------------------------------------------------------------------------


class LlmClient:
    """OpenAI-compatible chat completions over httpx: `answer` (blocking, for worker threads and the CLI) and
    `aanswer` (for the event loop). Both return an `LlmBatchResult` and never raise."""

    def __init__(self, config: LlmConfig, *, transport: httpx.BaseTransport | None = None,
                 async_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._async_transport = async_transport

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def _body(self, messages: list[dict[str, str]], json_mode: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "messages": messages, "temperature": 0,
                                "max_tokens": self.config.max_tokens}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    @staticmethod
    def _content(response: httpx.Response) -> str:
        if response.status_code >= 400:
            raise LlmError(f"LLM endpoint error: HTTP {response.status_code}")
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LlmError("the LLM endpoint did not return a chat completion") from exc
        if not isinstance(content, str):
            raise LlmError("the LLM endpoint did not return a chat completion")
        return content

    @staticmethod
    def _json_mode_refused(response: httpx.Response) -> bool:
        # Servers without JSON mode reject `response_format` with 400/422: ask again without it.
        return response.status_code in (400, 422) and "response_format" in response.text

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The reply text of one chat completion (blocking). Raises LlmError or httpx.TimeoutException."""
        timeout = httpx.Timeout(self.config.timeout_s)
        with httpx.Client(timeout=timeout, transport=self._transport) as client:
            r = client.post(self.config.endpoint, json=self._body(messages, True), headers=self._headers())
            if self._json_mode_refused(r):
                r = client.post(self.config.endpoint, json=self._body(messages, False), headers=self._headers())
            return self._content(r)

    async def acomplete(self, messages: list[dict[str, str]]) -> str:
        """`complete` on the event loop (httpx.AsyncClient)."""
        timeout = httpx.Timeout(self.config.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, transport=self._async_transport) as client:
            r = await client.post(self.config.endpoint, json=self._body(messages, True), headers=self._headers())
            if self._json_mode_refused(r):
                r = await client.post(self.config.endpoint, json=self._body(messages, False),
                                      headers=self._headers())
            return self._content(r)

    def answer(self, questions: Sequence[LlmQuestion], lines: Sequence[TranscriptLine],
               language: str = "en") -> LlmBatchResult:
        """Answer a batch of questions about one call (blocking; never raises)."""
        if not questions:
            return LlmBatchResult()
        try:
            content = self.complete(build_messages(questions, lines, language))
        except Exception as exc:  # noqa: BLE001 - the LLM is optional: any failure leaves questions unanswered
            return self._failed(questions, exc)
        return parse_reply(content, questions, lines)

    async def aanswer(self, questions: Sequence[LlmQuestion], lines: Sequence[TranscriptLine],
                      language: str = "en") -> LlmBatchResult:
        """`answer` on the event loop; `timeout_s` bounds the whole exchange, not only each network read."""
        if not questions:
            return LlmBatchResult()
        try:
            content = await asyncio.wait_for(self.acomplete(build_messages(questions, lines, language)),
                                             timeout=self.config.timeout_s)
        except Exception as exc:  # noqa: BLE001 - the LLM is optional: any failure leaves questions unanswered
            return self._failed(questions, exc)
        return parse_reply(content, questions, lines)

    def _failed(self, questions: Sequence[LlmQuestion], exc: Exception) -> LlmBatchResult:
        if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
            reason = f"the LLM did not answer within {self.config.timeout_s:g} s"
        elif isinstance(exc, LlmError):
            reason = str(exc)
        elif isinstance(exc, httpx.HTTPError):
            reason = f"the LLM endpoint could not be reached ({type(exc).__name__})"
        else:
            reason = f"the LLM request failed ({type(exc).__name__})"
        # The reason only: replies and transcripts never go to the log.
        log.warning("LLM form answers unavailable: %s", reason)
        return _all_unanswered([q.id for q in questions], reason)


def client_from_settings(settings: Any) -> LlmClient | None:
    """A client when `llm_url` and `llm_model` are both set, else None (the LLM is never required)."""
    url = getattr(settings, "llm_url", None)
    model = getattr(settings, "llm_model", None)
    if not url or not model:
        return None
    return LlmClient(LlmConfig(url=url, model=model, api_key=getattr(settings, "llm_api_key", None),
                               timeout_s=float(getattr(settings, "llm_timeout_s", 20.0))))
