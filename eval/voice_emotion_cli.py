"""`harken eval voice-emotion` and `harken train voice-emotion`.

  harken eval voice-emotion --data emodb/labels.csv --out R.json
  harken train voice-emotion --data emodb/labels.csv        (rewrites models/weights/voice_emotion/voice_emotion.npz)
  harken eval voice-emotion --features compare --data emodb/labels.csv --out R.json     (openSMILE ComParE, LOSO)
  harken train voice-emotion --features compare --out X.npz                            (a ComParE model)

--data is a path, or relative to ../shared/data or ../shared/data/emotion. --features (fast, the default and
the packaged model's set; compare or egemaps, openSMILE) picks the extractor; with --protocol held-out it must be the model's.
About 1 min on one core with the fast set (features for every utterance in wideband and telephone band, 8
small fits under LOSO, the duration benchmark); about 3 min with ComParE.

Protocol (never a number on speakers the scored model was trained on):
  auto      held_out if none of the file's speakers trained the shipped model, else loso (the default)
  loso      leave-one-speaker-out: a model per speaker, trained on the other speakers
  held-out  the shipped model; refused if the file has a speaker it was trained on

Output keys (stable; the README table and the acceptance checks read them):
  uar, anger_f1   wideband audio, normalisation --norm (default call-running: each speaker's utterances are
                  normalised with the running statistics of that speaker's utterances so far, in file order,
                  exactly what the live pipeline does per call channel)
  latency_ms      {p50, p95} wall time per utterance (the 2 s EmoDB clips): input checks + features +
                  normalisation + softmax, one thread; latency_cpu_ms the same in thread CPU time, which load
                  from other processes on a shared machine does not inflate
  latency_by_duration   {"2s", "5s", "8s", "10s", "15s": {wall_ms, cpu_ms: {p50, p95}, n}}: `classify()` end to
                  end (16 kHz input) on utterances made by joining one speaker's clips, what a 2-15 s call
                  turn costs; with loadavg {start, end} of the machine while it ran
  feature_set     the extractor the scored models use
  telephone       {uar, anger_f1, ...} the same utterances through the 8 kHz mu-law 300-3400 Hz channel
  normalisation_variants   uar / anger_f1 for every mode (call-running, call-batch, global) and band
  arousal_auc, per_class_recall, confusion, per_speaker_uar, protocol, model, n, speakers, date

  harken eval escalation --calls calls/dev --out R.json
Replays each call's turns through intelligence.escalation with the ground-truth turn sentiment and emotion as
the text classifiers' output (score 1.0), without and with the packaged voice model on each customer turn (cut
from the stereo 8 kHz file). Reference: a call "should escalate" when a customer turn is labelled angry.
Keys: per mode (text, text+voice): escalation_recall, escalation_precision (any escalation alert vs the
reference), high_severity_calls, alerted_calls, first_alert_turn per alerted call; voice_latency_ms {p50, p95}
(wall) and voice_latency_cpu_ms (thread CPU) of `classify()` on the customer turns (8 kHz input, 0.7-16 s);
calm_turn_voice_anger {turns, max, p95, over_0.5, over_0.8}: voice anger on customer turns of >= 1 s whose
reference emotion is not angry (the false-alarm level fusion's thresholds are set against).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"


def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("voice-emotion", help="voice emotion UAR / anger F1 on EmoDB-style labels.csv")
    p.add_argument("--data", type=Path, default=Path("emodb/labels.csv"), help="labels.csv (EmoDB layout)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--protocol", choices=("auto", "loso", "held-out"), default="auto")
    p.add_argument("--norm", choices=("call-running", "call-batch", "global"), default="call-running")
    p.add_argument("--model", type=Path, default=None, help="model .npz (default: the packaged one)")
    p.add_argument("--c", type=float, default=None, help="LOSO only: regularisation (default: training's)")
    p.add_argument("--prior-weight", type=float, default=None, help="LOSO only: prior weight in utterances")
    p.add_argument("--feature-cache", type=Path, default=None, help="reuse/store raw features in this .npz")
    p.add_argument("--features", choices=("fast", "compare", "egemaps"), default=None,
                   help="feature set (default: the model's; the packaged model uses fast)")
    p.set_defaults(func=_eval)

    p = sub.add_parser("escalation", help="escalation alerts on scripted calls (ground-truth text + voice model)")
    p.add_argument("--calls", type=Path, default=Path("calls/dev"), help="calls folder with gt/ and audio/")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, default=None, help="voice model .npz (default: the packaged one)")
    p.set_defaults(func=_eval_escalation)


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("voice-emotion", help="train the voice-emotion model on EmoDB (wideband + telephone)")
    p.add_argument("--data", type=Path, default=Path("emodb/labels.csv"))
    p.add_argument("--out", type=Path, default=None, help="model .npz (default: the packaged path)")
    p.add_argument("--c", type=float, default=None)
    p.add_argument("--prior-weight", type=float, default=None)
    p.add_argument("--feature-cache", type=Path, default=None)
    p.add_argument("--features", choices=("fast", "compare", "egemaps"), default="fast",
                   help="feature set: fast (numpy, the packaged model) or compare (openSMILE ComParE 2016)")
    p.set_defaults(func=_train)


def resolve_data(path: Path) -> Path:
    """`path` as given, else under ../shared/data, else under ../shared/data/emotion."""
    for candidate in (path, DEFAULT_DATA_ROOT / path, DEFAULT_DATA_ROOT / "emotion" / path):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"labels file not found: {path} (also looked under {DEFAULT_DATA_ROOT})")


def _one_thread() -> None:
    # Training and benchmarks share 2 cores with other work: keep BLAS/OpenMP to one thread. numpy is already
    # imported here, so the variables alone would be too late for OpenBLAS: limit the loaded pools as well.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from threadpoolctl import threadpool_limits  # comes with scikit-learn (training/eval only)

    threadpool_limits(1)


def _table(labels_csv: Path, cache: Path | None, feature_set: str):
    from models.training_voice.data import BANDS, FeatureTable, extract_table, read_labels
    from models.voice_emotion.features import extractor_for

    utterances = read_labels(labels_csv)
    files = np.array([str(u.audio_path.resolve()) for u in utterances])
    extractor = extractor_for(feature_set)
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as d:
            same_set = "feature_set" in d and str(d["feature_set"]) == extractor.feature_set
            if same_set and d["files"].shape == files.shape and bool(np.all(d["files"] == files)):
                log.info("features from cache %s", cache)
                return FeatureTable(
                    tuple(utterances),
                    {b: d[f"features_{b}"] for b in BANDS},
                    {b: d[f"extract_ms_{b}"] for b in BANDS},
                    extractor.feature_set,
                    {b: d[f"extract_cpu_ms_{b}"] for b in BANDS},
                )
            log.info("cache %s is for other files or another feature set; re-extracting", cache)
    log.info("extracting %s features for %d utterances x %d bands", extractor.feature_set, len(utterances),
             len(BANDS))
    table = extract_table(utterances, extractor, BANDS)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, files=files, feature_set=np.array(extractor.feature_set),
                            **{f"features_{b}": table.features[b] for b in BANDS},
                            **{f"extract_ms_{b}": table.extract_ms[b] for b in BANDS},
                            **{f"extract_cpu_ms_{b}": table.extract_cpu_ms[b] for b in BANDS})
    return table


def _percentiles(values: np.ndarray | list[float]) -> dict[str, float]:
    return {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2)}


def _loadavg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not on every platform
        return -1.0


BENCH_DURATIONS_S: tuple[float, ...] = (2.0, 5.0, 8.0, 10.0, 15.0)
BENCH_PER_DURATION = 16


def _latency_by_duration(table, clf) -> dict[str, object]:
    """`classify()` end to end on utterances of 2-15 s made by joining consecutive clips of one speaker."""
    from models.training_voice.data import load_audio

    by_speaker: dict[str, list] = {}
    for u in table.utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    clips = [load_audio(u)[0] for spk in sorted(by_speaker) for u in by_speaker[spk][:24]]
    out: dict[str, object] = {"loadavg": {"start": _loadavg()}}
    clf.classify(clips[0], 16000, call_stats=clf.new_call_stats())  # warm-up (first-call allocations)
    for duration_s in BENCH_DURATIONS_S:
        need = int(duration_s * 16000)
        wall: list[float] = []
        cpu: list[float] = []
        stats = clf.new_call_stats()
        for k in range(BENCH_PER_DURATION):
            parts, total, j = [], 0, k * 7
            while total < need:
                clip = clips[j % len(clips)]
                parts.append(clip)
                total += len(clip)
                j += 1
            pcm = np.concatenate(parts)[:need]
            t0, c0 = time.perf_counter(), time.thread_time()
            clf.classify(pcm, 16000, call_stats=stats)
            cpu.append((time.thread_time() - c0) * 1000.0)
            wall.append((time.perf_counter() - t0) * 1000.0)
        out[f"{duration_s:g}s"] = {"wall_ms": _percentiles(wall), "cpu_ms": _percentiles(cpu), "n": len(wall)}
    out["loadavg"] = {**out["loadavg"], "end": _loadavg()}  # type: ignore[dict-item]
    return out


def _eval(args: argparse.Namespace) -> int:
    _one_thread()
    from models.training_voice.data import read_labels
    from models.training_voice.evaluate import (
        NORM_MODES,
        per_speaker_uar,
        predict_held_out,
        predict_loso,
        score,
    )
    from models.training_voice.train import DEFAULT_C, DEFAULT_PRIOR_WEIGHT, fit_model
    from models.voice_emotion import VoiceEmotionClassifier
    from models.voice_emotion.features import FEATURE_SETS
    from models.voice_emotion.model import DEFAULT_MODEL_PATH, VoiceEmotionModel

    labels_csv = resolve_data(args.data)
    model = VoiceEmotionModel.load(args.model or DEFAULT_MODEL_PATH)
    feature_set = FEATURE_SETS[args.features] if args.features else model.feature_set
    speakers_in_file = {u.speaker for u in read_labels(labels_csv)}
    protocol = args.protocol
    if protocol == "auto":
        protocol = "loso" if speakers_in_file & set(model.train_speakers) else "held-out"
    if protocol == "held-out" and feature_set != model.feature_set:
        raise ValueError(f"{model.model_id} uses {model.feature_set} features, not {feature_set}")
    table = _table(labels_csv, args.feature_cache, feature_set)
    speakers = table.speakers
    if protocol == "loso":
        c = args.c if args.c is not None else DEFAULT_C
        n0 = args.prior_weight if args.prior_weight is not None else DEFAULT_PRIOR_WEIGHT
        preds = predict_loso(table, c=c, prior_weight=n0)
    else:
        preds = predict_held_out(table, model)
    labels = table.labels
    main = score(labels, preds.probabilities[("wideband", args.norm)], preds.classes)
    tel = score(labels, preds.probabilities[("telephone", args.norm)], preds.classes)
    latency = table.extract_ms["wideband"] + preds.classify_ms
    latency_cpu = table.extract_cpu_ms["wideband"] + preds.classify_cpu_ms
    # Timing only: any model of this feature set costs the same (the packaged one if it matches).
    bench_model = model if model.feature_set == feature_set else fit_model(
        table.features, table.labels, table.speakers, feature_set=feature_set)
    by_duration = _latency_by_duration(table, VoiceEmotionClassifier(bench_model))
    report = {
        "task": "voice-emotion",
        "date": dt.date.today().isoformat(),
        "data": str(labels_csv),
        "n": len(labels),
        "speakers": sorted(set(speakers.tolist())),
        "protocol": preds.protocol,
        "model": list(preds.model_ids),
        "feature_set": feature_set,
        "band": "wideband",
        "norm": args.norm,
        **main,
        "latency_ms": _percentiles(latency),
        "latency_cpu_ms": _percentiles(latency_cpu),
        "latency_by_duration": by_duration,
        "telephone": {"band": "8 kHz mu-law, 300-3400 Hz, upsampled to 16 kHz", **tel},
        "normalisation_variants": {
            mode: {band: {k: v for k, v in score(labels, preds.probabilities[(band, mode)], preds.classes).items()
                          if k in ("uar", "anger_f1", "arousal_auc")}
                   for band in ("wideband", "telephone")}
            for mode in NORM_MODES
        },
        "per_speaker_uar": per_speaker_uar(labels, speakers, preds.probabilities[("wideband", args.norm)],
                                           preds.classes),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("voice-emotion %s %s (%s): uar %.4f anger_f1 %.4f | telephone uar %.4f | latency p50 %.1f p95 %.1f "
             "ms (cpu p95 %.1f ms) -> %s", report["protocol"], feature_set, args.norm, report["uar"],
             report["anger_f1"], tel["uar"], report["latency_ms"]["p50"], report["latency_ms"]["p95"],
             report["latency_cpu_ms"]["p95"], args.out)
    return 0


def _train(args: argparse.Namespace) -> int:
    _one_thread()
    from models.training_voice.train import DEFAULT_C, DEFAULT_PRIOR_WEIGHT, fit_model
    from models.voice_emotion.features import FEATURE_SETS
    from models.voice_emotion.model import DEFAULT_MODEL_PATH

    labels_csv = resolve_data(args.data)
    table = _table(labels_csv, args.feature_cache, FEATURE_SETS[args.features])
    c = args.c if args.c is not None else DEFAULT_C
    n0 = args.prior_weight if args.prior_weight is not None else DEFAULT_PRIOR_WEIGHT
    model = fit_model(table.features, table.labels, table.speakers, c=c, prior_weight=n0,
                      feature_set=table.feature_set)
    out = args.out or DEFAULT_MODEL_PATH
    model.save(out)
    log.info("voice-emotion model %s (%d speakers, %d utterances x %d bands, C=%g, prior %g) -> %s (%d kB)",
             model.model_id, len(model.train_speakers), len(table.labels), len(table.features), c, n0, out,
             out.stat().st_size // 1024)
    return 0


def _replay_call(gt: dict, stereo: np.ndarray, rate_hz: int, clf,
                 with_voice: bool) -> tuple[list, list[tuple[float, float]], list[float]]:
    from intelligence.escalation import EscalationTracker, UtteranceAffect
    from intelligence.fusion import TextAffect

    tracker = EscalationTracker(gt["call_id"])
    stats = clf.new_call_stats() if with_voice else None
    alerts = []
    voice_ms: list[tuple[float, float]] = []
    calm_anger: list[float] = []  # voice anger on customer turns of >= 1 s not labelled angry
    for turn in gt["turns"]:
        voice = None
        if with_voice and turn["speaker"] == "customer":
            seg = stereo[int(turn["start_s"] * rate_hz): int(turn["end_s"] * rate_hz), turn["channel"]]
            t0, c0 = time.perf_counter(), time.thread_time()
            voice = clf.classify(seg, sample_rate_hz=rate_hz, call_stats=stats).to_cue()
            voice_ms.append(((time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0))
            if turn["emotion"] != "angry" and voice.usable and voice.duration_s >= 1.0:
                calm_anger.append(voice.anger)
        text = TextAffect(turn["sentiment"], 1.0, turn["emotion"], 1.0)
        update = tracker.observe(UtteranceAffect(str(turn["index"]), turn["speaker"], turn["channel"],
                                                 turn["start_s"], turn["end_s"], text, voice))
        alerts += [(turn["index"], a) for a in update.alerts]
    return alerts, voice_ms, calm_anger


def _eval_escalation(args: argparse.Namespace) -> int:
    _one_thread()
    import soundfile as sf

    from intelligence.escalation import ESCALATION_ALERT
    from models.voice_emotion import VoiceEmotionClassifier
    from models.voice_emotion.model import DEFAULT_MODEL_PATH

    calls_dir = args.calls if args.calls.is_dir() else DEFAULT_DATA_ROOT / args.calls
    clf = VoiceEmotionClassifier.from_packaged(args.model or DEFAULT_MODEL_PATH)
    gts = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((calls_dir / "gt").glob("*.json"))]
    reference = {g["call_id"] for g in gts
                 if any(t["speaker"] == "customer" and t["emotion"] == "angry" for t in g["turns"])}
    report: dict[str, object] = {"task": "escalation", "date": dt.date.today().isoformat(),
                                 "calls": len(gts), "data": str(calls_dir),
                                 "reference_calls": sorted(reference), "voice_model": clf.model.model_id}
    all_voice_ms: list[tuple[float, float]] = []  # (wall, cpu) per customer turn
    calm_anger: list[float] = []
    for mode in ("text", "text+voice"):
        first: dict[str, int] = {}
        high: list[str] = []
        for gt in gts:
            stereo, rate_hz = sf.read(calls_dir / gt["audio"]["stereo_8k"], dtype="float32") \
                if mode == "text+voice" else (np.zeros((0, 2), dtype=np.float32), 8000)
            alerts, voice_ms, anger = _replay_call(gt, stereo, rate_hz, clf, mode == "text+voice")
            all_voice_ms += voice_ms
            calm_anger += anger
            esc = [(i, a) for i, a in alerts if a.alert_type == ESCALATION_ALERT]
            if esc:
                first[gt["call_id"]] = esc[0][0]
                if any(a.severity.value == "high" for _, a in esc):
                    high.append(gt["call_id"])
        alerted = set(first)
        report[mode] = {
            "escalation_recall": round(len(alerted & reference) / max(1, len(reference)), 4),
            "escalation_precision": round(len(alerted & reference) / max(1, len(alerted)), 4),
            "alerted_calls": sorted(alerted),
            "high_severity_calls": sorted(high),
            "first_alert_turn": first,
        }
    report["voice_latency_ms"] = _percentiles([w for w, _ in all_voice_ms])
    report["voice_latency_cpu_ms"] = _percentiles([c for _, c in all_voice_ms])
    # What fusion's voice_anger_floor (0.5) and raised_voice_anger (0.8) are set against: the synthetic voices
    # do not act emotion, so anger on these turns is the model's false-alarm level.
    report["calm_turn_voice_anger"] = {"turns": len(calm_anger), "max": round(max(calm_anger), 4),
                                       "p95": round(float(np.percentile(calm_anger, 95)), 4),
                                       "over_0.5": int(sum(a > 0.5 for a in calm_anger)),
                                       "over_0.8": int(sum(a > 0.8 for a in calm_anger))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("escalation: text %s | text+voice %s -> %s", report["text"], report["text+voice"], args.out)
    return 0
