"""Access control over the whole API surface: every route refuses the callers it must refuse, with the right code.

One app (auth on, compliance packs loaded, audio kept, no classifiers, no minutes, no ASR warm-up) serves the
whole module. Its data is seeded directly through `app.state.harken`:

  * tenant **acme**: a user of every role (admin, supervisor, auditor, agent `agent7`), one API key per scope,
    an ended call of agent7 with a transcript final, a finding and a scorecard plus a recording (a tiny FLAC),
    an ended call of another agent (`agent9`), a live call, a ticket, a "victim" user and a "victim" key that
    the /v1/users/{username}/... and /v1/keys/{key_id} routes address;
  * tenant **globex**: an admin, a supervisor, an admin key, a read key, an ended call, a live call, a ticket.

The route table `ROUTES` says, for every (method, path) of the OpenAPI schema, which permission it needs
(intelligence/access.py), whether it addresses one of acme's objects by id, lists a tenant's objects, or acts only
in the caller's own tenant, and how to build a valid request. `test_every_schema_route_is_covered` fails as soon
as a route appears that neither `ROUTES` nor `PUBLIC` describes, so a new route cannot skip these checks. For each
route:

  * anonymous -> 401 (`PUBLIC` routes excepted, each with its reason);
  * acme roles and single-scope acme keys lacking the permission (per ROLE_PERMS / SCOPE_PERMS) -> 403, and the
    refused request changes nothing;
  * acme roles and keys holding it -> 2xx (or the documented non-error status of the route);
  * globex callers -> 404 for routes addressing an acme object (indistinguishable from an unknown id), a 200 with
    none of acme's ids for list routes, and for tenant-scoped routes a success that stays inside globex.

WebSockets (absent from the OpenAPI schema), bad credentials, CSRF, throttling and the audit trail of identity
events are checked separately below. Requests carry identities explicitly (a `Cookie` header or an API key) on one
lifespan-running TestClient whose cookie jar is kept empty, so no request inherits another caller's sign-in.

Findings that exposed app bugs stay as regression tests; the test keeps asserting
the correct behaviour and turns red (XPASS) once the app is fixed, so the marker gets removed.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from api.app import create_app
from api.auth import CSRF_COOKIE, SESSION_COOKIE
from intelligence.access import ROLE_PERMS, SCOPE_PERMS, SCOPES, Perm, Role
from intelligence.audit_chain import text_digest
from intelligence.compliance import build_scorecard
from intelligence.tickets import TicketFilter
from intelligence.types import Evidence, Finding, Severity
from pipelines.config import SessionConfig
from pipelines.settings import HarkenSettings

# -- fixed data ----------------------------------------------------------------------------------------------

ACME_SID = "acme-call-7f3a"  # ended call of agent7, with a transcript, a finding, a scorecard and a recording
ACME_OTHER_AGENT_SID = "acme-call-9b21"  # ended call of agent9: agent7 must not see it
ACME_LIVE_SID = "acme-live-5c0d"
GLOBEX_SID = "globex-call-31e8"
GLOBEX_LIVE_SID = "globex-live-8a44"
ACME_PHRASE = "zanzibar"  # said only in acme's call: a search for it from another tenant must find nothing
ACME_VICTIM_USER = "acme-victim"  # the user the /v1/users/{username}/... routes address
NEVER_CREATED_USER = "acme-never-created"  # the body of refused POST /v1/users: must never exist
NEVER_USER = "mallory-not-a-user"  # the failed sign-in name: must never appear in clear in the audit log
WRONG_PASSWORD = "wrong-password-Qx81!"  # must never appear in the audit log either

PASSWORDS = {  # distinct per user, so the audit check can look for each in every record
    "acme-admin": "acme admin passphrase 1",
    "acme-supervisor": "acme supervisor passphrase 2",
    "acme-auditor": "acme auditor passphrase 3",
    "acme-agent": "acme agent passphrase 4",
    ACME_VICTIM_USER: "acme victim passphrase 5",
    "globex-admin": "globex admin passphrase 6",
    "globex-supervisor": "globex supervisor passphrase 7",
}
FRESH_PASSWORD = "fresh user passphrase 8"
ACME_USERS = {"acme-admin": Role.ADMIN, "acme-supervisor": Role.SUPERVISOR, "acme-auditor": Role.AUDITOR,
              "acme-agent": Role.AGENT}

# Routes in the schema that anyone may call, and why. Everything else must answer an anonymous caller with 401.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "load-balancer probe: readiness and aggregate counts only, no tenant data",
    ("GET", "/metrics"): "Prometheus scrape: aggregate counters and gauges only, no ids, no tenant data",
    ("POST", "/v1/auth/login"): "how a user obtains credentials (throttled; failures audited without the name)",
}
# HTTP routes outside the schema (include_in_schema=False, FastAPI's docs): static pages, public by design. The page
# itself holds no data; the console fetches everything through the authenticated API.
PUBLIC_PAGES: dict[str, str] = {
    "/": "console shell (static HTML, signs in through /v1/auth/login)",
    "/static/console/{name}": "console JS/CSS assets",
    "/about": "service page: counts only (tested in test_landing.py)",
    "/webrtc": "WebRTC capture page (static HTML; the offer it posts needs `ingest`)",
    "/openapi.json": "API description", "/docs": "Swagger UI", "/docs/oauth2-redirect": "Swagger UI helper",
    "/redoc": "ReDoc UI",
}
# WebSocket routes (never in the OpenAPI schema), each checked in the WebSocket section below.
WEBSOCKETS = {"/v1/stream", "/v1/sessions/{session_id}/subscribe", "/v1/taps/twilio", "/v1/taps/freeswitch",
              "/v1/taps/audiohook"}


# -- callers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who sends a request: the headers that carry its credentials, and what it may do."""

    name: str
    tenant: str | None
    headers: dict[str, str]
    perms: frozenset[Perm]
    username: str | None = None  # signed-in users: to sign in again for a request that ends the sign-in
    kind: str = "user"  # "user" (cookie + CSRF token), "key" (Authorization: Bearer) or "anonymous"


ANONYMOUS = Caller("anonymous", None, {}, frozenset(), kind="anonymous")


def _cookie_headers(token: str, csrf: str) -> dict[str, str]:
    # The CSRF token goes on every request, as the console sends it; a GET ignores it.
    return {"Cookie": f"{SESSION_COOKIE}={token}; {CSRF_COOKIE}={csrf}", "X-CSRF-Token": csrf}


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None  # replaces the caller's credentials (a fresh sign-in)


