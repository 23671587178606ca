"""Initial schema: sessions, events, tickets, tenants, users, api_keys, web_sessions, audit_log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

from pipelines.migrations.baseline import baseline_metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The frozen baseline tables (with their indexes and constraints) are the single definition of 0001, shared
    # with the legacy-adoption path in pipelines.migrate.
    baseline_metadata().create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    baseline_metadata().drop_all(op.get_bind(), checkfirst=False)
