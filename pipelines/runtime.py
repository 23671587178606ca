"""Builds the pipeline objects (store, sink, executor, session manager) from settings, for the app and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models.vad import VadParams
from pipelines.channel import StreamingParams
from pipelines.executor import AsrExecutor
from pipelines.gateway import GatewaySessions
from pipelines.session import EnricherFactory, SessionManager
from pipelines.settings import HarkenSettings
from pipelines.sink import PersistenceSink
from pipelines.store import Store


@dataclass
class Runtime:
    settings: HarkenSettings
    store: Store
    sink: PersistenceSink
    manager: SessionManager  # a GatewaySessions on a cluster gateway (its sessions run on workers)

    async def aclose(self) -> None:
        await self.manager.close_all()
        if self.manager.broker is not None:
            await self.manager.broker.close()  # after the sessions' last events (session_end) went out
        await self.sink.stop()
        self.manager.shutdown()
        if isinstance(self.manager, GatewaySessions):
            await self.manager.aclose()
        self.store.close()


def streaming_params(settings: HarkenSettings) -> StreamingParams:
    return StreamingParams(
        step_s=settings.step_s,
        max_buffer_s=settings.max_buffer_s,
        min_right_context_s=settings.min_right_context_s,
        min_commit_audio_s=settings.min_commit_audio_s,
        unsure_probability=settings.unsure_probability,
        unsure_right_context_s=settings.unsure_right_context_s,
        sure_probability=settings.sure_probability,
        sure_right_context_s=settings.sure_right_context_s,
        settle_right_context_s=settings.settle_right_context_s,
        commit_by_language=settings.commit_by_language,
        left_context_s=settings.left_context_s,
        tail_redecode_s=settings.tail_redecode_s,
        carry_prompt_languages=frozenset(x.strip() for x in settings.carry_prompt_languages.split(",") if x.strip()),
        vad=VadParams(aggressiveness=settings.vad_aggressiveness, end_silence_ms=settings.vad_end_silence_ms),
    )


def denoiser_factory(settings: HarkenSettings):
    from models.denoise import DEFAULT_DENOISER, create_denoiser

    name = settings.denoiser or DEFAULT_DENOISER
    if name == "none":
        return None
    create_denoiser(name)  # fail at start-up, not mid-call, if the backend is unusable
    return lambda: create_denoiser(name)


def executor_factory(settings: HarkenSettings):
    def build() -> AsrExecutor:
        from models.loader import load_asr

        backend = load_asr(
            settings.asr_model, settings.data_dir / "models", compute_type=settings.asr_compute_type,
            device=settings.asr_device, cpu_threads=settings.asr_threads, beam_size=settings.asr_beam_size,
            num_workers=settings.asr_workers, final_beam_size=settings.asr_final_beam_size,
            windows_s=settings.asr_windows_s,
        )
        if settings.asr_zh_backend:
            # Chinese to a Mandarin-native model, everything else (and language detection) to Whisper
            from models.asr_backends import LanguageRouter
            from models.loader import load_zh_backend

            # The Mandarin backend runs one decode at a time (see models/asr_backends), so give it every core
            zh = load_zh_backend(settings.asr_zh_backend, num_threads=settings.asr_threads * settings.asr_workers)
            backend = LanguageRouter(backend, {"zh": zh})
        return AsrExecutor(backend, workers=settings.asr_workers)

    return build


def _broker(settings: HarkenSettings):
    """The cross-process event broker, or None: one process needs none (its sessions' own buses serve)."""
    if not settings.broker_url:
        return None
    from pipelines.broker import make_broker

    return make_broker(settings.broker_url)


def build_runtime(settings: HarkenSettings, enrichers: list[EnricherFactory] | None = None,
                  executor: Callable[[], AsrExecutor] | None = None) -> Runtime:
    """Create the runtime. Call from inside a running event loop (the sink starts a task lazily).

    `executor`: makes the ASR executor instead of the settings' factory (a batch worker that keeps one loaded
    model across many runtimes)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url())
    sink = PersistenceSink(store)
    if settings.role == "gateway":  # decodes nothing: every session is placed on a worker
        gateway = GatewaySessions(settings.broker_url or "", sink=sink, broker=_broker(settings),
                                  max_channels=settings.max_channels, dead_after_s=settings.worker_dead_after_s,
                                  model_name=settings.asr_model)
        return Runtime(settings=settings, store=store, sink=sink, manager=gateway)  # type: ignore[arg-type]
    manager = SessionManager(
        executor_factory=executor or executor_factory(settings),
        sink=sink,
        streaming=streaming_params(settings),
        max_channels=settings.max_channels,
        denoiser_factory=denoiser_factory(settings),
        enricher_factories=enrichers,
        audio_dir=(settings.data_dir / "audio") if settings.store_audio else None,
        vocabulary=settings.asr_vocabulary,
        packaged_vocabulary=settings.asr_domain_vocabulary,
        phonetic_correction=settings.zh_phonetic_correction,
        homophone_correction=settings.zh_homophone_correction,
        written_numbers=settings.zh_written_numbers,
        vocabulary_prompt=settings.asr_vocabulary_prompt,
        broker=_broker(settings),
    )
    return Runtime(settings=settings, store=store, sink=sink, manager=manager)
