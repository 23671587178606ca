"""The shared skeleton of WebSocket taps: receive loop, size and idle limits, error -> close code, clean end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pipelines.config import SessionConfig
from pipelines.taps.base import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    CapacityExceeded,
    MessageTransport,
    SessionClosed,
    SessionOpener,
    TapProtocolError,
    TapSession,
    logger,
)
from pipelines.taps.metrics import TapMetrics
from pipelines.taps.stats import StreamStats

CLOSE_INVALID_PAYLOAD = 1007
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20


class WebSocketTap:
    """Base class: subclasses implement `on_text` / `on_binary` and call `open_session` when they know enough.

    `run()` never raises for peer misbehaviour: a TapProtocolError closes the socket with its code and ends the
    session with reason "protocol_error", keeping everything received so far.
    """

    tap_name = "websocket"
    # End reason when the peer closes the socket cleanly (1000/1001) without a protocol-level goodbye.
    normal_close_reason = "disconnect"

    def __init__(
        self,
        manager: SessionOpener,
        transport: MessageTransport,
        idle_timeout_s: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        metrics: TapMetrics | None = None,
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.transport = transport
        self.idle_timeout_s = idle_timeout_s
        self.max_message_bytes = max_message_bytes
        self.session: TapSession | None = None
        self.stats: dict[int, StreamStats] = {}
        self.end_reason = "disconnect"
        self._done = False
        self._closed_transport = False

    async def run(self) -> None:
        """Serve one connection until the peer ends it, breaks the protocol or goes quiet."""
        try:
            while not self._done:
                try:
                    message = await asyncio.wait_for(self.transport.receive(), self.idle_timeout_s)
                except TimeoutError:
                    raise TapProtocolError("idle timeout", CLOSE_POLICY) from None
                if message is None:
                    if getattr(self.transport, "peer_close_code", None) in (1000, 1001):
                        self.end_reason = self.normal_close_reason
                    break
                if len(message) > self.max_message_bytes:
                    raise TapProtocolError("message too big", CLOSE_TOO_BIG)
                if isinstance(message, str):
                    await self.on_text(message)
                else:
                    await self.on_binary(message)
        except TapProtocolError as exc:
            logger.warning("%s tap: %s", self.tap_name, exc)
            self.end_reason = "protocol_error" if exc.close_code != CLOSE_TRY_AGAIN_LATER else "capacity"
            await self.on_protocol_error(exc)
            await self.close_transport(exc.close_code, str(exc))
        except asyncio.CancelledError:
            self.end_reason = "server_shutdown"
            try:
                await self.finish_session()
            finally:
                self._release_metrics()
            raise
        except SessionClosed:
            # The pipeline ended the session (shutdown, an operator, a fatal stage error): tell the peer we are done.
            logger.info("%s tap: session closed by the pipeline", self.tap_name)
            self.end_reason = "session_closed"
            await self.close_transport(CLOSE_NORMAL, "session closed")
        except Exception:
            logger.exception("%s tap: internal error", self.tap_name)
            self.end_reason = "internal_error"
            await self.close_transport(CLOSE_INTERNAL_ERROR, "internal error")
        await self.finish_session()
        await self.close_transport(CLOSE_NORMAL, "")
        self._release_metrics()

    async def on_text(self, text: str) -> None:
        raise TapProtocolError("unexpected text message", 1003)

    async def on_binary(self, data: bytes) -> None:
        raise TapProtocolError("unexpected binary message", 1003)

    async def on_protocol_error(self, exc: TapProtocolError) -> None:
        """Hook for protocols that announce errors in-band before closing (AudioHook's disconnect)."""

    async def before_finish(self) -> None:
        """Hook: flush buffered audio before the session closes."""

    def end(self, reason: str) -> None:
        """Stop the receive loop after the current message (the peer said goodbye)."""
        self.end_reason = reason
        self._done = True

    async def open_session(self, config: SessionConfig) -> TapSession:
        try:
            self.session = await self.manager.open_session(config)
        except CapacityExceeded:
            raise TapProtocolError("server at capacity, try again later", CLOSE_TRY_AGAIN_LATER) from None
        return self.session

    def channel_stats(self, channel: int) -> StreamStats:
        st = self.stats.get(channel)
        if st is None:
            st = self.stats[channel] = StreamStats(channel=channel)
        if self.metrics is not None:  # (re)labels the stream with the session once there is one
            self.metrics.stream_started(self.tap_name, st, self.session.session_id if self.session else "")
        return st

    def _release_metrics(self) -> None:
        if self.metrics is not None:
            for st in self.stats.values():
                self.metrics.stream_ended(st)

    async def finish_session(self) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        try:
            await self._before_finish_with(session)
            await session.record_event(
                "tap_stats",
                {"tap": self.tap_name, "streams": [s.to_dict() for _, s in sorted(self.stats.items())]},
            )
        except SessionClosed:
            pass  # already ended by the pipeline: nothing more to record
        finally:
            await session.close(self.end_reason)

    async def _before_finish_with(self, session: TapSession) -> None:
        self.session = session  # hooks push through self.session
        try:
            await self.before_finish()
        finally:
            self.session = None

    async def close_transport(self, code: int, reason: str) -> None:
        if self._closed_transport:
            return
        self._closed_transport = True
        try:
            await self.transport.close(code, reason[:120])
        except Exception:  # noqa: BLE001 - the peer may already be gone; nothing left to tell it
            logger.debug("%s tap: close after peer left", self.tap_name)

    @staticmethod
    def parse_json(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except ValueError:
            raise TapProtocolError("message is not JSON", CLOSE_INVALID_PAYLOAD) from None
        if not isinstance(value, dict):
            raise TapProtocolError("message is not a JSON object", CLOSE_INVALID_PAYLOAD)
        return value
