"""Protocol peers that place one two-party call into a running harken through each telephony tap.

Used by `harken eval taps-e2e` and by tests/test_taps_e2e.py. Each peer is written from the protocol's
published description (or is a real third-party peer: streamdouble for Twilio Media Streams, SIPp for SIPREC)
and never imports the server side's code, so a bug on either side shows up as a disagreement.

Every peer takes a `CallAudio` (agent and customer as 8 kHz int16 arrays, as in the shared dev calls: agent
left, customer right) and a `speed` (1.0 = real time; larger sends faster where the protocol allows it) and
returns a `PeerCall` telling what it sent and how to find the session afterwards (the call id it announced).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RATE_HZ = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: the packet time every one of these protocols uses on the wire
SIPP_SCENARIOS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "sipp"


@dataclass(frozen=True)
class CallAudio:
    """One two-party call at 8 kHz: agent and customer as equal-length int16 arrays."""

    call_id: str
    agent: np.ndarray
    customer: np.ndarray

    @property
    def duration_s(self) -> float:
        return self.agent.size / RATE_HZ


def load_call_audio(path: str | Path, seconds: float | None = None) -> CallAudio:
    """Read a shared dev call (stereo 8 kHz WAV, agent left, customer right), optionally its first `seconds`."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    if rate != RATE_HZ or data.shape[1] != 2:
        raise ValueError(f"{path}: expected stereo 8 kHz, got {data.shape[1]} ch at {rate} Hz")
    if seconds is not None:
        data = data[: int(seconds * RATE_HZ)]
    n = (data.shape[0] // FRAME_SAMPLES) * FRAME_SAMPLES  # whole 20 ms frames, so every peer sends the same audio
    name = Path(path).name.split(".")[0]
    return CallAudio(name, np.ascontiguousarray(data[:n, 0]), np.ascontiguousarray(data[:n, 1]))


@dataclass
class PeerCall:
    """What a peer did: the tap it used, the call id it announced, DTMF it sent, and peer-side details."""

    tap: str
    call_ref: str
    dtmf_sent: list[str] = field(default_factory=list)
    channels_sent: tuple[str, ...] = ("agent", "customer")
    wall_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 μ-law as the ITU-T reference coder (and audioop) does it: 14-bit magnitude, bias 33, 8 segments.

    Written independently of pipelines.taps.codecs, so the peers do not share the server's code.
    """
    v = np.asarray(pcm, dtype=np.int32) >> 2  # arithmetic shift: floors negative samples, as the reference does
    mask = np.where(v < 0, 0x7F, 0xFF)
    v = np.minimum(np.abs(v), 8159) + 0x21
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), v)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((v >> (seg + 1)) & 0x0F))  # past the last segment: clipped
    return (code ^ mask).astype(np.uint8).tobytes()


async def _pace(t0: float, sent_s: float, speed: float) -> None:
    """Sleep until `sent_s` of audio is due at `speed` x real time (absolute deadlines: no drift)."""
    ahead = sent_s / speed - (time.monotonic() - t0)
    if ahead > 0:
        await asyncio.sleep(ahead)


# --- Twilio Media Streams: streamdouble (a third-party simulator) -----------------------------------------------


async def twilio_streamdouble(
    ws_url: str, call: CallAudio, *, speed: float = 1.0, custom_parameters: dict[str, str] | None = None,
    dtmf: str = "", dtmf_at_s: float | None = None,
) -> PeerCall:
    """A `<Start><Stream track="both_tracks">` fork placed by streamdouble: inbound = customer, outbound = agent.

    streamdouble paces 20 ms frames against its own clock; for `speed` > 1 that clock runs faster (the
    protocol carries stream time in `media.timestamp`, which stays true). DTMF is a scenario step.
    """
    from streamdouble.pacer import Pacer
    from streamdouble.scenario import Dtmf, Say, Scenario
    from streamdouble.session import Session, SessionConfig

    def frames(x: np.ndarray) -> list[bytes]:
        return [ulaw_encode(x[i : i + FRAME_SAMPLES]) for i in range(0, x.size - FRAME_SAMPLES + 1, FRAME_SAMPLES)]

    customer = frames(call.customer)
    steps: list[Any]
    if dtmf and dtmf_at_s is not None:
        k = int(dtmf_at_s * RATE_HZ / FRAME_SAMPLES)
        steps = [Say(Path("customer-a.wav"), customer[:k]), Dtmf(dtmf), Say(Path("customer-b.wav"), customer[k:])]
    else:
        steps = [Say(Path("customer.wav"), customer)]

    origin = time.perf_counter()

    def clock() -> float:  # streamdouble's clock, running `speed` times faster than the wall clock
        return origin + (time.perf_counter() - origin) * speed

    async def sleep(scaled_s: float) -> None:
        await asyncio.sleep(scaled_s / speed)

    config = SessionConfig(
        fork=True, tracks=["inbound", "outbound"], agent_frames=frames(call.agent),
        custom_parameters=dict(custom_parameters or {}), response_timeout_s=0.5, quiet_period_s=0.2,
        max_drain_s=1.0,
    )
    session = Session(ws_url, scenario=Scenario("harken taps e2e", steps), config=config, clock=clock)
    session.pacer = Pacer(0.02, clock=clock, sleep=sleep)
    t0 = time.monotonic()
    result = await session.run()
    return PeerCall(
        "twilio", result.identity.call_sid, dtmf_sent=list(dtmf) if dtmf_at_s is not None else [],
        wall_s=time.monotonic() - t0,
        details={"stream_sid": result.identity.stream_sid, "frames_sent": result.frames_sent,
                 "violations": [str(v) for v in getattr(result, "violations", [])]},
    )


# --- Asterisk AudioSocket: byte-exact TCP client (res_audiosocket framing) ---------------------------------------


def audiosocket_frame(kind: int, payload: bytes = b"") -> bytes:
    """type (1 byte) | payload length (16-bit big endian) | payload."""
    return bytes([kind]) + struct.pack(">H", len(payload)) + payload


async def audiosocket_leg(
    host: str, port: int, pcm: np.ndarray, *, call_uuid: uuid.UUID, speed: float = 1.0, dtmf: str = "",
    dtmf_at_s: float | None = None,
) -> dict[str, Any]:
    """One AudioSocket leg as Asterisk sends it: UUID, 20 ms slin frames (0x10), DTMF (0x03), hangup (0x00).

    Returns what the server said back (its frames' types) once it has closed the connection.
    """
    reader, writer = await asyncio.open_connection(host, port)
    t0 = time.monotonic()
    writer.write(audiosocket_frame(0x01, call_uuid.bytes))
    dtmf_frame = None if dtmf_at_s is None else int(dtmf_at_s * RATE_HZ) // FRAME_SAMPLES
    for k, i in enumerate(range(0, pcm.size, FRAME_SAMPLES)):
        if k == dtmf_frame:
            for digit in dtmf:
                writer.write(audiosocket_frame(0x03, digit.encode("ascii")))
        writer.write(audiosocket_frame(0x10, pcm[i : i + FRAME_SAMPLES].astype("<i2").tobytes()))
        if k % 10 == 9:
            await writer.drain()
            await _pace(t0, (i + FRAME_SAMPLES) / RATE_HZ, speed)
    writer.write(audiosocket_frame(0x00))
    await writer.drain()
    back = await asyncio.wait_for(reader.read(), 120)  # the server closes once the session has ended
    writer.close()
    return {"server_bytes": len(back), "wall_s": time.monotonic() - t0}


async def audiosocket_call(
    host: str, port: int, call: CallAudio, *, speed: float = 1.0, dtmf: str = "", dtmf_at_s: float | None = None,
) -> PeerCall:
    """The customer leg of the call over AudioSocket (one connection = one leg = one single-channel session)."""
    call_uuid = uuid.uuid4()
    t0 = time.monotonic()
    info = await audiosocket_leg(host, port, call.customer, call_uuid=call_uuid, speed=speed, dtmf=dtmf,
                                 dtmf_at_s=dtmf_at_s)
    return PeerCall("audiosocket", str(call_uuid), dtmf_sent=list(dtmf) if dtmf_at_s is not None else [],
                    channels_sent=("customer",), wall_s=time.monotonic() - t0, details=info)


async def audiosocket_two_legs(
    host: str, customer_port: int, agent_port: int, call: CallAudio, *, speed: float = 1.0, dtmf: str = "",
    dtmf_at_s: float | None = None,
) -> PeerCall:
    """Both parties as two AudioSocket legs with one call UUID (an ARI app snooping each party into an
    externalMedia channel): the customer's to `customer_port`, the agent's to `agent_port`, concurrently."""
    call_uuid = uuid.uuid4()
    t0 = time.monotonic()
    customer, agent = await asyncio.gather(
        audiosocket_leg(host, customer_port, call.customer, call_uuid=call_uuid, speed=speed, dtmf=dtmf,
                        dtmf_at_s=dtmf_at_s),
        audiosocket_leg(host, agent_port, call.agent, call_uuid=call_uuid, speed=speed),
    )
    return PeerCall("audiosocket", str(call_uuid), dtmf_sent=list(dtmf) if dtmf_at_s is not None else [],
                    wall_s=time.monotonic() - t0, details={"customer": customer, "agent": agent})


# --- SIPREC: SIPp (a third-party SIP UAC) replaying both legs from a pcap -----------------------------------------


def _rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    """RFC 3550 fixed header (V=2, no padding/extension/CSRC) + payload."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def rtp_leg(pcm: np.ndarray, ssrc: int, *, dtmf: str = "", dtmf_at_s: float | None = None,
            dtmf_pt: int = 101) -> list[bytes]:
    """PCMU packets of 20 ms; DTMF as RFC 4733 telephone-events (3 updates + 3 end packets per digit)."""
    packets: list[bytes] = []
    seq = random.Random(ssrc).randrange(1000, 30000)
    dtmf_frame = None if dtmf_at_s is None else int(dtmf_at_s * RATE_HZ) // FRAME_SAMPLES
    for k, i in enumerate(range(0, pcm.size - FRAME_SAMPLES + 1, FRAME_SAMPLES)):
        ts = 1000 + i
        if k == dtmf_frame:
            for j, digit in enumerate(dtmf):
                event = "0123456789*#ABCD".index(digit)
                ev_ts = ts + j * 1600
                for n in range(1, 7):
                    end = n >= 4
                    duration = min(n, 4) * FRAME_SAMPLES
                    payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
                    packets.append(_rtp(dtmf_pt, seq, ev_ts, ssrc, payload, marker=n == 1))
                    seq += 1
        packets.append(_rtp(0, seq, ts, ssrc, ulaw_encode(pcm[i : i + FRAME_SAMPLES])))
        seq += 1
    return packets


def write_siprec_files(
    workdir: Path, call: CallAudio, *, speed: float, dtmf: str = "", dtmf_at_s: float | None = None,
    original_call_id: str = "",
) -> tuple[Path, int]:
    """The pcap of both legs and the SIPp scenario that replays it; returns (scenario path, pause in ms)."""
    from pipelines.taps.pcap import write_rtp_pcap

    workdir.mkdir(parents=True, exist_ok=True)
    pcap = workdir / f"{call.call_id}.pcap"
    ssrc = random.randrange(1, 1 << 31)
    # one SSRC for both legs, as recording clients do: the server must key streams by port and label
    write_rtp_pcap(pcap, [(6000, rtp_leg(call.customer, ssrc, dtmf=dtmf, dtmf_at_s=dtmf_at_s)),
                          (6002, rtp_leg(call.agent, ssrc))], ptime_s=0.02 / speed)
    pause_ms = int(call.duration_s / speed * 1000) + 600
    xml = (SIPP_SCENARIOS / "siprec_uac.xml").read_text()
    if dtmf:  # offer telephone-events on the customer leg too
        xml = xml.replace("m=audio [media_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000",
                          "m=audio [media_port] RTP/AVP 0 101\n      a=rtpmap:0 PCMU/8000\n"
                          "      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15", 1)
        if "telephone-event" not in xml:
            raise RuntimeError("the SIPp scenario changed: cannot add telephone-event to it")
    scenario = workdir / f"{call.call_id}.siprec_uac.xml"
    scenario.write_text(xml.replace("@PCAP@", str(pcap)).replace("@PAUSE_MS@", str(pause_ms))
                        .replace("@ORIG_CALL_ID@", original_call_id or f"{call.call_id}@pbx.example"))
    return scenario, pause_ms


async def siprec_sipp(
    host: str, sip_port: int, call: CallAudio, workdir: Path, *, speed: float = 1.0, dtmf: str = "",
    dtmf_at_s: float | None = None, sipp: str = "sipp", transport: str = "u1",
) -> PeerCall:
    """A SIPREC session from SIPp: multipart INVITE (SDP with labelled legs + rs-metadata), RTP from a pcap, BYE.

    The pcap is written with packet times `20 ms / speed` apart, so SIPp replays it faster than real time.
    """
    # The recorded call (the PBX's id, in the metadata's <sipSessionID>) and the recording dialog (SIPp's
    # Call-ID) have different ids, as with a real SRC: harken must report the first as the session's call_id.
    original_call_id = f"{uuid.uuid4().hex}@pbx.example"
    scenario, pause_ms = await asyncio.to_thread(
        write_siprec_files, workdir, call, speed=speed, dtmf=dtmf, dtmf_at_s=dtmf_at_s,
        original_call_id=original_call_id,
    )
    media_port = random.randrange(42000, 48000, 4)
    sip_call_id = f"{uuid.uuid4().hex}@harken-e2e"
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sipp, f"{host}:{sip_port}", "-sf", str(scenario), "-m", "1", "-i", host, "-mi", host,
        "-mp", str(media_port), "-p", str(media_port - 1), "-t", transport, "-cid_str", sip_call_id,
        "-nostdin", "-timeout", "120s", "-timeout_error", "-trace_err",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        cwd=workdir,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 180)
    if proc.returncode:
        raise RuntimeError(f"sipp failed ({proc.returncode}): {err.decode(errors='replace')[-1500:]}")
    return PeerCall("siprec", original_call_id, dtmf_sent=list(dtmf) if dtmf_at_s is not None else [],
                    wall_s=time.monotonic() - t0,
                    details={"pause_ms": pause_ms, "recording_call_id": sip_call_id})


