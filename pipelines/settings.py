"""Service settings (environment variables prefixed HARKEN_), built where the app or a command starts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class HarkenSettings(BaseSettings):
    """All knobs with embedded defaults: SQLite file, packaged models, no other server."""

    model_config = SettingsConfigDict(env_prefix="HARKEN_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str | None = None  # default: sqlite file in data_dir
    # ASR: 'base' and 'tiny.en' come from PyPI packages; any faster-whisper name/path (after `harken models pull`)
    asr_model: str = "base"
    asr_compute_type: str = "int8"
    asr_device: str = "cpu"
    # Two single-threaded decodes in parallel give 1.8x the throughput of one two-threaded decode on 2 cores
    # (a Whisper decode is mostly small sequential steps that a second thread barely speeds up; measured
    # 2026-11-27: 4.1 vs 2.3 decodes of 8 s a second). Set threads x workers to the cores you have.
    asr_threads: int = 1
    asr_workers: int = 2
    # Beam widths for partial decodes and for an utterance's final decode (once per utterance, so cheap). On 100
    # telephone clips (sync replay, 2026-11-27) greedy/greedy: WER 0.135; greedy/5: 0.129; 2/5: 0.116; 5/5: 0.115.
    # Beam 2 costs 10% more decode time, so the executor falls back to greedy while its workers are busy.
    asr_beam_size: int = 2
    asr_final_beam_size: int | None = 5
    # Encoder windows (seconds), shortest first: a decode uses the shortest that holds its buffer (with 0.5 s to
    # spare). The encoder's cost follows the window, not the audio. Sync replay of 100 telephone clips
    # (2026-12-06, fixed decode time): 10/15/30 s: WER 0.112, decode time 0.216 x real time; 7/10/15/30:
    # 0.114, 0.173 (-20 %); 6 s or 5 s windows: 0.133 / 0.130 (Whisper base hears too little). But on the next
    # 100 clips, never tuned on: WER 0.157 -> 0.169 with 7 s windows (+8 %), so 10 s stays the shortest by
    # default; (7, 10, 15, 30) is the option for capacity over accuracy.
    asr_windows_s: tuple[float, ...] = (10.0, 15.0, 30.0)
    denoiser: str | None = None  # None = models.denoise.DEFAULT_DENOISER (chosen by measurement)
    vad_aggressiveness: int = 2
    # Shorter ends close utterances at commas: sync replay of 100 telephone clips with left context, 500 ms: WER
    # 0.100, 400 ms: 0.106, 300 ms: 0.120 (2026-11-27)
    vad_end_silence_ms: int = 500
    step_s: float = 0.6
    max_buffer_s: float = 12.0
    # Commit policy on top of LocalAgreement (measured on 100 telephone clips, 2026-11-27): a word is committed only
    # once a decode heard min_right_context_s of audio after it; optionally nothing before an utterance has
    # min_commit_audio_s of audio (its first words are otherwise guessed from a fraction of a second)
    min_right_context_s: float = 0.4
    min_commit_audio_s: float = 0.0  # 2.0 (+ the 0.4 s rule): tel WER 0.134 -> 0.125, final p50 1.31 -> 1.49 s
    # Word confidence (Whisper's word probability) steers the rest: a word either agreeing decode gave under
    # unsure_probability waits until unsure_right_context_s of audio follows it (a third of such words were wrong
    # when committed on two decodes); a word one decode gives sure_probability commits once sure_right_context_s
    # follows it. Sync replay of 100 telephone clips (beams 2/5): WER 0.116 -> 0.107, commit lag p50 +0.06 s.
    unsure_probability: float = 0.5
    unsure_right_context_s: float = 1.5
    sure_probability: float = 0.9
    sure_right_context_s: float = 0.5
    # A word heard with settle_right_context_s of audio after it commits as the latest decode has it, agreed or
    # not: a word the decodes keep changing held back every word after it until the utterance ended (p95 words)
    settle_right_context_s: float = 0.0
    # Decode scheduling and commit-rule values per language (fields above, plus agree_gap_s, doubt_probability and
    # partial_beam_size; see pipelines/channel.StreamingParams). English, second round (2026-12-07, sync replay of
    # all 200 telephone clips, fixed decode 0.13 s, offline WER 0.124): decode every 0.3 s, agreement only with a
    # decode of audio ending >= 0.6 s earlier, beam 5 inside utterances, a word under p 0.2 waits to settle, 0.5 s
    # after a word before it commits (0.55 s for a sure one), unsure words wait 1.3 s, an agreed word ends where
    # the shorter decode ends it: WER 0.137 -> 0.137, final p50 1.11 -> 0.98 s, p95 2.18 -> 1.96 s (with 0.4 s
    # after words: 0.141; with beam 2: 0.143; the old rules at step 0.3, second 100 clips: 0.171 against 0.162).
    # Under load the executor still decodes greedily.
    # The first round (2026-12-06): sure words at p >= 0.8, a changing word settles after 2 s. Not Mandarin: on
    # 8 dev calls either first-round change alone raised CER 0.157 -> 0.163 (settle: p95 3.66 -> 2.84 s).
    commit_by_language: dict[str, dict[str, float]] = {
        "en": {"step_s": 0.3, "agree_gap_s": 0.6, "partial_beam_size": 5, "doubt_probability": 0.2,
               "min_right_context_s": 0.5, "sure_probability": 0.8, "sure_right_context_s": 0.55,
               "unsure_right_context_s": 1.3, "settle_right_context_s": 2.0}}
    # An utterance that follows a short pause also decodes the 2 s before it (words committed there only give
    # context): the first words after a pause were otherwise guessed cold. Sync replay of 100 telephone clips
    # (2026-11-27): WER 0.107 -> 0.100 (4 s: 0.101), commit lag p50 1.07 -> 1.04 s.
    left_context_s: float = 2.0
    max_channels: int = 8
    # Load the ASR model and run one decode while the service starts, before any tap listens: the first call
    # after a start then meets a warm model instead of waiting seconds for it (issue 16)
    asr_warm_up: bool = True
    store_audio: bool = True  # keep each session's audio (FLAC, card-data spans muted) under data_dir/audio
    # API
    ws_idle_timeout_s: float = 30.0  # a streaming client silent this long is closed (its captions are kept)
    api_key: str | None = None  # legacy shared key: an all-scopes key of the "default" tenant
    # Vocabulary (issue 11): comma-separated terms of the deployment (bank, products, agent names), plus the packaged
    # domain lexicon (models/lexicon/: regulated 双录 terms). Mandarin captions that sound like a term but are not
    # written as one get the term (zh_phonetic_correction). Putting the terms in the decoder's prompt as well is
    # off: measured 2026-12-06 it helped the dev calls (CER 0.209 -> 0.173) but hurt unseen ones (0.165 -> 0.218),
    # where Whisper, so prompted, ended windows early and dropped replies again.
    asr_vocabulary: str = ""
    asr_domain_vocabulary: bool = True
    asr_vocabulary_prompt: bool = False
    zh_phonetic_correction: bool = True
    # Mandarin homophones re-chosen by word frequency where the replacement is a far likelier word read the same
    # way and (mostly) with the same tones (保险 written 报显): intelligence/zh_homophones.py, measured in
    # docs/results-log.md (2026-12-06)
    zh_homophone_correction: bool = True
    # Mandarin captions write plain numbers in digits (工号8623, 3.2%, 180天, 20万元) however Whisper wrote them, so
    # captions, reports and the compliance matcher (which reads digits as said) agree; CER is unchanged (measured
    # on every held Mandarin set, 2026-12-06)
    zh_written_numbers: bool = True
    # A final decode whose words stop this long before its audio ends has the rest decoded again: Whisper ends a
    # window after its first sentence when another speaker follows closely (unseen Mandarin calls: deleted
    # characters 10.7 % -> 1.2 %, CER 0.263 -> 0.179; English telephone WER ratio 1.007); 0 turns it off
    tail_redecode_s: float = 1.2
    # Languages whose decodes are prompted with the text of the utterances before (comma-separated; "" = none).
    # Mandarin: each utterance otherwise starts cold with a generic prompt, and Whisper base picks homophones
    # without the call's topic (unseen calls 0.171 -> 0.162, 2026-12-06); English keeps its left audio context
    carry_prompt_languages: str = "zh"
    # Access control (issue 13): users, roles and per-tenant API keys on every route, WebSocket and tap.
    # Off only for a single-user local install; `harken serve` creates the first admin when there is none.
    auth: bool = True
    admin_password: str | None = None  # the first admin's password (else a random one, printed once)
    web_session_ttl_s: float = 12 * 3600.0  # a console sign-in lasts this long
    cookie_secure: Literal["auto", "always", "never"] = "auto"  # auto: Secure over https and on loopback
    login_max_failures: int = 5  # failed sign-ins per username and address within login_window_s, then 429
    login_window_s: float = 300.0
    tap_tenant: str = "default"  # tenant of sessions from SIP/SIPREC and AudioSocket listeners (no per-call auth)
    # Event broker between gateways (issue 14): None = this process only; "redis://host:port/db" = Redis Streams,
    # so a subscriber on any gateway follows a session that another process runs (docs/broker.md)
    broker_url: str | None = None
    # Cluster role (issue 14, docs/cluster.md): "all" runs everything in this process (the default); "gateway" takes
    # clients and taps and places their sessions on workers; "worker" runs sessions placed on it and takes over
    # those of a worker that dies. gateway and worker need a redis:// broker_url and a shared database_url.
    role: Literal["all", "gateway", "worker"] = "all"
    worker_id: str | None = None  # default: hostname-pid
    worker_heartbeat_s: float = 0.5  # how often a worker says it is alive
    worker_dead_after_s: float = 2.0  # a worker silent this long is dead; its sessions move to another worker
    # Taps
    audiohook_api_key: str | None = None
    audiohook_client_secret: str | None = None
    sip_host: str = "127.0.0.1"
    sip_port: int | None = None
    audiosocket_port: int | None = None
    audiosocket_agent_port: int | None = None  # agent legs; paired with customer legs by call UUID
    # Enrichment
    # Diarize every single-channel session (else only when the client asks, `"diarize": true`)
    diarize_mono: bool = False
    minutes: bool = True  # minutes (summary, decisions, action items ...) when a session ends
    classifiers: bool = True  # intent, emotion, sentiment, voice emotion, escalation alerts
    compliance: bool = True  # policy-pack rules on every session
    # meaning-level clause detectors (models/clauses) answer the packs' `clause:<family>` phrases
    compliance_meaning: bool = True
    # ... plus, for English, the fine-tuned MiniLM heads `harken train clauses-encoder` writes (measured: more false
    # alarms than findings on whole calls, so off; models/weights/clauses/MODEL_CARD.md)
    clause_encoder: bool = False
    custom_intents: Path | None = None  # YAML of custom intents with example phrases (any language)
    policy_packs: str = ""  # comma-separated pack names applied to every session unless the client names some
    webhook_url: str | None = None  # findings, alerts, tickets and scorecards are POSTed here as JSON
    webhook_secret: str | None = None  # sent as X-Harken-Token
    # QA evaluation forms (intelligence/compliance/qa_forms/): comma-separated built-in form ids or YAML paths;
    # empty = every built-in form whose packs are loaded. "none" turns forms off.
    qa_forms: str = ""
    # Optional OpenAI-compatible chat-completions endpoint that answers the form questions no detector answers
    # (empathy, a summary of next steps). Never required: without it those questions are reported unanswered.
    llm_url: str | None = None  # server root, its /v1, or the full .../v1/chat/completions URL
    llm_model: str | None = None
    llm_api_key: str | None = None  # sent as "Authorization: Bearer ..."
    llm_timeout_s: float = 20.0  # the whole request; the call's scorecard waits at most this long for it

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'harken.db').resolve()}"

    # Pluggable Mandarin ASR backend (issue 11)
    # "ENGINE[-KIND]:PATH" of a local model directory (models.loader.load_zh_backend), e.g.
    # "sherpa:/models/sherpa-onnx-paraformer-zh-2023-09-14" or "funasr:/models/SenseVoiceSmall-onnx": Chinese
    # is then decoded by that model and everything else by asr_model. None: Whisper decodes every language.
    asr_zh_backend: str | None = None
