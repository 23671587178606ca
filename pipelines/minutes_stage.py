"""Minutes at the end of every session (and on request mid-session), as a `minutes` event.

The stage reads only the session's own durable events (captions, speaker labels, moods), builds the minutes in
a worker thread, and publishes them; it never changes what other stages produced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from intelligence.minutes.build import build_minutes, utterances_from_events
from intelligence.minutes.render import to_json
from intelligence.minutes.types import Minutes

log = logging.getLogger(__name__)


def minutes_of(events: Iterable[Mapping[str, Any]], language: str = "auto", llm: Any = None) -> Minutes:
    """Build minutes from a session's events (blocking: call from a worker thread)."""
    return build_minutes(utterances_from_events(events), language=language, llm=llm)


def minutes_event(minutes: Minutes, final: bool) -> dict[str, Any]:
    return {"type": "minutes", "final": final, "minutes": to_json(minutes)}


class MinutesStage:
    """Per-session enricher that writes the minutes when the session ends."""

    def __init__(self, llm: Any = None) -> None:
        self.llm = llm

    async def on_final(self, ctx: Any, event: Any) -> None:
        return None

    async def on_utterance(self, ctx: Any, utterance: Any) -> None:
        return None

    async def finish(self, ctx: Any) -> None:
        """`ctx`: the session's `pipelines.session.StageContext`."""
        history = list(ctx.history)
        minutes = await asyncio.to_thread(minutes_of, history, ctx.config.language, self.llm)
        await ctx.publish(minutes_event(minutes, final=True))


def minutes_factory(settings: Any) -> Callable[[Any], MinutesStage]:
    """Enricher factory for `SessionManager` (the LLM client is shared; it holds no per-call state)."""
    from intelligence.llm import client_from_settings

    llm = client_from_settings(settings)
    return lambda ctx: MinutesStage(llm)
