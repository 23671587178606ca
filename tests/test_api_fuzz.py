"""Property-based fuzzing of every REST operation with schemathesis: no generated input may cause a 5xx.

The app is built as in test_access_isolation.py (auth on, compliance packs, audio kept, no classifiers, no minutes,
no ASR warm-up). `schemathesis.openapi.from_asgi` loads the schema from the app and starts its lifespan once, in
schemathesis's own event-loop thread (v4 keeps an ASGI app's lifespan running for the process;
`shutdown_lifespans()` stops it when the module is done). Data is then seeded through `app.state.harken`: an acme
call with a recording, a ticket, a user and a key that the path parameters can address.

Every operation of the schema is one test (`OPERATIONS` is read from the schema at collection, so a new route is
fuzzed without touching this file). Each runs hypothesis over schemathesis's strategies:

  * positive cases (valid per the schema) and, when the operation has a query, header or body to get wrong,
    negative cases (invalid per the schema: they must be refused with a 4xx, not crash);
  * with generated path parameters (mostly unknown ids: 404) and, for operations with path parameters, again with
    acme's real ids, so the query and body reach the handler's own logic (audio spans, ticket transitions ...).

All requests authenticate as acme's admin with an API key holding every scope (`Authorization: Bearer`, so no
CSRF token is involved). The only check is schemathesis's `not_a_server_error`. The example count is bounded
(`HARKEN_FUZZ_EXAMPLES`, default 15) and generation is derandomized, so the run is reproducible and takes well
under two minutes on two cores; set HARKEN_FUZZ_EXAMPLES higher (and HARKEN_FUZZ_RANDOM=1) to explore.

The app is wrapped like a real server wraps it: an exception raised after the 500 response was sent (Starlette's
ServerErrorMiddleware re-raises for the server to log) is swallowed, so schemathesis sees the 500 as a response and
reports it with a reproducing request instead of an exception.

The app bugs this fuzzing found are fixed and have regression tests at the end of the file; no 5xx is tolerated.
Excluded operations: none (`EXCLUDED` is empty).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
import soundfile as sf
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans

from api.app import create_app
from intelligence.types import Severity
from pipelines.settings import HarkenSettings

MAX_EXAMPLES = int(os.environ.get("HARKEN_FUZZ_EXAMPLES", "15"))
DERANDOMIZE = os.environ.get("HARKEN_FUZZ_RANDOM", "") != "1"
AUDIO_RATE_HZ = 8000  # the seeded recording's rate (the audio bug's threshold depends on it)
SID = "acme-fuzz-call"

# Operations not fuzzed, with the reason. None: every operation is safe to call with generated input here.
EXCLUDED: dict[str, str] = {}


def _settings(data_dir: Path) -> HarkenSettings:
    return HarkenSettings(data_dir=data_dir, asr_warm_up=False, classifiers=False, compliance=True,
                          store_audio=True, minutes=False)


def _schema_operations() -> list[str]:
    """Labels ("GET /v1/sessions") of every schema operation, read at collection from an app that is not started."""
    schema = create_app(_settings(Path("unused-not-started"))).openapi()
    return sorted(f"{m.upper()} {p}" for p, ops in schema["paths"].items() for m in ops)


OPERATIONS = _schema_operations()


# Bugs this fuzzing found, all fixed (regression tests at the end of the file): audio spans whose seconds x rate
# overflowed (500), unbounded offset / after_seq reaching SQLite's 64-bit integers (500), and date_to=9999-12-31
# stepping past date.max (500). No 5xx is tolerated.


# -- the app under fuzz --------------------------------------------------------------------------------------


@dataclass
class Fuzz:
    schema: Any
    state: Any
    auth: dict[str, str]
    ids: dict[str, str]


def _as_served(app: Any) -> Any:
    """The app as an ASGI server runs it: an exception after the response started is logged by the server, not
    sent to the client (Starlette's ServerErrorMiddleware sends the 500, then re-raises for the server)."""

    async def served(scope: dict, receive: Any, send: Any) -> None:
        started = False

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracking_send)
        except Exception:
            if not (scope["type"] == "http" and started):
                raise

    return served


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    data_dir = tmp_path_factory.mktemp("harken-fuzz")
    app = create_app(_settings(data_dir))
    schema = schemathesis.openapi.from_asgi("/openapi.json", _as_served(app))  # starts the lifespan
    try:
        st = app.state.harken
        assert st.runtime is not None, "the lifespan did not run"
        full, _ = st.identity.create_key("acme", "fuzz-admin", ["admin"])
        st.store.create_session(SID, "websocket", "en", ["agent", "customer"], {"agent": "agent7"}, tenant_id="acme")
        st.store.add_events([(SID, 0, {"type": "transcript", "kind": "final", "segment_id": "c0-00000",
                                       "channel": 0, "speaker": "agent", "start_s": 0.0, "end_s": 2.0,
                                       "text": "Thank you for calling.", "words": [], "language": "en"})])
        st.store.update_session(SID, status="ended")
        (data_dir / "audio" / SID).mkdir(parents=True)
        sf.write(str(data_dir / "audio" / SID / f"{SID}.flac"), np.zeros(AUDIO_RATE_HZ, dtype=np.int16),
                 AUDIO_RATE_HZ, format="FLAC")
        ticket = st.tickets.create(session_id=SID, rule_id="pci_pan_spoken", severity=Severity.HIGH, title="fuzz",
                                   actor="t", tenant_id="acme", agent="agent7")
        st.identity.add_user("acme-fuzz-victim", "victim passphrase 1", "agent", "acme")
        _, victim_key = st.identity.create_key("acme", "victim", ["read"])
        ids = {"session_id": SID, "ticket_id": ticket.id, "username": "acme-fuzz-victim", "key_id": victim_key.id}
        yield Fuzz(schema, st, {"Authorization": f"Bearer {full}"}, ids)
    finally:
        shutdown_lifespans()  # the lifespan schemathesis started for this app (none other runs in this process)


