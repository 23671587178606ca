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
