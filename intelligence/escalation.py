"""Per-session rolling sentiment per speaker, and an escalation alert when a customer turns and stays negative.

Each final utterance arrives with its text affect (sentiment, emotion) and optionally its voice cue; fusion
(intelligence.fusion) makes one valence in [-1, 1] of them. Per speaker we keep an exponential moving average
over utterances (`ema_alpha`; the first utterance is blended with a neutral start, so one angry sentence alone
does not jump to the extreme). For the watched speakers (the customer by default) a small state machine turns
that into alerts:

    calm --(rolling <= negative_threshold)--> negative --(still there for sustain_utterances)--> escalated
    negative --(rolling back above negative_threshold)--> calm
    escalated --(rolling >= recover_threshold)--> calm, with an 'escalation_cleared' alert if emit_recovery

The gap between `negative_threshold` and `recover_threshold` is hysteresis: one polite sentence in the middle of
a tirade does not clear and re-raise the alert. An escalation alert is HIGH when the negative run includes an
angry utterance (by words or by raised voice), MEDIUM otherwise. Alerts carry ids, scores and labels, never
transcript text. Defaults were checked on the dev calls' ground truth (tests/test_escalation.py): they alert on
the two angry-customer calls and on none of the calm ones or the ones that start worried and end well.

Pure and synchronous; one `EscalationTracker` per session, driven by one task (not thread-safe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from intelligence.fusion import FusedAffect, FusionConfig, TextAffect, VoiceCue, fuse
from intelligence.types import Alert, Severity

MoodState = Literal["calm", "negative", "escalated"]
ESCALATION_ALERT = "escalation"
ESCALATION_CLEARED_ALERT = "escalation_cleared"


@dataclass(frozen=True, slots=True)
class UtteranceAffect:
    """One final utterance's affect inputs: who spoke, when (media clock), and what the classifiers said."""

    segment_id: str
    speaker: str
    channel: int
    start_s: float
    end_s: float
    text: TextAffect | None = None
    voice: VoiceCue | None = None


@dataclass(frozen=True, slots=True)
class EscalationConfig:
    """Thresholds of the rolling sentiment and the alert state machine (all configurable per deployment)."""

    watch_speakers: tuple[str, ...] = ("customer",)
    ema_alpha: float = 0.5
    initial_valence: float = 0.0
    negative_threshold: float = -0.45
    sustain_utterances: int = 2
    recover_threshold: float = -0.15
    high_severity_emotions: tuple[str, ...] = ("angry",)
    emit_recovery: bool = True
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.ema_alpha <= 1.0:
            raise ValueError("ema_alpha must be in (0, 1]")
        if self.sustain_utterances < 1:
            raise ValueError("sustain_utterances must be >= 1")
        if self.recover_threshold < self.negative_threshold:
            raise ValueError("recover_threshold must not be below negative_threshold")


@dataclass(frozen=True, slots=True)
class SpeakerMood:
    """Snapshot of one speaker's rolling sentiment and alert state."""

    speaker: str
    utterances: int
    rolling_valence: float
    last_valence: float
    last_emotion: str
    state: MoodState
    negative_run: int


@dataclass(frozen=True, slots=True)
class EscalationUpdate:
    """What one utterance changed: its fused affect, the speaker's mood after it, and any alerts raised."""

    fused: FusedAffect
    mood: SpeakerMood
    alerts: tuple[Alert, ...] = ()


@dataclass(slots=True)
class _Run:
    """The utterances of the current negative stretch of one speaker."""

    segment_ids: list[str] = field(default_factory=list)
    emotions: list[str] = field(default_factory=list)
    voice_raised: int = 0
    since_s: float = 0.0


@dataclass(slots=True)
class _SpeakerState:
    speaker: str
    rolling: float
    utterances: int = 0
    last_valence: float = 0.0
    last_emotion: str = "neutral"
    state: MoodState = "calm"
    run: _Run = field(default_factory=_Run)

    def snapshot(self) -> SpeakerMood:
        return SpeakerMood(self.speaker, self.utterances, self.rolling, self.last_valence, self.last_emotion,
                           self.state, len(self.run.segment_ids))


