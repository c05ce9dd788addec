"""Browser tests of the built-in dashboard: a real uvicorn server in a background thread on a
copy of a demo-loaded DuckDB store, driven by Playwright in Debian's headless Chromium.

Chromium comes from the system (``scripts/browser.sh`` installs it); Playwright never
downloads a browser. Without a ``chromium`` executable every test here is skipped.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from kpidash import demo
from kpidash.api import create_app
from kpidash.api.state import AppState
from kpidash.auth import Accounts, AuthSettings, Passwords
from kpidash.cli.serve import DEMO_LAYOUT
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.packs import load_pack
from kpidash.settings import Settings
from kpidash.store import open_store
from loopback import serve_in_thread

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DEMO_END = date(2024, 6, 30)
NOW = datetime(2024, 7, 1, 6, tzinfo=UTC)
SECRET = "web-tests-" + "x" * 40
PASSWORD = "correct horse battery"
# argon2id with tiny parameters: the real ones cost ~0.1 s per hash
CHEAP = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
DEMO_SPEC = {"kpis": ["revenue", "mrr", "customer_churn_rate", "signups"], "grain": "day",
             "range": {"last": "90d"}, "refresh_interval": 30, "layout": DEMO_LAYOUT}


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file with the SaaS pack and 120 days of demo data up to DEMO_END (built once,
    like tests/engine/conftest.py's ``_demo_engine``)."""
    path = tmp_path_factory.mktemp("web-demo") / "demo.duckdb"
    e = Engine(open_store(str(path)), FixedClock(NOW))
    e.register(load_pack("saas"))
    e.ingest_table(demo.generate(DEMO_END, days=120).points, source="demo")
    e.close()
    return path


@dataclass
class Live:
    """A running server: its URL, app state and event loop, and helpers for the tests."""

    url: str
    st: AppState
    loop: asyncio.AbstractEventLoop
    users: dict[str, str] = field(default_factory=dict)  # username → role
    clients: list[httpx.Client] = field(default_factory=list)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (e.g. ``live.alert_tick(st)``)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def client(self, username: str) -> httpx.Client:
        """An API client logged in as ``username``."""
        c = httpx.Client(base_url=f"{self.url}/api/v1", timeout=30)
        self.clients.append(c)  # closed when the server stops
        r = c.post("/auth/token", data={"username": username, "password": PASSWORD})
        r.raise_for_status()
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        return c

    def add_user(self, username: str, role: str) -> None:
        """A user with their own copy of the demo dashboard."""
        user = self.st.locked(self.st.accounts.create_user, username, PASSWORD, role=role)
        self.st.locked(self.st.accounts.create_dashboard, user.id, "SaaS overview", DEMO_SPEC)
        self.users[username] = role


@pytest.fixture(scope="module")
def server(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    db = tmp_path_factory.mktemp("web-server") / "kpidash.duckdb"
    shutil.copy(demo_db, db)
    clock = FixedClock(NOW)
    settings = Settings(db=str(db), mode="dev", refresh_tick_seconds=0.1)
    engine = Engine(open_store(str(db)), clock)
    engine.register(load_pack("saas"))
    accounts = Accounts(engine.store, clock, AuthSettings(secret=SECRET),
                        passwords=Passwords(CHEAP), workspace=engine.workspace)
    app = create_app(settings, clock=clock, engine=engine, accounts=accounts)
    with serve_in_thread(app, "kpidash-web-test-server") as srv:
        live = Live(srv.url, app.state.kpidash, srv.loop)
        try:
            yield live
        finally:
            for c in live.clients:
                c.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium executable on PATH (scripts/browser.sh installs Debian's "
                    "chromium; Playwright's own browser download is never used)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("response", lambda r: r.status == 404 and errors.append(f"404 {r.url}"))
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"errors on the page: {errors}"


Login = Callable[[Any, str], None]


@pytest.fixture
def login(server: Live) -> Login:
    def do(pg: Any, username: str) -> None:
        pg.goto(server.url + "/")
        pg.get_by_label("Username").fill(username)
        pg.get_by_label("Password").fill(PASSWORD)
        pg.get_by_role("button", name="Log in").click()
        pg.wait_for_selector(".kpi-value")
        pg.wait_for_function("document.querySelector('#conn-status').textContent === 'live'")

    return do
