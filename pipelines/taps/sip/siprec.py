"""SIPREC (RFC 7866) bodies: multipart/mixed splitting and recording metadata (RFC 7865).

Both the RFC namespace `urn:ietf:params:xml:ns:recording:1` and the pre-RFC draft form
(`urn:ietf:params:xml:ns:recording`, `id=` attributes, `<aor>` and `<send>` directly under `<participant>`),
which some SBCs still send, are read. Roles: a participant whose AOR matches `agent_pattern` is the agent;
otherwise the first participant (the party that started the recorded call, usually the caller) is the customer
and the second the agent.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NAMESPACES = ("urn:ietf:params:xml:ns:recording:1", "urn:ietf:params:xml:ns:recording")
METADATA_CONTENT_TYPE = "application/rs-metadata+xml"
MAX_METADATA_BYTES = 32 * 1024


class SiprecError(ValueError):
    """Malformed multipart body or recording metadata."""


def split_multipart(body: bytes, content_type_header: str) -> list[tuple[str, bytes]]:
    """Split a multipart/mixed body into (content type, bytes) parts (RFC 2046 §5.1)."""
    m = re.search(r'boundary\s*=\s*("([^"]+)"|[^;\s]+)', content_type_header, re.I)
    if not m:
        raise SiprecError("multipart without a boundary")
    boundary = (m.group(2) or m.group(1)).encode()
    delimiter = b"--" + boundary
    if delimiter not in body:
        raise SiprecError("boundary not found in body")
    parts: list[tuple[str, bytes]] = []
    chunks = body.split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # close delimiter
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        if not sep:
            raise SiprecError("multipart part without headers")
        ctype = "text/plain"
        for line in re.split(rb"\r?\n", head):
            name, _, value = line.decode("utf-8", "replace").partition(":")
            if name.strip().lower() == "content-type":
                ctype = value.split(";")[0].strip().lower()
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        parts.append((ctype, content))
    if not parts:
        raise SiprecError("empty multipart body")
    return parts


@dataclass(frozen=True, slots=True)
class Participant:
    participant_id: str
    aor: str = ""
    name: str = ""
    call_id: str = ""  # the participant's own call leg id, where the SRC gives one (vendor extension data)


@dataclass(slots=True)
class RecordingMetadata:
    """Participants, streams (by label) and who sends which stream."""

    session_ids: list[str] = field(default_factory=list)
    # <sipSessionID> of each recorded session (RFC 7865 §6.7.1): the recorded call's own identifier, which SRCs
    # fill with the call's Session-ID (RFC 7989) or its Call-ID; what a PBX's records know the call by
    sip_session_ids: list[str] = field(default_factory=list)
    participants: dict[str, Participant] = field(default_factory=dict)
    stream_labels: dict[str, str] = field(default_factory=dict)  # stream id -> SDP label
    sender: dict[str, str] = field(default_factory=dict)  # stream id -> participant id
    namespace: str = ""

    @property
    def original_call_id(self) -> str:
        """The recorded call's identifier: the first <sipSessionID> without its `;remote=` part, else ''."""
        for sid in self.sip_session_ids:
            local = sid.split(";", 1)[0].strip()
            if local:
                return local
        return ""

    def participant_for_label(self, label: str) -> Participant | None:
        for stream_id, lab in self.stream_labels.items():
            if lab == label and stream_id in self.sender:
                return self.participants.get(self.sender[stream_id])
        return None

    def roles(self, agent_pattern: re.Pattern[str] | None = None) -> dict[str, str]:
        """participant id -> "agent" | "customer" | "participant_<n>"."""
        ids = list(self.participants)
        roles: dict[str, str] = {}
        if agent_pattern is not None:
            for pid in ids:
                if agent_pattern.search(self.participants[pid].aor):
                    roles[pid] = "agent"
        rest = [pid for pid in ids if pid not in roles]
        defaults = ["customer", "agent"] if "agent" not in roles.values() else ["customer"]
        for i, pid in enumerate(rest):
            roles[pid] = defaults[i] if i < len(defaults) else f"participant_{i + 1}"
        return roles


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ident(el: ET.Element, *names: str) -> str:
    for n in names:
        v = el.get(n)
        if v:
            return v
    return ""


# Element names vendors use for a participant's call leg id inside <extensiondata> or as a direct child
_CALL_ID_TAGS = frozenset({"callid", "call-id", "call_id", "sipcallid"})


def _extension_call_id(participant: ET.Element) -> str:
    for el in participant.iter():
        if el is not participant and _local(el.tag).lower() in _CALL_ID_TAGS and el.text and el.text.strip():
            return el.text.strip()
    return ""


def parse_metadata(xml_bytes: bytes) -> RecordingMetadata:
    """Parse rs-metadata XML (either namespace). DTDs are refused (no entity expansion from peers)."""
    if len(xml_bytes) > MAX_METADATA_BYTES:
        raise SiprecError("metadata too large")
    if b"<!DOCTYPE" in xml_bytes.upper() or b"<!ENTITY" in xml_bytes.upper():
        raise SiprecError("DTDs are not allowed in metadata")
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as exc:
        raise SiprecError("metadata is not well-formed XML") from exc
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if _local(root.tag) != "recording" or ns not in NAMESPACES:
        raise SiprecError("not a recording metadata document")
    md = RecordingMetadata(namespace=ns)
    for el in root:
        kind = _local(el.tag)
        if kind == "session":
            md.session_ids.append(_ident(el, "session_id", "id"))
            for child in el:
                if _local(child.tag) == "sipSessionID" and child.text and child.text.strip():
                    md.sip_session_ids.append(" ".join(child.text.split())[:256])
        elif kind == "participant":
            pid = _ident(el, "participant_id", "id")
            if not pid:
                raise SiprecError("participant without an id")
            aor, name = "", ""
            call_id = _extension_call_id(el)
            for child in el:
                ck = _local(child.tag)
                if ck == "nameID":
                    aor = child.get("aor", "")
                    for n in child:
                        if _local(n.tag) == "name" and n.text:
                            name = n.text.strip()
                elif ck == "aor" and child.text:  # pre-RFC
                    aor = child.text.strip()
                elif ck == "name" and child.text:
                    name = child.text.strip()
                elif ck == "send" and child.text:  # pre-RFC: streams listed on the participant
                    md.sender[child.text.strip()] = pid
            md.participants[pid] = Participant(pid, aor[:256], name[:256], call_id[:256])
        elif kind == "stream":
            sid = _ident(el, "stream_id", "id")
            for child in el:
                if _local(child.tag) == "label" and child.text:
                    md.stream_labels[sid] = child.text.strip()
        elif kind == "participantstreamassoc":
            pid = _ident(el, "participant_id")
            for child in el:
                if _local(child.tag) == "send" and child.text:
                    md.sender[child.text.strip()] = pid
    return md
