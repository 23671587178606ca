"""Tenants, users, API keys and console sign-in sessions, in the same database as the sessions.

Passwords are hashed with Argon2id (argon2-cffi); API keys and sign-in tokens are random 256-bit secrets of
which only a SHA-256 digest is stored (they are not guessable, so a slow hash buys nothing). The full key is
shown once, at creation. All methods block: call them off the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from intelligence.access import DEFAULT_TENANT, Role, perms_for_scopes
from pipelines.migrate import upgrade

metadata = sa.MetaData()

tenants_table = sa.Table(
    "tenants", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
users_table = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("username", sa.String(200), nullable=False, unique=True),  # sign-in needs no tenant field
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("agent_id", sa.String(200)),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
api_keys_table = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("last_used_at", sa.Float),
)
web_sessions_table = sa.Table(
    "web_sessions", metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(32), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

KEY_PREFIX = "hk_"
MIN_PASSWORD_CHARS = 10


class IdentityError(ValueError):
    """A refused identity change (duplicate user, weak password, unknown role or tenant)."""


@dataclass(frozen=True)
class User:
    id: str
    tenant_id: str
    username: str
    role: Role
    agent_id: str | None
    disabled: bool
    created_at: float

    def to_dict(self) -> dict:
        return {"username": self.username, "tenant": self.tenant_id, "role": self.role.value,
                "agent_id": self.agent_id, "disabled": self.disabled, "created_at": self.created_at}


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None
    last_used_at: float | None

    def to_dict(self) -> dict:
        return {"id": self.id, "tenant": self.tenant_id, "name": self.name, "scopes": list(self.scopes),
                "created_at": self.created_at, "revoked": self.revoked_at is not None,
                "last_used_at": self.last_used_at}


@dataclass(frozen=True)
class WebSession:
    user: User
    csrf_token: str
    expires_at: float


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _user(row: sa.RowMapping) -> User:
    return User(row["id"], row["tenant_id"], row["username"], Role(row["role"]), row["agent_id"],
                bool(row["disabled"]), row["created_at"])


def _key(row: sa.RowMapping) -> ApiKey:
    return ApiKey(row["id"], row["tenant_id"], row["name"], tuple(row["scopes"]), row["created_at"],
                  row["revoked_at"], row["last_used_at"])


class IdentityStore:
    """Users, keys and sign-in sessions on a SQLAlchemy engine (schema migrated on open)."""

    def __init__(self, engine: sa.Engine, hasher: PasswordHasher | None = None) -> None:
        self.engine = engine
        upgrade(engine)  # the schema of every store, under a lock (see pipelines.migrate)
        self._hasher = hasher or PasswordHasher()
        self._lock = threading.Lock()
        # verifying against a real hash when the user does not exist keeps timing from revealing usernames
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    # -- tenants -------------------------------------------------------------------------------------------
    def ensure_tenant(self, tenant_id: str, name: str | None = None) -> None:
        if not tenant_id or len(tenant_id) > 64 or not tenant_id.replace("-", "").replace("_", "").isalnum():
            raise IdentityError("a tenant id is 1-64 letters, digits, '-' or '_'")
        with self._lock, self.engine.begin() as conn:
            if conn.execute(sa.select(tenants_table.c.id).where(tenants_table.c.id == tenant_id)).first() is None:
                conn.execute(tenants_table.insert().values(id=tenant_id, name=name or tenant_id,
                                                           created_at=time.time()))

    def tenants(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(tenants_table.c.id).order_by(tenants_table.c.id))]

    # -- users ---------------------------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: Role | str, tenant_id: str = DEFAULT_TENANT,
                 agent_id: str | None = None) -> User:
        try:
            role = Role(role)
        except ValueError as exc:
            raise IdentityError(f"unknown role {role!r}; expected one of {', '.join(r.value for r in Role)}") from exc
        username = username.strip()
        if not username or len(username) > 200:
            raise IdentityError("a username is 1-200 characters")
        if len(password) < MIN_PASSWORD_CHARS:
            raise IdentityError(f"a password has at least {MIN_PASSWORD_CHARS} characters")
        self.ensure_tenant(tenant_id)
        if role is Role.AGENT and not agent_id:
            agent_id = username  # an agent's calls are tagged with their agent id; default to the username
        row = {"id": uuid.uuid4().hex, "tenant_id": tenant_id, "username": username,
               "password_hash": self._hasher.hash(password), "role": role.value, "agent_id": agent_id,
               "disabled": False, "created_at": time.time()}
        try:
            with self._lock, self.engine.begin() as conn:
                conn.execute(users_table.insert().values(**row))
        except sa.exc.IntegrityError as exc:
            raise IdentityError(f"user {username!r} exists") from exc
        return _user(row)

    def get_user(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users_table).where(users_table.c.username == username)).mappings().first()
        return _user(row) if row else None

    def list_users(self, tenant_id: str | None = None) -> list[User]:
        q = sa.select(users_table).order_by(users_table.c.tenant_id, users_table.c.username)
        if tenant_id is not None:
            q = q.where(users_table.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(q).mappings()]

    def count_users(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(users_table)).scalar_one())

    def set_disabled(self, username: str, disabled: bool = True) -> User:
        with self._lock, self.engine.begin() as conn:
            res = conn.execute(users_table.update().where(users_table.c.username == username)
                               .values(disabled=disabled))
            if not res.rowcount:
                raise IdentityError(f"no user {username!r}")
            if disabled:  # a disabled user is signed out everywhere at once
                uid = conn.execute(sa.select(users_table.c.id).where(users_table.c.username == username)).scalar()
                conn.execute(web_sessions_table.delete().where(web_sessions_table.c.user_id == uid))
        user = self.get_user(username)
        assert user is not None
        return user

    def set_role(self, username: str, role: Role | str) -> User:
        role = Role(role)
        with self._lock, self.engine.begin() as conn:
            res = conn.execute(users_table.update().where(users_table.c.username == username)
                               .values(role=role.value))
            if not res.rowcount:
                raise IdentityError(f"no user {username!r}")
        user = self.get_user(username)
        assert user is not None
        return user

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password is right and the account enabled; None otherwise (same cost either way)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users_table).where(users_table.c.username == username)).mappings().first()
        stored = row["password_hash"] if row else self._dummy_hash
        try:
            ok = self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None or row["disabled"]:
            return None
        if self._hasher.check_needs_rehash(stored):  # parameters were raised since this hash was made
            with self._lock, self.engine.begin() as conn:
                conn.execute(users_table.update().where(users_table.c.id == row["id"])
                             .values(password_hash=self._hasher.hash(password)))
        return _user(row)

    # -- console sign-in sessions ----------------------------------------------------------------------------
    def open_web_session(self, user: User, ttl_s: float) -> tuple[str, WebSession]:
        """A new sign-in: returns (cookie token, session). Only the token's digest is stored."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock, self.engine.begin() as conn:
            conn.execute(web_sessions_table.delete().where(web_sessions_table.c.expires_at < now))
            conn.execute(web_sessions_table.insert().values(token_sha256=_sha256(token), user_id=user.id,
                                                            csrf_token=csrf, created_at=now, expires_at=now + ttl_s))
        return token, WebSession(user, csrf, now + ttl_s)

    def web_session(self, token: str) -> WebSession | None:
        """The live sign-in for a cookie token: None when unknown, expired or the user was disabled."""
        j = web_sessions_table.join(users_table, web_sessions_table.c.user_id == users_table.c.id)
        q = sa.select(web_sessions_table.c.csrf_token, web_sessions_table.c.expires_at, users_table).select_from(j) \
            .where(web_sessions_table.c.token_sha256 == _sha256(token))
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        if row is None or row["expires_at"] < time.time() or row["disabled"]:
            return None
        return WebSession(_user(row), row["csrf_token"], row["expires_at"])

    def close_web_session(self, token: str) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(web_sessions_table.delete().where(web_sessions_table.c.token_sha256 == _sha256(token)))

    # -- API keys ------------------------------------------------------------------------------------------
    def create_key(self, tenant_id: str, name: str, scopes: list[str] | tuple[str, ...]) -> tuple[str, ApiKey]:
        """A new key: returns (the full key, shown once, and its record)."""
        scopes = tuple(dict.fromkeys(scopes))
        if not scopes:
            raise IdentityError("a key needs at least one scope")
        try:
            perms_for_scopes(scopes)
        except ValueError as exc:
            raise IdentityError(str(exc)) from exc
        self.ensure_tenant(tenant_id)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = {"id": key_id, "tenant_id": tenant_id, "name": name.strip()[:200] or key_id,
               "secret_sha256": _sha256(secret), "scopes": list(scopes), "created_at": time.time(),
               "revoked_at": None, "last_used_at": None}
        with self._lock, self.engine.begin() as conn:
            conn.execute(api_keys_table.insert().values(**row))
        return f"{KEY_PREFIX}{key_id}_{secret}", _key(row)

    def verify_key(self, presented: str) -> ApiKey | None:
        """The key record for a presented `hk_<id>_<secret>` string, if it is valid and not revoked."""
        if not presented.startswith(KEY_PREFIX):
            return None
        key_id, _, secret = presented[len(KEY_PREFIX):].partition("_")
        if not key_id or not secret:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys_table).where(api_keys_table.c.id == key_id)).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(row["secret_sha256"], _sha256(secret)):
            return None
        return _key(row)

    def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        q = sa.select(api_keys_table).order_by(api_keys_table.c.created_at)
        if tenant_id is not None:
            q = q.where(api_keys_table.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(q).mappings()]

    def revoke_key(self, key_id: str, tenant_id: str | None = None) -> ApiKey:
        """Revoke a key (of `tenant_id` when given, so one tenant cannot revoke another's)."""
        cond = api_keys_table.c.id == key_id
        if tenant_id is not None:
            cond = sa.and_(cond, api_keys_table.c.tenant_id == tenant_id)
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(sa.select(api_keys_table).where(cond)).mappings().first()
            if row is None:
                raise IdentityError(f"no key {key_id!r}")
            if row["revoked_at"] is None:
                conn.execute(api_keys_table.update().where(cond).values(revoked_at=time.time()))
            row = conn.execute(sa.select(api_keys_table).where(cond)).mappings().first()
        return _key(row)
