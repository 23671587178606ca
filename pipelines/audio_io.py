"""Reading recorded audio files (wav/flac/ogg via libsndfile; mp3/m4a/mp4/anything else via PyAV/FFmpeg)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class AudioFileError(ValueError):
    """The file is missing, truncated or not decodable audio."""


@dataclass(frozen=True)
class DecodedAudio:
    """int16 samples shaped (frames, channels) at `sample_rate_hz`."""

    samples: np.ndarray
    sample_rate_hz: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate_hz

    def channel_pcm(self, ch: int) -> bytes:
        return np.ascontiguousarray(self.samples[:, ch]).astype("<i2").tobytes()

    def is_dual_mono(self, threshold: float = 0.95) -> bool:
        """Two channels carrying the same signal (a mono recording saved as stereo)."""
        if self.channels != 2:
            return False
        a = self.samples[:, 0].astype(np.float64)
        b = self.samples[:, 1].astype(np.float64)
        denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
        return denom > 0 and float((a * b).sum()) / denom >= threshold

    def mono(self) -> DecodedAudio:
        if self.channels == 1:
            return self
        mixed = np.clip(self.samples.astype(np.int32).mean(axis=1), -32768, 32767).astype(np.int16)
        return DecodedAudio(mixed[:, None], self.sample_rate_hz)


def read_audio(path: str | Path) -> DecodedAudio:
    """Decode a file keeping its channels and rate."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        import soundfile as sf

        data, rate = sf.read(str(path), dtype="int16", always_2d=True)
        if data.shape[0] == 0:
            raise AudioFileError(f"{path}: no audio samples")
        return DecodedAudio(np.asarray(data), int(rate))
    except AudioFileError:
        raise
    except Exception:
        pass  # not a libsndfile format: try FFmpeg
    return _read_with_av(path)


def _read_with_av(path: Path) -> DecodedAudio:
    import av

    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioFileError(f"{path}: no audio stream")
            channels = stream.codec_context.channels or 1
            rate = stream.codec_context.sample_rate or 16000
            layout = "mono" if channels == 1 else "stereo"
            resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1, min(channels, 2)))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, min(channels, 2)))
    except AudioFileError:
        raise
    except Exception as exc:
        raise AudioFileError(f"{path}: cannot decode audio ({type(exc).__name__})") from exc
    if not chunks:
        raise AudioFileError(f"{path}: no audio samples")
    return DecodedAudio(np.concatenate(chunks).astype(np.int16), int(rate))
