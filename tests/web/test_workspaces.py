"""The dashboard's workspace switcher and portfolio page in a real headless Chromium against a
real server holding three workspaces: ``default`` (the demo data), ``acme`` and ``globex``
(created through the API by a server administrator, each with its own ``mrr`` and
``signups``). ``agnes`` is an analyst in ``default`` and a viewer in ``acme``, and not a
member of ``globex``; ``solo`` belongs to ``default`` only."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kpidash.api import live as live_api

from .conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
Live = Any  # conftest.Live: the running server

KPIS = [
    {"id": "mrr", "name": "MRR", "unit": "$", "aggregation": "last", "higher_is_better": True},
    {"id": "signups", "name": "Signups", "aggregation": "sum", "higher_is_better": True},
]
# daily points of May and June 2024: MRR moves by `step` a day from `base`; signups are
# `daily` a day
CLIENTS = {
    "acme": {"name": "Acme Corp", "settings": {"timezone": "Europe/Paris", "currency": "EUR"},
             "base": 90_000.0, "step": 500.0, "daily": 7.0},
    "globex": {"name": "Globex", "settings": {"timezone": "America/New_York",
                                              "currency": "USD", "default_theme": "dark"},
               "base": 40_000.0, "step": -100.0, "daily": 3.0},
}


@dataclass
class Setup:
    live: Live
    admin: httpx.Client  # a server administrator (member of every workspace)
    default_name: str


def may_june(c: dict[str, Any]) -> list[dict[str, Any]]:
    days = [f"2024-05-{d:02d}" for d in range(1, 32)] + [f"2024-06-{d:02d}" for d in range(1, 31)]
    out = []
    for i, day in enumerate(days):
        ts = f"{day}T12:00:00Z"
        out.append({"kpi": "mrr", "ts": ts, "value": c["base"] + c["step"] * i})
        out.append({"kpi": "signups", "ts": ts, "value": c["daily"]})
    return out


@pytest.fixture(scope="module")
def setup(server: Live) -> Setup:
    server.add_user("root", "admin")
    admin = server.client("root")
    for ws, c in CLIENTS.items():
        r = admin.post("/workspaces", json={"id": ws, "name": c["name"],
                                            "settings": c["settings"]})
        assert r.status_code == 201, r.text
        r = admin.post(f"/workspaces/{ws}/kpis", json=KPIS)
        assert r.status_code == 201, r.text
        r = admin.post(f"/workspaces/{ws}/ingest", json={"points": may_june(c)})
        assert r.status_code == 200, r.text
    server.add_user("agnes", "analyst")  # analyst in default (with the demo dashboard)
    agnes = server.st.locked(server.st.accounts.get_user_by_name, "agnes")
    r = admin.put(f"/workspaces/acme/members/{agnes.id}", json={"role": "viewer"})
    assert r.status_code == 204, r.text
    server.add_user("solo", "viewer")
    default = next(w for w in admin.get("/workspaces").json() if w["id"] == "default")
    return Setup(server, admin, default["name"])


def sign_in(page: Any, url: str, username: str) -> None:
    """Log in from ``url`` (which may carry a ``#ws=…`` link) and wait for live cards."""
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector(".kpi-value")
    page.wait_for_function("document.querySelector('#conn-status').textContent === 'live'")


def switch_to(page: Any, workspace: str) -> None:
    page.get_by_label("Workspace").select_option(workspace)
    page.wait_for_function(
        f"document.querySelector('#workspace-meta').dataset.workspace === {json.dumps(workspace)}"
        " && document.querySelector('.kpi-value') !== null")


def cards(page: Any) -> dict[str, float]:
    """KPI id → the value a card shows (its data-value)."""
    out = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.kpi-value')]
        .map(e => [e.dataset.kpi, Number(e.dataset.value)]))""")
    return dict(out)


def rendered_cards(api: httpx.Client, workspace: str) -> dict[str, float]:
    """What the API renders for the user's first dashboard of ``workspace``."""
    base = f"/workspaces/{workspace}"
    d = api.get(f"{base}/dashboards").json()[0]
    board = api.get(f"{base}/dashboards/{d['id']}/render").json()
    return {w["data"]["kpi_id"]: w["data"]["value"] for w in board["widgets"]
            if w["type"] == "kpi"}