# --- FreeSWITCH mod_audio_fork: WebSocket, metadata text frame, L16 stereo binary frames -----------------------


async def freeswitch_fork(
    ws_url: str, call: CallAudio, *, speed: float = 1.0, metadata: dict[str, Any] | None = None,
) -> PeerCall:
    """`uuid_audio_fork <uuid> start <url> stereo 8k <metadata>`: caller (customer) left, callee (agent) right."""
    from websockets.asyncio.client import connect

    fs_uuid = str(uuid.uuid4())
    meta = {"uuid": fs_uuid, "language": "en", **(metadata or {})}
    url = f"{ws_url}?sample_rate=8000&mix_type=stereo"
    wire = np.empty(call.agent.size * 2, dtype="<i2")
    wire[0::2], wire[1::2] = call.customer, call.agent
    data = wire.tobytes()
    step = 4 * FRAME_SAMPLES * 5  # mod_audio_fork sends ~100 ms per frame: 5 x 20 ms, 2 channels, 2 bytes
    t0 = time.monotonic()
    async with connect(url, subprotocols=["audio.drachtio.org"], max_size=1 << 20) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps(meta))
        for i in range(0, len(data), step):
            await ws.send(data[i : i + step])
            await _pace(t0, (i + step) / 4 / RATE_HZ, speed)
        await ws.close(1000)
    return PeerCall("freeswitch", str(meta.get("call_id", fs_uuid)), wall_s=time.monotonic() - t0,
                    details={"uuid": fs_uuid, "subprotocol": ws.subprotocol})


