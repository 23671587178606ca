"""Wire schemas of the public API (pydantic)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SUPPORTED_RATES_HZ = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


class StartMessage(BaseModel):
    """First text frame on /v1/stream: describes the audio that follows as binary frames."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    sample_rate_hz: int = 16000
    encoding: Literal["s16le", "mulaw"] = "s16le"
    channels: int = Field(1, ge=1, le=8)
    channel_names: list[str] | None = None
    language: Literal["en", "zh", "auto"] = "auto"
    metadata: dict[str, Any] = Field(default_factory=dict)
    policy_packs: list[str] | None = None
    # speaker diarization of a one-channel stream (a meeting room); default: the server's `diarize_mono`
    diarize: bool | None = None
    max_speakers: int | None = Field(None, ge=1, le=16)
    # terms this call is likely to contain (product, bank, agent names): they steer the decoder's spelling
    vocabulary: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("sample_rate_hz")
    @classmethod
    def _rate(cls, v: int) -> int:
        if v not in SUPPORTED_RATES_HZ:
            raise ValueError(f"unsupported sample rate {v}; supported: {SUPPORTED_RATES_HZ}")
        return v

    def names(self) -> tuple[str, ...]:
        if self.channel_names:
            if len(self.channel_names) != self.channels:
                raise ValueError("channel_names must have one name per channel")
            return tuple(self.channel_names)
        if self.channels == 1:
            return ("speaker",)
        if self.channels == 2:
            return ("agent", "customer")
        return tuple(f"ch{i}" for i in range(self.channels))


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str


class SessionSummary(BaseModel):
    id: str
    source: str
    language: str
    channel_names: list[str]
    metadata: dict[str, Any]
    status: str
    end_reason: str | None = None
    created_at: float
    ended_at: float | None = None
    audio_s: float = 0.0
    live: bool = False
    tenant_id: str = "default"
    agent: str | None = None
