"""`harken audit --ray` (eval/audit_ray.py): the same reports as the sequential path, resumable, robust.

The model tests use real calls from ../shared/data cut to 10-12 s, and the packaged tiny.en model with greedy
decodes and a 2 s partial step (ASR_ENV) so that the whole module takes about two minutes on two busy cores. One
sequential run (a subprocess, which also shows that plain `harken audit` never imports Ray) and one Ray run of
the same directory are shared by the tests that compare them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.cli import main as harken
from eval.audit_job import AuditOptions, check_not_truncated, expand_recordings
from eval.audit_ray import STATE_FILE, AuditState, Fingerprint, StateLocked
from eval.compliance_cli import _ray_target

REPO_ROOT = Path(__file__).resolve().parents[1]
POLICY = "pci_dss,recording_notice,contact_center,retail_sales_en"
ASR_ENV = {"HARKEN_ASR_MODEL": "tiny.en", "HARKEN_ASR_BEAM_SIZE": "1", "HARKEN_ASR_FINAL_BEAM_SIZE": "1",
           "HARKEN_STEP_S": "2.0"}
CLI = "import sys; from api.cli import main; sys.exit(main(sys.argv[1:]))"


# -- without models ----------------------------------------------------------------------------------------------


def test_directories_expand_recursively_sorted_and_once(tmp_path) -> None:
    for rel in ("b/2.flac", "b/1.WAV", "a.mp3", "c/d/e.opus", "notes.txt", "b/x.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    explicit = tmp_path / "notes.txt"  # a file named on the command line is taken whatever its suffix
    recs = expand_recordings([tmp_path, explicit, tmp_path / "a.mp3"])
    assert [r.name for r in recs] == ["a", "b/1", "b/2", "c/d/e", "notes"]
    assert recs[1].path == tmp_path / "b" / "1.WAV"


def test_ray_without_address_leaves_the_recordings_alone() -> None:
    assert _ray_target(None, [Path("x.wav")]) == (None, [Path("x.wav")])
    assert _ray_target("local", [Path("x.wav")]) == ("local", [Path("x.wav")])
    assert _ray_target("calls", [Path("x.wav")]) == ("local", [Path("calls"), Path("x.wav")])
    for address in ("auto", "10.0.0.5:6379", "ray://head:10001"):
        assert _ray_target(address, [Path("x.wav")]) == (address, [Path("x.wav")])


def test_state_file_resumes_only_unchanged_finished_recordings(tmp_path) -> None:
    report = tmp_path / "a.json"
    report.write_text("{}")
    options_key = AuditOptions().key()
    done = {"key": "/r/a.wav", "status": "done", "size": 10, "mtime_ns": 5, "options": options_key,
            "reports": [str(report)]}
    failed = {**done, "key": "/r/b.wav", "status": "failed", "reports": []}
    state_path = tmp_path / STATE_FILE
    state_path.write_text(json.dumps(done) + "\n" + json.dumps(failed) + "\n" + '{"key": "/r/c.wav", "sta')
    state = AuditState(state_path)
    try:
        with pytest.raises(StateLocked):
            AuditState(state_path)  # a second driver on the same out dir
        assert state.reusable("/r/a.wav", Fingerprint(10, 5), options_key) is not None
        assert state.reusable("/r/a.wav", Fingerprint(10, 6), options_key) is None  # changed: re-audit
        assert state.reusable("/r/a.wav", Fingerprint(10, 5), "other-policy") is None
        assert state.reusable("/r/b.wav", Fingerprint(10, 5), options_key) is None  # failed: retry
        assert state.reusable("/r/c.wav", Fingerprint(10, 5), options_key) is None  # torn line ignored
        state.append({**done, "key": "/r/d.wav"})
    finally:
        state.close()
    lines = state_path.read_text().splitlines()
    assert json.loads(lines[-1])["key"] == "/r/d.wav"  # not glued to the torn line
    report.unlink()
    state = AuditState(state_path)
    try:
        assert state.reusable("/r/a.wav", Fingerprint(10, 5), options_key) is None  # its report is gone
    finally:
        state.close()


def test_a_wav_shorter_than_its_header_is_refused(tmp_path) -> None:
    import numpy as np
    import soundfile as sf

    from pipelines.audio_io import AudioFileError

    wav = tmp_path / "full.wav"
    sf.write(wav, np.zeros(8000, dtype=np.int16), 8000)
    check_not_truncated(wav)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(wav.read_bytes()[:4000])
    with pytest.raises(AudioFileError, match="truncated WAV"):
        check_not_truncated(cut)
    streamed = bytearray(wav.read_bytes()[:4000])
    at = streamed.index(b"data") + 4
    streamed[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)  # a live writer that never learnt the length
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    check_not_truncated(tmp_path / "streamed.wav")


# -- with models and a local Ray ---------------------------------------------------------------------------------


def _cut(src: Path, dst: Path, start_s: float, end_s: float, channel: int | None = None) -> None:
    import soundfile as sf

    data, rate = sf.read(str(src), dtype="int16", always_2d=True)
    part = data[int(start_s * rate):int(end_s * rate)]
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(dst), part if channel is None else part[:, channel], rate)


@pytest.fixture(scope="module")
def recordings(shared_data, tmp_path_factory) -> Path:
    """A directory as an archive looks: nested, mixed formats, a truncated file and a stray text file."""
    audio = shared_data / "calls" / "dev" / "audio"
    root = tmp_path_factory.mktemp("archive")
    _cut(audio / "dev_en_19.stereo8k.wav", root / "a.wav", 0, 10, channel=0)  # recording notice (mono)
    _cut(audio / "dev_en_19.stereo8k.wav", root / "b.flac", 26, 38, channel=0)  # spoken card number (mono)
    _cut(audio / "dev_en_07.stereo8k.wav", root / "2024" / "c.wav", 30, 42)  # "no risk at all" (stereo)
    (root / "broken.flac").write_bytes((root / "b.flac").read_bytes()[:3000])
    (root / "notes.txt").write_text("not a recording")
    return root


@pytest.fixture(scope="module")
def asr_env():
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ASR_ENV.items():
            mp.setenv(k, v)
        yield


@pytest.fixture(scope="module")
def local_ray(asr_env):
    """One local Ray instance (2 CPUs) for the in-process runs: `harken audit --ray` uses it, not a new one."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")  # offline
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024**2)
        yield ray
        ray.shutdown()


