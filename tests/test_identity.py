"""Users, keys, sign-in sessions, roles and sign-in throttling: the pieces under the console's access control."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import sqlalchemy as sa

from api.cli import main as harken
from api.cli_identity import ensure_first_admin
from api.ratelimit import LoginLimiter
from intelligence.access import ROLE_PERMS, Perm, Role, key_principal, perms_for_scopes, user_principal
from intelligence.audit_chain import AuditChain, MemoryAuditStorage
from pipelines.identity_store import IdentityError, IdentityStore, users_table
from pipelines.store import Store


@pytest.fixture()
def identity() -> IdentityStore:
    return IdentityStore(sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool,
                                          connect_args={"check_same_thread": False}))


def test_passwords_are_argon2_hashed_and_checked(identity: IdentityStore) -> None:
    user = identity.add_user("ana", "correct horse battery", "supervisor", "acme")
    with identity.engine.connect() as conn:
        stored = conn.execute(sa.select(users_table.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert identity.authenticate("ana", "correct horse battery") == user
    assert identity.authenticate("ana", "wrong password!") is None
    assert identity.authenticate("nobody", "correct horse battery") is None
    identity.set_disabled("ana")
    assert identity.authenticate("ana", "correct horse battery") is None


def test_user_rules(identity: IdentityStore) -> None:
    with pytest.raises(IdentityError, match="at least"):
        identity.add_user("bo", "short", "auditor")
    with pytest.raises(IdentityError, match="unknown role"):
        identity.add_user("bo", "long enough pw", "root")
    identity.add_user("bo", "long enough pw", "agent", "acme")
    assert identity.get_user("bo").agent_id == "bo"  # an agent's calls are tagged with their id
    with pytest.raises(IdentityError, match="exists"):
        identity.add_user("bo", "long enough pw", "auditor", "globex")  # usernames are global: sign-in has no tenant
    with pytest.raises(IdentityError):
        identity.ensure_tenant("../etc")
    assert identity.set_role("bo", "auditor").role is Role.AUDITOR


def test_web_sessions_expire_and_end_when_disabled(identity: IdentityStore) -> None:
    user = identity.add_user("cy", "long enough pw", "auditor")
    token, ws = identity.open_web_session(user, ttl_s=60)
    assert identity.web_session(token).user.username == "cy" and ws.csrf_token
    assert identity.web_session(token + "x") is None
    short, _ = identity.open_web_session(user, ttl_s=-1)
    assert identity.web_session(short) is None  # expired
    identity.close_web_session(token)
    assert identity.web_session(token) is None
    token, _ = identity.open_web_session(user, ttl_s=60)
    identity.set_disabled("cy")
    assert identity.web_session(token) is None


def test_api_keys(identity: IdentityStore) -> None:
    full, rec = identity.create_key("acme", "sip trunk", ["ingest"])
    assert full.startswith("hk_") and rec.scopes == ("ingest",)
    assert identity.verify_key(full).id == rec.id
    assert identity.verify_key(full[:-2] + "zz") is None and identity.verify_key("hk_") is None
    assert identity.verify_key("not-a-key") is None
    with pytest.raises(IdentityError, match="unknown scope"):
        identity.create_key("acme", "x", ["everything"])
    with pytest.raises(IdentityError):
        identity.revoke_key(rec.id, tenant_id="globex")  # another tenant cannot revoke it
    assert identity.revoke_key(rec.id, tenant_id="acme").revoked_at is not None
    assert identity.verify_key(full) is None
    assert all("secret" not in json.dumps(k.to_dict()) for k in identity.list_keys())


def test_roles_and_scopes() -> None:
    assert Perm.USERS_ADMIN in ROLE_PERMS[Role.ADMIN]
    auditor = user_principal("acme", "au", Role.AUDITOR)
    assert auditor.can(Perm.AUDIT_READ) and not auditor.can(Perm.TICKETS_WRITE) and not auditor.can(Perm.INGEST)
    sup = user_principal("acme", "su", Role.SUPERVISOR)
    assert sup.can(Perm.TICKETS_WRITE) and not sup.can(Perm.AUDIT_READ) and not sup.can(Perm.USERS_ADMIN)
    agent = user_principal("acme", "ag", Role.AGENT, agent_id="ag")
    assert agent.sees_session("acme", {"agent": "ag"}) and not agent.sees_session("acme", {"agent": "other"})
    assert not agent.sees_session("globex", {"agent": "ag"}) and not sup.sees_session("globex", {})
    tap = key_principal("acme", "k1", ["ingest"])
    assert tap.can(Perm.INGEST) and not tap.can(Perm.SESSIONS_READ)
    assert perms_for_scopes(["admin"]) == frozenset(Perm)


def test_login_limiter_window() -> None:
    now = [0.0]
    lim = LoginLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert lim.retry_after_s("1.2.3.4", "ana") == 0
        lim.failed("1.2.3.4", "ana")
    assert lim.retry_after_s("1.2.3.4", "ana") > 0
    assert lim.retry_after_s("1.2.3.4", "bo") == 0  # another username from that address still may try
    assert lim.retry_after_s("5.6.7.8", "ana") == 0
    now[0] = 61.0
    assert lim.retry_after_s("1.2.3.4", "ana") == 0
    for name in "abcdefghijklm":  # password spraying: many usernames from one address
        lim.failed("9.9.9.9", name)
    assert lim.retry_after_s("9.9.9.9", "zed") > 0


def test_first_admin_once(identity: IdentityStore) -> None:
    audit = AuditChain(MemoryAuditStorage())
    shown = ensure_first_admin(identity, audit, None)
    assert shown and identity.authenticate("admin", shown).role is Role.ADMIN
    assert ensure_first_admin(identity, audit, None) is None  # never a second one
    other = IdentityStore(sa.create_engine("sqlite://"))
    assert ensure_first_admin(other, audit, "chosen-password") is None  # given by the operator: not printed
    assert other.authenticate("admin", "chosen-password") is not None
    assert all("chosen-password" not in json.dumps(r.payload) for r in audit.storage.iter_records())


def test_cli_users_and_keys(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HARKEN_DATA_DIR", str(tmp_path))
    assert harken(["users", "add", "lee", "--role", "supervisor", "--tenant", "acme"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["role"] == "supervisor" and "password (shown once): " in err
    password = err.split("password (shown once): ")[1].split()[0]
    assert harken(["users", "add", "lee", "--role", "auditor"]) == 2  # duplicate: a clear error
    assert "exists" in capsys.readouterr().err
    assert harken(["keys", "create", "--tenant", "acme", "--name", "pbx", "--scopes", "ingest,read"]) == 0
    key = json.loads(capsys.readouterr().out)
    assert harken(["users", "list", "--tenant", "acme"]) == 0
    assert [json.loads(line)["username"] for line in capsys.readouterr().out.splitlines()] == ["lee"]
    assert harken(["keys", "revoke", key["id"]]) == 0 and json.loads(capsys.readouterr().out)["revoked"]
    assert harken(["users", "disable", "lee"]) == 0
    capsys.readouterr()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'harken.db'}")
    store = IdentityStore(engine)
    assert store.authenticate("lee", password) is None  # disabled
    assert store.verify_key(key["key"]) is None  # revoked
    from intelligence.audit_chain import AuditChain as Chain
    from pipelines.audit_store import SqlAuditStorage

    chain = Chain(SqlAuditStorage(engine))
    actions = [r.action for r in chain.storage.iter_records()]
    assert actions == ["user.added", "key.created", "key.revoked", "user.disabled"] and chain.verify().ok
    assert harken(["keys", "create", "--scopes", "root"]) == 2


def test_old_database_gains_tenant_columns(tmp_path) -> None:
    """A database written before tenants existed opens, and its sessions belong to the default tenant."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE sessions (id VARCHAR(64) PRIMARY KEY, source VARCHAR(64) NOT NULL, language "
                 "VARCHAR(16) NOT NULL, channel_names JSON NOT NULL, metadata JSON NOT NULL, status VARCHAR(16) NOT "
                 "NULL, end_reason VARCHAR(64), created_at FLOAT NOT NULL, ended_at FLOAT, audio_s FLOAT NOT NULL, "
                 "stats JSON)")
    conn.execute("INSERT INTO sessions VALUES ('old1', 'websocket', 'en', '[\"a\"]', '{}', 'ended', NULL, ?, NULL, "
                 "1.0, NULL)", (time.time(),))
    conn.commit()
    conn.close()
    store = Store(f"sqlite:///{path}")
    assert store.get_session("old1").tenant_id == "default"
    store.create_session("new1", "websocket", "en", ["a"], {"agent": "a7"}, tenant_id="acme")
    assert [r.id for r in store.list_sessions(tenant_id="acme")] == ["new1"]
    assert store.get_session("new1").agent == "a7"
    store.close()


def test_serve_prints_the_first_admin_password_once(tmp_path) -> None:
    """`make run` runs `harken serve`: the first start creates `admin` and prints its password; sign-in works."""
    import os
    import subprocess
    import sys

    import httpx

    from tests.server_util import free_port

    env = {**os.environ, "HARKEN_CLASSIFIERS": "0", "HARKEN_COMPLIANCE": "0", "HARKEN_ASR_WARM_UP": "0",
           "HARKEN_MINUTES": "0", "HF_HUB_OFFLINE": "1"}
    env.pop("HARKEN_ADMIN_PASSWORD", None)

    def start() -> tuple[subprocess.Popen, str, int]:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--data-dir",
                                 str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Application startup complete" in line or not line:
                break
        return proc, "".join(lines), port

    proc, out, port = start()
    try:
        assert "first admin created" in out, out
        password = out.split("password: ")[1].split()[0]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/v1/sessions").status_code == 401
            me = http.post("/v1/auth/login", json={"username": "admin", "password": password})
            assert me.status_code == 200 and me.json()["role"] == "admin"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    proc, out, _ = start()
    proc.terminate()
    proc.wait(timeout=30)
    assert "first admin created" not in out and password not in out
