"""`harken db upgrade|current`: the database schema (Alembic migrations shipped in pipelines/migrations).

The service upgrades its database when it starts, so these are for operators who migrate ahead of a rollout
(e.g. one PostgreSQL shared by several nodes) or want to see where a database stands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _url(args: argparse.Namespace) -> str:
    """--url, else the database `harken serve` would use (HARKEN_DATABASE_URL, or the SQLite file in the data dir)."""
    if args.url:
        return str(args.url)
    from pipelines.settings import HarkenSettings

    url = HarkenSettings(**({"data_dir": args.data_dir} if args.data_dir else {})).resolved_database_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def _db(args: argparse.Namespace) -> int:
    from pipelines.migrate import current_revision, head_revision, upgrade

    url = _url(args)
    if args.db_command == "upgrade":
        before = current_revision(url)
        upgrade(url)
        after = current_revision(url)
        if before != after:
            print(f"{before or 'empty'} -> {after}")
        elif after == head_revision():
            print(f"{after} (already at head)")
        else:
            print(f"{after} (newer than this release's {head_revision()}; left as it is)")
    else:
        current = current_revision(url)
        head = head_revision()
        print(f"{current or 'not migrated'} (head: {head})")
        if current != head:
            print("run `harken db upgrade` (or start the service) to migrate", file=sys.stderr)
            return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema: upgrade to this release's revision, show the current one")
    ds = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, text in (("upgrade", "migrate the database to the newest revision (safe while others run it)"),
                       ("current", "print the database's revision; exit 1 when it is behind")):
        p = ds.add_parser(name, help=text)
        p.add_argument("--url", default=None, help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/harken "
                                                   "(default: the service's database)")
        p.add_argument("--data-dir", type=Path, default=None, help="data directory, when --url is not given")
    db.set_defaults(func=_db)
