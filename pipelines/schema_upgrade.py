"""Add columns that a newer schema defines to tables an older release created (SQLite or PostgreSQL).

`metadata.create_all` creates missing tables but never alters existing ones; without this, a database written
before tenants existed would fail on the first query. Only additive, nullable-or-defaulted columns are handled.
Used by `pipelines.migrate` to bring a pre-Alembic database to the baseline revision before stamping it.
"""

from __future__ import annotations

import sqlalchemy as sa


def add_missing_columns(bind: sa.Engine | sa.Connection, table: sa.Table) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for every column of `table` the database lacks; returns their names.

    Given a Connection, runs in its current transaction (the caller commits); given an Engine, in its own.
    """
    if isinstance(bind, sa.Engine):
        with bind.begin() as conn:
            return add_missing_columns(conn, table)
    have = {c["name"] for c in sa.inspect(bind).get_columns(table.name)}
    quote = bind.dialect.identifier_preparer.quote
    added: list[str] = []
    for col in table.columns:
        if col.name in have:
            continue
        ddl_type = col.type.compile(dialect=bind.dialect)
        default = col.server_default.arg if isinstance(col.server_default, sa.DefaultClause) else None
        clause = ""
        if isinstance(default, str):
            clause = " DEFAULT '{}'".format(default.replace("'", "''"))
            # both SQLite and PostgreSQL accept NOT NULL on an added column when it has a default for old rows
            clause += "" if col.nullable else " NOT NULL"
        bind.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(col.name)} {ddl_type}{clause}")
        added.append(col.name)
    return added
