"""harken as a cluster, for real: two gateways and two workers (separate `harken serve --role ...` processes),
Redis and PostgreSQL, started and stopped here. Three real calls stream in real time while the faults of a bad
day happen one after the other: Redis restarts, the worker running most calls is killed with SIGKILL, and the
gateway the subscribers follow the calls on is killed. Every call must end with every final caption stored once,
in order, no speech captioned twice, the moved calls still transcribed, and captions back within seconds
(issue 14; eval/cluster.py measures the same with `harken eval cluster`)."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from eval.cluster import Fault, LocalCluster, drive, load_calls

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _audit_chain_verifies(url: str) -> int:
    """Verify the hash-chained audit trail the workers appended to concurrently; returns its length."""
    import sqlalchemy as sa

    from intelligence.audit_chain import AuditChain
    from pipelines.audit_store import SqlAuditStorage

    engine = sa.create_engine(url)
    try:
        result = AuditChain(SqlAuditStorage(engine, create=False)).verify()
    finally:
        engine.dispose()
    assert result.ok, result
    return result.checked


def test_calls_survive_a_broker_restart_a_killed_worker_and_a_killed_gateway(postgres_server, tmp_path):
    pytest.importorskip("redis")
    from eval.broker_bench import find_binary

    if find_binary("redis") is None:
        pytest.skip("redis-server not installed (scripts/install-peers.sh)")
    calls = load_calls(3, max_s=40.0)
    url = postgres_server.create_database()
    faults = [Fault("restart-broker", 0.2), Fault("kill-worker", 0.45), Fault("kill-gateway", 0.7)]
    with LocalCluster(workers=2, gateways=2, max_channels=4, database_url=url, root=tmp_path,
                      env={"HARKEN_CLASSIFIERS": "false"}) as cluster:
        report = asyncio.run(drive(cluster, calls, faults))
        alive = cluster.of_role("gateway")[0]
        rows = [json.loads(urllib.request.urlopen(f"{alive.base}/v1/sessions/{s['session_id']}", timeout=10).read())
                for s in report["per_session"]]
    summary = {k: v for k, v in report.items() if k != "per_session"}
    assert report["sessions_ended"] == 3, report
    assert report["finals_lost"] == 0 and report["finals_duplicated"] == 0, report["per_session"]
    assert [f["kind"] for f in report["faults"]] == ["restart-broker", "kill-worker", "kill-gateway"]
    assert report["sessions_moved"] >= 1, summary
    moved = [s for s in report["per_session"] if s["failed_over"]]
    for s in report["per_session"]:
        assert s["finals"] >= 10 and s["seq_holes"] == 0, s
        assert s["follower_resumes"] >= 1, s  # every subscriber lost its gateway and resumed on the other
    for s in moved:
        assert s["worker_at_end"] != summary["faults"][1]["target"], s
        assert s["wer"] is not None and s["wer"] < 0.35, s  # the call is still transcribed after the move
        # captions come back within seconds (the acceptance figure, p95 <= 5 s, is measured by eval cluster on
        # a quiet machine; this bound leaves room for a loaded CI runner)
        assert s["captions_paused_s"]["kill-worker"] < 15.0, s
    assert all(r["status"] == "ended" for r in rows), rows
    assert _audit_chain_verifies(url) > 0  # two workers and two gateways appended to one chain: it holds


def test_calls_survive_a_database_restart_and_a_full_disk(postgres_server, tmp_path):
    """PostgreSQL stopped with every connection dropped, then started again; then the data directory of the
    worker running a call fills up. Every final is stored once, the calls end normally, and the call whose
    recording stopped says so (an error event), with its captions intact."""
    pytest.importorskip("redis")
    from eval.broker_bench import find_binary
    from eval.cluster import NoSmallDisk, mount_small_disk

    if find_binary("redis") is None:
        pytest.skip("redis-server not installed (scripts/install-peers.sh)")
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        mount_small_disk(probe, 1)
    except NoSmallDisk as exc:
        pytest.skip(str(exc))
    import subprocess

    subprocess.run(["umount", str(probe)], check=True, timeout=30)
    calls = load_calls(2, max_s=35.0)
    url = postgres_server.create_database()
    faults = [Fault("restart-database", 0.25, down_s=2.0), Fault("fill-disk", 0.55)]
    with LocalCluster(workers=2, gateways=1, max_channels=4, database_url=url, root=tmp_path / "cluster",
                      pg_control=postgres_server, worker_disk_mb=8, env={"HARKEN_CLASSIFIERS": "false"}) as cluster:
        report = asyncio.run(drive(cluster, calls, faults))
    assert report["sessions_ended"] == 2, report
    assert report["finals_lost"] == 0 and report["finals_duplicated"] == 0, report["per_session"]
    full = report["faults"][1]
    assert full["kind"] == "fill-disk" and full["filled_bytes"] > 0
    for s in report["per_session"]:
        assert s["finals"] >= 10 and s["seq_holes"] == 0 and s["wer"] < 0.35, s
    hit = [s for s in report["per_session"] if s["worker_at_end"] == full["target"]]
    assert hit and all("recording_failed" in s["errors"] for s in hit), report["per_session"]
    assert _audit_chain_verifies(url) > 0


def test_a_twilio_call_through_a_gateway_runs_on_a_worker_and_survives_its_death(postgres_server, tmp_path):
    """Taps on a gateway place their calls on workers too: a Twilio Media Streams fork (both tracks, a key press)
    sent to the gateway is decoded by a worker, which is then killed; the other worker finishes the call, the
    key press and both speakers' words are stored once."""
    pytest.importorskip("redis")
    pytest.importorskip("streamdouble")
    import httpx
    import redis.asyncio as aioredis

    from eval import taps_clients as peers
    from eval.broker_bench import find_binary
    from eval.cluster import CALLS_DIR, _overlapping
    from eval.taps_e2e_cli import ended_session, reference_by_channel, word_errors
    from pipelines.cluster import ClusterState

    if find_binary("redis") is None:
        pytest.skip("redis-server not installed (scripts/install-peers.sh)")
    call = peers.load_call_audio(CALLS_DIR / "audio" / "dev_en_03.stereo8k.wav", seconds=40.0)
    refs = reference_by_channel(json.loads((CALLS_DIR / "gt" / "dev_en_03.json").read_text()), seconds=40.0)
    url = postgres_server.create_database()
    with LocalCluster(workers=2, gateways=1, max_channels=4, database_url=url, root=tmp_path,
                      env={"HARKEN_CLASSIFIERS": "false"}) as cluster:
        gw = cluster.of_role("gateway")[0]

        async def go() -> tuple[dict, list[dict], str]:
            state = ClusterState(aioredis.from_url(cluster.redis_url))
            peer = asyncio.create_task(peers.twilio_streamdouble(
                gw.base.replace("http://", "ws://") + "/v1/taps/twilio", call, speed=1.0, dtmf="5", dtmf_at_s=8.0))
            await asyncio.sleep(10.0)
            ((sid, victim, _),) = await state.live_sessions()
            async with httpx.AsyncClient(base_url=gw.base, timeout=30) as client:
                wall = (await client.get("/v1/live")).json()["sessions"]  # the gateway's wall shows the call
            assert [(r["id"], r["channel_names"], r["source"]) for r in wall] == [(sid, ["agent", "customer"],
                                                                                  "twilio")]
            await asyncio.sleep(8.0)
            await asyncio.to_thread(cluster.kill, victim)
            placed = await peer
            await state.redis.aclose()
            async with httpx.AsyncClient(base_url=gw.base, timeout=60) as client:
                row = await ended_session(client, placed.call_ref, timeout_s=180)
                events = (await client.get(f"/v1/sessions/{row['id']}/events")).json()
            assert row["id"] == sid
            return row, events, victim

        row, events, victim = asyncio.run(go())
    finals = [e for e in events if e["type"] == "transcript" and e["kind"] == "final"]
    assert [e["seq"] for e in events] == list(range(len(events)))  # every durable event once, in order
    assert _overlapping(finals) == 0  # no speech captioned twice across the takeover
    (dtmf,) = [e for e in events if e["type"] == "dtmf"]
    assert dtmf["digit"] == "5"
    assert events[-1]["type"] == "session_end"
    for ch, name in enumerate(("agent", "customer")):
        hyp = " ".join(e["text"] for e in finals if e["channel"] == ch)
        we = word_errors(refs[name], hyp)
        assert we.words > 10 and we.wer < 0.35, (name, hyp)
    assert row["status"] == "ended"
    assert victim in ("w1", "w2")


