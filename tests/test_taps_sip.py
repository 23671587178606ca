"""SIP / SIPREC recording server, driven over UDP and TCP by a client that writes RFC 7866 INVITEs by hand."""

from __future__ import annotations

import asyncio
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.taps.codecs import ulaw_encode
from pipelines.taps.rtp import RtpPacket, build_rtp
from pipelines.taps.sip.message import SipParseError, frame_stream, parse_sip
from pipelines.taps.sip.sdp import SdpError, parse_sdp
from pipelines.taps.sip.server import SipServer, SipServerConfig
from pipelines.taps.sip.siprec import SiprecError, parse_metadata, split_multipart
from tests.taps_fakes import FakeManager, load_call

RFC_NS = "urn:ietf:params:xml:ns:recording:1"
OLD_NS = "urn:ietf:params:xml:ns:recording"


def metadata_rfc(customer_label: str = "1", agent_label: str = "2") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='{RFC_NS}'>
  <datamode>complete</datamode>
  <session session_id="hVpd7YQgRW2nD22h7q60JQ=="><sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID></session>
  <participant participant_id="srfBElmCRp2QB23b7Mpk0w=="><nameID aor="sip:+15550100@carrier.example"><name>Customer</name></nameID><extensiondata xmlns:x="urn:example:sbc"><x:callId>leg-a-77@pbx.example</x:callId></extensiondata></participant>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw=="><nameID aor="sip:agent1001@cc.example"><name>Agent 1001</name></nameID></participant>
  <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>{customer_label}</label></stream>
  <stream stream_id="i1Pz3to5hGk8fuXl+PbwCw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>{agent_label}</label></stream>
  <participantstreamassoc participantstreamassoc_id="A" participant_id="srfBElmCRp2QB23b7Mpk0w=="><send>UAAMm5GRQKSCMVvLyl4rFw==</send><recv>i1Pz3to5hGk8fuXl+PbwCw==</recv></participantstreamassoc>
  <participantstreamassoc participantstreamassoc_id="B" participant_id="zSfPoSvdSDCmU3A3TRDxAw=="><send>i1Pz3to5hGk8fuXl+PbwCw==</send><recv>UAAMm5GRQKSCMVvLyl4rFw==</recv></participantstreamassoc>
</recording>"""


def metadata_pre_rfc() -> str:
    # The draft form some SBCs still send: id attributes, <aor> and <send> directly on the participant.
    # The agent is listed first here, so only the label mapping can put the streams on the right channels.
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{OLD_NS}">
  <session id="s1"><start-time>2026-11-26T10:00:00Z</start-time></session>
  <participant id="p-agent" session="s1"><aor>sip:agent7@cc.example</aor><name>Agent Seven</name><send>st-a</send></participant>
  <participant id="p-cust" session="s1"><aor>sip:+15550111@carrier.example</aor><send>st-c</send></participant>
  <stream id="st-c" session="s1"><label>10</label></stream>
  <stream id="st-a" session="s1"><label>20</label></stream>
</recording>"""