@dataclass
class World:
    """The running app, its seeded data and the callers; helpers create throw-away objects for allowed calls."""

    client: TestClient
    state: Any
    data_dir: Path
    ticket_id: str
    globex_ticket_id: str
    victim_key_id: str
    callers: dict[str, Caller]
    full_keys: list[str] = field(default_factory=list)  # every full key created: none may reach the audit log
    fresh_passwords: list[str] = field(default_factory=list)

    @property
    def ids(self) -> dict[str, str]:
        """Path parameters addressing acme's objects."""
        return {"session_id": ACME_SID, "ticket_id": self.ticket_id, "username": ACME_VICTIM_USER,
                "key_id": self.victim_key_id}

    def call(self, caller: Caller, req: Req) -> Any:
        headers = dict(req.headers if req.headers is not None else caller.headers)
        self.client.cookies.clear()  # belt and braces: only the explicit headers carry an identity
        r = self.client.request(req.method, req.path, params=req.params, json=req.json, headers=headers)
        assert r.status_code < 500, f"{caller.name} {req.method} {req.path}: {r.status_code} {r.text[:300]}"
        return r

    def login(self, username: str, password: str | None = None) -> dict[str, str]:
        r = self.client.post("/v1/auth/login", json={"username": username,
                                                     "password": password or PASSWORDS[username]})
        assert r.status_code == 200, r.text
        token = r.cookies[SESSION_COOKIE]
        self.client.cookies.clear()  # the jar would otherwise send this sign-in with every later request
        csrf = r.json()["csrf_token"]
        assert csrf == r.cookies[CSRF_COOKIE]
        return _cookie_headers(token, csrf)

    def fresh_user(self, tenant: str = "acme", role: Role = Role.AGENT) -> str:
        name = f"{tenant}-fresh-{uuid.uuid4().hex[:8]}"
        self.state.identity.add_user(name, FRESH_PASSWORD, role, tenant)
        return name

    def fresh_key(self, tenant: str = "acme", scopes: tuple[str, ...] = ("read",)) -> str:
        full, rec = self.state.identity.create_key(tenant, "fresh", list(scopes))
        self.full_keys.append(full)
        return rec.id

    def fresh_ticket(self, closed: bool = False) -> str:
        t = self.state.tickets.create(session_id=ACME_SID, rule_id="pci_pan_spoken", severity=Severity.HIGH,
                                      title="fresh", actor="test", tenant_id="acme", agent="agent7")
        if closed:
            self.state.tickets.close(t.id, "done", actor="test")
        return t.id

    def tenant_ids(self, tenant: str) -> set[str]:
        """Every id of a tenant's objects, read from the stores now (objects created by earlier tests included)."""
        st = self.state
        ids = {r.id for r in st.store.list_sessions(10_000, 0, None, tenant)}
        ids |= {t.id for t in st.tickets.list(TicketFilter(limit=10_000, tenant_id=tenant))}
        ids |= {u.username for u in st.identity.list_users(tenant)}
        ids |= {k.id for k in st.identity.list_keys(tenant)}
        return ids | ({ACME_PHRASE} if tenant == "acme" else set())

    def snapshot(self) -> Any:
        """What a refused request must leave untouched: users, keys, acme's tickets and its victim ticket."""
        st = self.state
        return (
            [u.to_dict() for u in st.identity.list_users()],
            [k.to_dict() for k in st.identity.list_keys()],
            [t.to_dict() for t in st.tickets.list(TicketFilter(limit=10_000, tenant_id="acme"))],
            st.tickets.get(self.ticket_id).to_dict(),
        )


def _events(sid: str, text: str, packs: list) -> list[tuple[str, int, dict]]:
    """A stored call: one transcript final per channel, a PCI finding (card number in the evidence), a scorecard."""
    finding = Finding(sid, "pci_pan_spoken", "pci_dss", "2026.11.1", Severity.HIGH, "present", "card number spoken",
                      (Evidence("c1-00000", 1, 2.5, 4.0, "my card is 4111 1111 1111 1111"),), 3.0)
    card = build_scorecard(packs, [finding], session_id=sid, language="en")
    finals = [{"type": "transcript", "kind": "final", "session_id": sid, "segment_id": f"c{ch}-00000",
               "channel": ch, "speaker": name, "start_s": 0.5 + 2 * ch, "end_s": 2.0 + 2 * ch, "text": t,
               "words": [], "language": "en"}
              for ch, (name, t) in enumerate((("agent", text), ("customer", "my card is 4111 1111 1111 1111")))]
    return [(sid, i, ev) for i, ev in enumerate([*finals, finding.to_dict(), card.to_dict()])]


