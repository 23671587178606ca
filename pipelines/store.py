"""Persistence of sessions and their events (SQLAlchemy Core: SQLite by default, any URL such as PostgreSQL).

Only durable events are stored: finals, annotations, findings, alerts and tap events (partials are ephemeral by
design). All methods are synchronous and must be called off the event loop (see `PersistenceSink`).
Event payloads may be encrypted at rest by passing a `cipher` with encrypt/decrypt of bytes.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from pipelines.migrate import upgrade

metadata = sa.MetaData()

sessions_table = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("language", sa.String(16), nullable=False),
    sa.Column("channel_names", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # live | ended | failed
    sa.Column("end_reason", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),
    sa.Column("audio_s", sa.Float, nullable=False, default=0.0),
    sa.Column("stats", sa.JSON),
    # the tenant that owns the session; rows written before tenants existed belong to "default"
    sa.Column("tenant_id", sa.String(64), nullable=False, server_default="default", index=True),
)

events_table = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id"), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("segment_id", sa.String(64)),
    sa.Column("channel", sa.Integer),
    sa.Column("start_s", sa.Float),
    sa.Column("end_s", sa.Float),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("session_id", "seq", name="uq_event_seq"),
)


class Cipher(Protocol):
    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes: ...
    def decrypt(self, ciphertext: bytes, associated_data: bytes) -> bytes: ...


@dataclass(frozen=True)
class SessionRow:
    id: str
    source: str
    language: str
    channel_names: list[str]
    metadata: dict[str, Any]
    status: str
    end_reason: str | None
    created_at: float
    ended_at: float | None
    audio_s: float
    stats: dict[str, Any] | None
    tenant_id: str = "default"

    @property
    def agent(self) -> str | None:
        """The agent the call is tagged with (start-message or tap metadata `agent`), if any."""
        value = (self.metadata or {}).get("agent")
        return str(value) if value not in (None, "") else None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Store:
    """Sessions and events in one database."""

    def __init__(self, url: str, cipher: Cipher | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False}
            if url in ("sqlite://", "sqlite:///:memory:"):
                # one shared connection, or every thread would see its own empty in-memory database
                kwargs["poolclass"] = sa.pool.StaticPool
        else:  # a server database: a pooled connection that died with a server restart is replaced, not used
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(url, future=True, **kwargs)
        if url.startswith("sqlite"):
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        upgrade(self.engine)  # create, adopt a pre-Alembic database, or migrate (see pipelines.migrate)
        self._cipher = cipher
        self._lock = threading.Lock()  # SQLite allows one writer; keep our writes serial

    def close(self) -> None:
        self.engine.dispose()

    # -- sessions ------------------------------------------------------------------------------------------
    def create_session(self, session_id: str, source: str, language: str, channel_names: list[str],
                       meta: dict[str, Any], tenant_id: str = "default") -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(sessions_table.insert().values(
                id=session_id, source=source, language=language, channel_names=channel_names, metadata=meta,
                status="live", created_at=time.time(), audio_s=0.0, tenant_id=tenant_id,
            ))

    def update_session(self, session_id: str, **values: Any) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(sessions_table.update().where(sessions_table.c.id == session_id).values(**values))

    def mark_interrupted(self) -> int:
        """At start-up, sessions left `live` by a crash are closed as interrupted (their events are kept)."""
        with self._lock, self.engine.begin() as conn:
            res = conn.execute(
                sessions_table.update().where(sessions_table.c.status == "live")
                .values(status="ended", end_reason="server_restart", ended_at=time.time())
            )
            return int(res.rowcount or 0)

    def get_session(self, session_id: str) -> SessionRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sessions_table).where(sessions_table.c.id == session_id)).mappings().first()
        return SessionRow(**row) if row else None

    def list_sessions(self, limit: int = 100, offset: int = 0, status: str | None = None,
                      tenant_id: str | None = None, created_from: float | None = None,
                      created_to: float | None = None) -> list[SessionRow]:
        """Newest first; `tenant_id` None means every tenant (operators' tools only, never an API caller)."""
        q = sa.select(sessions_table).order_by(sessions_table.c.created_at.desc()).limit(limit).offset(offset)
        if status:
            q = q.where(sessions_table.c.status == status)
        if tenant_id is not None:
            q = q.where(sessions_table.c.tenant_id == tenant_id)
        if created_from is not None:
            q = q.where(sessions_table.c.created_at >= created_from)
        if created_to is not None:
            q = q.where(sessions_table.c.created_at < created_to)
        with self.engine.connect() as conn:
            return [SessionRow(**r) for r in conn.execute(q).mappings()]

    # -- events --------------------------------------------------------------------------------------------
    def _encode(self, session_id: str, payload: dict[str, Any]) -> bytes:
        raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return self._cipher.encrypt(raw, session_id.encode()) if self._cipher else raw

    def _decode(self, session_id: str, blob: bytes) -> dict[str, Any]:
        raw = self._cipher.decrypt(blob, session_id.encode()) if self._cipher else blob
        return json.loads(raw.decode("utf-8"))

    def add_events(self, rows: list[tuple[str, int, dict[str, Any]]]) -> None:
        """Insert (session_id, seq, event dict) rows in one transaction."""
        if not rows:
            return
        now = time.time()
        values = [
            {
                "session_id": sid, "seq": seq, "type": ev.get("type", "event"),
                "segment_id": ev.get("segment_id"), "channel": ev.get("channel"),
                "start_s": ev.get("start_s"), "end_s": ev.get("end_s"),
                "payload": self._encode(sid, ev), "created_at": now,
            }
            for sid, seq, ev in rows
        ]
        with self._lock, self.engine.begin() as conn:
            conn.execute(events_table.insert(), values)

    def replace_event_payload(self, session_id: str, seq: int, event: dict[str, Any]) -> None:
        """Rewrite one stored event (used only for redaction of spoken card data)."""
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                events_table.update()
                .where(events_table.c.session_id == session_id, events_table.c.seq == seq)
                .values(payload=self._encode(session_id, event))
            )

    def events(self, session_id: str, types: tuple[str, ...] | None = None, after_seq: int = -1) -> list[dict]:
        q = (
            sa.select(events_table.c.seq, events_table.c.payload)
            .where(events_table.c.session_id == session_id, events_table.c.seq > after_seq)
            .order_by(events_table.c.seq)
        )
        if types:
            q = q.where(events_table.c.type.in_(types))
        with self.engine.connect() as conn:
            out = []
            for seq, blob in conn.execute(q):
                ev = self._decode(session_id, blob)
                ev["seq"] = seq
                out.append(ev)
            return out
