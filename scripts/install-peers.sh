#!/usr/bin/env bash
# Installs the third-party protocol peers that the tap tests drive (tests/test_taps_sipp.py, test_taps_twilio.py).
# Idempotent: installs only what is missing. CI runs it before `make test`; developers may run it by hand.
#   SIPp (Debian package sip-tester)  - SIP/SIPREC UAC with pcap RTP replay
#   streamdouble (PyPI, a dev extra)  - Twilio Media Streams simulator
#   Chromium (Debian package chromium) - the console's browser tests (Playwright drives it by path)
#   PostgreSQL (Debian package postgresql) - the store tests start a throwaway server (tests/pg_server.py)
#   Redis (Debian package redis-server) - the event broker tests start a throwaway server (tests/broker_servers.py)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# the Debian package keeps initdb off PATH, under /usr/lib/postgresql/<version>/bin
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import streamdouble, hypothesis, playwright" 2>/dev/null; then
  .venv/bin/pip install -q "streamdouble==0.3.0" "hypothesis>=6.100" "playwright>=1.44"
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import redis" 2>/dev/null; then
  .venv/bin/pip install -q "redis>=5.0.1"
fi

command -v sipp >/dev/null 2>&1 && echo "peers ready: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
command -v chromium >/dev/null 2>&1 && echo "browser ready: $(chromium --version 2>/dev/null | head -1)"
initdb_bin=$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -1 || true)
if [ -n "$initdb_bin" ]; then echo "postgresql ready: $("$initdb_bin" --version)"; fi
if command -v redis-server >/dev/null 2>&1; then echo "redis ready: $(redis-server --version | grep -o 'v=[^ ]*')"; fi
