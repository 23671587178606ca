# Two commands do all set-up: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-fast lint clean compare-deps

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	HF_HUB_OFFLINE=1 $(BIN)/harken serve --host $(HOST) --port $(PORT)

test: install
	@echo "installing protocol peers for the tap tests (scripts/install-peers.sh): SIPp (Debian sip-tester, apt-get) for SIP/SIPREC, streamdouble (PyPI) for Twilio Media Streams ..."
	-bash scripts/install-peers.sh || echo "warning: protocol peers not installed; their tests will skip"
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=15

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# WhisperLiveKit for `harken eval asr --compare whisperlivekit` (side by side on the same Whisper weights). Its
# dependencies are installed explicitly: an unpinned torch would pull a multi-GB CUDA build.
compare-deps: install
	$(BIN)/pip install -q torch==2.13.0 tiktoken
	$(BIN)/pip install -q --no-deps whisperlivekit==0.2.26

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