def test_the_switcher_lists_exactly_my_workspaces(setup: Setup, page: Any) -> None:
    sign_in(page, setup.live.url + "/", "agnes")
    picker = page.get_by_label("Workspace")
    assert picker.is_visible()
    options = picker.locator("option")
    assert options.evaluate_all("os => os.map(o => o.value)") == ["acme", "default"]
    assert options.all_inner_texts() == ["Acme Corp (viewer)", f"{setup.default_name} (analyst)"]
    assert "Globex" not in page.locator("header.topbar").inner_text()
    # the server's own workspace opens first; its time zone and currency are shown
    assert picker.input_value() == "default"
    assert page.locator("#workspace-meta").inner_text() == "USD · UTC"
    assert page.locator("#user-info").inner_text() == "agnes (analyst)"
    assert page.get_by_role("button", name="Portfolio").is_visible()


def test_one_workspace_no_switcher(setup: Setup, page: Any) -> None:
    sign_in(page, setup.live.url + "/", "solo")
    assert page.locator("#workspace-field").is_hidden()
    assert page.locator("#portfolio-button").is_hidden()
    assert page.locator("#workspace-meta").inner_text() == "USD · UTC"
    assert set(cards(page)) == {"revenue", "mrr", "customer_churn_rate", "signups"}


def test_switching_shows_that_workspaces_cards(setup: Setup, page: Any) -> None:
    sign_in(page, setup.live.url + "/", "agnes")
    api = setup.live.client("agnes")
    default_cards = cards(page)
    assert default_cards == pytest.approx(rendered_cards(api, "default"))
    switch_to(page, "acme")
    # acme's first visit made agnes a dashboard there: its cards, with acme's values
    acme = rendered_cards(api, "acme")
    assert set(acme) == {"mrr", "signups"}
    page.wait_for_function("document.querySelectorAll('.kpi-value').length === 2")
    shown = cards(page)
    assert shown == pytest.approx(acme)
    assert shown["mrr"] != pytest.approx(default_cards["mrr"])
    assert page.locator('[data-id="card:revenue"]').count() == 0
    assert page.locator("#workspace-meta").inner_text() == "EUR · Europe/Paris"
    assert page.locator("#user-info").inner_text() == "agnes (viewer)"
    assert page.evaluate("location.hash") == "#ws=acme"
    assert page.evaluate("localStorage.getItem('kpidash.workspace')") == "acme"
    # and back
    switch_to(page, "default")
    page.wait_for_selector('[data-id="card:revenue"] .kpi-value')
    assert cards(page) == pytest.approx(default_cards)
    assert page.evaluate("location.hash") == "#ws=default"


def test_a_link_opens_its_workspace(setup: Setup, page: Any) -> None:
    sign_in(page, setup.live.url + "/#ws=acme", "agnes")
    assert page.get_by_label("Workspace").input_value() == "acme"
    assert set(cards(page)) == {"mrr", "signups"}
    # a link followed in the open page switches too
    page.evaluate("location.hash = '#ws=default'")
    page.wait_for_selector('[data-id="card:revenue"] .kpi-value')
    assert page.get_by_label("Workspace").input_value() == "default"
    # the choice is remembered: a reload without a link opens it again
    switch_to(page, "acme")
    page.goto(setup.live.url + "/")
    page.wait_for_selector('[data-id="card:mrr"] .kpi-value')
    assert page.get_by_label("Workspace").input_value() == "acme"
    # a link to a workspace the user is not a member of opens one of theirs, and says so
    page.evaluate("location.hash = '#ws=globex'")
    page.wait_for_function("location.hash === '#ws=acme'")
    assert "not a member of workspace globex" in page.locator("#announcer").inner_text()
    page.goto("about:blank")
    page.goto(setup.live.url + "/#ws=globex")
    page.wait_for_selector('[data-id="card:mrr"] .kpi-value')
    assert page.get_by_label("Workspace").input_value() == "acme"  # the remembered one
    assert "not a member of workspace globex" in page.locator("#announcer").inner_text()
    assert page.evaluate("location.hash") == "#ws=acme"


def frames_of(page: Any) -> list[dict[str, Any]]:
    """Every WebSocket message the page receives from now on, parsed."""
    got: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: got.append(json.loads(payload)))

    page.on("websocket", on_socket)
    return got


def test_live_updates_only_from_the_shown_workspace(setup: Setup, page: Any) -> None:
    frames = frames_of(page)
    sign_in(page, setup.live.url + "/", "agnes")
    switch_to(page, "acme")
    page.wait_for_function("document.querySelectorAll('.kpi-value').length === 2")
    before = cards(page)
    seen = len(frames)
    # a point in the workspace not shown (agnes's default dashboard shows signups too) …
    r = setup.admin.post("/workspaces/default/ingest", json={"points": [{
        "kpi": "signups", "ts": "2024-06-30T12:00:00Z", "value": 500,
        "dims": {"region": "EU", "plan": "pro", "channel": "paid"}}]})
    assert r.status_code == 200, r.text
    # … then one in acme: it reaches the card; the first never reached the page
    r = setup.admin.post("/workspaces/acme/ingest", json={"points": [
        {"kpi": "signups", "ts": "2024-06-30T13:00:00Z", "value": 40}]})
    assert r.status_code == 200, r.text
    page.wait_for_function(
        "Number(document.querySelector('[data-id=\"card:signups\"] .kpi-value').dataset.value)"
        f" === {before['signups'] + 40}")
    assert cards(page)["mrr"] == before["mrr"]
    # every dashboard pushed since the switch was acme's (default's was unsubscribed)
    pushed = [f for f in frames[seen:] if f.get("type") == "dashboard"]
    assert pushed and {f.get("workspace") for f in pushed} == {"acme"}, pushed
    assert page.locator('[data-id="card:revenue"]').count() == 0


