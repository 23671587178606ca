"""Genesys Cloud AudioHook (protocol version 2) tap.

Text frames are JSON messages `{version: "2", id, type, seq, ...}`: the client's carry `serverseq` and
`position` (ISO 8601 stream time, "PT12.34S"), ours carry `clientseq`. The client opens with `open` (offering
media formats); we answer `opened` with the one we take. Binary frames are then audio in that format: PCMU (or
L16) at 8 kHz with channels interleaved in the offered order, where `external` is the customer and `internal`
the agent. ping -> pong; paused/resumed and discarded mark gaps (we pad the timeline to `position` with silence
so channels stay aligned with Genesys' clock); update changes the language; close -> closed ends the session.
A broken protocol is answered with `disconnect` (reason "error") and the socket is closed.
The upgrade request's signature is checked by the route (see audiohook_auth) before this handler runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from pipelines.config import SUPPORTED_LANGUAGES, SessionConfig
from pipelines.taps.base import AGENT_CHANNEL, CUSTOMER_CHANNEL, TapProtocolError, pcm_bytes
from pipelines.taps.codecs import ulaw_decode
from pipelines.taps.wstap import WebSocketTap

PROTOCOL_VERSION = "2"
_RATE_HZ = 8000
_CHANNEL_ROLE = {"external": CUSTOMER_CHANNEL, "internal": AGENT_CHANNEL}
_CLIENT_TYPES = {"open", "close", "ping", "paused", "resumed", "discarded", "update", "error", "dtmf"}
_DURATION = re.compile(r"PT(\d+(?:\.\d+)?)S")


def parse_duration_s(value: Any) -> float:
    """ISO 8601 seconds-only duration ("PT1.5S") -> seconds."""
    m = _DURATION.fullmatch(str(value))
    if not m:
        raise TapProtocolError("bad duration", 1007)
    return float(m.group(1))


def format_duration(seconds: float) -> str:
    return f"PT{seconds:.3f}".rstrip("0").rstrip(".") + "S"


def choose_media(offers: Any) -> dict[str, Any] | None:
    """Pick the best offered format: stereo PCMU, then stereo L16, then any mono PCMU/L16, all 8 kHz."""
    if not isinstance(offers, list):
        return None
    ok = [
        m
        for m in offers
        if isinstance(m, dict)
        and m.get("type") == "audio"
        and m.get("format") in ("PCMU", "L16")
        and m.get("rate") == _RATE_HZ
        and isinstance(m.get("channels"), list)
        and 1 <= len(m["channels"]) <= 2
        and len(set(m["channels"])) == len(m["channels"])
        and all(c in _CHANNEL_ROLE for c in m["channels"])
    ]

    def score(m: dict[str, Any]) -> tuple[int, int]:
        return (len(m["channels"]), 1 if m["format"] == "PCMU" else 0)

    return max(ok, key=score) if ok else None


class AudioHookTap(WebSocketTap):
    """One AudioHook WebSocket = one session. `session_header_id` is the Audiohook-Session-Id header."""

    tap_name = "audiohook"

    def __init__(
        self,
        *args: Any,
        session_header_id: str = "",
        organization_id: str = "",
        language: str = "auto",
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.session_header_id = session_header_id
        self.organization_id = organization_id
        self.language = language
        self.server_seq = 0
        self.client_seq = 0
        self.audiohook_id = ""
        self.media: dict[str, Any] | None = None
        self.wire_to_session: list[int] = []
        self.samples_pushed = 0  # per channel: all channels advance together in AudioHook
        self.paused = False
        self._closing = False

    # --- outgoing ----------------------------------------------------------------------------------------------

    async def send(self, msg_type: str, parameters: dict[str, Any]) -> None:
        self.server_seq += 1
        msg = {
            "version": PROTOCOL_VERSION,
            "type": msg_type,
            "seq": self.server_seq,
            "clientseq": self.client_seq,
            "id": self.audiohook_id or self.session_header_id,
            "parameters": parameters,
        }
        await self.transport.send_text(json.dumps(msg, separators=(",", ":")))

    async def on_protocol_error(self, exc: TapProtocolError) -> None:
        if exc.close_code == 1013:
            reason, info = "error", "server at capacity"
        else:
            reason, info = "error", str(exc)[:100]
        try:
            await self.send("disconnect", {"reason": reason, "info": info})
        except Exception:  # noqa: BLE001 - peer already gone
            pass

    # --- incoming ----------------------------------------------------------------------------------------------

    async def on_text(self, text: str) -> None:
        msg = self.parse_json(text)
        if msg.get("version") != PROTOCOL_VERSION:
            raise TapProtocolError("unsupported protocol version")
        msg_type = msg.get("type")
        if msg_type not in _CLIENT_TYPES:
            raise TapProtocolError(f"unsupported message type {str(msg_type)[:30]!r}")
        seq = msg.get("seq")
        if not isinstance(seq, int) or seq != self.client_seq + 1:
            raise TapProtocolError("client seq out of order")
        self.client_seq = seq
        serverseq = msg.get("serverseq")
        if not isinstance(serverseq, int) or serverseq > self.server_seq:
            raise TapProtocolError("serverseq ahead of the server")
        msg_id = str(msg.get("id", ""))
        if msg_type == "open":
            await self._on_open(msg, msg_id)
            return
        if self.session is None:
            raise TapProtocolError(f"{msg_type} before open")
        if msg_id != self.audiohook_id:
            raise TapProtocolError("message id does not match the session")
        params = msg.get("parameters") or {}
        if not isinstance(params, dict):
            raise TapProtocolError("parameters is not an object")
        if "position" in msg and msg_type not in ("close",):
            await self._align_to(parse_duration_s(msg["position"]))
        if msg_type == "ping":
            await self.send("pong", {})
        elif msg_type == "close":
            await self.send("closed", {})
            reason = str(params.get("reason", "end"))
            self.end("hangup" if reason == "end" else f"closed_{reason[:20]}")
        elif msg_type in ("paused", "resumed"):
            self.paused = msg_type == "paused"
            await self.session.record_event(f"tap_{msg_type}", {"tap": "audiohook"})
        elif msg_type == "discarded":
            discarded_s = parse_duration_s(params.get("discarded", "PT0S"))
            for ch in self.wire_to_session:
                self.channel_stats(ch).packets_lost += 1
                self.channel_stats(ch).concealed_s += discarded_s
            await self.session.record_event("tap_discarded", {"tap": "audiohook", "discarded_s": discarded_s})
        elif msg_type == "update":
            lang = params.get("language")
            if isinstance(lang, str):
                self.session.update_metadata({"language": lang})
        elif msg_type == "error":
            await self.session.record_event(
                "tap_error",
                {
                    "tap": "audiohook",
                    "code": params.get("code"),
                    "message": str(params.get("message", ""))[:200],
                },
            )
        elif msg_type == "dtmf":
            digit = str(params.get("digit", ""))[:1]
            ch = CUSTOMER_CHANNEL if CUSTOMER_CHANNEL in self.wire_to_session else self.wire_to_session[0]
            self.channel_stats(ch).dtmf_events += 1
            await self.session.record_event(
                "dtmf",
                {
                    "digit": digit,
                    "duration_ms": None,
                    "channel": ch,
                    "at_s": round(self.samples_pushed / _RATE_HZ, 3),
                },
            )

    async def _on_open(self, msg: dict[str, Any], msg_id: str) -> None:
        if self.session is not None:
            raise TapProtocolError("second open")
        if self.session_header_id and msg_id != self.session_header_id:
            raise TapProtocolError("open id does not match Audiohook-Session-Id")
        self.audiohook_id = msg_id
        params = msg.get("parameters")
        if not isinstance(params, dict):
            raise TapProtocolError("open without parameters")
        org = str(params.get("organizationId", ""))
        if self.organization_id and org != self.organization_id:
            raise TapProtocolError("organizationId does not match the signed header")
        media = choose_media(params.get("media"))
        if media is None:
            raise TapProtocolError("no supported media format offered (PCMU or L16, 8000 Hz)", 1003)
        self.media = media
        self.wire_to_session = [_CHANNEL_ROLE[c] for c in media["channels"]]
        participant = params.get("participant") if isinstance(params.get("participant"), dict) else {}
        lang = str(params.get("language") or self.language)
        base_lang = lang.split("-")[0].lower()
        if len(self.wire_to_session) == 2:
            names: tuple[str, ...] = ("agent", "customer")
        else:
            names = ("customer",) if media["channels"][0] == "external" else ("agent",)
            self.wire_to_session = [0]
        custom = params.get("customConfig") if isinstance(params.get("customConfig"), dict) else {}
        metadata: dict[str, Any] = {
            "tap": "audiohook",
            "call_id": str(params.get("conversationId", "")),
            "audiohook_session_id": msg_id,
            "tenant": org,
            "from": str(participant.get("ani", "")),
            "to": str(participant.get("dnis", "")),
            "participant": {k: str(v)[:200] for k, v in participant.items()},
            "language": lang,
            "customConfig": custom,
        }
        if isinstance(custom, dict) and "agent_id" in custom:
            metadata["agent_id"] = str(custom["agent_id"])
        await self.open_session(
            SessionConfig(
                source="audiohook",
                language=base_lang if base_lang in SUPPORTED_LANGUAGES else "auto",
                sample_rate_hz=_RATE_HZ,
                channel_names=names,
                metadata=metadata,
            )
        )
        for ch in self.wire_to_session:
            self.channel_stats(ch)
        await self.send("opened", {"media": [media], "startPaused": False})

    async def on_binary(self, data: bytes) -> None:
        if self.session is None or self.media is None:
            raise TapProtocolError("audio before open")
        n_ch = len(self.wire_to_session)
        sample_bytes = 1 if self.media["format"] == "PCMU" else 2
        if len(data) % (n_ch * sample_bytes):
            raise TapProtocolError("audio frame is not a whole number of samples", 1007)
        if self.media["format"] == "PCMU":
            pcm = ulaw_decode(data)
        else:
            pcm = np.frombuffer(data, dtype="<i2")
        for wire, ch in enumerate(self.wire_to_session):
            chan = pcm[wire::n_ch]
            st = self.channel_stats(ch)
            st.packets_received += 1
            st.bytes_received += chan.size * sample_bytes
            st.audio_s += chan.size / _RATE_HZ
            await self.session.push_pcm(ch, pcm_bytes(chan), _RATE_HZ)
        self.samples_pushed += pcm.size // n_ch

    async def _align_to(self, position_s: float) -> None:
        """Pad every channel with silence up to the client's stream position (after pauses or discards)."""
        assert self.session is not None
        gap = int(round(position_s * _RATE_HZ)) - self.samples_pushed
        if gap < _RATE_HZ // 50:
            return
        gap = min(gap, 60 * _RATE_HZ)
        silence = b"\x00\x00" * gap
        for ch in self.wire_to_session:
            self.channel_stats(ch).audio_s += gap / _RATE_HZ
            await self.session.push_pcm(ch, silence, _RATE_HZ)
        self.samples_pushed += gap
