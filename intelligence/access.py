"""Who may do what: roles, API-key scopes and the permissions they grant, and the principal of a request.

Pure logic, no I/O: the API resolves a `Principal` from a cookie or an API key and asks `can()`. A tenant's
principal never sees another tenant's data; an `agent` sees only calls tagged with their own agent id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    AGENT = "agent"


class Perm(StrEnum):
    SESSIONS_READ = "sessions.read"  # history, transcripts, exports, audio, reports, search
    LIVE_WATCH = "live.watch"  # the live wall and live subscriptions
    INGEST = "ingest"  # stream audio in (WebSocket, taps, WebRTC)
    TICKETS_READ = "tickets.read"
    TICKETS_WRITE = "tickets.write"  # create, assign, comment, close, reopen
    AUDIT_READ = "audit.read"
    POLICIES_READ = "policies.read"
    USERS_ADMIN = "users.admin"
    KEYS_ADMIN = "keys.admin"


ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.SUPERVISOR: frozenset({Perm.SESSIONS_READ, Perm.LIVE_WATCH, Perm.INGEST, Perm.TICKETS_READ,
                                Perm.TICKETS_WRITE, Perm.POLICIES_READ}),
    Role.AUDITOR: frozenset({Perm.SESSIONS_READ, Perm.TICKETS_READ, Perm.AUDIT_READ, Perm.POLICIES_READ}),
    # agents review their own calls (filtered by agent id) and may stream their own audio from the browser
    Role.AGENT: frozenset({Perm.SESSIONS_READ, Perm.INGEST, Perm.POLICIES_READ}),
}

# Machine keys carry scopes, not roles: a tap gets `ingest` only, a CRM integration `read` + `tickets`.
SCOPE_PERMS: dict[str, frozenset[Perm]] = {
    "ingest": frozenset({Perm.INGEST}),
    "read": frozenset({Perm.SESSIONS_READ, Perm.LIVE_WATCH, Perm.TICKETS_READ, Perm.POLICIES_READ}),
    "tickets": frozenset({Perm.TICKETS_READ, Perm.TICKETS_WRITE}),
    "audit": frozenset({Perm.AUDIT_READ}),
    "admin": frozenset(Perm),
}
SCOPES = tuple(SCOPE_PERMS)
DEFAULT_TENANT = "default"


def perms_for_scopes(scopes: tuple[str, ...] | list[str]) -> frozenset[Perm]:
    """The union of what the scopes grant; unknown scopes raise (a typo must not silently grant nothing)."""
    out: set[Perm] = set()
    for s in scopes:
        if s not in SCOPE_PERMS:
            raise ValueError(f"unknown scope {s!r}; expected some of {', '.join(SCOPES)}")
        out |= SCOPE_PERMS[s]
    return frozenset(out)


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a signed-in user (`kind="user"`), an API key (`"key"`) or, with
    authentication switched off, the local operator (`"local"`)."""

    kind: str
    tenant_id: str
    name: str  # username, key id or "local": what the audit log records as the actor
    perms: frozenset[Perm] = field(default_factory=frozenset)
    role: Role | None = None
    agent_id: str | None = None  # agents see only sessions whose metadata names this agent
    csrf_token: str | None = None  # cookie sessions: mutating requests must echo it

    def can(self, perm: Perm) -> bool:
        return perm in self.perms

    @property
    def own_calls_only(self) -> bool:
        return self.role is Role.AGENT

    def sees_session(self, tenant_id: str, metadata: dict | None) -> bool:
        """Whether a session of `tenant_id` with `metadata` is visible to this principal."""
        if tenant_id != self.tenant_id:
            return False
        if self.own_calls_only:
            return bool(self.agent_id) and str((metadata or {}).get("agent", "")) == self.agent_id
        return True


def user_principal(tenant_id: str, username: str, role: Role, agent_id: str | None = None,
                   csrf_token: str | None = None) -> Principal:
    return Principal("user", tenant_id, username, ROLE_PERMS[role], role, agent_id, csrf_token)


def key_principal(tenant_id: str, key_id: str, scopes: tuple[str, ...] | list[str]) -> Principal:
    return Principal("key", tenant_id, f"key:{key_id}", perms_for_scopes(scopes))


def local_principal() -> Principal:
    """Authentication off (a single-user local install): the operator may do everything in the default tenant."""
    return Principal("local", DEFAULT_TENANT, "local", frozenset(Perm), Role.ADMIN)
