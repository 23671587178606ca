"""Verification of Genesys AudioHook's signed WebSocket upgrade requests (HTTP Message Signatures).

Genesys signs the upgrade with HMAC-SHA256 over a signature base built from `@request-target`, `@authority`,
`audiohook-organization-id`, `audiohook-session-id`, `audiohook-correlation-id` and `x-api-key`
(draft-ietf-httpbis-message-signatures, which became RFC 9421), keyed by the base64-decoded client secret, with
`keyid` = the API key. `Signature-Input` and `Signature` are RFC 8941 structured-field dictionaries; only the
subset those headers use is parsed here (inner lists of strings with parameters, byte sequences).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

REQUIRED_COMPONENTS = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
MAX_CLOCK_SKEW_S = 3
MAX_SIGNATURE_AGE_S = 10
MIN_NONCE_LENGTH = 22


class SignatureError(ValueError):
    """Why a request was refused (kept short: it is logged, never sent to the peer in detail)."""


@dataclass(frozen=True, slots=True)
class SignatureInput:
    label: str
    components: tuple[str, ...]
    params: tuple[tuple[str, str | int], ...] = field(default_factory=tuple)

    def param(self, key: str) -> str | int | None:
        return next((v for k, v in self.params if k == key), None)

    def serialize(self) -> str:
        """The `@signature-params` value: the inner list re-encoded canonically."""
        inner = " ".join(f'"{c}"' for c in self.components)
        return f"({inner})" + "".join(f";{k}={_sf_value(v)}" for k, v in self.params)


def _sf_value(v: str | int) -> str:
    return str(v) if isinstance(v, int) else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


_KEY = r"[a-z*][a-z0-9_\-.*]*"
_STRING = r'"(?:[^"\\]|\\.)*"'
_PARAM = rf";\s*({_KEY})(?:=({_STRING}|-?\d{{1,15}}|[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*))?"


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def _split_members(value: str) -> list[str]:
    """Split a dictionary field on top-level commas (not inside strings or parentheses)."""
    members, depth, quoted, cur = [], 0, False, []
    i = 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\" and i + 1 < len(value):
                cur.append(value[i : i + 2])
                i += 2
                continue
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            members.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if quoted or depth:
        raise SignatureError("unbalanced structured field")
    members.append("".join(cur).strip())
    return [m for m in members if m]


def parse_signature_input(value: str) -> dict[str, SignatureInput]:
    """Parse `Signature-Input`: label=("comp" ...);param=value..."""
    out: dict[str, SignatureInput] = {}
    for member in _split_members(value):
        m = re.fullmatch(rf"({_KEY})=\(((?:\s*{_STRING})*)\s*\)((?:{_PARAM})*)", member)
        if not m:
            raise SignatureError("malformed Signature-Input")
        components = tuple(_unquote(c) for c in re.findall(_STRING, m.group(2)))
        params: list[tuple[str, str | int]] = []
        for key, raw in re.findall(_PARAM, m.group(3)):
            if raw.startswith('"'):
                params.append((key, _unquote(raw)))
            elif re.fullmatch(r"-?\d+", raw):
                params.append((key, int(raw)))
            else:
                raise SignatureError(f"unsupported parameter value for {key}")
        out[m.group(1)] = SignatureInput(m.group(1), components, tuple(params))
    return out


def parse_signature(value: str) -> dict[str, bytes]:
    """Parse `Signature`: label=:base64:"""
    out: dict[str, bytes] = {}
    for member in _split_members(value):
        m = re.fullmatch(rf"({_KEY})=:([A-Za-z0-9+/=]*):", member)
        if not m:
            raise SignatureError("malformed Signature")
        try:
            out[m.group(1)] = base64.b64decode(m.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("bad base64 in Signature") from None
    return out


def signature_base(sig: SignatureInput, headers: Mapping[str, str], request_target: str) -> str:
    """The string that is signed (one `"name": value` line per component, then @signature-params)."""
    lines = []
    for comp in sig.components:
        if comp == "@request-target":
            value = request_target
        elif comp == "@authority":
            value = headers.get("host", "")
        elif comp.startswith("@"):
            raise SignatureError(f"unsupported derived component {comp}")
        else:
            value = headers.get(comp, "")
            if not value:
                raise SignatureError(f"signed header {comp} missing")
        lines.append(f'"{comp}": {value.strip()}')
    lines.append(f'"@signature-params": {sig.serialize()}')
    return "\n".join(lines)


def sign(
    headers: Mapping[str, str],
    request_target: str,
    api_key: str,
    client_secret_b64: str,
    nonce: str,
    created: int,
    expires: int,
    label: str = "sig1",
) -> tuple[str, str]:
    """Build `Signature-Input` and `Signature` values the way Genesys does (for tests and load tools)."""
    sig = SignatureInput(
        label,
        REQUIRED_COMPONENTS,
        (
            ("keyid", api_key),
            ("nonce", nonce),
            ("alg", "hmac-sha256"),
            ("created", created),
            ("expires", expires),
        ),
    )
    base = signature_base(sig, {k.lower(): v for k, v in headers.items()}, request_target)
    mac = hmac.new(base64.b64decode(client_secret_b64), base.encode(), hashlib.sha256).digest()
    return f"{label}={sig.serialize()}", f"{label}=:{base64.b64encode(mac).decode()}:"


def verify_request(
    headers: Mapping[str, str],
    request_target: str,
    api_key: str,
    client_secret_b64: str | None,
    now_s: float | None = None,
) -> None:
    """Raise SignatureError unless the request carries the right API key and (with a secret) a valid signature.

    `headers` must have lower-case names. With no client secret configured, an unsigned request with the right
    API key is accepted (Genesys allows integrations without a secret); a signed one is still checked.
    """
    h = {k.lower(): v for k, v in headers.items()}
    given_key = h.get("x-api-key", "")
    if not hmac.compare_digest(given_key.encode(), api_key.encode()):
        raise SignatureError("wrong or missing X-API-KEY")
    if "signature-input" not in h and "signature" not in h:
        if client_secret_b64:
            raise SignatureError("request is not signed")
        return
    inputs = parse_signature_input(h.get("signature-input", ""))
    sigs = parse_signature(h.get("signature", ""))
    if not inputs or not sigs:
        raise SignatureError("Signature-Input and Signature must both be present")
    label = next(iter(inputs))
    sig = inputs[label]
    if label not in sigs:
        raise SignatureError("no signature for the Signature-Input label")
    missing = set(REQUIRED_COMPONENTS) - set(sig.components)
    if missing:
        raise SignatureError("signature does not cover the required components")
    if sig.param("keyid") != api_key:
        raise SignatureError("keyid does not match X-API-KEY")
    alg = sig.param("alg")
    if alg not in (None, "hmac-sha256"):
        raise SignatureError("unsupported signature algorithm")
    nonce = sig.param("nonce")
    if not isinstance(nonce, str) or len(nonce) < MIN_NONCE_LENGTH:
        raise SignatureError("missing or short nonce")
    now = time.time() if now_s is None else now_s
    created, expires = sig.param("created"), sig.param("expires")
    if not isinstance(created, int) or created > now + MAX_CLOCK_SKEW_S:
        raise SignatureError("created missing or in the future")
    if created + MAX_SIGNATURE_AGE_S < now - MAX_CLOCK_SKEW_S:
        raise SignatureError("signature too old")
    if isinstance(expires, int) and expires < now - MAX_CLOCK_SKEW_S:
        raise SignatureError("signature expired")
    try:
        key = base64.b64decode(client_secret_b64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("configured client secret is not base64") from None
    expected = hmac.new(key, signature_base(sig, h, request_target).encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, sigs[label]):
        raise SignatureError("signature mismatch")
