"""Enrichment is a stage of its own: a slow classifier or rule never holds back the captions of the channel it
listens to (issue 14), and it still sees every final and utterance in caption order, and has finished all of
them before the session reports its end. No Whisper: a scripted decoder names each half second of audio after
its content, so consecutive decodes agree as Whisper's would."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from models.vad import VadParams
from pipelines.channel import StreamingParams
from pipelines.config import SessionConfig
from pipelines.executor import AsrExecutor
from pipelines.session import SessionManager
from pipelines.sink import PersistenceSink
from pipelines.stages import Line, ScriptedDecoder, run_stage
from pipelines.store import Store


class SlowEnricher:
    """Takes `delay_s` per utterance; records when it saw what."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.seen: list[tuple[str, str]] = []
        self.busy: list[tuple[float, float]] = []  # (start, end) of each on_utterance
        self.finished_at: float | None = None

    async def on_final(self, session, event) -> None:
        self.seen.append(("final", event.segment_id))

    async def on_utterance(self, session, utt) -> None:
        t0 = time.time()
        await asyncio.sleep(self.delay_s)
        self.seen.append(("utterance", utt.segment_id))
        self.busy.append((t0, time.time()))

    async def finish(self, session) -> None:
        self.finished_at = time.time()


async def test_a_slow_enricher_does_not_hold_back_captions() -> None:
    enricher = SlowEnricher(delay_s=1.0)
    manager = SessionManager(
        executor_factory=lambda: AsrExecutor(ScriptedDecoder(), workers=1),
        sink=PersistenceSink(Store("sqlite://")),
        streaming=StreamingParams(vad=VadParams(backend="energy")),
        enricher_factories=[lambda session: enricher],
    )
    session = await manager.open_session(SessionConfig(sample_rate_hz=16000, language="en"), overflow="block")
    rng = np.random.default_rng(7)
    silence = np.zeros(16000, dtype="<i2").tobytes()
    try:
        for _ in range(4):  # four utterances of 2 s "speech" (loud noise, by the energy VAD), 1 s apart
            for _ in range(20):
                await session.push_pcm(0, rng.normal(0, 6000, 1600).astype("<i2").tobytes())
            await session.push_pcm(0, silence)
        await asyncio.wait_for(session.close("normal"), 60)
    finally:
        manager.shutdown()
    finals = [e for e in session.history if e.get("type") == "transcript" and e.get("kind") == "final"]
    utterances = [e for e in session.history if e.get("type") == "utterance"]
    assert len(utterances) >= 3 and finals
    # captions went on while the enricher was busy: some final was emitted during an on_utterance call
    during = [f for f in finals for start, end in enricher.busy if start < f["emitted_at"] < end]
    assert during, "every final waited for enrichment"
    # ...and enrichment saw everything, in caption order, before the session ended
    assert [sid for kind, sid in enricher.seen if kind == "utterance"] == [u["segment_id"] for u in utterances]
    assert [sid for kind, sid in enricher.seen if kind == "final"] == [f["segment_id"] for f in finals]
    end = session.history[-1]
    assert end["type"] == "session_end" and enricher.finished_at is not None
    assert enricher.finished_at <= end["emitted_at"]
    assert session.stats.enrichment_waits == 0


async def test_run_stage_plays_a_script_through_the_real_compliance_stage():
    """Any stage can be tested on text: the compliance enricher of the service, on a scripted sales call where
    the agent promises returns and closes without a risk disclosure."""
    from pipelines.enrich import enricher_factories
    from pipelines.settings import HarkenSettings

    settings = HarkenSettings(classifiers=False, compliance=True, minutes=False, compliance_meaning=False)
    script = [
        Line(0, "Good morning, this is Tom from Northbridge Bank. This call is recorded.", 0.0, 4.0),
        Line(1, "Hi Tom, I wanted to ask about your growth fund.", 4.5, 7.0),
        Line(0, "It's a great fund, you are guaranteed a return of eight percent every year.", 7.5, 11.5),
        Line(1, "Okay, sounds good, let's do it then.", 12.0, 14.0),
        Line(0, "Perfect, I've placed the order for twenty thousand dollars.", 14.5, 17.5),
    ]
    config = SessionConfig(language="en", channel_names=("agent", "customer"), policy_packs=("retail_sales_en",))
    events = await run_stage(enricher_factories(settings), script, config)
    kinds = [e["type"] for e in events]
    assert kinds.count("utterance") == 5 and kinds[-1] == "session_end"
    found = {e.get("maps_to") or e["rule_id"] for e in events if e["type"] == "finding"}
    assert "prohibited_promise" in found, found
    assert "scorecard" in kinds  # the end-of-call stage ran after every utterance was enriched
