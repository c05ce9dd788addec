"""API fuzzing (issue 10): schemathesis against the app's own OpenAPI schema.

The real app over a copy of the demo DuckDB store serves on loopback; for every operation of
its OpenAPI schema schemathesis sends a bounded number of generated requests (the schema's
examples, its coverage phase of boundary and invalid values, then hypothesis fuzzing; valid
and invalid data alike), derandomized with a fixed seed and no hypothesis database, so two
runs send the same requests. Half the cases are aimed at things that exist (the default
workspace, real KPIs, a dashboard, an alert rule and its alert) so that they get past the
lookups. Requests carry an admin token (role checks do not hide the handlers); after any
request that may end its session (logout, password change, user administration) the next
one gets a new session, so no case turns the rest into 401s. A second, smaller pass sends
the read operations as a viewer.

Every response must be: no 5xx; a documented status code, content type and headers; a body
that conforms to the documented schema — error responses included (the error envelope).
"""

from __future__ import annotations

import io
import random
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings, strategies
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.conftest import NOW, PASSWORD, SECRET, USERS, Template, accounts_for
from counts import count
from kpidash.api import create_app
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.schemas import schema_names
from kpidash.settings import Settings
from kpidash.store import open_store
from loopback import serve_in_thread

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
TIMEOUT = 60  # seconds per request
EXAMPLES = 12  # hypothesis examples per operation in the fuzzing phase (the time budget)
VIEWER_EXAMPLES = 6
SEED = 1234


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 7, 1, 0, 0, 0)), data)
    return out.getvalue()


# media types schemathesis cannot generate by itself. The body of POST /workspaces/import
# (application/zip): random bytes, or zips of random members named like an export's
MEMBER = strategies.sampled_from(["manifest.json", "points.parquet", "kpis.parquet", "x/../y"]) \
    | strategies.text(min_size=1, max_size=20)
schemathesis.openapi.media_type("application/zip", strategies.binary(max_size=512) | strategies.lists(
    strategies.tuples(MEMBER, strategies.binary(max_size=256)), max_size=3).map(_zip))

# the body of POST …/ingest/file as text/csv: a header and rows of KPI ids, times and values,
# each real or not
CELL = strategies.sampled_from(["signups", "revenue", "2024-06-30T12:00:00Z", "2024-06-30",
                                "12.5", "-1", "nan", "1e309", ""]) \
    | strategies.text(max_size=12)
CSV = strategies.tuples(
    strategies.sampled_from(["timestamp,kpi,value", "timestamp,kpi,value,region", "ts,value",
                            "a;b;c"]),
    strategies.lists(strategies.lists(CELL, min_size=1, max_size=4), max_size=6),
).map(lambda t: "\n".join([t[0], *(",".join(row) for row in t[1])]).encode())
schemathesis.openapi.media_type("text/csv", CSV)


def _bare_schema() -> Any:
    """The app's OpenAPI schema, read at collection time from an app over an empty in-memory
    store (schemathesis makes one test per operation from it);
    ``test_every_operation_was_fuzzed`` checks that the demo app serves the same schema."""
    app = create_app(Settings(db=":memory:", secret=SecretStr(SECRET)), clock=FixedClock(NOW))
    try:
        return app.openapi()
    finally:
        app.state.kpidash.engine.close()


def _config(examples: int, **phases: Any) -> SchemathesisConfig:
    # an event stream (a dashboard's live updates) is read up to its first event
    return SchemathesisConfig.from_dict({
        "seed": SEED, "suppress-health-check": ["all"], "max-stream-events": 1,
        "generation": {"deterministic": True, "database": "none", "max-examples": examples},
        "phases": phases})


RAW = _bare_schema()
OPERATIONS = {f"{method.upper()} {path}" for path, ops in RAW["paths"].items() for method in ops}
schema = schemathesis.openapi.from_dict(RAW, config=_config(EXAMPLES))
# the viewer pass: the read operations, fuzzing phase only (the coverage phase's boundary
# cases are the admin pass's), fewer examples
reads = schemathesis.openapi.from_dict(
    RAW, config=_config(VIEWER_EXAMPLES, coverage={"enabled": False})).include(method="GET")


