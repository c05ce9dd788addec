"""API fuzzing (issue 10): schemathesis against the app's own OpenAPI schema.

The real app over a copy of the demo DuckDB store is loaded in process; schemathesis reads
``/openapi.json`` from it and, for every operation of the schema, sends a bounded number of
generated requests (schema examples, its coverage phase of boundary and invalid values, then
hypothesis fuzzing; valid and invalid data alike), derandomized and without a hypothesis
database, so two runs send the same requests. Each request carries a fresh admin token (so
role checks do not hide the handlers, and a logout or a password change in one case cannot
turn the rest into 401s); a second, smaller pass sends the read operations as a viewer.

Every response must be: no 5xx; a documented status code, content type and headers; a body
that conforms to the documented schema — error responses included (the error envelope).
"""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from api.conftest import NOW, PASSWORD, SECRET, USERS, Template, accounts_for
from counts import count
from hypothesis import HealthCheck, settings, strategies
from loopback import serve_in_thread
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kpidash.api import create_app
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.settings import Settings
from kpidash.store import open_store

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
TIMEOUT = 60  # seconds per request (a live event stream is read until then or its first events)
EXAMPLES = 8  # hypothesis examples per operation in the fuzzing phase (the time budget)


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 7, 1, 0, 0, 0)), data)
    return out.getvalue()


# the body of POST /workspaces/import (application/zip): random bytes, or zips of random
# members named like an export's
MEMBER = strategies.sampled_from(["manifest.json", "points.parquet", "kpis.parquet", "x/../y"]) \
    | strategies.text(min_size=1, max_size=20)
schemathesis.openapi.media_type("application/zip", strategies.binary(max_size=512) | strategies.lists(
    strategies.tuples(MEMBER, strategies.binary(max_size=256)), max_size=3).map(_zip))


def _bare_schema() -> Any:
    """The app's OpenAPI schema, read at collection time from an app over an empty in-memory
    store (schemathesis makes one test per operation from it); ``test_schema_is_the_served_one``
    checks that the demo app serves the same schema."""
    app = create_app(Settings(db=":memory:", secret=SecretStr(SECRET)), clock=FixedClock(NOW))
    try:
        return app.openapi()
    finally:
        app.state.kpidash.engine.close()


RAW = _bare_schema()
schema = schemathesis.openapi.from_dict(RAW)


@dataclass
class Fuzzed:
    """The app under fuzzing and what was sent to it."""

    app: Any
    url: str
    session: requests.Session
    operations: dict[str, int] = field(default_factory=dict)  # "GET /api/v1/kpis" → requests

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

    def sent(self, label: str, path: str) -> None:
        self.operations[label] = self.operations.get(label, 0) + 1
        count("requests fuzzed")
        if may_end_sessions(path):
            self.tokens.clear()


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
    app = create_app(Settings(db=str(path), secret=SecretStr(SECRET)), clock=clock, engine=engine,
                     accounts=accounts)
    with serve_in_thread(app, "kpidash-fuzz") as server, requests.Session() as session:
        yield Fuzzed(app, server.url, session)


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_as_admin(case: Any, fuzzed: Fuzzed) -> None:
    response = case.call(base_url=fuzzed.url, session=fuzzed.session, timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {fuzzed.token('admin')}"})
    fuzzed.sent(case.operation.label, case.path)
    case.validate_response(response, checks=CHECKS)
