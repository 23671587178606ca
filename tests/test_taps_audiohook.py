"""Genesys AudioHook tap: signed upgrade, open/opened, stereo PCMU, ping, pause, discard, update, close.

The client below is written from the AudioHook protocol description (version 2) message by message; the
signature example is the one in Genesys' AudioHook documentation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipelines.taps.audiohook import choose_media, parse_duration_s
from pipelines.taps.audiohook_auth import (
    SignatureError,
    parse_signature,
    parse_signature_input,
    verify_request,
)
from pipelines.taps.codecs import ulaw_encode
from tests.taps_fakes import RunningApp, load_call

DOC_HEADERS = {
    "host": "audiohook.example.com",
    "audiohook-organization-id": "d7934305-0972-4844-938e-9060eef73d05",
    "audiohook-session-id": "30b0e395-84d3-4570-ac13-9a62d8f514c0",
    "audiohook-correlation-id": "e160e428-53e2-487c-977d-96989bf5c99d",
    "x-api-key": "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh",
    "signature": "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:",
    "signature-input": 'sig1=("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" '
    '"audiohook-correlation-id" "x-api-key");keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";'
    'nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";alg="hmac-sha256";created=1641013200;expires=3282026430',
}
DOC_SECRET = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
DOC_TARGET = "/api/v1/voicebiometrics/ws"
DOC_NOW = 1641013201


def test_documented_signature_example_verifies() -> None:
    verify_request(DOC_HEADERS, DOC_TARGET, DOC_HEADERS["x-api-key"], DOC_SECRET, now_s=DOC_NOW)


@pytest.mark.parametrize(
    ("change", "secret", "now"),
    [
        (
            {"audiohook-session-id": "30b0e395-84d3-4570-ac13-9a62d8f514c1"},
            DOC_SECRET,
            DOC_NOW,
        ),  # tampered header
        ({}, "U29tZU90aGVyU2VjcmV0", DOC_NOW),  # wrong secret
        ({}, DOC_SECRET, DOC_NOW + 3600),  # replayed an hour later
        ({"x-api-key": "another-key"}, DOC_SECRET, DOC_NOW),  # keyid mismatch
        ({"signature": "sig1=:AAAA:"}, DOC_SECRET, DOC_NOW),
        (
            {"signature-input": DOC_HEADERS["signature-input"].replace("VGhpc0lzQVVuaXF1ZU5vbmNl", "short")},
            DOC_SECRET,
            DOC_NOW,
        ),
        (
            {"signature-input": DOC_HEADERS["signature-input"].replace(' "x-api-key"', "")},
            DOC_SECRET,
            DOC_NOW,
        ),
        ({"signature-input": "sig1=(garbage"}, DOC_SECRET, DOC_NOW),
        (
            {"signature-input": None, "signature": None},
            DOC_SECRET,
            DOC_NOW,
        ),  # unsigned but a secret is configured
    ],
)
def test_bad_signatures_are_rejected(change: dict[str, str | None], secret: str, now: int) -> None:
    headers = {**DOC_HEADERS, **change}
    headers = {k: v for k, v in headers.items() if v is not None}
    with pytest.raises(SignatureError):
        verify_request(headers, DOC_TARGET, DOC_HEADERS["x-api-key"], secret, now_s=now)


def test_unsigned_request_with_right_key_is_accepted_only_without_secret() -> None:
    plain = {k: v for k, v in DOC_HEADERS.items() if not k.startswith("signature")}
    verify_request(plain, DOC_TARGET, DOC_HEADERS["x-api-key"], None)
    with pytest.raises(SignatureError):
        verify_request({**plain, "x-api-key": "nope"}, DOC_TARGET, DOC_HEADERS["x-api-key"], None)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_structured_field_parsers_fuzz(value: str) -> None:
    for parse in (parse_signature_input, parse_signature):
        try:
            parse(value)
        except SignatureError:
            pass


def test_media_choice_and_durations() -> None:
    stereo = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
    mono = {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}
    assert choose_media([mono, stereo]) == stereo
    assert choose_media([{**stereo, "rate": 16000}, {**stereo, "format": "opus"}]) is None
    assert choose_media("PCMU") is None
    assert parse_duration_s("PT12.34S") == pytest.approx(12.34) and parse_duration_s("PT0S") == 0


# --- end to end over a real server --------------------------------------------------------------------------

API_KEY = "harken-test-key"
SECRET = base64.b64encode(b"a client secret of thirty-two b!").decode()
ORG = "d7934305-0972-4844-938e-9060eef73d05"


def signed_headers(
    port: int, session_id: str, secret: str = SECRET, path: str = "/v1/taps/audiohook"
) -> dict[str, str]:
    """Sign the upgrade request the way Genesys does, written out independently of the server's code."""
    headers = {
        "Audiohook-Organization-Id": ORG,
        "Audiohook-Correlation-Id": str(uuid.uuid4()),
        "Audiohook-Session-Id": session_id,
        "X-API-KEY": API_KEY,
    }
    created = int(time.time())
    params = (
        f'("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" '
        f'"audiohook-correlation-id" "x-api-key");keyid="{API_KEY}";nonce="{"n" * 24}";'
        f'alg="hmac-sha256";created={created};expires={created + 10}'
    )
    base = "\n".join(
        [
            f'"@request-target": {path}',
            f'"@authority": 127.0.0.1:{port}',
            f'"audiohook-organization-id": {ORG}',
            f'"audiohook-session-id": {session_id}',
            f'"audiohook-correlation-id": {headers["Audiohook-Correlation-Id"]}',
            f'"x-api-key": {API_KEY}',
            f'"@signature-params": {params}',
        ]
    )
    mac = hmac.new(base64.b64decode(secret), base.encode(), hashlib.sha256).digest()
    headers["Signature-Input"] = f"sig1={params}"
    headers["Signature"] = f"sig1=:{base64.b64encode(mac).decode()}:"
    return headers


