"""An in-memory stand-in for the session manager, and helpers to load the shared call recordings.

The fake records exactly what a tap delivers (PCM per channel at the rate it was pushed, events, metadata,
how it closed) so tests can compare it with the original audio.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from pipelines.config import SessionConfig
from pipelines.taps.base import BadAudio, CapacityExceeded

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CALLS_AUDIO = SHARED_DATA / "calls" / "dev" / "audio"


def load_call(call_id: str = "dev_en_01", seconds: float | None = None) -> np.ndarray:
    """A shared call as int16 (samples, 2): column 0 agent, column 1 customer, 8 kHz, μ-law decoded."""
    path = CALLS_AUDIO / f"{call_id}.stereo8k.wav"
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    assert rate == 8000
    if seconds is not None:
        data = data[: int(seconds * rate)]
    return data


@dataclass
class FakeSession:
    """Records pushed PCM per channel, events and metadata."""

    session_id: str
    config: SessionConfig
    pcm: dict[int, list[bytes]] = field(default_factory=dict)
    rates: dict[int, set[int]] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    closed_reason: str | None = None
    close_calls: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    live: asyncio.Queue = field(
        default_factory=asyncio.Queue
    )  # what subscribe() delivers: tests put events here

    async def push_pcm(self, channel: int, pcm_s16le: bytes, sample_rate_hz: int) -> None:
        assert self.closed_reason is None, "PCM pushed after close"
        assert 0 <= channel < self.config.num_channels, f"channel {channel} out of range"
        assert len(pcm_s16le) % 2 == 0
        assert 8000 <= sample_rate_hz <= 48000
        if sample_rate_hz != self.config.sample_rate_hz:  # as pipelines.session.LiveSession does
            raise BadAudio(f"{sample_rate_hz} Hz pushed to a {self.config.sample_rate_hz} Hz session")
        self.pcm.setdefault(channel, []).append(pcm_s16le)
        self.rates.setdefault(channel, set()).add(sample_rate_hz)

    async def record_event(self, event_type: str, data: dict[str, Any]) -> None:
        self.events.append((event_type, data))

    def update_metadata(self, data: dict[str, Any]) -> None:
        self.metadata.update(data)

    async def close(self, reason: str = "hangup") -> None:
        self.close_calls += 1
        if self.closed_reason is None:
            self.closed_reason = reason
            self.closed.set()

    def subscribe(self) -> tuple[list[dict[str, Any]], Any]:
        """Like LiveSession.subscribe(): (history, subscriber with .queue)."""
        from types import SimpleNamespace

        return [], SimpleNamespace(queue=self.live)

    def samples(self, channel: int) -> np.ndarray:
        return np.frombuffer(b"".join(self.pcm.get(channel, [])), dtype="<i2")

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == event_type]


@dataclass
class FakeManager:
    """Opens FakeSessions; `capacity` sessions at most are open at once."""

    capacity: int = 100
    sessions: list[FakeSession] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=itertools.count)

    async def open_session(self, config: SessionConfig) -> FakeSession:
        if sum(1 for s in self.sessions if s.closed_reason is None) >= self.capacity:
            raise CapacityExceeded("full")
        s = FakeSession(session_id=config.session_id or f"s{next(self._ids)}", config=config)
        s.metadata.update(config.metadata)
        self.sessions.append(s)
        return s

    async def wait_closed(self, n: int = 1, timeout_s: float = 5.0) -> list[FakeSession]:
        async def _wait() -> None:
            # Polling: sessions may not exist yet when the wait starts. noqa: the loop is bounded by wait_for.
            while len([s for s in self.sessions if s.closed_reason is not None]) < n:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        await asyncio.wait_for(_wait(), timeout_s)
        return [s for s in self.sessions if s.closed_reason is not None]


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-noise ratio of `test` against `reference` over their common length."""
    n = min(reference.size, test.size)
    ref = reference[:n].astype(np.float64)
    err = ref - test[:n].astype(np.float64)
    return float(10 * np.log10((ref**2).sum() / max((err**2).sum(), 1e-9)))


class RunningApp:
    """A real uvicorn server on 127.0.0.1 (random port) serving the taps router with a FakeManager.

    Used as `async with RunningApp(settings) as app:`; real WebSocket clients then connect to `app.url(path)`.
    """

    def __init__(self, settings: object | None = None, manager: FakeManager | None = None) -> None:
        from types import SimpleNamespace

        self.manager = manager or FakeManager()
        self.settings = settings or SimpleNamespace(audiohook_api_key=None, audiohook_client_secret=None,
                                                     auth=False, api_key=None)
        self._state = SimpleNamespace(manager=self.manager, settings=self.settings)
        self.port = 0

    async def __aenter__(self) -> RunningApp:
        import uvicorn
        from fastapi import FastAPI

        from api.taps_routes import build_router

        app = FastAPI()
        app.state.harken = self._state
        self.app = app
        app.include_router(build_router())
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(500):
            if self._server.started:
                break
            await asyncio.sleep(0.01)
        assert self._server.started, "uvicorn did not start"
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        gateway = getattr(self.app.state, "taps_webrtc", None)
        if gateway is not None:
            await gateway.close_all()
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 10)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"
