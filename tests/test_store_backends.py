"""One store test suite, two backends: every test runs on SQLite (a file) and on a real PostgreSQL server.

Covers the public methods of the four stores (sessions and events, tickets, identity, audit) and the Alembic
migrations: fresh database to head, adoption of a database an older release made with `create_all`, repeat
upgrades as no-ops, and concurrent first starts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher

from intelligence.access import Role
from intelligence.audit_chain import AuditChain, AuditConflict
from intelligence.crypto_at_rest import EnvelopeCipher, Keyring, generate_key
from intelligence.tickets import Ticket, TicketConflict, TicketFilter, TicketNotFound, TicketStatus
from intelligence.types import Severity
from pipelines.audit_store import SqlAuditStorage, audit_log_table
from pipelines.identity_store import IdentityError, IdentityStore
from pipelines.migrate import current_revision, head_revision, target_metadata, upgrade
from pipelines.store import Store, events_table
from pipelines.ticket_store import SqlTicketRepository, tickets_table

# Argon2 at its cheapest: these tests exercise storage, not the hash's cost
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database of each backend, private to the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'harken.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture()
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture()
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


def _schema_diffs(engine: sa.Engine) -> list:
    """What autogenerate would change to make the database match the stores' tables (empty when in sync)."""
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), target_metadata())


# -- sessions and events ---------------------------------------------------------------------------------------

def test_sessions_round_trip_filter_and_order(store: Store) -> None:
    meta = {"agent": "a7", "nested": {"list": [1, 2.5, None], "zh": "您好"}}
    store.create_session("s1", "websocket", "zh", ["agent", "customer"], meta, tenant_id="acme")
    store.create_session("s2", "sip", "en", ["mono"], {}, tenant_id="acme")
    store.create_session("s3", "websocket", "en", ["mono"], {})
    for sid, at in (("s1", 100.0), ("s2", 200.0), ("s3", 300.0)):
        store.update_session(sid, created_at=at)
    row = store.get_session("s1")
    assert row is not None and row.metadata == meta and row.channel_names == ["agent", "customer"]
    assert row.agent == "a7" and row.tenant_id == "acme" and row.status == "live" and row.stats is None
    assert store.get_session("missing") is None
    assert store.get_session("s3").tenant_id == "default"

    assert [r.id for r in store.list_sessions()] == ["s3", "s2", "s1"]  # newest first
    assert [r.id for r in store.list_sessions(tenant_id="acme")] == ["s2", "s1"]
    assert [r.id for r in store.list_sessions(limit=1, offset=1)] == ["s2"]
    assert [r.id for r in store.list_sessions(created_from=150.0, created_to=300.0)] == ["s2"]

    store.update_session("s2", status="ended", end_reason="hangup", ended_at=250.0, audio_s=12.5,
                         stats={"finals": 3, "rtf": 0.25})
    ended = store.get_session("s2")
    assert ended.status == "ended" and ended.audio_s == 12.5 and ended.stats == {"finals": 3, "rtf": 0.25}
    assert [r.id for r in store.list_sessions(status="live")] == ["s3", "s1"]
    assert store.mark_interrupted() == 2
    assert {r.end_reason for r in store.list_sessions()} == {"server_restart", "hangup"}


def test_events_in_seq_order_after_seq_and_types(store: Store) -> None:
    store.create_session("s1", "websocket", "en", ["mono"], {})
    store.create_session("s2", "websocket", "en", ["mono"], {})
    final = {"type": "final", "segment_id": "t1", "channel": 0, "start_s": 0.5, "end_s": 1.75,
             "text": "card ending 4242 ✓", "words": [{"w": "card", "p": 0.98}]}
    store.add_events([("s1", 2, {"type": "alert", "rule": "x"}), ("s1", 0, final),
                      ("s1", 1, {"type": "annotation", "labels": {"intent": "billing"}}),
                      ("s2", 0, {"type": "final", "text": "other"})])
    store.add_events([])  # nothing to write is not an error
    events = store.events("s1")
    assert [e["seq"] for e in events] == [0, 1, 2]
    assert events[0] == {**final, "seq": 0}  # JSON round trip: unicode, floats, nested
    assert [e["seq"] for e in store.events("s1", after_seq=0)] == [1, 2]
    assert [e["type"] for e in store.events("s1", types=("final", "alert"))] == ["final", "alert"]
    assert store.events("s2") == [{"type": "final", "text": "other", "seq": 0}]

    store.replace_event_payload("s1", 0, {**final, "text": "card ending ****"})
    assert store.events("s1")[0]["text"] == "card ending ****"
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(events_table).where(events_table.c.seq == 0,
                                                         events_table.c.session_id == "s1")).mappings().one()
    assert (row["type"], row["segment_id"], row["channel"], row["start_s"], row["end_s"]) == \
        ("final", "t1", 0, 0.5, 1.75)


