"""Finals never say a word more often than it was spoken: a live SIPREC call (SIPp) and a stereo WebSocket stream
of the same call, at once, beside two more calls that overload the ASR executor.

The call (tests/fixtures/calls, rendered with shared/tools/scenarios) has a date of birth said by the customer and
read back by the agent, and a reference number said twice by the agent and repeated by the customer: the words a
decoder writes differently from one decode to the next ("12th" / "twelfth", "47192" / "4 7 1 9 2"), which is how a
phrase came to be committed twice on the first SIPREC call after a server start (issue 16). Each channel's finals
are aligned with what that speaker said (after the normalisation WER uses): no run of inserted words and no
trigram more often than said. A misheard word is a substitution and does not count.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eval import taps_clients as peers
from eval.asr import normalizer
from eval.taps_e2e_cli import ended_session, reference_by_channel
from pipelines.settings import HarkenSettings
from tests.server_util import free_port, running_server

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.peer]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "calls"
DEV_CALLS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calls" / "dev"
CALL_ID = "repeat_en_01"


def tokens(text: str) -> list[str]:
    return normalizer("en")(text).split()


def repeated(hyp: str, ref: str) -> dict[str, object]:
    """What the hypothesis says more often than the speaker did: words it inserts (aligned to the reference as
    WER does) in runs of two or more, and trigrams it has more often than the reference. A misheard word is a
    substitution, not a repeat ("reference is four" heard as "references for" repeats nothing)."""
    import jiwer

    h, r = tokens(hyp), tokens(ref)
    out: dict[str, object] = {}
    if h and r:
        ali = jiwer.process_words(" ".join(r), " ".join(h))
        runs = [" ".join(h[c.hyp_start_idx : c.hyp_end_idx]) for c in ali.alignments[0]
                if c.type == "insert" and c.hyp_end_idx - c.hyp_start_idx >= 2]
        if runs:
            out["inserted_runs"] = runs
    hc = Counter(" ".join(h[i : i + 3]) for i in range(len(h) - 2))
    rc = Counter(" ".join(r[i : i + 3]) for i in range(len(r) - 2))
    over = {g: (c, rc[g]) for g, c in hc.items() if c > max(rc[g], 1)}
    if over:
        out["trigrams"] = over
    return out


def recall(hyp: str, ref: str) -> float:
    h, r = Counter(tokens(hyp)), Counter(tokens(ref))
    return sum(min(c, h[t]) for t, c in r.items()) / max(1, sum(r.values()))


def test_counting_catches_a_repeated_phrase_not_a_misheard_word() -> None:
    ref = "Laura Kim, the eighth of May, nineteen eighty-eight."
    assert repeated("Laura Kim, the 8th of May, 1988.", ref) == {}
    doubled = "Laura Kim, the 8th of May 1988. Laura Kim, the eighth of May 1988."
    found = repeated(doubled, ref)
    assert "laura kim the" in found["trigrams"] and found["inserted_runs"]  # type: ignore[operator]
    said = "Thank you for calling. Your reference is four seven one nine two."
    assert repeated("Thank you for calling. Your references for 7192.", said) == {}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, HarkenSettings]]:
    settings = HarkenSettings(auth=False, data_dir=tmp_path_factory.mktemp("harken-once"), classifiers=False, compliance=False,
                              max_channels=8, sip_port=free_port(), audiosocket_port=free_port())
    with running_server(settings) as base:
        yield base, settings


def test_finals_hold_every_word_as_often_as_it_was_said_under_load(server, tmp_path: Path) -> None:
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.skip("sipp not installed (scripts/install-peers.sh)")
    base, settings = server
    ws = base.replace("http://", "ws://") + "/v1/stream"
    call = peers.load_call_audio(FIXTURES / "audio" / f"{CALL_ID}.stereo8k.wav")
    refs = reference_by_channel(json.loads((FIXTURES / "gt" / f"{CALL_ID}.json").read_text()))
    load = [peers.load_call_audio(DEV_CALLS / "audio" / f"{c}.stereo8k.wav", seconds=call.duration_s)
            for c in ("dev_en_19", "dev_en_05")]

    async def go() -> dict[str, dict[str, str]]:
        placed = await asyncio.gather(
            peers.siprec_sipp("127.0.0.1", settings.sip_port, call, tmp_path / "sipp", speed=1.0, sipp=sipp),
            peers.websocket_stereo(ws, call, speed=1.0),
            *(peers.websocket_stereo(ws, other, speed=1.0) for other in load),
        )
        texts: dict[str, dict[str, str]] = {}
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for peer in placed[:2]:
                row = await ended_session(client, peer.call_ref, timeout_s=240)
                tr = (await client.get(f"/v1/sessions/{row['id']}/transcript",
                                       params={"format": "json"})).json()
                texts[peer.tap] = tr["text_by_channel"]
            metrics = (await client.get("/metrics")).text
        greedy = next(float(line.split()[-1]) for line in metrics.splitlines()
                      if line.startswith("harken_asr_greedy_under_load_total"))
        print(f"decodes narrowed to greedy under load: {greedy:.0f}")
        assert greedy > 0, "the executor was never loaded: the test did not test what it says"
        return texts

    texts = asyncio.run(go())
    assert set(texts) == {"siprec", "websocket"}
    for tap, by_channel in texts.items():
        for speaker in ("agent", "customer"):
            hyp, ref = by_channel.get(speaker, ""), refs[speaker]
            print(tap, speaker, "|", hyp)
            assert repeated(hyp, ref) == {}, (tap, speaker, hyp)
            assert recall(hyp, ref) >= 0.8, (tap, speaker, hyp)
