"""A non-compliant call streamed live (G.711 over the WebSocket) through the running server: findings and alerts
during the call, a scorecard and tickets at the end, webhook export, and a verifiable audit trail."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
import websockets

from pipelines.audio_io import read_audio
from pipelines.settings import HarkenSettings
from pipelines.taps.codecs import ulaw_encode
from tests.server_util import free_port, running_server

pytestmark = [pytest.mark.model, pytest.mark.slow]


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_noncompliant_call_live(tmp_path, shared_data):
    _Receiver.received = []
    hook = HTTPServer(("127.0.0.1", free_port()), _Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    settings = HarkenSettings(auth=False, data_dir=tmp_path, webhook_url=f"http://127.0.0.1:{hook.server_port}/hook",
                              store_audio=False)
    # dev_en_08: the agent never gives the call-recording notice (consent_notice_missing)
    call = read_audio(shared_data / "calls" / "dev" / "audio" / "dev_en_08.stereo8k.wav")
    payload = ulaw_encode(call.samples.reshape(-1))  # interleaved stereo, G.711 mu-law

    async def stream(base: str) -> tuple[str, list[dict]]:
        async with websockets.connect(base.replace("http", "ws") + "/v1/stream") as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate_hz": 8000, "encoding": "mulaw", "channels": 2,
                                      "channel_names": ["agent", "customer"], "language": "en",
                                      "metadata": {"call_id": "dev_en_08"}}))
            sid = json.loads(await ws.recv())["session_id"]
            step = 1600 * 2  # 0.2 s of stereo mu-law
            for i in range(0, len(payload), step):
                await ws.send(payload[i : i + step])
                await asyncio.sleep(0.005)
            await ws.send(json.dumps({"type": "stop"}))
            events = [json.loads(m) async for m in ws]
            return sid, events

    try:
        with running_server(settings) as base:
            sid, events = asyncio.run(stream(base))
            tickets = httpx.get(f"{base}/v1/tickets", params={"session_id": sid}, timeout=30).json()
            served_forms = httpx.get(f"{base}/v1/sessions/{sid}/forms", timeout=30).json()["forms"]
            # a supervisor works the ticket; each change is audited
            t0 = tickets[0]["id"]
            assert httpx.post(f"{base}/v1/tickets/{t0}/assign", json={"assignee": "qa-lead"},
                              headers={"X-Actor": "supervisor"}, timeout=30).status_code == 200
            assert httpx.post(f"{base}/v1/tickets/{t0}/close", json={"resolution": "coached agent"},
                              headers={"X-Actor": "supervisor"}, timeout=30).status_code == 200
    finally:
        hook.shutdown()

    findings = [e for e in events if e["type"] == "finding"]
    assert "consent_notice_missing" in {f["maps_to"] for f in findings}
    assert any(e["type"] == "alert" and e["alert_type"] == "compliance" for e in events)
    card = next(e for e in events if e["type"] == "scorecard")
    assert card["passed"] is False and card["score"] < 100
    # the QA form is filled in at the end of the call, and served by the REST API
    (form,) = card["forms"]
    notice = next(a for a in form["answers"] if a["question_id"] == "recording_notice")
    assert form["form_id"] == "contact_center_qa_en" and notice["answer"] == "not_met"
    assert form["unanswered"] == ["empathy", "next_steps", "plain_language"]  # no LLM configured
    assert served_forms == card["forms"]
    assert any(t["finding"].get("rule_id") and t["session_id"] == sid for t in tickets)
    # the same findings and the tickets went out by webhook
    hooked = {e["type"] for e in _Receiver.received}
    assert {"finding", "alert", "ticket", "scorecard"} <= hooked
    # the audit trail verifies, and an edit to it is detected
    db = f"sqlite:///{tmp_path / 'harken.db'}"
    ok = subprocess.run([sys.executable, "-m", "api.cli", "audit-log", "verify", "--db", db],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    import sqlite3

    con = sqlite3.connect(tmp_path / "harken.db")
    tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
    audit_table = next(t for t in tables if "audit" in t)
    cols = [r[1] for r in con.execute(f"pragma table_info({audit_table})")]
    actor_col = "actor" if "actor" in cols else cols[-1]
    con.execute(f"update {audit_table} set {actor_col} = 'someone-else' where rowid = 2")
    con.commit()
    con.close()
    bad = subprocess.run([sys.executable, "-m", "api.cli", "audit-log", "verify", "--db", db],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "TAMPERED" in bad.stderr