RULES = {
    "default": {"id": "ws_revenue_high", "kpi": "revenue", "grain": "day", "for": "0s",
                "condition": {"kind": "threshold", "direction": "above",
                              "bands": {"high": 1000}}},
    "acme": {"id": "ws_mrr_high", "kpi": "mrr", "grain": "day", "for": "0s",
             "condition": {"kind": "threshold", "direction": "above",
                           "bands": {"high": 1000}}},
}


def test_controls_follow_the_role_in_the_shown_workspace(setup: Setup, page: Any) -> None:
    for ws, rule in RULES.items():
        r = setup.admin.post(f"/workspaces/{ws}/alert-rules", json=rule)
        assert r.status_code == 201, r.text
    setup.live.call(live_api.alert_tick(setup.live.st))
    sign_in(page, setup.live.url + "/#ws=default", "agnes")
    # analyst in default: may acknowledge and silence, and sees default's alerts only
    rows = page.locator("#alerts-list .alert")
    rows.first.wait_for()
    assert page.locator("#alerts-list").inner_text().count("rule ws_revenue_high") >= 1
    assert "ws_mrr_high" not in page.locator("#alerts-list").inner_text()
    assert page.locator("#alerts-list .ack").count() >= 1
    # viewer in acme: acme's alert, no Acknowledge or Silence
    switch_to(page, "acme")
    page.wait_for_selector("#alerts-list .alert")
    text = page.locator("#alerts-list").inner_text()
    assert "rule ws_mrr_high" in text and "ws_revenue_high" not in text
    assert page.get_by_role("button", name=re.compile("Acknowledge|Silence")).count() == 0
    # the dashboard is agnes's own in acme too: she may arrange it
    assert page.locator("#readonly-note").is_hidden()


def wait_until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture
def own_theme_restored(setup: Setup) -> Iterator[None]:
    """Screenshots change agnes's theme (saved in her profile): put the default back."""
    yield
    r = setup.live.client("agnes").patch("/me", json={"theme": "corporate"})
    assert r.status_code == 200, r.text


@pytest.mark.usefixtures("own_theme_restored")
def test_screenshots_of_the_switcher(setup: Setup, page: Any) -> None:
    sign_in(page, setup.live.url + "/#ws=acme", "agnes")
    ARTIFACTS.mkdir(exist_ok=True)
    for theme in ("light", "dark"):
        page.get_by_label("Theme").select_option(theme)
        page.wait_for_function(f"document.documentElement.dataset.theme === '{theme}'")
        page.locator("#workspace-picker").focus()
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / f"workspaces-switcher-{theme}.png"))




def portfolio_served(setup: Setup) -> bool:
    paths = httpx.get(setup.live.url + "/openapi.json").json()["paths"]
    return "/api/v1/portfolio" in paths


def need_portfolio(setup: Setup) -> None:
    if not portfolio_served(setup):
        pytest.skip("GET /api/v1/portfolio (src/kpidash/api/routes/portfolio.py, contract in "
                    "/tmp/portfolio-contract.md) is not served by this server yet")


def portfolio_rows(page: Any, kpi: str) -> list[dict[str, Any]]:
    return list(page.locator(f'table[data-kpi="{kpi}"] tbody tr').evaluate_all("""rows =>
        rows.map(r => ({workspace: r.dataset.workspace,
                        rank: r.querySelector('.rank').textContent,
                        name: r.querySelector('.ws-link').textContent,
                        value: r.querySelector('.value').dataset.value,
                        mood: r.querySelector('.change').dataset.mood || null,
                        insight: r.querySelector('.portfolio-insight').textContent}))"""))


def expected_mood(row: dict[str, Any]) -> str | None:
    if row["change"] is None:
        return None
    if row["direction"] == "flat" or row["change"] == 0:
        return "neutral"
    return "good" if (row["change"] > 0) == row["higher_is_better"] else "bad"