def test_duplicate_seq_is_rejected_and_the_batch_rolled_back(store: Store) -> None:
    store.create_session("s1", "websocket", "en", ["mono"], {})
    store.add_events([("s1", 0, {"type": "final"})])
    with pytest.raises(sa.exc.IntegrityError):
        store.add_events([("s1", 1, {"type": "final"}), ("s1", 0, {"type": "final", "dup": True})])
    assert [e["seq"] for e in store.events("s1")] == [0]  # seq 1 went with the failed transaction
    store.add_events([("s1", 1, {"type": "final"})])  # the store is usable afterwards
    assert [e["seq"] for e in store.events("s1")] == [0, 1]


def test_binary_payloads_round_trip_byte_exact(store: Store) -> None:
    store.create_session("s1", "websocket", "en", ["mono"], {})
    blob = bytes(range(256)) * 4 + b"\x00\xff\x00"
    with store.engine.begin() as conn:
        conn.execute(events_table.insert().values(session_id="s1", seq=7, type="raw", payload=blob,
                                                  created_at=time.time()))
    with store.engine.connect() as conn:
        back = conn.execute(sa.select(events_table.c.payload).where(events_table.c.seq == 7)).scalar_one()
    assert bytes(back) == blob


def test_events_encrypted_at_rest(db_url: str) -> None:
    cipher = EnvelopeCipher(Keyring({"k1": generate_key()}, "k1"))
    store = Store(db_url, cipher=cipher)
    try:
        store.create_session("s1", "websocket", "en", ["mono"], {})
        store.add_events([("s1", 0, {"type": "final", "text": "4539 1488 0343 6467"})])
        assert store.events("s1")[0]["text"] == "4539 1488 0343 6467"
        with store.engine.connect() as conn:
            raw = bytes(conn.execute(sa.select(events_table.c.payload)).scalar_one())
        assert b"4539" not in raw and raw.startswith(b"HKE1")
        with pytest.raises(ValueError):  # the session id is authenticated data: a row moved elsewhere won't open
            cipher.decrypt(raw, b"s2")
    finally:
        store.close()


# -- tickets ---------------------------------------------------------------------------------------------------

def _ticket(n: int, **kw) -> Ticket:
    base = dict(id=f"T{n:03d}", session_id=f"call-{n % 2}", rule_id="pci_pan_spoken" if n % 2 else "cc_dead_air",
                severity=Severity.HIGH if n % 2 else Severity.LOW, title=f"finding {n}", status=TicketStatus.OPEN,
                created_at=f"2026-11-26T12:00:{n:02d}+00:00", updated_at=f"2026-11-26T12:00:{n:02d}+00:00",
                created_by="engine", pack="pci_dss", finding={"evidence": [{"text": "４５３９ secret", "n": n}]})
    return Ticket(**(base | kw))


def test_tickets_add_update_and_filter(engine: sa.Engine) -> None:
    cipher = EnvelopeCipher(Keyring({"k1": generate_key()}, "k1"))
    repo = SqlTicketRepository(engine, cipher=cipher)
    for n in range(1, 7):
        repo.add(_ticket(n, tenant_id="acme" if n <= 4 else "default", agent="a7" if n in (2, 3) else None))
    with pytest.raises(TicketConflict):
        repo.add(_ticket(1))
    got = repo.get("T001")
    assert got == _ticket(1, tenant_id="acme") and repo.get("T999") is None

    ids = lambda flt: [t.id for t in repo.list(flt)]  # noqa: E731
    assert ids(TicketFilter()) == ["T006", "T005", "T004", "T003", "T002", "T001"]  # newest first
    assert ids(TicketFilter(tenant_id="acme", severity=Severity.HIGH)) == ["T003", "T001"]
    assert ids(TicketFilter(session_id="call-0", rule_id="cc_dead_air")) == ["T006", "T004", "T002"]
    assert ids(TicketFilter(agent="a7")) == ["T003", "T002"]
    assert ids(TicketFilter(created_from="2026-11-26T12:00:02+00:00", created_to="2026-11-26T12:00:04+00:00")) == \
        ["T003", "T002"]
    assert ids(TicketFilter(limit=2, offset=1)) == ["T005", "T004"]

    assigned = replace(got, status=TicketStatus.ASSIGNED, assignee="wang", version=2, resolution=None,
                       updated_at="2026-11-26T13:00:00+00:00")
    repo.update(assigned)
    assert repo.get("T001") == assigned
    assert ids(TicketFilter(status=TicketStatus.ASSIGNED, assignee="wang")) == ["T001"]
    with pytest.raises(TicketConflict):  # a stale copy (version 1 -> 2 again) loses
        repo.update(replace(got, version=2, title="lost update"))
    with pytest.raises(TicketNotFound):
        repo.update(_ticket(99, version=2))
    with engine.connect() as conn:
        body = bytes(conn.execute(sa.select(tickets_table.c.body).where(tickets_table.c.id == "T001")).scalar_one())
    assert b"secret" not in body and body.startswith(b"HKE1")


