"""A SIP recording server (SIPREC SRS, RFC 7866) that also records plain SIP calls, over UDP and TCP.

An INVITE with `Require: siprec` carries a multipart/mixed body: SDP with one `sendonly` m-line per recorded
stream, each with `a=label`, and rs-metadata XML that maps labels -> streams -> participants. We answer with one
receive-only RTP port per stream (consecutive even ports: base, base+2, ...), open one session whose channels
are the participants' roles (agent on 0, customer on 1 for a two-party call), and feed each stream through its
own jitter buffer. Streams are keyed by their port and label, never by SSRC: SRCs reuse SSRCs across streams.
The call ends on BYE, or when no media has arrived for `media_timeout_s` (a peer that vanished). A re-INVITE
keeps the ports and refreshes formats and metadata. Bad requests get 4xx answers; the server carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pipelines.config import SessionConfig
from pipelines.taps.base import (
    AGENT_CUSTOMER,
    CapacityExceeded,
    SessionClosed,
    SessionOpener,
    TapSession,
    logger,
)
from pipelines.taps.media import RtpStreamReceiver, StreamFormat
from pipelines.taps.metrics import TapMetrics
from pipelines.taps.sip.message import (
    SipMessage,
    SipParseError,
    build_response,
    frame_stream,
    parse_sip,
    tag_of,
    uri_of,
)
from pipelines.taps.sip.sdp import SdpError, SessionDescription, build_answer, parse_sdp
from pipelines.taps.sip.siprec import (
    METADATA_CONTENT_TYPE,
    RecordingMetadata,
    SiprecError,
    parse_metadata,
    split_multipart,
)
from pipelines.taps.stats import StreamStats
from pipelines.taps.udp_socket import enlarge_receive_buffer, kernel_drops, socket_inode

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE"
_RTP_QUEUE_PACKETS = 500  # ~10 s of 20 ms packets per stream before we shed load

_EPHEMERAL_BIND_TRIES = 20  # port 0: UDP ports the system picks before one is also free for TCP


@dataclass(frozen=True)
class SipServerConfig:
    """Where and how the recording server listens. `advertised_ip` goes into SDP and Contact."""

    host: str = "127.0.0.1"
    port: int = 5060
    advertised_ip: str | None = None
    rtp_port_min: int = 20000
    rtp_port_max: int = 20999
    agent_aor_pattern: str | None = None
    plain_call_role: str = "customer"
    media_timeout_s: float = 30.0
    language: str = "auto"
    jitter_depth_packets: int = 5


class _RtpLeg(asyncio.DatagramProtocol):
    """One receive-only RTP port: latches onto the first source, queues datagrams for its stream receiver."""

    def __init__(self, receiver: RtpStreamReceiver, label: str | None) -> None:
        self.receiver = receiver
        self.label = label
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.source: tuple[str, int] | None = None
        self.queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue(_RTP_QUEUE_PACKETS)
        self.task: asyncio.Task[None] | None = None
        self._inode: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = int(transport.get_extra_info("sockname")[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            enlarge_receive_buffer(sock)
            self._inode = socket_inode(sock)

    def count_kernel_drops(self) -> None:
        """Copy the kernel's drop count for this port into the stream's stats (call before closing)."""
        drops = kernel_drops(self._inode)
        if drops is not None:
            self.receiver.stats.packets_dropped_socket = drops

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        src = (str(addr[0]), int(addr[1]))
        if self.source is None:
            self.source = src
        elif src != self.source:
            self.receiver.stats.packets_foreign += 1  # RTP from an unexpected source: dropped
            return
        try:
            self.queue.put_nowait((data, time.monotonic()))
        except asyncio.QueueFull:
            self.receiver.stats.packets_dropped += 1

    def error_received(self, exc: Exception) -> None:
        logger.debug("rtp port %d: %s", self.port, exc)

    async def consume(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            try:
                await self.receiver.on_datagram(*item)
            except SessionClosed:
                return  # the pipeline ended the session; the call ends on BYE or the media watchdog
            except Exception:  # a bad packet must not kill the leg: count it and go on
                logger.exception("rtp port %d: packet handling failed", self.port)
                self.receiver.stats.packets_invalid += 1

    async def close(self) -> None:
        if self.transport is not None:
            self.count_kernel_drops()
            self.transport.close()
        if self.task is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
            if self.queue.full():
                self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        with contextlib.suppress(SessionClosed):
            await self.receiver.finish()


@dataclass
class _Call:
    call_id: str
    to_tag: str
    invite_cseq: int
    session: TapSession | None = None
    legs: list[_RtpLeg | None] = field(default_factory=list)
    formats: list[StreamFormat | None] = field(default_factory=list)
    last_invite_response: bytes = b""
    sdp_version: int = 1
    watchdog: asyncio.Task[None] | None = None
    ended: bool = False
    # INVITE received -> 200 OK sent: an SRC forks media only after the answer, so this much of the recorded
    # call never reaches us (the first call after a start once waited for the model: issue 16)
    answer_delay_s: float | None = None


class SipServer:
    """SIP/SIPREC recording server. `await start()` binds UDP and TCP on the same port; `await stop()` ends calls."""

    def __init__(self, manager: SessionOpener, config: SipServerConfig | None = None) -> None:
        self._manager = manager
        self.config = config or SipServerConfig()
        self._agent_re = re.compile(self.config.agent_aor_pattern) if self.config.agent_aor_pattern else None
        self._calls: dict[str, _Call] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tcp_tasks: set[asyncio.Task[Any]] = set()
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self.malformed_messages = 0
        self.calls_total = 0
        self.calls_refused = 0
        self.tap_metrics = TapMetrics("harken_sip_rtp")
        self._ip = self.config.advertised_ip or (
            self.config.host if self.config.host not in ("0.0.0.0", "::", "") else _guess_ip()
        )

    @property
    def port(self) -> int:
        if self._udp is None:
            raise RuntimeError("server not started")
        return int(self._udp.get_extra_info("sockname")[1])

    @property
    def active_calls(self) -> int:
        return sum(1 for c in self._calls.values() if not c.ended)

    def metrics(self) -> Iterator[Metric]:
        """Prometheus families: per-RTP-stream counters (`harken_sip_rtp_*{tap="sip"|"siprec"}`) and calls."""
        yield from self.tap_metrics.families()
        yield CounterMetricFamily("harken_sip_calls", "SIP/SIPREC calls answered", value=self.calls_total)
        yield GaugeMetricFamily("harken_sip_calls_active", "SIP/SIPREC calls in progress", value=self.active_calls)
        yield CounterMetricFamily("harken_sip_calls_refused", "INVITEs refused at capacity or without media ports",
                                  value=self.calls_refused)
        yield CounterMetricFamily("harken_sip_malformed_messages", "SIP messages dropped as malformed",
                                  value=self.malformed_messages)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        server = self

        class _Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                src = (str(addr[0]), int(addr[1]))

                def reply(payload: bytes) -> None:
                    if server._udp is not None:
                        server._udp.sendto(payload, src)

                server._spawn(server._on_message(data, reply, src, stream=False))

        # UDP and TCP listen on one port number. With port 0 the system picks a free UDP port, and that number may
        # already be taken for TCP (an outgoing connection's ephemeral port): pick again rather than fail.
        tries = _EPHEMERAL_BIND_TRIES if self.config.port == 0 else 1
        for attempt in range(tries):
            transport, _ = await loop.create_datagram_endpoint(
                _Udp, local_addr=(self.config.host, self.config.port)
            )
            port = int(transport.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(self._on_tcp, self.config.host, port)
            except OSError as exc:
                transport.close()
                if exc.errno != errno.EADDRINUSE or attempt == tries - 1:
                    raise
                continue
            self._udp = transport
            break
        logger.info("sip recording server on %s:%d (udp, tcp)", self.config.host, self.port)

    async def stop(self) -> None:
        for call in list(self._calls.values()):
            await self._end_call(call, "server_shutdown")
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        # TCP handlers are ended by closing their connections, not cancelled: asyncio's start_server
        # callback would log a cancelled handler as an error.
        for writer in list(self._tcp_writers):
            writer.close()
        pending = list(self._tasks) + list(self._tcp_tasks)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tcp_tasks.add(task)
        self._tcp_writers.add(writer)
        peer = writer.get_extra_info("peername")
        src = (str(peer[0]), int(peer[1]))

        def reply(payload: bytes) -> None:
            if not writer.is_closing():
                writer.write(payload)

        buffer = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buffer += chunk
                messages, buffer = frame_stream(buffer)
                for raw in messages:
                    await self._on_message(raw, reply, src, stream=True)
        except SipParseError as exc:
            self.malformed_messages += 1
            logger.warning("sip tcp: closing connection: %s", exc)
        except (ConnectionError, OSError):
            pass
        finally:
            if task is not None:
                self._tcp_tasks.discard(task)
            self._tcp_writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    # --- dispatch ------------------------------------------------------------------------------------------------

    async def _on_message(self, data: bytes, reply: Any, src: tuple[str, int], stream: bool) -> None:
        if not data.strip(b"\r\n"):
            return  # keep-alive
        try:
            msg = parse_sip(data, require_content_length=stream)
        except SipParseError as exc:
            self.malformed_messages += 1
            logger.warning("sip: dropped malformed message from %s: %s", src[0], exc)
            return
        if not msg.is_request:
            return  # we never send requests, so responses are strays
        try:
            await self._on_request(msg, reply, src)
        except Exception:
            logger.exception("sip: internal error handling %s", msg.method)
            with contextlib.suppress(Exception):
                reply(build_response(msg, 500, source=src).to_bytes())

    async def _on_request(self, req: SipMessage, reply: Any, src: tuple[str, int]) -> None:
        method = req.method
        if method == "INVITE":
            await self._on_invite(req, reply, src)
        elif method == "ACK":
            return
        elif method == "BYE":
            call = self._calls.get(req.call_id)
            if call is None or call.ended:
                reply(build_response(req, 481, source=src).to_bytes())
                return
            reply(build_response(req, 200, source=src).to_bytes())
            await self._end_call(call, "hangup")
        elif method == "CANCEL":
            call = self._calls.get(req.call_id)
            # We answer INVITEs at once, so a CANCEL always arrives after the final response: no effect (§9.2).
            reply(build_response(req, 200 if call else 481, source=src).to_bytes())
        elif method == "OPTIONS":
            reply(
                build_response(
                    req,
                    200,
                    source=src,
                    headers=[
                        ("allow", ALLOW),
                        ("accept", f"application/sdp, multipart/mixed, {METADATA_CONTENT_TYPE}"),
                        ("supported", "siprec"),
                    ],
                ).to_bytes()
            )
        elif method == "INFO":
            await self._on_info(req, reply, src)
        elif method == "UPDATE":
            code = 200 if req.call_id in self._calls else 481
            reply(build_response(req, code, source=src).to_bytes())
        else:
            reply(build_response(req, 501, source=src, headers=[("allow", ALLOW)]).to_bytes())

    async def _on_info(self, req: SipMessage, reply: Any, src: tuple[str, int]) -> None:
        call = self._calls.get(req.call_id)
        if call is None or call.session is None:
            reply(build_response(req, 481, source=src).to_bytes())
            return
        reply(build_response(req, 200, source=src).to_bytes())
        if req.content_type == "application/dtmf-relay":
            text = req.body.decode("utf-8", "replace")
            signal = re.search(r"(?im)^signal\s*=\s*([0-9A-D*#])", text)
            duration = re.search(r"(?im)^duration\s*=\s*(\d+)", text)
            if signal:
                await call.session.record_event(
                    "dtmf",
                    {
                        "digit": signal.group(1),
                        "duration_ms": float(duration.group(1)) if duration else None,
                        "channel": None,
                        "at_s": None,
                    },
                )

    # --- INVITE ----------------------------------------------------------------------------------------------------

    async def _on_invite(self, req: SipMessage, reply: Any, src: tuple[str, int]) -> None:
        received_at = time.monotonic()
        cseq, _ = req.cseq
        call = self._calls.get(req.call_id)
        if call is not None and not call.ended:
            if cseq == call.invite_cseq:
                if call.last_invite_response:
                    reply(call.last_invite_response)  # retransmission: same answer
                return
            if tag_of(req.header("to")) == call.to_tag:
                await self._on_reinvite(call, req, reply, src, cseq)
                return
            reply(build_response(req, 400, reason="Call-ID In Use", source=src).to_bytes())
            return
        requires = [r.lower() for r in req.header_values("require")]
        unsupported = [r for r in requires if r != "siprec"]
        if unsupported:
            reply(
                build_response(
                    req, 420, source=src, headers=[("unsupported", ", ".join(unsupported))]
                ).to_bytes()
            )
            return
        try:
            sdp, metadata = self._parse_body(req)
        except _Reject as rej:
            reply(build_response(req, rej.code, reason=rej.reason, source=src).to_bytes())
            return
        formats = [
            m.stream_format() if m.media == "audio" and m.port and m.direction != "recvonly" else None
            for m in sdp.media
        ]
        if not any(formats):
            reply(build_response(req, 488, reason="No Supported Audio", source=src).to_bytes())
            return
        to_tag = secrets.token_hex(6)
        call = _Call(call_id=req.call_id, to_tag=to_tag, invite_cseq=cseq)
        self._calls[req.call_id] = call
        reply(build_response(req, 100, source=src).to_bytes())
        siprec = "siprec" in requires or metadata is not None
        names, stream_channel, participants = self._channels(sdp, formats, metadata, siprec)
        session_meta = self._session_metadata(req, metadata, participants, siprec)
        try:
            call.session = await self._manager.open_session(
                SessionConfig(
                    source="siprec" if siprec else "sip",
                    language=self.config.language,
                    sample_rate_hz=max(
                        (s.sample_rate_hz for f in formats if f for s in f.payload_types.values()),
                        default=8000,
                    ),
                    channel_names=names,
                    metadata=session_meta,
                )
            )
        except CapacityExceeded:
            self.calls_refused += 1
            call.ended = True
            self._calls.pop(req.call_id, None)
            reply(
                build_response(req, 503, to_tag=to_tag, source=src, headers=[("retry-after", "5")]).to_bytes()
            )
            return
        try:
            ports = await self._open_legs(call, sdp, formats, stream_channel)
        except OSError:
            self.calls_refused += 1
            logger.warning("sip: no free RTP ports for %d streams", len(stream_channel))
            await self._end_call(call, "no_media_ports")
            reply(build_response(req, 503, to_tag=to_tag, reason="No Media Ports", source=src).to_bytes())
            return
        answer = build_answer(sdp, self._ip, ports, formats, call.sdp_version)
        resp = build_response(
            req, 200, to_tag=to_tag, source=src, headers=self._answer_headers(), body=answer.encode()
        )
        call.last_invite_response = resp.to_bytes()
        reply(call.last_invite_response)
        call.answer_delay_s = round(time.monotonic() - received_at, 4)
        self.calls_total += 1
        call.watchdog = asyncio.ensure_future(self._watch_media(call))

    async def _on_reinvite(
        self, call: _Call, req: SipMessage, reply: Any, src: tuple[str, int], cseq: int
    ) -> None:
        try:
            sdp, metadata = self._parse_body(req)
        except _Reject as rej:
            reply(build_response(req, rej.code, reason=rej.reason, source=src).to_bytes())
            return
        call.invite_cseq = cseq
        call.sdp_version += 1
        ports: list[int | None] = []
        formats: list[StreamFormat | None] = []
        for i, m in enumerate(sdp.media):
            leg = call.legs[i] if i < len(call.legs) else None
            fmt = m.stream_format() if m.media == "audio" and m.port else None
            if leg is None or fmt is None:
                ports.append(None)
                formats.append(None)
                continue
            leg.source = None  # a re-INVITE may move the sender: latch onto the new source
            leg.receiver.update_format(
                StreamFormat(
                    fmt.payload_types,
                    fmt.dtmf_payload_type,
                    fmt.dtmf_clock_hz,
                    self.config.jitter_depth_packets,
                )
            )
            ports.append(leg.port)
            formats.append(fmt)
        if call.session is not None and metadata is not None:
            _, _, participants = self._channels(sdp, formats, metadata, True)
            call.session.update_metadata({"participants": participants})
        answer = build_answer(sdp, self._ip, ports, formats, call.sdp_version)
        resp = build_response(
            req, 200, to_tag=call.to_tag, source=src, headers=self._answer_headers(), body=answer.encode()
        )
        call.last_invite_response = resp.to_bytes()
        reply(call.last_invite_response)

    def _answer_headers(self) -> list[tuple[str, str]]:
        return [
            ("contact", f"<sip:harken@{self._ip}:{self.port}>;+sip.srs"),
            ("allow", ALLOW),
            ("supported", "siprec"),
            ("content-type", "application/sdp"),
        ]

    def _parse_body(self, req: SipMessage) -> tuple[SessionDescription, RecordingMetadata | None]:
        ctype = req.content_type
        sdp_bytes: bytes | None = None
        metadata: RecordingMetadata | None = None
        try:
            if ctype == "multipart/mixed":
                for part_type, content in split_multipart(req.body, req.header("content-type")):
                    if part_type == "application/sdp":
                        sdp_bytes = content
                    elif part_type == METADATA_CONTENT_TYPE:
                        metadata = parse_metadata(content)
            elif ctype == "application/sdp":
                sdp_bytes = req.body
            elif not req.body:
                raise _Reject(488, "Offer Required")
            else:
                raise _Reject(415, "Unsupported Media Type")
            if sdp_bytes is None:
                raise _Reject(488, "No SDP")
            return parse_sdp(sdp_bytes.decode("utf-8")), metadata
        except (SdpError, UnicodeDecodeError):
            raise _Reject(400, "Bad SDP") from None
        except SiprecError:
            raise _Reject(400, "Bad Recording Metadata") from None

    def _channels(
        self,
        sdp: SessionDescription,
        formats: list[StreamFormat | None],
        metadata: RecordingMetadata | None,
        siprec: bool,
    ) -> tuple[tuple[str, ...], dict[int, int], list[dict[str, str]]]:
        """Session channel names, m-line index -> channel, and the participants for metadata."""
        accepted = [i for i, f in enumerate(formats) if f is not None]
        roles_by_line: dict[int, str] = {}
        participants: list[dict[str, str]] = []
        if metadata is not None:
            roles = metadata.roles(self._agent_re)
            participants = [
                {"role": roles[p.participant_id], "aor": p.aor, "name": p.name}
                | ({"call_id": p.call_id} if p.call_id else {})
                for p in metadata.participants.values()
            ]
            for i in accepted:
                label = sdp.media[i].label
                p = metadata.participant_for_label(label) if label is not None else None
                if p is not None:
                    roles_by_line[i] = roles[p.participant_id]
        if len(accepted) == 2 and len(roles_by_line) < 2:
            # No usable metadata for a two-stream recording: SRCs list the caller's stream first.
            roles_by_line = {accepted[0]: "customer", accepted[1]: "agent"}
        if len(accepted) == 1 and not roles_by_line:
            roles_by_line = {accepted[0]: self.config.plain_call_role}
        for i in accepted:
            roles_by_line.setdefault(i, f"stream_{sdp.media[i].label or i}")
        lines_roles = [roles_by_line[i] for i in accepted]
        if sorted(lines_roles) == sorted(AGENT_CUSTOMER):
            names: tuple[str, ...] = AGENT_CUSTOMER
            mapping = {i: AGENT_CUSTOMER.index(roles_by_line[i]) for i in accepted}
        else:
            seen: dict[str, int] = {}
            out_names: list[str] = []
            for role in lines_roles:
                seen[role] = seen.get(role, 0) + 1
                out_names.append(role if seen[role] == 1 else f"{role}_{seen[role]}")
            names = tuple(out_names[:8])
            mapping = {i: k for k, i in enumerate(accepted[:8])}
        return names, mapping, participants

    def _session_metadata(
        self,
        req: SipMessage,
        metadata: RecordingMetadata | None,
        participants: list[dict[str, str]],
        siprec: bool,
    ) -> dict[str, Any]:
        md: dict[str, Any] = {
            "tap": "siprec" if siprec else "sip",
            # for SIPREC, replaced below by the recorded call's own id when the metadata names it
            "call_id": req.call_id,
            "recording_call_id": req.call_id,  # the Call-ID of the SRC -> harken recording dialog
            "sip_from": uri_of(req.header("from")),
            "sip_to": uri_of(req.header("to")),
            "from": uri_of(req.header("from")),
            "to": uri_of(req.header("to")),
        }
        if participants:
            md["participants"] = participants
            by_role = {p["role"]: p for p in participants}
            if "customer" in by_role:
                md["from"] = by_role["customer"]["aor"]
            if "agent" in by_role:
                md["to"] = by_role["agent"]["aor"]
                md["agent_id"] = by_role["agent"]["aor"]
        if metadata is not None:
            md["recording_session_ids"] = metadata.session_ids
            md["metadata_namespace"] = metadata.namespace
            if metadata.sip_session_ids:
                md["sip_session_ids"] = metadata.sip_session_ids
            if metadata.original_call_id:
                md["call_id"] = metadata.original_call_id
        for header, key in (("x-tenant", "tenant"), ("x-agent-id", "agent_id")):
            if req.header(header):
                md[key] = req.header(header)[:200]
        return md

    async def _open_legs(
        self,
        call: _Call,
        sdp: SessionDescription,
        formats: list[StreamFormat | None],
        stream_channel: dict[int, int],
    ) -> list[int | None]:
        assert call.session is not None
        wanted = [i for i in range(len(sdp.media)) if i in stream_channel]
        loop = asyncio.get_running_loop()
        lo, hi = self.config.rtp_port_min, self.config.rtp_port_max
        span = 2 * len(wanted)
        candidates = list(range(lo + lo % 2, hi - span + 2, 2))
        random.shuffle(candidates)  # avoids reusing a just-freed port that may still get late packets
        for base in candidates[:200]:
            legs: list[_RtpLeg] = []
            try:
                for k, i in enumerate(wanted):
                    fmt = formats[i]
                    assert fmt is not None
                    fmt = StreamFormat(
                        fmt.payload_types,
                        fmt.dtmf_payload_type,
                        fmt.dtmf_clock_hz,
                        self.config.jitter_depth_packets,
                    )
                    rx = RtpStreamReceiver(call.session, stream_channel[i], fmt, StreamStats())
                    leg = _RtpLeg(rx, sdp.media[i].label)
                    legs.append(leg)
                    await loop.create_datagram_endpoint(
                        lambda leg=leg: leg, local_addr=(self.config.host, base + 2 * k)
                    )
                    leg.port = base + 2 * k
            except OSError:
                for leg in legs:
                    if leg.transport is not None:
                        leg.transport.close()
                continue
            call.legs = [None] * len(sdp.media)
            tap = call.session.config.source  # "siprec" or "sip"
            for k, i in enumerate(wanted):
                legs[k].task = asyncio.ensure_future(legs[k].consume())
                call.legs[i] = legs[k]
                self.tap_metrics.stream_started(tap, legs[k].receiver.stats, call.session.session_id)
            call.formats = formats
            return [call.legs[i].port if call.legs[i] is not None else None for i in range(len(sdp.media))]  # type: ignore[union-attr]
        raise OSError("no free RTP port block")

    async def _watch_media(self, call: _Call) -> None:
        timeout = self.config.media_timeout_s
        started = time.monotonic()
        while not call.ended:
            await asyncio.sleep(min(1.0, timeout / 4))
            last = max([started] + [leg.receiver.last_packet_at for leg in call.legs if leg is not None])
            if time.monotonic() - max(last, started) > timeout:
                logger.warning("sip: no media for %.0f s, ending call", timeout)
                await self._end_call(call, "media_timeout", from_watchdog=True)
                return

    async def _end_call(self, call: _Call, reason: str, from_watchdog: bool = False) -> None:
        if call.ended:
            return
        call.ended = True
        self._calls.pop(call.call_id, None)
        if call.watchdog is not None and not from_watchdog:
            call.watchdog.cancel()
        for leg in call.legs:
            if leg is not None:
                await leg.close()
                self.tap_metrics.stream_ended(leg.receiver.stats)
        if call.session is not None:
            session, call.session = call.session, None
            try:
                streams = [
                    leg.receiver.stats.to_dict() | {"label": leg.label, "port": leg.port}
                    for leg in call.legs
                    if leg
                ]
                with contextlib.suppress(SessionClosed):
                    await session.record_event("tap_stats", {"tap": session.config.source, "streams": streams,
                                                             "answer_delay_s": call.answer_delay_s})
            finally:
                await session.close(reason)


class SipRecordingServer(SipServer):
    """The constructor shape the app lifespan uses: keyword settings instead of a SipServerConfig."""

    def __init__(
        self, manager: SessionOpener, host: str = "127.0.0.1", port: int = 5060, **kwargs: Any
    ) -> None:
        super().__init__(manager, SipServerConfig(host=host, port=port, **kwargs))


class _Reject(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _guess_ip() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
