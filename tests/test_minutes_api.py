"""Minutes end to end: from a stored session's events to JSON / Markdown / HTML over the API, the optional LLM
path against a real local chat-completions server, and its fallback when the endpoint is unreachable."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from intelligence.llm import LlmClient, LlmConfig
from intelligence.minutes.build import build_minutes, utterances_from_events
from intelligence.minutes.render import to_json
from intelligence.minutes.types import minutes_from_dict
from pipelines.settings import HarkenSettings
from pipelines.store import Store
from tests.server_util import free_port, running_server

MEETING = [
    ("S1", 0.0, 6.0, "Good morning everyone, let's review the launch plan for the mobile banking app."),
    ("S2", 6.5, 14.0, "The security audit found two issues in the login flow that we need to fix first."),
    ("S1", 14.5, 20.0, "How long will the fixes take?"),
    ("S2", 20.5, 27.0, "About a week. I'll send the audit report to everyone by Friday."),
    ("S3", 27.5, 35.0, "Marketing wants to launch on the first of March, before the spring campaign."),
    ("S1", 35.5, 42.0, "We decided to move the launch to the fifteenth of March to leave time for the fixes."),
    ("S3", 42.5, 48.0, "Fine, I will update the campaign calendar by next Tuesday."),
    ("S2", 48.5, 55.0, "Who will run the regression tests on the older Android phones?"),
    ("S1", 55.5, 62.0, "We still need to figure out the budget for the extra test devices."),
    ("S3", 62.5, 68.0, "Thanks all, that was a useful meeting."),
]


def _events(session_id: str) -> list[dict]:
    out = []
    for i, (speaker, start, end, text) in enumerate(MEETING):
        out.append({"type": "transcript", "kind": "final", "session_id": session_id, "segment_id": f"c0-{i:05d}",
                    "channel": 0, "speaker": speaker, "start_s": start, "end_s": end, "text": text,
                    "words": [], "language": "en", "seq": 2 * i})
        out.append({"type": "mood", "session_id": session_id, "segment_id": f"c0-{i:05d}", "speaker": speaker,
                    "valence": -0.4 if i == 1 else 0.3, "seq": 2 * i + 1})
    return out


def test_minutes_of_a_meeting_find_its_decision_actions_and_speakers() -> None:
    m = build_minutes(utterances_from_events(_events("s")))
    assert m.method == "extractive" and m.language == "en"
    assert m.summary and all(s.text for s in m.summary)
    assert any("fifteenth of March" in d.text for d in m.decisions)
    owners = {a.owner for a in m.action_items}
    assert "S2" in owners and "S3" in owners
    assert any(a.due and "Friday" in a.due for a in m.action_items)
    assert {s.speaker for s in m.speakers} == {"S1", "S2", "S3"}
    assert abs(sum(s.share for s in m.speakers) - 1.0) < 1e-6
    assert m.sentiment_arc and min(p.score for p in m.sentiment_arc) < 0.3
    # the JSON form round-trips (what the `minutes` event stores)
    assert to_json(minutes_from_dict(to_json(m))) == to_json(m)


def test_no_speech_gives_empty_minutes_with_a_note() -> None:
    m = build_minutes([])
    assert m.summary == [] and m.decisions == [] and m.warnings


def test_speaker_updates_and_final_relabelling_reach_the_minutes() -> None:
    events = _events("s")
    events.append({"type": "speaker_update", "segment_id": "c0-00000", "speaker": "S9"})
    events.append({"type": "diarization", "relabel": {"c0-00001": "S8"}, "turns": []})
    speakers = {u.speaker for u in utterances_from_events(events)}
    assert {"S9", "S8"} <= speakers


def test_stored_session_minutes_over_the_api(tmp_path: Path) -> None:
    settings = HarkenSettings(auth=False, data_dir=tmp_path, asr_warm_up=False, classifiers=False, compliance=False)
    store = Store(settings.resolved_database_url())
    store.create_session("meet1", "websocket", "en", ["speaker"], {})
    events = _events("meet1")
    # a live revision of the first caption's speaker, and the end-of-session relabelling of the second
    events.append({"type": "speaker_update", "segment_id": "c0-00000", "speaker": "S4", "seq": 100})
    events.append({"type": "diarization", "relabel": {"c0-00001": "S5"}, "turns": [], "seq": 101})
    store.add_events([("meet1", e["seq"], e) for e in events])
    store.update_session("meet1", status="ended")
    store.close()
    with running_server(settings) as base:
        r = httpx.get(f"{base}/v1/sessions/meet1/minutes", timeout=60)
        assert r.status_code == 200
        body = r.json()
        assert body["live"] is False and body["minutes"]["decisions"]
        md = httpx.get(f"{base}/v1/sessions/meet1/minutes?format=md", timeout=60)
        assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
        assert "fifteenth of March" in md.text and md.text.count("\n## ") >= 5
        html = httpx.get(f"{base}/v1/sessions/meet1/minutes?format=html", timeout=60)
        assert html.status_code == 200 and html.text.lstrip().lower().startswith("<!doctype html")
        assert "<script" not in html.text.lower()
        vtt = httpx.get(f"{base}/v1/sessions/meet1/transcript?format=vtt", timeout=30).text
        assert "<v S4>Good morning" in vtt and "<v S5>The security audit" in vtt
        assert httpx.get(f"{base}/v1/sessions/nope/minutes", timeout=30).status_code == 404
        assert httpx.get(f"{base}/v1/sessions/meet1/minutes?format=pdf", timeout=30).status_code == 422


@contextlib.contextmanager
def _chat_server(reply: str) -> Iterator[tuple[str, list[dict]]]:
    """A real local server that speaks the chat-completions API and answers every request with `reply`."""
    app = FastAPI()
    seen: list[dict] = []

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict:
        seen.append(await request.json())
        return {"choices": [{"message": {"role": "assistant", "content": reply}}]}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_llm_minutes_from_a_chat_completions_server() -> None:
    reply = json.dumps({"summary": ["The launch moves to 15 March after the security audit."],
                        "decisions": ["Launch on 15 March"],
                        "action_items": [{"what": "Send the audit report", "owner": "S2", "due": "Friday"}],
                        "open_questions": ["Budget for extra test devices"]})
    with _chat_server(reply) as (url, seen):
        llm = LlmClient(LlmConfig(url=url, model="minutes-test", timeout_s=10))
        m = build_minutes(utterances_from_events(_events("s")), llm=llm)
    assert m.method == "llm" and not m.warnings
    assert m.summary[0].text.startswith("The launch moves")
    assert m.action_items[0].owner == "S2" and m.action_items[0].due == "Friday"
    assert m.chapters and m.speakers  # measured parts stay
    transcript = seen[0]["messages"][-1]["content"]
    assert "S2: The security audit" in transcript


@pytest.mark.parametrize("reply", ["not json at all", json.dumps({"summary": []})])
def test_unusable_llm_reply_falls_back_to_extractive(reply: str) -> None:
    with _chat_server(reply) as (url, _seen):
        m = build_minutes(utterances_from_events(_events("s")),
                          llm=LlmClient(LlmConfig(url=url, model="x", timeout_s=10)))
    assert m.method == "extractive" and m.warnings and m.decisions


def test_unreachable_llm_falls_back_to_extractive() -> None:
    llm = LlmClient(LlmConfig(url=f"http://127.0.0.1:{free_port()}", model="x", timeout_s=2))
    m = build_minutes(utterances_from_events(_events("s")), llm=llm)
    assert m.method == "extractive"
    assert any("LLM endpoint unavailable" in w for w in m.warnings)
    assert m.summary and m.decisions