def test_load_rounds_of_calls_every_final_once_in_order_and_memory_flat(postgres_server, tmp_path):
    """Load: three rounds of four concurrent calls (eight channels, 30 s each) through two gateways and two
    workers. Every final is stored once and in order, subscribers on the other gateway get every event within
    a second (p95), and no process grows round after round."""
    pytest.importorskip("redis")
    from eval.broker_bench import find_binary
    from eval.cluster import _rss_mb, score
    from eval.cluster import _wave as one_round

    if find_binary("redis") is None:
        pytest.skip("redis-server not installed (scripts/install-peers.sh)")
    calls = load_calls(4, max_s=30.0)
    url = postgres_server.create_database()
    memory: dict[str, list[float]] = {}
    runs, stored = [], {}
    with LocalCluster(workers=2, gateways=2, max_channels=4, database_url=url, root=tmp_path,
                      env={"HARKEN_CLASSIFIERS": "false"}) as cluster:
        for _ in range(3):
            r, st, _faults = asyncio.run(one_round(cluster, calls, []))
            runs += r
            stored.update(st)
            for p in cluster.procs:
                memory.setdefault(p.name, []).append(_rss_mb(p.popen.pid))
    report = score(runs, calls * 3, stored, [])
    print(json.dumps({k: v for k, v in report.items() if k != "per_session"}), json.dumps(memory))
    assert report["sessions_ended"] == 12
    assert report["finals_lost"] == 0 and report["finals_duplicated"] == 0, report["per_session"]
    assert all(s["seq_holes"] == 0 and s["finals"] >= 10 for s in report["per_session"])
    for gw, lat in report["latency_by_gateway"].items():
        assert lat["event_delivery_p95_s"] < 1.0, (gw, lat)
    for name, mb in memory.items():
        # after the first round has warmed every model and pool, a round adds no lasting memory
        assert mb[2] - mb[1] < 40.0, (name, mb)
