"""Two gateways (two server processes' worth of app, one store, one Redis broker): a subscriber connected to the
gateway that does not run a session follows it live, in order, to its end (issue 14)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from pipelines.settings import HarkenSettings
from tests.broker_servers import redis_server  # noqa: F401 (fixture)
from tests.server_util import running_server
from tests.test_server_e2e import _jfk_16k, _send_audio, ws_url

pytestmark = pytest.mark.model


async def test_a_subscriber_on_another_gateway_follows_the_session(tmp_path, shared_data, redis_server):  # noqa: F811
    pytest.importorskip("redis")
    common = dict(auth=False, database_url=f"sqlite:///{tmp_path / 'shared.db'}", broker_url=redis_server.url,
                  max_channels=2, ws_idle_timeout_s=5.0, asr_warm_up=False, minutes=False)
    a_settings = HarkenSettings(data_dir=tmp_path / "a", **common)
    b_settings = HarkenSettings(data_dir=tmp_path / "b", **common)
    pcm = _jfk_16k(shared_data)
    with running_server(a_settings) as gateway_a, running_server(b_settings) as gateway_b:
        async with websockets.connect(ws_url(gateway_a, "/v1/stream")) as ingest:
            await ingest.send(json.dumps({"type": "start", "sample_rate_hz": 16000, "encoding": "s16le",
                                          "channels": 1, "language": "en"}))
            sid = json.loads(await ingest.recv())["session_id"]
            on_b: list[dict] = []

            async def follow_on_b() -> None:
                async with websockets.connect(ws_url(gateway_b, f"/v1/sessions/{sid}/subscribe")) as sub:
                    async for msg in sub:
                        on_b.append(json.loads(msg))

            follower = asyncio.create_task(follow_on_b())
            await asyncio.sleep(0.5)
            await _send_audio(ingest, pcm, speed=3.0)
            await ingest.send(json.dumps({"type": "stop"}))
            on_a = []
            async for msg in ingest:
                ev = json.loads(msg)
                on_a.append(ev)
                if ev["type"] == "session_end":
                    break
            await asyncio.wait_for(follower, timeout=60)

    finals_a = [(e["segment_id"], e["text"]) for e in on_a if e.get("type") == "transcript" and e["kind"] == "final"]
    finals_b = [(e["segment_id"], e["text"]) for e in on_b if e.get("type") == "transcript" and e["kind"] == "final"]
    assert finals_a and finals_b == finals_a
    seqs = [e["seq"] for e in on_b if "seq" in e]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))  # in order, nothing twice
    assert on_b[-1]["type"] == "session_end"
    assert "country" in " ".join(t for _, t in finals_b).lower()
