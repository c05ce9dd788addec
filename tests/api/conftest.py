"""Fixtures of the API tests: the real app over a real DuckDB file.

One demo store (SaaS pack, 120 days of demo data, one user per role plus a second viewer) is
built once per session; each test that changes data gets its own copy of the file and its
own app (``api``), read-only tests share one app per module (``shared_api``). Time is a
FixedClock at 2024-07-01T06:00Z; passwords use a cheap argon2 hasher.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic import SecretStr

from kpidash import demo
from kpidash.api import create_app
from kpidash.api.state import AppState
from kpidash.auth import Accounts, AuthSettings, Passwords
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.packs import load_pack
from kpidash.settings import Settings
from kpidash.store import open_store

NOW = datetime(2024, 7, 1, 6, tzinfo=UTC)
DEMO_END = date(2024, 6, 30)
SECRET = "kpidash-api-tests-" + "0123456789" * 3  # 48 characters
PASSWORD = "correct horse battery"
CHEAP = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
# role name → username; "other" is a second viewer who owns nothing and is shared nothing
USERS = {"viewer": "vera", "analyst": "ana", "admin": "adam", "other": "otto"}
ROLES = {"viewer": "viewer", "analyst": "analyst", "admin": "admin", "other": "viewer"}
POINT_DIMS = {"region": "EU", "plan": "pro", "channel": "paid"}
ERROR_KEYS = {"code", "message", "status", "details"}


@dataclass(frozen=True)
class Template:
    path: Path
    ids: dict[str, str]  # role name ("viewer", …) → user id


def accounts_for(engine: Engine, clock: FixedClock, **auth: Any) -> Accounts:
    return Accounts(engine.store, clock, AuthSettings(secret=SECRET, **auth),
                    workspace=engine.workspace, passwords=Passwords(CHEAP))


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("api-template") / "demo.duckdb"
    clock = FixedClock(NOW)
    engine = Engine(open_store(str(path)), clock)
    try:
        engine.register(load_pack("saas"))
        engine.ingest_table(demo.generate(DEMO_END, days=120).points, source="demo")
        accounts = accounts_for(engine, clock)
        ids = {who: accounts.create_user(name, PASSWORD, role=ROLES[who]).id
               for who, name in USERS.items()}
    finally:
        engine.close()
    return Template(path, ids)


@dataclass
class Api:
    """A running app, its client and its parts, with tokens per role."""

    client: TestClient
    app: FastAPI
    clock: FixedClock
    ids: dict[str, str]
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def st(self) -> AppState:
        st: AppState = self.app.state.kpidash
        return st

    @property
    def engine(self) -> Engine:
        return self.st.engine

    def login(self, who: str, password: str = PASSWORD) -> Any:
        return self.client.post("/api/v1/auth/token",
                                data={"username": USERS.get(who, who), "password": password})

    def pair(self, who: str) -> dict[str, Any]:
        """A token pair of ``who`` (a role name or username), cached per app."""
        if who not in self.tokens:
            r = self.login(who)
            assert r.status_code == 200, r.text
            self.tokens[who] = r.json()
        return self.tokens[who]

    def token(self, who: str) -> str:
        return str(self.pair(who)["access_token"])

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(who)}"}

    def points(self, kpi: str = "signups") -> int:
        """How many raw points of ``kpi`` are stored (to prove nothing was written)."""
        with self.st.lock:
            return self.engine.store.point_count(self.engine.workspace, kpi)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a coroutine function on the app's event loop (e.g. live.alert_tick)."""
        assert self.client.portal is not None
        return self.client.portal.call(fn, *args)


@contextmanager
def running(template: Template, directory: Path, *, raise_server_exceptions: bool = True,
            auth: dict[str, Any] | None = None, **settings: Any) -> Iterator[Api]:
    """An app over a fresh copy of the template store, inside TestClient's lifespan."""
    path = directory / "api.duckdb"
    shutil.copy(template.path, path)
    clock = FixedClock(NOW)
    engine = Engine(open_store(str(path)), clock)
    accounts = accounts_for(engine, clock, **(auth or {}))
    options: dict[str, Any] = {"refresh_tick_seconds": 0.05, **settings}
    app = create_app(Settings(db=str(path), secret=SecretStr(SECRET), **options), clock=clock,
                     engine=engine, accounts=accounts)
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        yield Api(client, app, clock, dict(template.ids))


@pytest.fixture
def api(template: Template, tmp_path: Path) -> Iterator[Api]:
    """A fresh app on its own copy of the demo store (tests may change anything)."""
    with running(template, tmp_path) as a:
        yield a


@pytest.fixture
def make_api(template: Template, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[Callable[..., Any]]:
    """``with make_api(max_body_bytes=…) as api:`` — an app with other settings."""
    def make(**kwargs: Any) -> Any:
        return running(template, tmp_path_factory.mktemp("api"), **kwargs)

    yield make


@pytest.fixture(scope="module")
def shared_api(template: Template, tmp_path_factory: pytest.TempPathFactory,
               ) -> Iterator[Api]:
    """One app per module for tests that change nothing they share."""
    with running(template, tmp_path_factory.mktemp("shared-api")) as a:
        yield a


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """``r`` is the error envelope with this status (and code); returns its ``error``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    assert isinstance(error["code"], str) and error["code"]
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def point(value: float, ts: str = "2024-06-30T12:00:00Z", kpi: str = "signups",
          **dims: str) -> dict[str, Any]:
    return {"kpi": kpi, "ts": ts, "value": value, "dims": {**POINT_DIMS, **dims}}