# --- Genesys AudioHook: signed upgrade, open/opened, stereo PCMU, ping, dtmf, close/closed ------------------------


def audiohook_headers(host_port: str, path: str, session_id: str, org: str, api_key: str,
                      secret_b64: str | None) -> dict[str, str]:
    """The upgrade headers Genesys sends, signed (HTTP Message Signatures, HMAC-SHA256) when a secret is set."""
    headers = {"Audiohook-Organization-Id": org, "Audiohook-Correlation-Id": str(uuid.uuid4()),
               "Audiohook-Session-Id": session_id, "X-API-KEY": api_key}
    if not secret_b64:
        return headers
    created = int(time.time())
    nonce = base64.b64encode(os.urandom(18)).decode()
    params = ('("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" '
              f'"audiohook-correlation-id" "x-api-key");keyid="{api_key}";nonce="{nonce}";'
              f'alg="hmac-sha256";created={created};expires={created + 10}')
    base = "\n".join([
        f'"@request-target": {path}', f'"@authority": {host_port}', f'"audiohook-organization-id": {org}',
        f'"audiohook-session-id": {session_id}',
        f'"audiohook-correlation-id": {headers["Audiohook-Correlation-Id"]}', f'"x-api-key": {api_key}',
        f'"@signature-params": {params}',
    ])
    mac = hmac.new(base64.b64decode(secret_b64), base.encode(), hashlib.sha256).digest()
    headers["Signature-Input"] = f"sig1={params}"
    headers["Signature"] = f"sig1=:{base64.b64encode(mac).decode()}:"
    return headers


