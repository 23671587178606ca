"""Audio codecs the taps receive: G.711 (PCMU/PCMA) in numpy, G.722 and Opus through PyAV.

Every decoder turns one RTP payload (or WebSocket frame) into int16 mono PCM at the codec's audio rate and can
conceal a lost frame. Encoders exist too: tests and `harken eval taps` use them to send real recordings through
the taps the way a peer would.

G.711 follows ITU-T G.711 exactly (the same tables as Python's audioop, which rendered the shared call set), so
a PCMU round trip of already-μ-law audio is bit exact. G.722's SDP clock is 8000 although it carries 16 kHz audio
(RFC 3551 §4.5.2); Opus always runs a 48 kHz RTP clock (RFC 7587).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# The number of frames of concealment that repeat the last good audio (faded) before it turns to silence:
# longer repetition of a 20 ms frame sounds buzzy and can make an ASR hallucinate words.
_MAX_REPEAT_FRAMES = 2


class CodecError(ValueError):
    """A payload could not be decoded (corrupt, truncated or the wrong codec)."""


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """A negotiated audio format: `name` as in SDP (PCMU, PCMA, G722, opus, L16), its RTP clock and audio rate."""

    name: str
    rtp_clock_hz: int
    sample_rate_hz: int
    channels: int = 1

    @property
    def rtp_ticks_per_sample(self) -> float:
        """RTP timestamp units per decoded audio sample (0.5 for G.722, 1 for G.711, 1 for Opus at 48 kHz)."""
        return self.rtp_clock_hz / float(self.sample_rate_hz)


PCMU = CodecSpec("PCMU", 8000, 8000)
PCMA = CodecSpec("PCMA", 8000, 8000)
G722 = CodecSpec("G722", 8000, 16000)
OPUS = CodecSpec("opus", 48000, 48000)

# RFC 3551 static payload types we accept without an rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, CodecSpec] = {0: PCMU, 8: PCMA, 9: G722}


def codec_from_rtpmap(encoding_name: str, clock_rate_hz: int, channels: int = 1) -> CodecSpec | None:
    """The codec an SDP `a=rtpmap` names, or None when we cannot decode it."""
    name = encoding_name.strip().upper()
    if name == "PCMU" and clock_rate_hz == 8000:
        return PCMU
    if name == "PCMA" and clock_rate_hz == 8000:
        return PCMA
    if name == "G722" and clock_rate_hz == 8000:
        return G722
    if name == "OPUS" and clock_rate_hz == 48000:
        return OPUS
    if name == "L16" and clock_rate_hz in (8000, 16000, 32000, 44100, 48000) and channels == 1:
        return CodecSpec("L16", clock_rate_hz, clock_rate_hz)
    return None


# --- G.711 -----------------------------------------------------------------------------------------------------


def _ulaw_to_linear(code: np.ndarray) -> np.ndarray:
    u = ~code.astype(np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t = t << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_to_linear(code: np.ndarray) -> np.ndarray:
    a = code.astype(np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _linear_to_ulaw(pcm: np.ndarray) -> np.ndarray:
    # ITU G.711 / audioop: 14-bit magnitude, bias 0x21 (33), clipped at 8159.
    v = pcm.astype(np.int32) >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(v), 8159) + 0x21
    seg_end_14 = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
    seg = np.searchsorted(seg_end_14, mag, side="left")
    segc = np.minimum(seg, 7)
    out = np.where(seg >= 8, 0x7F ^ mask, ((segc << 4) | ((mag >> (segc + 1)) & 0x0F)) ^ mask)
    return out.astype(np.uint8)


def _linear_to_alaw(pcm: np.ndarray) -> np.ndarray:
    # ITU G.711 / audioop: 13-bit magnitude.
    v = pcm.astype(np.int32) >> 3
    mask = np.where(v >= 0, 0xD5, 0x55)
    mag = np.where(v >= 0, v, -v - 1)
    seg_end_13 = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
    seg = np.searchsorted(seg_end_13, mag, side="left")
    segc = np.minimum(seg, 7)
    aval = np.where(segc < 2, (segc << 4) | ((mag >> 1) & 0x0F), (segc << 4) | ((mag >> segc) & 0x0F))
    out = np.where(seg >= 8, 0x7F ^ mask, aval ^ mask)
    return out.astype(np.uint8)


@functools.cache
def _tables() -> dict[str, np.ndarray]:
    """Decode (256) and encode (65536, indexed by uint16 view) tables, built once on first use."""
    codes = np.arange(256, dtype=np.uint8)
    # Indexed by the uint16 view of an int16 sample, so encoding is one table lookup.
    every = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16)
    return {
        "ulaw_dec": _ulaw_to_linear(codes),
        "alaw_dec": _alaw_to_linear(codes),
        "ulaw_enc": _linear_to_ulaw(every),
        "alaw_enc": _linear_to_alaw(every),
    }


def ulaw_decode(payload: bytes) -> np.ndarray:
    """μ-law bytes -> int16 samples."""
    return _tables()["ulaw_dec"][np.frombuffer(payload, dtype=np.uint8)]


def alaw_decode(payload: bytes) -> np.ndarray:
    """A-law bytes -> int16 samples."""
    return _tables()["alaw_dec"][np.frombuffer(payload, dtype=np.uint8)]


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> μ-law bytes (bit exact with audioop.lin2ulaw)."""
    return _tables()["ulaw_enc"][np.asarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> A-law bytes (bit exact with audioop.lin2alaw)."""
    return _tables()["alaw_enc"][np.asarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


# --- decoders --------------------------------------------------------------------------------------------------


class AudioDecoder(Protocol):
    """Turns payloads into int16 mono PCM at `spec.sample_rate_hz`; one instance per stream (codecs keep state)."""

    spec: CodecSpec

    def decode(self, payload: bytes) -> np.ndarray: ...

    def conceal(self, num_samples: int) -> np.ndarray: ...


class _Concealer:
    """Packet-loss concealment: the last good frame repeated with a fade for up to two frames, then silence.

    A long gap (silence suppression, a peer on hold) therefore becomes silence rather than a buzzing loop.
    """

    def __init__(self) -> None:
        self._last = np.zeros(0, dtype=np.int16)
        self._concealed_samples = 0

    def remember(self, pcm: np.ndarray) -> None:
        self._last = pcm
        self._concealed_samples = 0

    def conceal(self, num_samples: int) -> np.ndarray:
        out = np.zeros(max(num_samples, 0), dtype=np.int16)
        budget = _MAX_REPEAT_FRAMES * self._last.size - self._concealed_samples
        k = min(out.size, max(budget, 0))
        if k > 0:
            reps = -(-(self._concealed_samples + k) // self._last.size)
            src = np.tile(self._last, reps)[self._concealed_samples : self._concealed_samples + k]
            total = _MAX_REPEAT_FRAMES * self._last.size
            fade = 0.5 * (1.0 - np.arange(self._concealed_samples, self._concealed_samples + k) / total)
            out[:k] = (src.astype(np.float32) * fade.astype(np.float32)).astype(np.int16)
        self._concealed_samples += out.size
        return out


class G711Decoder:
    """PCMU / PCMA decoder (stateless apart from concealment)."""

    def __init__(self, spec: CodecSpec) -> None:
        if spec.name not in ("PCMU", "PCMA"):
            raise ValueError(f"not a G.711 codec: {spec.name}")
        self.spec = spec
        self._decode = ulaw_decode if spec.name == "PCMU" else alaw_decode
        self._plc = _Concealer()

    def decode(self, payload: bytes) -> np.ndarray:
        pcm = self._decode(payload)
        self._plc.remember(pcm)
        return pcm

    def conceal(self, num_samples: int) -> np.ndarray:
        return self._plc.conceal(num_samples)


class L16Decoder:
    """Linear 16-bit PCM, network byte order (RFC 3551 L16)."""

    def __init__(self, spec: CodecSpec) -> None:
        self.spec = spec
        self._plc = _Concealer()

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) % 2:
            raise CodecError("L16 payload has an odd number of bytes")
        pcm = np.frombuffer(payload, dtype=">i2").astype(np.int16)
        self._plc.remember(pcm)
        return pcm

    def conceal(self, num_samples: int) -> np.ndarray:
        return self._plc.conceal(num_samples)


class PyAVDecoder:
    """G.722 or Opus through PyAV (libavcodec), which keeps the codec state across packets."""

    def __init__(self, spec: CodecSpec) -> None:
        import av  # local import: PyAV is only needed when a peer actually negotiates these codecs

        names = {"G722": "g722", "OPUS": "libopus"}
        codec_name = names.get(spec.name.upper())
        if codec_name is None:
            raise ValueError(f"no PyAV decoder for {spec.name}")
        self.spec = spec
        self._av = av
        self._ctx = av.CodecContext.create(codec_name, "r")
        self._ctx.sample_rate = spec.sample_rate_hz
        self._ctx.layout = "mono"
        self._plc = _Concealer()

    def decode(self, payload: bytes) -> np.ndarray:
        if not payload:
            raise CodecError("empty payload")
        try:
            frames = self._ctx.decode(self._av.Packet(payload))
        except self._av.error.FFmpegError as exc:
            raise CodecError(f"{self.spec.name} decode failed") from exc
        chunks = [_frame_to_mono_s16(f) for f in frames]
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        if pcm.size:
            self._plc.remember(pcm)
        return pcm

    def conceal(self, num_samples: int) -> np.ndarray:
        return self._plc.conceal(num_samples)


def _frame_to_mono_s16(frame: object) -> np.ndarray:
    arr = frame.to_ndarray()  # type: ignore[attr-defined]
    fmt = frame.format.name  # type: ignore[attr-defined]
    if fmt in ("flt", "fltp"):
        arr = np.clip(arr * 32768.0, -32768, 32767)
    arr = arr.astype(np.int16)
    if arr.ndim == 2 and arr.shape[0] > 1 and fmt.endswith("p"):
        arr = arr.mean(axis=0).astype(np.int16)
    return arr.reshape(-1)


def make_decoder(spec: CodecSpec) -> AudioDecoder:
    """A fresh decoder for one stream."""
    if spec.name in ("PCMU", "PCMA"):
        return G711Decoder(spec)
    if spec.name == "L16":
        return L16Decoder(spec)
    return PyAVDecoder(spec)


# --- encoders (tests, eval, loopback peers) -------------------------------------------------------------------


class PyAVEncoder:
    """G.722 or Opus encoder for whole frames of int16 mono PCM at the codec's audio rate."""

    def __init__(self, spec: CodecSpec, bit_rate: int = 32000) -> None:
        import av

        names = {"G722": "g722", "OPUS": "libopus"}
        self.spec = spec
        self._av = av
        self._ctx = av.CodecContext.create(names[spec.name.upper()], "w")
        self._ctx.sample_rate = spec.sample_rate_hz
        self._ctx.layout = "mono"
        self._ctx.format = "s16"
        if spec.name.upper() == "OPUS":
            self._ctx.bit_rate = bit_rate
        self._pts = 0

    def encode(self, pcm: np.ndarray) -> list[bytes]:
        """Encode one frame (20 ms is the norm); returns zero or more packets."""
        frame = self._av.AudioFrame.from_ndarray(
            np.asarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.spec.sample_rate_hz
        frame.pts = self._pts
        self._pts += int(pcm.size)
        return [bytes(p) for p in self._ctx.encode(frame)]


def encode_frame(spec: CodecSpec, pcm: np.ndarray) -> bytes:
    """Stateless encoders (G.711, L16) for one frame."""
    if spec.name == "PCMU":
        return ulaw_encode(pcm)
    if spec.name == "PCMA":
        return alaw_encode(pcm)
    if spec.name == "L16":
        return np.asarray(pcm, dtype=np.int16).astype(">i2").tobytes()
    raise ValueError(f"{spec.name} needs a stateful encoder (PyAVEncoder)")
