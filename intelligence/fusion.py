"""Fusing what the words say (text sentiment and emotion) with how they sound (voice emotion) per utterance.

The text classifiers carry most of the signal in a contact center; the voice model's job is to catch the caller
whose words stay polite while the voice is raised, and to tell a heated complaint from a calm one. So the
fused score starts from the text and the voice only moves it:
  - voice anger (P(anger) + half of P(disgust)) above `voice_anger_floor` pushes valence down, up to
    `voice_anger_weight`, whatever the words say (sarcastic "great, thanks a lot" included);
  - high arousal makes already negative words more negative (arousal alone is not negative: happiness is
    high-arousal too, so it never pushes on its own; low arousal does not soften words either, since cold
    anger and weary frustration are real);
  - a voice the model could not use (silence, too short), a short utterance (< `min_voice_duration_s`, where
    functionals are noisy) or a low-confidence voice label changes nothing.
Valence is in [-1, 1]: -1 clearly negative/angry, 0 neutral, +1 clearly positive.
Pure and synchronous: no model code here, the voice model's result arrives as a `VoiceCue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Valence of the contact-center emotion categories (intelligence.emotion_map); unknown labels count as 0.
DEFAULT_EMOTION_VALENCE: Mapping[str, float] = {
    "angry": -1.0,
    "frustrated": -0.7,
    "anxious": -0.4,
    "confused": -0.2,
    "neutral": 0.0,
    "happy": 0.8,
}
SENTIMENT_SIGN: Mapping[str, float] = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}


@dataclass(frozen=True, slots=True)
class VoiceCue:
    """The voice model's view of one utterance, reduced to what fusion needs.

    `anger` and `arousal` are in [0, 1]; `usable` is False when the audio could not be judged (silence, too
    short), in which case fusion ignores the cue.
    """

    label: str
    confidence: float
    arousal: float
    anger: float
    usable: bool = True
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class TextAffect:
    """Text classifiers' output for one utterance (labels as in intelligence.emotion_map), scores in [0, 1]."""

    sentiment: str = "neutral"
    sentiment_score: float = 1.0
    emotion: str = "neutral"
    emotion_score: float = 1.0


@dataclass(frozen=True, slots=True)
class FusionConfig:
    """Weights of the fusion rule. Defaults were set on the dev calls' ground truth, see tests/test_escalation."""

    emotion_valence: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EMOTION_VALENCE))
    # How much text emotion counts against text sentiment in the text valence (0: sentiment only).
    emotion_share: float = 0.5
    # On the dev calls' synthetic voices (which do not act emotion) the model's anger went up to ~0.6 on calm
    # turns of longer than a second (ComParE model: 0.67, 5 of 127 turns above 0.5; the fast-feature model of
    # 2026-11-27: 0.63, 1 of 127): below the floor voice anger does nothing.
    voice_anger_floor: float = 0.5
    voice_anger_weight: float = 0.6
    arousal_gain: float = 0.5
    min_voice_confidence: float = 0.3
    min_voice_duration_s: float = 1.0
    # Voice anger at or above this (and words not clearly positive) labels the utterance angry. Set high on
    # purpose: on the dev calls' synthetic (unacted) voices an earlier model's anger reached 0.78 on a calm turn.
    raised_voice_anger: float = 0.8
    positive_words_guard: float = 0.5


@dataclass(frozen=True, slots=True)
class FusedAffect:
    """Fused result for one utterance: valence in [-1, 1], an emotion label, and where it came from."""

    valence: float
    text_valence: float
    emotion: str
    emotion_source: str  # 'text' | 'voice' | 'text+voice'
    voice_raised: bool


def text_valence(text: TextAffect, config: FusionConfig) -> float:
    """Valence of the words alone: sentiment sign x score, blended with the emotion category's valence."""
    sentiment_v = SENTIMENT_SIGN.get(text.sentiment, 0.0) * _unit(text.sentiment_score)
    emotion_v = config.emotion_valence.get(text.emotion, 0.0) * _unit(text.emotion_score)
    share = _unit(config.emotion_share)
    return (1.0 - share) * sentiment_v + share * emotion_v


def fuse(text: TextAffect | None, voice: VoiceCue | None, config: FusionConfig | None = None) -> FusedAffect:
    """Fuse one utterance's text affect with its voice cue (either may be missing)."""
    cfg = config or FusionConfig()
    words_v = text_valence(text, cfg) if text is not None else 0.0
    valence = words_v
    emotion = text.emotion if text is not None else "neutral"
    source = "text"
    raised = False
    if (voice is not None and voice.usable and voice.confidence >= cfg.min_voice_confidence
            and voice.duration_s >= cfg.min_voice_duration_s):
        anger = _unit(voice.anger)
        if valence < 0.0:
            valence *= 1.0 + cfg.arousal_gain * max(0.0, 2.0 * _unit(voice.arousal) - 1.0)
        if anger > cfg.voice_anger_floor:
            valence -= cfg.voice_anger_weight * (anger - cfg.voice_anger_floor) / (1.0 - cfg.voice_anger_floor)
        raised = anger >= cfg.raised_voice_anger and words_v < cfg.positive_words_guard
        if raised:
            source = "text+voice" if emotion == "angry" else "voice"
            emotion = "angry"
    return FusedAffect(
        valence=max(-1.0, min(1.0, valence)),
        text_valence=words_v,
        emotion=emotion,
        emotion_source=source,
        voice_raised=raised,
    )


def _unit(x: float) -> float:
    return max(0.0, min(1.0, float(x)))