async def audiohook_call(
    ws_url: str, call: CallAudio, *, api_key: str, secret_b64: str | None, speed: float = 1.0,
    organization_id: str = "d7934305-0972-4844-938e-9060eef73d05", dtmf: str = "",
    dtmf_at_s: float | None = None, language: str = "en-US",
) -> PeerCall:
    """An AudioHook v2 client: open (stereo + mono PCMU offered), 100 ms stereo frames, ping, dtmf, close."""
    from urllib.parse import urlsplit

    from websockets.asyncio.client import connect

    parts = urlsplit(ws_url)
    session_id = str(uuid.uuid4())
    conversation_id = str(uuid.uuid4())
    headers = audiohook_headers(parts.netloc, parts.path, session_id, organization_id, api_key, secret_b64)
    wire = np.empty(call.agent.size * 2, dtype=np.int16)
    wire[0::2], wire[1::2] = call.customer, call.agent  # channel 0 external (customer), 1 internal (agent)
    payload = ulaw_encode(wire)
    state = {"seq": 0, "serverseq": 0, "samples": 0}
    got: list[str] = []
    stereo = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": RATE_HZ}

    async with connect(ws_url, additional_headers=headers, max_size=1 << 20) as ws:

        async def send(msg_type: str, parameters: dict[str, Any]) -> None:
            state["seq"] += 1
            await ws.send(json.dumps({
                "version": "2", "id": session_id, "type": msg_type, "seq": state["seq"],
                "serverseq": state["serverseq"], "position": f"PT{state['samples'] / RATE_HZ:.3f}S",
                "parameters": parameters,
            }))

        async def recv(expect: str) -> dict[str, Any]:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if msg.get("seq") != state["serverseq"] + 1 or msg.get("clientseq") != state["seq"]:
                raise RuntimeError(f"audiohook: server sequence numbers wrong in {msg.get('type')}")
            state["serverseq"] = msg["seq"]
            got.append(str(msg.get("type")))
            if msg.get("type") != expect:
                raise RuntimeError(f"audiohook: expected {expect}, got {msg.get('type')}")
            return msg

        await send("open", {
            "organizationId": organization_id, "conversationId": conversation_id,
            "participant": {"id": str(uuid.uuid4()), "ani": "tel:+15550100", "aniName": "Customer",
                            "dnis": "tel:+15550199"},
            "media": [{**stereo, "channels": ["external"]}, stereo], "language": language,
            "customConfig": {"agent_id": "agent-e2e"},
        })
        opened = await recv("opened")
        if opened["parameters"]["media"] != [stereo]:
            raise RuntimeError("audiohook: server did not choose stereo PCMU")
        t0 = time.monotonic()
        step = 2 * 800  # 100 ms of stereo μ-law
        dtmf_byte = None if dtmf_at_s is None else int(dtmf_at_s * RATE_HZ) * 2
        for i in range(0, len(payload), step):
            if dtmf_byte is not None and i <= dtmf_byte < i + step:
                for digit in dtmf:
                    await send("dtmf", {"digit": digit})
            await ws.send(payload[i : i + step])
            state["samples"] += len(payload[i : i + step]) // 2
            if i // step == 20:
                await send("ping", {})
                await recv("pong")
            await _pace(t0, state["samples"] / RATE_HZ, speed)
        await send("close", {"reason": "end"})
        await recv("closed")
    return PeerCall("audiohook", conversation_id, dtmf_sent=list(dtmf) if dtmf_at_s is not None else [],
                    wall_s=time.monotonic() - t0, details={"server_messages": got, "audiohook_id": session_id})


