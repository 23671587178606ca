"""SDP (RFC 8866) offers as SIP recording clients send them, and our receive-only answers."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from pipelines.taps.codecs import STATIC_PAYLOAD_TYPES, CodecSpec, codec_from_rtpmap
from pipelines.taps.media import StreamFormat

MAX_MEDIA_LINES = 16


class SdpError(ValueError):
    """The SDP cannot be used (malformed, or no usable audio)."""


@dataclass(slots=True)
class MediaDescription:
    """One m= section."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str = ""
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def attr(self, name: str) -> str | None:
        return next((v for k, v in self.attributes if k == name), None)

    @property
    def label(self) -> str | None:
        return self.attr("label")

    @property
    def direction(self) -> str:
        for k, _ in self.attributes:
            if k in ("sendonly", "recvonly", "sendrecv", "inactive"):
                return k
        return "sendrecv"

    def rtpmap(self) -> dict[int, tuple[str, int, int]]:
        """payload type -> (encoding name, clock rate, channels)."""
        out: dict[int, tuple[str, int, int]] = {}
        for k, v in self.attributes:
            if k != "rtpmap":
                continue
            m = re.fullmatch(r"(\d+)\s+([\w.\-]+)/(\d+)(?:/(\d+))?", v.strip())
            if m:
                out[int(m.group(1))] = (m.group(2), int(m.group(3)), int(m.group(4) or 1))
        return out

    def stream_format(self) -> StreamFormat | None:
        """The payload types we can decode (and telephone-event), or None when nothing is usable."""
        rtpmap = self.rtpmap()
        audio: dict[int, CodecSpec] = {}
        dtmf_pt: int | None = None
        dtmf_clock = 8000
        for fmt in self.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            if pt in rtpmap:
                name, clock, channels = rtpmap[pt]
                if name.lower() == "telephone-event":
                    if dtmf_pt is None:
                        dtmf_pt, dtmf_clock = pt, clock
                    continue
                spec = codec_from_rtpmap(name, clock, channels)
            else:
                spec = STATIC_PAYLOAD_TYPES.get(pt)
            if spec is not None:
                audio[pt] = spec
        if not audio:
            return None
        return StreamFormat(payload_types=audio, dtmf_payload_type=dtmf_pt, dtmf_clock_hz=dtmf_clock)


@dataclass(slots=True)
class SessionDescription:
    origin: str = ""
    connection: str = ""
    media: list[MediaDescription] = field(default_factory=list)


def parse_sdp(text: str) -> SessionDescription:
    """Parse an SDP body; raises SdpError on anything we cannot trust."""
    sdp = SessionDescription()
    current: MediaDescription | None = None
    seen_version = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError("malformed SDP line")
        kind, value = line[0], line[2:]
        if kind == "v":
            seen_version = value == "0"
        elif kind == "o":
            sdp.origin = value
        elif kind == "c":
            parts = value.split()
            if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SdpError("bad c= line")
            address = parts[2].split("/")[0]
            if current is None:
                sdp.connection = address
            else:
                current.connection = address
        elif kind == "m":
            parts = value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise SdpError("bad m= line")
            port = int(parts[1].split("/")[0])
            if port > 65535:
                raise SdpError("bad port")
            current = MediaDescription(parts[0], port, parts[2], parts[3:])
            sdp.media.append(current)
            if len(sdp.media) > MAX_MEDIA_LINES:
                raise SdpError("too many media lines")
        elif kind == "a" and current is not None:
            name, _, val = value.partition(":")
            current.attributes.append((name.strip().lower(), val.strip()))
    if not seen_version:
        raise SdpError("missing v=0")
    if not sdp.media:
        raise SdpError("no media")
    for m in sdp.media:
        if not m.connection:
            m.connection = sdp.connection
        if m.port and not m.connection:
            raise SdpError("no connection address for a media line")
    return sdp


def build_answer(
    offer: SessionDescription,
    local_ip: str,
    ports: list[int | None],
    formats: list[StreamFormat | None],
    session_version: int = 1,
) -> str:
    """A receive-only answer: one m= line per offered line, port 0 where rejected, labels echoed."""
    sess_id = int(time.time())
    lines = [
        "v=0",
        f"o=harken {sess_id} {session_version} IN IP4 {local_ip}",
        "s=harken",
        f"c=IN IP4 {local_ip}",
        "t=0 0",
    ]
    for m, port, fmt in zip(offer.media, ports, formats, strict=True):
        if port is None or fmt is None:
            first = m.formats[0] if m.formats else "0"
            lines.append(f"m={m.media} 0 {m.proto} {first}")
            continue
        pts = list(fmt.payload_types)
        if fmt.dtmf_payload_type is not None:
            pts.append(fmt.dtmf_payload_type)
        lines.append(f"m=audio {port} {m.proto} {' '.join(str(p) for p in pts)}")
        for pt, spec in fmt.payload_types.items():
            lines.append(
                f"a=rtpmap:{pt} {spec.name}/{spec.rtp_clock_hz}" + ("/2" if spec.name == "opus" else "")
            )
        if fmt.dtmf_payload_type is not None:
            lines.append(f"a=rtpmap:{fmt.dtmf_payload_type} telephone-event/{fmt.dtmf_clock_hz}")
            lines.append(f"a=fmtp:{fmt.dtmf_payload_type} 0-15")
        if m.label is not None:
            lines.append(f"a=label:{m.label}")
        lines.append("a=recvonly" if m.direction != "inactive" else "a=inactive")
    return "\r\n".join(lines) + "\r\n"
