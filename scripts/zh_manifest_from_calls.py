"""Build a zh-calls-style ASR manifest (whole-call 16 kHz mono audio + the reference text of every turn in time
order) from scenario calls rendered with ../shared/tools/scenarios, for `harken eval asr`.

    python scripts/zh_manifest_from_calls.py RENDERED_DIR OUT.jsonl [--language zh]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("calls", type=Path, help="a rendered set: manifest.jsonl, audio/, gt/")
    ap.add_argument("out", type=Path)
    ap.add_argument("--language", default="zh")
    args = ap.parse_args()
    rows = []
    for line in (args.calls / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        call = json.loads(line)
        if call.get("language") != args.language or not call.get("mono_16k"):
            continue
        gt = json.loads((args.calls / call["gt"]).read_text(encoding="utf-8"))
        turns = sorted(gt["turns"], key=lambda t: float(t.get("start_s", 0.0)))
        rows.append({"audio_filepath": str((args.calls / call["mono_16k"]).resolve()), "duration": gt["duration_s"],
                     "text": "".join(t["text"] for t in turns), "language": args.language,
                     "call_id": call["call_id"]})
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} calls -> {args.out}")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
