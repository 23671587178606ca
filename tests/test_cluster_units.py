"""The pieces of a cluster takeover without processes or Whisper: what a resumed session is told (ResumeState), a
channel clock that starts part-way through, the shared records in a real Redis (heartbeats, placement by load,
one owner per takeover), and the worker's skipping of audio already captioned (issue 14)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pipelines.channel import ChannelTranscriber, StreamingParams
from pipelines.cluster import ClusterState, ResumeState, config_from_json, config_to_json
from pipelines.config import SessionConfig
from pipelines.worker import ClusterWorker
from tests.broker_servers import redis_server  # noqa: F401 (fixture)


def _final(seq: int, ch: int, n: int, start_s: float, end_s: float, text: str, lang: str = "en") -> dict:
    return {"type": "transcript", "kind": "final", "seq": seq, "channel": ch, "segment_id": f"c{ch}-{n:05d}",
            "start_s": start_s, "end_s": end_s, "text": text, "language": lang, "speaker": "agent" if ch == 0 else "c",
            "words": [{"text": text, "start_s": start_s, "end_s": end_s, "probability": 0.9}]}


def test_resume_state_from_published_events():
    events = [
        _final(0, 0, 1, 0.5, 2.0, "hello"),
        _final(1, 1, 1, 2.5, 3.0, "hi"),
        _final(2, 0, 2, 2.1, 3.4, "this call"),
        {"type": "utterance", "seq": 3, "channel": 0, "segment_id": "c0-00002", "segment_ids": ["c0-00001",
                                                                                               "c0-00002"]},
        {"type": "annotation", "seq": 4, "segment_id": "c0-00002", "task": "intent", "label": "greeting"},
        _final(5, 0, 3, 4.0, 5.25, "is recorded"),
    ]
    st = ResumeState.from_events(events)
    assert st.next_seq == 6
    assert st.committed_s == {0: 5.25, 1: 3.0}
    assert st.segment_numbers == {0: 3, 1: 1}
    assert st.languages == {0: "en", 1: "en"}
    # finals not yet closed into an utterance go back into the open utterance of their channel
    assert [f["segment_id"] for f in st.open_finals[0]] == ["c0-00003"]
    assert [f["segment_id"] for f in st.open_finals[1]] == ["c1-00001"]
    assert ResumeState.from_events([]).next_seq == 0


def test_session_config_round_trips_through_json():
    cfg = SessionConfig(source="websocket", language="zh", sample_rate_hz=8000, channel_names=("agent", "customer"),
                        metadata={"agent": "a1", "备注": "双录"}, policy_packs=("cn_dual_recording",),
                        session_id="s1", vocabulary=("稳健理财",), tenant_id="t2")
    assert config_from_json(config_to_json(cfg)) == cfg


def test_a_resumed_channel_keeps_absolute_times_and_segment_numbers(shared_data):
    from pipelines.audio_io import read_audio

    audio = read_audio(shared_data / "asr" / "jfk" / "jfk.flac").mono()
    import soxr

    pcm = soxr.resample(audio.samples[:, 0], audio.sample_rate_hz, 16000).astype("<i2")
    ct = ChannelTranscriber(session_id="s", channel=1, speaker="customer", input_rate_hz=16000, language=None,
                            params=StreamingParams())
    ct.resume_at(30.0, last_segment=7, language="en")
    assert ct.received_s == 30.0 and ct.language == "en"
    for i in range(0, len(pcm), 1600):
        ct.feed(pcm[i : i + 1600].tobytes())
    ct.end_of_stream()
    job = ct.take_job()
    assert job is not None
    # the decode window lies after the resume point (audio before it was never fed) and within what was fed
    assert 30.0 <= job.offset_s < 31.0
    assert job.end_s <= 30.0 + len(pcm) / 16000 + 0.01
    assert ct._pending_segment == "c1-00008"  # the next caption's id continues the dead worker's numbering


async def test_cluster_records_in_redis(redis_server):  # noqa: F811
    pytest.importorskip("redis")
    from pipelines.cluster import redis_client

    client = redis_client(redis_server.url)
    cs = ClusterState(client, prefix="t-units", dead_after_s=0.6)
    try:
        await cs.heartbeat("w1", 4)
        await cs.heartbeat("w2", 4)
        assert [w.worker_id for w in await cs.live_workers()] == ["w1", "w2"]
        stereo = SessionConfig(channel_names=("agent", "customer"))
        first = await cs.pick_worker(2)
        await cs.place("s1", stereo, first.worker_id)
        second = await cs.pick_worker(2)
        assert second.worker_id != first.worker_id  # by load: the idle worker gets the next call
        await cs.place("s2", stereo, second.worker_id)
        await cs.place("s3", stereo, first.worker_id)
        assert await cs.pick_worker(2) == (await cs.live_workers())[1]  # w2 has 2 of 4 channels, w1 is full
        assert await cs.pick_worker(4) is None
        # placements reach the worker's control stream
        ctl = await client.xrange(cs.ctl_key(first.worker_id))
        assert [f[b"sid"] for _, f in ctl] == [b"s1", b"s3"]
        # heartbeats expire: a silent worker is dead
        await asyncio.sleep(0.8)
        await cs.heartbeat("w2", 4)
        assert [w.worker_id for w in await cs.live_workers()] == ["w2"]
        # exactly one of two concurrent claims wins, and only while the dead owner is still recorded
        got = await asyncio.gather(cs.claim("s1", "w1", "w2"), cs.claim("s1", "w1", "w3"))
        assert sorted(got) == [0, 2]
        assert (await cs.session("s1"))["owner"] in ("w2", "w3")
        assert await cs.claim("s1", "w1", "w4") == 0
        # audio: appended in order, trimmed behind a point, gone with the session
        for i in range(5):
            await cs.append_audio("s1", {"pcm": bytes(4), "f": i})
        entries = await cs.read_audio("s1", "0-0", block_ms=10)
        assert [int(f[b"f"]) for _, f in entries] == [0, 1, 2, 3, 4]
        await cs.trim_audio("s1", entries[3][0].decode())
        assert [int(f[b"f"]) for _, f in await cs.read_audio("s1", "0-0", block_ms=10)] == [3, 4]
        await cs.end_session("s1")
        assert "s1" not in [sid for sid, _, _ in await cs.live_sessions()]
        assert await client.exists(cs.audio_key("s1")) == 0
    finally:
        keys = [k async for k in client.scan_iter(match="t-units:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


class _Recorder:
    """Records what the worker pushes into a session (the slicing logic under test needs nothing else)."""

    def __init__(self, channels: int, rate: int = 8000) -> None:
        self.config = SessionConfig(sample_rate_hz=rate, channel_names=tuple(f"ch{i}" for i in range(channels)))
        self.pushed: dict[int, list[np.ndarray]] = {i: [] for i in range(channels)}

    async def push_interleaved(self, pcm: bytes) -> None:
        n = self.config.num_channels
        data = np.frombuffer(pcm, dtype="<i2").reshape(-1, n)
        for ch in range(n):
            self.pushed[ch].append(data[:, ch].copy())

    async def push_pcm(self, ch: int, pcm: bytes) -> None:
        self.pushed[ch].append(np.frombuffer(pcm, dtype="<i2").copy())


async def test_the_worker_skips_audio_each_channel_already_captioned():
    rec = _Recorder(2)
    frames = np.arange(3000, dtype=np.int16)
    stereo = np.stack([frames, -frames], axis=1).astype("<i2")
    skip = [1500, 2200]  # channel 0 captioned up to frame 1500, channel 1 up to 2200
    for first in range(0, 3000, 1000):
        await ClusterWorker._feed(rec, stereo[first : first + 1000].tobytes(), first, skip)  # type: ignore[arg-type]
    ch0 = np.concatenate(rec.pushed[0])
    ch1 = np.concatenate(rec.pushed[1])
    assert ch0[0] == 1500 and len(ch0) == 1500 and ch0[-1] == 2999
    assert ch1[0] == -2200 and len(ch1) == 800
