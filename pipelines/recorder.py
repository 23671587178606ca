"""Stored call audio: each channel's 16 kHz PCM is appended to a raw file as it arrives (nothing is lost if the
process dies mid-call), and at session end the channels become one FLAC file, with muted spans (spoken card
data, per the PCI pack) silenced before anything durable is written. Methods are blocking: call off the loop."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

RATE_HZ = 16000


class CallRecorder:
    def __init__(self, directory: Path, session_id: str, channels: int) -> None:
        self.dir = directory / session_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.session_id = session_id
        self._files = [open(self.dir / f"ch{i}.raw", "ab") for i in range(channels)]  # noqa: SIM115
        self._lock = threading.Lock()
        self.mute_spans_s: list[tuple[float, float]] = []
        # the first write error (disk full, volume gone): recording stops there, the call itself goes on
        self.failed: OSError | None = None

    def write(self, channel: int, samples: np.ndarray) -> None:
        with self._lock:
            f = self._files[channel]
            if f.closed or self.failed is not None:
                return
            try:
                f.write(samples.astype("<i2").tobytes())
            except OSError as exc:
                self.failed = exc
                for other in self._files:
                    try:
                        other.close()
                    except OSError:
                        pass  # its buffered tail is lost with the disk; what reached the file stays

    def mute(self, start_s: float, end_s: float) -> None:
        with self._lock:
            self.mute_spans_s.append((max(0.0, start_s), max(start_s, end_s)))

    def finish(self) -> Path:
        """Close the raw files and write `<session>.flac` (muted spans silenced); returns its path."""
        import soundfile as sf

        with self._lock:
            for f in self._files:
                f.close()
            if self.failed is not None:
                raise OSError(f"recording of session {self.session_id} stopped: {self.failed}")
            chans = [np.fromfile(self.dir / f"ch{i}.raw", dtype="<i2") for i in range(len(self._files))]
            n = max((len(c) for c in chans), default=0)
            data = np.zeros((n, len(chans)), dtype=np.int16)
            for i, c in enumerate(chans):
                data[: len(c), i] = c
            for start_s, end_s in self.mute_spans_s:
                data[int(start_s * RATE_HZ) : int(end_s * RATE_HZ) + 1, :] = 0
            out = self.dir / f"{self.session_id}.flac"
            sf.write(str(out), data, RATE_HZ, format="FLAC", subtype="PCM_16")
            for i in range(len(chans)):
                (self.dir / f"ch{i}.raw").unlink(missing_ok=True)
            return out