def _audit(args: list[str]) -> tuple[int, dict]:
    """`harken audit ...` in this process; (exit code, the summary line on stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = harken(["audit", *args])
    return rc, json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sequential(recordings, tmp_path_factory) -> tuple[Path, dict]:
    """Plain `harken audit DIR` in a fresh interpreter; also says whether that imported Ray."""
    out = tmp_path_factory.mktemp("sequential")
    script = ("import json, sys; from api.cli import main; rc = main(sys.argv[1:]); "
              "print('RESULT ' + json.dumps({'rc': rc, 'ray': 'ray' in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", script, "audit", str(recordings), "--out", str(out),
                           "--policy", POLICY, "--language", "en"], cwd=REPO_ROOT,
                          env={**os.environ, **ASR_ENV}, capture_output=True, text=True, timeout=300)
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert result, proc.stderr[-3000:]
    return out, json.loads(result[0].removeprefix("RESULT "))


@pytest.fixture(scope="module")
def ray_run(local_ray, recordings, tmp_path_factory) -> tuple[Path, int, dict]:
    out = tmp_path_factory.mktemp("ray")
    rc, summary = _audit(["--ray", str(recordings), "--out", str(out), "--policy", POLICY, "--language", "en"])
    return out, rc, summary


def _findings(report: dict) -> list[tuple]:
    """What a finding says, without its times (compared apart, see below)."""
    return sorted((f["rule_id"], f["maps_to"], f["kind"], f["severity"], f["message"],
                   tuple((e["channel"], e["text"]) for e in f["evidence"])) for f in report["findings"])


def _times(report: dict) -> list[float]:
    return sorted(t for f in report["findings"] for e in f["evidence"] for t in (e["start_s"], e["end_s"]))


@pytest.mark.slow
@pytest.mark.model
def test_plain_audit_does_not_import_ray(sequential) -> None:
    out, result = sequential
    assert result == {"rc": 1, "ray": False}  # rc 1: the truncated recording
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.json")} == {
        "a.json", "b.json", "2024/c.json", "batch_summary.json"}


@pytest.mark.slow
@pytest.mark.model
def test_ray_run_finds_what_the_sequential_run_finds(sequential, ray_run) -> None:
    seq_out, _ = sequential
    ray_out, _, _ = ray_run
    found = set()
    for name in ("a", "b", "2024/c"):
        seq = json.loads((seq_out / f"{name}.json").read_text(encoding="utf-8"))
        par = json.loads((ray_out / f"{name}.json").read_text(encoding="utf-8"))
        assert [s["text"] for s in par["segments"]] == [s["text"] for s in seq["segments"]]
        assert [(s["start_s"], s["end_s"]) for s in par["segments"]] == [
            (s["start_s"], s["end_s"]) for s in seq["segments"]]  # numpy on one thread in both (one_blas_thread)
        assert _findings(par) == _findings(seq)
        assert _times(par) == _times(seq)
        assert par["scorecard"] == seq["scorecard"]
        assert (ray_out / f"{name}.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        found |= {f["maps_to"] for f in par["findings"]}
    assert "pci_card_number_spoken" in found  # the comparison is not between empty reports


@pytest.mark.slow
@pytest.mark.model
def test_a_truncated_recording_fails_alone(ray_run, recordings) -> None:
    out, rc, summary = ray_run
    assert rc == 1
    assert {k: summary[k] for k in ("recordings", "done", "skipped", "failed")} == {
        "recordings": 4, "done": 3, "skipped": 0, "failed": 1}
    assert summary["wall_s"] > 0 and json.loads((out / "summary.json").read_text())["failed"] == 1
    state = [json.loads(line) for line in (out / STATE_FILE).read_text().splitlines()]
    status = {r["name"]: r["status"] for r in state}
    assert status == {"a": "done", "b": "done", "2024/c": "done", "broken": "failed"}
    (broken,) = [r for r in state if r["status"] == "failed"]
    assert broken["path"] == str(recordings / "broken.flac")
    assert "AudioFileError" in broken["error"] and "cannot decode audio" in broken["error"]
    batch = json.loads((out / "batch_summary.json").read_text())
    assert len(batch["audited"]) == 3 and [f["file"] for f in batch["failed"]] == [broken["path"]]


@pytest.mark.slow
@pytest.mark.model
def test_a_killed_run_resumes_where_it_stopped(local_ray, recordings, tmp_path) -> None:
    src = tmp_path / "in"
    for rel in ("a.wav", "b.flac", "2024/c.wav"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((recordings / rel).read_bytes())
    out = tmp_path / "out"
    state_path = out / STATE_FILE
    args = ["audit", "--ray", str(src), "--ray-cpus", "1", "--out", str(out), "--policy", POLICY,
            "--language", "en"]
    # its own session, so that whatever it leaves behind can be cleaned up by process group
    driver = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=REPO_ROOT, env={**os.environ, **ASR_ENV},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        while not (state_path.exists() and '"status": "done"' in state_path.read_text()):
            assert driver.poll() is None, "the driver ended before auditing anything"
            assert time.monotonic() < deadline, "no recording done in time"
            time.sleep(0.2)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # Ray processes the dead driver may have left
    before = [json.loads(line) for line in state_path.read_text().splitlines() if line.endswith("}")]
    first = before[0]
    assert first["status"] == "done"
    first_report = Path(first["reports"][0])
    mtime = first_report.stat().st_mtime_ns

    rc, summary = _audit(args[1:])
    assert rc == 0
    done_before = sum(r["status"] == "done" for r in before)
    assert summary["recordings"] == 3 and summary["failed"] == 0
    assert summary["skipped"] == done_before and summary["done"] == 3 - done_before
    assert first_report.stat().st_mtime_ns == mtime  # not audited again
    latest = {}
    for line in state_path.read_text().splitlines():
        record = json.loads(line)
        latest[record["name"]] = record
    assert latest[first["name"]]["status"] == "skipped"
    assert {r["status"] for r in latest.values()} <= {"done", "skipped"} and len(latest) == 3
    assert all(Path(p).is_file() for r in latest.values() for p in r["reports"])
