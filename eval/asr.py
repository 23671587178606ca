"""Streaming ASR evaluation on NeMo-style manifests: accuracy against an offline decode, and latency.

Definitions (all per word of the final transcript, then p50/p95 over all words of all clips):
- final_latency_s: time the word first appears in a *final* event minus the word's end time in the audio;
- first_partial_latency_s: time the word first appears in *any* event (usually a partial) minus its end time.
"Time" is the real-time clock of a live stream: with --realtime the audio is really fed at real-time speed and
wall-clock emission times are used; otherwise each clip is replayed with the pipeline's simulated real-time
clock (a decode issued when the decoder is free, done after its measured compute time; see pipelines/session.py).
WER uses Whisper's English normaliser; `offline_wer` is the same model decoding the whole file with
faster-whisper's standard 30 s pipeline (beam 5). Mandarin manifests (`"language": "zh"`) are scored by character
error rate (`cer`, `offline_cer`): both texts are NFKC-folded (full-width letters and digits to ASCII),
converted to Simplified characters (OpenCC t2s), numbers written out in characters as the references write them
(`intelligence.zh_numbers.spell_numbers`: 180天 -> 一百八十天, 3.2% -> 百分之三点二, 工号8623 -> 工号八六二三),
punctuation and symbols removed (Whisper's basic normaliser) and spaces dropped; then every character is a token.
`cer_ops` splits the errors into substitutions, deletions and insertions (per reference character), so dropped
stretches show as deletions.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from intelligence.captions import plain_text
from intelligence.text import normalize_token
from pipelines.audio_io import read_audio
from pipelines.config import SessionConfig
from pipelines.offline import finals, replay
from pipelines.runtime import build_runtime
from pipelines.settings import HarkenSettings
from pipelines.vocabulary import build_vocabularies


@dataclass(frozen=True)
class Clip:
    path: Path
    text: str
    language: str
    duration_s: float


def load_manifest(path: Path, limit: int | None = None) -> list[Clip]:
    clips = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            clips.append(Clip(path.parent / row["audio_filepath"], row.get("text", ""),
                              row.get("language", "en"), float(row.get("duration", 0.0))))
            if limit and len(clips) >= limit:
                break
    return clips


def normalizer(language: str):
    if language == "zh":
        import unicodedata

        from whisper_normalizer.basic import BasicTextNormalizer

        from intelligence.text import to_simplified
        from intelligence.zh_numbers import spell_numbers

        basic = BasicTextNormalizer()

        def zh(text: str) -> str:
            text = spell_numbers(to_simplified(unicodedata.normalize("NFKC", text)))
            return " ".join(basic(text).replace(" ", ""))

        return zh
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def error_rate(refs: list[str], hyps: list[str], language: str) -> float:
    """Corpus WER (CER for Chinese, computed on characters separated by spaces)."""
    import jiwer

    norm = normalizer(language)
    pairs = [(norm(r), norm(h)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r.strip()]
    if not pairs:
        return 0.0
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def error_ops(refs: list[str], hyps: list[str], language: str) -> dict[str, float]:
    """Substitution, deletion and insertion rates (each per reference token) of the corpus."""
    import jiwer

    norm = normalizer(language)
    pairs = [(norm(r), norm(h)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r.strip()]
    if not pairs:
        return {"substitutions": 0.0, "deletions": 0.0, "insertions": 0.0}
    out = jiwer.process_words([r for r, _ in pairs], [h if h.strip() else "" for _, h in pairs])
    n = out.hits + out.substitutions + out.deletions
    return {"substitutions": round(out.substitutions / n, 4), "deletions": round(out.deletions / n, 4),
            "insertions": round(out.insertions / n, 4)}


def correction_precision(refs: list[str], events_per_clip: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """How many corrections were made (domain lexicon and homophones, also per kind), and how many the references
    bear out.

    A correction to a term counts as right up to the number of times the reference says that term more than the
    uncorrected captions wrote it (per clip), so a correction that adds a term the speaker never said is wrong."""
    made: dict[str, int] = {}
    right: dict[str, int] = {}
    for ref, events in zip(refs, events_per_clip, strict=True):
        fins = [e for e in events if e.get("type") == "transcript" and e.get("kind") == "final"]
        by_term: dict[tuple[str, str], int] = {}
        for e in fins:
            for c in e.get("corrections") or ():
                if c.get("kind") == "number":  # a number written in digits: scored by CER, not a word fix
                    continue
                key = (c.get("kind", "lexicon"), c["term"])
                by_term[key] = by_term.get(key, 0) + 1
        if not by_term:
            continue
        text = "".join(e.get("text", "") for e in fins)
        for (kind, term), n in by_term.items():
            before = text.count(term) - n  # the term as the decoder itself wrote it
            made[kind] = made.get(kind, 0) + n
            right[kind] = right.get(kind, 0) + min(n, max(0, ref.count(term) - before))
    total, good = sum(made.values()), sum(right.values())
    return {"made": total, "precision": round(good / total, 3) if total else None,
            "by_kind": {k: {"made": made[k], "precision": round(right[k] / made[k], 3)} for k in sorted(made)}}


def word_latencies(events: list[dict[str, Any]], clock: str) -> tuple[list[float], list[float]]:
    """(final latencies, first-appearance latencies) for every word of the finals of one stream.

    `clock` is "media_clock_s" (simulated) or "wall_s" (added by the realtime runner)."""
    final_lat, first_lat = [], []
    seen: list[tuple[int, str, float, float]] = []  # (channel, key, start_s, clock) of every word shown
    for ev in events:
        if ev.get("type") != "transcript":
            continue
        for w in ev.get("words", []):
            seen.append((ev["channel"], normalize_token(w["text"]), w["start_s"], ev[clock]))
        if ev["kind"] != "final":
            continue
        for w in ev.get("words", []):
            end = w["end_s"]
            final_lat.append(max(0.0, ev[clock] - end))
            key = normalize_token(w["text"])
            first = min((c for ch, k, s, c in seen if ch == ev["channel"] and k == key
                         and abs(s - w["start_s"]) < 0.6), default=ev[clock])
            first_lat.append(max(0.0, first - end))
    return final_lat, first_lat


def latency_by_commit(events: list[dict[str, Any]], clock: str) -> dict[str, list[float]]:
    """Final-caption latency of every word, grouped by why its final was committed (the event's `commit`:
    agreement inside the utterance, utterance end, forced): where the time goes."""
    out: dict[str, list[float]] = {}
    for ev in events:
        if ev.get("type") == "transcript" and ev.get("kind") == "final":
            lat = out.setdefault(ev.get("commit") or "unknown", [])
            lat.extend(max(0.0, ev[clock] - w["end_s"]) for w in ev.get("words", []))
    return out


def pct(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "mean": None}
    arr = np.asarray(values)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p95": round(float(np.percentile(arr, 95)), 3),
            "mean": round(float(arr.mean()), 3)}


async def _realtime_stream(manager, audio, language: str) -> list[dict[str, Any]]:
    """Feed one clip at real-time speed to a live session; stamp events with wall seconds since start."""
    config = SessionConfig(source="eval", language=language, sample_rate_hz=audio.sample_rate_hz,
                           channel_names=("speaker",))
    session = await manager.open_session(config, overflow="block", paced=False)
    _h, sub = session.subscribe()
    events: list[dict[str, Any]] = []
    t0 = time.monotonic()

    async def collect() -> None:
        while True:
            ev = await sub.queue.get()
            if ev.get("type") == "end":
                return
            events.append({**ev, "wall_s": time.monotonic() - t0})

    collector = asyncio.create_task(collect())
    step = int(audio.sample_rate_hz * 0.1)
    mono = audio.mono()
    for i in range(0, mono.samples.shape[0], step):
        await session.push_pcm(0, mono.samples[i : i + step, 0].astype("<i2").tobytes())
        ahead = (i + step) / audio.sample_rate_hz - (time.monotonic() - t0)
        if ahead > 0:
            await asyncio.sleep(ahead)
    await session.close("end_of_file")
    await collector
    return events


def run_asr_eval(manifest: Path, *, limit: int | None, realtime: bool, settings: HarkenSettings,
                 offline: bool = True, offline_beam: int = 5, progress: bool = True,
                 fixed_decode_s: float | None = None) -> dict[str, Any]:
    """`fixed_decode_s`: advance the replay's simulated clock by this much per decode instead of the decode's
    measured time, so transcripts do not depend on machine load (for comparing code; latencies then model a
    machine with that decode time)."""
    clips = load_manifest(manifest, limit)
    if not clips:
        raise ValueError(f"{manifest}: no clips")
    language = clips[0].language if clips[0].language in ("en", "zh") else "en"

    async def run() -> dict[str, Any]:
        rt = build_runtime(settings)
        try:
            refs, hyps, offl = [], [], []
            clip_events: list[list[dict[str, Any]]] = []
            final_lat, first_lat = [], []
            by_commit: dict[str, list[float]] = {}
            audio_s = 0.0
            stream_wall = 0.0
            from tqdm import tqdm

            bar = tqdm(clips, desc="eval asr", unit="clip", disable=not progress)
            for clip in bar:
                audio = read_audio(clip.path)
                audio_s += audio.duration_s
                t = time.perf_counter()
                if realtime:
                    events = await _realtime_stream(rt.manager, audio, clip.language)
                    clock = "wall_s"
                else:
                    _sid, events = await replay(rt.manager, audio.mono(), language=clip.language,
                                                channel_names=("speaker",), source="eval",
                                                simulated_decode_s=fixed_decode_s)
                    clock = "media_clock_s"
                stream_wall += time.perf_counter() - t
                fl, pl = word_latencies(events, clock)
                final_lat += fl
                first_lat += pl
                for reason, lat in latency_by_commit(events, clock).items():
                    by_commit.setdefault(reason, []).extend(lat)
                refs.append(clip.text)
                hyps.append(plain_text(finals(events)))
                clip_events.append(events)
                if offline:
                    pcm = audio.mono().samples[:, 0].astype(np.float32) / 32768.0
                    if audio.sample_rate_hz != 16000:
                        import soxr

                        pcm = soxr.resample(pcm, audio.sample_rate_hz, 16000).astype(np.float32)
                    backend = rt.manager.executor.decoder
                    vocab = build_vocabularies(settings.asr_vocabulary, settings.asr_domain_vocabulary).get(
                        clip.language, "") if settings.asr_vocabulary_prompt else ""  # steered as the stream is
                    offl.append(await asyncio.to_thread(backend.transcribe_offline, pcm, clip.language,
                                                        offline_beam, vocab))
            ex = rt.manager.executor
            backend = ex.decoder
            result: dict[str, Any] = {
                "manifest": str(manifest),
                "clips": len(clips),
                "audio_s": round(audio_s, 2),
                "language": language,
                "metric": "cer" if language == "zh" else "wer",
                "wer": round(error_rate(refs, hyps, language), 4),
                "offline_wer": round(error_rate(refs, offl, language), 4) if offline else None,
                "final_latency_s": pct(final_lat),
                "first_partial_latency_s": pct(first_lat),
                # the same final latencies split by why each final was committed, with each part's share of words
                "final_latency_by_commit_s": {
                    k: {**pct(v), "words": len(v), "share": round(len(v) / max(1, len(final_lat)), 3)}
                    for k, v in sorted(by_commit.items())},
                "rtf": round(ex.stats.decode_s_total / audio_s, 3) if audio_s else None,
                "stream_wall_rtf": round(stream_wall / audio_s, 3) if audio_s else None,
                "decodes": ex.stats.decodes,
                "model": backend.model_name,
                "device": f"{settings.asr_device} ({settings.asr_compute_type}, {settings.asr_threads} threads)",
                "mode": "realtime" if realtime else "simulated-realtime replay" + (
                    f" (fixed decode time {fixed_decode_s} s)" if fixed_decode_s else ""),
                "offline_beam_size": offline_beam if offline else None,
                "streaming_beam_size": settings.asr_beam_size,
                "step_s": settings.step_s,
                "vocabulary": {"configured": settings.asr_vocabulary, "packaged": settings.asr_domain_vocabulary,
                               "in_prompt": settings.asr_vocabulary_prompt},
                "zh_phonetic_correction": settings.zh_phonetic_correction,
                "zh_homophone_correction": settings.zh_homophone_correction,
                "zh_written_numbers": settings.zh_written_numbers,
                # words weighting the homophone corrector's language model (packaged glossary + deployment terms)
                "zh_domain_terms": len(rt.manager.homophone_params.domain_terms)
                if rt.manager.homophone_params else 0,
                "tail_redecode_s": settings.tail_redecode_s,
                "date": time.strftime("%Y-%m-%d"),
                # every clip, so a streaming-vs-offline gap can be traced to the clips that make it
                "samples": [{"ref": r, "hyp": h, "offline": o} for r, h, o in
                            zip(refs, hyps, offl or [""] * len(refs), strict=False)],
            }
            if offline and result["offline_wer"]:
                result["wer_ratio"] = round(result["wer"] / result["offline_wer"], 3)
            if language == "zh":  # the same figures under their proper names, plus where the errors are
                result["cer"] = result["wer"]
                result["offline_cer"] = result["offline_wer"]
                result["cer_ratio"] = result.get("wer_ratio")
                result["cer_ops"] = error_ops(refs, hyps, language)
                if offline:
                    result["offline_cer_ops"] = error_ops(refs, offl, language)
                result["corrections"] = correction_precision(refs, clip_events)
                result["per_clip_cer"] = [round(error_rate([r], [h], language), 4) for r, h in zip(refs, hyps,
                                                                                                   strict=True)]
            return result
        finally:
            await rt.aclose()

    return asyncio.run(run())
