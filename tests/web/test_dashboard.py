"""The built-in dashboard in a real headless Chromium against a real server."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from kpidash.api import live as live_api

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
Live = Any  # conftest.Live: the running server
Login = Any  # conftest's login(page, username)


def card_value(text: str) -> float:
    return float(re.sub(r"[^0-9.\-]", "", text))


def trend_text(trend: float | None) -> str:
    if trend is None:
        return "no previous period"
    return f"{'+' if trend > 0 else ''}{trend:.1f}%"


def dashboard_of(api: Any) -> dict[str, Any]:
    (d,) = api.get("/dashboards").json()
    return d  # type: ignore[no-any-return]


def wait_until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_the_page_and_its_assets_come_from_the_server(server: Live) -> None:
    import httpx

    index = httpx.get(server.url + "/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', index.text):
        assert ref.startswith("/static/"), f"{ref} is not served by kpidash itself"
        r = httpx.get(server.url + ref)
        assert r.status_code == 200, ref
    plotly = httpx.get(server.url + "/static/vendor/plotly.min.js")
    assert plotly.headers["content-type"].startswith("text/javascript")
    assert len(plotly.content) > 1_000_000
    assert "http" not in re.sub(r"<!--.*?-->", "", index.text)


def test_cards_show_what_the_api_renders(server: Live, page: Any, login: Login) -> None:
    server.add_user("carla", "analyst")
    login(page, "carla")
    api = server.client("carla")
    d = dashboard_of(api)
    board = api.get(f"/dashboards/{d['id']}/render", params={"theme": "corporate"}).json()
    cards = [w["data"] for w in board["widgets"] if w["type"] == "kpi"]
    assert len(cards) == 4
    for c in cards:
        card = page.locator(f'[data-id="card:{c["kpi_id"]}"]')
        value = card.locator(".kpi-value").inner_text()
        assert card_value(value) == pytest.approx(c["value"], abs=0.006), c["kpi_id"]
        if c["unit"] == "$":
            assert value.startswith("$")
        elif c["unit"]:
            assert value.endswith(c["unit"])
        assert trend_text(c["trend"]) in card.inner_text()
        pill = card.locator(".status-pill")
        assert pill.get_attribute("data-status") == c["status"]
        assert c["color"] in (pill.get_attribute("style") or "").replace(" ", "") or \
            pill.evaluate("e => getComputedStyle(e).backgroundColor") != ""
        assert card.locator("h3").inner_text() == c["title"]
    # charts are drawn by plotly, the insights feed lists the recommendations
    assert page.locator(".chart .main-svg").first.is_visible()
    page.wait_for_selector(".chart .scatterlayer .trace")
    recs = next(w["data"] for w in board["widgets"] if w["type"] == "recommendations")
    texts = page.locator(".insight-text").all_inner_texts()
    assert texts == [i["text"] for i in recs["items"]]
    assert page.locator(".insight .score").first.inner_text() == \
        f"score {recs['items'][0]['score']:.2f}"


def test_theme_persists_across_reload(server: Live, page: Any, login: Login) -> None:
    server.add_user("theo", "viewer")
    login(page, "theo")
    assert page.locator("html").get_attribute("data-theme") == "corporate"
    page.get_by_label("Theme").select_option("dark")
    page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    api = server.client("theo")
    assert wait_until(lambda: api.get("/me").json()["theme"] == "dark")
    page.reload()
    page.wait_for_selector(".kpi-value")
    page.wait_for_selector(".chart .main-svg")
    assert page.locator("html").get_attribute("data-theme") == "dark"
    assert page.get_by_label("Theme").input_value() == "dark"
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(18, 20, 23)"  # the dark palette's background, #121417
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "dashboard-dark.png"), full_page=True)
    page.get_by_label("Theme").select_option("light")
    page.wait_for_function("document.documentElement.dataset.theme === 'light'")
    page.wait_for_timeout(500)
    light = ARTIFACTS / "dashboard-light.png"
    page.screenshot(path=str(light), full_page=True)
    if os.environ.get("KPIDASH_UPDATE_SCREENSHOT"):  # refresh the README's picture on demand
        shutil.copy(light, ROOT / "docs" / "dashboard.png")


def test_dragged_layout_persists_across_logins(server: Live, page: Any, login: Login) -> None:
    server.add_user("lena", "analyst")
    login(page, "lena")
    card = page.locator('[data-id="card:revenue"]')
    head = card.locator(".widget-head")
    box = head.bounding_box()
    grid = page.locator("#grid").bounding_box()
    col = (grid["width"] + 12) / 12
    x0, y0 = box["x"] + 30, box["y"] + box["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x0 + col * 9 * step / 10, y0, steps=2)
    page.mouse.up()
    assert card.get_attribute("data-x") == "9"
    # the card that was there was pushed down, not overlapped
    assert page.locator('[data-id="card:signups"]').get_attribute("data-y") == "2"
    api = server.client("lena")

    def saved() -> dict[str, Any] | None:
        items = {i["id"]: i for i in dashboard_of(api)["spec"]["layout"]}
        return items if items["card:revenue"]["x"] == 9 else None

    items = wait_until(saved)
    assert items, "the new layout was not saved"
    assert items["card:signups"]["y"] >= 2
    # keyboard: arrows move, shift+arrows resize
    card.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Shift+ArrowDown")
    assert card.get_attribute("data-x") == "8" and card.get_attribute("data-h") == "3"
    assert "moved" in page.locator("#announcer").inner_text() or \
        "resized" in page.locator("#announcer").inner_text()
    assert wait_until(lambda: dashboard_of(api)["spec"]["layout"][0] == {
        "id": "card:revenue", "x": 8, "y": 0, "w": 3, "h": 3})
    page.get_by_role("button", name="Log out").click()
    page.wait_for_selector("#login-form")
    assert page.locator("#app-view").is_hidden()
    login(page, "lena")
    card = page.locator('[data-id="card:revenue"]')
    assert (card.get_attribute("data-x"), card.get_attribute("data-h")) == ("8", "3")


def test_ingest_updates_the_card_live(server: Live, page: Any, login: Login) -> None:
    server.add_user("ivan", "analyst")
    login(page, "ivan")
    value = page.locator('[data-id="card:signups"] .kpi-value')
    before = float(value.get_attribute("data-value"))
    updated = page.locator("#updated-at").inner_text()
    assert re.fullmatch(r"updated \d\d:\d\d:\d\d", updated)
    page.wait_for_timeout(1100)  # so the clock shows another second
    api = server.client("ivan")
    r = api.post("/ingest", json={"points": [{
        "kpi": "signups", "ts": "2024-06-30T12:00:00Z", "value": 1000,
        "dims": {"region": "EU", "plan": "pro", "channel": "paid"}}]})
    assert r.status_code == 200, r.text
    page.wait_for_function(
        f"Number(document.querySelector('[data-id=\"card:signups\"] .kpi-value')"
        f".dataset.value) === {before + 1000}", timeout=10000)
    assert card_value(value.inner_text()) == before + 1000
    assert page.locator("#updated-at").inner_text() != updated
    assert "Dashboard updated" in page.locator("#announcer").inner_text()


RULE = {"id": "web_revenue_high", "kpi": "revenue", "grain": "day", "for": "0s",
        "condition": {"kind": "threshold", "direction": "above", "bands": {"high": 1000}}}


def test_acknowledge_an_alert_and_viewers_cannot(server: Live, browser: Any, page: Any,
                                                 login: Login) -> None:
    server.add_user("ada", "analyst")
    server.add_user("vic", "viewer")
    login(page, "ada")
    api = server.client("ada")
    r = api.post("/alert-rules", json=RULE)
    assert r.status_code == 201, r.text
    server.call(live_api.alert_tick(server.st))
    alerts = [a for a in api.get("/alerts").json() if a["rule_id"] == RULE["id"]]
    assert alerts and alerts[0]["state"] in ("firing", "pending")
    fp = alerts[0]["fingerprint"]
    item = page.locator(f'#alerts-list [data-fingerprint="{fp}"]')
    item.wait_for()  # pushed over the WebSocket, no reload
    item.get_by_role("button", name=re.compile("^Acknowledge")).click()
    item.locator(".acked").wait_for()
    assert "acknowledged by ada" in item.inner_text()
    assert item.get_by_role("button", name=re.compile("^Acknowledge")).count() == 0
    ack = api.get(f"/alerts/{fp}").json()
    assert ack["acknowledgement"]["by"] == "ada"
    # a viewer sees the alert but neither Acknowledge nor Silence
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        viewer = context.new_page()
        login(viewer, "vic")
        row = viewer.locator(f'#alerts-list [data-fingerprint="{fp}"]')
        row.wait_for()
        assert row.locator("button").count() == 0
        assert viewer.get_by_role("button", name=re.compile("Acknowledge|Silence")).count() == 0
    finally:
        context.close()


def test_silence_from_the_ui(server: Live, page: Any, login: Login) -> None:
    server.add_user("sam", "admin")
    api = server.client("sam")
    if not [a for a in api.get("/alerts").json() if a["rule_id"] == RULE["id"]]:
        api.post("/alert-rules", json=RULE)
        server.call(live_api.alert_tick(server.st))
    login(page, "sam")
    page.locator("#alerts-list .silence").first.click()
    assert wait_until(lambda: any(s["matchers"] and "revenue" in str(s["matchers"])
                                  for s in api.get("/silences").json()))


def test_filters_range_and_grain_are_saved(server: Live, page: Any, login: Login) -> None:
    server.add_user("fay", "analyst")
    login(page, "fay")
    api = server.client("fay")
    page.get_by_label("Dimension").select_option("region")
    page.get_by_label("Value").focus()  # suggestions: the dimension's values
    page.wait_for_function("[...document.querySelectorAll('#filter-values option')]"
                           ".map(o => o.value).includes('EU')")
    page.get_by_label("Value").fill("EU")
    page.get_by_role("button", name="Add filter").click()
    page.get_by_role("button", name="Remove filter region = EU").wait_for()
    page.get_by_label("Grain").select_option("week")
    page.get_by_label("Range").select_option("1y")
    assert wait_until(lambda: (s := dashboard_of(api)["spec"]).get("grain") == "week"
                      and s.get("range") == {"last": "1y"}
                      and s.get("filters") == {"region": ["EU"]})
    board = api.get(f"/dashboards/{dashboard_of(api)['id']}/render",
                    params={"theme": "corporate"}).json()
    assert board["grain"] == "week"
    rev = next(w["data"] for w in board["widgets"] if w["type"] == "kpi"
               and w["data"]["kpi_id"] == "revenue")
    page.wait_for_function(
        "Number(document.querySelector('[data-id=\"card:revenue\"] .kpi-value')"
        f".dataset.value) === {rev['value']}")


def test_keyboard_and_labels(server: Live, page: Any, login: Login) -> None:
    server.add_user("kim", "viewer")
    login(page, "kim")
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('select, input, button')]
        .filter(e => e.offsetParent !== null)
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                     && !e.textContent.trim())
        .map(e => e.outerHTML)""")
    assert unlabeled == []
    # Tab reaches the widgets, with a visible focus ring
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('widget')"):
            break
    else:
        pytest.fail("Tab never reached a widget")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    assert page.locator("#announcer").get_attribute("aria-live") == "polite"


def test_reconnects_after_the_socket_drops(server: Live, page: Any, login: Login) -> None:
    server.add_user("rex", "viewer")
    sockets: list[Any] = []

    def relay(ws: Any) -> None:
        ws.connect_to_server()  # pass every message through, keep a handle to close it
        sockets.append(ws)

    page.route_web_socket(re.compile(r".*/api/v1/ws$"), relay)
    login(page, "rex")
    assert len(sockets) == 1
    sockets[0].close(code=1012, reason="server restart")
    page.wait_for_function("document.querySelector('#conn-status').textContent === 'reconnecting…'")
    # the first retry comes after about a second, then the status is live again
    page.wait_for_function("document.querySelector('#conn-status').textContent === 'live'",
                           timeout=10000)
    assert len(sockets) == 2
