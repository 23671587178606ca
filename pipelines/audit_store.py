"""SQL storage for the hash-chained audit trail (SQLAlchemy Core, given an Engine: SQLite or PostgreSQL).

`seq` is the primary key, so two writers racing for the same sequence number cannot both succeed: the loser
gets `AuditConflict` and `AuditChain` retries on top of the new head. Records are only ever inserted; the
verifier (`harken audit-log verify --db URL`) detects edits, deletions and reordering done behind our back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import sqlalchemy as sa

from intelligence.audit_chain import AuditConflict, AuditRecord, canonical_json
from pipelines.migrate import upgrade

metadata = sa.MetaData()

audit_log_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False, index=True),
    sa.Column("payload", sa.Text, nullable=False),
)


class SqlAuditStorage:
    """`AuditStorage` on a SQL database. Migrates the schema on open (`create=False` to skip)."""

    def __init__(self, engine: sa.Engine, *, create: bool = True) -> None:
        self.engine = engine
        if create:
            upgrade(engine)  # the schema of every store, under a lock (see pipelines.migrate)

    def append(self, record: AuditRecord) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(audit_log_table.insert().values(
                    seq=record.seq, prev_hash=record.prev_hash, hash=record.hash, timestamp=record.timestamp,
                    actor=record.actor, action=record.action, payload=canonical_json(record.payload),
                ))
        except sa.exc.IntegrityError as exc:
            raise AuditConflict(f"seq {record.seq} already exists") from exc

    def last(self) -> AuditRecord | None:
        q = sa.select(audit_log_table).order_by(audit_log_table.c.seq.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return _record(row) if row else None

    def iter_records(self) -> Iterator[AuditRecord]:
        q = sa.select(audit_log_table).order_by(audit_log_table.c.seq)
        with self.engine.connect() as conn:
            for row in conn.execute(q).mappings():
                yield _record(row)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log_table)).scalar_one())


def _record(row: sa.RowMapping) -> AuditRecord:
    return AuditRecord(int(row["seq"]), row["prev_hash"], row["hash"], row["timestamp"], row["actor"], row["action"],
                       json.loads(row["payload"]))