def sdp_offer(labels: tuple[str, ...], ports: tuple[int, ...] = (40000, 40002), codecs: str = "0 101") -> str:
    lines = ["v=0", "o=SRC 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    for label, port in zip(labels, ports, strict=True):
        lines += [
            f"m=audio {port} RTP/AVP {codecs}",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            f"a=label:{label}",
            "a=sendonly",
        ]
    return "\r\n".join(lines) + "\r\n"


def invite(
    call_id: str,
    body: bytes,
    content_type: str,
    cseq: int = 1,
    to_tag: str = "",
    extra: str = "Require: siprec\r\n",
) -> bytes:
    head = (
        f"INVITE sip:srs@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{random.getrandbits(40):x};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:src@sbc.example>;tag=src1\r\nTo: <sip:srs@127.0.0.1>{';tag=' + to_tag if to_tag else ''}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:src@127.0.0.1:5099>;+sip.src\r\n{extra}"
        f"X-Tenant: acme-bank\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def siprec_body(metadata: str, sdp: str) -> tuple[bytes, str]:
    b = "OSS-unique-boundary-42"
    body = (
        f"--{b}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        f"--{b}\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{metadata}\r\n"
        f"--{b}--\r\n"
    )
    return body.encode(), f"multipart/mixed;boundary={b}"


def request(method: str, call_id: str, cseq: int, to_tag: str, body: bytes = b"", ctype: str = "") -> bytes:
    head = (
        f"{method} sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{random.getrandbits(40):x}\r\n"
        f"From: <sip:src@sbc.example>;tag=src1\r\nTo: <sip:srs@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        + (f"Content-Type: {ctype}\r\n" if ctype else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class UdpPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.inbox.put_nowait(data)

    async def final(self) -> tuple[int, bytes]:
        """The next final (non-1xx) response: status code and raw bytes."""
        while True:
            data = await asyncio.wait_for(self.inbox.get(), 5)
            code = int(data.split(b" ", 2)[1])
            if code >= 200:
                return code, data


async def _udp_peer(server: SipServer) -> tuple[asyncio.DatagramTransport, UdpPeer]:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(UdpPeer, remote_addr=("127.0.0.1", server.port))
    return transport, peer


def _answer_ports(resp: bytes) -> list[int]:
    sdp = resp.split(b"\r\n\r\n", 1)[1].decode()
    return [int(p) for p in re.findall(r"m=audio (\d+)", sdp)]


def _rtp_stream(x: np.ndarray, ssrc: int, seq0: int = 1000) -> list[bytes]:
    return [
        build_rtp(RtpPacket(0, seq0 + i, 160 * i, ssrc, ulaw_encode(x[o : o + 160])))
        for i, o in enumerate(range(0, x.size - 159, 160))
    ]


def _server(manager: FakeManager, **kw: object) -> SipServer:
    lo = random.randrange(30000, 38000, 2)
    return SipServer(
        manager, SipServerConfig(host="127.0.0.1", port=0, rtp_port_min=lo, rtp_port_max=lo + 400, **kw)
    )  # type: ignore[arg-type]


async def _send_legs(legs: list[tuple[int, list[bytes]]]) -> None:
    """Send RTP legs interleaved, paced a little so the loopback socket buffers never overflow."""
    loop = asyncio.get_running_loop()
    socks = []
    for port, _ in legs:
        t, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port))
        socks.append(t)
    for i in range(max(len(p) for _, p in legs)):
        for (_, pkts), t in zip(legs, socks, strict=True):
            if i < len(pkts):
                t.sendto(pkts[i])
        if i % 25 == 0:
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.2)
    for t in socks:
        t.close()