@dataclass
class Fuzzed:
    """The app under fuzzing and what was sent to it."""

    app: Any
    url: str
    session: requests.Session
    operations: dict[str, int] = field(default_factory=dict)  # "GET /api/v1/kpis" → requests
    viewer_operations: dict[str, int] = field(default_factory=dict)

    known: dict[str, list[str]] = field(default_factory=dict)  # path parameter → real values
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def st(self) -> Any:
        return self.app.state.kpidash

    def token(self, who: str) -> str:
        """An access token of ``who`` (a role name), minted without HTTP; a new session after
        every request that may have ended the last one (see :func:`may_end_sessions`)."""
        if who not in self.tokens:
            pair = self.st.locked(self.st.accounts.login, USERS[who], PASSWORD, address="")
            self.tokens[who] = str(pair.access_token)
        return self.tokens[who]

    def aim(self, case: Any) -> None:
        """Point half of the cases at things that exist (the default workspace, a real KPI,
        dashboard, rule, alert …), so that generated queries and bodies reach the handlers
        behind the lookups; deletions only at the workspace (the rest must stay)."""
        for name in list(case.path_parameters or {}):
            choices = self.known.get(name, [])
            if choices and (case.method != "DELETE" or name == "workspace") \
                    and self.rng.random() < 0.5:
                case.path_parameters[name] = self.rng.choice(choices)

    def call(self, case: Any, who: str) -> None:
        """Send ``case`` as ``who`` and check the response."""
        self.aim(case)
        response = case.call(base_url=self.url, session=self.session, timeout=TIMEOUT,
                             headers={"Authorization": f"Bearer {self.token(who)}"})
        seen = self.operations if who == "admin" else self.viewer_operations
        seen[case.operation.label] = seen.get(case.operation.label, 0) + 1
        count("requests fuzzed")
        if may_end_sessions(case.path):
            self.tokens.clear()
        case.validate_response(response, checks=CHECKS)


def may_end_sessions(path: str) -> bool:
    """Whether a request to ``path`` may revoke the caller's session or change their
    password or account (logout, a session revoked, a password changed, a user disabled):
    the next request then gets a new session, so one case never turns the rest into 401s."""
    return path.startswith(("/api/v1/auth/", "/api/v1/me", "/api/v1/users"))


@pytest.fixture(scope="module")
def fuzzed(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """The real app over a copy of the demo store, served by uvicorn on loopback.

    Not schemathesis' in-process ASGI client: its pytest plugin ends every app lifespan it
    started after each test, and this app serves the whole module."""
    path = tmp_path_factory.mktemp("fuzz") / "api.duckdb"
    shutil.copy(template.path, path)
    clock = FixedClock(NOW)
    engine = Engine(open_store(str(path)), clock)
    # failed logins (a fuzzed /me/password) must not lock out the token minting below
    accounts = accounts_for(engine, clock, max_failures=10**9)
    engine.put_alert_rules([{"id": "signups_low", "kpi": "signups", "condition": {
        "kind": "threshold", "direction": "below", "bands": {"critical": 1e9}}}])
    engine.evaluate_alerts()
    board = accounts.create_dashboard(template.ids["admin"], "Fuzz", {"kpis": ["signups"]},
                                      workspace=engine.workspace)
    known = {"workspace": [engine.workspace], "kpi_id": [k.id for k in engine.registry],
             "dashboard_id": [board.id], "rule_id": ["signups_low"],
             "fingerprint": [a.fingerprint for a in engine.alerts(states=None)],
             "user_id": [template.ids["other"]], "name": schema_names()}
    assert known["fingerprint"], "the rule should have raised an alert"
    app = create_app(Settings(db=str(path), secret=SecretStr(SECRET)), clock=clock, engine=engine,
                     accounts=accounts)
    with serve_in_thread(app, "kpidash-fuzz") as server, requests.Session() as session:
        yield Fuzzed(app, server.url, session, known=known)


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_as_admin(case: Any, fuzzed: Fuzzed) -> None:
    fuzzed.call(case, "admin")


@reads.parametrize()
@settings(max_examples=VIEWER_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_reads_as_viewer(case: Any, fuzzed: Fuzzed) -> None:
    fuzzed.call(case, "viewer")


def test_every_operation_was_fuzzed(fuzzed: Fuzzed) -> None:
    """The fuzz tests above covered every operation the app serves (a new endpoint cannot
    escape), and the schema they were made from is the one the demo app serves."""
    served = fuzzed.session.get(f"{fuzzed.url}/openapi.json", timeout=TIMEOUT)
    assert served.status_code == 200 and served.json() == RAW
    if not fuzzed.operations:
        pytest.skip("the fuzz tests did not run in this session (deselected)")
    assert set(fuzzed.operations) == OPERATIONS
    assert set(fuzzed.viewer_operations) == {o for o in OPERATIONS if o.startswith("GET ")}
    count("endpoints fuzzed", len(fuzzed.operations))
