"""Alembic revisions. Alembic loads these files by path; this file only makes setuptools ship them."""
