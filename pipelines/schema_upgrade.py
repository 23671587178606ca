"""Add columns that a newer release defines to tables an older release created (SQLite or PostgreSQL).

`metadata.create_all` creates missing tables but never alters existing ones; without this, a database written
before tenants existed would fail on the first query. Only additive, nullable-or-defaulted columns are handled.
"""

from __future__ import annotations

import sqlalchemy as sa


def add_missing_columns(engine: sa.Engine, table: sa.Table) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for every column of `table` the database lacks; returns their names."""
    have = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
    added: list[str] = []
    with engine.begin() as conn:
        for col in table.columns:
            if col.name in have:
                continue
            ddl_type = col.type.compile(dialect=engine.dialect)
            default = col.server_default.arg if col.server_default is not None else None
            clause = f" DEFAULT '{default}'" if isinstance(default, str) else ""
            conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {ddl_type}{clause}')
            added.append(col.name)
    return added