class Client:
    """The AudioHook client side: seq/serverseq/position bookkeeping."""

    def __init__(self, ws: ClientConnection, session_id: str) -> None:
        self.ws, self.id, self.seq, self.serverseq, self.samples = ws, session_id, 0, 0, 0

    async def send(self, msg_type: str, parameters: dict[str, Any], position_s: float | None = None) -> None:
        self.seq += 1
        pos = self.samples / 8000 if position_s is None else position_s
        await self.ws.send(
            json.dumps(
                {
                    "version": "2",
                    "id": self.id,
                    "type": msg_type,
                    "seq": self.seq,
                    "serverseq": self.serverseq,
                    "position": f"PT{pos:.3f}S",
                    "parameters": parameters,
                }
            )
        )

    async def recv(self) -> dict[str, Any]:
        msg = json.loads(await self.ws.recv())
        assert msg["version"] == "2" and msg["id"] == self.id and msg["clientseq"] == self.seq
        assert msg["seq"] == self.serverseq + 1
        self.serverseq = msg["seq"]
        return msg

    async def audio(self, stereo_ulaw: bytes) -> None:
        await self.ws.send(stereo_ulaw)
        self.samples += len(stereo_ulaw) // 2


def _settings() -> SimpleNamespace:
    return SimpleNamespace(audiohook_api_key=API_KEY, audiohook_client_secret=SECRET, auth=False, api_key=None)


def _open_params(media: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "organizationId": ORG,
        "conversationId": "c0ffee00-1111-2222-3333-444455556666",
        "participant": {"id": "p1", "ani": "tel:+15550100", "aniName": "Customer", "dnis": "tel:+15550199"},
        "media": media,
        "language": "en-US",
        "customConfig": {"agent_id": "agent-42"},
    }


STEREO = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}