# -- identity --------------------------------------------------------------------------------------------------

def test_identity_users_keys_and_web_sessions(engine: sa.Engine) -> None:
    ids = IdentityStore(engine, hasher=FAST_HASHER)
    ana = ids.add_user("ana", "correct horse battery", "supervisor", "acme")
    ids.add_user("bo", "another long password", Role.AGENT)
    with pytest.raises(IdentityError, match="exists"):
        ids.add_user("ana", "correct horse battery", "auditor")
    assert ids.tenants() == ["acme", "default"] and ids.count_users() == 2
    assert [u.username for u in ids.list_users("acme")] == ["ana"]
    assert ids.get_user("bo").agent_id == "bo" and ids.get_user("nobody") is None
    assert ids.authenticate("ana", "correct horse battery") == ana
    assert ids.authenticate("ana", "wrong password!") is None
    assert ids.set_role("ana", Role.ADMIN).role is Role.ADMIN

    token, web = ids.open_web_session(ana, ttl_s=60)
    assert ids.web_session(token).csrf_token == web.csrf_token
    ids.close_web_session(token)
    assert ids.web_session(token) is None
    token, _ = ids.open_web_session(ana, ttl_s=60)
    expired, _ = ids.open_web_session(ana, ttl_s=-1)
    assert ids.web_session(expired) is None
    assert ids.set_disabled("ana").disabled and ids.web_session(token) is None  # signed out everywhere
    assert ids.authenticate("ana", "correct horse battery") is None

    full, key = ids.create_key("acme", "pbx", ["ingest", "read"])
    assert ids.verify_key(full) == key and key.scopes == ("ingest", "read")
    assert ids.verify_key(full[:-1] + ("x" if full[-1] != "x" else "y")) is None
    other_full, _ = ids.create_key("beta", "crm", ["read"])
    assert [k.id for k in ids.list_keys("acme")] == [key.id] and len(ids.list_keys()) == 2
    with pytest.raises(IdentityError):  # another tenant cannot revoke it
        ids.revoke_key(key.id, tenant_id="beta")
    assert ids.revoke_key(key.id, tenant_id="acme").revoked_at is not None
    assert ids.verify_key(full) is None and ids.verify_key(other_full) is not None


# -- audit -----------------------------------------------------------------------------------------------------

def test_audit_chain_appends_verifies_and_detects_tampering(engine: sa.Engine) -> None:
    storage = SqlAuditStorage(engine)
    a, b = AuditChain(storage), AuditChain(SqlAuditStorage(engine))
    for i in range(6):  # two chains on one table interleave without forking
        (a if i % 2 else b).append("cli", "user.added", {"i": i, "name": "王"})
    assert storage.count() == 6 and a.verify().ok and a.verify().checked == 6
    assert [r.payload["i"] for r in storage.iter_records()] == list(range(6))
    with pytest.raises(AuditConflict):
        storage.append(storage.last())
    with engine.begin() as conn:
        conn.execute(audit_log_table.update().where(audit_log_table.c.seq == 3).values(payload='{"i":99}'))
    assert not a.verify().ok


# -- migrations ------------------------------------------------------------------------------------------------

def test_fresh_database_is_migrated_to_head_and_matches_the_stores(engine: sa.Engine) -> None:
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(target_metadata().tables) <= set(sa.inspect(engine).get_table_names())
    assert _schema_diffs(engine) == []


def _old_release_metadata() -> sa.MetaData:
    """What a release from before tenants (and before the identity tables) created with `create_all`."""
    m = sa.MetaData()
    sa.Table("sessions", m,
             sa.Column("id", sa.String(64), primary_key=True), sa.Column("source", sa.String(64), nullable=False),
             sa.Column("language", sa.String(16), nullable=False), sa.Column("channel_names", sa.JSON, nullable=False),
             sa.Column("metadata", sa.JSON, nullable=False), sa.Column("status", sa.String(16), nullable=False),
             sa.Column("end_reason", sa.String(64)), sa.Column("created_at", sa.Float, nullable=False),
             sa.Column("ended_at", sa.Float), sa.Column("audio_s", sa.Float, nullable=False),
             sa.Column("stats", sa.JSON))
    sa.Table("events", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id"), nullable=False, index=True),
             sa.Column("seq", sa.Integer, nullable=False), sa.Column("type", sa.String(32), nullable=False),
             sa.Column("segment_id", sa.String(64)), sa.Column("channel", sa.Integer),
             sa.Column("start_s", sa.Float), sa.Column("end_s", sa.Float),
             sa.Column("payload", sa.LargeBinary, nullable=False), sa.Column("created_at", sa.Float, nullable=False),
             sa.UniqueConstraint("session_id", "seq", name="uq_event_seq"))
    sa.Table("tickets", m,
             sa.Column("id", sa.String(64), primary_key=True),
             sa.Column("session_id", sa.String(64), nullable=False, index=True),
             sa.Column("rule_id", sa.String(100), nullable=False, index=True),
             sa.Column("pack", sa.String(100), nullable=False),
             sa.Column("severity", sa.String(16), nullable=False, index=True),
             sa.Column("title", sa.String(500), nullable=False),
             sa.Column("status", sa.String(16), nullable=False, index=True),
             sa.Column("assignee", sa.String(200), index=True),
             sa.Column("created_by", sa.String(200), nullable=False),
             sa.Column("created_at", sa.String(40), nullable=False, index=True),
             sa.Column("updated_at", sa.String(40), nullable=False), sa.Column("closed_at", sa.String(40)),
             sa.Column("version", sa.Integer, nullable=False), sa.Column("body", sa.LargeBinary, nullable=False))
    return m


