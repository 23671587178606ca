"""A throwaway PostgreSQL server for tests and benchmarks: the real binaries, a temporary cluster, a free local port.

`start_postgres()` (used by tests/pg_server.py's session fixture and `harken eval cluster`) runs `initdb` into a temporary directory, starts `postgres` on 127.0.0.1 with
its Unix socket in that directory and durability off (fsync, synchronous_commit: the data are disposable), and
stops and removes it after the session. `postgres_url` is a database on it. PostgreSQL refuses to run as root,
so as root the server runs as the `postgres` system user (the Debian package creates it) or else `nobody`.
Without PostgreSQL binaries (scripts/install-peers.sh installs them) the tests that need them are skipped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eval.broker_bench import free_port

if TYPE_CHECKING:
    import psycopg

SUPERUSER = "harken"


class Unavailable(RuntimeError):
    """PostgreSQL is not installed, or cannot run as this user."""


def find_bin_dir() -> Path | None:
    """The directory with initdb, pg_ctl and postgres: from PATH (symlinks resolved), else the newest Debian one."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(d) for d in sorted(versions, key=lambda d: int(Path(d).parent.name) if
                                           Path(d).parent.name.isdigit() else 0, reverse=True)]
    for d in candidates:
        if all(os.access(d / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _run_as() -> tuple[list[str], str | None] | None:
    """(command prefix, user) for running the server's binaries; None when root has no unprivileged user."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            if shutil.which("runuser"):
                return ["runuser", "-u", user, "--"], user
            return ["su", user, "-s", "/bin/sh", "-c"], user
    return None


@dataclass
class PostgresServer:
    """A running test server; `create_database` gives each test its own empty database."""

    bin_dir: Path
    root: Path
    port: int
    prefix: list[str]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> psycopg.Connection:
        import psycopg  # imported here: collecting the tests must not need it

        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                               autocommit=True, connect_timeout=5)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        from psycopg import sql

        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database`, disconnecting whoever is still on it."""
        name = url.rsplit("/", 1)[1]
        from psycopg import sql

        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _cmd(self, *argv: str) -> list[str]:
        if self.prefix[:1] == ["su"]:
            return [*self.prefix, shlex.join(argv)]
        return [*self.prefix, *argv]

    def init(self) -> None:
        """Create the cluster: trust authentication for the local superuser, no fsync of the new files."""
        done = subprocess.run(self._cmd(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                                        "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"),
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")

    def start(self) -> None:
        """Start the server on `port` and wait until it accepts TCP connections."""
        options = " ".join([
            f"-c port={self.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.root}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=60",
        ])
        started = subprocess.run(self._cmd(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                                           str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start"),
                                 capture_output=True, text=True, timeout=90)
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()}\n{self.log_tail()}")
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        """pg_ctl -w already waits; this also proves TCP connections (what the tests use) are accepted."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self._admin() as conn:
                    conn.execute("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` (tear-down: the data are disposable), or `fast`: every client connection is dropped and
        what was committed is kept (with synchronous_commit off, an immediate stop may lose the last commits:
        the restart fault uses fast)."""
        subprocess.run(self._cmd(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
                                 "-w", "stop"), capture_output=True, timeout=60)

    def close(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, n: int = 30) -> str:
        log = self.root / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.exists() else ""


def start_postgres() -> PostgresServer:
    """Create and start a temporary server; `close()` stops it and removes its files. Raises `Unavailable` when
    PostgreSQL is not installed or cannot run here."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise Unavailable("PostgreSQL binaries (initdb, pg_ctl, postgres) not found on PATH or under "
                          "/usr/lib/postgresql/*/bin; run scripts/install-peers.sh")
    runner = _run_as()
    if runner is None:
        raise Unavailable("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
    prefix, user = runner
    # a short path under /tmp (Unix socket paths are limited to ~100 bytes) that the server's user can enter
    root = Path(tempfile.mkdtemp(prefix="harken-pg-"))
    if user is not None:
        shutil.chown(root, user=user)
    server = PostgresServer(bin_dir, root, free_port(), prefix)
    try:
        server.init()
        for attempt in range(3):
            try:
                server.start()
                break
            except RuntimeError:
                # the free port we picked may have been taken before the server bound it: try another
                if attempt == 2 or "could not bind" not in server.log_tail():
                    raise
                server.port = free_port()
    except BaseException:
        server.close()
        raise
    return server
