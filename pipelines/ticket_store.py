"""SQL persistence for review tickets (SQLAlchemy Core, given an Engine); implements `TicketRepository`.

Filterable fields are columns; the finding (with its evidence text), comments and resolution live in one
`body` blob, encrypted at rest when a cipher is given (anything with encrypt/decrypt(bytes, associated_data),
e.g. `intelligence.crypto_at_rest.EnvelopeCipher`). Updates use optimistic concurrency on `version`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import sqlalchemy as sa

from intelligence.tickets import Ticket, TicketConflict, TicketFilter, TicketNotFound
from pipelines.migrate import upgrade

metadata = sa.MetaData()

tickets_table = sa.Table(
    "tickets",
    metadata,
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
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("closed_at", sa.String(40)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False, server_default="default", index=True),
    sa.Column("agent", sa.String(200), index=True),
)


class BlobCipher(Protocol):
    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes: ...
    def decrypt(self, blob: bytes, associated_data: bytes = b"") -> bytes: ...


class SqlTicketRepository:
    """`TicketRepository` on a SQL database."""

    def __init__(self, engine: sa.Engine, *, cipher: BlobCipher | None = None, create: bool = True) -> None:
        self.engine = engine
        self._cipher = cipher
        if create:
            upgrade(engine)  # the schema of every store, under a lock (see pipelines.migrate)

    def _body(self, t: Ticket) -> bytes:
        d = t.to_dict()
        raw = json.dumps({k: d[k] for k in ("finding", "comments", "resolution")}, ensure_ascii=False).encode()
        return self._cipher.encrypt(raw, f"ticket:{t.id}".encode()) if self._cipher else raw

    def _row(self, t: Ticket) -> dict[str, Any]:
        return {"id": t.id, "session_id": t.session_id, "rule_id": t.rule_id, "pack": t.pack,
                "severity": t.severity.value, "title": t.title, "status": t.status.value, "assignee": t.assignee,
                "created_by": t.created_by, "created_at": t.created_at, "updated_at": t.updated_at,
                "closed_at": t.closed_at, "version": t.version, "body": self._body(t), "tenant_id": t.tenant_id,
                "agent": t.agent}

    def _ticket(self, row: sa.RowMapping) -> Ticket:
        blob = bytes(row["body"])
        raw = self._cipher.decrypt(blob, f"ticket:{row['id']}".encode()) if self._cipher else blob
        body = json.loads(raw.decode("utf-8"))
        d = {k: row[k] for k in row.keys() if k != "body"} | body
        return Ticket.from_dict(d)

    def add(self, ticket: Ticket) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(tickets_table.insert().values(**self._row(ticket)))
        except sa.exc.IntegrityError as exc:
            raise TicketConflict(f"ticket {ticket.id} exists") from exc

    def get(self, ticket_id: str) -> Ticket | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tickets_table).where(tickets_table.c.id == ticket_id)).mappings().first()
        return self._ticket(row) if row else None

    def update(self, ticket: Ticket) -> None:
        values = self._row(ticket)
        values.pop("id")
        with self.engine.begin() as conn:
            res = conn.execute(
                tickets_table.update()
                .where(tickets_table.c.id == ticket.id, tickets_table.c.version == ticket.version - 1)
                .values(**values)
            )
            if res.rowcount == 0:
                exists = conn.execute(sa.select(tickets_table.c.id).where(tickets_table.c.id == ticket.id)).first()
                if exists is None:
                    raise TicketNotFound(ticket.id)
                raise TicketConflict(f"ticket {ticket.id} changed concurrently")

    def list(self, flt: TicketFilter) -> list[Ticket]:
        c = tickets_table.c
        q = sa.select(tickets_table)
        if flt.status is not None:
            q = q.where(c.status == flt.status.value)
        if flt.severity is not None:
            q = q.where(c.severity == flt.severity.value)
        if flt.session_id is not None:
            q = q.where(c.session_id == flt.session_id)
        if flt.assignee is not None:
            q = q.where(c.assignee == flt.assignee)
        if flt.rule_id is not None:
            q = q.where(c.rule_id == flt.rule_id)
        if flt.tenant_id is not None:
            q = q.where(c.tenant_id == flt.tenant_id)
        if flt.agent is not None:
            q = q.where(c.agent == flt.agent)
        if flt.created_from is not None:
            q = q.where(c.created_at >= flt.created_from)
        if flt.created_to is not None:
            q = q.where(c.created_at < flt.created_to)
        q = q.order_by(c.created_at.desc(), c.id.desc()).limit(flt.limit).offset(flt.offset)
        with self.engine.connect() as conn:
            return [self._ticket(r) for r in conn.execute(q).mappings()]
