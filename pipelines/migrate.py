"""Bring a database's schema to the newest Alembic revision, whatever state it starts in.

Every store calls `upgrade(engine)` when it opens, and `harken db upgrade` calls it from the command line:
  - an empty database gets `upgrade head`;
  - a database made by the pre-Alembic `create_all` code (our tables, no `alembic_version`) is first brought to
    the baseline shape (missing columns, indexes and tables added), stamped as revision 0001, then upgraded;
  - a migrated database is upgraded to head (a no-op when it is there already);
  - a database a newer release has migrated further is left as it is, with a warning (rolling upgrades).
Several stores or nodes may start at once on one database, so the check-and-migrate step runs under a lock:
a transaction-scoped advisory lock on PostgreSQL, `BEGIN IMMEDIATE` (the database's write lock) on SQLite.
PostgreSQL's DDL is transactional, so a failed migration leaves the database as it was.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pipelines.migrations.baseline import baseline_metadata
from pipelines.schema_upgrade import add_missing_columns

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
# Alembic >= 1.16 logs each built-in plugin it loads, at INFO, when first imported: noise in the service's log.
# (Alembic itself is imported lazily, below, so this applies and opening an up-to-date store stays cheap.)
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE_REVISION = "0001"
VERSION_TABLE = "alembic_version"  # Alembic's default name
# Any fixed bigint will do; every process upgrading any harken schema on the server serialises on this one.
PG_LOCK_KEY = int.from_bytes(b"harkendb", "big")
# Alembic keeps the running migration in module globals (`alembic.context`, `alembic.op`), so one process runs
# one migration at a time even on different databases. Taken after the database lock, never before, so a thread
# waiting for another node's lock does not hold up this process's other databases.
_ALEMBIC_LOCK = threading.Lock()


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config without an ini file: the script location is this package's `migrations` folder."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection  # env.py runs on it, inside our lock and transaction
    return cfg


@functools.cache
def known_revisions() -> tuple[str, ...]:
    """Every revision id shipped with this release, newest first."""
    from alembic.script import ScriptDirectory

    revisions = tuple(r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions())
    if not revisions:
        raise RuntimeError(f"no Alembic revisions under {MIGRATIONS_DIR}")
    return revisions


def head_revision() -> str:
    """The newest revision id shipped with this release."""
    return known_revisions()[0]


def target_metadata() -> sa.MetaData:
    """All four stores' tables in one MetaData (what autogenerate compares the database with)."""
    from pipelines import audit_store, identity_store, store, ticket_store

    combined = sa.MetaData()
    for module in (store, ticket_store, identity_store, audit_store):
        for table in module.metadata.tables.values():
            table.to_metadata(combined)
    return combined


def current_revision(bind: sa.Engine | str) -> str | None:
    """The revision the database is at; None when it has never been migrated."""
    engine, owned = _engine(bind)
    try:
        with engine.connect() as conn:
            heads = _heads(conn)
    finally:
        if owned:
            engine.dispose()
    return heads[0] if heads else None


def _heads(conn: sa.Connection) -> tuple[str, ...]:
    # read directly rather than through a MigrationContext, which logs at INFO each time a store opens
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return ()
    return tuple(conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def upgrade(bind: sa.Engine | str) -> None:
    """Migrate the database behind `bind` (an Engine or a URL) to head; safe to call concurrently."""
    engine, owned = _engine(bind)
    try:
        current = current_revision(engine)
        if current == head_revision() or _is_newer(current):  # the common case takes no lock
            return
        with engine.connect() as conn:
            _lock(conn)
            _upgrade_locked(conn)
            conn.commit()
    finally:
        if owned:
            engine.dispose()


def _is_newer(revision: str | None) -> bool:
    """True (and a warning) when a newer release has migrated the database past what this one knows.

    During a rolling upgrade the first new node migrates while old nodes still run or restart; revisions are
    meant to be additive and the stores name every column they use, so an old node carries on rather than
    refusing to start.
    """
    if revision is None or revision in known_revisions():
        return False
    log.warning("database schema is at revision %s, newer than this release's %s; leaving it as it is",
                revision, head_revision())
    return True


def _engine(bind: sa.Engine | str) -> tuple[sa.Engine, bool]:
    if isinstance(bind, sa.Engine):
        return bind, False
    return sa.create_engine(bind), True


def _lock(conn: sa.Connection) -> None:
    """Take the database-wide migration lock for the rest of `conn`'s transaction."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
    elif dialect == "sqlite":
        # pysqlite starts no transaction before DDL on its own; an explicit IMMEDIATE one takes the write lock
        # now, so a second upgrader waits (busy timeout) and then sees the finished schema.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _upgrade_locked(conn: sa.Connection) -> None:
    from alembic import command

    heads = _heads(conn)
    if heads == (head_revision(),) or (heads and _is_newer(heads[0])):
        return  # another store or node finished while we waited for the lock
    cfg = alembic_config(conn)
    with _ALEMBIC_LOCK:
        if not heads and _legacy_tables(conn):
            _adopt_legacy(conn)
            command.stamp(cfg, BASELINE_REVISION)
        command.upgrade(cfg, "head")
    log.info("database schema upgraded from %s to %s", heads[0] if heads else "nothing", head_revision())


def _legacy_tables(conn: sa.Connection) -> set[str]:
    """Our tables present in a database that has no Alembic version: one written by `create_all`."""
    return set(sa.inspect(conn).get_table_names()) & set(baseline_metadata().tables)


def _adopt_legacy(conn: sa.Connection) -> None:
    """Bring a `create_all` database to revision 0001's shape: add what older releases lacked, keep every row."""
    existing = set(sa.inspect(conn).get_table_names())
    for table in baseline_metadata().sorted_tables:
        if table.name not in existing:
            # an older release may predate a whole store (e.g. tickets)
            table.create(conn)
            log.info("legacy database: created table %s", table.name)
            continue
        added = add_missing_columns(conn, table)
        have = {ix["name"] for ix in sa.inspect(conn).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in have:
                index.create(conn)
        if added:
            log.info("legacy database: added %s to %s", ", ".join(added), table.name)
