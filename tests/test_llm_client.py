"""The optional LLM client for QA-form questions, against a real local server that speaks the OpenAI
chat-completions API: it parses the request, checks model and messages, and answers from the transcript it was
sent. Quotes are accepted only when they are in the transcript (timed from it); a malformed reply, a timeout,
an HTTP 500 or an unreachable endpoint leave the questions unanswered with a reason; the live session end
(`SessionEnricher.finish`) puts the LLM's answers into the scorecard's forms."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from intelligence.compliance import ComplianceEngine, load_packs
from intelligence.compliance.evaluation import events_from_reference, load_scenarios
from intelligence.compliance.forms import CallEvidence, evaluate_forms, transcript_lines
from intelligence.compliance.forms_loader import load_forms
from intelligence.llm import LlmClient, LlmConfig, LlmQuestion, TranscriptLine, parse_reply
from tests.server_util import free_port

MODEL = "qa-test-model"
API_KEY = "test-key"
LINE_RE = re.compile(r"^\[(\d+):(\d+(?:\.\d+)?)\] (\w+): (.*)$")
SLOW_S = 2.0


@dataclass
class FakeOpenAI:
    """State of the fake endpoint: how to misbehave, what it received, what it found wrong in requests."""

    mode: str = "normal"
    requests: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _parse_user_message(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    questions = [m.group(1) for m in re.finditer(r"^- ([\w.-]+): ", text, re.MULTILINE)]
    lines = [(m.group(3), m.group(4)) for m in (LINE_RE.match(x) for x in text.splitlines()) if m]
    return questions, lines


def _sentence_with(lines: list[tuple[str, str]], speaker: str, word: str) -> str | None:
    for who, text in lines:
        if who != speaker:
            continue
        m = re.search(rf"[^.!?]*{word}[^.!?]*", text)
        if m:
            return m.group().strip()
    return None


def _answer(qid: str, lines: list[tuple[str, str]]) -> dict[str, str]:
    """A deterministic "model": answers from the transcript it was sent."""
    if qid == "empathy":
        quote = _sentence_with(lines, "agent", r"\bsorry\b")
        return ({"answer": "met", "evidence": quote, "rationale": "The agent apologised and reassured the customer."}
                if quote else {"answer": "not_applicable", "evidence": "", "rationale": "No upset customer."})
    if qid == "next_steps":
        quote = _sentence_with(lines, "agent", r"\barrive\b")
        return ({"answer": "met", "evidence": quote, "rationale": "The agent said when the new card arrives."}
                if quote else {"answer": "not_met", "evidence": "", "rationale": "No next steps were given."})
    if qid == "plain_language":  # a quote nobody said: must be rejected
        return {"answer": "met", "evidence": "I promise this card will never be declined again",
                "rationale": "Clear explanations."}
    if qid == "polite_language":
        quote = _sentence_with(lines, "agent", "您好")
        return {"answer": "met" if quote else "not_met", "evidence": "您好" if quote else "", "rationale": "问候客户"}
    return {"answer": "not_applicable", "evidence": "", "rationale": "Not covered."}


def _app(fake: FakeOpenAI) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        fake.requests.append({"body": body, "authorization": request.headers.get("authorization")})
        if body.get("model") != MODEL:
            fake.problems.append(f"model {body.get('model')!r}")
            return JSONResponse({"error": {"message": "model not found"}}, status_code=404)
        messages = body.get("messages")
        if not (isinstance(messages, list) and [m.get("role") for m in messages] == ["system", "user"]
                and all(isinstance(m.get("content"), str) and m["content"] for m in messages)):
            fake.problems.append("messages are not [system, user] with text")
            return JSONResponse({"error": {"message": "bad messages"}}, status_code=400)
        if body.get("temperature") != 0:
            fake.problems.append("temperature is not 0")
        if fake.mode == "error500":
            return JSONResponse({"error": {"message": "internal error"}}, status_code=500)
        if fake.mode == "slow":
            await asyncio.sleep(SLOW_S)
        if fake.mode == "no_json_mode" and "response_format" in body:
            return JSONResponse({"error": {"message": "response_format is not supported by this model"}},
                                status_code=400)
        questions, lines = _parse_user_message(messages[1]["content"])
        content = json.dumps({q: _answer(q, lines) for q in questions}, ensure_ascii=False)
        if fake.mode == "malformed":
            content = 'Sure! Here are the answers: {"empathy": {"answer": "met", "evidence": "I\'m sorry'
        elif fake.mode == "fenced":
            content = f"Here you are:\n```json\n{content}\n```"
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}]}

    return app


@pytest.fixture(scope="module")
def llm_server():
    fake = FakeOpenAI()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app(fake), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "fake LLM server did not start"
        time.sleep(0.05)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def fake(llm_server):
    state, _ = llm_server
    state.mode = "normal"
    state.requests.clear()
    state.problems.clear()
    return state


@pytest.fixture(scope="module")
def engines(shared_data) -> dict[str, ComplianceEngine]:
    packs = load_packs()
    out = {}
    for call in load_scenarios(shared_data / "calls" / "dev", only=["dev_en_01", "dev_en_05"]):
        engine = ComplianceEngine(packs, session_id=call.call_id, language=call.language)
        engine.run(events_from_reference(call))
        out[call.call_id] = engine
    return out


QUESTIONS = [LlmQuestion("empathy", "Did the agent show empathy when the customer was upset?"),
             LlmQuestion("next_steps", "Did the agent summarise the next steps before closing?"),
             LlmQuestion("plain_language", "Did the agent explain things in plain language?")]


def _client(base: str, timeout_s: float = 10.0, **kw: Any) -> LlmClient:
    return LlmClient(LlmConfig(url=base, model=MODEL, api_key=API_KEY, timeout_s=timeout_s, **kw))


def test_answers_with_quotes_timed_from_the_transcript(llm_server, fake, engines) -> None:
    _, base = llm_server
    lines = transcript_lines(engines["dev_en_01"].state)
    result = _client(base + "/v1/").answer(QUESTIONS, lines, "en")  # URL given with /v1: not doubled
    assert fake.problems == [] and len(fake.requests) == 1
    req = fake.requests[0]
    assert req["authorization"] == f"Bearer {API_KEY}"
    assert req["body"]["response_format"] == {"type": "json_object"}
    assert "21.1] agent: I'm sorry to hear that" in req["body"]["messages"][1]["content"]
    empathy = result.answers["empathy"]
    assert empathy.answer == "met" and empathy.evidence == "I'm sorry to hear that, but don't worry, we can sort " \
        "this out right away"
    assert empathy.time_s == pytest.approx(21.106)  # the segment the quote is in, not anything the model said
    assert "apologised" in empathy.rationale
    steps = result.answers["next_steps"]
    assert steps.answer == "met" and steps.evidence.startswith("The new card should arrive")
    assert steps.time_s == pytest.approx(71.345)
    # the invented quote is refused: the question stays unanswered, with the reason
    assert "plain_language" not in result.answers
    assert "not in the transcript" in result.unanswered["plain_language"]
    assert result.error is None


def test_prompt_has_card_data_masked(llm_server, fake, engines) -> None:
    _, base = llm_server
    lines = transcript_lines(engines["dev_en_05"].state)
    _client(base).answer(QUESTIONS[:1], lines, "en")
    prompt = fake.requests[0]["body"]["messages"][1]["content"]
    assert "Jennifer Walsh" in prompt  # the transcript is there...
    assert "4539" not in prompt and "6467" not in prompt and "381" not in prompt  # ...without the card data
    assert "my card number is #### ####" in prompt and "the code on the back is ###" in prompt


def test_malformed_reply_leaves_questions_unanswered(llm_server, fake, engines) -> None:
    _, base = llm_server
    fake.mode = "malformed"
    result = _client(base).answer(QUESTIONS, transcript_lines(engines["dev_en_01"].state))
    assert result.answers == {}
    assert set(result.unanswered) == {q.id for q in QUESTIONS}
    assert all("not valid JSON" in r for r in result.unanswered.values())


def test_fenced_json_reply_is_read(llm_server, fake, engines) -> None:
    _, base = llm_server
    fake.mode = "fenced"
    result = _client(base).answer(QUESTIONS[:2], transcript_lines(engines["dev_en_01"].state))
    assert {k: a.answer for k, a in result.answers.items()} == {"empathy": "met", "next_steps": "met"}


def test_timeout_leaves_questions_unanswered(llm_server, fake, engines) -> None:
    _, base = llm_server
    fake.mode = "slow"
    started = time.monotonic()
    result = _client(base, timeout_s=0.5).answer(QUESTIONS, transcript_lines(engines["dev_en_01"].state))
    assert time.monotonic() - started < SLOW_S
    assert result.answers == {} and "within 0.5 s" in result.unanswered["empathy"]
    assert len(fake.requests) == 1  # it was reached and was slow, not refused


async def test_async_client_timeout_and_answers(llm_server, fake, engines) -> None:
    _, base = llm_server
    lines = transcript_lines(engines["dev_en_01"].state)
    fake.mode = "slow"
    started = time.monotonic()
    slow = await _client(base, timeout_s=0.5).aanswer(QUESTIONS, lines)
    assert time.monotonic() - started < SLOW_S and "within 0.5 s" in slow.unanswered["next_steps"]
    fake.mode = "normal"
    ok = await _client(base).aanswer(QUESTIONS, lines)
    assert ok.answers["next_steps"].time_s == pytest.approx(71.345)


def test_http_500_and_unreachable_endpoint(llm_server, fake, engines) -> None:
    _, base = llm_server
    lines = transcript_lines(engines["dev_en_01"].state)
    fake.mode = "error500"
    result = _client(base).answer(QUESTIONS, lines)
    assert result.answers == {} and "HTTP 500" in result.unanswered["empathy"] and result.error
    down = _client(f"http://127.0.0.1:{free_port()}", timeout_s=2).answer(QUESTIONS, lines)
    assert down.answers == {} and "could not be reached" in down.unanswered["empathy"]


def test_server_without_json_mode_is_asked_again(llm_server, fake, engines) -> None:
    _, base = llm_server
    fake.mode = "no_json_mode"
    result = _client(base).answer(QUESTIONS[:1], transcript_lines(engines["dev_en_01"].state))
    assert result.answers["empathy"].answer == "met"
    assert ["response_format" in r["body"] for r in fake.requests] == [True, False]


def test_parse_reply_is_defensive() -> None:
    lines = [TranscriptLine(0, "agent", 1.0, 5.0, "Hello, this is Ann. Your card #### #### will arrive Monday.",
                            ((0, 1.0), (20, 3.5))),
             TranscriptLine(1, "customer", 6.0, 7.0, "不好意思，我没听清楚。", ((0, 6.0),))]
    qs = [LlmQuestion(q, q) for q in ("a", "b", "c", "d", "e", "f", "g")]
    reply = json.dumps({
        "a": {"answer": "Met", "evidence": "your card #### ####  will ARRIVE monday", "rationale": "x" * 999},
        "b": {"answer": "maybe", "evidence": ""},
        "c": {"answer": "met", "evidence": ""},          # met needs a quote
        "d": "not applicable",                            # a bare string answer
        "e": {"answer": "not_met", "evidence": "我没听清楚"},
        "f": ["met"],
    })
    r = parse_reply(reply, qs, lines)
    assert r.answers["a"].evidence == "Your card #### #### will arrive Monday" and r.answers["a"].time_s == 3.5
    assert len(r.answers["a"].rationale) == 300
    assert r.answers["d"].answer == "not_applicable"
    assert r.answers["e"].answer == "not_met" and r.answers["e"].time_s == 6.0
    assert "not met, not_met" in r.unanswered["b"] and "without quoting" in r.unanswered["c"]
    assert "not an object" in r.unanswered["f"] and "no answer" in r.unanswered["g"]
    wrapped = parse_reply(json.dumps({"answers": {"d": {"answer": "n/a"}}}), qs[3:4], lines)
    assert wrapped.answers["d"].answer == "not_applicable"
    assert parse_reply("[1, 2]", qs[:1], lines).unanswered["a"] == "the LLM reply was not a JSON object"


def test_endpoint_url_forms() -> None:
    for url in ("http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/chat/completions"):
        assert LlmConfig(url, "m").endpoint == "http://h:8000/v1/chat/completions"


def test_forms_answered_by_llm_and_detectors(llm_server, fake, engines) -> None:
    _, base = llm_server
    forms = load_forms(packs=engines["dev_en_01"].packs)
    (result,) = evaluate_forms(forms, CallEvidence.from_engine(engines["dev_en_01"]), llm=_client(base))
    by_id = {a.question_id: a for a in result.answers}
    # only the questions no detector answers were sent
    (req,) = fake.requests
    sent, _ = _parse_user_message(req["body"]["messages"][1]["content"])
    assert sent == ["empathy", "next_steps", "plain_language"]
    assert by_id["empathy"].source == "llm" and by_id["empathy"].time_s == pytest.approx(21.106)
    assert by_id["recording_notice"].source == "detector" and by_id["recording_notice"].answer == "met"
    assert result.unanswered == ("plain_language",)
    assert "not in the transcript" in by_id["plain_language"].reason


class _StubSession:
    """What SessionEnricher.finish uses of its StageContext: the session id, config, history, publish, errors."""

    def __init__(self, session_id: str) -> None:
        from pipelines.config import SessionConfig

        self.session_id = session_id
        self.config = SessionConfig(session_id=session_id)
        self.metadata: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.emitted: list[dict[str, Any]] = []
        self.errors = 0

    async def publish(self, event: Any) -> None:
        from intelligence.events import to_json

        self.emitted.append(to_json(event))

    def count_error(self) -> None:
        self.errors += 1


async def _finish_live(shared_data, settings) -> tuple[dict[str, Any], float]:
    from pipelines.enrich import EnrichmentResources, SessionEnricher

    call = load_scenarios(shared_data / "calls" / "dev", only=["dev_en_01"])[0]
    res = EnrichmentResources(settings)
    engine = ComplianceEngine(res.packs(), session_id="live-1", language="en", normalizer=res.normalizer())
    session = _StubSession("live-1")
    enricher = SessionEnricher(session, res, engine)  # type: ignore[arg-type]
    for event in events_from_reference(call):
        await enricher._engine_call(engine.on_transcript, event)
    started = time.monotonic()
    await enricher.finish(session)  # type: ignore[arg-type]
    took_s = time.monotonic() - started
    assert session.errors == 0
    return next(e for e in session.emitted if e["type"] == "scorecard"), took_s


async def test_live_session_end_fills_forms_with_the_llm(llm_server, fake, shared_data, tmp_path) -> None:
    from pipelines.settings import HarkenSettings

    _, base = llm_server
    settings = HarkenSettings(auth=False, data_dir=tmp_path, compliance_meaning=False, classifiers=False, llm_url=base,
                              llm_model=MODEL, llm_timeout_s=5)
    card, _ = await _finish_live(shared_data, settings)
    (form,) = card["forms"]
    answers = {a["question_id"]: a for a in form["answers"]}
    assert answers["empathy"]["source"] == "llm" and answers["empathy"]["answer"] == "met"
    assert answers["empathy"]["time_s"] == pytest.approx(21.106)
    assert answers["recording_notice"]["answer"] == "met" and answers["recording_notice"]["source"] == "detector"
    assert form["unanswered"] == ["plain_language"]
    json.dumps(card)  # the event is stored and exported as JSON

    # the same call without an LLM: the form says which questions went unanswered
    no_llm, _ = await _finish_live(shared_data, HarkenSettings(auth=False, data_dir=tmp_path, compliance_meaning=False,
                                                            classifiers=False))
    (form,) = no_llm["forms"]
    assert form["unanswered"] == ["empathy", "next_steps", "plain_language"]
    assert all("no LLM is configured" in a["reason"] for a in form["answers"] if a["answer"] == "unanswered")

    # a slow LLM holds the end of the call no longer than llm_timeout_s
    fake.mode = "slow"
    slow, took_s = await _finish_live(shared_data, HarkenSettings(auth=False, data_dir=tmp_path, compliance_meaning=False,
                                                                  classifiers=False, llm_url=base,
                                                                  llm_model=MODEL, llm_timeout_s=0.5))
    assert took_s < SLOW_S
    (form,) = slow["forms"]
    assert form["unanswered"] == ["empathy", "next_steps", "plain_language"]
    assert "within 0.5 s" in next(a for a in form["answers"] if a["question_id"] == "empathy")["reason"]
