"""Per-session configuration, snapshotted when a session opens (never shared or mutated across sessions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUPPORTED_LANGUAGES = ("en", "zh", "auto")


@dataclass(frozen=True)
class SessionConfig:
    """What a tap or client tells us about a call or meeting when it starts.

    `channel_names` gives each channel's role, e.g. ("agent", "customer") for a stereo tap, or a participant id.
    `sample_rate_hz` is the rate of the PCM the tap will push; the pipeline resamples to the models' rate.
    """

    source: str = "websocket"
    language: str = "auto"
    sample_rate_hz: int = 16000
    channel_names: tuple[str, ...] = ("speaker",)
    metadata: dict[str, Any] = field(default_factory=dict)
    policy_packs: tuple[str, ...] = ()
    session_id: str | None = None
    # Speaker diarization of a single-channel session (meeting room, mono recording). Multi-channel taps keep
    # their channel roles and never diarize.
    diarize: bool = False
    max_speakers: int | None = None
    # Decoder vocabulary of this call (product, bank and agent names ...), before the deployment's terms
    vocabulary: tuple[str, ...] = ()
    # Owner of the session's data (set by the API from the caller's credentials, or by the tap's listener).
    tenant_id: str = "default"

    def check_pcm(self, channel: int, pcm_s16le: bytes, sample_rate_hz: int | None = None) -> None:
        """Raise `BadAudio` unless this is PCM for one of the session's channels at its rate."""
        from pipelines.errors import BadAudio

        if not 0 <= channel < self.num_channels:
            raise BadAudio(f"channel {channel} out of range (session has {self.num_channels})")
        if sample_rate_hz is not None and sample_rate_hz != self.sample_rate_hz:
            raise BadAudio(f"sample rate {sample_rate_hz} Hz differs from the session's {self.sample_rate_hz} Hz")
        if len(pcm_s16le) % 2:
            raise BadAudio("PCM s16le needs an even number of bytes")

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def diarized(self) -> bool:
        """Whether this session labels speakers by voice (asked for, and one channel only)."""
        return self.diarize and self.num_channels == 1

    def __post_init__(self) -> None:
        if self.language not in SUPPORTED_LANGUAGES:
            raise ValueError(f"unsupported language {self.language!r}; expected one of {SUPPORTED_LANGUAGES}")
        if not 1 <= len(self.channel_names) <= 8:
            raise ValueError("a session has 1 to 8 channels")
        if not 8000 <= self.sample_rate_hz <= 48000:
            raise ValueError(f"unsupported sample rate {self.sample_rate_hz} Hz; expected 8000-48000")
        if self.max_speakers is not None and not 1 <= self.max_speakers <= 16:
            raise ValueError("max_speakers must be between 1 and 16")