def _stored_call(state: Any, sid: str, tenant: str, agent: str, text: str) -> None:
    state.store.create_session(sid, "websocket", "en", ["agent", "customer"], {"agent": agent}, tenant_id=tenant)
    state.store.add_events(_events(sid, text, state.extras["enrichment"].packs()))
    state.store.update_session(sid, status="ended", end_reason="client_stop", audio_s=6.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("harken-access")
    settings = HarkenSettings(data_dir=data_dir, asr_warm_up=False, classifiers=False, compliance=True,
                              store_audio=True, minutes=False)
    assert settings.auth and settings.api_key is None and settings.login_max_failures == 5
    app = create_app(settings)
    with TestClient(app) as client:
        st = app.state.harken
        for username, role in ACME_USERS.items():
            st.identity.add_user(username, PASSWORDS[username], role, "acme",
                                 "agent7" if role is Role.AGENT else None)
        st.identity.add_user(ACME_VICTIM_USER, PASSWORDS[ACME_VICTIM_USER], Role.SUPERVISOR, "acme")
        st.identity.add_user("globex-admin", PASSWORDS["globex-admin"], Role.ADMIN, "globex")
        st.identity.add_user("globex-supervisor", PASSWORDS["globex-supervisor"], Role.SUPERVISOR, "globex")

        _stored_call(st, ACME_SID, "acme", "agent7", f"Thank you for calling, this is about {ACME_PHRASE}.")
        _stored_call(st, ACME_OTHER_AGENT_SID, "acme", "agent9", "Good morning, how can I help?")
        _stored_call(st, GLOBEX_SID, "globex", "g1", "Welcome to globex support.")
        for sid in (ACME_SID, ACME_OTHER_AGENT_SID):  # recordings, so the audio route answers 200, not no_audio
            audio_dir = data_dir / "audio" / sid
            audio_dir.mkdir(parents=True)
            sf.write(str(audio_dir / f"{sid}.flac"), np.zeros(8000, dtype=np.int16), 8000, format="FLAC")

        ticket = st.tickets.create(session_id=ACME_SID, rule_id="pci_pan_spoken", severity=Severity.HIGH,
                                   title="Card number spoken", actor="t", tenant_id="acme", agent="agent7")
        gticket = st.tickets.create(session_id=GLOBEX_SID, rule_id="pci_pan_spoken", severity=Severity.HIGH,
                                    title="Card number spoken", actor="t", tenant_id="globex", agent="g1")

        # Live calls (loads the ASR model once, no audio is pushed): the live wall must show each tenant only its own.
        live = [client.portal.call(st.manager.open_session,
                                   SessionConfig(language="en", channel_names=("agent", "customer"), session_id=sid,
                                                 metadata={"agent": agent}, tenant_id=tenant))
                for sid, tenant, agent in ((ACME_LIVE_SID, "acme", "agent7"), (GLOBEX_LIVE_SID, "globex", "g1"))]

        full_keys: list[str] = []
        callers: dict[str, Caller] = {"anonymous": ANONYMOUS}

        def key_caller(name: str, tenant: str, scopes: list[str]) -> Caller:
            full, _ = st.identity.create_key(tenant, name, scopes)
            full_keys.append(full)
            return Caller(name, tenant, {"Authorization": f"Bearer {full}"}, frozenset().union(
                *(SCOPE_PERMS[s] for s in scopes)), kind="key")

        for scope in SCOPES:
            callers[f"acme/key:{scope}"] = key_caller(f"acme/key:{scope}", "acme", [scope])
        callers["globex/key:admin"] = key_caller("globex/key:admin", "globex", ["admin"])
        callers["globex/key:read"] = key_caller("globex/key:read", "globex", ["read"])
        _, victim_key = st.identity.create_key("acme", "victim", ["read"])

        w = World(client, st, data_dir, ticket.id, gticket.id, victim_key.id, callers, full_keys)
        for username in (*ACME_USERS, "globex-admin", "globex-supervisor"):
            role = ACME_USERS.get(username) or (Role.ADMIN if username == "globex-admin" else Role.SUPERVISOR)
            tenant = username.split("-")[0]
            callers[f"{tenant}/{role.value}"] = Caller(f"{tenant}/{role.value}", tenant, w.login(username),
                                                       ROLE_PERMS[role], username=username)
        try:
            yield w
        finally:
            for session in live:
                client.portal.call(session.close, "test_done")


ACME_ROLES = [f"acme/{r.value}" for r in Role]
ACME_KEYS = [f"acme/key:{s}" for s in SCOPES]
GLOBEX_CALLERS = ["globex/admin", "globex/supervisor", "globex/key:admin"]


# -- the route table -----------------------------------------------------------------------------------------

Builder = Callable[[World, Caller, bool], Req]


@dataclass(frozen=True)
class Route:
    """What a route needs and how to call it.

    `perm`: the permission `require(...)` checks (None: any authenticated caller). `kind`: "object" (addresses one
    of acme's objects by id: another tenant gets 404), "list" (a tenant's objects: another tenant sees only its
    own) or "tenant" (acts in the caller's own tenant only). `build(world, caller, fresh)`: the request; `fresh` is
    True when the caller is expected to succeed, so a state-changing route gets a throw-away object (a new ticket to
    close, a new key to revoke) and the shared acme objects stay as they are. `ok`: the success status(es).
    `acme_marker`: an id an acme caller allowed to list must see (the list is not vacuously empty);
    `globex_marker`: the same for globex's admin.
    """

    perm: Perm | None
    kind: str
    build: Builder
    ok: frozenset[int] = frozenset({200})
    acme_marker: Callable[[World], str] | None = None
    globex_marker: Callable[[World], str] | None = None
    note: str = ""


def fixed(method: str, path: str, params: dict | None = None, body: Any = None) -> Builder:
    """The same request whoever calls: path parameters are acme's objects."""
    return lambda w, caller, fresh: Req(method, path.format(**w.ids), params, body)


def fresh_object(method: str, path: str, param: str, make: Callable[[World], str], body: Any = None) -> Builder:
    """Acme's shared object for refused callers, a new one for callers expected to succeed."""
    def build(w: World, caller: Caller, fresh: bool) -> Req:
        ids = {**w.ids, param: make(w)} if fresh else w.ids
        return Req(method, path.format(**ids), None, body)
    return build


def logout(w: World, caller: Caller, fresh: bool) -> Req:
    # a successful logout ends the caller's sign-in: sign in again just for it, keeping the shared one usable
    headers = w.login(caller.username) if fresh and caller.username else None
    return Req("POST", "/v1/auth/logout", headers=headers)


def add_user(w: World, caller: Caller, fresh: bool) -> Req:
    name = f"new-{uuid.uuid4().hex[:8]}" if fresh else NEVER_CREATED_USER
    return Req("POST", "/v1/users", json={"username": name, "role": "agent", "password": FRESH_PASSWORD})


SID = "/v1/sessions/{session_id}"
TID = "/v1/tickets/{ticket_id}"
TICKET_BODY = {"session_id": ACME_SID, "rule_id": "pci_pan_spoken", "severity": "high", "title": "from the API"}

ROUTES: dict[tuple[str, str], Route] = {
    # console reads
    ("GET", "/v1/live"): Route(Perm.LIVE_WATCH, "list", fixed("GET", "/v1/live"),
                               acme_marker=lambda w: ACME_LIVE_SID, globex_marker=lambda w: GLOBEX_LIVE_SID),
    ("GET", "/v1/search"): Route(Perm.SESSIONS_READ, "list", fixed("GET", "/v1/search", {"q": ACME_PHRASE}),
                                 acme_marker=lambda w: ACME_SID),
    ("GET", "/v1/policies"): Route(Perm.POLICIES_READ, "tenant", fixed("GET", "/v1/policies")),
    # sessions
    ("GET", "/v1/sessions"): Route(Perm.SESSIONS_READ, "list", fixed("GET", "/v1/sessions"),
                                   acme_marker=lambda w: ACME_SID, globex_marker=lambda w: GLOBEX_SID),
    ("GET", SID): Route(Perm.SESSIONS_READ, "object", fixed("GET", SID)),
    ("GET", SID + "/events"): Route(Perm.SESSIONS_READ, "object", fixed("GET", SID + "/events", {"after_seq": -1})),
    ("GET", SID + "/forms"): Route(Perm.SESSIONS_READ, "object", fixed("GET", SID + "/forms")),
    ("GET", SID + "/transcript"): Route(Perm.SESSIONS_READ, "object",
                                        fixed("GET", SID + "/transcript", {"format": "vtt"})),
    ("GET", SID + "/minutes"): Route(Perm.SESSIONS_READ, "object", fixed("GET", SID + "/minutes")),
    ("GET", SID + "/stream"): Route(Perm.SESSIONS_READ, "object", fixed("GET", SID + "/stream"),
                                    note="an ended call: the stored events, then the stream ends"),
    ("GET", SID + "/audio"): Route(Perm.SESSIONS_READ, "object",
                                   fixed("GET", SID + "/audio", {"start_s": 0, "end_s": 0.5}),
                                   note="a FLAC is written for the call, so the recording is returned (200)"),
    ("GET", SID + "/report"): Route(Perm.SESSIONS_READ, "object", fixed("GET", SID + "/report")),
    # sign-in, users, keys, audit
    ("POST", "/v1/auth/logout"): Route(None, "tenant", logout, frozenset({204})),
    ("GET", "/v1/auth/me"): Route(None, "tenant", fixed("GET", "/v1/auth/me")),
    ("GET", "/v1/users"): Route(Perm.USERS_ADMIN, "list", fixed("GET", "/v1/users"),
                                acme_marker=lambda w: "acme-admin", globex_marker=lambda w: "globex-admin"),
    ("POST", "/v1/users"): Route(Perm.USERS_ADMIN, "tenant", add_user, frozenset({201})),
    ("POST", "/v1/users/{username}/disable"): Route(
        Perm.USERS_ADMIN, "object",
        fresh_object("POST", "/v1/users/{username}/disable", "username", World.fresh_user)),
    ("POST", "/v1/users/{username}/role"): Route(
        Perm.USERS_ADMIN, "object",
        fresh_object("POST", "/v1/users/{username}/role", "username", World.fresh_user, {"role": "auditor"})),
    ("GET", "/v1/keys"): Route(Perm.KEYS_ADMIN, "list", fixed("GET", "/v1/keys"),
                               acme_marker=lambda w: w.victim_key_id),
    ("POST", "/v1/keys"): Route(Perm.KEYS_ADMIN, "tenant",
                                fixed("POST", "/v1/keys", body={"name": "crm", "scopes": ["read"]}),
                                frozenset({201})),
    ("DELETE", "/v1/keys/{key_id}"): Route(Perm.KEYS_ADMIN, "object",
                                           fresh_object("DELETE", "/v1/keys/{key_id}", "key_id", World.fresh_key),
                                           frozenset({204})),
    ("GET", "/v1/audit"): Route(Perm.AUDIT_READ, "list", fixed("GET", "/v1/audit", {"limit": 1000}),
                                acme_marker=lambda w: w.ticket_id, globex_marker=lambda w: w.globex_ticket_id),
    # ingest
    ("POST", "/v1/taps/webrtc/offer"): Route(
        Perm.INGEST, "tenant", fixed("POST", "/v1/taps/webrtc/offer", body={}), frozenset({400}),
        note="an empty offer: 400 {'error': 'bad_offer'} once authorised (a real SDP exchange is "
             "test_taps_webrtc.py's job); refusals come earlier, as 401/403"),
    # tickets
    ("GET", "/v1/tickets"): Route(Perm.TICKETS_READ, "list", fixed("GET", "/v1/tickets"),
                                  acme_marker=lambda w: w.ticket_id, globex_marker=lambda w: w.globex_ticket_id),
    ("POST", "/v1/tickets"): Route(Perm.TICKETS_WRITE, "object", fixed("POST", "/v1/tickets", body=TICKET_BODY),
                                   frozenset({201}), note="addresses acme's call through the body's session_id"),
    ("GET", TID): Route(Perm.TICKETS_READ, "object", fixed("GET", TID)),
    ("POST", TID + "/assign"): Route(Perm.TICKETS_WRITE, "object",
                                     fresh_object("POST", TID + "/assign", "ticket_id", World.fresh_ticket,
                                                  {"assignee": "acme-supervisor"})),
    ("POST", TID + "/comments"): Route(Perm.TICKETS_WRITE, "object",
                                       fresh_object("POST", TID + "/comments", "ticket_id", World.fresh_ticket,
                                                    {"text": "looked at it"})),
    ("POST", TID + "/close"): Route(Perm.TICKETS_WRITE, "object",
                                    fresh_object("POST", TID + "/close", "ticket_id", World.fresh_ticket,
                                                 {"resolution": "coached the agent"})),
    ("POST", TID + "/reopen"): Route(Perm.TICKETS_WRITE, "object",
                                     fresh_object("POST", TID + "/reopen", "ticket_id",
                                                  functools.partial(World.fresh_ticket, closed=True),
                                                  {"reason": "not fixed"})),
}
ROUTE_IDS = sorted(ROUTES)


def _label(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


def _allowed(route: Route, caller: Caller) -> bool:
    return route.perm is None or route.perm in caller.perms


def _detail_code(r: Any) -> str | None:
    try:
        detail = r.json().get("detail")
    except (ValueError, AttributeError):
        return None
    return detail.get("code") if isinstance(detail, dict) else None


# -- coverage of the route table -----------------------------------------------------------------------------


def test_every_schema_route_is_covered(world: World) -> None:
    """The table describes exactly the schema's routes: a new route fails here until it is given expectations."""
    schema = world.client.app.openapi()
    in_schema = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert in_schema == set(ROUTES) | set(PUBLIC), (
        f"not covered: {sorted(in_schema - set(ROUTES) - set(PUBLIC))}; "
        f"no longer in the schema: {sorted(set(ROUTES) | set(PUBLIC) - in_schema)}")
    assert not set(ROUTES) & set(PUBLIC)
    # every permission of the model is exercised by some route
    assert {r.perm for r in ROUTES.values()} - {None} == set(Perm)


def _leaf_routes(routes: list, prefix: str = "") -> Iterator[tuple[Any, str]]:
    """(route, full path) of every HTTP and WebSocket route. Recent FastAPI keeps an included router as one node
    (`original_router`, `include_context.prefix`); older versions had already flattened them into `app.routes`."""
    for route in routes:
        sub = getattr(route, "original_router", None)
        if sub is not None:
            yield from _leaf_routes(sub.routes, prefix + getattr(route.include_context, "prefix", ""))
        elif getattr(route, "path", None) is not None:
            yield route, prefix + route.path


def test_routes_outside_the_schema_are_known(world: World) -> None:
    """HTTP routes hidden from the schema are static pages; WebSockets are the ones tested below."""
    http, ws = set(), set()
    for route, path in _leaf_routes(world.client.app.routes):
        (http if getattr(route, "methods", None) is not None else ws).add(path)
    schema_paths = {p for _, p in ROUTES} | {p for _, p in PUBLIC}
    assert http - schema_paths == set(PUBLIC_PAGES)
    assert ws == WEBSOCKETS


# Regression (found by this file): /metrics used to label a gauge with every live session id of every tenant.
PUBLIC_GETS = ["/healthz", "/", "/about", "/webrtc", "/openapi.json", "/metrics"]


@pytest.mark.parametrize("path", PUBLIC_GETS)
def test_public_routes_reveal_no_tenant_data(world: World, path: str) -> None:
    """Public pages answer anyone, and say nothing about any tenant (acme has a live call while this runs)."""
    acme = world.tenant_ids("acme") | {ACME_LIVE_SID}
    r = world.call(ANONYMOUS, Req("GET", path))
    assert r.status_code == 200, (path, r.status_code)
    assert not {i for i in acme if i in r.text}, path


def test_sign_in_is_public(world: World) -> None:
    r = world.call(ANONYMOUS, Req("POST", "/v1/auth/login", json={"username": "acme-auditor",
                                                                  "password": PASSWORDS["acme-auditor"]}))
    assert r.status_code == 200 and r.json()["tenant"] == "acme" and r.json()["role"] == "auditor"
    assert r.json()["permissions"] == sorted(p.value for p in ROLE_PERMS[Role.AUDITOR])
    world.client.cookies.clear()


# -- the per-route checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route_id", ROUTE_IDS, ids=_label)
def test_anonymous_caller_gets_401(world: World, route_id: tuple[str, str]) -> None:
    route = ROUTES[route_id]
    before = world.snapshot()
    r = world.call(ANONYMOUS, route.build(world, ANONYMOUS, False))
    assert r.status_code == 401, r.text
    assert _detail_code(r) == "unauthorized" and r.headers.get("www-authenticate") == "Bearer"
    assert world.snapshot() == before


@pytest.mark.parametrize("route_id", [r for r in ROUTE_IDS if ROUTES[r].perm is not None], ids=_label)
def test_caller_lacking_the_permission_gets_403(world: World, route_id: tuple[str, str]) -> None:
    """Every acme role and single-scope acme key without the route's permission is refused, changing nothing."""
    route = ROUTES[route_id]
    refused = [c for c in (*ACME_ROLES, *ACME_KEYS) if not _allowed(route, world.callers[c])]
    assert refused, "the `admin`-less scopes always leave someone without the permission"
    for name in refused:
        caller = world.callers[name]
        before = world.snapshot()
        r = world.call(caller, route.build(world, caller, False))
        assert (r.status_code, _detail_code(r)) == (403, "forbidden"), (name, r.status_code, r.text[:200])
        assert world.snapshot() == before, name


@pytest.mark.parametrize("route_id", ROUTE_IDS, ids=_label)
def test_caller_holding_the_permission_succeeds(world: World, route_id: tuple[str, str]) -> None:
    """Every acme role and single-scope acme key with the permission gets the route's success status; a list
    shows them their tenant's objects."""
    route = ROUTES[route_id]
    allowed = [c for c in (*ACME_ROLES, *ACME_KEYS) if _allowed(route, world.callers[c])]
    assert allowed
    for name in allowed:
        caller = world.callers[name]
        r = world.call(caller, route.build(world, caller, True))
        assert r.status_code in route.ok, (name, r.status_code, r.text[:300])
        if route.acme_marker is not None:
            assert route.acme_marker(world) in r.text, name
        if route_id == ("POST", "/v1/taps/webrtc/offer"):
            assert r.json() == {"error": "bad_offer"}
        if route_id == ("GET", SID + "/audio"):
            assert r.headers["content-type"] == "audio/wav" and r.content[:4] == b"RIFF"


@pytest.mark.parametrize("route_id", ROUTE_IDS, ids=_label)
def test_other_tenant_cannot_reach_acme(world: World, route_id: tuple[str, str]) -> None:
    """globex's admin, supervisor and admin key: 404 on acme's objects (as for an unknown id), lists without any acme
    id, tenant-scoped actions that stay in globex; 403 where their own role lacks the permission."""
    route = ROUTES[route_id]
    acme = world.tenant_ids("acme")
    for name in GLOBEX_CALLERS:
        caller = world.callers[name]
        before = world.snapshot()
        refused = not _allowed(route, caller) or route.kind == "object"
        req = route.build(world, caller, not refused)
        r = world.call(caller, req)
        if not _allowed(route, caller):
            assert (r.status_code, _detail_code(r)) == (403, "forbidden"), (name, r.text[:200])
        elif route.kind == "object":
            assert (r.status_code, _detail_code(r)) == (404, "not_found"), (name, r.status_code, r.text[:200])
        else:
            assert r.status_code in route.ok, (name, r.status_code, r.text[:300])
            if route.kind == "list" and route.globex_marker is not None:
                assert route.globex_marker(world) in r.text, name  # the list is globex's, not just empty
        # a 404 may echo the id the caller sent ("no session <id>"); any other acme id in the answer is a leak
        sent = req.path + json.dumps(req.params) + json.dumps(req.json)
        leaked = {i for i in acme if i in r.text and i not in sent}
        assert not leaked, (name, leaked)
        if refused:
            assert world.snapshot() == before, name
        if route_id in {("POST", "/v1/users"), ("POST", "/v1/keys")} and r.status_code == 201:
            assert r.json()["tenant"] == "globex"


def test_refused_calls_left_acme_objects_as_they_were(world: World) -> None:
    st = world.state
    t = st.tickets.get(world.ticket_id)
    assert t.status.value == "open" and not t.assignee and not t.comments
    victim = st.identity.get_user(ACME_VICTIM_USER)
    assert victim.role is Role.SUPERVISOR and not victim.disabled
    assert not next(k for k in st.identity.list_keys("acme") if k.id == world.victim_key_id).revoked_at
    assert st.identity.get_user(NEVER_CREATED_USER) is None


# -- filters that name another tenant's data -----------------------------------------------------------------


def test_filters_naming_acme_data_find_nothing_for_globex(world: World) -> None:
    acme = world.tenant_ids("acme")
    admin = world.callers["globex/admin"]
    for req in (Req("GET", "/v1/tickets", {"session_id": ACME_SID}), Req("GET", "/v1/tickets", {"agent": "agent7"}),
                Req("GET", "/v1/tickets", {"rule_id": "pci_pan_spoken"}),
                Req("GET", "/v1/search", {"q": ACME_PHRASE}), Req("GET", "/v1/search", {"agent": "agent7"}),
                Req("GET", "/v1/sessions", {"status": "ended", "limit": 1000}),
                Req("GET", "/v1/sessions", {"status": "live"})):
        r = world.call(admin, req)
        assert r.status_code == 200 and not {i for i in acme if i in r.text}, (req, r.text[:300])
    assert world.call(admin, Req("GET", "/v1/search", {"q": ACME_PHRASE})).json() == {"results": []}


# -- agents see their own calls only -------------------------------------------------------------------------


def test_agent_sees_only_own_calls(world: World) -> None:
    agent = world.callers["acme/agent"]
    supervisor = world.callers["acme/supervisor"]
    session_reads = [p for (m, p), r in ROUTES.items() if m == "GET" and r.kind == "object" and p.startswith(SID)]
    assert len(session_reads) == 8
    for path in session_reads:
        own = world.call(agent, Req("GET", path.format(session_id=ACME_SID)))
        assert own.status_code == 200, (path, own.text[:200])
        other = world.call(agent, Req("GET", path.format(session_id=ACME_OTHER_AGENT_SID)))
        assert (other.status_code, _detail_code(other)) == (404, "not_found"), path
        other_for_supervisor = world.call(supervisor, Req("GET", path.format(session_id=ACME_OTHER_AGENT_SID)))
        assert other_for_supervisor.status_code == 200, path
    listed = {s["id"] for s in world.call(agent, Req("GET", "/v1/sessions")).json()}
    assert ACME_SID in listed and ACME_LIVE_SID in listed and ACME_OTHER_AGENT_SID not in listed
    everyone = {s["id"] for s in world.call(supervisor, Req("GET", "/v1/sessions")).json()}
    assert {ACME_SID, ACME_OTHER_AGENT_SID} <= everyone

    def searched(params: dict[str, str]) -> set[str]:
        return {h["session"]["id"] for h in world.call(agent, Req("GET", "/v1/search", params)).json()["results"]}

    assert not searched({"agent": "agent9"})  # filtering on another agent's id does not widen an agent's view
    found = searched({})
    assert ACME_SID in found and ACME_OTHER_AGENT_SID not in found
    assert world.call(agent, Req("GET", "/v1/tickets")).status_code == 403  # agents do not review tickets
    assert world.call(agent, Req("GET", "/v1/live")).status_code == 403  # nor watch the live wall


# -- WebSockets ----------------------------------------------------------------------------------------------


def _refused_ws(world: World, path: str, headers: dict[str, str] | None = None) -> int:
    """Connect and expect a refusal before any message: an HTTP denial (its status) or a close (its code)."""
    world.client.cookies.clear()
    try:
        with world.client.websocket_connect(path, headers=headers or {}):
            pass
    except WebSocketDenialResponse as exc:  # refused with an HTTP status before the upgrade
        return exc.status_code
    except WebSocketDisconnect as exc:  # closed before it was accepted
        return exc.code
    pytest.fail(f"{path} accepted the connection")


@pytest.mark.parametrize("path", ["/v1/stream", f"/v1/sessions/{ACME_SID}/subscribe", "/v1/taps/twilio",
                                  "/v1/taps/freeswitch", "/v1/taps/audiohook"])
def test_websocket_refuses_anonymous(world: World, path: str) -> None:
    assert _refused_ws(world, path) in (401, 1008)
    forged = {"Cookie": f"{SESSION_COOKIE}=forged-token"}
    assert _refused_ws(world, path, forged) in (401, 1008)
    assert _refused_ws(world, path + "?api_key=hk_0123456789ab_forged") in (401, 1008)


@pytest.mark.parametrize("path", ["/v1/stream", "/v1/taps/twilio", "/v1/taps/freeswitch"])
def test_ingest_websockets_refuse_keys_without_ingest(world: World, path: str) -> None:
    read_key = world.callers["acme/key:read"].headers
    assert _refused_ws(world, path, read_key) in (401, 1008)
    auditor = world.callers["acme/auditor"].headers  # a signed-in role without `ingest`
    assert _refused_ws(world, path, auditor) in (401, 1008)


def test_subscribe_refuses_key_without_read(world: World) -> None:
    ingest_key = world.callers["acme/key:ingest"].headers
    assert _refused_ws(world, f"/v1/sessions/{ACME_SID}/subscribe", ingest_key) == 1008


def _subscribe_not_found(world: World, headers: dict[str, str], sid: str) -> None:
    world.client.cookies.clear()
    with world.client.websocket_connect(f"/v1/sessions/{sid}/subscribe", headers=headers) as ws:
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["code"] == "not_found", msg
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
        assert exc.value.code == 1008


def test_subscribe_to_another_tenants_or_agents_call_is_not_found(world: World) -> None:
    _subscribe_not_found(world, world.callers["globex/key:read"].headers, ACME_SID)
    _subscribe_not_found(world, world.callers["globex/key:admin"].headers, ACME_SID)
    _subscribe_not_found(world, world.callers["globex/admin"].headers, ACME_SID)
    _subscribe_not_found(world, world.callers["acme/agent"].headers, ACME_OTHER_AGENT_SID)
    # the same sockets do work for the call's own tenant (and agent): history, then a normal close
    for name in ("acme/key:read", "acme/agent"):
        world.client.cookies.clear()
        with world.client.websocket_connect(f"/v1/sessions/{ACME_SID}/subscribe",
                                            headers=world.callers[name].headers) as ws:
            types = [ws.receive_json()["type"] for _ in range(4)]
            assert types == ["transcript", "transcript", "finding", "scorecard"]
            with pytest.raises(WebSocketDisconnect) as exc:
                ws.receive_json()
            assert exc.value.code == 1000


def test_cookie_websocket_from_another_origin_is_refused(world: World) -> None:
    """Cross-site WebSocket hijacking: a browser on another site sends the cookie, but not our Origin."""
    supervisor = world.callers["acme/supervisor"].headers
    evil = {**supervisor, "Origin": "https://evil.example"}
    assert _refused_ws(world, f"/v1/sessions/{ACME_SID}/subscribe", evil) == 1008
    assert _refused_ws(world, "/v1/stream", evil) == 1008
    same = {**supervisor, "Origin": "http://testserver"}
    with world.client.websocket_connect(f"/v1/sessions/{ACME_SID}/subscribe", headers=same) as ws:
        assert ws.receive_json()["type"] == "transcript"


def test_stream_sessions_belong_to_the_callers_tenant_and_agent(world: World) -> None:
    """An agent streaming audio cannot tag the call with someone else's agent id; a key's call is its tenant's."""
    for name, expect_tenant, expect_agent in (("acme/agent", "acme", "agent7"),
                                              ("globex/key:admin", "globex", "agent9")):
        world.client.cookies.clear()
        with world.client.websocket_connect("/v1/stream", headers=world.callers[name].headers) as ws:
            ws.send_json({"type": "start", "sample_rate_hz": 16000, "encoding": "s16le", "channels": 1,
                          "language": "en", "metadata": {"agent": "agent9"}})
            opened = ws.receive_json()
            assert opened["type"] == "session", opened
            ws.send_json({"type": "stop"})
            while ws.receive_json()["type"] != "session_end":
                pass
        row = world.state.store.get_session(opened["session_id"])
        assert (row.tenant_id, row.metadata.get("agent")) == (expect_tenant, expect_agent), name


# -- bad credentials and CSRF --------------------------------------------------------------------------------


def test_forged_and_malformed_credentials_get_401(world: World) -> None:
    real_key = world.callers["acme/key:admin"].headers["Authorization"][7:]
    key_id = real_key[3:].partition("_")[0]
    forged_headers = [
        {"Cookie": f"{SESSION_COOKIE}=forged-session-token"},
        {"Cookie": f"{SESSION_COOKIE}=" + "A" * 4000},
        {"Cookie": f"{SESSION_COOKIE}=%00%ff;;=="},
        {"Authorization": "Bearer hk_"}, {"Authorization": "Bearer hk__"}, {"Authorization": "Bearer hk_abc"},
        {"Authorization": f"Bearer hk_{key_id}_wrong-secret"}, {"Authorization": f"Bearer {real_key}x"},
        {"Authorization": "Bearer " + "hk_" + "x" * 10_000}, {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"X-API-Key": "not-a-key"}, {"X-API-Key": f"hk_{key_id}_"},
    ]
    for headers in forged_headers:
        for req in (Req("GET", "/v1/sessions"), Req("GET", "/v1/auth/me"), Req("POST", "/v1/auth/logout"),
                    Req("POST", f"/v1/tickets/{world.ticket_id}/close", json={"resolution": "x"})):
            r = world.call(Caller("forged", None, headers, frozenset(), kind="anonymous"), req)
            assert r.status_code == 401, (headers, req.path, r.status_code)
    r = world.call(ANONYMOUS, Req("GET", "/v1/sessions", {"api_key": "hk_0123456789ab_forged"}))
    assert r.status_code == 401


def test_cookie_requests_that_change_something_need_the_csrf_token(world: World) -> None:
    sup = world.callers["acme/supervisor"]
    cookie_only = {"Cookie": sup.headers["Cookie"]}  # the CSRF cookie rides along, but not the header
    other_csrf = world.callers["acme/admin"].headers["X-CSRF-Token"]
    tid = world.fresh_ticket()
    for headers in (cookie_only, {**cookie_only, "X-CSRF-Token": ""}, {**cookie_only, "X-CSRF-Token": "forged"},
                    {**cookie_only, "X-CSRF-Token": other_csrf}):
        for req in (Req("POST", f"/v1/tickets/{tid}/comments", json={"text": "csrf"}),
                    Req("POST", "/v1/tickets", json=TICKET_BODY), Req("POST", "/v1/auth/logout")):
            r = world.call(sup, Req(req.method, req.path, req.params, req.json, headers))
            assert (r.status_code, _detail_code(r)) == (403, "csrf"), (headers, req.path, r.text[:200])
    assert not world.state.tickets.get(tid).comments
    admin_cookie_only = {"Cookie": world.callers["acme/admin"].headers["Cookie"]}
    key_id = world.fresh_key()
    r = world.call(sup, Req("DELETE", f"/v1/keys/{key_id}", headers=admin_cookie_only))
    assert (r.status_code, _detail_code(r)) == (403, "csrf")
    # reads need no token; with the token the same write goes through; the supervisor is still signed in
    assert world.call(sup, Req("GET", "/v1/tickets", headers=cookie_only)).status_code == 200
    assert world.call(sup, Req("POST", f"/v1/tickets/{tid}/comments", json={"text": "ok"})).status_code == 200
    # API keys carry no ambient authority, so they need no CSRF token
    assert world.call(world.callers["acme/key:tickets"],
                      Req("POST", f"/v1/tickets/{tid}/comments", json={"text": "key"})).status_code == 200


def test_revoked_key_gets_401(world: World) -> None:
    full, rec = world.state.identity.create_key("acme", "soon revoked", ["read"])
    world.full_keys.append(full)
    key = Caller("soon revoked", "acme", {"Authorization": f"Bearer {full}"}, SCOPE_PERMS["read"], kind="key")
    assert world.call(key, Req("GET", "/v1/sessions")).status_code == 200
    assert world.call(world.callers["acme/admin"], Req("DELETE", f"/v1/keys/{rec.id}")).status_code == 204
    for req in (Req("GET", "/v1/sessions"), Req("GET", "/v1/auth/me"), Req("GET", SID.format(session_id=ACME_SID))):
        assert world.call(key, req).status_code == 401
    assert world.call(ANONYMOUS, Req("GET", "/v1/sessions", headers={"X-API-Key": full})).status_code == 401
    assert _refused_ws(world, f"/v1/sessions/{ACME_SID}/subscribe?api_key={full}") == 1008


def test_disabled_user_and_expired_sign_in_get_401(world: World) -> None:
    name = world.fresh_user(role=Role.SUPERVISOR)
    headers = world.login(name, FRESH_PASSWORD)
    user = Caller(name, "acme", headers, ROLE_PERMS[Role.SUPERVISOR], username=name)
    assert world.call(user, Req("GET", "/v1/sessions")).status_code == 200
    assert world.call(world.callers["acme/admin"], Req("POST", f"/v1/users/{name}/disable")).status_code == 200
    for req in (Req("GET", "/v1/sessions"), Req("GET", "/v1/auth/me"),
                Req("POST", f"/v1/tickets/{world.ticket_id}/comments", json={"text": "x"})):
        assert world.call(user, req).status_code == 401
    assert _refused_ws(world, f"/v1/sessions/{ACME_SID}/subscribe", headers) == 1008
    r = world.call(ANONYMOUS, Req("POST", "/v1/auth/login", json={"username": name, "password": FRESH_PASSWORD}))
    assert (r.status_code, _detail_code(r)) == (401, "bad_credentials")  # same answer as a wrong password
    # an expired sign-in (its row still in the table) is refused as well
    token, _ = world.state.identity.open_web_session(world.state.identity.get_user("acme-auditor"), -1.0)
    r = world.call(ANONYMOUS, Req("GET", "/v1/auth/me", headers={"Cookie": f"{SESSION_COOKIE}={token}"}))
    assert r.status_code == 401


def test_role_change_applies_to_an_open_sign_in(world: World) -> None:
    name = world.fresh_user(role=Role.SUPERVISOR)
    user = Caller(name, "acme", world.login(name, FRESH_PASSWORD), ROLE_PERMS[Role.SUPERVISOR], username=name)
    tid = world.fresh_ticket()
    comment = Req("POST", f"/v1/tickets/{tid}/comments", json={"text": "before"})
    assert world.call(user, comment).status_code == 200
    r = world.call(world.callers["acme/admin"], Req("POST", f"/v1/users/{name}/role", json={"role": "agent"}))
    assert r.status_code == 200 and r.json()["role"] == "agent"
    assert world.call(user, comment).status_code == 403
    assert world.call(user, Req("GET", "/v1/auth/me")).json()["role"] == "agent"


def test_logout_ends_the_sign_in(world: World) -> None:
    headers = world.login("acme-auditor")
    assert world.call(ANONYMOUS, Req("GET", "/v1/auth/me", headers=headers)).status_code == 200
    r = world.call(ANONYMOUS, Req("POST", "/v1/auth/logout", headers=headers))
    assert r.status_code == 204 and f"{SESSION_COOKIE}=" in r.headers.get("set-cookie", "")
    assert world.call(ANONYMOUS, Req("GET", "/v1/auth/me", headers=headers)).status_code == 401


def test_repeated_wrong_passwords_are_throttled(world: World) -> None:
    """login_max_failures=5: five wrong passwords are 401, the sixth try is 429 even with the right password."""
    name = world.fresh_user()
    wrong = {"username": name, "password": WRONG_PASSWORD}
    for _ in range(5):
        r = world.call(ANONYMOUS, Req("POST", "/v1/auth/login", json=wrong))
        assert (r.status_code, _detail_code(r)) == (401, "bad_credentials")
    for body in (wrong, {"username": name, "password": FRESH_PASSWORD}):
        r = world.call(ANONYMOUS, Req("POST", "/v1/auth/login", json=body))
        assert (r.status_code, _detail_code(r)) == (429, "rate_limited"), r.text
        assert int(r.headers["retry-after"]) > 0
    assert "set-cookie" not in r.headers
    # the lock is per user name (and, more loosely, per address): another user still signs in from here
    world.login("acme-auditor")


def test_malformed_login_bodies_are_422_never_500(world: World) -> None:
    for body in (None, {}, {"username": ""}, {"username": "a", "password": ""}, {"username": ["a"], "password": 1},
                 {"username": "a" * 201, "password": "x"}, {"username": "a", "password": "x" * 1001}):
        r = world.call(ANONYMOUS, Req("POST", "/v1/auth/login", json=body))
        assert r.status_code == 422, (body, r.status_code)
    r = world.client.post("/v1/auth/login", content=b"\xff\xfe not json",
                          headers={"content-type": "application/json"})
    assert r.status_code in (400, 422)  # FastAPI: 400 for a body that is not JSON at all


# -- the audit trail of identity events ----------------------------------------------------------------------


def test_identity_events_are_audited_without_secrets(world: World) -> None:
    st = world.state
    admin = world.callers["acme/admin"]
    # a failed sign-in of an unknown name, and of a known name with a wrong password
    for username in (NEVER_USER, "acme-auditor"):
        r = world.call(ANONYMOUS, Req("POST", "/v1/auth/login", json={"username": username,
                                                                      "password": WRONG_PASSWORD}))
        assert r.status_code == 401
    world.login("acme-supervisor")
    name = world.fresh_user()
    assert world.call(admin, Req("POST", f"/v1/users/{name}/role", json={"role": "auditor"})).status_code == 200
    created = world.call(admin, Req("POST", "/v1/keys", json={"name": "audited", "scopes": ["tickets"]}))
    assert created.status_code == 201
    key_id, full = created.json()["id"], created.json()["key"]
    world.full_keys.append(full)
    assert world.call(admin, Req("DELETE", f"/v1/keys/{key_id}")).status_code == 204
    user_added = world.call(admin, Req("POST", "/v1/users", json={"username": f"audited-{uuid.uuid4().hex[:6]}",
                                                                  "role": "agent", "password": FRESH_PASSWORD}))
    assert user_added.status_code == 201
    disabled = world.fresh_user()
    assert world.call(admin, Req("POST", f"/v1/users/{disabled}/disable")).status_code == 200

    records = list(st.audit.storage.iter_records())
    assert st.audit.verify().ok

    def has(action: str, actor: str | None = None, **payload: Any) -> bool:
        return any(r.action == action and (actor is None or r.actor == actor)
                   and all(r.payload.get(k) == v for k, v in payload.items()) for r in records)

    assert has("auth.login", "acme-supervisor", tenant="acme", role="supervisor")
    assert has("auth.login_failed", "anonymous", username_sha256=text_digest(NEVER_USER))
    assert has("auth.login_failed", "anonymous", username_sha256=text_digest("acme-auditor"))
    assert has("user.role_changed", "acme-admin", tenant="acme", username=name, before="agent", after="auditor")
    assert has("key.created", "acme-admin", tenant="acme", key_id=key_id, scopes=["tickets"])
    assert has("key.revoked", "acme-admin", tenant="acme", key_id=key_id)
    assert has("user.added", "acme-admin", tenant="acme", username=user_added.json()["username"])
    assert has("user.disabled", "acme-admin", tenant="acme", username=disabled)

    secrets = {NEVER_USER, WRONG_PASSWORD, FRESH_PASSWORD, *PASSWORDS.values(), *world.full_keys}
    secrets |= {h["Authorization"][7:] for h in (c.headers for c in world.callers.values()) if "Authorization" in h}
    for c in world.callers.values():  # sign-in cookies and their CSRF tokens
        if "Cookie" in c.headers:
            secrets |= {part.split("=", 1)[1] for part in c.headers["Cookie"].split("; ")}
    for rec in records:
        text = json.dumps(rec.to_dict(), ensure_ascii=False)
        leaked = {s for s in secrets if s in text}
        assert not leaked, (rec.action, leaked)

    # the auditor's view of the log is acme's records only; globex's auditor-capable admin sees none of them
    mine = world.call(world.callers["acme/auditor"], Req("GET", "/v1/audit", {"limit": 1000})).json()
    assert mine["verified"] and mine["records"]
    assert all(r["payload"].get("tenant") == "acme" for r in mine["records"])
    theirs = world.call(world.callers["globex/admin"], Req("GET", "/v1/audit", {"limit": 1000})).json()
    assert all(r["payload"].get("tenant") == "globex" for r in theirs["records"])
