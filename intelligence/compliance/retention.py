"""Retention periods for stored audio and transcripts, taken from the policy packs a session ran under.

When several packs apply, the longest period wins (each regulation sets a minimum keeping time). Deleting
expired data is the store's job; this module only says what is due.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from intelligence.compliance.rules import PolicyPack


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    """How many days audio and transcripts are kept (None: no pack sets a period) and which packs say so."""

    audio_days: int | None
    transcript_days: int | None
    sources: tuple[str, ...]


def retention_for(packs: Sequence[PolicyPack]) -> RetentionDecision:
    """The longest audio and transcript periods among `packs`."""
    audio = [p.retention.audio_days for p in packs if p.retention.audio_days]
    text = [p.retention.transcript_days for p in packs if p.retention.transcript_days]
    sources = tuple(f"{p.id}: {p.retention.source}" for p in packs if p.retention.source)
    return RetentionDecision(max(audio, default=None), max(text, default=None), sources)


def expires_at(created_at: dt.datetime, days: int | None) -> dt.datetime | None:
    """When data created at `created_at` may be deleted (None: keep until a policy says otherwise)."""
    return None if days is None else created_at + dt.timedelta(days=days)


def is_expired(created_at: dt.datetime, days: int | None, now: dt.datetime) -> bool:
    """True once the retention period has passed."""
    end = expires_at(created_at, days)
    return end is not None and now >= end
