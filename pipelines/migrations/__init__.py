"""Alembic migration environment for the stores' schema (run programmatically by `pipelines.migrate`)."""
