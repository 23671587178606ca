"""Every telephony tap end to end: a real peer -> the real running harken -> captions and events over REST.

The first 28 s of a real dev call (dev_en_01: agent left, customer right) is placed through each tap by its
protocol peer (eval/taps_clients.py: streamdouble for Twilio Media Streams, SIPp for SIPREC, byte-exact
clients for AudioSocket, the FreeSWITCH audio fork and Genesys AudioHook), faster than real time. Then, over
REST only: the session has agent and customer channels with that speaker's words (not swapped), the call's
metadata, a clean hang-up end, the tap's stream counters and DTMF; and /metrics counted the tap's packets.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eval import taps_clients as peers
from eval.taps_e2e_cli import reference_by_channel, word_errors
from pipelines.settings import HarkenSettings
from tests.server_util import free_port, running_server

pytestmark = pytest.mark.model

CALLS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calls" / "dev"
CALL_ID = "dev_en_01"
SECONDS = 28.0
SPEED = 4.0
API_KEY = "e2e-audiohook-key"
SECRET = base64.b64encode(b"e2e audiohook client secret 32b!").decode()


@dataclass
class Harken:
    base: str
    settings: HarkenSettings

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://")


@pytest.fixture(scope="module")
def harken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harken]:
    # tiny.en keeps the file quick on two shared cores; `harken eval taps-e2e` measures with the default model
    settings = HarkenSettings(
        auth=False, data_dir=tmp_path_factory.mktemp("harken"), asr_model="tiny.en", classifiers=False, max_channels=8,
        audiosocket_port=free_port(), sip_port=free_port(), audiohook_api_key=API_KEY,
        audiohook_client_secret=SECRET,
    )
    with running_server(settings) as base:
        yield Harken(base, settings)


@pytest.fixture(scope="module")
def harken_paired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harken]:
    """A server whose AudioSocket listener pairs customer and agent legs of one call (HARKEN_AUDIOSOCKET_AGENT_PORT)."""
    settings = HarkenSettings(
        auth=False, data_dir=tmp_path_factory.mktemp("harken-paired"), asr_model="tiny.en", classifiers=False,
        compliance=False, max_channels=8, audiosocket_port=free_port(), audiosocket_agent_port=free_port(),
    )
    with running_server(settings) as base:
        yield Harken(base, settings)


@pytest.fixture(scope="module")
def call() -> peers.CallAudio:
    return peers.load_call_audio(CALLS / "audio" / f"{CALL_ID}.stereo8k.wav", seconds=SECONDS)


@pytest.fixture(scope="module")
def refs(call: peers.CallAudio) -> dict[str, str]:
    gt = json.loads((CALLS / "gt" / f"{CALL_ID}.json").read_text())
    return reference_by_channel(gt, call.duration_s)


# --- helpers: everything is read back over the public REST API ---------------------------------------------------


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def metric(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def ended_session(client: httpx.AsyncClient, call_ref: str) -> dict[str, Any]:
    from eval.taps_e2e_cli import ended_session as wait

    return await wait(client, call_ref, timeout_s=180)


@dataclass
class Outcome:
    row: dict[str, Any]
    text: dict[str, str]
    events: list[dict[str, Any]]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]


async def outcome(harken: Harken, call_ref: str) -> Outcome:
    async with httpx.AsyncClient(base_url=harken.base, timeout=60) as client:
        row = await ended_session(client, call_ref)
        tr = (await client.get(f"/v1/sessions/{row['id']}/transcript")).json()
        events = (await client.get(f"/v1/sessions/{row['id']}/events",
                                   params={"type": "dtmf,tap_stats,session_end,mark"})).json()
    return Outcome(row, tr["text_by_channel"], events)


def assert_right_speakers(out: Outcome, refs: dict[str, str], channels: tuple[str, ...]) -> None:
    """Each channel holds its own speaker's words, well transcribed, and not the other speaker's."""
    assert out.row["channel_names"] == list(channels)
    for name in channels:
        other = "customer" if name == "agent" else "agent"
        own = word_errors(refs[name], out.text[name]).wer
        cross = word_errors(refs[other], out.text[name]).wer
        assert own is not None and own < 0.2, (name, own)
        assert cross is not None and cross > 0.8, (name, cross)  # not the other party's words
    words = {k: " ".join(v.lower().replace(",", " ").replace(".", " ").split()) for k, v in out.text.items()}
    if "agent" in words:
        # The disclosure sentence, allowing one dropped word: a live decode under CI load may miss one.
        assert "for quality and training" in words["agent"] and "debit card" not in words["agent"]
    if "customer" in words:
        assert "debit card" in words["customer"] and "recorded" not in words["customer"]


def assert_hung_up(out: Outcome, seconds: float) -> None:
    assert out.row["status"] == "ended" and out.row["end_reason"] == "hangup"
    assert out.of("session_end")[0]["reason"] == "hangup"
    assert out.row["audio_s"] == pytest.approx(seconds, abs=0.25)


def stream_stats(out: Outcome) -> dict[int, dict[str, Any]]:
    (stats,) = out.of("tap_stats")
    return {s["channel"]: s for s in stats["streams"]}


# --- the taps --------------------------------------------------------------------------------------------------


@pytest.mark.peer
async def test_twilio_media_streams_with_streamdouble(harken: Harken, call: peers.CallAudio, refs) -> None:
    before = scrape(harken.base)
    peer = await peers.twilio_streamdouble(
        f"{harken.ws}/v1/taps/twilio", call, speed=SPEED, dtmf="5", dtmf_at_s=12.0,
        custom_parameters={"language": "en", "tenant": "acme-bank", "agent_id": "a-17", "from": "+15550100"},
    )
    assert peer.details["violations"] == []
    out = await outcome(harken, peer.call_ref)
    assert out.row["source"] == "twilio"
    md = out.row["metadata"]
    assert md["call_id"].startswith("CA") and md["stream_sid"] == peer.details["stream_sid"]
    assert md["tenant"] == "acme-bank" and md["agent_id"] == "a-17" and md["from"] == "+15550100"
    assert_right_speakers(out, refs, ("agent", "customer"))
    # the DTMF step streams 80 ms of silence on the caller's track: the customer channel is that much longer
    assert_hung_up(out, SECONDS + 0.08)
    (dtmf,) = out.of("dtmf")  # the caller's key press, on the customer channel, at its stream time
    assert dtmf["digit"] == "5" and dtmf["channel"] == 1 and dtmf["at_s"] == 12.0
    stats = stream_stats(out)
    assert stats[0]["packets_received"] == call.agent.size // 160
    assert stats[1]["packets_received"] == call.customer.size // 160 + 4 and stats[1]["dtmf_events"] == 1
    assert stats[0]["packets_lost"] == stats[1]["packets_lost"] == 0
    after = scrape(harken.base)
    name = "harken_tap_ws_packets_received_total"
    assert metric(after, name, tap="twilio") - metric(before, name, tap="twilio") == peer.details["frames_sent"]
    assert metric(after, "harken_tap_ws_dtmf_events_total", tap="twilio") >= 1
    assert metric(after, "harken_tap_ws_streams_active", tap="twilio") == 0


async def test_asterisk_audiosocket_leg(harken: Harken, call: peers.CallAudio, refs) -> None:
    before = scrape(harken.base)
    peer = await peers.audiosocket_call("127.0.0.1", harken.settings.audiosocket_port, call, speed=SPEED,
                                        dtmf="7", dtmf_at_s=10.0)
    out = await outcome(harken, peer.call_ref)
    assert out.row["source"] == "audiosocket" and out.row["metadata"]["call_id"] == peer.call_ref
    # one AudioSocket connection is one call leg: the customer's
    assert_right_speakers(out, refs, ("customer",))
    assert_hung_up(out, SECONDS)
    (dtmf,) = out.of("dtmf")
    assert dtmf["digit"] == "7" and dtmf["channel"] == 0 and dtmf["at_s"] == 10.0
    frames = call.customer.size // 160
    assert stream_stats(out)[0]["packets_received"] == frames + 2  # audio + DTMF + hangup frames
    after = scrape(harken.base)
    name = "harken_audiosocket_packets_received_total"
    assert metric(after, name, tap="audiosocket") - metric(before, name, tap="audiosocket") == frames + 2
    assert metric(after, "harken_audiosocket_connections_total") >= 1
    assert metric(after, "harken_audiosocket_connections_active") == 0


async def test_asterisk_audiosocket_two_legs_make_one_agent_customer_session(
    harken_paired: Harken, call: peers.CallAudio, refs
) -> None:
    agent_port = harken_paired.settings.audiosocket_agent_port
    peer = await peers.audiosocket_two_legs("127.0.0.1", harken_paired.settings.audiosocket_port, agent_port, call,
                                            speed=SPEED, dtmf="2", dtmf_at_s=8.0)
    out = await outcome(harken_paired, peer.call_ref)
    assert out.row["source"] == "audiosocket" and out.row["metadata"]["call_id"] == peer.call_ref
    assert_right_speakers(out, refs, ("agent", "customer"))
    assert_hung_up(out, SECONDS)
    (dtmf,) = out.of("dtmf")
    assert dtmf["digit"] == "2" and dtmf["channel"] == 1
    roles = {s["role"]: s for e in out.of("tap_stats") for s in e["streams"]}
    assert roles["agent"]["channel"] == 0 and roles["customer"]["channel"] == 1


def _sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("sipp is not installed: scripts/install-peers.sh must run before the tests")
        pytest.skip("sipp not installed (run scripts/install-peers.sh)")
    return path


@pytest.mark.peer
async def test_siprec_two_legs_with_sipp(harken: Harken, call: peers.CallAudio, refs, tmp_path: Path) -> None:
    sipp = _sipp()
    before = scrape(harken.base)
    peer = await peers.siprec_sipp("127.0.0.1", harken.settings.sip_port, call, tmp_path, speed=SPEED,
                                   dtmf="3", dtmf_at_s=10.0, sipp=sipp)
    out = await outcome(harken, peer.call_ref)
    assert out.row["source"] == "siprec"
    md = out.row["metadata"]
    # the recorded call's id from the metadata's <sipSessionID>; the recording dialog's Call-ID kept beside it
    assert md["call_id"] == peer.call_ref and md["tenant"] == "sipp-bank"
    assert md["recording_call_id"] == peer.details["recording_call_id"] != peer.call_ref
    assert md["agent_id"] == "sip:agent2002@cc.example" and md["from"] == "sip:+15550123@carrier.example"
    assert {p["role"] for p in md["participants"]} == {"agent", "customer"}
    assert_right_speakers(out, refs, ("agent", "customer"))
    assert_hung_up(out, SECONDS)
    assert out.of("tap_stats")[0]["tap"] == "siprec"  # as in the metadata and on /metrics
    (dtmf,) = out.of("dtmf")  # RFC 4733 telephone-event on the customer's leg
    assert dtmf["digit"] == "3" and dtmf["channel"] == 1 and dtmf["duration_ms"] == 80.0
    stats = stream_stats(out)
    frames = call.agent.size // 160
    assert stats[0]["packets_received"] == frames and stats[1]["packets_received"] == frames + 6
    assert all(s["packets_lost"] == 0 and s["packets_foreign"] == 0 for s in stats.values())
    after = scrape(harken.base)
    name = "harken_sip_rtp_packets_received_total"
    assert metric(after, name, tap="siprec") - metric(before, name, tap="siprec") == 2 * frames + 6
    assert metric(after, "harken_sip_rtp_dtmf_events_total", tap="siprec") >= 1
    assert metric(after, "harken_sip_rtp_jitter_max_ms", tap="siprec") > 0  # sent 4x fast: real jitter
    assert metric(after, "harken_sip_calls_total") >= 1 and metric(after, "harken_sip_calls_active") == 0


async def test_freeswitch_audio_fork(harken: Harken, call: peers.CallAudio, refs) -> None:
    before = scrape(harken.base)
    peer = await peers.freeswitch_fork(f"{harken.ws}/v1/taps/freeswitch", call, speed=SPEED,
                                       metadata={"call_id": "fs-e2e-1", "agent_id": "1001", "tenant": "acme"})
    assert peer.details["subprotocol"] == "audio.drachtio.org"
    out = await outcome(harken, "fs-e2e-1")
    md = out.row["metadata"]
    assert out.row["source"] == "freeswitch" and md["agent_id"] == "1001" and md["tenant"] == "acme"
    assert md["uuid"] == peer.details["uuid"]
    assert_right_speakers(out, refs, ("agent", "customer"))
    assert_hung_up(out, SECONDS)
    stats = stream_stats(out)
    messages = -(-call.agent.size // 800)  # 100 ms binary messages
    assert stats[0]["packets_received"] == stats[1]["packets_received"] == messages
    after = scrape(harken.base)
    name = "harken_tap_ws_packets_received_total"
    assert metric(after, name, tap="freeswitch") - metric(before, name, tap="freeswitch") == 2 * messages


async def test_genesys_audiohook_stereo(harken: Harken, call: peers.CallAudio, refs) -> None:
    before = scrape(harken.base)
    peer = await peers.audiohook_call(f"{harken.ws}/v1/taps/audiohook", call, api_key=API_KEY, secret_b64=SECRET,
                                      speed=SPEED, dtmf="1", dtmf_at_s=5.0)
    assert peer.details["server_messages"] == ["opened", "pong", "closed"]
    out = await outcome(harken, peer.call_ref)
    md = out.row["metadata"]
    assert out.row["source"] == "audiohook" and md["audiohook_session_id"] == peer.details["audiohook_id"]
    assert md["from"] == "tel:+15550100" and md["to"] == "tel:+15550199" and md["agent_id"] == "agent-e2e"
    assert_right_speakers(out, refs, ("agent", "customer"))
    assert_hung_up(out, SECONDS)
    (dtmf,) = out.of("dtmf")
    assert dtmf["digit"] == "1" and dtmf["channel"] == 1 and dtmf["at_s"] == 5.0
    stats = stream_stats(out)
    frames = -(-call.agent.size // 800)  # 100 ms stereo frames
    assert stats[0]["packets_received"] == stats[1]["packets_received"] == frames
    assert stats[1]["dtmf_events"] == 1
    after = scrape(harken.base)
    name = "harken_tap_ws_packets_received_total"
    assert metric(after, name, tap="audiohook") - metric(before, name, tap="audiohook") == 2 * frames


async def test_audiohook_refuses_a_bad_signature_on_the_real_app(harken: Harken) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    url = f"{harken.ws}/v1/taps/audiohook"
    headers = peers.audiohook_headers(url.split("/")[2], "/v1/taps/audiohook", "3f1c8b6e-0000-4000-8000-000000000001",
                                      "d7934305-0972-4844-938e-9060eef73d05", API_KEY,
                                      base64.b64encode(b"not the configured secret.......").decode())
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, additional_headers=headers):
            pass
    assert info.value.response.status_code == 401