@pytest.mark.parametrize("variant", ["rfc", "pre_rfc"])
async def test_siprec_two_legs_map_labels_to_agent_and_customer(variant: str) -> None:
    call = load_call("dev_en_09", seconds=8)
    agent, customer = call[:, 0], call[:, 1]
    manager = FakeManager()
    # The pre-RFC document lists the agent first, so the deployment's agent pattern must decide the roles.
    server = _server(manager, agent_aor_pattern=r"^sip:agent\d+@" if variant == "pre_rfc" else None)
    await server.start()
    try:
        transport, peer = await _udp_peer(server)
        if variant == "rfc":
            labels, md, customer_first = ("1", "2"), metadata_rfc("1", "2"), True
        else:
            labels, md, customer_first = (
                ("20", "10"),
                metadata_pre_rfc(),
                False,
            )  # agent's stream is the first m-line
        body, ctype = siprec_body(md, sdp_offer(labels))
        transport.sendto(invite("rec-1@sbc", body, ctype))
        code, resp = await peer.final()
        assert code == 200 and b"a=recvonly" in resp and b"+sip.srs" in resp
        ports = _answer_ports(resp)
        assert len(ports) == 2 and ports[1] == ports[0] + 2
        to_tag = re.search(rb"To: [^\r]*;tag=(\w+)", resp).group(1).decode()  # type: ignore[union-attr]
        transport.sendto(request("ACK", "rec-1@sbc", 1, to_tag))
        # Both legs use the same SSRC on purpose: streams are keyed by port and label.
        first, second = (customer, agent) if customer_first else (agent, customer)
        await _send_legs([(ports[0], _rtp_stream(first, 7)), (ports[1], _rtp_stream(second, 7))])
        transport.sendto(request("BYE", "rec-1@sbc", 2, to_tag))
        assert (await peer.final())[0] == 200
        (session,) = await manager.wait_closed(1)
        transport.close()
    finally:
        await server.stop()
    assert session.closed_reason == "hangup" and session.config.source == "siprec"
    assert session.config.channel_names == ("agent", "customer")
    n = (agent.size // 160) * 160
    assert np.array_equal(session.samples(0), agent[:n]) and np.array_equal(session.samples(1), customer[:n])
    md = session.metadata
    assert md["tenant"] == "acme-bank" and md["recording_call_id"] == "rec-1@sbc"
    if variant == "rfc":
        assert md["agent_id"] == "sip:agent1001@cc.example" and md["from"] == "sip:+15550100@carrier.example"
        assert md["metadata_namespace"] == RFC_NS
        # the recorded call's own id (RFC 7865 <sipSessionID>), not the recording dialog's Call-ID
        assert md["call_id"] == "ab30317f1a784dc48ff824d0d3715d86"
        assert md["sip_session_ids"] == ["ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2"]
        customer_p = next(p for p in md["participants"] if p["role"] == "customer")
        assert customer_p["call_id"] == "leg-a-77@pbx.example"
    else:
        assert md["agent_id"] == "sip:agent7@cc.example" and md["metadata_namespace"] == OLD_NS
        assert md["call_id"] == "rec-1@sbc"  # no <sipSessionID> given: the dialog's Call-ID is all there is
    assert session.events_of("tap_stats")[0]["tap"] == "siprec"
    streams = session.events_of("tap_stats")[0]["streams"]
    assert sorted(s["packets_received"] for s in streams) == [n // 160, n // 160]
    assert all(s["packets_lost"] == 0 for s in streams)


async def test_plain_call_over_tcp_with_reinvite_dtmf_and_media_timeout() -> None:
    x = load_call("dev_en_10", seconds=3)[:, 1]
    manager = FakeManager()
    server = _server(manager, media_timeout_s=0.6)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        sdp = sdp_offer(("a",), ports=(40010,)).replace("a=sendonly", "a=sendrecv").encode()
        writer.write(invite("plain-1", sdp, "application/sdp", extra=""))

        async def final() -> bytes:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
                body = await reader.readexactly(length)
                if int(head.split(b" ", 2)[1]) >= 200:
                    return head + body

        resp = await final()
        assert resp.startswith(b"SIP/2.0 200")
        (port,) = _answer_ports(resp)
        to_tag = re.search(rb"To: [^\r]*;tag=(\w+)", resp).group(1).decode()  # type: ignore[union-attr]
        pkts = _rtp_stream(x, 99)
        dtmf = [
            build_rtp(
                RtpPacket(
                    101,
                    1000 + len(pkts) + k,
                    160 * len(pkts),
                    99,
                    bytes([1, 0x80 if k else 0]) + (800).to_bytes(2, "big"),
                )
            )
            for k in range(3)
        ]
        await _send_legs([(port, pkts[: len(pkts) // 2])])
        writer.write(invite("plain-1", sdp, "application/sdp", cseq=2, to_tag=to_tag, extra=""))  # re-INVITE
        re_resp = await final()
        assert re_resp.startswith(b"SIP/2.0 200") and _answer_ports(re_resp) == [port]
        await _send_legs([(port, pkts[len(pkts) // 2 :] + dtmf)])
        # no BYE: the peer vanishes; the media watchdog ends the call
        (session,) = await manager.wait_closed(1, timeout_s=5)
        writer.close()
    finally:
        await server.stop()
    assert session.closed_reason == "media_timeout" and session.config.channel_names == ("customer",)
    assert np.array_equal(session.samples(0), x[: len(pkts) * 160])
    assert session.events_of("dtmf") == [{"digit": "1", "duration_ms": 100.0, "channel": 0, "at_s": 3.0}]


async def test_bad_requests_are_answered_and_the_server_survives() -> None:
    manager = FakeManager(capacity=1)
    server = _server(manager)
    await server.start()
    try:
        transport, peer = await _udp_peer(server)
        body, ctype = siprec_body(metadata_rfc(), sdp_offer(("1", "2")))
        cases = [
            (invite("b1", b"v=0\r\nm=audio\r\n", "application/sdp"), 400),  # malformed SDP
            (invite("b2", *siprec_body("<recording>", sdp_offer(("1", "2")))), 400),  # malformed metadata
            (
                invite(
                    "b3",
                    *siprec_body(
                        '<!DOCTYPE x [<!ENTITY a "b">]><recording xmlns="urn:ietf:params:xml:ns:recording:1"/>',
                        sdp_offer(("1",), (40000,)),
                    ),
                ),
                400,
            ),
            (
                invite("b4", sdp_offer(("1",), (40000,), codecs="18").encode(), "application/sdp"),
                488,
            ),  # G.729 only
            (invite("b5", b"hello", "text/plain"), 415),
            (invite("b6", body, ctype, extra="Require: siprec, 100rel-but-weird\r\n"), 420),
            (request("BYE", "nope", 1, "x"), 481),
            (request("SUBSCRIBE", "nope", 1, "x"), 501),
        ]
        for raw, want in cases:
            transport.sendto(raw)
            assert (await peer.final())[0] == want
        transport.sendto(b"\x00garbage that is not SIP\r\n\r\n")
        transport.sendto(invite("ok", body, ctype)[:-40])  # truncated body: dropped
        transport.sendto(request("OPTIONS", "opt", 1, "x"))
        code, resp = await peer.final()
        assert code == 200 and b"Supported: siprec" in resp
        assert server.malformed_messages == 2
        transport.sendto(invite("c1", body, ctype))
        assert (await peer.final())[0] == 200
        transport.sendto(invite("c1", body, ctype))  # retransmission: same answer, no second session
        assert (await peer.final())[0] == 200
        transport.sendto(invite("c2", body, ctype))
        assert (await peer.final())[0] == 503  # at capacity
        assert len(manager.sessions) == 1
        transport.close()
    finally:
        await server.stop()
    assert manager.sessions[0].closed_reason == "server_shutdown"


def test_parsers_on_edge_cases() -> None:
    msg = parse_sip(
        b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\n"
        b"i: abc\r\nCSeq: 1 INVITE\r\nSubject: folded\r\n  line\r\nl: 3\r\n\r\nxyzEXTRA"
    )
    assert msg.call_id == "abc" and msg.body == b"xyz" and msg.header("subject") == "folded line"
    msgs, rest = frame_stream(b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\nContent-Length: 2\r\n\r\nhiOPT")
    assert msgs == [b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 2\r\n\r\nhi"] and rest == b"OPT"
    with pytest.raises(SipParseError):
        frame_stream(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n")  # no Content-Length on TCP
    with pytest.raises(SdpError):
        parse_sdp("v=0\r\nm=audio 99999 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n")
    with pytest.raises(SiprecError):
        split_multipart(b"no boundary here", "multipart/mixed;boundary=zzz")
    sdp = parse_sdp(sdp_offer(("1",), (40000,), codecs="9 8 0 101"))
    fmt = sdp.media[0].stream_format()
    assert fmt is not None and [s.name for s in fmt.payload_types.values()] == ["G722", "PCMA", "PCMU"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_sip_sdp_and_metadata_parsers_fuzz(data: bytes) -> None:
    for parse, errors in (
        (lambda d: parse_sip(d), (SipParseError,)),
        (lambda d: frame_stream(d), (SipParseError,)),
        (lambda d: parse_sdp(d.decode("utf-8", "replace")), (SdpError,)),
        (lambda d: parse_metadata(d), (SiprecError,)),
        (lambda d: split_multipart(d, "multipart/mixed;boundary=b"), (SiprecError,)),
    ):
        try:
            parse(data)
        except errors:
            pass


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "v=0",
                "m=audio 4000 RTP/AVP 0 8",
                "c=IN IP4 10.0.0.1",
                "a=rtpmap:0 PCMU/8000",
                "a=label:1",
                "a=sendonly",
                "m=video 0 RTP/AVP 96",
                "a=rtpmap:x",
                "c=IN",
                "o=- 1 1 IN IP4 h",
            ]
        ),
        max_size=12,
    )
)
def test_sdp_structure_fuzz(lines: list[str]) -> None:
    try:
        sdp = parse_sdp("\r\n".join(lines))
    except SdpError:
        return
    for m in sdp.media:
        m.stream_format()


async def test_port_zero_picks_again_when_the_udp_port_is_taken_for_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    """With port 0 the UDP port the system picks may already be in use for TCP (another connection's ephemeral
    port): the server closes that UDP socket and picks again instead of failing to start."""
    import errno

    real_start_server = asyncio.start_server
    refused: list[int] = []

    async def busy_once(handler, host, port):  # the first TCP bind finds the port taken
        if not refused:
            refused.append(port)
            raise OSError(errno.EADDRINUSE, "address already in use")
        return await real_start_server(handler, host, port)

    monkeypatch.setattr(asyncio, "start_server", busy_once)
    server = _server(FakeManager(capacity=1))
    await server.start()
    try:
        assert refused and server.port > 0
        transport, peer = await _udp_peer(server)  # the server answers on the port it ended up with
        transport.sendto(request("OPTIONS", "opt-1", 1, "x"))
        assert (await peer.final())[0] == 200
        transport.close()
    finally:
        await server.stop()