def test_every_operation_is_fuzzed(fuzz: Fuzz) -> None:
    """The collected operations are the running app's, and only the EXCLUDED ones (with a reason) are skipped."""
    live = sorted(op.ok().label for op in fuzz.schema.get_all_operations())
    assert live == OPERATIONS
    assert set(EXCLUDED) <= set(OPERATIONS) and all(EXCLUDED.values())


def _variants(op: Any, ids: dict[str, str]) -> list[tuple[schemathesis.GenerationMode, dict[str, str] | None]]:
    params = list(op.iter_parameters())
    negatable = bool(op.body) or any(p.location != "path" for p in params)  # a path string cannot be "invalid"
    modes = [schemathesis.GenerationMode.POSITIVE] + ([schemathesis.GenerationMode.NEGATIVE] if negatable else [])
    variants: list[tuple[schemathesis.GenerationMode, dict[str, str] | None]] = [(m, None) for m in modes]
    path_names = [p.name for p in params if p.location == "path"]
    if path_names:
        real = {name: ids[name] for name in path_names}
        variants += [(m, real) for m in modes]
    return variants


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_error(fuzz: Fuzz, label: str) -> None:
    if label in EXCLUDED:
        pytest.skip(EXCLUDED[label])
    op = fuzz.schema.find_operation_by_label(label)

    for mode, path_parameters in _variants(op, fuzz.ids):

        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])
        @given(case=op.as_strategy(mode, path_parameters=path_parameters))
        def run(case: Any) -> None:
            response = case.call(headers=fuzz.auth)
            case.validate_response(response, checks=[not_a_server_error])

        run()


# -- regression tests for the bugs this fuzzing found ------------------------------------------------------


def _get(fuzz: Fuzz, path: str, query: dict[str, Any]) -> int:
    op = fuzz.schema[path]["GET"]
    case = op.Case(path_parameters={k: v for k, v in fuzz.ids.items() if "{" + k + "}" in path}, query=query)
    return case.call(headers=fuzz.auth).status_code


AUDIO = "/v1/sessions/{session_id}/audio"


@pytest.mark.parametrize("query", [{"end_s": 1e308}, {"start_s": 1e308}, {"start_s": "inf"},
                                   {"end_s": "Infinity"}])
def test_audio_span_out_of_range_is_refused_not_500(fuzz: Fuzz, query: dict[str, Any]) -> None:
    assert _get(fuzz, AUDIO, query) < 500


@pytest.mark.parametrize(("path", "query"), [("/v1/sessions", {"offset": 2**63}),
                                             ("/v1/tickets", {"offset": 2**63}),
                                             ("/v1/sessions/{session_id}/events", {"after_seq": 2**63}),
                                             ("/v1/sessions/{session_id}/events", {"after_seq": -(2**63) - 1})])
def test_huge_integer_parameters_are_refused_not_500(fuzz: Fuzz, path: str, query: dict[str, Any]) -> None:
    status = _get(fuzz, path, query)
    assert 400 <= status < 500, status


def test_tickets_up_to_the_last_representable_day(fuzz: Fuzz) -> None:
    assert _get(fuzz, "/v1/tickets", {"date_to": "9999-12-31"}) == 200


def test_fuzz_left_the_admin_key_working(fuzz: Fuzz) -> None:
    """Sanity: the generated requests (revocations, role changes ...) did not lock the fuzzing identity out, so the
    runs above exercised handlers rather than 401s."""
    op = fuzz.schema["/v1/auth/me"]["GET"]
    response = op.Case().call(headers=fuzz.auth)
    assert response.status_code == 200 and response.json()["tenant"] == "acme"
