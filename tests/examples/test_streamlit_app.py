"""examples/streamlit_app.py, run with Streamlit's AppTest against a real uvicorn server on a
loopback port (a temp DuckDB file with the demo data, one user and one dashboard).

Streamlit comes from requirements.lock (the ``examples`` extra), so these tests never skip. It
raises no Python warnings on import or under AppTest (its "missing ScriptRunContext" notice is a
log record), so no filterwarnings exceptions are needed here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.proto.Metric_pb2 import Metric
from streamlit.testing.v1 import AppTest

from kpidash import demo
from kpidash.api import create_app
from kpidash.clock import FixedClock
from kpidash.engine import Engine
from kpidash.packs import load_pack
from kpidash.settings import Settings
from kpidash.store import open_store
from loopback import free_port, serve_in_thread

MetricColor = Metric.MetricColor

APP = Path(__file__).resolve().parents[2] / "examples" / "streamlit_app.py"
PASSWORD = "correct horse battery"
KPIS = ["revenue", "customer_churn_rate", "arr"]


@dataclass
class Server:
    url: str
    dashboard: dict[str, Any]  # the API's render JSON of the user's dashboard


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # the demo engine, built like tests/engine/conftest.py's _demo_engine (120 days to 2024-06-30)
    path = tmp_path_factory.mktemp("streamlit") / "kpidash.duckdb"
    clock = FixedClock(datetime(2024, 7, 1, 6, tzinfo=UTC))
    engine = Engine(open_store(str(path)), clock)
    engine.register(load_pack("saas"))
    engine.ingest_table(demo.generate(date(2024, 6, 30), days=120).points, source="demo")
    # one alert per region, so the alerts table has rows
    engine.put_alert_rules([{"id": "revenue_flowing", "kpi": "revenue", "per": "region",
                             "condition": {"kind": "threshold", "direction": "above",
                                           "bands": {"low": 0}}}])
    engine.evaluate_alerts(deliver=False)
    app = create_app(Settings(db=str(path), mode="dev"), clock=clock, engine=engine)
    accounts = app.state.kpidash.accounts
    user = accounts.create_user("ana", PASSWORD, role="analyst")
    dash = accounts.create_dashboard(user.id, "Overview", {"kpis": KPIS, "layout": [
        {"id": "chart:revenue:region", "x": 0, "y": 0, "w": 6, "h": 4},
        {"id": "insights", "x": 6, "y": 0, "w": 6, "h": 4}]})

    try:
        with serve_in_thread(app, "kpidash-streamlit-test-server") as srv:
            form = {"username": "ana", "password": PASSWORD}
            token = httpx.post(f"{srv.url}/api/v1/auth/token", data=form).json()[
                "access_token"]
            doc = httpx.get(f"{srv.url}/api/v1/dashboards/{dash.id}/render",
                            headers={"Authorization": f"Bearer {token}"}).json()
            yield Server(srv.url, doc)
    finally:
        engine.store.close()


def _run(monkeypatch: pytest.MonkeyPatch, url: str, password: str) -> AppTest:
    monkeypatch.setenv("KPIDASH_URL", url)
    monkeypatch.setenv("KPIDASH_USER", "ana")
    monkeypatch.setenv("KPIDASH_PASSWORD", password)
    at = AppTest.from_file(str(APP), default_timeout=60)
    return at.run(timeout=60)


def _number(text: str) -> float:
    """'$64,524.13' → 64524.13, '3.20 %' → 3.2."""
    match = re.search(r"-?[\d,]+(?:\.\d+)?", text)
    assert match, text
    return float(match.group().replace(",", ""))


def test_renders_the_dashboard(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _run(monkeypatch, server.url, PASSWORD)
    assert not at.exception
    assert not at.error

    cards = [w["data"] for w in server.dashboard["widgets"] if w["type"] == "kpi"]
    assert [c["kpi_id"] for c in cards] == KPIS
    assert all(c["value"] is not None for c in cards)  # the demo data reaches the last period
    metrics = {m.label: m for m in at.metric}
    assert len(at.metric) == len(cards)
    colored: set[str] = set()
    for card in cards:
        metric = metrics[card["title"]]
        assert _number(metric.value) == pytest.approx(card["value"], abs=0.005)
        if card["unit"]:
            assert card["unit"] in metric.value
        if card["trend"] is not None:
            assert _number(metric.delta) == pytest.approx(card["trend"], abs=0.05)
        if card["target"] is None and card["status"] != "neutral":
            # the delta's colour is the card's status (a fall in churn is green: delta_color
            # "inverse"), not Streamlit's default up-is-green
            color = MetricColor.GREEN if card["status"] == "good" else MetricColor.RED
            assert metric.proto.color == color, card
            colored.add(card["kpi_id"])
    # both cases are exercised: revenue fell (red), churn fell (green, the inverted colours)
    assert {"revenue", "customer_churn_rate"} <= colored

    charts = at.get("plotly_chart")
    assert len(charts) == 1, "one Plotly chart: revenue by region"
    figure = next(w["data"]["figure"] for w in server.dashboard["widgets"] if w["type"] == "line")
    shown = json.loads(charts[0].proto.spec)
    assert figure["data"]
    assert [t.get("name") for t in shown["data"]] == [t.get("name") for t in figure["data"]]
    text = " ".join(m.value for m in at.markdown).replace("\\$", "$")  # the app escapes $
    items = next(w["data"]["items"] for w in server.dashboard["widgets"]
                 if w["type"] == "recommendations")
    assert items, "the demo data should give at least one insight"
    for item in items:
        assert item["text"] in text
    assert at.title[0].value == "Overview"
    alerts = server.dashboard["alerts"]
    assert len(alerts) >= 2  # the rule fires in every region
    assert len(at.dataframe) == 1
    table = at.dataframe[0].value
    assert sorted(table["slice"]) == sorted(f"region={a['slice']['region']}" for a in alerts)
    assert set(table["kpi"]) == {"revenue"} and set(table["state"]) == {"firing"}


def test_wrong_password_shows_the_api_message(server: Server,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    at = _run(monkeypatch, server.url, "not the password")
    assert not at.exception
    assert len(at.error) == 1
    # the API's envelope message, not a traceback
    assert "wrong username or password" in at.error[0].value
    assert not at.metric and not at.get("plotly_chart")


def test_server_down_is_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    at = _run(monkeypatch, f"http://127.0.0.1:{free_port()}", PASSWORD)
    assert not at.exception
    assert "cannot reach" in at.error[0].value