def open_portfolio(page: Any, kpi: str, rank_by: str = "value") -> None:
    if page.locator("#portfolio-view").is_hidden():
        page.get_by_role("button", name="Portfolio").click()
    page.get_by_label("Compare by").select_option("month")
    page.get_by_label("Rank by").select_option(rank_by)
    page.wait_for_selector(f'#portfolio-kpi option[value="{kpi}"]', state="attached")
    page.locator("#portfolio-kpi").select_option(kpi)
    page.wait_for_selector(f'table[data-kpi="{kpi}"] tbody tr')
    page.wait_for_function("document.querySelector('#portfolio-status').textContent === ''")


@pytest.mark.usefixtures("own_theme_restored")
def test_portfolio_ranks_my_workspaces_only(setup: Setup, page: Any) -> None:
    need_portfolio(setup)
    api = setup.live.client("agnes")
    sign_in(page, setup.live.url + "/", "agnes")
    # the KPI picker offers the KPIs of both of agnes's workspaces
    page.get_by_role("button", name="Portfolio").click()
    assert page.get_by_role("button", name="Portfolio").get_attribute("aria-pressed") == "true"
    assert page.locator("#board-view").is_hidden()
    page.wait_for_selector("#portfolio-kpi option", state="attached")
    offered = page.locator("#portfolio-kpi").locator("option").evaluate_all(
        "os => os.map(o => o.value)")
    assert {"revenue", "mrr", "signups"} <= set(offered)
    open_portfolio(page, "signups")
    assert "view=portfolio" in page.evaluate("location.hash")
    answer = api.get("/portfolio", params={"kpi": "signups", "grain": "month",
                                           "rank_by": "value", "insights": "true"}).json()
    (widget,) = answer["widgets"]
    expected = widget["data"]["rows"]
    shown = portfolio_rows(page, "signups")
    # agnes's two workspaces, never globex, in the API's order and ranks
    assert [r["workspace"] for r in shown] == [r["workspace"] for r in expected]
    assert sorted(r["workspace"] for r in shown) == ["acme", "default"]
    assert "Globex" not in page.locator("#portfolio-view").inner_text()
    assert [r["rank"] for r in shown] == ["1", "2"]
    assert [r["name"] for r in shown] == [r["workspace_name"] for r in expected]
    values = [float(r["value"]) for r in shown]
    assert values == [r["value"] for r in expected] and values[0] > values[1]
    assert [r["mood"] for r in shown] == [expected_mood(r) for r in expected]
    assert [r["insight"] for r in shown] == [(r["insight"] or {}).get("text", "—")
                                            for r in expected]
    assert page.locator('table[data-kpi="signups"] svg.spark').count() == 2
    # MRR: acme counts in EUR, default in USD — not ranked by value, ranked by change
    open_portfolio(page, "mrr")
    assert "not ranked" in page.locator('table[data-kpi="mrr"] caption').inner_text()
    assert "€" in page.locator('tr[data-workspace="acme"] .value').inner_text()
    open_portfolio(page, "mrr", rank_by="change")
    ranks = [r["rank"] for r in portfolio_rows(page, "mrr")]
    assert ranks == ["1", "2"]
    ARTIFACTS.mkdir(exist_ok=True)
    for theme in ("light", "dark"):
        page.get_by_label("Theme").select_option(theme)
        page.wait_for_function(f"document.documentElement.dataset.theme === '{theme}'")
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / f"workspaces-portfolio-{theme}.png"),
                        full_page=True)
    # a row opens that workspace's dashboard (keyboard: Enter on its name)
    page.locator('tr[data-workspace="acme"] .ws-link').focus()
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-id="card:mrr"] .kpi-value')
    assert page.locator("#portfolio-view").is_hidden()
    assert page.get_by_label("Workspace").input_value() == "acme"
    assert page.evaluate("location.hash") == "#ws=acme"
    # and a click on a row, from a portfolio link
    page.goto(setup.live.url + "/#ws=acme&view=portfolio")
    page.reload()
    page.wait_for_selector("#portfolio-view table tbody tr")
    page.locator('#portfolio-view tr[data-workspace="default"] td.rank').first.click()
    page.wait_for_selector('[data-id="card:revenue"] .kpi-value')
    assert page.get_by_label("Workspace").input_value() == "default"


def test_portfolio_page_is_labelled_and_keyboard_reachable(setup: Setup, page: Any) -> None:
    need_portfolio(setup)
    sign_in(page, setup.live.url + "/", "agnes")
    open_portfolio(page, "signups")
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('select, input, button')]
        .filter(e => e.offsetParent !== null)
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                     && !e.textContent.trim())
        .map(e => e.outerHTML)""")
    assert unlabeled == []
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('ws-link')"):
            break
    else:
        pytest.fail("Tab never reached a workspace in the portfolio table")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