async def test_stereo_call_with_ping_pause_discard_update_and_close() -> None:
    call = load_call("dev_en_07", seconds=8)
    agent, customer = call[:, 0], call[:, 1]
    wire = np.empty(call.size, dtype=np.int16)
    wire[0::2], wire[1::2] = customer, agent  # channel 0 external (customer), 1 internal (agent)
    payload = ulaw_encode(wire)
    sid = str(uuid.uuid4())
    async with RunningApp(settings=_settings()) as app:
        async with connect(
            app.url("/v1/taps/audiohook"), additional_headers=signed_headers(app.port, sid)
        ) as ws:
            c = Client(ws, sid)
            mono = {**STEREO, "channels": ["external"]}
            await c.send("open", _open_params([mono, STEREO]), position_s=0)
            opened = await c.recv()
            assert opened["type"] == "opened" and opened["parameters"]["media"] == [STEREO]
            half = len(payload) // 2
            for i in range(0, half, 1600):  # 100 ms frames
                await c.audio(payload[i : min(i + 1600, half)])
            await c.send("ping", {})
            assert (await c.recv())["type"] == "pong"
            await c.send("paused", {})
            await c.send(
                "resumed",
                {"start": f"PT{c.samples / 8000:.3f}S", "discarded": "PT0.5S"},
                position_s=c.samples / 8000 + 0.5,
            )
            c.samples += 4000  # the half second that was held back advances the stream position
            await c.send("update", {"language": "en-GB"})
            for i in range(half, len(payload), 1600):
                await c.audio(payload[i : i + 1600])
            await c.send("close", {"reason": "end"})
            closed = await c.recv()
            assert closed["type"] == "closed"
        (session,) = await app.manager.wait_closed(1)
    assert session.closed_reason == "hangup" and session.config.channel_names == ("agent", "customer")
    md = session.metadata
    assert md["call_id"] == "c0ffee00-1111-2222-3333-444455556666" and md["tenant"] == ORG
    assert md["from"] == "tel:+15550100" and md["agent_id"] == "agent-42" and md["language"] == "en-GB"
    n_half = half // 2
    for ch, ref in ((0, agent), (1, customer)):
        got = session.samples(ch)
        assert got.size == ref.size + 4000
        assert np.array_equal(got[:n_half], ref[:n_half])
        assert not got[n_half : n_half + 4000].any()  # the paused half second is silence, in both channels
        assert np.array_equal(got[n_half + 4000 :], ref[n_half:])
    assert [t for t, _ in session.events if t.startswith("tap_")] == [
        "tap_paused",
        "tap_resumed",
        "tap_stats",
    ]


async def test_bad_signature_refuses_the_upgrade_with_401() -> None:
    async with RunningApp(settings=_settings()) as app:
        sid = str(uuid.uuid4())
        bad = signed_headers(app.port, sid, secret=base64.b64encode(b"wrong secret").decode())
        with pytest.raises(InvalidStatus) as info:
            async with connect(app.url("/v1/taps/audiohook"), additional_headers=bad):
                pass
        assert info.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            async with connect(app.url("/v1/taps/audiohook")):  # no headers at all
                pass
        assert app.manager.sessions == []


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ("audio_first", 1008),
        ("bad_seq", 1008),
        ("no_media", 1003),
        ("unknown_type", 1008),
        ("odd_frame", 1007),
    ],
)
async def test_protocol_errors_get_disconnect_then_close(script: str, code: int) -> None:
    async with RunningApp(settings=_settings()) as app:
        sid = str(uuid.uuid4())
        async with connect(
            app.url("/v1/taps/audiohook"), additional_headers=signed_headers(app.port, sid)
        ) as ws:
            c = Client(ws, sid)
            if script == "audio_first":
                await ws.send(b"\xff" * 320)
            elif script == "no_media":
                await c.send("open", _open_params([{**STEREO, "format": "opus", "rate": 48000}]))
            else:
                await c.send("open", _open_params([STEREO]))
                assert (await c.recv())["type"] == "opened"
                await c.audio(b"\xff" * 1600)
                if script == "bad_seq":
                    c.seq += 5
                    await c.send("ping", {})
                elif script == "unknown_type":
                    await c.send("teleport", {})
                else:
                    await ws.send(b"\xff" * 1601)
            disconnect = json.loads(await ws.recv())
            assert disconnect["type"] == "disconnect" and disconnect["parameters"]["reason"] == "error"
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == code
        if script not in ("audio_first", "no_media"):
            (session,) = await app.manager.wait_closed(1)
            assert session.closed_reason == "protocol_error" and session.samples(0).size == 800  # audio kept
