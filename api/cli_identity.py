"""`harken users add|list|disable|role` and `harken keys create|list|revoke`, on the service's database.

They open the same database `harken serve` uses (HARKEN_DATA_DIR / HARKEN_DATABASE_URL, or `--data-dir`), so an
operator manages access from the host without a signed-in session. Every change goes into the audit log.
"""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from intelligence.access import DEFAULT_TENANT, SCOPES, Role


def _open(data_dir: Path | None) -> tuple[Any, Any]:
    """(identity store, audit chain) on the configured database."""
    import sqlalchemy as sa

    from intelligence.audit_chain import AuditChain
    from pipelines.audit_store import SqlAuditStorage
    from pipelines.identity_store import IdentityStore
    from pipelines.settings import HarkenSettings

    settings = HarkenSettings(**({"data_dir": data_dir} if data_dir else {}))
    url = settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, future=True)
    return IdentityStore(engine), AuditChain(SqlAuditStorage(engine))


def new_password() -> str:
    """A random password for a new account (about 120 bits), shown once."""
    return secrets.token_urlsafe(15)


def ensure_first_admin(identity: Any, audit: Any, password: str | None) -> str | None:
    """Create `admin` in the default tenant when no user exists; returns the password to show, else None."""
    if identity.count_users() > 0:
        return None
    pw = password or new_password()
    identity.add_user("admin", pw, Role.ADMIN, DEFAULT_TENANT)
    audit.append("system", "user.added", {"tenant": DEFAULT_TENANT, "username": "admin", "role": "admin",
                                          "first_admin": True})
    return None if password else pw


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated?) from --password-stdin, else a generated one."""
    if args.password_stdin:
        pw = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("password: ")
        return pw, False
    return new_password(), True


def _users(args: argparse.Namespace) -> int:
    from pipelines.identity_store import IdentityError

    identity, audit = _open(args.data_dir)
    try:
        if args.users_command == "add":
            pw, generated = _read_password(args)
            user = identity.add_user(args.username, pw, args.role, args.tenant, args.agent_id)
            audit.append("cli", "user.added", {"tenant": user.tenant_id, "username": user.username,
                                               "role": user.role.value})
            print(json.dumps(user.to_dict()))
            if generated:
                print(f"password (shown once): {pw}", file=sys.stderr)
        elif args.users_command == "list":
            for u in identity.list_users(args.tenant):
                print(json.dumps(u.to_dict()))
        elif args.users_command == "disable":
            user = identity.set_disabled(args.username, True)
            audit.append("cli", "user.disabled", {"tenant": user.tenant_id, "username": user.username})
            print(json.dumps(user.to_dict()))
        elif args.users_command == "role":
            old = identity.get_user(args.username)
            user = identity.set_role(args.username, args.role)
            audit.append("cli", "user.role_changed", {"tenant": user.tenant_id, "username": user.username,
                                                      "before": old.role.value if old else None,
                                                      "after": user.role.value})
            print(json.dumps(user.to_dict()))
    except IdentityError as exc:
        print(f"harken: {exc}", file=sys.stderr)
        return 2
    return 0


def _keys(args: argparse.Namespace) -> int:
    from pipelines.identity_store import IdentityError

    identity, audit = _open(args.data_dir)
    try:
        if args.keys_command == "create":
            scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
            full, rec = identity.create_key(args.tenant, args.name, scopes)
            audit.append("cli", "key.created", {"tenant": rec.tenant_id, "key_id": rec.id, "scopes": list(rec.scopes)})
            print(json.dumps({**rec.to_dict(), "key": full}))
            print("the key is shown once; store it now", file=sys.stderr)
        elif args.keys_command == "list":
            for k in identity.list_keys(args.tenant):
                print(json.dumps(k.to_dict()))
        elif args.keys_command == "revoke":
            rec = identity.revoke_key(args.key_id)
            audit.append("cli", "key.revoked", {"tenant": rec.tenant_id, "key_id": rec.id})
            print(json.dumps(rec.to_dict()))
    except IdentityError as exc:
        print(f"harken: {exc}", file=sys.stderr)
        return 2
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="console users: add, list, disable, change role")
    users.add_argument("--data-dir", type=Path, default=None)
    us = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    p = us.add_parser("add", help="add a user (prints a generated password once unless --password-stdin)")
    p.add_argument("username")
    p.add_argument("--role", choices=[r.value for r in Role], required=True)
    p.add_argument("--tenant", default=DEFAULT_TENANT)
    p.add_argument("--agent-id", default=None, help="agents: the id their calls are tagged with (default: username)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p = us.add_parser("list", help="list users (JSON lines)")
    p.add_argument("--tenant", default=None)
    p = us.add_parser("disable", help="disable a user and end their sign-ins")
    p.add_argument("username")
    p = us.add_parser("role", help="change a user's role")
    p.add_argument("username")
    p.add_argument("--role", choices=[r.value for r in Role], required=True)
    users.set_defaults(func=_users)

    keys = sub.add_parser("keys", help="API keys for machines and taps: create, list, revoke")
    keys.add_argument("--data-dir", type=Path, default=None)
    ks = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    p = ks.add_parser("create", help="create a key (printed once)")
    p.add_argument("--tenant", default=DEFAULT_TENANT)
    p.add_argument("--name", default="key")
    p.add_argument("--scopes", default="ingest", help=f"comma-separated, of: {', '.join(SCOPES)}")
    p = ks.add_parser("list", help="list keys (JSON lines, never the secret)")
    p.add_argument("--tenant", default=None)
    p = ks.add_parser("revoke", help="revoke a key by id")
    p.add_argument("key_id")
    keys.set_defaults(func=_keys)
