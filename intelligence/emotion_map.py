"""From GoEmotions' 28 labels to what a contact center acts on: six emotion categories and three sentiments.

GoEmotions (Demszky et al., 2020; google-research/goemotions, Apache-2.0) labels Reddit comments with 27
emotions + neutral. A supervisor does not need 28 shades; they need to see a caller getting angry, frustrated,
anxious or confused, and whether things end well. The mapping below is our choice, written down so it can be
argued with:

  angry       anger, disgust                       (hostile: escalate)
  frustrated  annoyance, disappointment, disapproval, sadness, grief, remorse, embarrassment
              (negative but not hostile: "this is the third time I call", "I'm so disappointed")
  anxious     fear, nervousness                    (worried about money, fraud, a lost card)
  confused    confusion                            (does not understand: explain again)
  happy       admiration, amusement, caring, excitement, gratitude, joy, love, optimism, pride, relief
                                                   (happy / satisfied)
  neutral     neutral, approval, curiosity, desire, realization, surprise
              (approval in GoEmotions is mostly agreement, "yes, that's right", which in a call is a confirmation,
              not satisfaction: on calls/dev it fired on 49 neutral turns and 2 happy ones; curiosity is mostly a
              plain question, and asking is not confusion; desire is mostly "I want / would like", a request)

Sentiment follows GoEmotions' own grouping (group/labels.txt: positive, negative, ambiguous, neutral), where
"ambiguous" is confusion, curiosity, realization and surprise. For the product's three-way sentiment, ambiguous
becomes neutral: none of those four is good or bad news on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

ContactCenterEmotion = Literal["angry", "frustrated", "anxious", "confused", "happy", "neutral"]
Sentiment = Literal["negative", "neutral", "positive"]
SentimentGroup = Literal["ambiguous", "negative", "neutral", "positive"]

GOEMOTIONS_LABELS: Final[tuple[str, ...]] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)  # fmt: skip

CONTACT_CENTER_EMOTIONS: Final[tuple[ContactCenterEmotion, ...]] = (
    "angry", "frustrated", "anxious", "confused", "happy", "neutral",
)  # fmt: skip

SENTIMENT_GROUPS: Final[tuple[SentimentGroup, ...]] = ("ambiguous", "negative", "neutral", "positive")

_CATEGORY_MEMBERS: Final[dict[ContactCenterEmotion, tuple[str, ...]]] = {
    "angry": ("anger", "disgust"),
    "frustrated": ("annoyance", "disappointment", "disapproval", "sadness", "grief", "remorse", "embarrassment"),
    "anxious": ("fear", "nervousness"),
    "confused": ("confusion",),
    "happy": ("admiration", "amusement", "caring", "excitement", "gratitude", "joy", "love", "optimism", "pride",
              "relief"),
    "neutral": ("neutral", "approval", "curiosity", "desire", "realization", "surprise"),
}  # fmt: skip

_GROUP_MEMBERS: Final[dict[SentimentGroup, tuple[str, ...]]] = {
    "ambiguous": ("confusion", "curiosity", "realization", "surprise"),
    "negative": ("anger", "annoyance", "disappointment", "disapproval", "disgust", "embarrassment", "fear", "grief",
                 "nervousness", "remorse", "sadness"),
    "neutral": ("neutral",),
    "positive": ("admiration", "amusement", "approval", "caring", "desire", "excitement", "gratitude", "joy", "love",
                 "optimism", "pride", "relief"),
}  # fmt: skip

EMOTION_TO_CATEGORY: Final[Mapping[str, ContactCenterEmotion]] = {
    label: category for category, members in _CATEGORY_MEMBERS.items() for label in members
}
EMOTION_TO_GROUP: Final[Mapping[str, SentimentGroup]] = {
    label: group for group, members in _GROUP_MEMBERS.items() for label in members
}
GROUP_TO_SENTIMENT: Final[Mapping[SentimentGroup, Sentiment]] = {
    "ambiguous": "neutral",
    "negative": "negative",
    "neutral": "neutral",
    "positive": "positive",
}


def category_of(goemotions_label: str) -> ContactCenterEmotion:
    """Contact-center category of one GoEmotions label (KeyError for an unknown label)."""
    return EMOTION_TO_CATEGORY[goemotions_label]


def sentiment_group_of(goemotions_label: str) -> SentimentGroup:
    """GoEmotions sentiment group of one label (KeyError for an unknown label)."""
    return EMOTION_TO_GROUP[goemotions_label]


def sentiment_of(goemotions_label: str) -> Sentiment:
    """Three-way sentiment of one GoEmotions label (ambiguous counts as neutral)."""
    return GROUP_TO_SENTIMENT[EMOTION_TO_GROUP[goemotions_label]]


def category_scores(label_scores: Mapping[str, float]) -> dict[ContactCenterEmotion, float]:
    """Per category, the highest score among its member labels (labels not given count as 0)."""
    return {
        category: max((float(label_scores.get(label, 0.0)) for label in members), default=0.0)
        for category, members in _CATEGORY_MEMBERS.items()
    }


def _check_complete() -> None:
    for table in (EMOTION_TO_CATEGORY, EMOTION_TO_GROUP):
        if set(table) != set(GOEMOTIONS_LABELS):  # pragma: no cover - guards edits of the tables above
            raise AssertionError("emotion mapping does not cover exactly the 28 GoEmotions labels")


_check_complete()
