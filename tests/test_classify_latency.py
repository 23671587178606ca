"""`harken eval classify-latency` on two real dev calls (a few turns each): the JSON a reader of the results
table relies on, and measurements that hang together (every utterance timed, wall >= each stage)."""

from __future__ import annotations

import json
from pathlib import Path

from api.cli import main


def test_classify_latency_report_shape(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "R.json"
    rc = main(["eval", "classify-latency", "--calls", str(shared_data / "calls" / "dev"), "--out", str(out),
               "--call-ids", "dev_en_01,dev_zh_01", "--max-turns", "2"])
    assert rc == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["utterances"] == 4 and report["calls"] == 2
    assert set(report["by_language"]) == {"en", "zh"}
    for section in [report, *report["by_language"].values()]:
        lat = section["latency_ms"]
        assert set(lat) == {"p50", "p95", "max"} and 0 < lat["p50"] <= lat["p95"] <= lat["max"]
        assert set(section["by_stage"]) == {"text", "voice"}
        assert all(0 < v["p50"] <= v["max"] for v in section["by_stage"].values())
    assert report["by_language"]["zh"]["utterances"] == 2
    rows = report["per_utterance"]
    assert [r["language"] for r in rows] == ["en", "en", "zh", "zh"]
    for r in rows:  # text and voice ran in parallel: the utterance is ready when the slower one is
        assert r["wall_ms"] >= max(r["text_ms"], r["voice_ms"]) - 0.01
    assert report["order"] == "parallel" and report["date"] and report["cpu"]["cores"] >= 1
    assert {"intent", "emotion", "sentiment"} <= set(report["models"])
