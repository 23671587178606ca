"""SIP messages (RFC 3261 §7): parsing (compact header names, folding), stream framing for TCP, responses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 64 * 1024  # SIPREC INVITEs with metadata are a few kB; anything huge is refused
_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}
_REQUEST_LINE = re.compile(r"^([A-Za-z]+) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 (\d{3}) ?(.*)$")
REASONS = {
    100: "Trying",
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    481: "Call/Transaction Does Not Exist",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    513: "Message Too Large",
}


class SipParseError(ValueError):
    """The bytes are not a SIP message we can read."""


@dataclass(slots=True)
class SipMessage:
    """A request (method, uri) or response (status_code, reason); header names are lower-case, long form."""

    method: str = ""
    uri: str = ""
    status_code: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def header(self, name: str, default: str = "") -> str:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), default)

    def header_values(self, name: str) -> list[str]:
        """All values of a header, split on commas where the header is a list (Via, Require, Supported)."""
        name = name.lower()
        out: list[str] = []
        for k, v in self.headers:
            if k == name:
                out += [p.strip() for p in _split_commas(v) if p.strip()]
        return out

    @property
    def call_id(self) -> str:
        return self.header("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        parts = self.header("cseq").split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SipParseError("bad CSeq")
        return int(parts[0]), parts[1].upper()

    @property
    def content_type(self) -> str:
        return self.header("content-type").split(";")[0].strip().lower()

    def to_bytes(self) -> bytes:
        start = (
            f"{self.method} {self.uri} SIP/2.0"
            if self.is_request
            else f"SIP/2.0 {self.status_code} {self.reason or REASONS.get(self.status_code, '')}"
        )
        lines = [start] + [f"{_canonical(k)}: {v}" for k, v in self.headers if k != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _split_commas(value: str) -> list[str]:
    out, cur, depth, quoted = [], [], 0, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        elif ch == "," and not quoted and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def _canonical(name: str) -> str:
    special = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate"}
    return special.get(name, "-".join(p.capitalize() for p in name.split("-")))


def parse_sip(data: bytes, require_content_length: bool = False) -> SipMessage:
    """Parse one complete SIP message (a UDP datagram, or one framed out of a TCP stream)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("message too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise SipParseError("no end of headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = re.split(r"\r?\n", text.lstrip("\r\n"))
    msg = SipMessage()
    m = _REQUEST_LINE.match(lines[0])
    if m:
        msg.method, msg.uri = m.group(1).upper(), m.group(2)
    else:
        s = _STATUS_LINE.match(lines[0])
        if not s:
            raise SipParseError("bad start line")
        msg.status_code, msg.reason = int(s.group(1)), s.group(2)
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":  # folded continuation of the previous header
            if not msg.headers:
                raise SipParseError("continuation before any header")
            k, v = msg.headers[-1]
            msg.headers[-1] = (k, v + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise SipParseError("bad header line")
        key = name.strip().lower()
        msg.headers.append((_COMPACT.get(key, key), value.strip()))
    length_raw = msg.header("content-length")
    if length_raw:
        if not length_raw.isdigit():
            raise SipParseError("bad Content-Length")
        length = int(length_raw)
        if length > len(body):
            raise SipParseError("body shorter than Content-Length")
        body = body[:length]
    elif require_content_length:
        raise SipParseError("Content-Length is required on stream transports")
    msg.body = body
    for needed in ("call-id", "cseq", "from", "to", "via"):
        if not msg.header(needed):
            raise SipParseError(f"missing {needed}")
    _ = msg.cseq  # raises SipParseError on a malformed CSeq
    return msg


def frame_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut complete messages out of a TCP byte stream (RFC 3261 §18.3: Content-Length frames the body)."""
    out: list[bytes] = []
    while True:
        buffer = buffer.lstrip(b"\r\n")  # CRLF keep-alives (RFC 5626) between messages
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_MESSAGE_BYTES:
                raise SipParseError("headers too large")
            return out, buffer
        m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$", buffer[:end])
        if not m:
            raise SipParseError("Content-Length is required on stream transports")
        total = end + 4 + int(m.group(1))
        if total > MAX_MESSAGE_BYTES:
            raise SipParseError("message too large")
        if len(buffer) < total:
            return out, buffer
        out.append(buffer[:total])
        buffer = buffer[total:]


def build_response(
    request: SipMessage,
    status_code: int,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    reason: str | None = None,
    source: tuple[str, int] | None = None,
) -> SipMessage:
    """A response that mirrors the request's Via (with received/rport filled), From, To (+tag), Call-ID, CSeq."""
    resp = SipMessage(status_code=status_code, reason=reason or REASONS.get(status_code, ""))
    for k, v in request.headers:
        if k == "via":
            resp.headers.append(("via", v))
    if source and resp.headers:
        first = resp.headers[0][1]
        first = re.sub(r";rport(?=;|$)", f";rport={source[1]}", first)
        if "received=" not in first:
            first += f";received={source[0]}"
        resp.headers[0] = ("via", first)
    to = request.header("to")
    if to_tag and ";tag=" not in to:
        to = f"{to};tag={to_tag}"
    resp.headers += [
        ("from", request.header("from")),
        ("to", to),
        ("call-id", request.call_id),
        ("cseq", request.header("cseq")),
    ]
    resp.headers += headers or []
    resp.body = body
    return resp


def tag_of(header_value: str) -> str:
    """The tag parameter of a From/To header ('' if none)."""
    m = re.search(r";\s*tag=([^;>\s]+)", header_value)
    return m.group(1) if m else ""


def uri_of(header_value: str) -> str:
    """The URI in a From/To/Contact header: `"Name" <sip:x@y>;tag=..` -> `sip:x@y`."""
    m = re.search(r"<([^>]+)>", header_value)
    if m:
        return m.group(1)
    return header_value.split(";")[0].strip()
