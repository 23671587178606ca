"""Per-session enrichment stages wired from settings: classifiers, compliance, alerts (added as they land)."""

from __future__ import annotations

from typing import Any

from pipelines.session import EnricherFactory
from pipelines.settings import HarkenSettings


def enricher_factories(settings: HarkenSettings, app_state: Any = None) -> list[EnricherFactory]:
    return []