class EscalationTracker:
    """Rolling per-speaker sentiment and escalation alerts for one session."""

    def __init__(self, session_id: str, config: EscalationConfig | None = None) -> None:
        self.session_id = session_id
        self.config = config or EscalationConfig()
        self._speakers: dict[str, _SpeakerState] = {}

    def mood(self, speaker: str) -> SpeakerMood | None:
        """Current mood of `speaker`, or None before their first utterance."""
        st = self._speakers.get(speaker)
        return st.snapshot() if st else None

    def moods(self) -> dict[str, SpeakerMood]:
        """Current mood of every speaker seen so far."""
        return {k: v.snapshot() for k, v in self._speakers.items()}

    def observe(self, utterance: UtteranceAffect) -> EscalationUpdate:
        """Fold one final utterance in (in time order per speaker) and return what changed."""
        cfg = self.config
        fused = fuse(utterance.text, utterance.voice, cfg.fusion)
        st = self._speakers.get(utterance.speaker)
        if st is None:
            st = self._speakers[utterance.speaker] = _SpeakerState(utterance.speaker, cfg.initial_valence)
        st.utterances += 1
        st.rolling = (1.0 - cfg.ema_alpha) * st.rolling + cfg.ema_alpha * fused.valence
        st.last_valence = fused.valence
        st.last_emotion = fused.emotion
        alerts: tuple[Alert, ...] = ()
        if utterance.speaker in cfg.watch_speakers:
            alerts = self._step(st, utterance, fused)
        return EscalationUpdate(fused, st.snapshot(), alerts)

    def _step(self, st: _SpeakerState, u: UtteranceAffect, fused: FusedAffect) -> tuple[Alert, ...]:
        cfg = self.config
        below = st.rolling <= cfg.negative_threshold
        if st.state == "escalated":
            if st.rolling >= cfg.recover_threshold:
                st.state = "calm"
                st.run = _Run()
                if cfg.emit_recovery:
                    return (self._cleared_alert(st, u),)
            return ()
        if not below:
            st.state = "calm"
            st.run = _Run()
            return ()
        if not st.run.segment_ids:
            st.run.since_s = u.start_s
        st.run.segment_ids.append(u.segment_id)
        st.run.emotions.append(fused.emotion)
        st.run.voice_raised += int(fused.voice_raised)
        st.state = "negative"
        if len(st.run.segment_ids) >= cfg.sustain_utterances:
            st.state = "escalated"
            return (self._escalation_alert(st, u),)
        return ()

    def _escalation_alert(self, st: _SpeakerState, u: UtteranceAffect) -> Alert:
        run = st.run
        angry = any(e in self.config.high_severity_emotions for e in run.emotions)
        severity = Severity.HIGH if angry else Severity.MEDIUM
        voice_note = f", raised voice in {run.voice_raised}" if run.voice_raised else ""
        return Alert(
            session_id=self.session_id,
            alert_type=ESCALATION_ALERT,
            severity=severity,
            message=(f"{st.speaker} negative for {len(run.segment_ids)} utterances since {run.since_s:.1f}s "
                     f"(rolling sentiment {st.rolling:.2f}{voice_note})"),
            at_s=u.end_s,
            data={
                "speaker": st.speaker,
                "channel": u.channel,
                "rolling_valence": round(st.rolling, 4),
                "since_s": run.since_s,
                "segment_ids": list(run.segment_ids),
                "emotions": list(run.emotions),
                "voice_raised_utterances": run.voice_raised,
            },
        )

    def _cleared_alert(self, st: _SpeakerState, u: UtteranceAffect) -> Alert:
        return Alert(
            session_id=self.session_id,
            alert_type=ESCALATION_CLEARED_ALERT,
            severity=Severity.LOW,
            message=f"{st.speaker} sentiment recovered (rolling {st.rolling:.2f})",
            at_s=u.end_s,
            data={"speaker": st.speaker, "channel": u.channel, "rolling_valence": round(st.rolling, 4),
                  "segment_id": u.segment_id},
        )
