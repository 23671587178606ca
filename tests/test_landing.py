"""The landing page at `/`: what is running, links onward, and nothing but counts when an API key is set."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from intelligence.compliance.loader import BUILTIN_PACKS
from pipelines.settings import HarkenSettings

LINKS = ("/docs", "/webrtc", "/healthz", "/metrics", "/v1/sessions")


def _settings(tmp_path, **overrides) -> HarkenSettings:
    # No classifiers: the app starts without loading any model (Whisper loads only when a session decodes)
    values = {"classifiers": False, "compliance": False, "api_key": None, "store_audio": False, **overrides}
    return HarkenSettings(auth=False, data_dir=tmp_path, **values)


def test_landing_page_links_and_facts(tmp_path) -> None:
    with TestClient(create_app(_settings(tmp_path, asr_model="tiny.en", max_channels=3))) as client:
        r = client.get("/about")
        assert client.get("/docs").status_code == 200 and client.get("/healthz").status_code == 200
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    for href in LINKS:
        assert f'href="{href}"' in r.text
    assert "tiny.en" in r.text and "0 of 3 in use" in r.text and "compliance off" in r.text
    assert "ws://testserver/v1/stream" in r.text
    assert "<script" not in r.text and "http" not in r.text  # no CDN, no external links


def test_landing_page_before_start_up(tmp_path) -> None:
    r = TestClient(create_app(_settings(tmp_path))).get("/about")  # no lifespan: the runtime is not built
    assert r.status_code == 200 and "starting" in r.text and 'href="/healthz"' in r.text


def test_landing_page_with_api_key_shows_counts_only(tmp_path) -> None:
    settings = _settings(tmp_path, api_key="s3cret", compliance=True)  # packs load at start-up: YAML, no model
    with TestClient(create_app(settings)) as client:
        r = client.get("/about")
        assert client.get("/v1/sessions").status_code == 401  # the data itself stays behind the key
    assert r.status_code == 200
    assert "s3cret" not in r.text and "pci_dss" not in r.text
    assert f"{len(BUILTIN_PACKS)} loaded" in r.text and "required" in r.text and 'href="/v1/sessions"' in r.text
