"""Throwaway broker servers for the tests: the real Debian binary, a temporary directory, a free loopback port.

`redis_server` (module scope) serves the behaviour tests, each on its own session ids; `fresh_redis_server`
(per test) is one a test may stop and start again on the same port and data (the restart test). Redis runs with
the append-only file the deployment would use (eval/broker_bench.py `BrokerServer`), so a restart keeps what it
acknowledged. Both stop the server and remove its directory afterwards. Without redis-server (Debian package
redis-server; scripts/install-peers.sh installs it) or the redis client library, the tests that need them skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eval.broker_bench import BrokerServer, find_binary, start_server


def _start_redis() -> BrokerServer:
    pytest.importorskip("redis", reason="the redis client library is not installed (pip install -e .[cluster])")
    if find_binary("redis") is None:
        pytest.skip("redis-server not found on PATH, /usr/sbin or /usr/bin "
                    "(Debian package redis-server; run scripts/install-peers.sh)")
    return start_server("redis")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[BrokerServer]:
    server = _start_redis()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fresh_redis_server() -> Iterator[BrokerServer]:
    server = _start_redis()
    try:
        yield server
    finally:
        server.close()