# --- harken's own WebSocket stream (/v1/stream): start message, interleaved s16le frames, stop ---------------------


async def websocket_stereo(
    ws_url: str, call: CallAudio, *, speed: float = 1.0, language: str = "en", frame_s: float = 0.1,
) -> PeerCall:
    """A stereo call over `/v1/stream` (agent left, customer right), paced at `speed` x real time; waits for
    `session_end` so the session has been persisted when it returns."""
    from websockets.asyncio.client import connect

    call_ref = f"ws-{uuid.uuid4().hex}"
    wire = np.empty(call.agent.size * 2, dtype="<i2")
    wire[0::2], wire[1::2] = call.agent, call.customer
    start = {"type": "start", "sample_rate_hz": RATE_HZ, "encoding": "s16le", "channels": 2,
             "channel_names": ["agent", "customer"], "language": language, "metadata": {"call_id": call_ref}}
    step = int(RATE_HZ * frame_s) * 2  # samples of both channels per frame
    t0 = time.monotonic()
    async with connect(ws_url, max_size=1 << 22) as ws:
        await ws.send(json.dumps(start))

        async def sender() -> None:
            sent = time.monotonic()
            for i in range(0, wire.size, step):
                await ws.send(wire[i : i + step].tobytes())
                await _pace(sent, (i + step) / 2 / RATE_HZ, speed)
            await ws.send(json.dumps({"type": "stop"}))

        task = asyncio.create_task(sender())
        try:
            async for message in ws:
                if json.loads(message).get("type") == "session_end":
                    break
        finally:
            await task
    return PeerCall("websocket", call_ref, wall_s=time.monotonic() - t0)