def test_database_from_an_old_release_is_adopted_keeping_its_rows(engine: sa.Engine, db_url: str) -> None:
    _old_release_metadata().create_all(engine)
    old = _old_release_metadata().tables
    with engine.begin() as conn:
        conn.execute(old["sessions"].insert().values(id="old1", source="websocket", language="en",
                                                     channel_names=["a"], metadata={"agent": "a1"}, status="ended",
                                                     created_at=1.0, audio_s=3.0))
        conn.execute(old["events"].insert().values(session_id="old1", seq=0, type="final",
                                                   payload=b'{"type": "final", "text": "hi"}', created_at=1.0))
        conn.execute(old["tickets"].insert().values(
            id="T1", session_id="old1", rule_id="r", pack="p", severity="high", title="t", status="open",
            created_by="e", created_at="2026-01-01T00:00:00+00:00", updated_at="2026-01-01T00:00:00+00:00",
            version=1, body=b'{"finding": {}, "comments": [], "resolution": null}'))
    assert current_revision(engine) is None

    store = Store(db_url)  # opening the store is what upgrades it
    try:
        assert current_revision(engine) == head_revision()
        row = store.get_session("old1")
        assert row.tenant_id == "default" and row.agent == "a1" and row.audio_s == 3.0
        assert store.events("old1") == [{"type": "final", "text": "hi", "seq": 0}]
        store.create_session("new1", "websocket", "en", ["a"], {}, tenant_id="acme")
        assert [r.id for r in store.list_sessions(tenant_id="acme")] == ["new1"]
    finally:
        store.close()
    ticket = SqlTicketRepository(engine).get("T1")
    assert ticket.tenant_id == "default" and ticket.agent is None
    assert IdentityStore(engine, hasher=FAST_HASHER).add_user("ana", "correct horse battery", "admin")
    assert _schema_diffs(engine) == []  # columns, NOT NULL defaults and indexes as a fresh database has them


def test_upgrading_twice_changes_nothing(engine: sa.Engine) -> None:
    upgrade(engine)
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        upgrade(engine)
        SqlAuditStorage(engine)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    ddl = [s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP", "INSERT", "UPDATE"))]
    assert ddl == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [head_revision()]


def test_a_newer_release_schema_is_left_alone(engine: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Rolling upgrade: a node of this release restarting after a newer one migrated further still starts."""
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff_future'")
    SqlAuditStorage(engine).count()
    assert current_revision(engine) == "ffff_future" and "newer than this release" in caplog.text


def test_concurrent_first_starts_both_succeed(db_url: str) -> None:
    """Nodes starting together on an empty database: one migrates, the others wait and find it done."""
    engines = [sa.create_engine(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(eng: sa.Engine) -> None:
        try:
            barrier.wait(timeout=30)
            upgrade(eng)
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert errors == [] and not any(t.is_alive() for t in threads)
        assert current_revision(engines[0]) == head_revision()
        with engines[0].connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar_one() == 1
        assert _schema_diffs(engines[0]) == []
    finally:
        for e in engines:
            e.dispose()


def test_cli_db_upgrade_and_current(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from api.cli import main as harken

    assert harken(["db", "current", "--url", db_url]) == 1  # not migrated yet: a non-zero exit for scripts
    assert harken(["db", "upgrade", "--url", db_url]) == 0
    assert harken(["db", "upgrade", "--url", db_url]) == 0
    assert harken(["db", "current", "--url", db_url]) == 0
    out = capsys.readouterr().out.splitlines()
    head = head_revision()
    assert out == [f"not migrated (head: {head})", f"empty -> {head}", f"{head} (already at head)",
                   f"{head} (head: {head})"]
