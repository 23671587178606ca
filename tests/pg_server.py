"""The PostgreSQL server of the test session (eval/pg_server.py starts it): tests that need it skip when PostgreSQL
is not installed (scripts/install-peers.sh installs it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eval.pg_server import PostgresServer, Unavailable, start_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole test session (skips when PostgreSQL is not installed)."""
    try:
        server = start_postgres()
    except Unavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.close()



@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of one database on the session's PostgreSQL server (postgresql+psycopg://...)."""
    return postgres_server.create_database("harken_test")
